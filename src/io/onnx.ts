// ONNX models in and out, encoded and decoded with the ONNX protobuf schema (onnx-proto).
//
// Export: RNN / LSTM / GRU (stacked, bidirectional, optional initial states and per-sequence
// lengths), with an optional Embedding (Gather) in front and Linear (MatMul + Add) behind; Dropout
// is an identity at inference and is left out. The graph keeps PyTorch's layout: time-major
// x [T, B, F] (or token ids [T, B]), output [T, B, D * H] (or the Linear's [T, B, out]),
// h_n / c_n [numLayers * D, B, H].
//
// Import: graphs of that shape written by rnnkit or by torch.onnx.export; anything else is
// refused with one error naming the operator or attribute.
//
// GRU: PyTorch's reset-after form is linear_before_reset=1, the reset-before form (rnnkit's GRU
// with resetAfter: false) linear_before_reset=0 (b_ih = Wb, b_hh = Rb). LSTM and GRU gates:
// Sigmoid, or HardSigmoid with its alpha and beta (activation_alpha / activation_beta).
import onnxProto from 'onnx-proto';
import { type CellKind, type RecurrentActivation, CELLS, HARD_SIGMOID_DEFAULTS } from '../backends/cells.js';
import { Embedding, GRU, LSTM, Linear, Module, RNN, RecurrentBase } from '../nn/layers.js';
import { LanguageModel, RecurrentModel } from '../nn/models.js';

const { onnx } = onnxProto;
type NodeP = InstanceType<typeof onnx.NodeProto>;
type GraphP = InstanceType<typeof onnx.GraphProto>;
type AttrP = InstanceType<typeof onnx.AttributeProto>;

/** A malformed or unsupported ONNX file. */
export class OnnxError extends Error {
  override name = 'OnnxError';
}

/** Options of toOnnx: which optional graph inputs to add. */
export interface OnnxExportOptions {
  /** Add graph inputs h0 (and c0 for LSTM) [numLayers * D, B, H] (default false: zeros). */
  initialState?: boolean;
  /** Add graph input `lengths` (int32 [B], each 1..T): ONNX sequence_lens, PyTorch's packed sequences. */
  lengths?: boolean;
  /** Graph name (default 'rnnkit'). */
  name?: string;
}

/** What toOnnx writes: a recurrent stack, alone or between an Embedding and a Linear head. */
export type OnnxExportable = RecurrentBase | LanguageModel | RecurrentModel;

const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

// Gate blocks: PyTorch LSTM (i, f, g, o) -> ONNX (i, o, f, c); PyTorch GRU (r, z, n) -> ONNX (z, r, h).
const LSTM_TO_ONNX = [0, 3, 1, 2];
const GRU_TO_ONNX = [1, 0, 2];

function gateOrder(cell: CellKind): number[] {
  return cell === 'lstm' ? LSTM_TO_ONNX : CELLS[cell].module === 'GRU' ? GRU_TO_ONNX : [0];
}

/** rows [G, cols] with G = blocks.length * H: blocks reordered by `order` (out block k = in block order[k]). */
function permuteBlocks(src: Float32Array, H: number, cols: number, order: number[], inverse = false): Float32Array {
  const out = new Float32Array(src.length);
  const n = H * cols;
  order.forEach((from, to) => {
    if (inverse) out.set(src.subarray(to * n, (to + 1) * n), from * n);
    else out.set(src.subarray(from * n, (from + 1) * n), to * n);
  });
  return out;
}

function littleEndianBytes(data: Float32Array | Int32Array | BigInt64Array): Uint8Array {
  const bytes = new Uint8Array(data.length * data.BYTES_PER_ELEMENT);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float32Array) view.setFloat32(i * 4, data[i], true);
    else if (data instanceof Int32Array) view.setInt32(i * 4, data[i], true);
    else view.setBigInt64(i * 8, data[i], true);
  }
  return bytes;
}

type Dim = number | string;

class GraphBuilder {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  readonly inputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  readonly outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private count = 0;

