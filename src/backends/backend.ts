// The backend interface: the small set of kernels every rnnkit backend implements.
//
// One interface for all backends (reference TypeScript, native C++ N-API, AssemblyScript WASM).
// Conventions shared by every kernel:
// - float32 row-major buffers (Float32Array), PyTorch's layouts and gate orders;
// - every "d*" output of a backward kernel is ACCUMULATED (+=) into the buffer given, never
//   overwritten, so gradients from several uses (two directions, many time steps, several
//   batches) simply add up; a null output means "not needed, do not compute";
// - kernels never allocate the caller's outputs; they may allocate their own scratch;
// - the façade validates shapes before calling a kernel (src/backends/validate.ts), and a
//   native or wasm backend checks again that every buffer is large enough.
//
// Shapes use these letters: T time steps, B batch, I input features, H hidden size,
// P projection size (LSTM proj_size; 0 = none), R = P > 0 ? P : H the recurrent/output size,
// G gates (the cell table of cells.ts: LSTM 4: i,f,g,o; GRU 3: r,z,n; RNN 1), N rows, C classes,
// M/N/K GEMM sizes.
import type { CellKind, RecurrentActivation } from './cells.js';

/**
 * The recurrent cells the kernels know ('lstm', 'gru' in PyTorch's reset-after form, 'rnn_tanh',
 * 'rnn_relu', 'gru_reset_before'): the table of cells.ts; and their gate activations.
 */
export { type CellKind, type RecurrentActivation, gateCount } from './cells.js';

/** Arguments of one direction of one recurrent layer over a whole sequence. */
export interface SeqForwardArgs {
  cell: CellKind;
  T: number;
  B: number;
  I: number;
  H: number;
  /** LSTM projection size; 0 = no projection (must be 0 for a cell without `projection` in the table). */
  P: number;
  /** Process each sequence from its last real step (lengths[b]-1) back to step 0. */
  reverse: boolean;
  /** [T, B, I] time-major input, contiguous. */
  x: Float32Array;
  /** [G*H, I] PyTorch weight_ih_l{k}. */
  wIh: Float32Array;
  /** [G*H, R] PyTorch weight_hh_l{k}. */
  wHh: Float32Array;
  /** [G*H] bias_ih_l{k}, or null for bias=false. */
  bIh: Float32Array | null;
  /** [G*H] bias_hh_l{k}, or null for bias=false. */
  bHh: Float32Array | null;
  /** [P, H] weight_hr_l{k} when P > 0, else null. */
  wHr: Float32Array | null;
  /**
   * Change counters of wIh, wHh, bIh, bHh, wHr (Tensor.version; 0 for a null weight), or absent.
   * A backend may keep a weight between calls (wasm: resident in linear memory) and read it again
   * only when its counter moved; without counters every call reads every weight.
   */
  weightVersions?: readonly number[];
  /**
   * The backend's own immutable copies of wIh, wHh, bIh, bHh, wHr (Backend.copyWeight; null for a
   * null weight), or absent. When given, they hold the values the call reads: the backend that
   * made them may read them instead of the arrays, whose lengths must match (native async jobs
   * share them: no copy of the weights per call).
   */
  weightCopies?: readonly (WeightCopy | null)[] | null;
  /** [B, R] initial hidden state, or null for zeros. */
  h0: Float32Array | null;
  /** [B, H] initial cell state (cells with the state c: LSTM), or null for zeros. */
  c0: Float32Array | null;
  /** [B] real length of each sequence, 1 <= lengths[b] <= T, any order; null = all T. */
  lengths: Int32Array | null;
  /**
   * Output [T, B, yStride]: this direction writes columns [yOffset, yOffset + R) of each row.
   * Rows of steps t >= lengths[b] are written as zeros (PyTorch's padded output of a packed
   * sequence). A bidirectional layer passes yStride = 2R and yOffset 0 / R.
   */
  y: Float32Array;
  yStride: number;
  yOffset: number;
  /** [B, R] out: the state after each sequence's last processed real step. */
  hN: Float32Array;
  /** [B, H] out (cells with the state c: LSTM; else null): the cell state at the same step. */
  cN: Float32Array | null;
  /** Keep what the backward pass needs and return it as the context. */
  training: boolean;
  /**
   * The gate activation of LSTM and GRU (cells.ts RecurrentActivation): null or omitted = sigmoid;
   * { kind: 'hardSigmoid', alpha, beta } = clamp(alpha * v + beta, 0, 1).
   */
  recurrentActivation?: RecurrentActivation | null;
  /**
   * Another call made together with this one (the reverse direction of a bidirectional layer:
   * its own arguments, with paired null), or null / omitted. The results are those of this call
   * then the paired one, bit for bit; a backend may run the two at once (native: one thread each
   * when its pool has 2 or 3 threads and neither call writes what the other reads or writes, a y
   * shared out by columns aside). training must be the same in both; the context returned covers
   * both and takes a paired backward call (SeqBackwardArgs.paired).
   */
  paired?: SeqForwardArgs | null;
}

