// The recurrent cells: one table holding every fact about each cell kind, and each cell's step
// equations, forward and backward, written once as the readable specification.
//
// Everything that needs a fact about a cell reads it here: validation (validate.ts), the reference
// backend's time loop (reference.ts), the wasm driver (wasm-core.ts), the layers (nn/layers.ts),
// the golden-case loader (io/golden.ts), the language model and the tests. The native addon keeps
// the same table with each cell's row kernels (native/kernels.h kCellInfo, CellKernels; the addon
// exports it as cellKinds(), which test/native.test.ts checks against this one); the wasm driver
// keeps one row per cell with its step kernels (wasm-core.ts WASM_CELLS).
//
// The gate (recurrent) activation of LSTM and GRU is sigmoid, or a hard sigmoid
// clamp(alpha * v + beta, 0, 1) (RecurrentActivation below), chosen per layer.
//
// Notation (PyTorch, one batch row at one time step; H hidden size, G = gates * H):
//   xp = W_ih x_t + b_ih      [G]  the input pre-activations
//   hp = W_hh h_{t-1} + b_hh  [G]  the recurrent pre-activations
//   a gate row [G] holds the gates one after another, each H wide, in the table's `gates` order.
// A cell's forward step maps (xp, hp, h_{t-1}, c_{t-1}) to its activated gates and the new state;
// its backward step maps the gradient reaching h_t (and c_t) to the gradients of xp and hp (and of
// c_{t-1}, and any path to h_{t-1} that does not go through W_hh). The time loop, lengths, reverse
// direction, biases, W_ih / W_hh products and the LSTM projection are shared (reference.ts).

type FloatArray = Float32Array | Float64Array;

/** One batch row at one time step, as the time loop hands it to a cell's step functions. */
export interface CellStep {
  H: number;
  /** [G] W_ih x_t + b_ih. */
  xp: ArrayLike<number>;
  /** [G] W_hh h_{t-1} + b_hh (saved by forward, read again by backward); the late gates' part is written by forward. */
  hp: FloatArray;
  /** [R] h_{t-1}. */
  hPrev: ArrayLike<number>;
  /** [H] c_{t-1} (cells with the state c; else empty). */
  cPrev: ArrayLike<number>;
  /** [G] activated gates: written by forward, read by backward. */
  gates: FloatArray;
  /** [H] c_t (cells with the state c; else empty): written by forward, read by backward. */
  c: FloatArray;
  /** [H] h_t (before the LSTM projection): written by forward. */
  h: FloatArray;
  /**
   * [H] the vector the late gates' recurrent product takes (cells with `lateGates`: the
   * reset-before GRU's r * h_{t-1}), written by forward; else empty.
   */
  rh: FloatArray;
  /** The gate activation (sigmoid or hard sigmoid) of the cells with `gateActivation`. */
  act: GateFunctions;
  /**
   * Cells with `lateGates`: out [lateGates * H] = W_hh[late rows] v + b_hh[late rows], the late
   * gates' recurrent pre-activations (the time loop owns the weights). Unused by other cells.
   */
  recur(v: ArrayLike<number>, out: FloatArray): void;
}

/** What a backward step reads: the step as forward left it (xp and recur are not needed). */
export type SavedStep = Omit<CellStep, 'xp' | 'recur'>;

/** The gradients of one backward step. */
export interface CellStepGrad {
  /** [H] in: dL/dh_t (before the projection). */
  dh: ArrayLike<number>;
  /** [H] in: dL/dc_t from the later steps; out: dL/dc_{t-1} (cells with the state c). */
  dc: FloatArray;
  /** [G] out: dL/dxp. */
  dxp: FloatArray;
  /** [G] out: dL/dhp. */
  dhp: FloatArray;
  /**
   * [R] out (zero on entry): dL/dh_{t-1} through paths other than the early gates' W_hh rows
   * (GRU: dh * z; reset-before GRU also r * W_hn^T dn).
   */
  dhPrev: FloatArray;
  /**
   * Cells with `lateGates`: out [R] = W_hh[late rows]^T d for d [lateGates * H] (the gradient
   * reaching the late gates' product input). Unused by other cells.
   */
  recurT(d: ArrayLike<number>, out: FloatArray): void;
}

