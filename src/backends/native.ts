// Loader of the native C++ backend (native/, built by node-gyp or shipped as a prebuild).
//
// loadNativeBackend() loads the N-API addon with node-gyp-build (a local build in build/ first,
// then prebuilds/<platform>-<arch>/), and wraps it in the Backend interface. Every call is
// validated here with the shared checks (same messages as every backend) and again in C++.
// If the addon is unavailable it throws one line saying why; the registry falls back.
//
// No static import of a Node module (Node's are taken from process.getBuiltinModule when the
// addon is loaded), so the backend registry also imports in browsers and edge runtimes.
import type {
  AdamArgs, AsyncJobStats, Backend, BackendInfo, MatmulPrecision, NativeMemoryStats, SeqBackwardArgs, SeqContext, SeqForwardArgs, SgdArgs, UnaryOp,
  WeightCopy,
} from './backend.js';
import {
  assertAdamArgs, assertColumnSumsArgs, assertCrossEntropyBackwardArgs, assertCrossEntropyForwardArgs, assertGemmArgs,
  assertMatmulPrecision, assertSeqBackwardArgs, assertSeqForwardArgs, assertSgdArgs, assertSumSquaresArgs, assertUnaryArgs,
  checkBuffer,
} from './validate.js';
import { readEnv } from '../core/config.js';
import { type StepSplitChoice, type StepSplitMode, StepSplitChooser, stepSplitMode, stepSplitShape } from './step-split.js';

/** Options of `loadNativeBackend`. */
export interface NativeBackendOptions {
  /**
   * A small-batch sequence call whose steps split across the pool's threads one by one (batch-1
   * LSTM steps, the GEMV products of batch 1-2 GRU and RNN steps and of every backward with such
   * a batch: the threads meet after every step): 'auto' (default) times each shape split and on
   * one thread and keeps the faster (`stepSplitChoices()`, info().detail); 'always' splits it
   * whenever the step is big enough. Results are bitwise the same either way.
   */
  stepSplit?: StepSplitMode;
}

/** The raw addon (native/addon.cpp). */
export interface NativeAddon {
  /** gemvRows: products with 1..gemvRows rows run the GEMV kernel (0: none, the bf16 GEMMs). */
  info(): BackendInfo & { gemvRows: number };
  /** The addon's table of cell kinds (native/kernels.h kCellInfo): what it accepts as `cell`. */
  cellKinds(): Array<{ name: string; id: number; gates: number; cState: boolean; projection: boolean; gateActivation: boolean; lateGates: number }>;
  setThreads(n: number): void;
  /**
   * The threads each step of such a call (backward: its backward) splits over, the threads meeting
   * after every step; 1 when its steps do not split so (args stepThreads 1 then changes nothing).
   */
  stepSplitThreads(cell: string, B: number, H: number, P: number, backward: boolean): number;
  setIsa(isa: string): void;
  cpuSupports(isa: string): boolean;
  memoryStats(): NativeMemoryStats;
  trimMemory(): void;
  setMatmulPrecision(p: MatmulPrecision): void;
  getMatmulPrecision(): MatmulPrecision;
  gemm(...args: GemmArgs): void;
  gemmNaive(...args: GemmArgs): void;
  /** The reference of the bf16 kernels: operands rounded to bf16, then the triple loop. */
  gemmNaiveBf16(...args: GemmArgs): void;
  /**
   * args.paired: both calls, one thread each where they may run at once; the handle is then a pair.
   * args.stepThreads (also of seqBackward's args and the async calls'): the most threads each step
   * splits over, 1 the calling thread alone; absent or 0: the pool's.
   */
  seqForward(args: SeqForwardArgs & StepThreads): unknown;
  seqBackward(handle: unknown, forward: SeqForwardArgs, args: SeqBackwardArgs & StepThreads): void;
  /** An immutable copy of w in the addon's memory: a handle the sequence calls take in place of a weight array. */
  copyWeight(w: Float32Array): unknown;
  /**
   * One call each (a pair's calls are queued one after the other). A weight (wIh, wHh, bIh, bHh,
   * wHr) may be a copyWeight handle instead of an array: the job shares it instead of copying.
   */
  seqForwardAsync(args: AddonSeqForwardArgs): Promise<unknown>;
  seqBackwardAsync(handle: unknown, forward: AddonSeqForwardArgs, args: SeqBackwardArgs & StepThreads): Promise<void>;
  /** Inference calls as one job, in order; an x that is an earlier call's y reads the job's copy of it. */
  seqForwardStackAsync(calls: AddonSeqForwardArgs[]): Promise<void>;
  /** At most n async jobs of this JS thread on libuv's threadpool at once (0: the default). */
  setAsyncJobs(n: number): void;
  asyncJobStats(reset: boolean): AsyncJobStats;
  unaryForward(op: UnaryOp, x: Float32Array, y: Float32Array): void;
  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array): void;
  crossEntropyForward(N: number, C: number, logits: Float32Array, targets: Int32Array, ignoreIndex: number,
    probs: Float32Array, losses: Float32Array): void;
  crossEntropyBackward(N: number, C: number, probs: Float32Array, targets: Int32Array, ignoreIndex: number,
    dLosses: Float32Array, dLogits: Float32Array): void;
  sumSquares(x: Float32Array): number;
  addColumnSums(M: number, N: number, x: Float32Array, dst: Float32Array): void;
  adamUpdate(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number,
    beta2: number, eps: number, weightDecay: number, decoupled: boolean, step: number): void;
  sgdUpdate(param: Float32Array, grad: Float32Array, momentumBuffer: Float32Array, lr: number, momentum: number,
    dampening: number, weightDecay: number, nesterov: boolean, firstStep: boolean): void;
}