/**
 * An immutable copy of a weight's values that a backend holds itself (Backend.copyWeight):
 * `length` values, made by the backend named.
 */
export interface WeightCopy {
  readonly backend: string;
  readonly length: number;
}

/**
 * Opaque saved state of a forward call made with training = true: the backend's own record of
 * the forward arguments (which must stay unchanged until backward) and its saved activations.
 */
export type SeqContext = { readonly backend: string };

/**
 * Arguments of `Backend.seqBackward`: the context saved by the forward call, the gradients
 * arriving at the outputs, and the buffers the input, state and weight gradients are accumulated
 * into.
 */
export interface SeqBackwardArgs {
  ctx: SeqContext;
  /** [T, B, dyStride] gradient of y, read at columns [dyOffset, dyOffset + R); null = zero. */
  dy: Float32Array | null;
  dyStride: number;
  dyOffset: number;
  /** [B, R] gradient of hN, or null = zero. */
  dhN: Float32Array | null;
  /** [B, H] gradient of cN (LSTM), or null = zero. */
  dcN: Float32Array | null;
  /** Accumulated outputs (+=), null = not wanted. Shapes as the forward arguments. */
  dx: Float32Array | null; // [T, B, I]
  dh0: Float32Array | null; // [B, R]
  dc0: Float32Array | null; // [B, H]
  dWIh: Float32Array | null; // [G*H, I]
  dWHh: Float32Array | null; // [G*H, R]
  dBIh: Float32Array | null; // [G*H]
  dBHh: Float32Array | null; // [G*H]
  dWHr: Float32Array | null; // [P, H]
  /**
   * The gradients of the paired call of a paired forward call (SeqForwardArgs.paired), which it
   * needs and only it: the results are those of this call then the paired one (a dx both add to,
   * as a bidirectional layer's, receives this call's part first).
   */
  paired?: Omit<SeqBackwardArgs, 'ctx' | 'paired'> | null;
}

/** The context of a paired call that a backend ran as two calls in turn. */
export interface PairedSeqContext extends SeqContext {
  readonly calls: readonly [SeqContext | null, SeqContext | null];
}

/** Runs a paired forward call (args.paired) as two calls of `one`, in turn. */
export function seqForwardInTurn(
  backend: string, args: SeqForwardArgs, one: (a: SeqForwardArgs) => SeqContext | null,
): SeqContext | null {
  const first = one({ ...args, paired: null });
  const second = one(args.paired as SeqForwardArgs);
  if (!args.training) return null;
  const ctx: PairedSeqContext = { backend, calls: [first, second] };
  return ctx;
}

/** Whether ctx is the context of a paired call run in turn (seqForwardInTurn). */
export function isPairedContext(ctx: SeqContext | null | undefined): ctx is PairedSeqContext {
  return !!ctx && Array.isArray((ctx as Partial<PairedSeqContext>).calls);
}

/** Runs a paired backward call as two calls of `one`, in turn; checks that call and context match. */
export function seqBackwardInTurn(backend: string, args: SeqBackwardArgs, one: (a: SeqBackwardArgs) => void): void {
  const ctx = args.ctx;
  if (!isPairedContext(ctx) || !args.paired) {
    throw new Error(`${backend}.seqBackward: a paired forward call takes a paired backward call (args.paired), and only it`);
  }
  one({ ...args, ctx: ctx.calls[0] as SeqContext, paired: null });
  one({ ...args.paired, ctx: ctx.calls[1] as SeqContext, paired: null });
}

/** The element-wise activations with a forward/backward kernel pair. */
export type UnaryOp = 'tanh' | 'sigmoid' | 'relu';

/**
 * Arguments of `Backend.adamUpdate`: one parameter tensor with its gradient and moments, updated
 * in place, and the hyper-parameters of the step.
 */