/** One row of the cell table. */
export interface CellSpec {
  /** The numeric id of the native kernels (native/kernels.h CellId and kCellInfo). */
  id: number;
  /** The layer class (nn/layers.ts) and PyTorch module: torch.nn.LSTM, GRU, RNN. */
  module: 'LSTM' | 'GRU' | 'RNN';
  /** The one-step class: torch.nn.LSTMCell, GRUCell, RNNCell. */
  stepModule: 'LSTMCell' | 'GRUCell' | 'RNNCell';
  /** RNN only: PyTorch's nonlinearity option that selects this kind. */
  nonlinearity: 'tanh' | 'relu' | null;
  /** The gates in PyTorch's order; their count times H is the rows of weight_ih / weight_hh. */
  gates: readonly string[];
  /** The recurrent states: h, and c for a cell with a cell state (h0/c0, hN/cN). */
  states: readonly ('h' | 'c')[];
  /** PyTorch proj_size (weight_hr_l{k}) is allowed. */
  projection: boolean;
  /** GRU only: true for PyTorch's reset-after form, false for the reset-before form; null otherwise. */
  resetAfter: boolean | null;
  /** The cell has sigmoid gates that a hard sigmoid may replace (recurrentActivation). */
  gateActivation: boolean;
  /**
   * Trailing gates whose recurrent product W_hh[rows] v takes v = the `rh` vector the cell forms
   * from the earlier gates (reset-before GRU: the n gate takes r * h_{t-1}), so it runs after
   * them; 0 = every gate's product takes h_{t-1} (one W_hh product per step).
   */
  lateGates: number;
  /** One step forward (see CellStep). */
  forward(s: CellStep): void;
  /** One step backward (see CellStepGrad); reads what forward wrote into s. */
  backward(s: SavedStep, g: CellStepGrad): void;
}

/** The logistic function 1 / (1 + e^-v). */
export const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
/** relu as PyTorch: NaN stays NaN. */
export const relu = (v: number): number => (v > 0 || Number.isNaN(v) ? v : 0);

/**
 * The gate (recurrent) activation of LSTM and GRU:
 *   sigmoid:      sigma(v) = 1 / (1 + e^-v),            sigma' = y (1 - y)
 *   hardSigmoid:  y = clamp(alpha * v + beta, 0, 1),    y' = alpha where 0 < y < 1, else 0
 * The hard sigmoid's slope and offset differ between frameworks: TF.js and Keras 2 use
 * alpha 0.2, beta 0.5 (the default here and ONNX's HardSigmoid default); Keras 3 uses
 * relu6(v + 3) / 6, i.e. alpha 1/6, beta 0.5. At the two kinks (alpha v + beta exactly 0 or 1)
 * the derivative is 0: the open interval, as PyTorch's Hardsigmoid and Keras 3's relu6 (TF.js's
 * clip passes the gradient at exactly those two points). NaN stays NaN.
 */
export type RecurrentActivation =
  | { kind: 'sigmoid' }
  | { kind: 'hardSigmoid'; alpha: number; beta: number };

/** The names of the gate activations (recurrentActivation option). */
export const RECURRENT_ACTIVATIONS = ['sigmoid', 'hardSigmoid'] as const;
export const SIGMOID: RecurrentActivation = Object.freeze({ kind: 'sigmoid' });
/** The hard sigmoid's default slope and offset (TF.js, Keras 2, ONNX HardSigmoid). */
export const HARD_SIGMOID_DEFAULTS = Object.freeze({ alpha: 0.2, beta: 0.5 });

/** A gate activation and its derivative from the activated value y. */
export interface GateFunctions {
  f(v: number): number;
  df(y: number): number;
}

/** hard sigmoid clamp(alpha v + beta, 0, 1); NaN stays NaN. */
export function hardSigmoid(v: number, alpha: number, beta: number): number {
  const u = alpha * v + beta;
  return u < 0 ? 0 : u > 1 ? 1 : u;
}