/** The addon's field of a sequence call's args that caps the threads of each step (0 or absent: the pool's). */
interface StepThreads {
  stepThreads?: number;
}

/** SeqForwardArgs as the addon's async calls take them: a weight may be a copyWeight handle. */
type AddonSeqForwardArgs = Omit<SeqForwardArgs, 'wIh' | 'wHh' | 'bIh' | 'bHh' | 'wHr'> & StepThreads & {
  wIh: Float32Array | unknown; wHh: Float32Array | unknown; bIh: Float32Array | unknown; bHh: Float32Array | unknown; wHr: Float32Array | unknown;
};

/** How one call's steps run (NativeBackend.stepPlan): its shape, split or not, and its steps. */
interface StepPlan {
  shape: string;
  split: boolean;
  steps: number;
}

/** A weight copy of the native backend: the addon's handle (copyWeight) and its length. */
class NativeWeightCopy implements WeightCopy {
  readonly backend = 'native';
  constructor(readonly length: number, readonly handle: unknown) {}
}

/**
 * The args of one call for the addon: each weight with a copy (args.weightCopies, checked by the
 * validation layer) is given as the copy's handle, which an async job shares, and whose packed
 * layouts (the forms the products read the weight in) every inference call reuses.
 */
function withCopies(args: SeqForwardArgs, kern = 'native.seqForwardAsync'): AddonSeqForwardArgs {
  const copies = args.weightCopies;
  if (!copies) return args;
  const handle = (i: number, name: string, array: Float32Array | null): Float32Array | unknown => {
    const c = copies[i];
    if (c == null) return array;
    if (!(c instanceof NativeWeightCopy)) throw new TypeError(`${kern}: weightCopies[${i}] (${name}) is not a weight copy of native.copyWeight`);
    return c.handle;
  };
  return {
    ...args, wIh: handle(0, 'wIh', args.wIh), wHh: handle(1, 'wHh', args.wHh), bIh: handle(2, 'bIh', args.bIh),
    bHh: handle(3, 'bHh', args.bHh), wHr: handle(4, 'wHr', args.wHr),
  };
}

type GemmArgs = [
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: Float32Array, lda: number,
  B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
];

/** Kernel paths: x86-64 'avx512' | 'avx2' | 'sse2' (baseline), arm64 'neon'. */
export type NativeIsa = 'avx512' | 'avx2' | 'sse2' | 'neon';

interface NativeSeqContext extends SeqContext {
  args: SeqForwardArgs;
  handle: unknown;
}

