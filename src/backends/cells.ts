// The recurrent cells: one table holding every fact about each cell kind, and each cell's step
// equations, forward and backward, written once as the readable specification.
//
// Everything that needs a fact about a cell reads it here: validation (validate.ts), the reference
// backend's time loop (reference.ts), the wasm driver (wasm-core.ts), the layers (nn/layers.ts),
// the golden-case loader (io/golden.ts), the language model and the tests. The native addon keeps
// the same table (native/addon.cpp, kCells) and exports it as cellKinds(); test/native.test.ts
// checks it against this one. The wasm driver dispatches on the kind itself (wasm-core.ts).
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
  /** [G] W_hh h_{t-1} + b_hh (saved by forward, read again by backward). */
  hp: ArrayLike<number>;
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
}

/** What a backward step reads: the step as forward left it (xp is not needed). */
export type SavedStep = Omit<CellStep, 'xp'>;

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
  /** [R] out (zero on entry): dL/dh_{t-1} through paths other than W_hh (GRU: dh * z). */
  dhPrev: FloatArray;
}

/** One row of the cell table. */
export interface CellSpec {
  /** The numeric id of the native kernels (native/kernels.h CellId, addon.cpp kCells). */
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
  /** One step forward (see CellStep). */
  forward(s: CellStep): void;
  /** One step backward (see CellStepGrad); reads what forward wrote into s. */
  backward(s: SavedStep, g: CellStepGrad): void;
}

/** The logistic function 1 / (1 + e^-v). */
export const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
/** relu as PyTorch: NaN stays NaN. */
export const relu = (v: number): number => (v > 0 || Number.isNaN(v) ? v : 0);

// ---- LSTM, gates i, f, g, o ----
// forward:
//   i = sigmoid(xp_i + hp_i)   f = sigmoid(xp_f + hp_f)
//   g = tanh(xp_g + hp_g)      o = sigmoid(xp_o + hp_o)
//   c_t = f * c_{t-1} + i * g
//   h_t = o * tanh(c_t)                       (then h_t = W_hr h_t with a projection)
// backward (dh = dL/dh_t, dc = dL/dc_t from the later steps):
//   dc += dh * o * (1 - tanh(c_t)^2)
//   do = dh * tanh(c_t),  di = dc * g,  df = dc * c_{t-1},  dg = dc * i
//   dxp = dhp = [di * i(1-i), df * f(1-f), dg * (1-g^2), do * o(1-o)]
//   dc_{t-1} = dc * f
function lstmForward({ H, xp, hp, cPrev, gates, c, h }: CellStep): void {
  for (let j = 0; j < H; j++) {
    const ig = sigmoid(xp[j] + hp[j]);
    const fg = sigmoid(xp[H + j] + hp[H + j]);
    const gg = Math.tanh(xp[2 * H + j] + hp[2 * H + j]);
    const og = sigmoid(xp[3 * H + j] + hp[3 * H + j]);
    gates[j] = ig;
    gates[H + j] = fg;
    gates[2 * H + j] = gg;
    gates[3 * H + j] = og;
    const ct = fg * cPrev[j] + ig * gg;
    c[j] = ct;
    h[j] = og * Math.tanh(ct);
  }
}

function lstmBackward({ H, cPrev, gates, c }: SavedStep, { dh, dc, dxp, dhp }: CellStepGrad): void {
  for (let j = 0; j < H; j++) {
    const ig = gates[j];
    const fg = gates[H + j];
    const gg = gates[2 * H + j];
    const og = gates[3 * H + j];
    const tc = Math.tanh(c[j]);
    const dct = dc[j] + dh[j] * og * (1 - tc * tc);
    dxp[j] = dct * gg * ig * (1 - ig);
    dxp[H + j] = dct * cPrev[j] * fg * (1 - fg);
    dxp[2 * H + j] = dct * ig * (1 - gg * gg);
    dxp[3 * H + j] = dh[j] * tc * og * (1 - og);
    dc[j] = dct * fg;
  }
  dhp.set(dxp);
}