/** The forward and derivative functions of a gate activation. */
export function gateFunctions(a: RecurrentActivation | null | undefined): GateFunctions {
  if (!a || a.kind === 'sigmoid') return { f: sigmoid, df: (y) => y * (1 - y) };
  const { alpha, beta } = a;
  return { f: (v) => hardSigmoid(v, alpha, beta), df: (y) => (y > 0 && y < 1 ? alpha : 0) };
}

/**
 * Checks a gate activation given to a kernel or layer: `where` names the caller, `cell` the kind
 * it is for. Returns it (null/undefined -> sigmoid).
 */
export function checkRecurrentActivation(where: string, cell: CellKind, a: unknown): RecurrentActivation {
  if (a === null || a === undefined) return SIGMOID;
  const kind = (a as { kind?: unknown })?.kind;
  if (typeof a !== 'object' || !(RECURRENT_ACTIVATIONS as readonly unknown[]).includes(kind)) {
    throw new RangeError(`${where}: recurrentActivation must be { kind: 'sigmoid' } or { kind: 'hardSigmoid', alpha, beta }, received ${describe(a)}`);
  }
  if (kind === 'sigmoid') return SIGMOID;
  if (!CELLS[cell].gateActivation) {
    throw new RangeError(`${where}: recurrentActivation 'hardSigmoid' is only for ${modulesWhere((c) => c.gateActivation)} (cells with sigmoid gates), received it for ${CELLS[cell].module}`);
  }
  const { alpha, beta } = a as { alpha?: unknown; beta?: unknown };
  for (const [name, v] of [['alpha', alpha], ['beta', beta]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${where}: hardSigmoid ${name} must be a finite number, received ${describe(v)}`);
  }
  if ((alpha as number) <= 0) throw new RangeError(`${where}: hardSigmoid alpha (slope) must be positive, received ${String(alpha)}`);
  return { kind: 'hardSigmoid', alpha: alpha as number, beta: beta as number };
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === null || typeof v !== 'object') return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

// ---- LSTM, gates i, f, g, o ----
// (sigma = the gate activation: sigmoid, or the hard sigmoid; sigma' from the activated value)
// forward:
//   i = sigma(xp_i + hp_i)     f = sigma(xp_f + hp_f)
//   g = tanh(xp_g + hp_g)      o = sigma(xp_o + hp_o)
//   c_t = f * c_{t-1} + i * g
//   h_t = o * tanh(c_t)                       (then h_t = W_hr h_t with a projection)
// backward (dh = dL/dh_t, dc = dL/dc_t from the later steps):
//   dc += dh * o * (1 - tanh(c_t)^2)
//   do = dh * tanh(c_t),  di = dc * g,  df = dc * c_{t-1},  dg = dc * i
//   dxp = dhp = [di * sigma'(i), df * sigma'(f), dg * (1-g^2), do * sigma'(o)]
//   dc_{t-1} = dc * f
function lstmForward({ H, xp, hp, cPrev, gates, c, h, act }: CellStep): void {
  for (let j = 0; j < H; j++) {
    const ig = act.f(xp[j] + hp[j]);
    const fg = act.f(xp[H + j] + hp[H + j]);
    const gg = Math.tanh(xp[2 * H + j] + hp[2 * H + j]);
    const og = act.f(xp[3 * H + j] + hp[3 * H + j]);
    gates[j] = ig;
    gates[H + j] = fg;
    gates[2 * H + j] = gg;
    gates[3 * H + j] = og;
    const ct = fg * cPrev[j] + ig * gg;
    c[j] = ct;
    h[j] = og * Math.tanh(ct);
  }
}

function lstmBackward({ H, cPrev, gates, c, act }: SavedStep, { dh, dc, dxp, dhp }: CellStepGrad): void {
  for (let j = 0; j < H; j++) {
    const ig = gates[j];
    const fg = gates[H + j];
    const gg = gates[2 * H + j];
    const og = gates[3 * H + j];
    const tc = Math.tanh(c[j]);
    const dct = dc[j] + dh[j] * og * (1 - tc * tc);
    dxp[j] = dct * gg * act.df(ig);
    dxp[H + j] = dct * cPrev[j] * act.df(fg);
    dxp[2 * H + j] = dct * ig * (1 - gg * gg);
    dxp[3 * H + j] = dh[j] * tc * act.df(og);
    dc[j] = dct * fg;
  }
  dhp.set(dxp);
}

// ---- GRU (PyTorch, reset-after), gates r, z, n ----
// forward:
//   r = sigma(xp_r + hp_r)     z = sigma(xp_z + hp_z)
//   n = tanh(xp_n + r * hp_n)                 (hp_n = W_hn h_{t-1} + b_hn: b_hn inside r * (.))
//   h_t = (1 - z) * n + z * h_{t-1}
// backward (dh = dL/dh_t):
//   dn = dh * (1 - z) * (1 - n^2)
//   dz = dh * (h_{t-1} - n) * sigma'(z)
//   dr = dn * hp_n * sigma'(r)
//   dxp = [dr, dz, dn]   dhp = [dr, dz, dn * r]   dh_{t-1} (direct) = dh * z
function gruForward({ H, xp, hp, hPrev, gates, h, act }: CellStep): void {
  for (let j = 0; j < H; j++) {
    const rg = act.f(xp[j] + hp[j]);
    const zg = act.f(xp[H + j] + hp[H + j]);
    const ng = Math.tanh(xp[2 * H + j] + rg * hp[2 * H + j]);
    gates[j] = rg;
    gates[H + j] = zg;
    gates[2 * H + j] = ng;
    h[j] = (1 - zg) * ng + zg * hPrev[j];
  }
}

function gruBackward({ H, hp, hPrev, gates, act }: SavedStep, { dh, dxp, dhp, dhPrev }: CellStepGrad): void {
  for (let j = 0; j < H; j++) {
    const rg = gates[j];
    const zg = gates[H + j];
    const ng = gates[2 * H + j];
    const dn = dh[j] * (1 - zg) * (1 - ng * ng);
    const dz = dh[j] * (hPrev[j] - ng) * act.df(zg);
    const dr = dn * hp[2 * H + j] * act.df(rg);
    dxp[j] = dr; dhp[j] = dr;
    dxp[H + j] = dz; dhp[H + j] = dz;
    dxp[2 * H + j] = dn; dhp[2 * H + j] = dn * rg;
    dhPrev[j] = dh[j] * zg;
  }
}

// ---- GRU, reset-before form (Cho et al. 2014; Keras reset_after=False, the TF.js GRU, ONNX
// linear_before_reset=0), gates r, z, n; the same parameters as PyTorch's GRU ----
// The reset gate multiplies h_{t-1} BEFORE the n gate's recurrent product, so that product
// (the late gate) runs after r is known: hp_n = W_hn (r * h_{t-1}) + b_hn. Both biases of every
// gate add outside the gates' products (Keras reset_after=False has one bias: b_ih = bias,
// b_hh = 0; ONNX: b_ih = Wb, b_hh = Rb).
// forward:
//   r = sigma(xp_r + hp_r)     z = sigma(xp_z + hp_z)        (hp_{r,z} = W_h{r,z} h_{t-1} + b_h{r,z})
//   rh = r * h_{t-1}
//   n = tanh(xp_n + hp_n)      hp_n = W_hn rh + b_hn
//   h_t = (1 - z) * n + z * h_{t-1}
// backward (dh = dL/dh_t):
//   dn = dh * (1 - z) * (1 - n^2)                (= dL/dxp_n = dL/dhp_n)
//   dz = dh * (h_{t-1} - n) * sigma'(z)
//   drh = W_hn^T dn
//   dr = drh * h_{t-1} * sigma'(r)
//   dxp = dhp = [dr, dz, dn]
//   dh_{t-1} (direct) = dh * z + drh * r          (the r, z rows of W_hh add W_h{r,z}^T [dr, dz])
//   dW_hn += dn rh^T (the time loop: the late rows' product input is rh)
function gruResetBeforeForward({ H, xp, hp, hPrev, gates, h, rh, act, recur }: CellStep): void {
  for (let j = 0; j < H; j++) {
    const rg = act.f(xp[j] + hp[j]);
    gates[j] = rg;
    gates[H + j] = act.f(xp[H + j] + hp[H + j]);
    rh[j] = rg * hPrev[j];
  }
  recur(rh, hp.subarray(2 * H, 3 * H));
  for (let j = 0; j < H; j++) {
    const zg = gates[H + j];
    const ng = Math.tanh(xp[2 * H + j] + hp[2 * H + j]);
    gates[2 * H + j] = ng;
    h[j] = (1 - zg) * ng + zg * hPrev[j];
  }
}

function gruResetBeforeBackward({ H, hPrev, gates, act }: SavedStep, { dh, dxp, dhp, dhPrev, recurT }: CellStepGrad): void {
  const dn = dxp.subarray(2 * H, 3 * H);
  for (let j = 0; j < H; j++) {
    const zg = gates[H + j];
    const ng = gates[2 * H + j];
    dn[j] = dh[j] * (1 - zg) * (1 - ng * ng);
    dxp[H + j] = dh[j] * (hPrev[j] - ng) * act.df(zg);
  }
  const drh = new Float64Array(H);
  recurT(dn, drh);
  for (let j = 0; j < H; j++) {
    const rg = gates[j];
    dxp[j] = drh[j] * hPrev[j] * act.df(rg);
    dhPrev[j] = dh[j] * gates[H + j] + drh[j] * rg;
  }
  dhp.set(dxp);
}

// ---- RNN (Elman), one gate: the new state ----
// forward:   h_t = act(xp + hp),  act = tanh or relu; the gate row holds h_t
// backward:  dxp = dhp = dh * act'(.):  tanh: dh * (1 - h_t^2);  relu: h_t > 0 ? dh : 0
function rnnForward(act: (v: number) => number) {
  return ({ H, xp, hp, gates, h }: CellStep): void => {
    for (let j = 0; j < H; j++) {
      const v = act(xp[j] + hp[j]);
      gates[j] = v;
      h[j] = v;
    }
  };
}

function rnnBackward(dact: (dh: number, h: number) => number) {
  return ({ H, gates }: SavedStep, { dh, dxp, dhp }: CellStepGrad): void => {
    for (let j = 0; j < H; j++) {
      const d = dact(dh[j], gates[j]);
      dxp[j] = d;
      dhp[j] = d;
    }
  };
}

/** Every cell kind, in the order of their numeric ids. */
export const CELLS = {
  lstm: {
    id: 0, module: 'LSTM', stepModule: 'LSTMCell', nonlinearity: null, gates: ['i', 'f', 'g', 'o'], states: ['h', 'c'],
    projection: true, resetAfter: null, gateActivation: true, lateGates: 0, forward: lstmForward, backward: lstmBackward,
  },
  gru: {
    id: 1, module: 'GRU', stepModule: 'GRUCell', nonlinearity: null, gates: ['r', 'z', 'n'], states: ['h'],
    projection: false, resetAfter: true, gateActivation: true, lateGates: 0, forward: gruForward, backward: gruBackward,
  },
  rnn_tanh: {
    id: 2, module: 'RNN', stepModule: 'RNNCell', nonlinearity: 'tanh', gates: ['h'], states: ['h'], projection: false,
    resetAfter: null, gateActivation: false, lateGates: 0,
    forward: rnnForward(Math.tanh), backward: rnnBackward((dh, h) => dh * (1 - h * h)),
  },
  rnn_relu: {
    id: 3, module: 'RNN', stepModule: 'RNNCell', nonlinearity: 'relu', gates: ['h'], states: ['h'], projection: false,
    resetAfter: null, gateActivation: false, lateGates: 0,
    forward: rnnForward(relu), backward: rnnBackward((dh, h) => (h > 0 ? dh : 0)),
  },
  gru_reset_before: {
    id: 4, module: 'GRU', stepModule: 'GRUCell', nonlinearity: null, gates: ['r', 'z', 'n'], states: ['h'],
    projection: false, resetAfter: false, gateActivation: true, lateGates: 1,
    forward: gruResetBeforeForward, backward: gruResetBeforeBackward,
  },
} as const satisfies Record<string, CellSpec>;

/**
 * A cell kind of the table: 'lstm', 'gru' (PyTorch's reset-after form), 'rnn_tanh', 'rnn_relu',
 * 'gru_reset_before'.
 */
export type CellKind = keyof typeof CELLS;
/** Every cell kind, in the order of their numeric ids. */
export const CELL_KINDS = Object.keys(CELLS) as CellKind[];

/** True when `kind` names a cell of the table. */
export function isCellKind(kind: unknown): kind is CellKind {
  return typeof kind === 'string' && Object.hasOwn(CELLS, kind);
}

/** The table row of a kind. */
export function cellSpec(kind: CellKind): CellSpec {
  return CELLS[kind];
}

/** Gates per hidden unit: G = gateCount * H rows of weight_ih / weight_hh. */
export function gateCount(kind: CellKind): number {
  return CELLS[kind].gates.length;
}

/** True for a cell with the state c (LSTM): it takes c0 and returns cN. */
export function hasCellState(kind: CellKind): boolean {
  return (CELLS[kind].states as readonly string[]).includes('c');
}

/** A layer class of the table: 'LSTM', 'GRU', 'RNN'. */
export type ModuleName = CellSpec['module'];
/** The layer classes of the table: LSTM, GRU, RNN. */
export const MODULE_NAMES = [...new Set(CELL_KINDS.map((k) => CELLS[k].module))] as ModuleName[];

/** The lower-case layer names of the language model and the CLI (`--cell lstm`): lstm, gru, rnn. */
export type LayerName = Lowercase<ModuleName>;
export const LAYER_NAMES = MODULE_NAMES.map((m) => m.toLowerCase()) as LayerName[];

/** The layer classes whose cells have a property, for messages: e.g. 'LSTM' for the projection. */
export function modulesWhere(has: (spec: CellSpec) => boolean): string {
  return MODULE_NAMES.filter((m) => CELL_KINDS.some((k) => CELLS[k].module === m && has(CELLS[k]))).join(', ');
}

/**
 * The cell kind of a PyTorch module name ('LSTM', 'GRU', 'RNN') and, for RNN, its nonlinearity,
 * for GRU its form (resetAfter, default true: PyTorch's); throws naming `where` and the accepted
 * values otherwise.
 */
export function cellKindOf(where: string, module: string, nonlinearity: string = 'tanh', resetAfter: boolean = true): CellKind {
  const kinds = CELL_KINDS.filter((k) => CELLS[k].module === module);
  if (kinds.length === 0) throw new RangeError(`${where}: module must be one of ${MODULE_NAMES.join(', ')}, received ${String(module)}`);
  if (kinds.length === 1) return kinds[0];
  if (CELLS[kinds[0]].resetAfter !== null) {
    if (typeof resetAfter !== 'boolean') throw new RangeError(`${where}: resetAfter must be true or false, received ${describe(resetAfter)}`);
    return kinds.find((k) => CELLS[k].resetAfter === resetAfter)!;
  }
  const kind = kinds.find((k) => CELLS[k].nonlinearity === nonlinearity);
  if (!kind) {
    const accepted = kinds.map((k) => `'${CELLS[k].nonlinearity}'`).join(' or ');
    throw new RangeError(`${where}: nonlinearity must be ${accepted}, received '${String(nonlinearity)}'`);
  }
  return kind;
}

/**
 * The PyTorch names of one direction's parameters of layer k: weight_ih_l{k}{_reverse}, ...
 * (null = no layer: the one-step cells, weight_ih, ...). null for a parameter the options leave out.
 */
export function parameterNames(
  kind: CellKind, layer: number | null, reverse: boolean, o: { bias: boolean; projSize: number },
): { wIh: string; wHh: string; bIh: string | null; bHh: string | null; wHr: string | null } {
  const sfx = layer === null ? '' : `_l${layer}${reverse ? '_reverse' : ''}`;
  return {
    wIh: `weight_ih${sfx}`,
    wHh: `weight_hh${sfx}`,
    bIh: o.bias ? `bias_ih${sfx}` : null,
    bHh: o.bias ? `bias_hh${sfx}` : null,
    wHr: o.projSize > 0 && CELLS[kind].projection ? `weight_hr${sfx}` : null,
  };
}