interface NodeBuiltins {
  createRequire(url: string): (id: string) => unknown;
  fileURLToPath(url: URL): string;
}

/** node:module and node:url, or a one-line reason why they are not here. */
function nodeBuiltins(): NodeBuiltins {
  const proc = (globalThis as { process?: { versions?: { node?: string }; getBuiltinModule?: (id: string) => unknown } }).process;
  if (!proc?.versions?.node || typeof proc.getBuiltinModule !== 'function') {
    throw new Error('the native addon needs Node.js (20.16 or later)');
  }
  const { createRequire } = proc.getBuiltinModule('node:module') as { createRequire: NodeBuiltins['createRequire'] };
  const { fileURLToPath } = proc.getBuiltinModule('node:url') as { fileURLToPath: NodeBuiltins['fileURLToPath'] };
  return { createRequire, fileURLToPath };
}

/** The package root (this file is src/backends/native.ts or dist/backends/native.js). */
function packageRoot(node: NodeBuiltins): string {
  return node.fileURLToPath(new URL('../../', import.meta.url));
}

let addonCache: NativeAddon | null = null;

/** Where the loaded addon came from (for `rnnkit doctor`): set by loadNativeAddon. */
export interface NativeOrigin {
  /** 'prebuild' (prebuilds/ in the package), 'local build' (build/, compiled at install), 'none'. */
  kind: 'prebuild' | 'local build' | 'none';
  path?: string;
  /** Why none loaded. */
  reason?: string;
}
let origin: NativeOrigin = { kind: 'none', reason: 'not loaded yet' };

/** Which native binary is in use: a shipped prebuild, a local build, or none and why. */
export function nativeOrigin(): NativeOrigin {
  return origin;
}

/** Loads the addon once; throws a one-line reason when it cannot. */
export function loadNativeAddon(): NativeAddon {
  if (addonCache) return addonCache;
  const node = nodeBuiltins();
  const require = node.createRequire(import.meta.url);
  let gypBuild: ((dir: string) => unknown) & { path?: (dir: string) => string };
  try {
    gypBuild = require('node-gyp-build') as typeof gypBuild;
  } catch {
    origin = { kind: 'none', reason: 'node-gyp-build is not installed, so the native addon cannot be located' };
    throw new Error(origin.reason);
  }
  const root = packageRoot(node);
  // RNNKIT_NATIVE_ADDON: a specific build to load (e.g. build/asan/rnnkit.node from `npm run build:asan`)
  const explicit = readEnv('RNNKIT_NATIVE_ADDON');
  try {
    addonCache = (explicit ? require(explicit) : gypBuild(root)) as NativeAddon;
  } catch (e) {
    const first = String((e as Error).message ?? e).split('\n')[0].trim();
    origin = { kind: 'none', reason: first };
    throw new Error(`no native build or prebuild could be loaded (${first}); no prebuild matches this platform and none was compiled at install: with a C++ compiler, python3 and make, \`npm rebuild rnnkit\` builds it`);
  }
  let path = explicit ?? '';
  try {
    if (!explicit) path = gypBuild.path?.(root) ?? '';
  } catch {
    // loaded, but the path is not known (it always is with node-gyp-build 4)
  }
  origin = { kind: /[\\/]prebuilds[\\/]/.test(path) ? 'prebuild' : 'local build', path };
  return addonCache;
}

function isNativeContext(ctx: SeqContext): ctx is NativeSeqContext {
  return ctx.backend === 'native' && 'handle' in ctx;
}

/**
 * The native C++ backend: the addon's kernels behind the Backend interface, every call checked
 * here and again in C++ (made by `loadNativeBackend`).
 */
export class NativeBackend implements Backend {
  readonly name = 'native';
  readonly pairedCalls = true;
  /** How calls whose steps split one by one choose between the threads and one thread. */
  private readonly stepSplitMode: StepSplitMode;
  /** What those calls measured, per shape ('auto'); a test may feed it observations. */
  readonly stepSplit = new StepSplitChooser();

