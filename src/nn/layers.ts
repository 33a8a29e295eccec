// Layers with PyTorch's semantics and parameter names.
import {
  type CellKind, type ModuleName, type RecurrentActivation, CELLS, HARD_SIGMOID_DEFAULTS, RECURRENT_ACTIVATIONS, SIGMOID,
  cellKindOf, checkRecurrentActivation, gateCount, hasCellState, modulesWhere, parameterNames,
} from '../backends/cells.js';
import { type NamedTensor } from '../io/safetensors.js';
import { dropout, embedding, linear, reshape, shapeError, transpose01 } from '../core/ops.js';
import { type DirectionWeights, type RecurrentResult, recurrentForward, recurrentForwardAsync } from './recurrent.js';
import { Rng, defaultRng } from '../core/random.js';
import { Tensor, formatShape, isGradEnabled, shapeSize, withGradMode } from '../core/tensor.js';
import { checkFinite } from '../core/config.js';

/** Named tensors with PyTorch parameter names, as in `state_dict()`. */
export type StateDict = Map<string, NamedTensor>;

/**
 * Base of every layer: named parameters and submodules, `stateDict` / `loadStateDict` with PyTorch
 * names, train and eval modes.
 */
export abstract class Module {
  /** True in training mode (dropout active), false after `eval()`. */
  training = true;
  private readonly ownParameters = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  /** Adds a trainable tensor under a PyTorch parameter name (e.g. `weight_ih_l0`). */
  protected registerParameter(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    this.ownParameters.set(name, t);
    return t;
  }

  /** Adds a submodule; its parameters' names get the prefix `name.`. */
  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** Every parameter with its PyTorch-style dotted name, in registration order. */
  namedParameters(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [name, t] of this.ownParameters) out.push([prefix + name, t]);
    for (const [name, child] of this.children) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  /** Every parameter, in registration order (what an optimizer takes). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Number of trainable numbers. */
  parameterCount(): number {
    return this.parameters().reduce((s, t) => s + t.size, 0);
  }

  /** Training mode (or eval mode with `false`), for this module and every submodule. */
  train(on = true): this {
    this.training = on;
    for (const child of this.children.values()) child.train(on);
    return this;
  }

  /** Eval mode: dropout off. */
  eval(): this {
    return this.train(false);
  }

  /** Sets the gradient of every parameter to zeros. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** A copy of every parameter under its PyTorch name. */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [name, t] of this.namedParameters()) out.set(name, { shape: [...t.shape], data: t.data.slice() });
    return out;
  }

  /**
   * Loads parameters by name. Every name and shape is checked first and all problems are
   * reported together (missing, unexpected, mis-shaped); nothing is changed unless all is well.
   * With strict = false, missing and unexpected names are allowed (shapes are still checked).
   */
  loadStateDict(state: StateDict | Record<string, NamedTensor>, options: { strict?: boolean } = {}): void {
    const strict = options.strict ?? true;
    const given = state instanceof Map ? state : new Map(Object.entries(state));
    const own = new Map(this.namedParameters());
    const problems: string[] = [];
    const missing = [...own.keys()].filter((k) => !given.has(k));
    const unexpected = [...given.keys()].filter((k) => !own.has(k));
    if (strict && missing.length) problems.push(`missing: ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected: ${unexpected.join(', ')}`);
    for (const [name, t] of own) {
      const v = given.get(name);
      if (!v) continue;
      const same = v.shape.length === t.shape.length && v.shape.every((d, i) => d === t.shape[i]);
      if (!same || v.data.length !== t.size) {
        problems.push(`${name} has shape ${formatShape(v.shape)}, expected ${formatShape(t.shape)}`);
      }
    }
    if (problems.length) throw new Error(`loadStateDict(${this.constructor.name}): ${problems.join('; ')}`);
    for (const [name, t] of own) {
      const v = given.get(name);
      if (v) t.data.set(v.data);
    }
  }
}

/** PyTorch's default init: U(-bound, bound). */
function uniformTensor(shape: number[], bound: number, rng: Rng): Tensor {
  const data = new Float32Array(shapeSize(shape));
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform(-bound, bound);
  return new Tensor(data, shape);
}

