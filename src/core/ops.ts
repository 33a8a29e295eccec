// Differentiable tensor ops: each computes its forward result and records its backward.
// The heavy ones (matrix products, activations, cross-entropy) run on the selected backend;
// the memory-bound reshuffles (reshape, concat, gather) are plain loops here.
import { getBackend } from '../backends/index.js';
import type { Backend, UnaryOp } from '../backends/backend.js';
import { Rng, defaultRng } from './random.js';
import { Tensor, formatShape, needsGrad, recordOp, shapeSize } from './tensor.js';

export function shapeError(where: string, arg: string, expected: string, received: readonly number[] | string): RangeError {
  const got = typeof received === 'string' ? received : formatShape(received);
  return new RangeError(`${where}: ${arg} expected shape ${expected}, received ${got}`);
}

function assertTensor(where: string, arg: string, t: unknown): asserts t is Tensor {
  if (!(t instanceof Tensor)) {
    throw new TypeError(`${where}: ${arg} must be a Tensor, received ${t === null ? 'null' : typeof t}`);
  }
}

function assertSameShape(where: string, a: Tensor, b: Tensor, names = ['a', 'b']): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw shapeError(where, names[1], formatShape(a.shape) + ` (the shape of ${names[0]})`, b.shape);
  }
}

function addInto(target: Tensor, g: ArrayLike<number>, scale = 1): void {
  if (!target.requiresGrad) return;
  const dst = target.ensureGrad();
  for (let i = 0; i < dst.length; i++) dst[i] += scale * g[i];
}

/**
 * add: a [*], b [*] -> [*]
 */
export function add(a: Tensor, b: Tensor): Tensor {
  assertSameShape('add', a, b);
  const out = new Float32Array(a.size);
  const ad = a.data, bd = b.data;
  for (let i = 0; i < out.length; i++) out[i] = ad[i] + bd[i];
  const y = new Tensor(out, a.shape);
  recordOp('add', [a, b], [y], () => {
    if (!y.grad) return;
    addInto(a, y.grad);
    addInto(b, y.grad);
  });
  return y;
}

/**
 * sub: a [*], b [*] -> [*]
 */
export function sub(a: Tensor, b: Tensor): Tensor {
  assertSameShape('sub', a, b);
  const out = new Float32Array(a.size);
  const ad = a.data, bd = b.data;
  for (let i = 0; i < out.length; i++) out[i] = ad[i] - bd[i];
  const y = new Tensor(out, a.shape);
  recordOp('sub', [a, b], [y], () => {
    if (!y.grad) return;
    addInto(a, y.grad);
    addInto(b, y.grad, -1);
  });
  return y;
}

/**
 * mul: a [*], b [*] -> [*] (elementwise)
 */
export function mul(a: Tensor, b: Tensor): Tensor {
  assertSameShape('mul', a, b);
  const out = new Float32Array(a.size);
  const ad = a.data, bd = b.data;
  for (let i = 0; i < out.length; i++) out[i] = ad[i] * bd[i];
  const y = new Tensor(out, a.shape);
  recordOp('mul', [a, b], [y], () => {
    const g = y.grad;
    if (!g) return;
    if (a.requiresGrad) { const d = a.ensureGrad(); for (let i = 0; i < d.length; i++) d[i] += g[i] * bd[i]; }
    if (b.requiresGrad) { const d = b.ensureGrad(); for (let i = 0; i < d.length; i++) d[i] += g[i] * ad[i]; }
  });
  return y;
}

/**
 * scale: a [*] * s -> [*]
 */
export function scale(a: Tensor, s: number): Tensor {
  const out = new Float32Array(a.size);
  const ad = a.data;
  for (let i = 0; i < out.length; i++) out[i] = ad[i] * s;
  const y = new Tensor(out, a.shape);
  recordOp('scale', [a], [y], () => { if (y.grad) addInto(a, y.grad, s); });
  return y;
}

/**
 * sum: a [*] -> [] (scalar)
 */
export function sum(a: Tensor): Tensor {
  let acc = 0;
  const ad = a.data;
  for (let i = 0; i < ad.length; i++) acc += ad[i];
  const y = Tensor.scalar(acc);
  recordOp('sum', [a], [y], () => {
    if (!y.grad || !a.requiresGrad) return;
    const g = y.grad[0];
    const d = a.ensureGrad();
    for (let i = 0; i < d.length; i++) d[i] += g;
  });
  return y;
}

/**
 * mean: a [*] -> [] (scalar)
 */
export function mean(a: Tensor): Tensor {
  return scale(sum(a), 1 / Math.max(1, a.size));
}

