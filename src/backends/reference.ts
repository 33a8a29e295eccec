// The reference backend: every kernel in plain TypeScript, written for clarity, not speed.
// It is the readable specification the native and wasm backends are checked against.
//
// The kernels work on Float32Array and equally on Float64Array (scratch buffers take the type of
// the input), which the tests use for float64 finite-difference gradient checks.
import {
  type AdamArgs, type Backend, type BackendInfo, type MatmulPrecision, type SeqBackwardArgs, type SeqContext,
  type SeqForwardArgs, type SgdArgs, type UnaryOp, gateCount, recurrentSize,
} from './backend.js';
import {
  assertAdamArgs, assertCrossEntropyBackwardArgs, assertCrossEntropyForwardArgs, assertGemmArgs, assertMatmulPrecision,
  assertSeqBackwardArgs, assertSeqForwardArgs, assertSgdArgs, assertSumSquaresArgs, assertUnaryArgs,
} from './validate.js';

/** The arrays the reference kernels compute on: float32, or float64 for the finite-difference checks. */
export type FloatArray = Float32Array | Float64Array;

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
/** relu as PyTorch: NaN stays NaN. */
const relu = (v: number): number => (v > 0 || Number.isNaN(v) ? v : 0);

function alloc(like: FloatArray, n: number): FloatArray {
  return like instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

/** Saved activations of one forward call, all indexed by real time step t. */
interface ReferenceSeqContext extends SeqContext {
  args: SeqForwardArgs;
  /** [T, B, G*H] activated gates: LSTM i,f,g,o; GRU r,z,n; RNN the new state h. */
  gates: FloatArray;
  /** [T, B, H] LSTM cell state c_t; GRU: W_hn h_{t-1} + b_hn (needed for dr). */
  cells: FloatArray;
  /** [T, B, H] LSTM o * tanh(c_t) before projection (only when P > 0). */
  hRaw: FloatArray | null;
  /** [T, B, R] the recurrent state h_t after step t. */
  states: FloatArray;
}

/** Time index of processing step s for sequence b (forward: s; reverse: len-1-s), or -1. */
function timeOfStep(s: number, len: number, reverse: boolean): number {
  if (s >= len) return -1;
  return reverse ? len - 1 - s : s;
}

/** Time index of the step processed before t (t-1 forward, t+1 reverse), or -1 for h0. */
function previousTime(t: number, len: number, reverse: boolean): number {
  const p = reverse ? t + 1 : t - 1;
  return p < 0 || p >= len ? -1 : p;
}

// seqForward: x [T,B,I], wIh [G*H,I], wHh [G*H,R], b* [G*H], wHr [P,H], h0 [B,R], c0 [B,H]
//   -> y [T,B,yStride] (cols yOffset..+R), hN [B,R], cN [B,H]
function seqForwardReference(a: SeqForwardArgs): ReferenceSeqContext {
  const { cell, T, B, I, H, P, reverse, x, wIh, wHh, bIh, bHh, wHr, h0, c0, lengths } = a;
  const G = gateCount(cell) * H;
  const R = recurrentSize(H, P);
  const gates = alloc(x, T * B * G);
  const cells = alloc(x, cell === 'rnn_tanh' || cell === 'rnn_relu' ? 0 : T * B * H);
  const hRaw = P > 0 ? alloc(x, T * B * H) : null;
  const states = alloc(x, T * B * R);
  const pre = new Float64Array(G); // input part + biases
  const rec = new Float64Array(G); // recurrent part W_hh h + b_hh
  const hPrev = new Float64Array(R);
  const cPrev = new Float64Array(H);

  for (let b = 0; b < B; b++) {
    const len = lengths ? lengths[b] : T;
    // rows past the length are zero
    for (let t = len; t < T; t++) {
      for (let r = 0; r < R; r++) a.y[(t * B + b) * a.yStride + a.yOffset + r] = 0;
    }
    for (let s = 0; s < len; s++) {
      const t = timeOfStep(s, len, reverse);
      const tp = previousTime(t, len, reverse);
      for (let r = 0; r < R; r++) {
        hPrev[r] = tp < 0 ? (h0 ? h0[b * R + r] : 0) : states[(tp * B + b) * R + r];
      }
      if (cell === 'lstm') {
        for (let j = 0; j < H; j++) cPrev[j] = tp < 0 ? (c0 ? c0[b * H + j] : 0) : cells[(tp * B + b) * H + j];
      }
      for (let g = 0; g < G; g++) {
        let acc = bIh ? bIh[g] : 0;
        for (let i = 0; i < I; i++) acc += wIh[g * I + i] * x[(t * B + b) * I + i];
        pre[g] = acc;
        let accH = bHh ? bHh[g] : 0;
        for (let r = 0; r < R; r++) accH += wHh[g * R + r] * hPrev[r];
        rec[g] = accH;
      }
      const gateRow = (t * B + b) * G;
      const stateRow = (t * B + b) * R;
      if (cell === 'lstm') {
        for (let j = 0; j < H; j++) {
          const ig = sigmoid(pre[j] + rec[j]);
          const fg = sigmoid(pre[H + j] + rec[H + j]);
          const gg = Math.tanh(pre[2 * H + j] + rec[2 * H + j]);
          const og = sigmoid(pre[3 * H + j] + rec[3 * H + j]);
          gates[gateRow + j] = ig;
          gates[gateRow + H + j] = fg;
          gates[gateRow + 2 * H + j] = gg;
          gates[gateRow + 3 * H + j] = og;
          const c = fg * cPrev[j] + ig * gg;
          cells[(t * B + b) * H + j] = c;
          const h = og * Math.tanh(c);
          if (hRaw) hRaw[(t * B + b) * H + j] = h;
          else states[stateRow + j] = h;
        }
        if (hRaw && wHr) {
          for (let p = 0; p < P; p++) {
            let acc = 0;
            for (let j = 0; j < H; j++) acc += wHr[p * H + j] * hRaw[(t * B + b) * H + j];
            states[stateRow + p] = acc;
          }
        }
      } else if (cell === 'gru') {
        for (let j = 0; j < H; j++) {
          const rg = sigmoid(pre[j] + rec[j]);
          const zg = sigmoid(pre[H + j] + rec[H + j]);
          const ng = Math.tanh(pre[2 * H + j] + rg * rec[2 * H + j]);
          gates[gateRow + j] = rg;
          gates[gateRow + H + j] = zg;
          gates[gateRow + 2 * H + j] = ng;
          cells[(t * B + b) * H + j] = rec[2 * H + j];
          states[stateRow + j] = (1 - zg) * ng + zg * hPrev[j];
        }
      } else {
        for (let j = 0; j < H; j++) {
          const v = pre[j] + rec[j];
          const h = cell === 'rnn_tanh' ? Math.tanh(v) : relu(v);
          gates[gateRow + j] = h;
          states[stateRow + j] = h;
        }
      }
      for (let r = 0; r < R; r++) a.y[(t * B + b) * a.yStride + a.yOffset + r] = states[stateRow + r];
    }
    // final state: after the last processed step (t = len-1 forward, t = 0 reverse)
    const tLast = reverse ? 0 : len - 1;
    for (let r = 0; r < R; r++) a.hN[b * R + r] = states[(tLast * B + b) * R + r];
    if (cell === 'lstm' && a.cN) {
      for (let j = 0; j < H; j++) a.cN[b * H + j] = cells[(tLast * B + b) * H + j];
    }
  }
  return { backend: 'reference', args: a, gates, cells, hRaw, states };
}

// seqBackward: dy [T,B,dyStride], dhN [B,R], dcN [B,H]
//   -> dx [T,B,I], dh0 [B,R], dc0 [B,H], dWIh [G*H,I], dWHh [G*H,R], dB* [G*H], dWHr [P,H]  (all +=)
function seqBackwardReference(d: SeqBackwardArgs): void {
  const ctx = d.ctx as ReferenceSeqContext;
  const { cell, T, B, I, H, P, reverse, x, wIh, wHh, wHr, h0, c0, lengths } = ctx.args;
  const { gates, cells, hRaw, states } = ctx;
  const G = gateCount(cell) * H;
  const R = recurrentSize(H, P);
  const dh = new Float64Array(R); // gradient reaching h_t
  const dhRaw = new Float64Array(H);
  const dGi = new Float64Array(G); // gradient of the input pre-activations (W_ih x + b_ih)
  const dGh = new Float64Array(G); // gradient of the recurrent pre-activations (W_hh h + b_hh)
  const hPrev = new Float64Array(R);

  for (let b = 0; b < B; b++) {
    const len = lengths ? lengths[b] : T;
    const dhNext = new Float64Array(R); // gradient flowing into the state of the previous step
    const dcNext = new Float64Array(H);
    for (let r = 0; r < R; r++) dhNext[r] = d.dhN ? d.dhN[b * R + r] : 0;
    if (cell === 'lstm') for (let j = 0; j < H; j++) dcNext[j] = d.dcN ? d.dcN[b * H + j] : 0;

    for (let s = len - 1; s >= 0; s--) {
      const t = timeOfStep(s, len, reverse);
      const tp = previousTime(t, len, reverse);
      for (let r = 0; r < R; r++) {
        hPrev[r] = tp < 0 ? (h0 ? h0[b * R + r] : 0) : states[(tp * B + b) * R + r];
        dh[r] = dhNext[r] + (d.dy ? d.dy[(t * B + b) * d.dyStride + d.dyOffset + r] : 0);
      }
      const gateRow = (t * B + b) * G;
      if (cell === 'lstm') {
        if (P > 0 && hRaw && wHr) {
          for (let j = 0; j < H; j++) {
            let acc = 0;
            for (let p = 0; p < P; p++) acc += wHr[p * H + j] * dh[p];
            dhRaw[j] = acc;
          }
          if (d.dWHr) {
            for (let p = 0; p < P; p++) {
              for (let j = 0; j < H; j++) d.dWHr[p * H + j] += dh[p] * hRaw[(t * B + b) * H + j];
            }
          }
        } else {
          for (let j = 0; j < H; j++) dhRaw[j] = dh[j];
        }
        for (let j = 0; j < H; j++) {
          const ig = gates[gateRow + j];
          const fg = gates[gateRow + H + j];
          const gg = gates[gateRow + 2 * H + j];
          const og = gates[gateRow + 3 * H + j];
          const c = cells[(t * B + b) * H + j];
          const cPrev = tp < 0 ? (c0 ? c0[b * H + j] : 0) : cells[(tp * B + b) * H + j];
          const tc = Math.tanh(c);
          const dc = dcNext[j] + dhRaw[j] * og * (1 - tc * tc);
          dGi[j] = dc * gg * ig * (1 - ig);
          dGi[H + j] = dc * cPrev * fg * (1 - fg);
          dGi[2 * H + j] = dc * ig * (1 - gg * gg);
          dGi[3 * H + j] = dhRaw[j] * tc * og * (1 - og);
          dcNext[j] = dc * fg;
        }
        dGh.set(dGi);
      } else if (cell === 'gru') {
        for (let j = 0; j < H; j++) {
          const rg = gates[gateRow + j];
          const zg = gates[gateRow + H + j];
          const ng = gates[gateRow + 2 * H + j];
          const hn = cells[(t * B + b) * H + j];
          const dn = dh[j] * (1 - zg) * (1 - ng * ng);
          const dz = dh[j] * (hPrev[j] - ng) * zg * (1 - zg);
          const dr = dn * hn * rg * (1 - rg);
          dGi[j] = dr; dGh[j] = dr;
          dGi[H + j] = dz; dGh[H + j] = dz;
          dGi[2 * H + j] = dn; dGh[2 * H + j] = dn * rg;
        }
      } else {
        for (let j = 0; j < H; j++) {
          const h = gates[gateRow + j];
          const dpre = cell === 'rnn_tanh' ? dh[j] * (1 - h * h) : (h > 0 ? dh[j] : 0);
          dGi[j] = dpre; dGh[j] = dpre;
        }
      }
      // the direct path h_{t-1} -> h_t of the GRU, then W_hh^T dGh
      for (let r = 0; r < R; r++) dhNext[r] = cell === 'gru' ? dh[r] * gates[gateRow + H + r] : 0;
      for (let g = 0; g < G; g++) {
        const gi = dGi[g];
        const gh = dGh[g];
        if (d.dBIh) d.dBIh[g] += gi;
        if (d.dBHh) d.dBHh[g] += gh;
        for (let i = 0; i < I; i++) {
          if (d.dWIh) d.dWIh[g * I + i] += gi * x[(t * B + b) * I + i];
          if (d.dx) d.dx[(t * B + b) * I + i] += gi * wIh[g * I + i];
        }
        for (let r = 0; r < R; r++) {
          if (d.dWHh) d.dWHh[g * R + r] += gh * hPrev[r];
          dhNext[r] += gh * wHh[g * R + r];
        }
      }
    }
    if (d.dh0) for (let r = 0; r < R; r++) d.dh0[b * R + r] += dhNext[r];
    if (d.dc0 && cell === 'lstm') for (let j = 0; j < H; j++) d.dc0[b * H + j] += dcNext[j];
  }
}

/**
 * The kernels in plain TypeScript: the readable specification the other backends are checked
 * against; always available, slow.
 */
export class ReferenceBackend implements Backend {
  readonly name = 'reference';

  info(): BackendInfo {
    return { isa: 'ts', threads: 1, matmul: 'fp32', detail: 'plain TypeScript reference kernels' };
  }

  /** Accepted for the registry; 'medium' only permits bf16, and these kernels stay fp32. */
  setMatmulPrecision(p: MatmulPrecision): void {
    assertMatmulPrecision('reference.setMatmulPrecision', p);
  }

  // C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: FloatArray, lda: number, B: FloatArray, ldb: number,
    beta: number, C: FloatArray, ldc: number,
  ): void {
    assertGemmArgs('reference', transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? A[k * lda + m] : A[m * lda + k];
          const bv = transB ? B[n * ldb + k] : B[k * ldb + n];
          acc += av * bv;
        }
        C[m * ldc + n] = alpha * acc + (beta === 0 ? 0 : beta * C[m * ldc + n]);
      }
    }
  }

  seqForward(args: SeqForwardArgs): SeqContext | null {
    assertSeqForwardArgs('reference', args);
    const ctx = seqForwardReference(args);
    return args.training ? ctx : null;
  }

  seqBackward(args: SeqBackwardArgs): void {
    const ctx = args.ctx as ReferenceSeqContext;
    if (ctx.backend !== 'reference') throw new Error(`reference.seqBackward: context from backend '${ctx.backend}'`);
    assertSeqBackwardArgs('reference', ctx.args, args);
    seqBackwardReference(args);
  }

  // y[n] = op(x[n])
  unaryForward(op: UnaryOp, x: FloatArray, y: FloatArray): void {
    assertUnaryArgs('reference', op, x, y);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      y[i] = op === 'tanh' ? Math.tanh(v) : op === 'sigmoid' ? sigmoid(v) : relu(v);
    }
  }

  // dx[n] += dy[n] * op'(x[n])
  unaryBackward(op: UnaryOp, x: FloatArray, y: FloatArray, dy: FloatArray, dx: FloatArray): void {
    assertUnaryArgs('reference', op, x, y, { dy, dx });
    for (let i = 0; i < dy.length; i++) {
      // relu passes dy where x > 0 (a select, so an inf or NaN dy elsewhere gives 0)
      if (op === 'relu') dx[i] += x[i] > 0 ? dy[i] : 0;
      else dx[i] += dy[i] * (op === 'tanh' ? 1 - y[i] * y[i] : y[i] * (1 - y[i]));
    }
  }

  // logits [N,C], targets [N] -> probs [N,C], losses [N]
  crossEntropyForward(
    N: number, C: number, logits: FloatArray, targets: Int32Array, ignoreIndex: number,
    probs: FloatArray, losses: FloatArray,
  ): void {
    assertCrossEntropyForwardArgs('reference', N, C, logits, targets, ignoreIndex, probs, losses);
    for (let n = 0; n < N; n++) {
      let max = -Infinity;
      for (let c = 0; c < C; c++) max = Math.max(max, logits[n * C + c]);
      let sum = 0;
      for (let c = 0; c < C; c++) sum += Math.exp(logits[n * C + c] - max);
      const logSum = max + Math.log(sum);
      for (let c = 0; c < C; c++) probs[n * C + c] = Math.exp(logits[n * C + c] - logSum);
      const target = targets[n];
      losses[n] = target === ignoreIndex ? 0 : logSum - logits[n * C + target];
    }
  }

  // dLogits [N,C] += dLosses[n] * (probs - onehot)
  crossEntropyBackward(
    N: number, C: number, probs: FloatArray, targets: Int32Array, ignoreIndex: number,
    dLosses: FloatArray, dLogits: FloatArray,
  ): void {
    assertCrossEntropyBackwardArgs('reference', N, C, probs, targets, ignoreIndex, dLosses, dLogits);
    for (let n = 0; n < N; n++) {
      const target = targets[n];
      if (target === ignoreIndex) continue;
      const g = dLosses[n];
      for (let c = 0; c < C; c++) dLogits[n * C + c] += g * (probs[n * C + c] - (c === target ? 1 : 0));
    }
  }

  sumSquares(x: FloatArray): number {
    assertSumSquaresArgs('reference', x);
    let acc = 0;
    for (let i = 0; i < x.length; i++) acc += x[i] * x[i];
    return acc;
  }

  adamUpdate(a: AdamArgs): void {
    assertAdamArgs('reference', a);
    const { param, grad, m, v, lr, beta1, beta2, eps, weightDecay, decoupled, step } = a;
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2 = 1 - Math.pow(beta2, step);
    const stepSize = lr / bc1;
    const bc2Sqrt = Math.sqrt(bc2);
    for (let i = 0; i < param.length; i++) {
      let g = grad[i];
      if (decoupled) param[i] *= 1 - lr * weightDecay;
      else if (weightDecay !== 0) g += weightDecay * param[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      param[i] -= stepSize * m[i] / (Math.sqrt(v[i]) / bc2Sqrt + eps);
    }
  }

  sgdUpdate(a: SgdArgs): void {
    assertSgdArgs('reference', a);
    const { param, grad, momentumBuffer, lr, momentum, dampening, weightDecay, nesterov, firstStep } = a;
    for (let i = 0; i < param.length; i++) {
      let g = grad[i] + weightDecay * param[i];
      if (momentum !== 0) {
        // the buffer is a float32 tensor in PyTorch: later terms use its stored (rounded) value
        momentumBuffer[i] = firstStep ? g : momentum * momentumBuffer[i] + (1 - dampening) * g;
        g = nesterov ? g + momentum * momentumBuffer[i] : momentumBuffer[i];
      }
      param[i] -= lr * g;
    }
  }
}
