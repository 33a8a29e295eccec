// The fused recurrent op: a whole stacked, possibly bidirectional RNN/LSTM/GRU over a whole
// sequence is ONE autograd op. Its forward calls backend.seqForward once per layer and direction
// (the two directions of a bidirectional layer as one paired call where the backend takes it,
// Backend.pairedCalls, except in forwardAsync; forwardAsync without a graph hands every call to
// one backend.seqForwardStackAsync where the backend has it); its backward calls
// backend.seqBackward (whole-sequence BPTT) the same way.
import type {
  Backend, CellKind, RecurrentActivation, SeqBackwardArgs, SeqContext, SeqForwardArgs, WeightCopy,
} from '../backends/backend.js';
import { getBackend } from '../backends/index.js';
import { hasCellState } from '../backends/cells.js';
import { Rng } from '../core/random.js';
import { Tensor, needsGrad, readValues, recordOp } from '../core/tensor.js';

/** The parameters of one direction of one layer, PyTorch's layout. */
export interface DirectionWeights {
  wIh: Tensor; // [G*H, I_l]
  wHh: Tensor; // [G*H, R]
  bIh: Tensor | null; // [G*H]
  bHh: Tensor | null; // [G*H]
  wHr: Tensor | null; // [P, H]
}

export interface RecurrentConfig {
  cell: CellKind;
  /** The gate activation (LSTM, GRU); omitted = sigmoid. */
  recurrentActivation?: RecurrentActivation;
  H: number;
  P: number;
  numLayers: number;
  bidirectional: boolean;
  /** Dropout on the outputs of every layer but the last, in training. */
  dropout: number;
  training: boolean;
  rng: Rng;
}

export interface RecurrentResult {
  output: Tensor; // [T, B, D*R]
  hN: Tensor; // [L*D, B, R]
  cN: Tensor | null; // [L*D, B, H] (LSTM)
}

// recurrentForward: x [T, B, I], h0 [L*D, B, R] | null, c0 [L*D, B, H] | null,
//   weights[layer][direction], lengths [B] | null -> output [T, B, D*R], hN, cN
export function recurrentForward(
  cfg: RecurrentConfig, x: Tensor, h0: Tensor | null, c0: Tensor | null,
  weights: DirectionWeights[][], lengths: Int32Array | null,
): RecurrentResult {
  const backend = getBackend();
  // Inference (no graph recorded) on a backend that holds weight copies (copyWeight: native): each
  // weight goes as its copy, reused while the weight's change counter holds, and what the backend
  // makes of it (native: the weights packed in the layouts the products read) is made once per
  // model rather than on every call. A recorded forward hands over the arrays, which its backward reads.
  const copying = backend.copyWeight && !recordsGraph(x, h0, c0, weights) ? backend as CopyingBackend : null;
  const plan = recurrentPlan(backend, cfg, x, h0, c0, weights, lengths, undefined, backend.pairedCalls === true,
    copying ? (t) => copyOf(t, copying) : undefined);
  let step = plan.next();
  while (!step.done) step = plan.next(backend.seqForward(step.value));
  return step.value;
}

