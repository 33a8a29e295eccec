// TF.js layers models (model.json + weights) read into rnnkit modules.
//
// Supported: Sequential models and functional models whose layers form one chain, of Embedding
// (mask_zero), Masking, LSTM, GRU (reset_after=False, the TF.js GRU: rnnkit's GRU with
// resetAfter: false; reset_after=True: PyTorch's form), SimpleRNN, Bidirectional (merge_mode
// concat / sum / mul / ave), Dense and TimeDistributed(Dense) (linear, relu, tanh, sigmoid,
// softmax), Dropout, InputLayer. LSTM and GRU gates: recurrent_activation sigmoid or hard_sigmoid
// (TF.js's default: clamp(0.2 x + 0.5, 0, 1)). Keras' layout: batch-first x [B, T, F] (or token
// ids [B, T]). A mask (mask_zero / Masking) must cover trailing steps only: it becomes the
// per-sequence lengths of the recurrent layers. Refused, naming the layer and option: every other
// layer or option.
import { linear, relu, sigmoid, softmax, tanh } from '../core/ops.js';
import { Tensor } from '../core/tensor.js';
import { CELLS, HARD_SIGMOID_DEFAULTS, gateCount } from '../backends/cells.js';
import { Embedding, GRU, LSTM, Linear, Module, RNN, type RecurrentBase } from '../nn/layers.js';

/** A malformed or unsupported TF.js model. */
export class TfjsError extends Error {
  override name = 'TfjsError';
}

interface LayerJson { class_name: string; config: Record<string, unknown>; inbound_nodes?: unknown[]; name?: string }
interface WeightSpec { name: string; shape: number[]; dtype?: string; quantization?: unknown }
interface ModelJson {
  format?: string;
  modelTopology?: { class_name?: string; config?: { layers?: LayerJson[] } | LayerJson[]; model_config?: { class_name: string; config: { layers: LayerJson[] } } };
  weightsManifest?: Array<{ paths: string[]; weights: WeightSpec[] }>;
}

type Activation = 'linear' | 'relu' | 'tanh' | 'sigmoid' | 'softmax';
const ACTIVATIONS = new Set(['linear', 'relu', 'tanh', 'sigmoid', 'softmax']);

export type Step =
  | { kind: 'embedding'; layer: Embedding; maskZero: boolean }
  | { kind: 'masking'; value: number }
  | { kind: 'recurrent'; rnn: RecurrentBase; returnSequences: boolean; merge: 'concat' | 'sum' | 'mul' | 'ave' | null }
  | { kind: 'dense'; layer: Linear; activation: Activation };

function applyActivation(x: Tensor, a: Activation): Tensor {
  return a === 'relu' ? relu(x) : a === 'tanh' ? tanh(x) : a === 'sigmoid' ? sigmoid(x) : a === 'softmax' ? softmax(x) : x;
}

/** A TF.js layers model as rnnkit modules (inference). forward(x [B, T, F] or ids [B, T]) -> the model's output. */
export class TfjsModel extends Module {
  constructor(private readonly steps: Step[], readonly layerNames: string[]) {
    super();
    steps.forEach((s, i) => {
      if (s.kind === 'embedding') this.registerModule(layerNames[i], s.layer);
      else if (s.kind === 'recurrent') this.registerModule(layerNames[i], s.rnn);
      else if (s.kind === 'dense') this.registerModule(layerNames[i], s.layer);
    });
    this.eval();
  }

  /** The layers as read (for toTfjsModel). */
  exportSteps(): Step[] {
    return [...this.steps];
  }

  forward(x: Tensor): Tensor {
    let lengths: Int32Array | null = null;
    let h = x;
    for (const [i, s] of this.steps.entries()) {
      const where = `layer '${this.layerNames[i]}'`;
      if (s.kind === 'embedding') {
        if (s.maskZero) lengths = maskLengths(where, x, (b, t) => x.data[b * x.shape[1] + t] === 0);
        h = s.layer.forward(x.data, x.shape);
      } else if (s.kind === 'masking') {
        const [, T, F] = h.shape;
        const cur = h;
        lengths = maskLengths(where, h, (b, t) => {
          for (let f = 0; f < F; f++) if (cur.data[(b * T + t) * F + f] !== s.value) return false;
          return true;
        });
      } else if (s.kind === 'recurrent') {
        h = runRecurrent(s, h, lengths);
        if (!s.returnSequences) lengths = null;
      } else {
        h = applyActivation(linear(h, s.layer.weight, s.layer.bias), s.activation);
      }
    }
    return h;
  }
}