/**
 * reshape: a [*] -> shape (same number of elements; one dimension may be -1)
 */
export function reshape(a: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const inferred = shape.map((d) => (d === -1 ? a.size / Math.max(1, shapeSize(known)) : d));
  if (shapeSize(inferred) !== a.size || inferred.some((d) => !Number.isInteger(d) || d < 0)) {
    throw shapeError('reshape', 'shape', `with ${a.size} elements like ${formatShape(a.shape)}`, shape);
  }
  const y = new Tensor(a.data, inferred);
  recordOp('reshape', [a], [y], () => { if (y.grad) addInto(a, y.grad); });
  return y;
}

/**
 * transpose01: a [A, B, C] -> [B, A, C] (batch-first <-> time-major)
 */
export function transpose01(a: Tensor): Tensor {
  if (a.ndim !== 3) throw shapeError('transpose01', 'a', '[A, B, C]', a.shape);
  const [A, B, C] = a.shape;
  const out = new Float32Array(a.size);
  for (let i = 0; i < A; i++) for (let j = 0; j < B; j++) out.set(a.data.subarray((i * B + j) * C, (i * B + j + 1) * C), (j * A + i) * C);
  const y = new Tensor(out, [B, A, C]);
  recordOp('transpose01', [a], [y], () => {
    if (!y.grad || !a.requiresGrad) return;
    const d = a.ensureGrad();
    for (let i = 0; i < A; i++) for (let j = 0; j < B; j++) for (let c = 0; c < C; c++) d[(i * B + j) * C + c] += y.grad[(j * A + i) * C + c];
  });
  return y;
}

/**
 * concat along the last dimension: [..., C_k] for each k -> [..., sum C_k]
 */
export function concatLast(parts: Tensor[]): Tensor {
  if (parts.length === 0) throw new RangeError('concatLast: parts must not be empty');
  const lead = parts[0].shape.slice(0, -1);
  for (const [k, p] of parts.entries()) {
    if (p.ndim !== lead.length + 1 || p.shape.slice(0, -1).some((d, i) => d !== lead[i])) {
      throw shapeError('concatLast', `parts[${k}]`, `${formatShape([...lead, -1]).replace('-1', 'C')}`, p.shape);
    }
  }
  const rows = shapeSize(lead);
  const widths = parts.map((p) => p.shape[p.ndim - 1]);
  const total = widths.reduce((s, w) => s + w, 0);
  const out = new Float32Array(rows * total);
  let offset = 0;
  for (const [k, p] of parts.entries()) {
    const w = widths[k];
    for (let r = 0; r < rows; r++) out.set(p.data.subarray(r * w, (r + 1) * w), r * total + offset);
    offset += w;
  }
  const y = new Tensor(out, [...lead, total]);
  recordOp('concatLast', parts, [y], () => {
    if (!y.grad) return;
    let off = 0;
    for (const [k, p] of parts.entries()) {
      const w = widths[k];
      if (p.requiresGrad) {
        const d = p.ensureGrad();
        for (let r = 0; r < rows; r++) for (let c = 0; c < w; c++) d[r * w + c] += y.grad[r * total + off + c];
      }
      off += w;
    }
  });
  return y;
}

/**
 * select: a [N, ...] -> a[index] [...]
 */
export function select(a: Tensor, index: number): Tensor {
  const n = a.shape[0];
  if (!Number.isInteger(index) || index < -n || index >= n) throw new RangeError(`select: index ${index} is out of range for dimension 0 of size ${n}`);
  const i = index < 0 ? index + n : index;
  const inner = a.size / n;
  const y = new Tensor(a.data.slice(i * inner, (i + 1) * inner), a.shape.slice(1));
  recordOp('select', [a], [y], () => {
    if (!y.grad || !a.requiresGrad) return;
    const d = a.ensureGrad();
    for (let k = 0; k < inner; k++) d[i * inner + k] += y.grad[k];
  });
  return y;
}

/**
 * stack: N tensors [...] -> [N, ...]
 */
export function stack(parts: Tensor[]): Tensor {
  if (parts.length === 0) throw new RangeError('stack: parts must not be empty');
  const inner = parts[0].size;
  parts.forEach((p, k) => assertSameShape('stack', parts[0], p, ['parts[0]', `parts[${k}]`]));
  const out = new Float32Array(parts.length * inner);
  parts.forEach((p, k) => out.set(p.data, k * inner));
  const y = new Tensor(out, [parts.length, ...parts[0].shape]);
  recordOp('stack', parts, [y], () => {
    if (!y.grad) return;
    parts.forEach((p, k) => addInto(p, y.grad!.subarray(k * inner, (k + 1) * inner)));
  });
  return y;
}

