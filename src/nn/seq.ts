// Variable-length sequence helpers: padding a list of sequences into a time-major batch with
// lengths, and differentiable masked pooling over time (mean, max, the last real step) and a
// masked dot-product attention. Every op takes lengths [B] (1..T, any order) so padded steps
// never influence a result or receive a gradient.
import { shapeError } from '../core/ops.js';
import { Tensor, formatShape, recordOp } from '../core/tensor.js';

/** Sequences of different lengths padded into one time-major [T, B] batch, with their lengths. */
export interface PaddedBatch {
  /** [T, B] time-major ids (or values), padValue past each sequence's length. */
  data: Int32Array;
  /** Number of time steps (the longest sequence, or maxLength). */
  T: number;
  /** Number of sequences. */
  B: number;
  /** [B] real length of each sequence (at least 1: an empty sequence becomes one pad step). */
  lengths: Int32Array;
  /** [T * B] 1 for a real step, 0 for padding (time-major, like data). */
  mask: Float32Array;
}

/**
 * Options of `padSequences`: padding value, and a maximum length (longer sequences throw, or are
 * cut with `truncate`).
 */
export interface PadOptions {
  /** The value written past each sequence's end (default 0). */
  padValue?: number;
  /** Sequences longer than this are truncated (keeping the first maxLength items, or the last with truncate: 'start'). */
  maxLength?: number;
  /** Which end to cut when truncating (default 'end'). */
  truncate?: 'start' | 'end';
}

/**
 * Pads a list of integer sequences into a time-major [T, B] batch with lengths, ready for
 * Embedding.forward(data, [T, B]) and RNN.forward(x, { lengths }).
 */
export function padSequences(seqs: ReadonlyArray<ArrayLike<number>>, options: PadOptions = {}): PaddedBatch {
  if (!Array.isArray(seqs) || seqs.length === 0) throw new RangeError('padSequences: seqs must be a non-empty array of sequences');
  const padValue = options.padValue ?? 0;
  const cap = options.maxLength ?? Infinity;
  if (!(cap >= 1)) throw new RangeError(`padSequences: maxLength must be at least 1, received ${options.maxLength}`);
  const B = seqs.length;
  const lengths = new Int32Array(B);
  for (let b = 0; b < B; b++) lengths[b] = Math.max(1, Math.min(cap, seqs[b].length));
  let T = 0;
  for (let b = 0; b < B; b++) T = Math.max(T, lengths[b]);
  const data = new Int32Array(T * B).fill(padValue);
  const mask = new Float32Array(T * B);
  for (let b = 0; b < B; b++) {
    const s = seqs[b];
    const start = options.truncate === 'start' ? Math.max(0, s.length - lengths[b]) : 0;
    for (let t = 0; t < lengths[b]; t++) {
      if (t < s.length) data[t * B + b] = s[start + t];
      mask[t * B + b] = 1;
    }
  }
  return { data, T, B, lengths, mask };
}

/**
 * Pads a list of real-valued sequences of feature vectors ([len_b][F]) into a time-major
 * [T, B, F] tensor with lengths.
 */
export function padFeatureSequences(seqs: ReadonlyArray<ReadonlyArray<ArrayLike<number>>>, padValue = 0): { x: Tensor; lengths: Int32Array } {
  if (!Array.isArray(seqs) || seqs.length === 0) throw new RangeError('padFeatureSequences: seqs must be a non-empty array of sequences');
  const B = seqs.length;
  const F = seqs.find((s) => s.length > 0)?.[0].length ?? 1;
  const lengths = Int32Array.from(seqs, (s) => Math.max(1, s.length));
  const T = Math.max(...lengths);
  const out = new Float32Array(T * B * F).fill(padValue);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < seqs[b].length; t++) {
      const v = seqs[b][t];
      if (v.length !== F) throw new RangeError(`padFeatureSequences: seqs[${b}][${t}] has ${v.length} features, expected ${F}`);
      for (let f = 0; f < F; f++) out[(t * B + b) * F + f] = v[f];
    }
  }
  return { x: new Tensor(out, [T, B, F]), lengths };
}

/** [T * B] time-major mask (1 real, 0 padding) from lengths. */
export function lengthMask(lengths: ArrayLike<number>, T: number): Float32Array {
  const B = lengths.length;
  const mask = new Float32Array(T * B);
  for (let b = 0; b < B; b++) for (let t = 0; t < Math.min(T, lengths[b]); t++) mask[t * B + b] = 1;
  return mask;
}