  fresh(prefix: string): string {
    return `${prefix}_${this.count++}`;
  }

  initializer(name: string, dims: readonly number[], data: Float32Array | Int32Array | BigInt64Array): string {
    const dataType = data instanceof Float32Array ? FLOAT : data instanceof Int32Array ? INT32 : INT64;
    this.initializers.push(onnx.TensorProto.create({ name, dims: [...dims], dataType, rawData: littleEndianBytes(data) }));
    return name;
  }

  ints(values: number[]): string {
    return this.initializer(this.fresh('const'), [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  /** attrs: number = INT, number[] = INTS, Float32Array = FLOATS, string(s) = STRING(S). */
  node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, number | number[] | Float32Array | string | string[]> = {}): string[] {
    const attribute = Object.entries(attrs).map(([name, v]) => {
      if (typeof v === 'number') return onnx.AttributeProto.create({ name, type: ATTR.INT, i: v });
      if (v instanceof Float32Array) return onnx.AttributeProto.create({ name, type: ATTR.FLOATS, floats: Array.from(v) });
      if (typeof v === 'string') return onnx.AttributeProto.create({ name, type: ATTR.STRING, s: new TextEncoder().encode(v) });
      if (v.length > 0 && typeof v[0] === 'string') {
        return onnx.AttributeProto.create({ name, type: ATTR.STRINGS, strings: (v as string[]).map((s) => new TextEncoder().encode(s)) });
      }
      return onnx.AttributeProto.create({ name, type: ATTR.INTS, ints: v as number[] });
    });
    this.nodes.push(onnx.NodeProto.create({ opType, input: inputs, output: outputs, name: this.fresh(opType), attribute }));
    return outputs;
  }

  value(name: string, elemType: number, dims: Dim[]): InstanceType<typeof onnx.ValueInfoProto> {
    const dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
    return onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType, shape: { dim } } } });
  }
}