/** The same as recurrentForward, with each sequence kernel run off the main thread where the backend can. */
export async function recurrentForwardAsync(
  cfg: RecurrentConfig, x: Tensor, h0: Tensor | null, c0: Tensor | null,
  weights: DirectionWeights[][], lengths: Int32Array | null,
): Promise<RecurrentResult> {
  const backend = getBackend();
  // Each job reads the weights as they are now, and a backward reads the weights its forward
  // read: an optimizer step, loadStateDict or a training pass that changes them meanwhile changes
  // neither. The jobs after the first (later layers, the reverse direction) are called when the
  // one before ends, and a backward runs later still, so those read a snapshot taken now.
  // A backend that holds weight copies (copyWeight: native) gets each weight as its copy, taken
  // now, which its jobs share; otherwise the native addon copies what a job reads when it is
  // called (whether the job then runs or waits for admission). A snapshot and a copy are reused
  // while their weight's change counter holds: serving a model that does not change copies no
  // weights. Without async kernels every forward runs now, and only a backward needs the snapshot.
  const recording = recordsGraph(x, h0, c0, weights);
  const copying = backend.seqForwardAsync && backend.copyWeight ? backend as CopyingBackend : null;
  const snapshot = new Map<Tensor, Float32Array>();
  const copies = new Map<Tensor, WeightCopy>();
  weights.forEach((layer, l) => layer.forEach((w, d) => {
    const queuedNow = backend.seqForwardAsync ? l === 0 && d === 0 : true;
    for (const t of [w.wIh, w.wHh, w.bIh, w.bHh, w.wHr]) {
      if (!t) continue;
      if (copying) copies.set(t, copyOf(t, copying));
      if (recording || (!copying && !queuedNow)) snapshot.set(t, snapshotOf(t)); // a backward reads the arrays
    }
  }));
  // inference without dropout between layers on a backend that runs a stack of calls as one job
  // (native): every layer and direction in one job, one completion, the outputs of the layers below
  // the top kept there (their arrays are stand-ins, neither read nor written: innerOutputOf)
  const stacked = backend.seqForwardStackAsync && !recording && !(cfg.dropout > 0 && cfg.training && cfg.numLayers > 1);
  // with copies, the arrays give the lengths (and the values a backward reads, when recording)
  const plan = recurrentPlan(backend, cfg, x, h0, c0, weights, lengths,
    (t) => snapshot.get(t) ?? (copying ? readValues(t) : t.data), false, copying ? (t) => copies.get(t) ?? null : undefined,
    stacked ? innerOutputOf : undefined);
  let step = plan.next();
  if (stacked) {
    const calls: SeqForwardArgs[] = [];
    while (!step.done) {
      calls.push(step.value);
      step = plan.next(null);  // no contexts: nothing is recorded
    }
    await backend.seqForwardStackAsync!(calls);
    return step.value;
  }
  while (!step.done) {
    const args = step.value;
    step = plan.next(backend.seqForwardAsync ? await backend.seqForwardAsync(args) : backend.seqForward(args));
  }
  return step.value;
}

// The stand-in arrays of the layer outputs a stacked job keeps (seqForwardStackAsync), by layer
// and length: never read or written, so shared by every call (one array per layer: the job tells
// the layers' outputs apart by their arrays); the last 16 are kept.
const innerOutputs = new Map<string, Float32Array<ArrayBuffer>>();
function innerOutputOf(layer: number, n: number): Float32Array<ArrayBuffer> {
  const key = `${layer}:${n}`;
  let a = innerOutputs.get(key);
  if (!a) {
    if (innerOutputs.size >= 16) innerOutputs.delete(innerOutputs.keys().next().value!);
    innerOutputs.set(key, (a = new Float32Array(n)));
  }
  return a;
}

/** Whether a forward of x, h0, c0 through these weights records a graph (one of them needs a gradient). */
function recordsGraph(x: Tensor, h0: Tensor | null, c0: Tensor | null, weights: DirectionWeights[][]): boolean {
  const params = weights.flat().flatMap((w) => [w.wIh, w.wHh, w.bIh, w.bHh, w.wHr]).filter((t): t is Tensor => t !== null);
  return needsGrad(x, ...(h0 ? [h0] : []), ...(c0 ? [c0] : []), ...params);
}

// Per weight: the values at one change counter (Tensor.version), and what was made of them: a
// snapshot (a JS copy) and a backend's copy (copyWeight), each made on first need and never
// written after (jobs and contexts share them).
interface WeightValues {
  source: Float32Array;
  version: number;
  snapshot: Float32Array | null;
  copy: WeightCopy | null;
  copyBy: Backend | null;
}
const weightValues = new WeakMap<Tensor, WeightValues>();
type CopyingBackend = Backend & Required<Pick<Backend, 'copyWeight'>>;