export interface AdamArgs {
  /** All [n]: parameter (updated in place), its gradient, first and second moments (updated). */
  param: Float32Array;
  grad: Float32Array;
  m: Float32Array;
  v: Float32Array;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** true = AdamW (decoupled weight decay), false = Adam (L2 added to the gradient). */
  decoupled: boolean;
  /** 1-based step count, for bias correction. */
  step: number;
}

/**
 * Arguments of `Backend.sgdUpdate`: one parameter tensor with its gradient and momentum buffer,
 * updated in place, and the hyper-parameters of the step.
 */
export interface SgdArgs {
  /** All [n]: parameter (updated in place), gradient, momentum buffer (updated; unused if momentum 0). */
  param: Float32Array;
  grad: Float32Array;
  momentumBuffer: Float32Array;
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** First step: the momentum buffer is set to the gradient (PyTorch). */
  firstStep: boolean;
}

/**
 * What a backend reports about itself: name, instruction set, threads and matrix-product
 * precision.
 */
export interface BackendInfo {
  /** e.g. "avx512", "avx2", "sse2", "simd128", "ts". */
  isa: string;
  threads: number;
  detail?: string;
  /** Arithmetic of the GEMMs in effect: 'fp32', or 'bf16' (native under matmul precision 'medium'). */
  matmul?: 'fp32' | 'bf16';
}

/**
 * Internal precision allowed for fp32 matrix products, as torch.set_float32_matmul_precision:
 * 'highest' (default) computes in fp32; 'medium' permits rounding the inputs of each product to
 * bf16 (round-to-nearest-even) and accumulating in fp32, where the hardware does that faster
 * (native backend on AVX-512 CPUs with avx512_bf16 and arm64 CPUs with BF16). A permission, not a requirement: the other
 * backends, and native elsewhere, stay fp32.
 */
export type MatmulPrecision = 'highest' | 'medium';
export const MATMUL_PRECISIONS: readonly MatmulPrecision[] = ['highest', 'medium'];

/**
 * The kernels every backend implements (native, wasm, reference): GEMM, the whole-sequence
 * recurrent forward/backward, element-wise ops, losses and optimizer updates. Shapes and semantics
 * are given on each method; src/backends/validate.ts checks the arguments before any backend sees
 * them.
 */
export interface Backend {
  readonly name: string;
  info(): BackendInfo;

  /**
   * C[M, N] = alpha * op(A) @ op(B) + beta * C, row-major with leading dimensions.
   * op(A) is [M, K]: A is [M, lda>=K] or, when transA, [K, lda>=M]. op(B) is [K, N]: B is
   * [K, ldb>=N] or, when transB, [N, ldb>=K]. C is [M, ldc>=N]. beta = 0 ignores C's contents.
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, lda: number, B: Float32Array, ldb: number,
    beta: number, C: Float32Array, ldc: number,
  ): void;

  /**
   * Whether seqForward / seqBackward take a paired call (SeqForwardArgs.paired): the layers pass
   * a bidirectional layer's two directions as one paired call only to a backend that says so.
   */
  readonly pairedCalls?: boolean;
  /** One direction of one recurrent layer over the whole sequence (or two: args.paired); see SeqForwardArgs. */
  seqForward(args: SeqForwardArgs): SeqContext | null;
  /** Backpropagation through time over the whole sequence of a forward call. */
  seqBackward(args: SeqBackwardArgs): void;
  /**
   * Optional async forms of the two sequence kernels, run off the JS main thread (native:
   * Napi::AsyncWorker). The buffers must not be touched until the promise settles.
   */
  seqForwardAsync?(args: SeqForwardArgs): Promise<SeqContext | null>;
  seqBackwardAsync?(args: SeqBackwardArgs): Promise<void>;
  /**
   * Optional (native): inference calls (training false, no pairs) run in order as ONE async job,
   * e.g. every layer and direction of a stacked model. A call whose x is the very array an earlier
   * call's y is reads what that call wrote: such a y is the job's own (zeros at the start), and its
   * array is neither read nor written.
   */
  seqForwardStackAsync?(calls: SeqForwardArgs[]): Promise<void>;
  /**
   * Optional, with the async forms (native): an immutable copy of values in the backend's own
   * memory, for SeqForwardArgs.weightCopies. A model served with forwardAsync keeps one per weight
   * while the weight does not change, and its calls share it instead of copying the weights.
   */
  copyWeight?(values: Float32Array): WeightCopy;
  /** Optional: number of threads the backend's kernels use (native thread pool). */
  setThreads?(n: number): void;
  /** Optional: matmul precision (see MatmulPrecision); backends without it compute in fp32. */
  setMatmulPrecision?(p: MatmulPrecision): void;
  /** Optional (native): the recycled-block cache and malloc's figures, process-wide. */
  memoryStats?(): NativeMemoryStats;
  /** Optional (native): gives the cached blocks and malloc's free memory back to the system. */
  trimMemory?(): void;
  /** Optional (native): how many async jobs of this JS thread run at once (0: the default). */
  setAsyncJobs?(n: number): void;
  /** Optional (native): the admission counters of async jobs; reset: the peaks start again. */
  asyncJobStats?(reset?: boolean): AsyncJobStats;