function exportRecurrent(g: GraphBuilder, rnn: RecurrentBase, x: string, options: OnnxExportOptions, outputName: string | null): { output: string } {
  if (rnn.projSize > 0) throw new OnnxError(`toOnnx: LSTM projSize (${rnn.projSize}) cannot be exported: ONNX's LSTM operator has no projection`);
  const D = rnn.bidirectional ? 2 : 1;
  const H = rnn.hiddenSize;
  const op = CELLS[rnn.cell].module;
  const order = gateOrder(rnn.cell);
  const G = order.length * H;
  const L = rnn.numLayers;
  const prefix = op.toLowerCase();
  if (rnn.batchFirst) x = g.node('Transpose', [x], [g.fresh('x_time_major')], { perm: [1, 0, 2] })[0];
  const hN: string[] = [];
  const cN: string[] = [];
  for (let l = 0; l < L; l++) {
    const I = l === 0 ? rnn.inputSize : D * H;
    const W = new Float32Array(D * G * I);
    const R = new Float32Array(D * G * H);
    const B = new Float32Array(D * 2 * G);
    for (let d = 0; d < D; d++) {
      const w = rnn.weights[l][d];
      W.set(permuteBlocks(w.wIh.data, H, I, order), d * G * I);
      R.set(permuteBlocks(w.wHh.data, H, H, order), d * G * H);
      if (w.bIh && w.bHh) {
        B.set(permuteBlocks(w.bIh.data, H, 1, order), d * 2 * G);
        B.set(permuteBlocks(w.bHh.data, H, 1, order), d * 2 * G + G);
      }
    }
    const inputs = [
      x,
      g.initializer(`${prefix}.W_l${l}`, [D, G, I], W),
      g.initializer(`${prefix}.R_l${l}`, [D, G, H], R),
      rnn.bias ? g.initializer(`${prefix}.B_l${l}`, [D, 2 * G], B) : '',
      options.lengths ? 'lengths' : '',
    ];
    const layerState = (name: string) => g.node('Slice', [name, g.ints([l * D]), g.ints([(l + 1) * D]), g.ints([0])], [g.fresh(`${name}_l${l}`)])[0];
    if (options.initialState) inputs.push(layerState('h0'));
    if (options.initialState && rnn.cell === 'lstm') inputs.push(layerState('c0'));
    while (inputs[inputs.length - 1] === '') inputs.pop();
    const outs = [g.fresh(`${prefix}_Y_l${l}`), L === 1 ? 'h_n' : g.fresh(`${prefix}_Yh_l${l}`)];
    if (rnn.cell === 'lstm') outs.push(L === 1 ? 'c_n' : g.fresh(`${prefix}_Yc_l${l}`));
    const attrs: Record<string, number | string | string[] | Float32Array> = { hidden_size: H, direction: D === 2 ? 'bidirectional' : 'forward' };
    // GRU: PyTorch's reset-after form is linear_before_reset=1, the reset-before form 0
    if (rnn.cell === 'gru') attrs.linear_before_reset = 1;
    if (rnn.cell === 'gru_reset_before') attrs.linear_before_reset = 0;
    if (rnn.cell === 'rnn_tanh' || rnn.cell === 'rnn_relu') attrs.activations = new Array(D).fill(rnn.cell === 'rnn_relu' ? 'Relu' : 'Tanh');
    const ra = rnn.recurrentActivation;
    if (ra.kind === 'hardSigmoid') {
      // per direction: f (the gates) HardSigmoid with its alpha and beta, then Tanh (LSTM: g, h; GRU: h)
      const perDirection = op === 'LSTM' ? ['HardSigmoid', 'Tanh', 'Tanh'] : ['HardSigmoid', 'Tanh'];
      attrs.activations = Array.from({ length: D }, () => perDirection).flat();
      attrs.activation_alpha = new Float32Array(D).fill(ra.alpha);
      attrs.activation_beta = new Float32Array(D).fill(ra.beta);
    }
    g.node(op, inputs, outs, attrs);
    hN.push(outs[1]);
    if (rnn.cell === 'lstm') cN.push(outs[2]);
    // Y [T, D, B, H] -> [T, B, D, H] -> [T, B, D * H]
    const yt = g.node('Transpose', [outs[0]], [g.fresh(`${prefix}_Yt_l${l}`)], { perm: [0, 2, 1, 3] })[0];
    const last = l === L - 1 && !rnn.batchFirst;
    x = g.node('Reshape', [yt, g.ints([0, 0, -1])], [last && outputName ? outputName : g.fresh(`${prefix}_out_l${l}`)])[0];
  }
  if (rnn.batchFirst) x = g.node('Transpose', [x], [outputName ?? g.fresh('output_batch_first')], { perm: [1, 0, 2] })[0];
  if (L > 1) {
    g.node('Concat', hN, ['h_n'], { axis: 0 });
    if (rnn.cell === 'lstm') g.node('Concat', cN, ['c_n'], { axis: 0 });
  }
  return { output: x };
}

/**
 * The module as an ONNX model (opset 14): RNN / LSTM / GRU, or a LanguageModel / RecurrentModel
 * (Embedding -> recurrent stack -> Linear). Inputs `x` (features [T, B, F], or int64 token ids
 * [T, B] with an embedding), `h0` / `c0` and `lengths` when asked for; outputs `output`, `h_n`
 * (and `c_n` for LSTM), in PyTorch's layout. Dropout is left out (inference).
 */