/** Trailing masked steps -> lengths; a mask with holes or an all-masked sequence is refused. */
function maskLengths(where: string, x: Tensor, masked: (b: number, t: number) => boolean): Int32Array {
  const [B, T] = x.shape;
  const out = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    let len = T;
    while (len > 0 && masked(b, len - 1)) len--;
    for (let t = 0; t < len; t++) if (masked(b, t)) throw new TfjsError(`${where}: sequence ${b} has a masked step (${t}) before unmasked ones; only trailing padding is supported`);
    if (len === 0) throw new TfjsError(`${where}: sequence ${b} is masked at every step`);
    out[b] = len;
  }
  return out;
}

function runRecurrent(s: Extract<Step, { kind: 'recurrent' }>, x: Tensor, lengths: Int32Array | null): Tensor {
  const { rnn } = s;
  const [B, T] = x.shape;
  const H = rnn.hiddenSize;
  const D = rnn.bidirectional ? 2 : 1;
  const r = rnn.forward(x, { lengths }); // output [B, T, D * H], hN [D, B, H]
  let parts: Float32Array[]; // per direction, [B, T', H]
  let Tout: number;
  if (s.returnSequences) {
    Tout = T;
    parts = [];
    for (let d = 0; d < D; d++) {
      const p = new Float32Array(B * T * H);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          // Keras carries the forward direction's last output over masked steps (PyTorch gives zeros)
          const src = d === 0 && lengths && t >= lengths[b] ? lengths[b] - 1 : t;
          p.set(r.output.data.subarray((b * T + src) * D * H + d * H, (b * T + src) * D * H + (d + 1) * H), (b * T + t) * H);
        }
      }
      parts.push(p);
    }
  } else {
    Tout = 1;
    parts = Array.from({ length: D }, (_, d) => r.hN.data.slice(d * B * H, (d + 1) * B * H));
  }
  const n = B * Tout;
  let out: Float32Array;
  let width = H;
  if (D === 1) out = parts[0];
  else if (s.merge === 'concat') {
    width = 2 * H;
    out = new Float32Array(n * 2 * H);
    for (let k = 0; k < n; k++) {
      out.set(parts[0].subarray(k * H, (k + 1) * H), k * 2 * H);
      out.set(parts[1].subarray(k * H, (k + 1) * H), k * 2 * H + H);
    }
  } else {
    out = new Float32Array(n * H);
    for (let i = 0; i < out.length; i++) {
      const a = parts[0][i];
      const b = parts[1][i];
      out[i] = s.merge === 'sum' ? a + b : s.merge === 'mul' ? a * b : (a + b) / 2;
    }
  }
  return new Tensor(out, s.returnSequences ? [B, T, width] : [B, width]);
}