function checkPositiveInt(where: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new RangeError(`${where}: ${name} must be a positive integer, received ${String(v)}`);
  }
  return v;
}

/** Options of `Linear`: whether it has a bias, and the random source of its initial weights. */
export interface LinearOptions { bias?: boolean; rng?: Rng }

/** y = x W^T + b. Parameters: weight [out, in], bias [out]. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: LinearOptions = {}) {
    super();
    checkPositiveInt('Linear', 'inFeatures', inFeatures);
    checkPositiveInt('Linear', 'outFeatures', outFeatures);
    const rng = options.rng ?? defaultRng();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.registerParameter('weight', uniformTensor([outFeatures, inFeatures], bound, rng));
    this.bias = options.bias === false ? null : this.registerParameter('bias', uniformTensor([outFeatures], bound, rng));
  }

  // x [..., in] -> [..., out]
  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor) || x.shape[x.ndim - 1] !== this.inFeatures) {
      throw shapeError('Linear.forward', 'x', `[..., ${this.inFeatures}]`, x instanceof Tensor ? x.shape : String(x));
    }
    checkFinite('Linear.forward', 'x', x);
    return linear(x, this.weight, this.bias);
  }
}

/**
 * Options of `Embedding`: the padding id (its row gets no gradient), and the random source of its
 * initial weights.
 */
export interface EmbeddingOptions { paddingIdx?: number | null; rng?: Rng }

/** Lookup table. Parameter: weight [num, dim], initialised N(0, 1) (the paddingIdx row zero). */
export class Embedding extends Module {
  readonly weight: Tensor;
  readonly paddingIdx: number | null;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, options: EmbeddingOptions = {}) {
    super();
    checkPositiveInt('Embedding', 'numEmbeddings', numEmbeddings);
    checkPositiveInt('Embedding', 'embeddingDim', embeddingDim);
    const rng = options.rng ?? defaultRng();
    const data = new Float32Array(numEmbeddings * embeddingDim);
    for (let i = 0; i < data.length; i++) data[i] = rng.normal();
    this.paddingIdx = options.paddingIdx ?? null;
    if (this.paddingIdx !== null) data.fill(0, this.paddingIdx * embeddingDim, (this.paddingIdx + 1) * embeddingDim);
    this.weight = this.registerParameter('weight', new Tensor(data, [numEmbeddings, embeddingDim]));
  }

  // ids [*] (shape given, default [ids.length]) -> [*, dim]
  forward(ids: ArrayLike<number>, shape: readonly number[] = [ids.length]): Tensor {
    return embedding(this.weight, ids, shape, this.paddingIdx);
  }
}

/**
 * Zeroes each element with probability p in training and scales the rest by 1 / (1 - p); the
 * identity in eval mode (PyTorch's nn.Dropout).
 */
export class Dropout extends Module {
  private readonly rng: Rng;