/**
 * matmul: a [M, K] @ b [K, N] -> [M, N]
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim !== 2) throw shapeError('matmul', 'a', '[M, K]', a.shape);
  if (b.ndim !== 2 || b.shape[0] !== a.shape[1]) throw shapeError('matmul', 'b', `[${a.shape[1]}, N]`, b.shape);
  const [M, K] = a.shape;
  const N = b.shape[1];
  const be = getBackend();
  const out = new Float32Array(M * N);
  be.gemm(false, false, M, N, K, 1, a.data, K, b.data, N, 0, out, N);
  const y = new Tensor(out, [M, N]);
  recordOp('matmul', [a, b], [y], () => {
    if (!y.grad) return;
    // da[M,K] += dy[M,N] @ b^T ; db[K,N] += a^T @ dy
    if (a.requiresGrad) be.gemm(false, true, M, K, N, 1, y.grad, N, b.data, N, 1, a.ensureGrad(), K);
    if (b.requiresGrad) be.gemm(true, false, K, N, M, 1, a.data, K, y.grad, N, 1, b.ensureGrad(), N);
  });
  return y;
}

/**
 * linear: x [..., I], weight [O, I], bias [O] -> [..., O]  (PyTorch's F.linear)
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  assertTensor('linear', 'x', x);
  const [O, I] = weight.shape;
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== I) throw shapeError('linear', 'x', `[..., ${I}]`, x.shape);
  const N = x.size / I;
  const be = getBackend();
  const out = new Float32Array(N * O);
  if (bias) {
    const b = bias.data;
    for (let n = 0; n < N; n++) out.set(b, n * O);
  }
  be.gemm(false, true, N, O, I, 1, x.data, I, weight.data, I, bias ? 1 : 0, out, O);
  const y = new Tensor(out, [...x.shape.slice(0, -1), O]);
  recordOp('linear', bias ? [x, weight, bias] : [x, weight], [y], () => {
    const dy = y.grad;
    if (!dy) return;
    // dx[N,I] += dy[N,O] @ W[O,I] ; dW[O,I] += dy^T @ x ; db[O] += sum_n dy
    if (x.requiresGrad) be.gemm(false, false, N, I, O, 1, dy, O, weight.data, I, 1, x.ensureGrad(), I);
    if (weight.requiresGrad) be.gemm(true, false, O, I, N, 1, dy, O, x.data, I, 1, weight.ensureGrad(), I);
    if (bias?.requiresGrad) addColumnSums(be, N, O, dy, bias.ensureGrad());
  });
  return y;
}

/**
 * dst[N] += column sums of x[M, N], each column summed in row order from 0 in float32 (a bias
 * gradient): on the backend when it has the kernel (native), else here, with the same bits.
 */
function addColumnSums(be: Backend, M: number, N: number, x: Float32Array, dst: Float32Array): void {
  if (be.addColumnSums) {
    be.addColumnSums(M, N, x, dst);
    return;
  }
  const sums = new Float32Array(N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) sums[n] += x[m * N + n];
  for (let n = 0; n < N; n++) dst[n] += sums[n];
}

function unary(op: UnaryOp, x: Tensor): Tensor {
  const be = getBackend();
  const out = new Float32Array(x.size);
  be.unaryForward(op, x.data, out);
  const y = new Tensor(out, x.shape);
  recordOp(op, [x], [y], () => {
    if (y.grad && x.requiresGrad) be.unaryBackward(op, x.data, y.data, y.grad, x.ensureGrad());
  });
  return y;
}

/** tanh: x [*] -> tanh(x) [*] */
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
/** sigmoid: x [*] -> 1 / (1 + exp(-x)) [*] */
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
/** relu: x [*] -> max(x, 0) [*] */
export const relu = (x: Tensor): Tensor => unary('relu', x);

/** Token ids as an Int32Array, checked against the vocabulary size. */
function toIds(where: string, arg: string, ids: ArrayLike<number>, limit: number): Int32Array {
  const out = ids instanceof Int32Array ? ids : Int32Array.from(ids as ArrayLike<number>);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isInteger(ids[i]) || out[i] < 0 || out[i] >= limit) {
      throw new RangeError(`${where}: ${arg}[${i}] = ${ids[i]} is out of range, expected an integer in 0..${limit - 1}`);
    }
  }
  return out;
}

/**
 * embedding: weight [V, E], ids [*] -> [*, E]; rows of paddingIdx get no gradient
 */