function layerListOf(json: ModelJson): LayerJson[] {
  const top = json.modelTopology;
  if (!top || typeof top !== 'object') throw new TfjsError('model.json: modelTopology is missing (expected a TF.js layers model)');
  const model = top.model_config ?? top;
  const config = (model as { config?: unknown }).config;
  const layers = Array.isArray(config) ? config : (config as { layers?: unknown })?.layers;
  if (!Array.isArray(layers)) throw new TfjsError('model.json: modelTopology has no layer list');
  const cls = (model as { class_name?: string }).class_name;
  if (cls !== 'Sequential') {
    if (cls !== 'Model' && cls !== 'Functional') throw new TfjsError(`model.json: model class '${String(cls)}' is not supported (expected Sequential or a functional Model)`);
    // a functional model is read when its layers form one chain in the listed order
    layers.forEach((l: LayerJson, i: number) => {
      if (i === 0) return;
      const inbound = JSON.stringify(l.inbound_nodes ?? []);
      const prev = layers[i - 1] as LayerJson;
      const prevName = prev.name ?? prev.config?.name;
      if (!inbound.includes(`"${String(prevName)}"`) || (inbound.match(/\[\s*"/g) ?? []).length !== 1) {
        throw new TfjsError(`model.json: layer '${String(l.name ?? l.config?.name)}' does not take exactly the previous layer's output (only chains of layers are supported)`);
      }
    });
  }
  return layers as LayerJson[];
}

/**
 * Reads a TF.js layers model: modelJson (the parsed model.json) and weightData (its weight files'
 * bytes concatenated in the order of weightsManifest, as tf.io hands them over).
 */
export function loadTfjsModel(modelJson: unknown, weightData: Uint8Array | ArrayBuffer): TfjsModel {
  if (typeof modelJson !== 'object' || modelJson === null) throw new TfjsError(`model.json: expected an object, received ${modelJson === null ? 'null' : typeof modelJson}`);
  const json = modelJson as ModelJson;
  const bytes = weightData instanceof Uint8Array ? weightData : new Uint8Array(weightData);
  const specs = (json.weightsManifest ?? []).flatMap((g) => g.weights ?? []);
  const weights = new Map<string, { shape: number[]; data: Float32Array }>();
  let offset = 0;
  for (const w of specs) {
    if (w.quantization) throw new TfjsError(`weight '${w.name}': quantized weights are not supported`);
    if ((w.dtype ?? 'float32') !== 'float32') throw new TfjsError(`weight '${w.name}': dtype ${w.dtype} is not supported (expected float32)`);
    if (!Array.isArray(w.shape) || !w.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new TfjsError(`weight '${w.name}': invalid shape ${JSON.stringify(w.shape)}`);
    const n = w.shape.reduce((a, b) => a * b, 1);
    if (offset + 4 * n > bytes.length) {
      throw new TfjsError(`weight data is too short: '${w.name}' needs bytes ${offset}..${offset + 4 * n}, the weight files hold ${bytes.length} (a shard is missing or truncated)`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 4 * n);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, true);
    weights.set(w.name, { shape: w.shape, data });
    offset += 4 * n;
  }
  if (offset !== bytes.length) throw new TfjsError(`weight data has ${bytes.length} bytes, the manifest describes ${offset}`);

  const steps: Step[] = [];
  const names: string[] = [];
  let features: number | null = null; // feature size of the running tensor (null before the first layer that sets it)
  let sequence = true;
  for (const layer of layerListOf(json)) {
    const cfg = layer.config ?? {};
    const name = String(cfg.name ?? layer.name ?? layer.class_name);
    const where = `${layer.class_name} '${name}'`;
    const own = [...weights.entries()].filter(([k]) => k.startsWith(`${name}/`));
    const pick = (suffix: string, within: Array<[string, { shape: number[]; data: Float32Array }]> = own) => {
      const found = within.filter(([k]) => k.endsWith(`/${suffix}`) && !k.endsWith(`/recurrent_${suffix}`));
      if (found.length !== 1) throw new TfjsError(`${where}: weight '${suffix}' ${found.length ? 'is ambiguous' : 'is missing'}`);
      return found[0][1];
    };
    const checkShape = (what: string, w: { shape: number[] }, shape: number[]) => {
      if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
        throw new TfjsError(`${where}: ${what} has shape [${w.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
    };
    switch (layer.class_name) {
      case 'InputLayer':
        continue;
      case 'Dropout': case 'SpatialDropout1D':
        continue;
      case 'Embedding': {
        const e = pick('embeddings');
        if (e.shape.length !== 2) throw new TfjsError(`${where}: embeddings has shape [${e.shape.join(', ')}], expected [input_dim, output_dim]`);
        const emb = new Embedding(e.shape[0], e.shape[1]);
        emb.weight.data.set(e.data);
        steps.push({ kind: 'embedding', layer: emb, maskZero: cfg.mask_zero === true });
        features = e.shape[1];
        break;
      }
      case 'Masking':
        steps.push({ kind: 'masking', value: Number(cfg.mask_value ?? 0) });
        break;
      case 'LSTM': case 'GRU': case 'SimpleRNN': case 'Bidirectional': {
        const bidirectional = layer.class_name === 'Bidirectional';
        const inner = bidirectional ? (cfg.layer as LayerJson) : layer;
        if (!inner || !['LSTM', 'GRU', 'SimpleRNN'].includes(inner.class_name)) {
          throw new TfjsError(`${where}: wrapped layer '${String(inner?.class_name)}' is not supported (expected LSTM, GRU or SimpleRNN)`);
        }
        const merge = bidirectional ? String(cfg.merge_mode ?? 'concat') : null;
        if (merge !== null && !['concat', 'sum', 'mul', 'ave'].includes(merge)) throw new TfjsError(`${where}: merge_mode '${merge}' is not supported (expected concat, sum, mul or ave)`);
        const dirs = bidirectional
          ? [own.filter(([k]) => k.includes('/forward_')), own.filter(([k]) => k.includes('/backward_'))]
          : [own];
        const { rnn, inputSize } = readRecurrent(where, inner, dirs, pick, checkShape);
        if (features !== null && inputSize !== features) throw new TfjsError(`${where}: takes ${inputSize} features, the previous layer gives ${features}`);
        if (!sequence) throw new TfjsError(`${where}: its input is not a sequence (the previous recurrent layer has return_sequences=false)`);
        const returnSequences = inner.config.return_sequences === true;
        steps.push({ kind: 'recurrent', rnn, returnSequences, merge: merge as 'concat' | 'sum' | 'mul' | 'ave' | null });
        features = rnn.hiddenSize * (merge === 'concat' ? 2 : 1);
        sequence = returnSequences;
        break;
      }
      case 'Dense': case 'TimeDistributed': {
        const dense = layer.class_name === 'TimeDistributed' ? (cfg.layer as LayerJson) : layer;
        if (!dense || dense.class_name !== 'Dense') throw new TfjsError(`${where}: wrapped layer '${String(dense?.class_name)}' is not supported (expected Dense)`);
        const activation = String(dense.config.activation ?? 'linear');
        if (!ACTIVATIONS.has(activation)) throw new TfjsError(`${where}: activation '${activation}' is not supported (expected ${[...ACTIVATIONS].join(', ')})`);
        const kernel = pick('kernel');
        if (kernel.shape.length !== 2) throw new TfjsError(`${where}: kernel has shape [${kernel.shape.join(', ')}], expected [in, units]`);
        const [inp, out] = kernel.shape;
        if (features !== null && inp !== features) throw new TfjsError(`${where}: takes ${inp} features, the previous layer gives ${features}`);
        const useBias = dense.config.use_bias !== false;
        const lin = new Linear(inp, out, { bias: useBias });
        for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) lin.weight.data[o * inp + i] = kernel.data[i * out + o];
        if (useBias) {
          const b = pick('bias');
          checkShape('bias', b, [out]);
          lin.bias!.data.set(b.data);
        }
        steps.push({ kind: 'dense', layer: lin, activation: activation as Activation });
        features = out;
        break;
      }
      default:
        throw new TfjsError(`${where}: layer class '${layer.class_name}' is not supported`);
    }
    names.push(name.replace(/[./]/g, '_'));
  }
  if (!steps.some((s) => s.kind === 'recurrent' || s.kind === 'dense')) throw new TfjsError('model.json: the model has no LSTM, GRU, SimpleRNN or Dense layer');
  return new TfjsModel(steps, names);
}

type Weight = { shape: number[]; data: Float32Array };

function transposeInto(dst: Float32Array, src: Float32Array, rows: number, cols: number, order: number[], H: number): void {
  // src [rows, cols = G] (Keras kernel) -> dst [G, rows] (PyTorch weight), gate blocks reordered
  order.forEach((from, to) => {
    for (let h = 0; h < H; h++) for (let r = 0; r < rows; r++) dst[(to * H + h) * rows + r] = src[r * cols + from * H + h];
  });
}

function readRecurrent(
  where: string, layer: LayerJson, dirs: Array<Array<[string, Weight]>>,
  pick: (suffix: string, within?: Array<[string, Weight]>) => Weight,
  checkShape: (what: string, w: { shape: number[] }, shape: number[]) => void,
): { rnn: RecurrentBase; inputSize: number } {
  const cfg = layer.config;
  const kind = layer.class_name;
  const inner = `${kind} '${String(cfg.name)}'`;
  for (const flag of ['go_backwards', 'stateful', 'return_state']) {
    if (cfg[flag] === true) throw new TfjsError(`${inner}: ${flag}=true is not supported`);
  }
  // the gates: sigmoid, or TF.js's hard sigmoid clamp(0.2 x + 0.5, 0, 1) (TF.js's default)
  let hard = false;
  if (kind !== 'SimpleRNN') {
    const ra = String(cfg.recurrent_activation ?? 'hard_sigmoid');
    hard = ra === 'hard_sigmoid' || ra === 'hardSigmoid';
    if (!hard && ra !== 'sigmoid') throw new TfjsError(`${inner}: recurrent_activation '${ra}' is not supported (expected 'sigmoid' or 'hard_sigmoid')`);
    if (String(cfg.activation ?? 'tanh') !== 'tanh') throw new TfjsError(`${inner}: activation '${String(cfg.activation)}' is not supported (only 'tanh')`);
  }
  const act = String(cfg.activation ?? 'tanh');
  if (kind === 'SimpleRNN' && act !== 'tanh' && act !== 'relu') throw new TfjsError(`${inner}: activation '${act}' is not supported (expected tanh or relu)`);
  // GRU: reset_after=True is PyTorch's form (two biases); False (TF.js's only form) the reset-before one (one bias)
  const resetAfter = kind === 'GRU' && cfg.reset_after === true;
  const H = Number(cfg.units);
  if (!Number.isInteger(H) || H < 1) throw new TfjsError(`${inner}: units must be a positive integer, received ${String(cfg.units)}`);
  const gates = kind === 'LSTM' ? 4 : kind === 'GRU' ? 3 : 1;
  const order = kind === 'GRU' ? [1, 0, 2] : Array.from({ length: gates }, (_, k) => k); // Keras GRU (z, r, h) -> PyTorch (r, z, n)
  const G = gates * H;
  const useBias = cfg.use_bias !== false;
  const first = pick('kernel', dirs[0]);
  const I = first.shape[0];
  // every shape is checked before anything is allocated from the sizes the file states
  dirs.forEach((ws) => {
    checkShape('kernel', pick('kernel', ws), [I, G]);
    checkShape('recurrent_kernel', pick('recurrent_kernel', ws), [H, G]);
    if (useBias) checkShape('bias', pick('bias', ws), resetAfter ? [2, G] : [G]);
  });
  const options = {
    inputSize: I, hiddenSize: H, bidirectional: dirs.length === 2, bias: useBias, batchFirst: true,
    ...(hard ? { recurrentActivation: 'hardSigmoid' as const, hardSigmoidAlpha: HARD_SIGMOID_DEFAULTS.alpha, hardSigmoidBeta: HARD_SIGMOID_DEFAULTS.beta } : {}),
  };
  const rnn = kind === 'LSTM' ? new LSTM(options) : kind === 'GRU' ? new GRU({ ...options, resetAfter }) : new RNN({ ...options, nonlinearity: act as 'tanh' | 'relu' });
  dirs.forEach((ws, d) => {
    const kernel = pick('kernel', ws);
    const rec = pick('recurrent_kernel', ws);
    checkShape('kernel', kernel, [I, G]);
    checkShape('recurrent_kernel', rec, [H, G]);
    const w = rnn.weights[0][d];
    transposeInto(w.wIh.data, kernel.data, I, G, order, H);
    transposeInto(w.wHh.data, rec.data, H, G, order, H);
    if (useBias) {
      const b = pick('bias', ws);
      checkShape('bias', b, resetAfter ? [2, G] : [G]);
      // one Keras bias (LSTM, SimpleRNN, reset-before GRU: every bias adds outside the gates'
      // products) becomes bias_ih with bias_hh = 0; reset-after GRU: [input bias, recurrent bias]
      const split = resetAfter ? [b.data.subarray(0, G), b.data.subarray(G)] : [b.data, new Float32Array(G)];
      transposeInto(w.bIh!.data, split[0], 1, G, order, H);
      transposeInto(w.bHh!.data, split[1], 1, G, order, H);
    }
  });
  return { rnn, inputSize: I };
}

// ---------------------------------------------------------------- export

/** A TF.js layers model as files: model.json's content and the weights file's bytes. */
export interface TfjsArtifacts {
  /** model.json's content: { format, modelTopology, weightsManifest: [{ paths: [weightsPath], weights }] } */
  modelJson: { format: 'layers-model'; generatedBy: string; modelTopology: unknown; weightsManifest: Array<{ paths: string[]; weights: WeightSpec[] }> };
  /** the weights file's bytes (float32, little-endian, in manifest order) */
  weightData: Uint8Array;
}

/**
 * A TF.js layers model (Keras layout: batch-first x [B, T, F] or token ids [B, T]) computing what
 * the module computes: each recurrent layer (and direction) of a stack becomes one LSTM / SimpleRNN
 * layer (Bidirectional, merge concat) returning sequences, an Embedding and a Linear head become
 * Embedding and Dense. TfjsModels are written back as they were read (masks, merges, activations,
 * last-step outputs). A reset-before GRU (resetAfter: false) becomes TF.js's GRU; PyTorch's GRU
 * (reset-after) is refused: TF.js layers refuses reset_after=True. Hard-sigmoid gates are
 * written as hard_sigmoid when they are TF.js's (alpha 0.2, beta 0.5). Initial states and the
 * final state are not part of a Keras Sequential model.
 */
export function toTfjsModel(module: RecurrentBase | TfjsModel | { embedding: Embedding | null; rnn: RecurrentBase; fc: Linear | null }, options: { weightsPath?: string } = {}): TfjsArtifacts {
  const steps: Step[] = module instanceof TfjsModel ? module.exportSteps()
    : 'rnn' in module && module.rnn ? [
      ...(module.embedding ? [{ kind: 'embedding' as const, layer: module.embedding, maskZero: false }] : []),
      { kind: 'recurrent' as const, rnn: module.rnn, returnSequences: true, merge: module.rnn.bidirectional ? 'concat' as const : null },
      ...(module.fc ? [{ kind: 'dense' as const, layer: module.fc, activation: 'linear' as const }] : []),
    ] : [{ kind: 'recurrent' as const, rnn: module as RecurrentBase, returnSequences: true, merge: (module as RecurrentBase).bidirectional ? 'concat' as const : null }];
  const layers: LayerJson[] = [];
  const specs: WeightSpec[] = [];
  const chunks: Float32Array[] = [];
  const add = (name: string, shape: number[], data: Float32Array) => { specs.push({ name, shape, dtype: 'float32' }); chunks.push(data); };
  let count = 0;
  const fresh = (base: string) => `${base}_${++count}`;
  let inputShape: Array<number | null> | null = null;
  for (const s of steps) {
    if (s.kind === 'embedding') {
      const name = fresh('embedding');
      layers.push({ class_name: 'Embedding', config: { name, input_dim: s.layer.numEmbeddings, output_dim: s.layer.embeddingDim, mask_zero: s.maskZero, ...(inputShape ? {} : { batch_input_shape: [null, null] }) } });
      add(`${name}/embeddings`, [...s.layer.weight.shape], s.layer.weight.data);
      inputShape = [null, null];
    } else if (s.kind === 'masking') {
      layers.push({ class_name: 'Masking', config: { name: fresh('masking'), mask_value: s.value } });
    } else if (s.kind === 'dense') {
      const name = fresh('dense');
      const [out, inp] = s.layer.weight.shape;
      const kernel = new Float32Array(inp * out);
      for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) kernel[i * out + o] = s.layer.weight.data[o * inp + i];
      layers.push({ class_name: 'Dense', config: { name, units: out, activation: s.activation, use_bias: s.layer.bias !== null } });
      add(`${name}/kernel`, [inp, out], kernel);
      if (s.layer.bias) add(`${name}/bias`, [out], s.layer.bias.data);
    } else {
      const { rnn } = s;
      if (rnn.cell === 'gru') throw new TfjsError('toTfjsModel: GRU cannot be written: TF.js layers only implements the reset-before GRU (reset_after=False), and this GRU is PyTorch\'s reset-after form (build it with resetAfter: false for TF.js)');
      if (rnn.projSize > 0) throw new TfjsError(`toTfjsModel: LSTM projSize (${rnn.projSize}) has no Keras equivalent`);
      const ra = rnn.recurrentActivation;
      if (ra.kind === 'hardSigmoid' && (Math.fround(ra.alpha) !== Math.fround(HARD_SIGMOID_DEFAULTS.alpha) || Math.fround(ra.beta) !== Math.fround(HARD_SIGMOID_DEFAULTS.beta))) {
        throw new TfjsError(`toTfjsModel: TF.js's hard_sigmoid is clamp(0.2 x + 0.5, 0, 1); this ${CELLS[rnn.cell].module}'s hard sigmoid has alpha ${ra.alpha}, beta ${ra.beta}`);
      }
      const gru = rnn.cell === 'gru_reset_before';
      const cls = rnn.cell === 'lstm' ? 'LSTM' : gru ? 'GRU' : 'SimpleRNN';
      const H = rnn.hiddenSize;
      const G = gateCount(rnn.cell) * H;
      // PyTorch's gate blocks -> Keras': GRU (r, z, n) -> (z, r, h); LSTM and RNN keep their order
      const kerasOrder = gru ? [1, 0, 2] : Array.from({ length: G / H }, (_, k) => k);
      for (let l = 0; l < rnn.numLayers; l++) {
        const I = l === 0 ? rnn.inputSize : H * (rnn.bidirectional ? 2 : 1);
        const last = l === rnn.numLayers - 1;
        const name = fresh(cls.toLowerCase());
        const config: Record<string, unknown> = {
          name, units: H, activation: rnn.cell === 'rnn_relu' ? 'relu' : 'tanh', use_bias: rnn.bias,
          return_sequences: last ? s.returnSequences : true,
          ...(CELLS[rnn.cell].gateActivation ? { recurrent_activation: ra.kind === 'hardSigmoid' ? 'hard_sigmoid' : 'sigmoid' } : {}),
          ...(gru ? { reset_after: false } : {}),
        };
        const dirNames = rnn.bidirectional ? [`forward_${name}`, `backward_${name}`] : [''];
        const outer = rnn.bidirectional ? fresh('bidirectional') : name;
        const layer: LayerJson = rnn.bidirectional
          ? { class_name: 'Bidirectional', config: { name: outer, merge_mode: last ? s.merge ?? 'concat' : 'concat', layer: { class_name: cls, config } } }
          : { class_name: cls, config };
        if (!inputShape) {
          layer.config.batch_input_shape = [null, null, I];
          inputShape = [null, null, I];
        }
        layers.push(layer);
        dirNames.forEach((dir, d) => {
          const w = rnn.weights[l][d];
          const prefix = dir ? `${outer}/${dir}` : name;
          const kernel = new Float32Array(I * G);
          const rec = new Float32Array(H * G);
          const bias = new Float32Array(G);
          kerasOrder.forEach((from, to) => {
            for (let j = 0; j < H; j++) {
              const g = from * H + j; // PyTorch row
              const c = to * H + j; // Keras column
              for (let i = 0; i < I; i++) kernel[i * G + c] = w.wIh.data[g * I + i];
              for (let k = 0; k < H; k++) rec[k * G + c] = w.wHh.data[g * H + k];
              if (w.bIh && w.bHh) bias[c] = w.bIh.data[g] + w.bHh.data[g];
            }
          });
          add(`${prefix}/kernel`, [I, G], kernel);
          add(`${prefix}/recurrent_kernel`, [H, G], rec);
          if (w.bIh && w.bHh) add(`${prefix}/bias`, [G], bias);
        });
      }
    }
  }
  if (!inputShape) throw new TfjsError('toTfjsModel: the model has no layer that fixes its input shape (Embedding or a recurrent layer first)');
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const all = new Float32Array(total);
  let at = 0;
  for (const c of chunks) { all.set(c, at); at += c.length; }
  const weightData = new Uint8Array(total * 4);
  const view = new DataView(weightData.buffer);
  all.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return {
    modelJson: {
      format: 'layers-model',
      generatedBy: 'rnnkit',
      modelTopology: { class_name: 'Sequential', config: { name: 'rnnkit', layers }, keras_version: 'tfjs-layers', backend: 'tensor_flow.js' },
      weightsManifest: [{ paths: [options.weightsPath ?? 'weights.bin'], weights: specs }],
    },
    weightData,
  };
}