export function toOnnx(module: OnnxExportable, options: OnnxExportOptions = {}): Uint8Array {
  const g = new GraphBuilder();
  const parts = module instanceof RecurrentBase ? { embedding: null, rnn: module, fc: null }
    : module instanceof LanguageModel || module instanceof RecurrentModel ? { embedding: module.embedding, rnn: module.rnn, fc: module.fc }
      : null;
  if (!parts) {
    const received = module === null || typeof module !== 'object' ? String(module) : (module as object).constructor.name;
    throw new TypeError(`toOnnx: module must be an RNN, LSTM, GRU, LanguageModel or RecurrentModel, received ${received}`);
  }
  const { embedding, rnn, fc } = parts;
  const D = rnn.bidirectional ? 2 : 1;
  const H = rnn.hiddenSize;
  const [T, B] = rnn.batchFirst ? ['B', 'T'] : ['T', 'B'];
  let x = 'x';
  if (embedding) {
    g.inputs.push(g.value('x', INT64, ['T', 'B']));
    x = g.node('Gather', [g.initializer('embedding.weight', embedding.weight.shape, embedding.weight.data), 'x'], [g.fresh('embedded')])[0];
  } else {
    g.inputs.push(g.value('x', FLOAT, [T, B, rnn.inputSize]));
  }
  const stateShape: Dim[] = [rnn.numLayers * D, 'B', H];
  if (options.initialState) {
    g.inputs.push(g.value('h0', FLOAT, stateShape));
    if (rnn.cell === 'lstm') g.inputs.push(g.value('c0', FLOAT, stateShape));
  }
  if (options.lengths) g.inputs.push(g.value('lengths', INT32, ['B']));
  const { output } = exportRecurrent(g, rnn, x, options, fc ? null : 'output');
  if (fc) {
    const [out, inp] = fc.weight.shape;
    const wt = new Float32Array(out * inp);
    for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) wt[i * out + o] = fc.weight.data[o * inp + i];
    const mm = g.node('MatMul', [output, g.initializer('fc.weight_t', [inp, out], wt)], [fc.bias ? g.fresh('fc_matmul') : 'output'])[0];
    if (fc.bias) g.node('Add', [mm, g.initializer('fc.bias', [out], fc.bias.data)], ['output']);
  }
  const outDim = fc ? fc.outFeatures : D * H;
  g.outputs.push(g.value('output', FLOAT, [T, B, outDim]));
  g.outputs.push(g.value('h_n', FLOAT, stateShape));
  if (rnn.cell === 'lstm') g.outputs.push(g.value('c_n', FLOAT, stateShape));
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'rnnkit',
    opsetImport: [{ domain: '', version: 14 }],
    graph: { name: options.name ?? 'rnnkit', node: g.nodes, initializer: g.initializers, input: g.inputs, output: g.outputs },
  });
  return onnx.ModelProto.encode(model).finish();
}

// ---------------------------------------------------------------- import

interface InitTensor { dims: number[]; data: Float32Array | null; ints: number[] | null }

function readTensor(t: InstanceType<typeof onnx.TensorProto>): InitTensor {
  const dims = t.dims.map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const raw = t.rawData && t.rawData.length ? t.rawData : null;
  const where = `initializer '${t.name}'`;
  if (t.dataLocation === 1) throw new OnnxError(`${where} is stored in an external file, which is not supported`);
  if (t.dataType === FLOAT) {
    if (raw) {
      if (raw.length !== n * 4) throw new OnnxError(`${where}: ${raw.length} bytes of data, expected ${n * 4} for shape [${dims.join(', ')}]`);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat32(i * 4, true);
      return { dims, data, ints: null };
    }
    if (t.floatData.length !== n) throw new OnnxError(`${where}: ${t.floatData.length} values, expected ${n} for shape [${dims.join(', ')}]`);
    return { dims, data: Float32Array.from(t.floatData), ints: null };
  }
  if (t.dataType === INT64 || t.dataType === INT32) {
    const size = t.dataType === INT64 ? 8 : 4;
    if (raw) {
      if (raw.length !== n * size) throw new OnnxError(`${where}: ${raw.length} bytes of data, expected ${n * size}`);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const ints = Array.from({ length: n }, (_, i) => (size === 8 ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true)));
      return { dims, data: null, ints };
    }
    const src = t.dataType === INT64 ? t.int64Data : t.int32Data;
    return { dims, data: null, ints: src.map(Number) };
  }
  return { dims, data: null, ints: null };
}

const GLUE_OPS = new Set([
  'Transpose', 'Reshape', 'Squeeze', 'Unsqueeze', 'Concat', 'Slice', 'Constant', 'Shape', 'Expand',
  'ConstantOfShape', 'Identity', 'Cast', 'Dropout',
]);