export function embedding(weight: Tensor, ids: ArrayLike<number>, idsShape: readonly number[], paddingIdx: number | null = null): Tensor {
  const [V, E] = weight.shape;
  if (shapeSize(idsShape) !== ids.length) throw shapeError('embedding', 'ids', formatShape(idsShape), `${ids.length} ids`);
  const idx = toIds('embedding', 'ids', ids, V);
  const out = new Float32Array(idx.length * E);
  const w = weight.data;
  for (let n = 0; n < idx.length; n++) {
    const row = idx[n] * E, dst = n * E;
    for (let e = 0; e < E; e++) out[dst + e] = w[row + e];
  }
  const y = new Tensor(out, [...idsShape, E]);
  recordOp('embedding', [weight], [y], () => {
    if (!y.grad) return;
    const dw = weight.ensureGrad();
    const dy = y.grad;
    for (let n = 0; n < idx.length; n++) {
      const id = idx[n];
      if (id === paddingIdx) continue;
      const row = id * E, src = n * E;
      for (let e = 0; e < E; e++) dw[row + e] += dy[src + e];
    }
  });
  return y;
}

/**
 * dropout: x [*] -> x * mask / (1 - p), mask ~ Bernoulli(1 - p); identity when not training
 */
export function dropout(x: Tensor, p: number, training: boolean, rng: Rng = defaultRng()): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), received ${p}`);
  if (!training || p === 0) return x;
  const keep = 1 / (1 - p);
  const mask = new Float32Array(x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.next() >= p ? keep : 0;
  const out = new Float32Array(x.size);
  const xd = x.data;
  for (let i = 0; i < out.length; i++) out[i] = xd[i] * mask[i];
  const y = new Tensor(out, x.shape);
  recordOp('dropout', [x], [y], () => {
    if (!y.grad || !x.requiresGrad) return;
    const d = x.ensureGrad();
    for (let i = 0; i < d.length; i++) d[i] += y.grad[i] * mask[i];
  });
  return y;
}

/** How a loss combines its elements: 'mean', 'sum' or 'none' (one value per element). */
export type Reduction = 'mean' | 'sum' | 'none';

/** Options of `crossEntropy`: the ignored class id, a per-target mask, the reduction. */
export interface CrossEntropyOptions {
  /** Targets equal to this are ignored (PyTorch's default -100). */
  ignoreIndex?: number;
  /** Alternatively a mask: rows with mask 0 are ignored. */
  mask?: ArrayLike<number> | null;
  /** 'mean' averages over the real (not ignored) rows, as PyTorch does. */
  reduction?: Reduction;
}

/**
 * crossEntropy: logits [N, C] (or [..., C]), targets [N] class ids -> [] (mean/sum) or [N] (none)
 */
export function crossEntropy(logits: Tensor, targets: ArrayLike<number>, options: CrossEntropyOptions = {}): Tensor {
  assertTensor('crossEntropy', 'logits', logits);
  const ignoreIndex = options.ignoreIndex ?? -100;
  const reduction = options.reduction ?? 'mean';
  const C = logits.shape[logits.ndim - 1];
  const N = logits.size / C;
  if (logits.ndim < 1 || !Number.isInteger(N)) throw shapeError('crossEntropy', 'logits', '[N, C]', logits.shape);
  if (targets.length !== N) throw shapeError('crossEntropy', 'targets', `[${N}] (one class id per row of logits ${formatShape(logits.shape)})`, `[${targets.length}]`);
  if (options.mask && options.mask.length !== N) throw shapeError('crossEntropy', 'mask', `[${N}]`, `[${options.mask.length}]`);
  const t = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    const ignored = targets[n] === ignoreIndex || (options.mask ? options.mask[n] === 0 : false);
    if (!ignored && (!Number.isInteger(targets[n]) || targets[n] < 0 || targets[n] >= C)) {
      throw new RangeError(`crossEntropy: targets[${n}] = ${targets[n]} is out of range, expected 0..${C - 1} or ignoreIndex ${ignoreIndex}`);
    }
    t[n] = ignored ? -1 : targets[n];
  }
  const be = getBackend();
  const probs = new Float32Array(N * C);
  const losses = new Float32Array(N);
  be.crossEntropyForward(N, C, logits.data, t, -1, probs, losses);
  let real = 0;
  for (let n = 0; n < N; n++) if (t[n] !== -1) real++;
  let y: Tensor;
  const dLosses = new Float32Array(N);
  if (reduction === 'none') {
    y = new Tensor(losses, [N]);
  } else {
    let total = 0;
    for (let n = 0; n < N; n++) total += losses[n];
    // PyTorch: the mean over zero real rows is NaN
    y = Tensor.scalar(reduction === 'mean' ? total / real : total);
  }
  recordOp('crossEntropy', [logits], [y], () => {
    if (!y.grad || !logits.requiresGrad) return;
    const w = reduction === 'mean' ? y.grad[0] / real : y.grad[0];
    for (let n = 0; n < N; n++) dLosses[n] = reduction === 'none' ? y.grad[n] : w;
    be.crossEntropyBackward(N, C, probs, t, -1, dLosses, logits.ensureGrad());
  });
  return y;
}

function reduce(where: string, values: Float64Array, shape: readonly number[], reduction: Reduction): { y: Tensor; weight: number } {
  if (reduction === 'none') return { y: new Tensor(Float32Array.from(values), shape), weight: 1 };
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i];
  if (reduction !== 'mean' && reduction !== 'sum') throw new RangeError(`${where}: reduction must be mean, sum or none, received ${String(reduction)}`);
  const weight = reduction === 'mean' ? 1 / values.length : 1;
  return { y: Tensor.scalar(total * weight), weight };
}

/**
 * mseLoss: pred [*], target [*] -> [] ((pred - target)^2 averaged)
 */
export function mseLoss(pred: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  assertSameShape('mseLoss', pred, target, ['pred', 'target']);
  const diff = new Float64Array(pred.size);
  const pd = pred.data, td = target.data;
  for (let i = 0; i < diff.length; i++) diff[i] = pd[i] - td[i];
  const { y, weight } = reduce('mseLoss', diff.map((d) => d * d), pred.shape, reduction);
  recordOp('mseLoss', [pred, target], [y], () => {
    if (!y.grad) return;
    const g = (i: number) => 2 * diff[i] * (reduction === 'none' ? y.grad![i] : y.grad![0] * weight);
    if (pred.requiresGrad) { const d = pred.ensureGrad(); for (let i = 0; i < d.length; i++) d[i] += g(i); }
    if (target.requiresGrad) { const d = target.ensureGrad(); for (let i = 0; i < d.length; i++) d[i] -= g(i); }
  });
  return y;
}

/**
 * bceWithLogits: logits [*], targets [*] in [0, 1] -> [] (numerically stable, PyTorch's form)
 */
export function bceWithLogits(logits: Tensor, targets: Tensor, reduction: Reduction = 'mean'): Tensor {
  assertSameShape('bceWithLogits', logits, targets, ['logits', 'targets']);
  const n = logits.size;
  const losses = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = logits.data[i];
    const z = targets.data[i];
    losses[i] = Math.max(x, 0) - x * z + Math.log1p(Math.exp(-Math.abs(x)));
  }
  const { y, weight } = reduce('bceWithLogits', losses, logits.shape, reduction);
  recordOp('bceWithLogits', [logits, targets], [y], () => {
    if (!y.grad) return;
    for (let i = 0; i < n; i++) {
      const g = reduction === 'none' ? y.grad[i] : y.grad[0] * weight;
      const x = logits.data[i];
      if (logits.requiresGrad) logits.ensureGrad()[i] += g * (1 / (1 + Math.exp(-x)) - targets.data[i]);
      if (targets.requiresGrad) targets.ensureGrad()[i] -= g * x;
    }
  });
  return y;
}

/** Softmax of logits / temperature in float64 (ids in `banned` get probability 0). The one softmax of plain arrays. */
export function softmaxProbs(logits: ArrayLike<number>, temperature = 1, banned: readonly number[] = []): Float64Array {
  const n = logits.length;
  const out = new Float64Array(n);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (!banned.includes(i)) max = Math.max(max, logits[i] / temperature);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const e = banned.includes(i) ? 0 : Math.exp(logits[i] / temperature - max);
    out[i] = e;
    s += e;
  }
  for (let i = 0; i < n; i++) out[i] /= s;
  return out;
}

/** log-softmax of each row of logits [N, V] (plain arrays, no gradient). */
export function logSoftmaxRows(logits: Float32Array, V: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / V; r++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[r * V + v]);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[r * V + v] - max);
    const lz = max + Math.log(z);
    for (let v = 0; v < V; v++) out[r * V + v] = logits[r * V + v] - lz;
  }
  return out;
}

/** Softmax over the last dimension (no gradient: for sampling and probabilities). */
export function softmax(logits: Tensor, temperature = 1): Tensor {
  const C = logits.shape[logits.ndim - 1];
  const out = new Float32Array(logits.size);
  for (let r = 0; r < logits.size / C; r++) out.set(softmaxProbs(logits.data.subarray(r * C, (r + 1) * C), temperature), r * C);
  return new Tensor(out, logits.shape);
}

export { needsGrad };