  /** y[n] = op(x[n]). */
  unaryForward(op: UnaryOp, x: Float32Array, y: Float32Array): void;
  /** dx[n] += dy[n] * op'(.), using x (relu) or y (tanh, sigmoid), whichever the op needs. */
  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array): void;

  /**
   * Row-wise softmax cross-entropy. logits [N, C], targets [N] class ids.
   * Out: probs [N, C] softmax, losses [N] -log softmax[target] (0 where target == ignoreIndex).
   */
  crossEntropyForward(
    N: number, C: number, logits: Float32Array, targets: Int32Array, ignoreIndex: number,
    probs: Float32Array, losses: Float32Array,
  ): void;
  /** dLogits[N, C] += dLosses[n] * (probs - onehot(target)); rows with ignoreIndex get nothing. */
  crossEntropyBackward(
    N: number, C: number, probs: Float32Array, targets: Int32Array, ignoreIndex: number,
    dLosses: Float32Array, dLogits: Float32Array,
  ): void;

  /** sum(x[n]^2), accumulated in double precision. */
  sumSquares(x: Float32Array): number;
  /**
   * Optional (native): dst[N] += column sums of x[M, N] (a bias gradient), each column summed in
   * row order in float32 from 0, then added to dst; bits equal to the linear op's own loop, which
   * backends without it run.
   */
  addColumnSums?(M: number, N: number, x: Float32Array, dst: Float32Array): void;

  /** One Adam / AdamW step, exactly PyTorch's torch.optim.Adam / AdamW (non-amsgrad). */
  adamUpdate(args: AdamArgs): void;
  /** One SGD step, exactly PyTorch's torch.optim.SGD. */
  sgdUpdate(args: SgdArgs): void;
}

/** Size of the recurrent / output state of a layer. */
export function recurrentSize(H: number, P: number): number {
  return P > 0 ? P : H;
}

/** Admission of the native backend's async jobs (seqForwardAsync, seqBackwardAsync). */
export interface AsyncJobStats {
  /** Jobs of this JS thread admitted to libuv's threadpool at once, at most. */
  limit: number;
  /** This thread's jobs on the threadpool now (queued there or running). */
  admitted: number;
  /** This thread's jobs waiting for admission now, and the most at once. */
  waiting: number;
  peakWaiting: number;
  /** Jobs running their kernels now in the whole process (every JS thread), and the most at once. */
  executing: number;
  peakExecuting: number;
  /**
   * Bytes this thread's jobs copied from its arrays when they were called (inputs, weights given as
   * arrays, gradients they add to), and bytes of weight copies (Backend.copyWeight) they shared
   * instead of copying.
   */
  copiedBytes: number;
  sharedBytes: number;
  /**
   * Times the jobs' threads gave up their core between time steps (RNNKIT_JOB_YIELD_US), in the
   * whole process.
   */
  yields: number;
}

/**
 * The native backend's memory: the recycled-block cache (at most 64 blocks and 256 MiB) and, where
 * the C library reports them (glibc), the malloc arenas' size, bytes in use and free bytes kept.
 */
export interface NativeMemoryStats {
  cacheBytes: number;
  cacheBlocks: number;
  /**
   * Bytes of what the kernels made of weight copies (Backend.copyWeight) that are alive: each
   * copy packed in the layouts the sequence kernels read it in (W_ih and W_hh for the products,
   * W_hh of a batch-1 LSTM for its fused step), made on the copy's first call that needs one and
   * kept with it.
   */
  weightPackBytes: number;
  /** How many such packed forms were made since the addon loaded (per weight copy, layout and ISA). */
  weightPacksMade: number;
  mallocArenaBytes?: number;
  mallocInUseBytes?: number;
  mallocFreeBytes?: number;
  mallocMmapBytes?: number;
}