function checkSeq(where: string, x: Tensor, lengths: ArrayLike<number> | null | undefined): { T: number; B: number; C: number; len: Int32Array } {
  if (!(x instanceof Tensor) || x.ndim !== 3) throw shapeError(where, 'x', '[T, B, C]', x instanceof Tensor ? x.shape : String(x));
  const [T, B, C] = x.shape;
  const len = new Int32Array(B);
  if (lengths === null || lengths === undefined) {
    len.fill(T);
  } else {
    if (lengths.length !== B) throw new RangeError(`${where}: lengths must have one entry per sequence (${B}), received ${lengths.length}`);
    for (let b = 0; b < B; b++) {
      const v = lengths[b];
      if (!Number.isInteger(v) || v < 1 || v > T) throw new RangeError(`${where}: lengths[${b}] = ${v} is out of range, expected an integer in 1..${T}`);
      len[b] = v;
    }
  }
  return { T, B, C, len };
}

/**
 * maskedMeanPool: x [T, B, C], lengths [B] -> [B, C], the mean over each sequence's real steps.
 * backward: dx[t, b, :] = dy[b, :] / len_b for t < len_b, 0 on padding.
 */
export function maskedMeanPool(x: Tensor, lengths?: ArrayLike<number> | null): Tensor {
  const { B, C, len } = checkSeq('maskedMeanPool', x, lengths);
  const out = new Float32Array(B * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < len[b]; t++) {
      const base = (t * B + b) * C;
      for (let c = 0; c < C; c++) out[b * C + c] += x.data[base + c];
    }
    for (let c = 0; c < C; c++) out[b * C + c] /= len[b];
  }
  const y = new Tensor(out, [B, C]);
  recordOp('maskedMeanPool', [x], [y], () => {
    if (!y.grad || !x.requiresGrad) return;
    const dx = x.ensureGrad();
    for (let b = 0; b < B; b++) {
      const w = 1 / len[b];
      for (let t = 0; t < len[b]; t++) {
        const base = (t * B + b) * C;
        for (let c = 0; c < C; c++) dx[base + c] += y.grad[b * C + c] * w;
      }
    }
  });
  return y;
}

/**
 * maskedMaxPool: x [T, B, C], lengths [B] -> [B, C], the max over each sequence's real steps.
 * backward: the gradient goes to the (first) arg-max step of each (b, c); padding gets none.
 */
export function maskedMaxPool(x: Tensor, lengths?: ArrayLike<number> | null): Tensor {
  const { B, C, len } = checkSeq('maskedMaxPool', x, lengths);
  const out = new Float32Array(B * C).fill(-Infinity);
  const arg = new Int32Array(B * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < len[b]; t++) {
      const base = (t * B + b) * C;
      for (let c = 0; c < C; c++) {
        const v = x.data[base + c];
        if (v > out[b * C + c]) { out[b * C + c] = v; arg[b * C + c] = t; }
      }
    }
  }
  const y = new Tensor(out, [B, C]);
  recordOp('maskedMaxPool', [x], [y], () => {
    if (!y.grad || !x.requiresGrad) return;
    const dx = x.ensureGrad();
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) dx[(arg[b * C + c] * B + b) * C + c] += y.grad[b * C + c];
  });
  return y;
}

/**
 * lastStep: x [T, B, C], lengths [B] -> [B, C], x[len_b - 1, b, :] (the last real step).
 * backward: dx[len_b - 1, b, :] += dy[b, :].
 */
export function lastStep(x: Tensor, lengths?: ArrayLike<number> | null): Tensor {
  const { B, C, len } = checkSeq('lastStep', x, lengths);
  const out = new Float32Array(B * C);
  for (let b = 0; b < B; b++) out.set(x.data.subarray(((len[b] - 1) * B + b) * C, ((len[b] - 1) * B + b + 1) * C), b * C);
  const y = new Tensor(out, [B, C]);
  recordOp('lastStep', [x], [y], () => {
    if (!y.grad || !x.requiresGrad) return;
    const dx = x.ensureGrad();
    for (let b = 0; b < B; b++) {
      const base = ((len[b] - 1) * B + b) * C;
      for (let c = 0; c < C; c++) dx[base + c] += y.grad[b * C + c];
    }
  });
  return y;
}

/**
 * timeSlice: x [T, B, C] -> x[from:to] [to - from, B, C] (e.g. the last K steps as targets).
 */
