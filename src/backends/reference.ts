// The reference backend: every kernel in plain TypeScript, written for clarity, not speed.
// It is the readable specification the native and wasm backends are checked against.
//
// The kernels work on Float32Array and equally on Float64Array (scratch buffers take the type of
// the input), which the tests use for float64 finite-difference gradient checks.
import {
  type AdamArgs, type Backend, type BackendInfo, type MatmulPrecision, type SeqBackwardArgs, type SeqContext,
  type SeqForwardArgs, type SgdArgs, type UnaryOp, isPairedContext, recurrentSize, seqBackwardInTurn, seqForwardInTurn,
} from './backend.js';
import { type CellStep, cellSpec, gateCount, gateFunctions, hasCellState, relu, sigmoid } from './cells.js';
import {
  assertAdamArgs, assertCrossEntropyBackwardArgs, assertCrossEntropyForwardArgs, assertGemmArgs, assertMatmulPrecision,
  assertSeqBackwardArgs, assertSeqForwardArgs, assertSgdArgs, assertSumSquaresArgs, assertUnaryArgs,
} from './validate.js';

/** The arrays the reference kernels compute on: float32, or float64 for the finite-difference checks. */
export type FloatArray = Float32Array | Float64Array;


function alloc(like: FloatArray, n: number): FloatArray {
  return like instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

/** Saved activations of one forward call, all indexed by real time step t. */
interface ReferenceSeqContext extends SeqContext {
  args: SeqForwardArgs;
  /** [T, B, G] activated gates (the cell's gate order; RNN: the new state h). */
  gates: FloatArray;
  /** [T, B, G] recurrent pre-activations W_hh h_{t-1} + b_hh (GRU's backward reads hp_n). */
  hp: FloatArray;
  /** [T, B, H] the late gates' product input (reset-before GRU: r * h_{t-1}); else empty. */
  rh: FloatArray;
  /** [T, B, H] cell state c_t (cells with the state c; else empty). */
  cells: FloatArray;
  /** [T, B, H] the cell's output h_t before the projection (only when P > 0). */
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

/** Row `row` ([n] wide) of a [rows, n] buffer, as a view. */
function rowOf<A extends FloatArray>(buf: A, row: number, n: number): A {
  return buf.subarray(row * n, row * n + n) as A;
}

/**
 * The views of one batch row b at one time step t that a cell's step functions read and write:
 * h_{t-1} and c_{t-1} (the initial state h0 / c0, or zeros, before the first processed step).
 */
function stepViews(ctx: ReferenceSeqContext, b: number, t: number, tp: number, zeros: FloatArray) {
  const { cell, B, H, P, h0, c0 } = ctx.args;
  const R = recurrentSize(H, P);
  const G = gateCount(cell) * H;
  const withC = hasCellState(cell);
  const late = cellSpec(cell).lateGates > 0;
  const row = t * B + b;
  const hPrev = tp >= 0 ? rowOf(ctx.states, tp * B + b, R) : h0 ? rowOf(h0, b, R) : zeros.subarray(0, R);
  const cPrev = !withC ? zeros.subarray(0, 0) : tp >= 0 ? rowOf(ctx.cells, tp * B + b, H) : c0 ? rowOf(c0, b, H) : zeros.subarray(0, H);
  return {
    H, hPrev, cPrev,
    hp: rowOf(ctx.hp, row, G),
    gates: rowOf(ctx.gates, row, G),
    c: withC ? rowOf(ctx.cells, row, H) : zeros.subarray(0, 0),
    h: ctx.hRaw ? rowOf(ctx.hRaw, row, H) : rowOf(ctx.states, row, R),
    rh: late ? rowOf(ctx.rh, row, H) : zeros.subarray(0, 0),
    act: gateFunctions(ctx.args.recurrentActivation),
  };
}

/** Rows [G0, G) of W_hh and b_hh: the late gates (cells with lateGates; G0 = G otherwise). */
function earlyRows(G: number, H: number, lateGates: number): number {
  return G - lateGates * H;
}

// out[N] = bias[N] (or 0) + W[N, K] @ v[K]
function affine(out: FloatArray, W: ArrayLike<number>, v: ArrayLike<number>, bias: ArrayLike<number> | null, N: number, K: number): void {
  for (let n = 0; n < N; n++) {
    let acc = bias ? bias[n] : 0;
    for (let k = 0; k < K; k++) acc += W[n * K + k] * v[k];
    out[n] = acc;
  }
}

// seqForward: x [T,B,I], wIh [G*H,I], wHh [G*H,R], b* [G*H], wHr [P,H], h0 [B,R], c0 [B,H]
//   -> y [T,B,yStride] (cols yOffset..+R), hN [B,R], cN [B,H]
// Per step: xp = W_ih x_t + b_ih, hp = W_hh h_{t-1} + b_hh, the cell's forward step (cells.ts),
// then h_t = W_hr h_t with a projection.
function seqForwardReference(a: SeqForwardArgs): ReferenceSeqContext {
  const { cell, T, B, I, H, P, reverse, x, wIh, wHh, bIh, bHh, wHr, lengths } = a;
  const spec = cellSpec(cell);
  const G = gateCount(cell) * H;
  const R = recurrentSize(H, P);
  const ctx: ReferenceSeqContext = {
    backend: 'reference', args: a,
    gates: alloc(x, T * B * G),
    hp: alloc(x, T * B * G),
    rh: alloc(x, spec.lateGates > 0 ? T * B * H : 0),
    cells: alloc(x, hasCellState(cell) ? T * B * H : 0),
    hRaw: P > 0 ? alloc(x, T * B * H) : null,
    states: alloc(x, T * B * R),
  };
  const zeros = alloc(x, Math.max(R, H));
  const xp = new Float64Array(G);
  const hp = new Float64Array(G);
  const G0 = earlyRows(G, H, spec.lateGates);
  // the late gates' pre-activations: hp[G0..G) = W_hh[G0..G) v + b_hh[G0..G)
  const recur: CellStep['recur'] = (v, out) =>
    affine(out, wHh.subarray(G0 * R), v, bHh ? bHh.subarray(G0) : null, G - G0, R);
  const y = (t: number, b: number) => a.y.subarray((t * B + b) * a.yStride + a.yOffset, (t * B + b) * a.yStride + a.yOffset + R);

  for (let b = 0; b < B; b++) {
    const len = lengths ? lengths[b] : T;
    for (let t = len; t < T; t++) y(t, b).fill(0); // rows past the length are zero
    for (let s = 0; s < len; s++) {
      const t = timeOfStep(s, len, reverse);
      const v = stepViews(ctx, b, t, previousTime(t, len, reverse), zeros);
      affine(xp, wIh, rowOf(x, t * B + b, I), bIh, G, I);
      affine(hp, wHh, v.hPrev, bHh, G0, R); // the late gates' rows: by the cell, through recur
      spec.forward({ ...v, xp, hp, recur });
      v.hp.set(hp);
      const state = rowOf(ctx.states, t * B + b, R);
      if (ctx.hRaw && wHr) affine(state, wHr, v.h, null, P, H);
      y(t, b).set(state);
    }
    // final state: after the last processed step (t = len-1 forward, t = 0 reverse)
    const tLast = reverse ? 0 : len - 1;
    a.hN.set(rowOf(ctx.states, tLast * B + b, R), b * R);
    if (hasCellState(cell) && a.cN) a.cN.set(rowOf(ctx.cells, tLast * B + b, H), b * H);
  }
  return ctx;
}

// seqBackward: dy [T,B,dyStride], dhN [B,R], dcN [B,H]
//   -> dx [T,B,I], dh0 [B,R], dc0 [B,H], dWIh [G*H,I], dWHh [G*H,R], dB* [G*H], dWHr [P,H]  (all +=)
// Per step, last to first: dh = dh_next + dy_t; with a projection dWHr += dh h_raw^T and
// dh = W_hr^T dh; the cell's backward step (cells.ts) gives dxp, dhp; then
// dW_ih += dxp x_t^T, dx_t += W_ih^T dxp, db_ih += dxp, dW_hh += dhp h_{t-1}^T, db_hh += dhp,
// dh_next = (the cell's direct path) + W_hh^T dhp. The late gates' rows of W_hh (reset-before
// GRU) take rh instead of h_{t-1}: dW_hh[late] += dhp[late] rh^T, and their W_hh^T dhp is the
// cell's (recurT), already in its direct path.
function seqBackwardReference(d: SeqBackwardArgs): void {
  const ctx = d.ctx as ReferenceSeqContext;
  const { cell, T, B, I, H, P, reverse, x, wIh, wHh, wHr, lengths } = ctx.args;
  const spec = cellSpec(cell);
  const G = gateCount(cell) * H;
  const R = recurrentSize(H, P);
  const withC = hasCellState(cell);
  const zeros = alloc(x, Math.max(R, H));
  const dh = new Float64Array(R); // gradient reaching h_t
  const dhRaw = new Float64Array(H); // the same before the projection
  const dxp = new Float64Array(G); // gradient of the input pre-activations (W_ih x + b_ih)
  const dhp = new Float64Array(G); // gradient of the recurrent pre-activations (W_hh h + b_hh)
  const G0 = earlyRows(G, H, spec.lateGates);
  const recurT: (d: ArrayLike<number>, out: FloatArray) => void = (dl, out) => {
    for (let r = 0; r < R; r++) {
      let acc = 0;
      for (let g = G0; g < G; g++) acc += wHh[g * R + r] * dl[g - G0];
      out[r] = acc;
    }
  };

  for (let b = 0; b < B; b++) {
    const len = lengths ? lengths[b] : T;
    const dhNext = new Float64Array(R); // gradient flowing into the state of the previous step
    const dc = new Float64Array(withC ? H : 0);
    if (d.dhN) dhNext.set(rowOf(d.dhN, b, R));
    if (withC && d.dcN) dc.set(rowOf(d.dcN, b, H));

    for (let s = len - 1; s >= 0; s--) {
      const t = timeOfStep(s, len, reverse);
      const v = stepViews(ctx, b, t, previousTime(t, len, reverse), zeros);
      for (let r = 0; r < R; r++) dh[r] = dhNext[r] + (d.dy ? d.dy[(t * B + b) * d.dyStride + d.dyOffset + r] : 0);
      if (ctx.hRaw && wHr) {
        for (let j = 0; j < H; j++) {
          let acc = 0;
          for (let p = 0; p < P; p++) acc += wHr[p * H + j] * dh[p];
          dhRaw[j] = acc;
        }
        if (d.dWHr) {
          for (let p = 0; p < P; p++) {
            for (let j = 0; j < H; j++) d.dWHr[p * H + j] += dh[p] * v.h[j];
          }
        }
      } else {
        dhRaw.set(dh);
      }
      dhNext.fill(0);
      spec.backward(v, { dh: dhRaw, dc, dxp, dhp, dhPrev: dhNext, recurT });
      const xRow = rowOf(x, t * B + b, I);
      for (let g = 0; g < G; g++) {
        const gi = dxp[g];
        const gh = dhp[g];
        if (d.dBIh) d.dBIh[g] += gi;
        if (d.dBHh) d.dBHh[g] += gh;
        for (let i = 0; i < I; i++) {
          if (d.dWIh) d.dWIh[g * I + i] += gi * xRow[i];
          if (d.dx) d.dx[(t * B + b) * I + i] += gi * wIh[g * I + i];
        }
        const hIn = g < G0 ? v.hPrev : v.rh; // the vector row g of W_hh multiplied
        for (let r = 0; r < R; r++) {
          if (d.dWHh) d.dWHh[g * R + r] += gh * hIn[r];
          if (g < G0) dhNext[r] += gh * wHh[g * R + r];
        }
      }
    }
    if (d.dh0) for (let r = 0; r < R; r++) d.dh0[b * R + r] += dhNext[r];
    if (d.dc0 && withC) for (let j = 0; j < H; j++) d.dc0[b * H + j] += dc[j];
  }
}

/**
 * The kernels in plain TypeScript: the readable specification the other backends are checked
 * against; always available, slow.
 */
export class ReferenceBackend implements Backend {
  readonly name = 'reference';
  readonly pairedCalls = true;

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
    if (args.paired) return seqForwardInTurn('reference', args, (a) => this.seqForward(a));
    const ctx = seqForwardReference(args);
    return args.training ? ctx : null;
  }

  seqBackward(args: SeqBackwardArgs): void {
    if (args.paired || isPairedContext(args.ctx)) return seqBackwardInTurn('reference', args, (a) => this.seqBackward(a));
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