/**
 * The entry of t's current values: the last one while t.version has not moved since, a new one
 * otherwise. Every write through rnnkit (optimizer steps, loadStateDict, the importers, any
 * `t.data` access) moves the counter; a write through a `data` array kept from earlier needs
 * `t.markChanged()`, as for the wasm backend's resident weights.
 */
function valuesOf(t: Tensor): WeightValues {
  const version = t.version;
  const source = readValues(t);
  const last = weightValues.get(t);
  if (last && last.source === source && last.version === version) return last;
  const entry: WeightValues = { source, version, snapshot: null, copy: null, copyBy: null };
  weightValues.set(t, entry);
  return entry;
}

/** A copy of t's values in a Float32Array: reused while t.version holds. */
function snapshotOf(t: Tensor): Float32Array {
  const v = valuesOf(t);
  return (v.snapshot ??= v.source.slice());
}

/** The backend's own copy of t's values (Backend.copyWeight): reused while t.version holds. */
function copyOf(t: Tensor, backend: CopyingBackend): WeightCopy {
  const v = valuesOf(t);
  if (!v.copy || v.copyBy !== backend) {
    v.copy = backend.copyWeight(v.snapshot ?? v.source);
    v.copyBy = backend;
  }
  return v.copy;
}

/**
 * The forward pass as a plan: yields each seqForward call (layer by layer, direction by
 * direction, or with pairDirections both directions of a layer as one paired call), receives its
 * context, and returns the result with its backward recorded.
 * weightData gives the values a parameter is read from: by default its own values, handed over
 * with their change counters (a backend may keep them between calls), else a snapshot of them;
 * copies, the backend's copies of them (SeqForwardArgs.weightCopies).
 */