export function timeSlice(x: Tensor, from: number, to: number): Tensor {
  if (!(x instanceof Tensor) || x.ndim !== 3) throw shapeError('timeSlice', 'x', '[T, B, C]', x instanceof Tensor ? x.shape : String(x));
  const [T, B, C] = x.shape;
  if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && to <= T && from < to)) {
    throw new RangeError(`timeSlice: need 0 <= from < to <= ${T}, received from ${from}, to ${to}`);
  }
  const inner = B * C;
  const y = new Tensor(x.data.slice(from * inner, to * inner), [to - from, B, C]);
  recordOp('timeSlice', [x], [y], () => {
    if (!y.grad || !x.requiresGrad) return;
    const dx = x.ensureGrad();
    for (let i = 0; i < y.size; i++) dx[from * inner + i] += y.grad[i];
  });
  return y;
}

/**
 * dotAttention (Luong's global "dot" attention, keys = values):
 *   query [Tq, B, C], keys [Tk, B, C], keyLengths [B] -> context [Tq, B, C]
 *   score[q, k] = query[q] . keys[k] (k < len_b; padding excluded), a = softmax_k(score),
 *   context[q] = sum_k a[q, k] keys[k].  Also returns the weights [Tq, B, Tk] (no gradient).
 * backward: da[q,k] = dctx[q] . keys[k]; ds = a * (da - sum_k a da);
 *   dquery[q] += sum_k ds[q,k] keys[k]; dkeys[k] += sum_q (a[q,k] dctx[q] + ds[q,k] query[q]).
 */
export function dotAttention(query: Tensor, keys: Tensor, keyLengths?: ArrayLike<number> | null): { context: Tensor; weights: Float32Array } {
  const q = checkSeq('dotAttention', query, null);
  const k = checkSeq('dotAttention', keys, keyLengths);
  if (q.B !== k.B || q.C !== k.C) throw shapeError('dotAttention', 'keys', `[Tk, ${q.B}, ${q.C}] (matching query ${formatShape(query.shape)})`, keys.shape);
  const { T: Tq, B, C } = q;
  const Tk = k.T;
  const len = k.len;
  const a = new Float32Array(Tq * B * Tk);
  const out = new Float32Array(Tq * B * C);
  const qd = query.data;
  const kd = keys.data;
  for (let t = 0; t < Tq; t++) {
    for (let b = 0; b < B; b++) {
      const qo = (t * B + b) * C;
      const ao = (t * B + b) * Tk;
      let max = -Infinity;
      for (let s = 0; s < len[b]; s++) {
        const ko = (s * B + b) * C;
        let dot = 0;
        for (let c = 0; c < C; c++) dot += qd[qo + c] * kd[ko + c];
        a[ao + s] = dot;
        if (dot > max) max = dot;
      }
      let z = 0;
      for (let s = 0; s < len[b]; s++) { const e = Math.exp(a[ao + s] - max); a[ao + s] = e; z += e; }
      for (let s = 0; s < len[b]; s++) {
        const w = a[ao + s] / z;
        a[ao + s] = w;
        const ko = (s * B + b) * C;
        for (let c = 0; c < C; c++) out[qo + c] += w * kd[ko + c];
      }
    }
  }
  const context = new Tensor(out, [Tq, B, C]);
  recordOp('dotAttention', [query, keys], [context], () => {
    const dctx = context.grad;
    if (!dctx) return;
    const dq = query.requiresGrad ? query.ensureGrad() : null;
    const dk = keys.requiresGrad ? keys.ensureGrad() : null;
    const da = new Float64Array(Tk);
    for (let t = 0; t < Tq; t++) {
      for (let b = 0; b < B; b++) {
        const qo = (t * B + b) * C;
        const ao = (t * B + b) * Tk;
        let dot = 0;
        for (let s = 0; s < len[b]; s++) {
          const ko = (s * B + b) * C;
          let v = 0;
          for (let c = 0; c < C; c++) v += dctx[qo + c] * kd[ko + c];
          da[s] = v;
          dot += a[ao + s] * v;
        }
        for (let s = 0; s < len[b]; s++) {
          const w = a[ao + s];
          const ds = w * (da[s] - dot);
          const ko = (s * B + b) * C;
          if (dq) for (let c = 0; c < C; c++) dq[qo + c] += ds * kd[ko + c];
          if (dk) for (let c = 0; c < C; c++) dk[ko + c] += w * dctx[qo + c] + ds * qd[qo + c];
        }
      }
    }
  });
  return { context, weights: a };
}
