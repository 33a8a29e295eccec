// Cross-check mode: runs every kernel on a primary backend and again on a second one, on copies
// of the outputs, and throws on the first element that differs beyond tolerance, naming the
// kernel, the shapes and the worst element.
import {
  type AdamArgs, type Backend, type BackendInfo, type MatmulPrecision, type SeqBackwardArgs, type SeqContext,
  type SeqForwardArgs, type SgdArgs, type UnaryOp, isPairedContext, seqBackwardInTurn, seqForwardInTurn,
} from './backend.js';

/** How closely a `CrossCheckBackend` expects its two backends to agree. */
export interface CrossCheckOptions {
  /** Allowed |a - b| relative to max(1e-3, largest |b| of the tensor). */
  tolerance?: number;
}

interface PairContext extends SeqContext {
  primary: SeqContext | null;
  secondary: SeqContext | null;
  args: SeqForwardArgs;
}

/** A mismatch between the two backends of a `CrossCheckBackend`. */
export class CrossCheckError extends Error {}

function copy<T extends Float32Array | null>(a: T): T {
  return (a ? a.slice() : null) as T;
}

/**
 * A backend that runs every kernel on two backends (e.g. native against reference) and throws a
 * `CrossCheckError` naming the kernel, the shapes and the worst element on the first mismatch.
 */
export class CrossCheckBackend implements Backend {
  readonly name: string;
  private readonly tolerance: number;

  constructor(readonly primary: Backend, readonly secondary: Backend, options: CrossCheckOptions = {}) {
    this.name = `${primary.name}+check(${secondary.name})`;
    this.tolerance = options.tolerance ?? 1e-4;
  }

  /** Sets it on both backends (a bf16 primary needs a looser tolerance against an fp32 secondary). */
  setMatmulPrecision(p: MatmulPrecision): void {
    this.primary.setMatmulPrecision?.(p);
    this.secondary.setMatmulPrecision?.(p);
  }

  info(): BackendInfo {
    const p = this.primary.info();
    return { ...p, detail: `${p.detail ?? ''} cross-checked against ${this.secondary.name}`.trim() };
  }