  constructor(readonly addon: NativeAddon, options: NativeBackendOptions = {}) {
    this.stepSplitMode = stepSplitMode('loadNativeBackend', options.stepSplit);
  }

  info(): BackendInfo {
    const info = this.addon.info();
    const steps = this.stepSplit.detail(this.stepSplitMode, info.threads > 1 ? 'small-batch steps always split' : null);
    return { ...info, detail: `${info.detail}${steps}` };
  }

  /**
   * For each shape of a sequence call whose steps split across the threads one by one: whether its
   * steps run split or on one thread, and the time per step measured each way (option stepSplit
   * 'auto').
   */
  stepSplitChoices(): StepSplitChoice[] {
    return this.stepSplit.choices();
  }

  /**
   * How the steps of one call (args: its forward args; backward: the call is their backward) run:
   * null where they do not split one by one across the threads (the addon says, at the threads
   * and kernels in use), for a pair of calls (its two directions take a thread each) and with
   * stepSplit 'always'; else its shape and whether it runs split (StepSplitChooser).
   */
  private stepPlan(args: SeqForwardArgs, backward: boolean): StepPlan | null {
    if (this.stepSplitMode !== 'auto' || args.paired) return null;
    const threads = this.addon.stepSplitThreads(args.cell, args.B, args.H, args.P, backward);
    if (threads < 2) return null;
    const steps = args.lengths ? args.lengths.reduce((m, v) => Math.max(m, v), 0) : args.T;
    const shape = stepSplitShape(args.cell, args.B, args.H, threads, backward ? 'backward' : args.training ? 'training' : 'forward', steps);
    return { shape, split: this.stepSplit.next(shape), steps };
  }

  /** args with the stepThreads of plan (1 where its steps run on one thread). */
  private static withPlan<A extends object>(args: A, plan: StepPlan | null): A & StepThreads {
    return plan && !plan.split ? { ...args, stepThreads: 1 } : args;
  }

  /** Runs a call under plan, timing it for the chooser (the steps' time dominates a planned call). */
  private timed<T>(plan: StepPlan | null, run: () => T): T {
    if (!plan) return run();
    const t0 = performance.now();
    const out = run();
    this.stepSplit.observe(plan.shape, plan.split, performance.now() - t0, plan.steps);
    return out;
  }

  private async timedAsync<T>(plan: StepPlan | null, run: () => Promise<T>): Promise<T> {
    if (!plan) return run();
    const t0 = performance.now();
    const out = await run();
    this.stepSplit.observe(plan.shape, plan.split, performance.now() - t0, plan.steps);
    return out;
  }

  /** The recycled-block cache and the malloc figures (process-wide); see NativeMemoryStats. */
  memoryStats(): NativeMemoryStats {
    return this.addon.memoryStats();
  }

  /**
   * Frees the recycled blocks and gives the C library's free memory back to the system
   * (process-wide): for a long-lived process after a phase of large work, e.g. training.
   */
  trimMemory(): void {
    this.addon.trimMemory();
  }