function attrMap(node: NodeP): Map<string, AttrP> {
  return new Map(node.attribute.map((a) => [String(a.name), a as AttrP]));
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

interface RecurrentNodeInfo {
  cell: CellKind;
  H: number;
  D: number;
  I: number;
  /** PyTorch-layout weights per direction */
  dirs: Array<{ wIh: Float32Array; wHh: Float32Array; bIh: Float32Array | null; bHh: Float32Array | null }>;
  /** The gate activation (LSTM, GRU). */
  act: RecurrentActivation;
}

function readRecurrentNode(node: NodeP, inits: Map<string, InitTensor>): RecurrentNodeInfo {
  const op = node.opType;
  const where = `${op} '${node.name || node.output[0]}'`;
  const attrs = attrMap(node);
  for (const name of attrs.keys()) {
    if (!['hidden_size', 'direction', 'activations', 'linear_before_reset', 'layout', 'input_forget', 'clip', 'activation_alpha', 'activation_beta'].includes(name)) {
      throw new OnnxError(`${where}: attribute '${name}' is not supported`);
    }
  }
  if (attrs.has('clip')) throw new OnnxError(`${where}: clip is not supported`);
  if (Number(attrs.get('layout')?.i ?? 0) !== 0) throw new OnnxError(`${where}: layout=1 (batch-first) is not supported`);
  if (Number(attrs.get('input_forget')?.i ?? 0) !== 0) throw new OnnxError(`${where}: input_forget=1 (coupled input and forget gates) is not supported`);
  const direction = attrs.has('direction') ? text(attrs.get('direction')!.s) : 'forward';
  if (direction !== 'forward' && direction !== 'bidirectional') throw new OnnxError(`${where}: direction '${direction}' is not supported (expected forward or bidirectional)`);
  const D = direction === 'bidirectional' ? 2 : 1;
  const activations = (attrs.get('activations')?.strings ?? []).map(text);
  let cell: CellKind;
  let act: RecurrentActivation = { kind: 'sigmoid' };
  if (op === 'LSTM' || op === 'GRU') {
    if (op === 'LSTM') cell = 'lstm';
    else {
      // linear_before_reset=1: PyTorch's reset-after GRU; 0 (the default): the reset-before form
      const lbr = Number(attrs.get('linear_before_reset')?.i ?? 0);
      if (lbr !== 0 && lbr !== 1) throw new OnnxError(`${where}: linear_before_reset must be 0 or 1, received ${lbr}`);
      cell = lbr === 1 ? 'gru' : 'gru_reset_before';
    }
    act = gateActivationOf(where, op, activations, attrs);
  } else {
    if (attrs.has('activation_alpha') || attrs.has('activation_beta')) throw new OnnxError(`${where}: activation_alpha / activation_beta are not supported for RNN (Tanh or Relu)`);
    const kinds = new Set(activations.length ? activations : ['Tanh']);
    if (kinds.size !== 1 || !(kinds.has('Tanh') || kinds.has('Relu'))) {
      throw new OnnxError(`${where}: activations ${[...kinds].join(', ')} are not supported (expected Tanh or Relu, the same for both directions)`);
    }
    cell = kinds.has('Relu') ? 'rnn_relu' : 'rnn_tanh';
  }
  const order = gateOrder(cell);
  const weight = (k: number, label: string): InitTensor | null => {
    const name = node.input[k];
    if (!name) return null;
    const t = inits.get(name);
    if (!t || !t.data) throw new OnnxError(`${where}: input ${label} ('${name}') must be a float32 initializer (weights computed in the graph are not supported)`);
    return t;
  };
  const W = weight(1, 'W');
  const R = weight(2, 'R');
  if (!W || !R) throw new OnnxError(`${where}: inputs W and R are required`);
  const Bt = weight(3, 'B');
  if (op === 'LSTM' && node.input[7]) throw new OnnxError(`${where}: peephole weights (input P) are not supported`);
  const H = Number(attrs.get('hidden_size')?.i ?? R.dims[2]);
  const G = order.length * H;
  const I = W.dims[2];
  const shapeOk = (t: InitTensor, dims: number[]) => t.dims.length === dims.length && t.dims.every((d, i) => d === dims[i]);
  if (W.dims.length !== 3 || !shapeOk(W, [D, G, I])) throw new OnnxError(`${where}: W has shape [${W.dims.join(', ')}], expected [${D}, ${G}, input_size]`);
  if (!shapeOk(R, [D, G, H])) throw new OnnxError(`${where}: R has shape [${R.dims.join(', ')}], expected [${D}, ${G}, ${H}]`);
  if (Bt && !shapeOk(Bt, [D, 2 * G])) throw new OnnxError(`${where}: B has shape [${Bt.dims.join(', ')}], expected [${D}, ${2 * G}]`);
  const dirs = [];
  for (let d = 0; d < D; d++) {
    dirs.push({
      wIh: permuteBlocks(W.data!.subarray(d * G * I, (d + 1) * G * I), H, I, order, true),
      wHh: permuteBlocks(R.data!.subarray(d * G * H, (d + 1) * G * H), H, H, order, true),
      bIh: Bt ? permuteBlocks(Bt.data!.subarray(d * 2 * G, d * 2 * G + G), H, 1, order, true) : null,
      bHh: Bt ? permuteBlocks(Bt.data!.subarray(d * 2 * G + G, (d + 1) * 2 * G), H, 1, order, true) : null,
    });
  }
  return { cell, H, D, I, dirs, act };
}

/**
 * The gate activation of an ONNX LSTM / GRU node: activations per direction (LSTM f, g, h; GRU
 * f, g) with f Sigmoid or HardSigmoid (the same in every direction) and the others Tanh;
 * HardSigmoid takes its alpha and beta from activation_alpha / activation_beta in the order of
 * the activations that take them (ONNX's defaults 0.2 and 0.5 when absent).
 */
function gateActivationOf(where: string, op: 'LSTM' | 'GRU', activations: string[], attrs: Map<string, AttrP>): RecurrentActivation {
  const per = op === 'LSTM' ? 3 : 2;
  const alphas = attrs.get('activation_alpha')?.floats ?? [];
  const betas = attrs.get('activation_beta')?.floats ?? [];
  let used = 0;
  let gate: RecurrentActivation | null = null;
  activations.forEach((a, k) => {
    if (k % per !== 0) {
      if (a !== 'Tanh') throw new OnnxError(`${where}: activation ${a} is not supported (expected Tanh for the cell input and output)`);
      return;
    }
    let current: RecurrentActivation;
    if (a === 'Sigmoid') current = { kind: 'sigmoid' };
    else if (a === 'HardSigmoid') {
      const alpha = used < alphas.length ? Number(alphas[used]) : HARD_SIGMOID_DEFAULTS.alpha;
      const beta = used < betas.length ? Number(betas[used]) : HARD_SIGMOID_DEFAULTS.beta;
      used++;
      if (!(alpha > 0) || !Number.isFinite(alpha) || !Number.isFinite(beta)) throw new OnnxError(`${where}: HardSigmoid alpha must be positive and beta finite, received alpha ${alpha}, beta ${beta}`);
      current = { kind: 'hardSigmoid', alpha, beta };
    } else {
      throw new OnnxError(`${where}: activation ${a} is not supported for the gates (expected Sigmoid or HardSigmoid)`);
    }
    if (gate && JSON.stringify(gate) !== JSON.stringify(current)) throw new OnnxError(`${where}: the directions have different gate activations (${JSON.stringify(gate)} and ${JSON.stringify(current)}); rnnkit needs the same in both`);
    gate = current;
  });
  if (alphas.length > used || betas.length > used) throw new OnnxError(`${where}: activation_alpha / activation_beta have more values than the activations that take them`);
  return gate ?? { kind: 'sigmoid' };
}

/**
 * Reads an ONNX model written by toOnnx or torch.onnx.export: an optional Gather (Embedding),
 * RNN / LSTM / GRU nodes (one per layer, the same cell, size and direction), an optional
 * MatMul / Gemm (+ Add) head. Returns it as a RecurrentModel in inference mode.
 */
export function loadOnnx(bytes: Uint8Array): RecurrentModel {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`loadOnnx: bytes must be a Uint8Array, received ${bytes === null ? 'null' : typeof bytes}`);
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new OnnxError(`not a valid ONNX model: ${(e as Error).message}`);
  }
  const graph = model.graph as GraphP | null;
  if (!graph || graph.node.length === 0) throw new OnnxError('not a valid ONNX model: it has no graph nodes');
  for (const o of model.opsetImport) {
    if (o.domain && o.domain !== 'ai.onnx') throw new OnnxError(`operator set '${o.domain}' is not supported (only the default ONNX domain)`);
  }
  const inits = new Map<string, InitTensor>();
  for (const t of graph.initializer) inits.set(String(t.name), readTensor(t as InstanceType<typeof onnx.TensorProto>));
  let embedding: Embedding | null = null;
  const layers: RecurrentNodeInfo[] = [];
  let fcWeight: { out: number; inp: number; data: Float32Array } | null = null;
  let fcBias: Float32Array | null = null;
  const floatInit = (name: string) => { const t = inits.get(name); return t && t.data ? t : null; };
  for (const node of graph.node as NodeP[]) {
    const op = node.opType;
    const where = `${op} '${node.name || node.output[0]}'`;
    if (node.domain && node.domain !== 'ai.onnx') throw new OnnxError(`unsupported ONNX operator '${node.domain}.${op}' (node '${node.name}')`);
    if (op === 'RNN' || op === 'LSTM' || op === 'GRU') {
      if (fcWeight) throw new OnnxError(`${where}: a recurrent layer after the Linear head is not supported`);
      layers.push(readRecurrentNode(node, inits));
    } else if (op === 'Gather' && floatInit(node.input[0])) {
      const w = floatInit(node.input[0])!;
      if (embedding || layers.length) throw new OnnxError(`${where}: only one embedding lookup, before the recurrent layers, is supported`);
      if (w.dims.length !== 2) throw new OnnxError(`${where}: embedding table has shape [${w.dims.join(', ')}], expected [num_embeddings, dim]`);
      if (Number(attrMap(node).get('axis')?.i ?? 0) !== 0) throw new OnnxError(`${where}: axis must be 0 for an embedding lookup`);
      embedding = new Embedding(w.dims[0], w.dims[1]);
      embedding.weight.data.set(w.data!);
    } else if ((op === 'MatMul' || op === 'Gemm') && (floatInit(node.input[1]) || floatInit(node.input[0]))) {
      if (!layers.length || fcWeight) throw new OnnxError(`${where}: only one Linear head, after the recurrent layers, is supported`);
      const w = floatInit(node.input[1]);
      if (!w || w.dims.length !== 2) throw new OnnxError(`${where}: the weight must be a 2-D float32 initializer as its second input`);
      const a = attrMap(node);
      if (op === 'Gemm') {
        if (Number(a.get('transA')?.i ?? 0) !== 0) throw new OnnxError(`${where}: transA=1 is not supported`);
        if ((a.get('alpha')?.f ?? 1) !== 1 || (a.get('beta')?.f ?? 1) !== 1) throw new OnnxError(`${where}: alpha and beta other than 1 are not supported`);
      }
      const transposed = op === 'Gemm' && Number(a.get('transB')?.i ?? 0) === 1;
      const [r, c] = w.dims;
      const out = transposed ? r : c;
      const inp = transposed ? c : r;
      const data = new Float32Array(out * inp);
      for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) data[o * inp + i] = transposed ? w.data![o * inp + i] : w.data![i * out + o];
      fcWeight = { out, inp, data };
      if (op === 'Gemm' && node.input[2]) {
        const b = floatInit(node.input[2]);
        if (!b || b.data!.length !== out) throw new OnnxError(`${where}: bias C must be a float32 initializer of ${out} values`);
        fcBias = b.data;
      }
    } else if (op === 'Add' && (floatInit(node.input[0]) || floatInit(node.input[1]))) {
      const b = floatInit(node.input[0]) ?? floatInit(node.input[1])!;
      if (!fcWeight || fcBias) throw new OnnxError(`${where}: an Add of constants is only supported as the bias of the Linear head`);
      if (b.data!.length !== fcWeight.out) throw new OnnxError(`${where}: bias has ${b.data!.length} values, expected ${fcWeight.out}`);
      fcBias = b.data;
    } else if (!GLUE_OPS.has(op) && op !== 'Gather') {
      throw new OnnxError(`unsupported ONNX operator '${op}' (node '${node.name || node.output[0]}')`);
    }
  }
  if (!layers.length) throw new OnnxError('the graph has no RNN, LSTM or GRU node');
  const first = layers[0];
  layers.forEach((l, k) => {
    if (l.cell !== first.cell || l.H !== first.H || l.D !== first.D || JSON.stringify(l.act) !== JSON.stringify(first.act)) {
      throw new OnnxError(`recurrent layer ${k} (${l.cell}, hidden ${l.H}, ${l.D} directions, gates ${JSON.stringify(l.act)}) differs from layer 0 (${first.cell}, hidden ${first.H}, ${first.D} directions, gates ${JSON.stringify(first.act)})`);
    }
    if (k > 0 && l.I !== first.D * first.H) throw new OnnxError(`recurrent layer ${k} has input size ${l.I}, expected ${first.D * first.H} (the previous layer's output)`);
  });
  const bias = first.dirs[0].bIh !== null;
  if (layers.some((l) => (l.dirs[0].bIh !== null) !== bias)) throw new OnnxError('some recurrent layers have a bias and others not');
  if (embedding && embedding.embeddingDim !== first.I) throw new OnnxError(`the embedding dimension ${embedding.embeddingDim} differs from the recurrent input size ${first.I}`);
  const options = {
    inputSize: first.I, hiddenSize: first.H, numLayers: layers.length, bidirectional: first.D === 2, bias,
    ...(first.act.kind === 'hardSigmoid' ? { recurrentActivation: 'hardSigmoid' as const, hardSigmoidAlpha: first.act.alpha, hardSigmoidBeta: first.act.beta } : {}),
  };
  const rnn = first.cell === 'lstm' ? new LSTM(options) : CELLS[first.cell].module === 'GRU' ? new GRU({ ...options, resetAfter: first.cell === 'gru' })
    : new RNN({ ...options, nonlinearity: first.cell === 'rnn_relu' ? 'relu' : 'tanh' });
  layers.forEach((l, k) => l.dirs.forEach((d, j) => {
    const w = rnn.weights[k][j];
    w.wIh.data.set(d.wIh);
    w.wHh.data.set(d.wHh);
    if (w.bIh && d.bIh) w.bIh.data.set(d.bIh);
    if (w.bHh && d.bHh) w.bHh.data.set(d.bHh);
  }));
  let fc: Linear | null = null;
  if (fcWeight) {
    if (fcWeight.inp !== first.D * first.H) throw new OnnxError(`the Linear head takes ${fcWeight.inp} features, expected ${first.D * first.H} (the recurrent output)`);
    fc = new Linear(fcWeight.inp, fcWeight.out, { bias: fcBias !== null });
    fc.weight.data.set(fcWeight.data);
    if (fc.bias && fcBias) fc.bias.data.set(fcBias);
  }
  return new RecurrentModel({ embedding, rnn, fc }).eval();
}

/** A state_dict's module, for saving: the same parameter names as PyTorch's. */
export function isOnnxExportable(m: Module): m is OnnxExportable {
  return m instanceof RecurrentBase || m instanceof LanguageModel || m instanceof RecurrentModel;
}