  constructor(readonly p = 0.5, options: { rng?: Rng } = {}) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), received ${p}`);
    this.rng = options.rng ?? defaultRng();
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.rng);
  }
}

/** Modules applied in order; each must take and return one Tensor. */
export class Sequential extends Module {
  private readonly layers: Array<Module & { forward(x: Tensor): Tensor }>;

  constructor(...layers: Array<Module & { forward(x: Tensor): Tensor }>) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => this.registerModule(String(i), m));
  }

  forward(x: Tensor): Tensor {
    return this.layers.reduce((h, m) => m.forward(h), x);
  }
}

/** Options of the `RNN`, `LSTM` and `GRU` layers (PyTorch's constructor arguments in camelCase). */
export interface RNNOptions {
  inputSize: number;
  hiddenSize: number;
  numLayers?: number;
  bias?: boolean;
  batchFirst?: boolean;
  dropout?: number;
  bidirectional?: boolean;
  /** RNN only: 'tanh' (default) or 'relu'. */
  nonlinearity?: 'tanh' | 'relu';
  /** LSTM only: projection size (PyTorch proj_size), 0 = none. */
  projSize?: number;
  /**
   * GRU only: true (default) = PyTorch's reset-after form, n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
   * false = the reset-before form (Keras reset_after=False, the TF.js GRU, ONNX
   * linear_before_reset=0), n = tanh(W_in x + b_in + W_hn (r * h) + b_hn).
   */
  resetAfter?: boolean;
  /**
   * LSTM and GRU: the gate activation, 'sigmoid' (default, PyTorch) or 'hardSigmoid' =
   * clamp(alpha * v + beta, 0, 1) with hardSigmoidAlpha / hardSigmoidBeta.
   */
  recurrentActivation?: 'sigmoid' | 'hardSigmoid';
  /** The hard sigmoid's slope alpha: 0.2 (default: TF.js, Keras 2, ONNX); Keras 3 uses 1/6. */
  hardSigmoidAlpha?: number;
  /** The hard sigmoid's offset beta: 0.5 (default). */
  hardSigmoidBeta?: number;
  rng?: Rng;
}

/**
 * The gate activation a layer's options ask for, checked: `where` names the layer. Options a
 * cell does not take (resetAfter outside GRU, a hard sigmoid on RNN, alpha without hardSigmoid)
 * are refused naming the option.
 */
function gateActivationOf(where: string, cell: CellKind, o: Pick<RNNOptions, 'recurrentActivation' | 'hardSigmoidAlpha' | 'hardSigmoidBeta' | 'resetAfter'>): RecurrentActivation {
  if (o.resetAfter !== undefined && CELLS[cell].resetAfter === null) {
    throw new RangeError(`${where}: resetAfter is only for GRU, received resetAfter=${String(o.resetAfter)}`);
  }
  const name = o.recurrentActivation ?? 'sigmoid';
  if (!(RECURRENT_ACTIVATIONS as readonly unknown[]).includes(name)) {
    throw new RangeError(`${where}: recurrentActivation must be one of ${RECURRENT_ACTIVATIONS.map((n) => `'${n}'`).join(', ')}, received ${typeof name === 'string' ? `'${name}'` : String(name)}`);
  }
  if (name === 'sigmoid') {
    for (const opt of ['hardSigmoidAlpha', 'hardSigmoidBeta'] as const) {
      if (o[opt] !== undefined) throw new RangeError(`${where}: ${opt} applies to recurrentActivation 'hardSigmoid', received ${opt}=${String(o[opt])} with recurrentActivation 'sigmoid'`);
    }
    if (o.recurrentActivation !== undefined && !CELLS[cell].gateActivation) {
      throw new RangeError(`${where}: recurrentActivation is only for ${modulesWhere((c) => c.gateActivation)}, received recurrentActivation 'sigmoid'`);
    }
    return SIGMOID;
  }
  return checkRecurrentActivation(where, cell, {
    kind: 'hardSigmoid', alpha: o.hardSigmoidAlpha ?? HARD_SIGMOID_DEFAULTS.alpha, beta: o.hardSigmoidBeta ?? HARD_SIGMOID_DEFAULTS.beta,
  });
}

/** Optional inputs of a recurrent layer's forward: initial states and per-sequence lengths. */
export interface RecurrentInput {
  /** [numLayers * D, B, R] initial hidden state; zeros when omitted. */
  h0?: Tensor | null;
  /** LSTM: [numLayers * D, B, H] initial cell state; zeros when omitted. */
  c0?: Tensor | null;
  /** [B] real length of each sequence (1..T, any order): packed-sequence semantics. */
  lengths?: ArrayLike<number> | null;
}

/** What a recurrent layer returns: the output of every step and the final states. */
export interface RecurrentOutput {
  /** [T, B, D * R] (or [B, T, D * R] when batchFirst; [T, D * R] for unbatched input). */
  output: Tensor;
  /** [numLayers * D, B, R] final hidden state of every layer and direction. */
  hN: Tensor;
  /** LSTM: [numLayers * D, B, H] final cell state; null otherwise. */
  cN: Tensor | null;
}

/** Stacked, optionally bidirectional RNN / LSTM / GRU over whole sequences (one fused op). */
export abstract class RecurrentBase extends Module {
  readonly cell: CellKind;
  /** The gate activation of LSTM and GRU (sigmoid unless the options ask for the hard sigmoid). */
  readonly recurrentActivation: RecurrentActivation;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly bidirectional: boolean;
  readonly projSize: number;
  /** weights[layer][direction] */
  readonly weights: DirectionWeights[][] = [];
  private readonly rng: Rng;

  protected constructor(cell: CellKind, o: RNNOptions) {
    super();
    const where = CELLS[cell].module;
    if (typeof o !== 'object' || o === null) throw new TypeError(`${where}: options must be an object like { inputSize, hiddenSize }`);
    this.cell = cell;
    this.recurrentActivation = gateActivationOf(where, cell, o);
    this.inputSize = checkPositiveInt(where, 'inputSize', o.inputSize);
    this.hiddenSize = checkPositiveInt(where, 'hiddenSize', o.hiddenSize);
    this.numLayers = checkPositiveInt(where, 'numLayers', o.numLayers ?? 1);
    this.bias = o.bias ?? true;
    this.batchFirst = o.batchFirst ?? false;
    this.dropout = o.dropout ?? 0;
    if (!(this.dropout >= 0 && this.dropout < 1)) throw new RangeError(`${where}: dropout must be in [0, 1), received ${o.dropout}`);
    this.bidirectional = o.bidirectional ?? false;
    this.projSize = o.projSize ?? 0;
    if (!Number.isInteger(this.projSize) || this.projSize < 0) throw new RangeError(`${where}: projSize must be a non-negative integer, received ${o.projSize}`);
    if (this.projSize > 0 && !CELLS[cell].projection) throw new RangeError(`${where}: projSize is only supported by ${modulesWhere((c) => c.projection)}`);
    if (this.projSize >= this.hiddenSize) throw new RangeError(`${where}: projSize must be smaller than hiddenSize (${this.hiddenSize}), received ${this.projSize}`);
    this.rng = o.rng ?? defaultRng();
    const G = gateCount(cell) * this.hiddenSize;
    const R = this.projSize || this.hiddenSize;
    const D = this.bidirectional ? 2 : 1;
    const bound = 1 / Math.sqrt(this.hiddenSize);
    for (let l = 0; l < this.numLayers; l++) {
      const I = l === 0 ? this.inputSize : R * D;
      const layer: DirectionWeights[] = [];
      for (let d = 0; d < D; d++) {
        const names = parameterNames(cell, l, d === 1, this);
        const p = (name: string | null, shape: number[]) => (name === null ? null : this.registerParameter(name, uniformTensor(shape, bound, this.rng)));
        const wIh = p(names.wIh, [G, I])!;
        const wHh = p(names.wHh, [G, R])!;
        const bIh = p(names.bIh, [G]);
        const bHh = p(names.bHh, [G]);
        const wHr = p(names.wHr, [this.projSize, this.hiddenSize]);
        layer.push({ wIh, wHh, bIh, bHh, wHr });
      }
      this.weights.push(layer);
    }
  }

  private get name(): string {
    return CELLS[this.cell].module;
  }

  /** GRU: false for the reset-before form; null for the other layers. */
  get resetAfter(): boolean | null {
    return CELLS[this.cell].resetAfter;
  }

  /**
   * The options that are not PyTorch's (resetAfter false, a hard sigmoid), as the strings a
   * safetensors file's metadata keeps; empty for a layer PyTorch can build.
   */
  cellOptions(): Record<string, string> {
    const out: Record<string, string> = {};
    if (CELLS[this.cell].resetAfter === false) out.resetAfter = 'false';
    const a = this.recurrentActivation;
    if (a.kind === 'hardSigmoid') {
      out.recurrentActivation = 'hardSigmoid';
      out.hardSigmoidAlpha = String(a.alpha);
      out.hardSigmoidBeta = String(a.beta);
    }
    return out;
  }

  /** Runs the whole sequence. x: [T, B, inputSize] ([B, T, inputSize] when batchFirst, or [T, inputSize] unbatched). */
  forward(x: Tensor, state: RecurrentInput = {}): RecurrentOutput {
    const call = this.prepare(x, state);
    return this.finish(call, recurrentForward(call.cfg, call.xt, call.h0, call.c0, this.weights, call.lengths));
  }

  /**
   * The same as forward, with the sequence kernels run off the main thread where the backend
   * can (native): a server's event loop keeps running during long inference.
   *
   * Any number of calls may overlap, with each other and with synchronous work on the main
   * thread or in worker_threads; each gives bitwise the result it gives alone. The call reads the
   * weights as they are when it is made (a copy): an optimizer step, loadStateDict or a training
   * pass that changes them while it runs changes neither its output nor the gradients its backward
   * computes (they are those of the weights it read). Whether the result records a graph for
   * backward is decided when the call is made (noGrad / noGradAsync). x and the states are read
   * while the call runs: do not change their data until the promise settles.
   */
  async forwardAsync(x: Tensor, state: RecurrentInput = {}): Promise<RecurrentOutput> {
    const call = this.prepare(x, state);
    const recording = isGradEnabled();
    const result = await recurrentForwardAsync(call.cfg, call.xt, call.h0, call.c0, this.weights, call.lengths);
    return withGradMode(recording, () => this.finish(call, result));
  }

  /** Checks the arguments and brings them to the kernels' time-major batched form. */
  private prepare(x: Tensor, state: RecurrentInput) {
    const where = `${this.name}.forward`;
    if (!(x instanceof Tensor)) throw new TypeError(`${where}: x must be a Tensor, received ${x === null ? 'null' : typeof x}`);
    const layout = this.batchFirst ? '[B, T, inputSize]' : '[T, B, inputSize]';
    const unbatched = x.ndim === 2;
    if ((x.ndim !== 3 && !unbatched) || x.shape[x.ndim - 1] !== this.inputSize) {
      throw shapeError(where, 'x', `${layout.replace('inputSize', String(this.inputSize))} or unbatched [T, ${this.inputSize}]`, x.shape);
    }
    checkFinite(where, 'x', x);
    const xt = unbatched ? reshape(x, [x.shape[0], 1, this.inputSize]) : this.batchFirst ? transpose01(x) : x;
    const [T, B] = xt.shape;
    if (T < 1 || B < 1) throw shapeError(where, 'x', 'with at least one time step and one sequence', x.shape);
    const D = this.bidirectional ? 2 : 1;
    const R = this.projSize || this.hiddenSize;
    const h0 = this.checkState(where, 'h0', state.h0, [this.numLayers * D, B, R], unbatched);
    const withC = hasCellState(this.cell);
    const c0 = withC ? this.checkState(where, 'c0', state.c0, [this.numLayers * D, B, this.hiddenSize], unbatched) : null;
    if (!withC && state.c0) throw new TypeError(`${where}: c0 is only for ${modulesWhere((c) => c.states.includes('c'))}`);
    const lengths = state.lengths ? checkLengths(where, state.lengths, B, T) : null;
    const cfg = { cell: this.cell, recurrentActivation: this.recurrentActivation, H: this.hiddenSize, P: this.projSize, numLayers: this.numLayers, bidirectional: this.bidirectional,
      dropout: this.dropout, training: this.training, rng: this.rng };
    return { cfg, xt, h0, c0, lengths, unbatched, T, D, R };
  }

  /** Brings the kernels' results back to the caller's layout. */
  private finish(call: ReturnType<RecurrentBase['prepare']>, r: RecurrentResult): RecurrentOutput {
    const { unbatched, T, D, R } = call;
    if (unbatched) {
      return {
        output: reshape(r.output, [T, D * R]),
        hN: reshape(r.hN, [this.numLayers * D, R]),
        cN: r.cN ? reshape(r.cN, [this.numLayers * D, this.hiddenSize]) : null,
      };
    }
    return { output: this.batchFirst ? transpose01(r.output) : r.output, hN: r.hN, cN: r.cN };
  }

  private checkState(where: string, arg: string, t: Tensor | null | undefined, shape: number[], unbatched: boolean): Tensor | null {
    if (t === null || t === undefined) return null;
    if (!(t instanceof Tensor)) throw new TypeError(`${where}: ${arg} must be a Tensor, received ${typeof t}`);
    const expected = unbatched ? [shape[0], shape[2]] : shape;
    if (t.ndim !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
      throw shapeError(where, arg, formatShape(expected) + (unbatched ? '' : ' [numLayers * directions, B, size]'), t.shape);
    }
    checkFinite(where, arg, t);
    return unbatched ? reshape(t, shape) : t;
  }
}

function checkLengths(where: string, lengths: ArrayLike<number>, B: number, T: number): Int32Array {
  if (lengths.length !== B) throw new RangeError(`${where}: lengths must have one entry per sequence (${B}), received ${lengths.length}`);
  const out = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const v = lengths[b];
    if (!Number.isInteger(v) || v < 1 || v > T) {
      throw new RangeError(`${where}: lengths[${b}] = ${v} is out of range, expected an integer in 1..${T} (the number of time steps)`);
    }
    out[b] = v;
  }
  return out;
}

/**
 * A multi-layer Elman RNN with tanh or relu (PyTorch's nn.RNN): x [T, B, input] (or batch-first)
 * -> output [T, B, D * hidden], hN [layers * D, B, hidden].
 */
export class RNN extends RecurrentBase {
  constructor(options: RNNOptions) {
    super(cellKindOf('RNN', 'RNN', options?.nonlinearity), options);
  }
}

/**
 * A multi-layer LSTM, optionally with projections (PyTorch's nn.LSTM): x [T, B, input] (or
 * batch-first) -> output [T, B, D * P], hN [layers * D, B, P], cN [layers * D, B, hidden], where
 * P = projSize || hidden.
 */
export class LSTM extends RecurrentBase {
  constructor(options: RNNOptions) {
    super('lstm', options);
  }
}

/**
 * A multi-layer GRU (PyTorch's nn.GRU, reset-after form; `resetAfter: false` for the reset-before
 * form of Keras / TF.js / ONNX linear_before_reset=0): x [T, B, input] (or batch-first)
 * -> output [T, B, D * hidden], hN [layers * D, B, hidden].
 */
export class GRU extends RecurrentBase {
  constructor(options: RNNOptions) {
    super(cellKindOf('GRU', 'GRU', 'tanh', options?.resetAfter ?? true), options);
  }
}

/** The layer class of each module of the cell table (backends/cells.ts). */
const LAYER_CLASSES: Record<ModuleName, new (options: RNNOptions) => RecurrentBase> = { LSTM, GRU, RNN };

/** The layer (LSTM, GRU in its form, or RNN with its nonlinearity) that runs cells of `kind`. */
export function recurrentLayer(kind: CellKind, options: Omit<RNNOptions, 'nonlinearity' | 'resetAfter'>): RecurrentBase {
  const spec = CELLS[kind];
  return new LAYER_CLASSES[spec.module]({
    ...options, nonlinearity: spec.nonlinearity ?? undefined, ...(spec.resetAfter !== null ? { resetAfter: spec.resetAfter } : {}),
  });
}

/**
 * Options of the single-step cells: bias, the plain RNN's nonlinearity, and the random source of
 * their initial weights.
 */
export interface CellOptions extends Pick<RNNOptions, 'resetAfter' | 'recurrentActivation' | 'hardSigmoidAlpha' | 'hardSigmoidBeta'> {
  bias?: boolean;
  nonlinearity?: 'tanh' | 'relu';
  rng?: Rng;
}

/** The state of a single-step cell. */
export interface CellState {
  /** [B, hiddenSize] */
  h: Tensor;
  /** LSTM: [B, hiddenSize]; null otherwise. */
  c: Tensor | null;
}

/** One time step of an RNN / LSTM / GRU (PyTorch's RNNCell / LSTMCell / GRUCell), same kernels as the layers. */
abstract class CellBase extends Module {
  /** The gate activation of LSTMCell and GRUCell. */
  readonly recurrentActivation: RecurrentActivation;
  readonly weightIh: Tensor;
  readonly weightHh: Tensor;
  readonly biasIh: Tensor | null;
  readonly biasHh: Tensor | null;
  private readonly rngCell: Rng;

  protected constructor(readonly cell: CellKind, readonly inputSize: number, readonly hiddenSize: number, options: CellOptions) {
    super();
    const kind = CELLS[cell].stepModule;
    checkPositiveInt(kind, 'inputSize', inputSize);
    checkPositiveInt(kind, 'hiddenSize', hiddenSize);
    this.recurrentActivation = gateActivationOf(kind, cell, options);
    this.rngCell = options.rng ?? defaultRng();
    const G = gateCount(cell) * hiddenSize;
    const bound = 1 / Math.sqrt(hiddenSize);
    const names = parameterNames(cell, null, false, { bias: options.bias !== false, projSize: 0 });
    const p = (name: string | null, shape: number[]) => (name === null ? null : this.registerParameter(name, uniformTensor(shape, bound, this.rngCell)));
    this.weightIh = p(names.wIh, [G, inputSize])!;
    this.weightHh = p(names.wHh, [G, hiddenSize])!;
    this.biasIh = p(names.bIh, [G]);
    this.biasHh = p(names.bHh, [G]);
  }

  // x [B, inputSize], state {h [B, H], c [B, H]} -> next state
  step(x: Tensor, state: Partial<CellState> | null = null): CellState {
    const where = `${CELLS[this.cell].stepModule}.step`;
    if (!(x instanceof Tensor) || x.ndim !== 2 || x.shape[1] !== this.inputSize) {
      throw shapeError(where, 'x', `[B, ${this.inputSize}]`, x instanceof Tensor ? x.shape : String(x));
    }
    checkFinite(where, 'x', x);
    const B = x.shape[0];
    const H = this.hiddenSize;
    const checkHidden = (arg: string, t: Tensor | null | undefined) => {
      if (!t) return null;
      if (!(t instanceof Tensor) || t.ndim !== 2 || t.shape[0] !== B || t.shape[1] !== H) {
        throw shapeError(where, arg, `[${B}, ${H}]`, t instanceof Tensor ? t.shape : String(t));
      }
      return reshape(t, [1, B, H]);
    };
    const h0 = checkHidden('state.h', state?.h);
    const c0 = hasCellState(this.cell) ? checkHidden('state.c', state?.c) : null;
    const r = recurrentForward(
      { cell: this.cell, recurrentActivation: this.recurrentActivation, H, P: 0, numLayers: 1, bidirectional: false, dropout: 0, training: this.training, rng: this.rngCell },
      reshape(x, [1, B, this.inputSize]), h0, c0,
      [[{ wIh: this.weightIh, wHh: this.weightHh, bIh: this.biasIh, bHh: this.biasHh, wHr: null }]], null,
    );
    return { h: reshape(r.hN, [B, H]), c: r.cN ? reshape(r.cN, [B, H]) : null };
  }
}

/**
 * One plain RNN step (PyTorch's nn.RNNCell, tanh or relu): x [B, input], h [B, hidden] -> h' [B,
 * hidden].
 */
export class RNNCell extends CellBase {
  constructor(inputSize: number, hiddenSize: number, options: CellOptions = {}) {
    super(cellKindOf('RNNCell', 'RNN', options.nonlinearity), inputSize, hiddenSize, options);
  }
}

/** One LSTM step (PyTorch's nn.LSTMCell): x [B, input], (h, c) [B, hidden] -> (h', c'). */
export class LSTMCell extends CellBase {
  constructor(inputSize: number, hiddenSize: number, options: CellOptions = {}) {
    super('lstm', inputSize, hiddenSize, options);
  }
}

/**
 * One GRU step (PyTorch's nn.GRUCell, reset-after form; `resetAfter: false` for the reset-before
 * form): x [B, input], h [B, hidden] -> h' [B, hidden].
 */
export class GRUCell extends CellBase {
  constructor(inputSize: number, hiddenSize: number, options: CellOptions = {}) {
    super(cellKindOf('GRUCell', 'GRU', 'tanh', options?.resetAfter ?? true), inputSize, hiddenSize, options);
  }
}

/** A single-step cell of any kind. */
export type StepCell = LSTMCell | GRUCell | RNNCell;
/** The one-step class of each module of the cell table. */
const STEP_CLASSES: Record<ModuleName, new (inputSize: number, hiddenSize: number, options: CellOptions) => StepCell> = {
  LSTM: LSTMCell, GRU: GRUCell, RNN: RNNCell,
};

/** The one-step cell (LSTMCell, GRUCell or RNNCell with its nonlinearity) of `kind`. */
export function stepCell(kind: CellKind, inputSize: number, hiddenSize: number, options: Omit<CellOptions, 'nonlinearity' | 'resetAfter'> = {}): StepCell {
  const spec = CELLS[kind];
  return new STEP_CLASSES[spec.module](inputSize, hiddenSize, {
    ...options, nonlinearity: spec.nonlinearity ?? undefined, ...(spec.resetAfter !== null ? { resetAfter: spec.resetAfter } : {}),
  });
}