  /** Number of threads of the native pool (process-wide). */
  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`native.setThreads: n must be a positive integer, received ${n}`);
    this.addon.setThreads(n);
  }

  /**
   * How many async jobs (forwardAsync's kernels, and backward passes after it) of this JS thread
   * run at once; the others wait, in call order, and start as earlier ones settle. What a job
   * computes does not depend on it: a job copies what it reads when it is called. The default
   * (`n = 0`) is one job per core, at most one fewer than libuv's threadpool has (4 threads unless
   * UV_THREADPOOL_SIZE says more), at least 1. More jobs at once take turns on the same cores, make
   * the event loop wait for a core, and fill libuv's threadpool, which the process's file, DNS and
   * zlib work also needs.
   */
  setAsyncJobs(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > 1024) {
      throw new RangeError(`native.setAsyncJobs: n must be an integer in 0..1024 (0: the default), received ${n}`);
    }
    this.addon.setAsyncJobs(n);
  }

  /** The admission counters of async jobs; reset: the peaks start again from now. */
  asyncJobStats(reset = false): AsyncJobStats {
    return this.addon.asyncJobStats(reset);
  }

  /**
   * Matmul precision (process-wide). 'medium' runs every GEMM (gemm and the sequence kernels) on
   * bf16 inputs with fp32 accumulation when the ISA is avx512 and the CPU has avx512_bf16, or on
   * arm64 CPUs with BF16 (BFDOT), and stays fp32 otherwise; info().matmul says which is in effect.
   */
  setMatmulPrecision(p: MatmulPrecision): void {
    assertMatmulPrecision('native.setMatmulPrecision', p);
    this.addon.setMatmulPrecision(p);
  }

  getMatmulPrecision(): MatmulPrecision {
    return this.addon.getMatmulPrecision();
  }

  /** Switches the kernel set (process-wide); throws if the CPU lacks the instructions. */
  setIsa(isa: NativeIsa): void {
    this.addon.setIsa(isa);
  }

  // C[M,N] = alpha * op(A) @ op(B) + beta * C
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, lda: number, B: Float32Array, ldb: number,
    beta: number, C: Float32Array, ldc: number,
  ): void {
    assertGemmArgs('native', transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
    this.addon.gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  seqForward(args: SeqForwardArgs): SeqContext | null {
    assertSeqForwardArgs('native', args);
    const addonArgs = args.weightCopies || args.paired?.weightCopies
      ? { ...withCopies(args, 'native.seqForward'), paired: args.paired ? withCopies(args.paired, 'native.seqForward') : args.paired }
      : args;
    const plan = this.stepPlan(args, false);
    const handle = this.timed(plan, () => this.addon.seqForward(NativeBackend.withPlan(addonArgs as SeqForwardArgs, plan)));
    return args.training ? ({ backend: 'native', args, handle } as NativeSeqContext) : null;
  }

  seqBackward(args: SeqBackwardArgs): void {
    const ctx = this.context(args.ctx);
    assertSeqBackwardArgs('native', ctx.args, args);
    const plan = this.stepPlan(ctx.args, true);
    this.timed(plan, () => this.addon.seqBackward(ctx.handle, ctx.args, NativeBackend.withPlan(args, plan)));
  }

  /** An immutable copy of values in the addon's memory (SeqForwardArgs.weightCopies): the async calls share it. */
  copyWeight(values: Float32Array): WeightCopy {
    checkBuffer('native.copyWeight', 'values', values, 0, '[n]');
    return new NativeWeightCopy(values.length, this.addon.copyWeight(values));
  }

  async seqForwardAsync(args: SeqForwardArgs): Promise<SeqContext | null> {
    assertSeqForwardArgs('native', args);
    let handle: unknown;
    if (args.paired) {  // in turn; the pair's handles make the handle seqForward returns for a pair
      const first = await this.forwardAsync({ ...args, paired: null });
      handle = [first, await this.forwardAsync(args.paired)];
    } else {
      handle = await this.forwardAsync(args);
    }
    return args.training ? ({ backend: 'native', args, handle } as NativeSeqContext) : null;
  }

  /** One async forward call (not a pair), its steps as the chooser says. */
  private forwardAsync(args: SeqForwardArgs): Promise<unknown> {
    const plan = this.stepPlan(args, false);
    return this.timedAsync(plan, () => this.addon.seqForwardAsync(NativeBackend.withPlan(withCopies(args), plan)));
  }

  /** One async backward call (not a pair), its steps as the chooser says. */
  private backwardAsync(handle: unknown, forward: SeqForwardArgs, args: SeqBackwardArgs): Promise<void> {
    const plan = this.stepPlan(forward, true);
    return this.timedAsync(plan, () => this.addon.seqBackwardAsync(handle, withCopies(forward), NativeBackend.withPlan(args, plan)));
  }

  async seqForwardStackAsync(calls: SeqForwardArgs[]): Promise<void> {
    if (!Array.isArray(calls) || calls.length === 0) throw new TypeError(`native.seqForwardStackAsync: calls must be a non-empty array of sequence call args, received ${Array.isArray(calls) ? 'an empty array' : typeof calls}`);
    calls.forEach((args, i) => {
      assertSeqForwardArgs('native', args);
      if (args.training) throw new RangeError(`native.seqForwardStackAsync: calls[${i}].training must be false (a recorded forward runs call by call), received true`);
      if (args.paired) throw new TypeError(`native.seqForwardStackAsync: calls[${i}].paired must be null (each direction is a call of its own), received a pair`);
    });
    // calls of one shape (the layers of a batch-1 stack) are timed as one; a stack of several
    // shapes runs its steps as the kernels split them
    const plans = calls.map((args) => this.stepPlan(args, false));
    const first = plans[0];
    const plan = first && plans.every((p) => p?.shape === first.shape)
      ? { ...first, steps: plans.reduce((n, p) => n + p!.steps, 0) } : null;
    await this.timedAsync(plan, () => this.addon.seqForwardStackAsync(
      calls.map((args) => NativeBackend.withPlan(withCopies(args, 'native.seqForwardStackAsync'), plan))));
  }

  async seqBackwardAsync(args: SeqBackwardArgs): Promise<void> {
    const ctx = this.context(args.ctx);
    assertSeqBackwardArgs('native', ctx.args, args);
    if (ctx.args.paired && args.paired) {
      const [first, second] = ctx.handle as [unknown, unknown];
      await this.backwardAsync(first, { ...ctx.args, paired: null }, { ...args, paired: null });
      await this.backwardAsync(second, ctx.args.paired, { ...args.paired, ctx: args.ctx });
      return;
    }
    await this.backwardAsync(ctx.handle, ctx.args, args);
  }

  private context(ctx: SeqContext): NativeSeqContext {
    if (!ctx || !isNativeContext(ctx)) {
      throw new Error(`native.seqBackward: context from backend '${ctx?.backend}'`);
    }
    return ctx;
  }

  unaryForward(op: UnaryOp, x: Float32Array, y: Float32Array): void {
    assertUnaryArgs('native', op, x, y);
    this.addon.unaryForward(op, x, y);
  }

  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array): void {
    assertUnaryArgs('native', op, x, y, { dy, dx });
    this.addon.unaryBackward(op, x, y, dy, dx);
  }

  crossEntropyForward(
    N: number, C: number, logits: Float32Array, targets: Int32Array, ignoreIndex: number,
    probs: Float32Array, losses: Float32Array,
  ): void {
    assertCrossEntropyForwardArgs('native', N, C, logits, targets, ignoreIndex, probs, losses);
    this.addon.crossEntropyForward(N, C, logits, targets, ignoreIndex, probs, losses);
  }

  crossEntropyBackward(
    N: number, C: number, probs: Float32Array, targets: Int32Array, ignoreIndex: number,
    dLosses: Float32Array, dLogits: Float32Array,
  ): void {
    assertCrossEntropyBackwardArgs('native', N, C, probs, targets, ignoreIndex, dLosses, dLogits);
    this.addon.crossEntropyBackward(N, C, probs, targets, ignoreIndex, dLosses, dLogits);
  }

  sumSquares(x: Float32Array): number {
    assertSumSquaresArgs('native', x);
    return this.addon.sumSquares(x);
  }

  addColumnSums(M: number, N: number, x: Float32Array, dst: Float32Array): void {
    assertColumnSumsArgs('native', M, N, x, dst);
    this.addon.addColumnSums(M, N, x, dst);
  }

  adamUpdate(a: AdamArgs): void {
    assertAdamArgs('native', a);
    this.addon.adamUpdate(a.param, a.grad, a.m, a.v, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.decoupled, a.step);
  }

  sgdUpdate(a: SgdArgs): void {
    assertSgdArgs('native', a);
    this.addon.sgdUpdate(a.param, a.grad, a.momentumBuffer, a.lr, a.momentum, a.dampening, a.weightDecay, a.nesterov,
      a.firstStep);
  }
}

/**
 * The native backend (the addon loads once; its threads, ISA and matmul precision are
 * process-wide, the options are this backend object's): `setBackend(loadNativeBackend({ stepSplit:
 * 'always' }))` uses one with options.
 */
export function loadNativeBackend(options: NativeBackendOptions = {}): NativeBackend {
  return new NativeBackend(loadNativeAddon(), options);
}