function* recurrentPlan(
  backend: Backend, cfg: RecurrentConfig, x: Tensor, h0: Tensor | null, c0: Tensor | null,
  weights: DirectionWeights[][], lengths: Int32Array | null,
  snapshot?: (t: Tensor) => Float32Array, pairDirections = false, copies?: (t: Tensor) => WeightCopy | null,
  innerOutput?: (layer: number, n: number) => Float32Array<ArrayBuffer>,
): Generator<SeqForwardArgs, RecurrentResult, SeqContext | null> {
  const { cell, H, P, numLayers: L } = cfg;
  const D = cfg.bidirectional ? 2 : 1;
  const R = P > 0 ? P : H;
  const [T, B] = x.shape;
  const params = weights.flat().flatMap((w) => [w.wIh, w.wHh, w.bIh, w.bHh, w.wHr]).filter((t): t is Tensor => t !== null);
  const inputs = [x, ...(h0 ? [h0] : []), ...(c0 ? [c0] : []), ...params];
  const training = needsGrad(...inputs); // taken now: an async job keeps it while other work runs
  const weightData = snapshot ?? readValues;
  const versions = (w: DirectionWeights) => (snapshot ? undefined : [w.wIh, w.wHh, w.bIh, w.bHh, w.wHr].map((t) => t?.version ?? 0));

  const hN = new Float32Array(L * D * B * R);
  const cN = hasCellState(cell) ? new Float32Array(L * D * B * H) : null;
  // per layer: a context per direction, or one of the paired call
  const contexts: Array<Array<SeqContext | null>> = [];
  const layerInputs: Float32Array[] = [x.data];
  const dropoutMasks: Array<Float32Array | null> = [];
  let input = x.data;
  let output = new Float32Array(0);
  for (let l = 0; l < L; l++) {
    const I = input.length / (T * B);
    output = innerOutput && l < L - 1 ? innerOutput(l, T * B * D * R) : new Float32Array(T * B * D * R);
    contexts.push([]);
    const callOf = (d: number): SeqForwardArgs => {
      const k = l * D + d;
      const w = weights[l][d];
      return {
        cell, T, B, I, H, P, reverse: d === 1, x: input,
        wIh: weightData(w.wIh), wHh: weightData(w.wHh), bIh: w.bIh ? weightData(w.bIh) : null,
        bHh: w.bHh ? weightData(w.bHh) : null, wHr: w.wHr ? weightData(w.wHr) : null, weightVersions: versions(w),
        weightCopies: copies ? [w.wIh, w.wHh, w.bIh, w.bHh, w.wHr].map((t) => (t ? copies(t) : null)) : undefined,
        h0: h0 ? h0.data.subarray(k * B * R, (k + 1) * B * R) : null,
        c0: c0 ? c0.data.subarray(k * B * H, (k + 1) * B * H) : null,
        lengths, y: output, yStride: D * R, yOffset: d * R,
        hN: hN.subarray(k * B * R, (k + 1) * B * R),
        cN: cN ? cN.subarray(k * B * H, (k + 1) * B * H) : null,
        training, recurrentActivation: cfg.recurrentActivation ?? null,
      };
    };
    if (pairDirections && D === 2) contexts[l].push(yield { ...callOf(0), paired: callOf(1) });
    else for (let d = 0; d < D; d++) contexts[l].push(yield callOf(d));
    if (l < L - 1 && cfg.dropout > 0 && cfg.training) {
      const keep = 1 / (1 - cfg.dropout);
      const mask = new Float32Array(output.length);
      const dropped = new Float32Array(output.length);
      for (let i = 0; i < mask.length; i++) {
        mask[i] = cfg.rng.next() >= cfg.dropout ? keep : 0;
        dropped[i] = output[i] * mask[i];
      }
      dropoutMasks.push(mask);
      input = dropped;
    } else {
      dropoutMasks.push(null);
      input = output;
    }
    layerInputs.push(input);
  }

  const result: RecurrentResult = {
    output: new Tensor(output, [T, B, D * R]),
    hN: new Tensor(hN, [L * D, B, R]),
    cN: cN ? new Tensor(cN, [L * D, B, H]) : null,
  };
  const outs = [result.output, result.hN, ...(result.cN ? [result.cN] : [])];
  recordOp(`${cell}x${L}${D === 2 ? 'bi' : ''}`, inputs, outs, () => {
    const dOut = result.output.grad;
    const dhN = result.hN.grad;
    const dcN = result.cN?.grad ?? null;
    const dh0 = h0?.requiresGrad ? h0.ensureGrad() : null;
    const dc0 = c0?.requiresGrad ? c0.ensureGrad() : null;
    let dy: Float32Array | null = dOut;
    for (let l = L - 1; l >= 0; l--) {
      const I = layerInputs[l].length / (T * B);
      const wantDx = l > 0 || x.requiresGrad;
      const dx = wantDx ? (l === 0 ? x.ensureGrad() : new Float32Array(T * B * I)) : null;
      const gradsOf = (d: number): Omit<SeqBackwardArgs, 'ctx'> => {
        const k = l * D + d;
        const w = weights[l][d];
        const grad = (t: Tensor | null) => (t?.requiresGrad ? t.ensureGrad() : null);
        return {
          dy, dyStride: D * R, dyOffset: d * R,
          dhN: dhN ? dhN.subarray(k * B * R, (k + 1) * B * R) : null,
          dcN: dcN ? dcN.subarray(k * B * H, (k + 1) * B * H) : null,
          dx,
          dh0: dh0 ? dh0.subarray(k * B * R, (k + 1) * B * R) : null,
          dc0: dc0 ? dc0.subarray(k * B * H, (k + 1) * B * H) : null,
          dWIh: grad(w.wIh), dWHh: grad(w.wHh), dBIh: grad(w.bIh), dBHh: grad(w.bHh), dWHr: grad(w.wHr),
        };
      };
      if (contexts[l].length < D) {  // one paired call
        backend.seqBackward({ ...gradsOf(0), ctx: contexts[l][0] as SeqContext, paired: gradsOf(1) });
      } else {
        for (let d = 0; d < D; d++) backend.seqBackward({ ...gradsOf(d), ctx: contexts[l][d] as SeqContext });
      }
      if (l > 0 && dx) {
        const mask = dropoutMasks[l - 1];
        if (mask) for (let i = 0; i < dx.length; i++) dx[i] *= mask[i];
        dy = dx;
      }
    }
  }, training);
  return result;
}