// ---- GRU, gates r, z, n ----
// forward:
//   r = sigmoid(xp_r + hp_r)   z = sigmoid(xp_z + hp_z)
//   n = tanh(xp_n + r * hp_n)                 (hp_n = W_hn h_{t-1} + b_hn: b_hn inside r * (.))
//   h_t = (1 - z) * n + z * h_{t-1}
// backward (dh = dL/dh_t):
//   dn = dh * (1 - z) * (1 - n^2)
//   dz = dh * (h_{t-1} - n) * z(1-z)
//   dr = dn * hp_n * r(1-r)
//   dxp = [dr, dz, dn]   dhp = [dr, dz, dn * r]   dh_{t-1} (direct) = dh * z
function gruForward({ H, xp, hp, hPrev, gates, h }: CellStep): void {
  for (let j = 0; j < H; j++) {
    const rg = sigmoid(xp[j] + hp[j]);
    const zg = sigmoid(xp[H + j] + hp[H + j]);
    const ng = Math.tanh(xp[2 * H + j] + rg * hp[2 * H + j]);
    gates[j] = rg;
    gates[H + j] = zg;
    gates[2 * H + j] = ng;
    h[j] = (1 - zg) * ng + zg * hPrev[j];
  }
}

function gruBackward({ H, hp, hPrev, gates }: SavedStep, { dh, dxp, dhp, dhPrev }: CellStepGrad): void {
  for (let j = 0; j < H; j++) {
    const rg = gates[j];
    const zg = gates[H + j];
    const ng = gates[2 * H + j];
    const dn = dh[j] * (1 - zg) * (1 - ng * ng);
    const dz = dh[j] * (hPrev[j] - ng) * zg * (1 - zg);
    const dr = dn * hp[2 * H + j] * rg * (1 - rg);
    dxp[j] = dr; dhp[j] = dr;
    dxp[H + j] = dz; dhp[H + j] = dz;
    dxp[2 * H + j] = dn; dhp[2 * H + j] = dn * rg;
    dhPrev[j] = dh[j] * zg;
  }
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
    projection: true, forward: lstmForward, backward: lstmBackward,
  },
  gru: {
    id: 1, module: 'GRU', stepModule: 'GRUCell', nonlinearity: null, gates: ['r', 'z', 'n'], states: ['h'],
    projection: false, forward: gruForward, backward: gruBackward,
  },
  rnn_tanh: {
    id: 2, module: 'RNN', stepModule: 'RNNCell', nonlinearity: 'tanh', gates: ['h'], states: ['h'], projection: false,
    forward: rnnForward(Math.tanh), backward: rnnBackward((dh, h) => dh * (1 - h * h)),
  },
  rnn_relu: {
    id: 3, module: 'RNN', stepModule: 'RNNCell', nonlinearity: 'relu', gates: ['h'], states: ['h'], projection: false,
    forward: rnnForward(relu), backward: rnnBackward((dh, h) => (h > 0 ? dh : 0)),
  },
} as const satisfies Record<string, CellSpec>;

/** A cell kind of the table: 'lstm', 'gru' (PyTorch's reset-after form), 'rnn_tanh', 'rnn_relu'. */
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
 * The cell kind of a PyTorch module name ('LSTM', 'GRU', 'RNN') and, for RNN, its nonlinearity;
 * throws naming `where` and the accepted values otherwise.
 */
export function cellKindOf(where: string, module: string, nonlinearity: string = 'tanh'): CellKind {
  const kinds = CELL_KINDS.filter((k) => CELLS[k].module === module);
  if (kinds.length === 0) throw new RangeError(`${where}: module must be one of ${MODULE_NAMES.join(', ')}, received ${String(module)}`);
  if (kinds.length === 1) return kinds[0];
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