  /** Compares a (primary) with b (secondary) and throws naming the worst element. */
  private compare(kernel: string, shapes: string, what: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
    let scale = 1e-3;
    for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
    let worst = -1;
    let worstErr = 0;
    for (let i = 0; i < a.length; i++) {
      const err = Math.abs(a[i] - b[i]);
      if (err > worstErr || Number.isNaN(err)) {
        worstErr = Number.isNaN(err) ? Infinity : err;
        worst = i;
      }
    }
    if (worst >= 0 && worstErr > this.tolerance * scale) {
      throw new CrossCheckError(
        `cross-check failed in ${kernel} (${shapes}): ${what}[${worst}] is ${a[worst]} on ${this.primary.name} ` +
          `but ${b[worst]} on ${this.secondary.name} (error ${(worstErr / scale).toExponential(2)} relative to ` +
          `${scale.toExponential(2)}, tolerance ${this.tolerance})`,
      );
    }
  }

  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, lda: number, B: Float32Array, ldb: number,
    beta: number, C: Float32Array, ldc: number,
  ): void {
    const C2 = C.slice();
    this.primary.gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    this.secondary.gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
    this.compare('gemm', `M=${M} N=${N} K=${K} transA=${transA} transB=${transB}`, 'C', C, C2);
  }

  readonly pairedCalls = true;

  seqForward(args: SeqForwardArgs): SeqContext | null {
    if (args.paired) return seqForwardInTurn(this.name, args, (a) => this.seqForward(a));
    const second: SeqForwardArgs = { ...args, y: args.y.slice(), hN: args.hN.slice(), cN: copy(args.cN) };
    const primary = this.primary.seqForward(args);
    const secondary = this.secondary.seqForward(second);
    const shapes = `T=${args.T} B=${args.B} I=${args.I} H=${args.H} P=${args.P} reverse=${args.reverse}`;
    const kernel = `seqForward(${args.cell})`;
    this.compare(kernel, shapes, 'y', args.y, second.y);
    this.compare(kernel, shapes, 'hN', args.hN, second.hN);
    if (args.cN && second.cN) this.compare(kernel, shapes, 'cN', args.cN, second.cN);
    if (!args.training) return null;
    const ctx: PairContext = { backend: this.name, primary, secondary, args };
    return ctx;
  }

  seqBackward(args: SeqBackwardArgs): void {
    if (args.paired || isPairedContext(args.ctx)) return seqBackwardInTurn(this.name, args, (a) => this.seqBackward(a));
    const ctx = args.ctx as PairContext;
    const outputs = ['dx', 'dh0', 'dc0', 'dWIh', 'dWHh', 'dBIh', 'dBHh', 'dWHr'] as const;
    const second: SeqBackwardArgs = { ...args, ctx: ctx.secondary as SeqContext };
    for (const o of outputs) second[o] = copy(args[o]);
    this.primary.seqBackward({ ...args, ctx: ctx.primary as SeqContext });
    this.secondary.seqBackward(second);
    const f = ctx.args;
    const shapes = `T=${f.T} B=${f.B} I=${f.I} H=${f.H} P=${f.P} reverse=${f.reverse}`;
    for (const o of outputs) {
      const a = args[o];
      const b = second[o];
      if (a && b) this.compare(`seqBackward(${f.cell})`, shapes, o, a, b);
    }
  }

  unaryForward(op: UnaryOp, x: Float32Array, y: Float32Array): void {
    const y2 = y.slice();
    this.primary.unaryForward(op, x, y);
    this.secondary.unaryForward(op, x, y2);
    this.compare(`unaryForward(${op})`, `n=${x.length}`, 'y', y, y2);
  }

  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array): void {
    const dx2 = dx.slice();
    this.primary.unaryBackward(op, x, y, dy, dx);
    this.secondary.unaryBackward(op, x, y, dy, dx2);
    this.compare(`unaryBackward(${op})`, `n=${x.length}`, 'dx', dx, dx2);
  }

  crossEntropyForward(
    N: number, C: number, logits: Float32Array, targets: Int32Array, ignoreIndex: number,
    probs: Float32Array, losses: Float32Array,
  ): void {
    const probs2 = probs.slice();
    const losses2 = losses.slice();
    this.primary.crossEntropyForward(N, C, logits, targets, ignoreIndex, probs, losses);
    this.secondary.crossEntropyForward(N, C, logits, targets, ignoreIndex, probs2, losses2);
    this.compare('crossEntropyForward', `N=${N} C=${C}`, 'probs', probs, probs2);
    this.compare('crossEntropyForward', `N=${N} C=${C}`, 'losses', losses, losses2);
  }

  crossEntropyBackward(
    N: number, C: number, probs: Float32Array, targets: Int32Array, ignoreIndex: number,
    dLosses: Float32Array, dLogits: Float32Array,
  ): void {
    const d2 = dLogits.slice();
    this.primary.crossEntropyBackward(N, C, probs, targets, ignoreIndex, dLosses, dLogits);
    this.secondary.crossEntropyBackward(N, C, probs, targets, ignoreIndex, dLosses, d2);
    this.compare('crossEntropyBackward', `N=${N} C=${C}`, 'dLogits', dLogits, d2);
  }

  sumSquares(x: Float32Array): number {
    const a = this.primary.sumSquares(x);
    const b = this.secondary.sumSquares(x);
    this.compare('sumSquares', `n=${x.length}`, 'result', [a], [b]);
    return a;
  }

  adamUpdate(args: AdamArgs): void {
    const second = { ...args, param: args.param.slice(), m: args.m.slice(), v: args.v.slice() };
    this.primary.adamUpdate(args);
    this.secondary.adamUpdate(second);
    this.compare('adamUpdate', `n=${args.param.length}`, 'param', args.param, second.param);
  }

  sgdUpdate(args: SgdArgs): void {
    const second = { ...args, param: args.param.slice(), momentumBuffer: args.momentumBuffer.slice() };
    this.primary.sgdUpdate(args);
    this.secondary.sgdUpdate(second);
    this.compare('sgdUpdate', `n=${args.param.length}`, 'param', args.param, second.param);
  }
}
