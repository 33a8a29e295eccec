// The WebAssembly backend built from the module's bytes or a compiled WebAssembly.Module.
// Node-free: no fs, no module, no process; usable in Deno, Bun, workers and browsers.
//
// Memory: the kernels (assembly/index.ts) work on byte offsets into the module's linear memory,
// which this file lays out with a small allocator above heapBase() (WasmHeap). What lives there:
// - the scratch of a call (WasmArena), freed when the call returns;
// - resident weights: a sequence call that passes its weights' change counters
//   (SeqForwardArgs.weightVersions, which the layers do) leaves each weight, and its packed forms
//   for the GEMMs, in linear memory; the next call uses them as long as the counter has not moved.
//   The copy belongs to the backend and is freed when the weight array is garbage-collected
//   (FinalizationRegistry) or by release();
// - forward contexts: a training forward keeps x and the activations for its backward; the
//   context owns those blocks, and its backward frees them (a context serves one backward; one
//   never used is freed when it is garbage-collected, or by release(ctx)).
// Outputs are copied into the caller's arrays, which stay the caller's. Growing memory detaches
// every view, so views are created after all allocations of a call.
import {
  type AdamArgs, type Backend, type BackendInfo, type MatmulPrecision, type SeqBackwardArgs, type SeqContext,
  type SeqForwardArgs, type SgdArgs, type UnaryOp, isPairedContext, recurrentSize, seqBackwardInTurn, seqForwardInTurn,
} from './backend.js';
import { type CellKind, type RecurrentActivation, CELLS, gateCount, hasCellState } from './cells.js';
import {
  assertAdamArgs, assertCrossEntropyBackwardArgs, assertCrossEntropyForwardArgs, assertGemmArgs, assertMatmulPrecision,
  assertSeqBackwardArgs, assertSeqForwardArgs, assertSgdArgs, assertSumSquaresArgs, assertUnaryArgs,
} from './validate.js';
import { type StepSplitChoice, type StepSplitMode, StepSplitChooser, stepSplitMode, stepSplitShape } from './step-split.js';

export { StepSplitChooser, stepSplitShape, type StepSplitChoice } from './step-split.js';

/** The exports of assembly/index.ts (pointers are byte offsets, sizes are elements). */
export interface WasmKernels {
  memory: WebAssembly.Memory;
  heapBase(): number;
  isRelaxed(): number;
  packedBSize(K: number, N: number): number;
  packedASize(): number;
  packB(transB: number, K: number, N: number, B: number, ldb: number, dst: number): void;
  gemmPacked(transA: number, M: number, N: number, K: number, alpha: number, A: number, lda: number, Bp: number,
    beta: number, C: number, ldc: number, Ap: number): void;
  gemmPackedCols(transA: number, M: number, N: number, K: number, alpha: number, A: number, lda: number, Bp: number,
    beta: number, C: number, ldc: number, Ap: number, jBegin: number, jEnd: number): void;
  setTile(p: number): void;
  gemm(transA: number, transB: number, M: number, N: number, K: number, alpha: number, A: number, lda: number,
    B: number, ldb: number, beta: number, C: number, ldc: number, scratch: number): void;
  gemmSmallM(transB: number, M: number, N: number, K: number, alpha: number, A: number, lda: number, B: number, ldb: number,
    beta: number, C: number, ldc: number): void;
  vecMath(op: number, n: number, x: number, y: number): void;
  gemmNaive(transA: number, transB: number, M: number, N: number, K: number, alpha: number, A: number, lda: number,
    B: number, ldb: number, beta: number, C: number, ldc: number): void;
  fillBias(rows: number, G: number, bIh: number, bHh: number, gruH: number, XP: number): void;
  lstmStepForward(B: number, H: number, tIdx: number, xp: number, hp: number, c: number, hOut: number, ldh: number,
    hSave: number, gates: number, cells: number, saveFull: number, hard: number, alpha: number, beta: number): void;
  lstmForwardSteps(j0: number, j1: number, Ap: number, from: number, B: number, H: number, steps: number, hA: number, hB: number,
    Whh: number, hp: number, tIdx: number, xp: number, c: number, hSave: number, gates: number, cells: number, saveFull: number,
    ctl: number, hard: number, alpha: number, beta: number): number;
  lstmBackwardUnits(j0: number, j1: number, Ap: number, B: number, H: number, gemm: number, dGNext: number, WhhN: number,
    tIdx: number, prevT: number, dh: number, dy: number, dyStride: number, dyOffset: number, dc: number, gates: number,
    cells: number, c0: number, dG: number, dGall: number, hard: number, alpha: number): void;
  addColumnSumsCols(j0: number, j1: number, Ap: number, rows: number, n: number, src: number, dst: number): void;
  tileRows(): number;
  /** The cells of seqForwardRows / seqBackwardRows. */
  ROWS_LSTM: WebAssembly.Global;
  ROWS_GRU: WebAssembly.Global;
  ROWS_RNN_TANH: WebAssembly.Global;
  ROWS_RNN_RELU: WebAssembly.Global;
  seqForwardRows(b0: number, b1: number, Ap: number, kind: number, B: number, H: number, G: number, steps: number, h: number, c: number,
    Whh: number, hp: number, tIdx: number, xp: number, bHhN: number, states: number, gates: number, cells: number,
    saveFull: number, hard: number, alpha: number, beta: number): void;
  seqBackwardRows(b0: number, b1: number, Ap: number, kind: number, B: number, H: number, G: number, steps: number, WhhN: number,
    tIdx: number, prevT: number, dh: number, dy: number, dyStride: number, dyOffset: number, dc: number, gates: number,
    cells: number, states: number, h0: number, c0: number, dG: number, dGi: number, dGh: number, hard: number, alpha: number): void;
  fillBiasRows(j0: number, j1: number, Ap: number, G: number, bIh: number, bHh: number, gruH: number, XP: number): void;
  crossEntropyForwardRows(j0: number, j1: number, Ap: number, C: number, logits: number, targets: number, ignoreIndex: number,
    probs: number, losses: number): void;
  adamUpdateRange(j0: number, j1: number, Ap: number, param: number, grad: number, m: number, v: number, decoupled: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  gruStepForward(B: number, H: number, tIdx: number, xp: number, hp: number, bHhN: number, h: number, states: number,
    gates: number, cells: number, saveFull: number, hard: number, alpha: number, beta: number): void;
  gruResetBeforeStepGates(B: number, H: number, tIdx: number, xp: number, hp: number, h: number, gates: number, rh: number,
    rhSave: number, saveFull: number, hard: number, alpha: number, beta: number): void;
  gruResetBeforeStepForward(B: number, H: number, tIdx: number, xp: number, hp: number, h: number, states: number,
    gates: number, saveFull: number): void;
  rnnStepForward(B: number, H: number, tIdx: number, xp: number, hp: number, relu: number, h: number, states: number): void;
  scatterRows(B: number, n: number, tIdx: number, src: number, dst: number, all: number): void;
  addDy(B: number, R: number, tIdx: number, dh: number, dy: number, dyStride: number, dyOffset: number): void;
  lstmStepBackward(B: number, H: number, R: number, tIdx: number, prevT: number, dhIn: number, dhState: number,
    dc: number, gates: number, cells: number, c0: number, dG: number, dGall: number, hard: number, alpha: number): void;
  gruStepBackward(B: number, H: number, tIdx: number, prevT: number, dh: number, gates: number, cells: number,
    states: number, h0: number, dGh: number, dGiAll: number, dGhAll: number, hard: number, alpha: number): void;
  gruResetBeforeStepBackward(B: number, H: number, tIdx: number, prevT: number, dh: number, gates: number, states: number,
    h0: number, dG: number, dGall: number, hard: number, alpha: number): void;
  gruResetBeforeStepResetBackward(B: number, H: number, tIdx: number, prevT: number, drh: number, gates: number,
    states: number, h0: number, dh: number, dG: number, dGall: number, hard: number, alpha: number): void;
  rnnStepBackward(B: number, H: number, tIdx: number, relu: number, dh: number, states: number, dG: number, dGall: number): void;
  gatherRows(rows: number, n: number, B: number, idx: number, src: number, init: number, out: number): void;
  addColumnSums(rows: number, n: number, src: number, dst: number): void;
  addInto(n: number, src: number, dst: number): void;
  unaryForward(op: number, n: number, x: number, y: number): void;
  unaryBackward(op: number, n: number, x: number, y: number, dy: number, dx: number): void;
  crossEntropyForward(N: number, C: number, logits: number, targets: number, ignoreIndex: number, probs: number, losses: number): void;
  crossEntropyBackward(N: number, C: number, probs: number, targets: number, ignoreIndex: number, dLosses: number, dLogits: number): void;
  sumSquares(n: number, x: number): number;
  adamUpdate(n: number, param: number, grad: number, m: number, v: number, lr: number, beta1: number, beta2: number,
    eps: number, weightDecay: number, decoupled: number, step: number): void;
  sgdUpdate(n: number, param: number, grad: number, buf: number, lr: number, momentum: number, dampening: number,
    weightDecay: number, nesterov: number, firstStep: number): void;
}

/**
 * Calls with at most SMALL_M rows and SMALL_T steps (streaming, one step at a time) run their
 * per-step GEMMs straight from the weights (gemmSmallM); packing pays off only over more steps.
 */
const SMALL_M = 4;
const SMALL_T = 8;
const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit
/** Floats of a thread's GEMM edge-tile scratch: the largest register tile, 6 x 8 (assembly/gemm.ts setTile). */
const TILE_FLOATS = 48;

/**
 * The allocator of linear memory above heapBase(): first fit over the free ranges below the top,
 * else at the top, growing memory when needed. Blocks are 16-byte aligned; sizes are counted in
 * float32 (or int32) elements.
 */
export class WasmHeap {
  private top: number;
  /** Free [ptr, bytes] ranges below top, sorted by ptr, neighbours merged. */
  private readonly holes: Array<[number, number]> = [];
  private readonly sizes = new Map<number, number>();
  /** Bytes of the blocks allocated and not yet freed. */
  bytesInUse = 0;
  /** Highest top reached, in bytes above the base. */
  peak = 0;

  constructor(private readonly memory: WebAssembly.Memory, readonly base: number, private readonly kernel = 'wasm') {
    this.top = base;
  }

  /** Number of live blocks. */
  get blocks(): number {
    return this.sizes.size;
  }

  /** Reserves n float32 (or int32) elements; `what` names the buffer in an out-of-memory error. */
  alloc(n: number, what: string): number {
    const bytes = Math.max(16, Math.ceil((n * 4) / 16) * 16);
    let ptr = -1;
    for (let i = 0; i < this.holes.length; i++) {
      const [p, size] = this.holes[i];
      if (size < bytes) continue;
      ptr = p;
      if (size === bytes) this.holes.splice(i, 1);
      else this.holes[i] = [p + bytes, size - bytes];
      break;
    }
    if (ptr < 0) {
      ptr = this.top;
      this.grow(ptr + bytes, what);
      this.top = ptr + bytes;
      this.peak = Math.max(this.peak, this.top - this.base);
    }
    this.sizes.set(ptr, bytes);
    this.bytesInUse += bytes;
    return ptr;
  }

  /** Bytes of a live block (0 if none starts at ptr). */
  sizeOf(ptr: number): number {
    return this.sizes.get(ptr) ?? 0;
  }

  /** Returns a block to the heap. */
  free(ptr: number): void {
    const bytes = this.sizes.get(ptr);
    if (bytes === undefined) throw new Error(`${this.kernel}: freeing ${ptr}, which is not a live block`);
    this.sizes.delete(ptr);
    this.bytesInUse -= bytes;
    const h = this.holes;
    let i = 0;
    while (i < h.length && h[i][0] < ptr) i++;
    h.splice(i, 0, [ptr, bytes]);
    if (i + 1 < h.length && h[i][0] + h[i][1] === h[i + 1][0]) h.splice(i, 2, [h[i][0], h[i][1] + h[i + 1][1]]);
    if (i > 0 && h[i - 1][0] + h[i - 1][1] === h[i][0]) h.splice(i - 1, 2, [h[i - 1][0], h[i - 1][1] + h[i][1]]);
    const last = h[h.length - 1];
    if (last && last[0] + last[1] === this.top) {
      this.top = last[0];
      h.pop();
    }
  }

  private grow(end: number, what: string): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    const total = have / PAGE + pages;
    const fail = (why: string) =>
      new RangeError(`${this.kernel}: out of WebAssembly memory: this call needs ${(end / 2 ** 20).toFixed(1)} MiB ` +
        `of linear memory (at ${what}), ${why}`);
    if (total > MAX_PAGES) throw fail('more than the 4 GiB a wasm32 module can address');
    try {
      this.memory.grow(pages);
    } catch (e) {
      throw fail(`the runtime refused to grow memory to ${(total * PAGE / 2 ** 20).toFixed(0)} MiB (${(e as Error).message})`);
    }
  }
}

/** The scratch blocks of one kernel call: allocated from the heap, all freed by reset(). */
export class WasmArena {
  readonly heap: WasmHeap;
  private readonly live: number[] = [];

  constructor(memory: WebAssembly.Memory | WasmHeap, base = 0, kernel = 'wasm') {
    this.heap = memory instanceof WasmHeap ? memory : new WasmHeap(memory, base, kernel);
  }

  /** Highest top of the heap reached, in bytes above its base. */
  get peak(): number {
    return this.heap.peak;
  }

  /** Frees every block allocated since the last reset. */
  reset(): void {
    for (const p of this.live) this.heap.free(p);
    this.live.length = 0;
  }

  /** Reserves n float32 (or int32) elements until the next reset; grows memory when needed. */
  alloc(n: number, what: string): number {
    const p = this.heap.alloc(n, what);
    this.live.push(p);
    return p;
  }
}

/** A weight kept in linear memory between calls, with its packed forms for the GEMMs. */
interface Resident {
  ptr: number;
  n: number;
  /** The caller's change counter the copy was made at (NaN: stale). */
  version: number;
  /** Packed op(B) by 'T' (transposed) or 'N' (as is), row offset and shape, and the version it was packed from. */
  packed: Map<string, { ptr: number; version: number }>;
  freed: boolean;
}

/** Blocks of a forward context, freed by its backward, by release(ctx) or when the context is collected. */
interface ContextBlocks {
  ptrs: number[];
  freed: boolean;
}

interface WasmSeqContext extends SeqContext {
  owner: WasmBackend;
  args: SeqForwardArgs;
  lens: Int32Array;
  maxLen: number;
  /** Blocks in linear memory (0 = none): x [T,B,I]; states h_t [T,B,R]; activated gates [T,B,G] and
   * cells [T,B,H] (cells that save them: LSTM c, GRU W_hn h + b_hn, reset-before GRU r * h);
   * LSTM o*tanh(c) before the projection [T,B,H]. */
  pX: number;
  pStates: number;
  pGates: number;
  pCells: number;
  pHRaw: number;
  blocks: ContextBlocks;
}

const UNARY: Record<UnaryOp, number> = { tanh: 0, sigmoid: 1, relu: 2 };

/** The gate activation as the step kernels take it: hard (0 sigmoid, 1 hard sigmoid), alpha, beta. */
type GateArgs = [hard: number, alpha: number, beta: number];
function gateArgs(a: RecurrentActivation | null | undefined): GateArgs {
  return a && a.kind === 'hardSigmoid' ? [1, a.alpha, a.beta] : [0, 0, 0];
}

/** What one forward step of a cell's kernels reads and writes (byte offsets into memory). */
interface WasmForwardStep {
  B: number; H: number; R: number;
  /** [B] time index of each row at this step (-1: finished). */
  tIdx: number;
  /** [TB, G] input pre-activations with the folded biases; [B, G] recurrent products (early gates). */
  xp: number; hp: number;
  /** [B, R] the state h (in: h_{t-1}; out: h_t for cells that write it). */
  h: number;
  /** [B, H] LSTM cell state c (in/out). */
  c: number;
  /** [B, H] where LSTM writes o * tanh(c) (h, or the row before the projection), and its save [TB, H] (or 0). */
  hOut: number; hSave: number;
  /** [TB, R] all states. */
  states: number;
  /** [*, G] gates, [*, H] the cell's saved vector, at row (saveFull ? t*B+b : b). */
  gates: number; cells: number; saveFull: number;
  /** GRU: b_hh of the n gate (b_hh + 2H) or 0. */
  bHhLast: number;
  /** [B, H] scratch of the late gates' product input (reset-before GRU: r * h). */
  rh: number;
  gate: GateArgs;
  /** The late gates' products: hp[:, GE:G] = v[B, R] @ W_hh[late rows]^T. */
  late(v: number): void;
}

/** What one backward step of a cell's kernels reads and writes. */
interface WasmBackwardStep {
  B: number; H: number; R: number;
  tIdx: number; prevT: number;
  /** [B, R] gradient reaching h (in); out: the direct path (or zero) the W_hh product adds to. */
  dh: number;
  /** [B, H] LSTM: the gradient of o * tanh(c) (dh, or dh @ W_hr with a projection). */
  dhIn: number;
  /** [B, H] LSTM dc in/out. */
  dc: number;
  gates: number; cells: number; states: number; h0: number; c0: number;
  /** [B, G] this step's recurrent-side gradients (the W_hh products), [TB, G] input / recurrent side at row t*B+b. */
  dG: number; dGi: number; dGh: number;
  /** [B, H] scratch: the gradient of the late gates' product input. */
  drh: number;
  gate: GateArgs;
  /** out[B, R] = dG[:, GE:G] @ W_hh[late rows]. */
  lateT(out: number): void;
}

/**
 * How the wasm driver runs each cell of the table (cells.ts CELLS): the buffers its kernels need
 * and its step kernels (assembly/cells.ts). A new cell is a row here beside its kernels.
 */
/** The cells of the sequence kernels over batch rows: exports of the module (ROWS_* of assembly/cells.ts). */
type RowsKind = 'ROWS_LSTM' | 'ROWS_GRU' | 'ROWS_RNN_TANH' | 'ROWS_RNN_RELU';

interface WasmCell {
  /** Keeps the gates [T, B, G] and one [H] vector per row and step (cells): LSTM c, GRU W_hn h + b_hn, reset-before GRU r * h. */
  saves: boolean;
  /** b_hh of the last gate stays out of the folded bias (GRU: inside r * (.)). */
  lastBiasInside: boolean;
  /** The recurrent-side gradients differ from the input side (GRU: dn * r). */
  splitGrad: boolean;
  /** The cell's kind for the sequence kernels over batch rows (seqForwardRows), or null where they do not cover it. */
  rows: RowsKind | null;
  forward(k: WasmKernels, s: WasmForwardStep): void;
  backward(k: WasmKernels, s: WasmBackwardStep): void;
}

function rnnCell(relu: number): WasmCell {
  return {
    saves: false, lastBiasInside: false, splitGrad: false, rows: relu ? 'ROWS_RNN_RELU' : 'ROWS_RNN_TANH',
    forward: (k, s) => k.rnnStepForward(s.B, s.H, s.tIdx, s.xp, s.hp, relu, s.h, s.states),
    backward: (k, s) => k.rnnStepBackward(s.B, s.H, s.tIdx, relu, s.dh, s.states, s.dG, s.dGi),
  };
}

const WASM_CELLS: Record<CellKind, WasmCell> = {
  lstm: {
    saves: true, lastBiasInside: false, splitGrad: false, rows: 'ROWS_LSTM',
    forward: (k, s) => k.lstmStepForward(s.B, s.H, s.tIdx, s.xp, s.hp, s.c, s.hOut, s.H, s.hSave, s.gates, s.cells, s.saveFull, ...s.gate),
    backward: (k, s) => k.lstmStepBackward(s.B, s.H, s.R, s.tIdx, s.prevT, s.dhIn, s.dh, s.dc, s.gates, s.cells, s.c0, s.dG, s.dGi, s.gate[0], s.gate[1]),
  },
  gru: {
    saves: true, lastBiasInside: true, splitGrad: true, rows: 'ROWS_GRU',
    forward: (k, s) => k.gruStepForward(s.B, s.H, s.tIdx, s.xp, s.hp, s.bHhLast, s.h, s.states, s.gates, s.cells, s.saveFull, ...s.gate),
    backward: (k, s) => k.gruStepBackward(s.B, s.H, s.tIdx, s.prevT, s.dh, s.gates, s.cells, s.states, s.h0, s.dG, s.dGi, s.dGh, s.gate[0], s.gate[1]),
  },
  rnn_tanh: rnnCell(0),
  rnn_relu: rnnCell(1),
  gru_reset_before: {
    saves: true, lastBiasInside: false, splitGrad: false, rows: null,
    forward: (k, s) => {
      k.gruResetBeforeStepGates(s.B, s.H, s.tIdx, s.xp, s.hp, s.h, s.gates, s.rh, s.saveFull ? s.cells : 0, s.saveFull, ...s.gate);
      s.late(s.rh); // hp_n = W_hn (r * h)
      k.gruResetBeforeStepForward(s.B, s.H, s.tIdx, s.xp, s.hp, s.h, s.states, s.gates, s.saveFull);
    },
    backward: (k, s) => {
      k.gruResetBeforeStepBackward(s.B, s.H, s.tIdx, s.prevT, s.dh, s.gates, s.states, s.h0, s.dG, s.dGi, s.gate[0], s.gate[1]);
      s.lateT(s.drh); // drh = W_hn^T dn
      k.gruResetBeforeStepResetBackward(s.B, s.H, s.tIdx, s.prevT, s.drh, s.gates, s.states, s.h0, s.dh, s.dG, s.dGi, s.gate[0], s.gate[1]);
    },
  },
};

/** Options of `createWasmBackend`. */
export interface WasmBackendOptions {
  /** Name reported by info().detail, e.g. which build was chosen. */
  detail?: string;
  /**
   * Keep the weights of a sequence call in linear memory between calls when it passes their
   * change counters (SeqForwardArgs.weightVersions). Default true; false reads every weight on
   * every call.
   */
  residentWeights?: boolean;
  /**
   * Threads of a threaded build (rnnkit-threads.wasm) to start with; default the number of
   * cores. Ignored (one thread) by the other builds. `setThreads(n)` changes it later.
   */
  threads?: number;
  /**
   * An LSTM sequence whose steps run as one job on several threads (a small batch, e.g. batch-1
   * streaming: the threads meet at a barrier after every step): 'auto' (default) times each shape
   * split and on one thread and keeps the faster (`stepSplitChoices()`, info().detail);
   * 'always' splits it whenever the step is big enough. Results are bitwise the same either way.
   */
  stepSplit?: 'auto' | 'always';
}

/** What the wasm backend holds in linear memory (WasmBackend.heapStats()). */
export interface WasmHeapStats {
  /** Bytes of linear memory the module holds. */
  memoryBytes: number;
  /** Bytes in live blocks: resident weights and forward contexts waiting for their backward. */
  bytesInUse: number;
  /** Weights kept between calls (with their packed forms), and their bytes. */
  residentWeights: number;
  residentBytes: number;
  /** Forward contexts whose backward has not run yet. */
  contexts: number;
  /** Times a resident weight was copied into linear memory (first use, then after each change). */
  weightUploads: number;
  /**
   * Times a resident weight was packed for the GEMMs (once per packed form it is used in, then
   * again after each change): a model that does not change packs its weights once.
   */
  weightPacks: number;
}

/**
 * The WebAssembly backend (AssemblyScript, 128-bit SIMD): made by `createWasmBackend` from the
 * module or its bytes, in any runtime.
 */
export class WasmBackend implements Backend {
  readonly name = 'wasm';
  readonly pairedCalls = true;
  readonly kernels: WasmKernels;
  readonly heap: WasmHeap;
  /** The scratch of the current call (freed when the call returns). */
  readonly arena: WasmArena;
  readonly relaxed: boolean;
  private readonly detail: string;
  private readonly residentWeights: boolean;
  private readonly resident = new WeakMap<Float32Array, Resident>();
  private readonly residentLive = new Set<Resident>();
  private contexts = 0;
  private weightUploads = 0;
  private weightPacks = 0;
  private readonly weightReaper: FinalizationRegistry<Resident> | null;
  private readonly contextReaper: FinalizationRegistry<ContextBlocks> | null;
  /** The workers of a threaded build (null: one thread), the threads asked for, and why one thread. */
  private pool: WasmThreadPool | null = null;
  private threads = 1;
  private readonly singleThreadReason: string | null;
  /** How sequences whose steps run as one job choose between the threads and one thread. */
  private readonly stepSplitMode: StepSplitMode;
  /** What those jobs measured, per shape ('auto'); a test may feed it observations. */
  readonly stepSplit = new StepSplitChooser();

  /**
   * The backend over an instance of the module. A threaded build (its memory imported and shared)
   * also needs its compiled module, to start the same build in every worker.
   */
  constructor(instance: WebAssembly.Instance, options: WasmBackendOptions = {}, module: WebAssembly.Module | null = null) {
    this.kernels = instance.exports as unknown as WasmKernels;
    this.heap = new WasmHeap(this.kernels.memory, this.kernels.heapBase());
    this.arena = new WasmArena(this.heap);
    this.relaxed = this.kernels.isRelaxed() === 1;
    this.detail = options.detail ?? 'AssemblyScript SIMD kernels';
    this.residentWeights = options.residentWeights ?? true;
    this.stepSplitMode = stepSplitMode('createWasmBackend', options.stepSplit);
    const shared = typeof SharedArrayBuffer === 'function' && this.kernels.memory.buffer instanceof SharedArrayBuffer;
    this.singleThreadReason = !shared ? 'a build without shared memory' : !module ? 'no module to start workers with' : wasmThreadsUnavailable();
    if (this.singleThreadReason === null && module) {
      this.kernels.setTile(this.heap.alloc(TILE_FLOATS, 'thread tile')); // the static tile is shared by every instance
      this.pool = new WasmThreadPool(module, this.kernels.memory, this.heap, this.heap.alloc(CTL.words, 'thread control'));
      this.setThreads(options.threads ?? defaultThreads());
    }
    const Registry = typeof FinalizationRegistry === 'function' ? FinalizationRegistry : null;
    this.weightReaper = Registry ? new Registry<Resident>((r) => this.dropResident(r)) : null;
    this.contextReaper = Registry ? new Registry<ContextBlocks>((b) => this.freeContext(b)) : null;
  }

  info(): BackendInfo {
    const how = this.pool ? `shared memory, ${this.threads} thread${this.threads > 1 ? 's' : ''}` : `one thread: ${this.singleThreadReason}`;
    const steps = this.stepSplit.detail(this.stepSplitMode, this.pool ? 'small-batch LSTM steps always split' : null);
    return { isa: this.relaxed ? 'simd128+relaxed' : 'simd128', threads: this.threads, matmul: 'fp32', detail: `${this.detail}; ${how}${steps}` };
  }

  /**
   * For each shape of an LSTM sequence whose steps ran as one job on several threads: whether its
   * steps run split across the threads or on one thread, and the time per step measured each way
   * (option stepSplit 'auto').
   */
  stepSplitChoices(): StepSplitChoice[] {
    return this.stepSplit.choices();
  }

  /**
   * Threads the GEMMs are split across (threaded build only; the other builds stay at one and
   * info().detail says why). Results are bitwise the same for any number. New workers start in
   * the background: until they are ready fewer threads work (see `whenReady`).
   */
  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`wasm.setThreads: n must be a positive integer, received ${n}`);
    if (!this.pool) return;
    this.threads = Math.min(n, MAX_WASM_THREADS);
    this.pool.ensure(this.threads, this.kernels.packedASize());
  }

  /** Number of GEMMs split across threads so far. */
  get splitGemms(): number {
    return this.pool?.jobs ?? 0;
  }

  /** Number of jobs of one kernel over a range (e.g. 'lstmForwardSteps') split across threads so far. */
  splitJobs(kernel: RangeKernel): number {
    return this.pool?.rangeJobs[kernel] ?? 0;
  }

  /** Resolves when every thread set by setThreads has started. */
  async whenReady(): Promise<void> {
    await this.pool?.ready(this.threads);
  }

  /** Stops the worker threads (the backend then computes on one thread). */
  close(): void {
    this.pool?.close();
    this.pool = null;
    this.threads = 1;
  }

  /** gemmPacked, its output columns split across the threads when the product is big enough. */
  private gemmPacked(transA: number, M: number, N: number, K: number, alpha: number, A: number, lda: number, Bp: number,
    beta: number, C: number, ldc: number, Ap: number): void {
    const t = this.pool && this.threads > 1 && N >= 32 && M * N * K >= SPLIT_MACS ? this.pool.usable(this.threads) : 1;
    if (t > 1) this.pool!.gemm(this.kernels, t, transA, M, N, K, alpha, A, lda, Bp, beta, C, ldc, Ap);
    else this.kernels.gemmPacked(transA, M, N, K, alpha, A, lda, Bp, beta, C, ldc, Ap);
  }

  /**
   * A kernel over a range [0, n) (RANGE_KERNELS: hidden units of a recurrent step, elements, rows
   * or columns), split across the threads in chunks of 8 when `worth` says the work pays for it;
   * the arguments after (j0, j1, Ap): integers (and pointers), then floats. Ap: the caller's
   * GEMM scratch (each worker uses its own).
   */
  private split(kernel: RangeKernel, n: number, worth: boolean, ints: number[], floats: number[], Ap = 0): void {
    const t = this.pool && this.threads > 1 && worth && n >= 16 ? this.pool.usable(this.threads) : 1;
    if (t > 1) this.pool!.range(this.kernels, t, kernel, n, Ap, ints, floats);
    else (this.kernels[kernel] as (...args: number[]) => void)(0, n, Ap, ...ints, ...floats);
  }

  /**
   * Threads for a sequence split by batch rows (seqForwardRows / seqBackwardRows), or 1: only for
   * a cell they cover, without projection, and not a small (streaming) batch. The batch is cut
   * evenly (about B / t rows a part, at least a register tile's rows, tileRows(), each): every
   * row gets the same bits in any part (the GEMM sums each row alike in tiles of any height).
   * The parts depend on B and the thread count only.
   */
  private rowParts(wc: WasmCell, P: number, small: boolean, B: number, G: number, H: number): number {
    if (P > 0 || small || !wc.rows) return 1;
    const t = this.pool && this.threads > 1 && B * G * H >= SPLIT_SEQ_STEP_MACS ? this.pool.usable(this.threads) : 1;
    const parts = Math.min(t, Math.floor(B / this.kernels.tileRows()));
    return parts < 2 ? 1 : parts;
  }

  /** The kernel's gemm (scratch: packedBSize(K, N) + packedASize() floats), threaded as gemmPacked. */
  private gemmAll(transA: number, transB: number, M: number, N: number, K: number, alpha: number, A: number, lda: number,
    B: number, ldb: number, beta: number, C: number, ldc: number, scratch: number): void {
    const k = this.kernels;
    if (!this.pool || this.threads < 2 || M === 0 || N === 0 || K === 0 || alpha === 0 || (!transA && M <= 4)) {
      k.gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, scratch);
      return;
    }
    k.packB(transB, K, N, B, ldb, scratch);
    this.gemmPacked(transA, M, N, K, alpha, A, lda, scratch, beta, C, ldc, scratch + k.packedBSize(K, N) * 4);
  }

  /** Accepted for the registry; 'medium' only permits bf16, and wasm has no bf16 dot product: fp32. */
  setMatmulPrecision(p: MatmulPrecision): void {
    assertMatmulPrecision('wasm.setMatmulPrecision', p);
  }

  /** Bytes of linear memory the module holds now. */
  memoryBytes(): number {
    return this.kernels.memory.buffer.byteLength;
  }

  /** What lives in linear memory now: resident weights and forward contexts. */
  heapStats(): WasmHeapStats {
    let residentBytes = 0;
    for (const r of this.residentLive) {
      residentBytes += r.n * 4;
      for (const p of r.packed.values()) residentBytes += this.heap.sizeOf(p.ptr);
    }
    return {
      memoryBytes: this.memoryBytes(), bytesInUse: this.heap.bytesInUse, residentWeights: this.residentLive.size,
      residentBytes, contexts: this.contexts, weightUploads: this.weightUploads, weightPacks: this.weightPacks,
    };
  }

  /**
   * Frees linear memory now instead of when the garbage collector finds the owner unreachable:
   * a weight array's resident copy (read again on its next use), a forward context that will get
   * no backward (it cannot be used afterwards), or with no argument every resident weight.
   */
  release(what?: Float32Array | SeqContext): void {
    if (what === undefined) {
      for (const r of [...this.residentLive]) this.dropResident(r);
    } else if (what instanceof Float32Array) {
      const r = this.resident.get(what);
      if (r) {
        this.resident.delete(what);
        this.dropResident(r);
      }
    } else if ((what as WasmSeqContext).owner === this) {
      const ctx = what as WasmSeqContext;
      this.contextReaper?.unregister(ctx.blocks);
      this.freeContext(ctx.blocks);
    }
  }

  private dropResident(r: Resident): void {
    if (r.freed) return;
    r.freed = true;
    this.residentLive.delete(r);
    this.weightReaper?.unregister(r);
    this.heap.free(r.ptr);
    for (const p of r.packed.values()) this.heap.free(p.ptr);
  }

  private freeContext(b: ContextBlocks): void {
    if (b.freed) return;
    b.freed = true;
    this.contexts--;
    for (const p of b.ptrs) if (p) this.heap.free(p);
  }

  /** A weight's resident record when it may stay in linear memory (a change counter given), else null. */
  private residentOf(w: Float32Array, version: number | undefined, n: number): Resident | null {
    if (!this.residentWeights || version === undefined) return null;
    let r = this.resident.get(w);
    if (r && (r.freed || r.n !== n)) {
      this.resident.delete(w);
      this.dropResident(r);
      r = undefined;
    }
    if (!r) {
      const ptr = this.heap.alloc(n, 'resident weight');
      r = { ptr, n, version: NaN, packed: new Map(), freed: false };
      this.resident.set(w, r);
      this.residentLive.add(r);
      this.weightReaper?.register(w, r, r);
    }
    if (r.version !== version) {
      this.put(r.ptr, w, n);
      r.version = version;
      this.weightUploads++;
    }
    return r;
  }

  /** Marks a weight's resident copy stale (its values were changed by a kernel of this backend). */
  private changed(w: Float32Array): void {
    const r = this.resident.get(w);
    if (r) r.version = NaN;
  }

  /** Linear-memory copy of w [n]: resident when a change counter is given, else in this call's scratch. */
  private weight(w: Float32Array, version: number | undefined, n: number, what: string): number {
    const r = this.residentOf(w, version, n);
    if (r) return r.ptr;
    const p = this.arena.alloc(n, what);
    this.put(p, w, n);
    return p;
  }

  /**
   * Packed op(W) for gemmPacked (packB(trans, K, N, W + offset, ld)): kept with the resident
   * weight while its version holds, else packed into this call's scratch. `offset` (floats) picks
   * a block of rows (the late gates of wHh); each (trans, offset, K, N) has its own slot, and a
   * new version of the weight re-packs every slot on its next use.
   */
  private packedWeight(w: Float32Array, version: number | undefined, n: number, trans: number, K: number, N: number,
    ld: number, what: string, offset = 0): number {
    const k = this.kernels;
    const r = this.residentOf(w, version, n);
    if (!r) {
      const src = this.arena.alloc(K * N, what);
      this.put(src, w.subarray(offset, offset + K * N), K * N);
      const p = this.arena.alloc(k.packedBSize(K, N), `packed ${what}`);
      k.packB(trans, K, N, src, ld, p);
      return p;
    }
    const key = `${trans ? 'T' : 'N'}${offset}:${K}x${N}`;
    let pk = r.packed.get(key);
    if (!pk) {
      pk = { ptr: this.heap.alloc(k.packedBSize(K, N), `packed ${what}`), version: NaN };
      r.packed.set(key, pk);
    }
    if (pk.version !== r.version) {
      k.packB(trans, K, N, r.ptr + offset * 4, ld, pk.ptr);
      pk.version = r.version;
      this.weightPacks++;
    }
    return pk.ptr;
  }

  // views: created fresh, after every allocation of the current call
  private f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.kernels.memory.buffer, ptr, n);
  }
  private i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.kernels.memory.buffer, ptr, n);
  }
  private put(ptr: number, src: ArrayLike<number> & { subarray?: unknown }, n: number): void {
    if (n === 0) return;
    const s = src as Float32Array;
    this.f32(ptr, n).set(s.length === n ? s : s.subarray(0, n));
  }
  private putI(ptr: number, src: Int32Array, n: number): void {
    if (n > 0) this.i32(ptr, n).set(src.length === n ? src : src.subarray(0, n));
  }
  private get(ptr: number, dst: Float32Array, n: number): void {
    if (n > 0) dst.set(this.f32(ptr, n));
  }
  private addTo(ptr: number, dst: Float32Array, n: number): void {
    const v = this.f32(ptr, n);
    for (let i = 0; i < n; i++) dst[i] += v[i];
  }

  // C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, lda: number, B: Float32Array, ldb: number,
    beta: number, C: Float32Array, ldc: number,
  ): void {
    assertGemmArgs('wasm', transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
    if (M === 0 || N === 0) return;
    const span = (rows: number, cols: number, ld: number) => (rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols);
    const nA = span(transA ? K : M, transA ? M : K, lda);
    const nB = span(transB ? N : K, transB ? K : N, ldb);
    const nC = span(M, N, ldc);
    const k = this.kernels;
    const ar = this.arena;
    ar.reset();
    try {
      try {
        try {
          const pA = ar.alloc(nA, 'gemm A');
          const pB = ar.alloc(nB, 'gemm B');
          const pC = ar.alloc(nC, 'gemm C');
          const pS = ar.alloc(k.packedBSize(K, N) + k.packedASize(), 'gemm scratch');
          this.put(pA, A, nA);
          this.put(pB, B, nB);
          this.put(pC, C, nC);
          this.gemmAll(+transA, +transB, M, N, K, alpha, pA, lda, pB, ldb, beta, pC, ldc, pS);
          this.get(pC, C, nC);
        } finally {
          ar.reset();
        }
      } finally {
        ar.reset();
      }
    } finally {
      ar.reset();
    }
  }

  // seqForward: x [T,B,I], wIh [G,I], wHh [G,R], b* [G], wHr [P,H], h0 [B,R], c0 [B,H]
  //   -> y [T,B,yStride] (cols yOffset..+R), hN [B,R], cN [B,H]
  // Weights with change counters stay resident (with their packed forms); a training call keeps
  // x and the activations in linear memory for its backward (the context owns those blocks).
  seqForward(a: SeqForwardArgs): SeqContext | null {
    assertSeqForwardArgs('wasm', a);
    if (a.paired) return seqForwardInTurn('wasm', a, (one) => this.seqForward(one));
    const { cell, T, B, I, H, P, reverse, training } = a;
    const G = gateCount(cell) * H;
    const GE = G - CELLS[cell].lateGates * H; // the late gates' columns [GE, G)
    const R = recurrentSize(H, P);
    const TB = T * B;
    const wc = WASM_CELLS[cell];
    const withC = hasCellState(cell);
    const { lens, maxLen, tIdx } = stepTables(T, B, a.lengths, reverse);
    const k = this.kernels;
    const ar = this.arena;
    const ver = a.weightVersions;
    const kept: number[] = [];
    const keep = (n: number, what: string) => {
      const p = this.heap.alloc(n, what);
      kept.push(p);
      return p;
    };
    const save = training ? keep : (n: number, what: string) => ar.alloc(n, what);
    ar.reset();
    try {
      // a few rows and steps (streaming): per-step GEMMs straight from the weights, no packing
      const small = B <= SMALL_M && maxLen <= SMALL_T;
      // a batch of two register tiles or more on several threads (no projection): one part of
      // the rows per thread, each running every step alone (seqForwardRows)
      const parts = this.rowParts(wc, P, small, B, G, H);
      // else an LSTM without projection: each step's product and gates in one kernel over hidden
      // units (split across the threads), h alternating between two buffers
      const fused = parts === 1 && cell === 'lstm' && P === 0 && !small && H % 8 === 0;
      // --- allocate everything first (memory may grow), then create views
      const pX = save(TB * I, 'x');
      const pWih = TB <= SMALL_M ? this.weight(a.wIh, ver?.[0], G * I, 'wIh') : 0;
      const pWihT = TB <= SMALL_M ? 0 : this.packedWeight(a.wIh, ver?.[0], G * I, 1, I, G, I, 'wIh');
      const pWhh = small ? this.weight(a.wHh, ver?.[1], G * R, 'wHh') : 0;
      // op(B) = wHh[early]^T [R, GE] and wHh[late]^T [R, G - GE]: the late rows (from GE*R) packed on their own
      const pWhhT = small ? 0 : this.packedWeight(a.wHh, ver?.[1], G * R, 1, R, GE, R, 'wHh');
      const pWhlT = small || GE === G ? 0 : this.packedWeight(a.wHh, ver?.[1], G * R, 1, R, G - GE, R, 'wHh (late gates)', GE * R);
      const pBih = a.bIh ? this.weight(a.bIh, ver?.[2], G, 'bIh') : 0;
      const pBhh = a.bHh ? this.weight(a.bHh, ver?.[3], G, 'bHh') : 0;
      const pWhr = P > 0 && small ? this.weight(a.wHr as Float32Array, ver?.[4], P * H, 'wHr') : 0;
      const pWhrT = P > 0 && !small ? this.packedWeight(a.wHr as Float32Array, ver?.[4], P * H, 1, H, P, H, 'wHr') : 0; // op(B) = wHr^T [H, P]
      const pTIdx = ar.alloc(maxLen * B, 'step table');
      const pXP = ar.alloc(TB * G, 'input projection');
      const pAp = ar.alloc(k.packedASize(), 'gemm scratch');
      const pH = ar.alloc(B * R, 'h');
      const pH2 = fused ? ar.alloc(B * R, 'h (next step)') : 0;
      const pC = withC ? ar.alloc(B * H, 'c') : 0;
      const pHP = ar.alloc(B * G, 'recurrent projection');
      const pRh = GE < G ? ar.alloc(B * R, 'late gates input') : 0;
      const pStates = save(TB * R, 'states');
      const saveRows = training ? TB : B;
      // (an LSTM's inference keeps neither: only its backward reads them)
      const pGates = wc.saves && (training || cell !== 'lstm') ? save(saveRows * G, 'gates') : 0;
      const pCells = wc.saves && (training || cell !== 'lstm') ? save(saveRows * H, 'cells') : 0;
      const pHRawTmp = P > 0 ? ar.alloc(B * H, 'h before projection') : 0;
      const pHRawSave = P > 0 && training ? keep(TB * H, 'saved h before projection') : 0;
      const pProj = P > 0 ? ar.alloc(B * P, 'projection') : 0;
      // --- copy in
      this.put(pX, a.x, TB * I);
      this.putI(pTIdx, tIdx, maxLen * B);
      if (a.h0) this.put(pH, a.h0, B * R);
      else this.f32(pH, B * R).fill(0);
      if (withC) {
        if (a.c0) this.put(pC, a.c0, B * H);
        else this.f32(pC, B * H).fill(0);
      }
      if (pHRawSave) this.f32(pHRawSave, TB * H).fill(0);
      // rows of unprocessed steps (none when every sequence has all T steps) enter backward's GEMMs
      if (pCells && training && (maxLen < T || a.lengths)) this.f32(pCells, TB * H).fill(0);
      if (maxLen < T || a.lengths) this.f32(pStates, TB * R).fill(0);
      // --- input projection for all steps: XP = (bIh + bHh) + x @ wIh^T   [TB, G]
      this.split('fillBiasRows', TB, TB * G >= SPLIT_ELEMENTS, [G, pBih, pBhh, wc.lastBiasInside ? H : 0, pXP], []);
      if (pWihT) this.gemmPacked(0, TB, G, I, 1, pX, I, pWihT, 1, pXP, G, pAp);
      else k.gemmSmallM(1, TB, G, I, 1, pX, I, pWih, I, 1, pXP, G);
      const pWhl = pWhh ? pWhh + GE * R * 4 : 0; // the late gates' rows of wHh (small calls)
      const step: WasmForwardStep = {
        B, H, R, tIdx: 0, xp: pXP, hp: pHP, h: pH, c: pC, hOut: P > 0 ? pHRawTmp : pH, hSave: P > 0 ? pHRawSave : pStates,
        states: pStates, gates: pGates, cells: pCells, saveFull: training ? 1 : 0,
        bHhLast: pBhh && wc.lastBiasInside ? pBhh + (G - H) * 4 : 0, rh: pRh, gate: gateArgs(a.recurrentActivation),
        late: (v) => {
          // HP[B, GE:G] = v[B, R] @ wHh[late]^T
          if (small) k.gemmSmallM(1, B, G - GE, R, 1, v, R, pWhl, R, 0, pHP + GE * 4, G);
          else this.gemmPacked(0, B, G - GE, R, 1, v, R, pWhlT, 0, pHP + GE * 4, G, pAp);
        },
      };
      if (parts > 1) {
        this.pool!.range(k, parts, 'seqForwardRows', B, pAp, [k[wc.rows!].value, B, H, G, maxLen, pH, pC, pWhhT, pHP, pTIdx, pXP,
          step.bHhLast, pStates, pGates, pCells, step.saveFull, step.gate[0]], [step.gate[1], step.gate[2]], 1);
      } else if (fused) {
        // every step in one job: each thread its hidden units, the threads meeting once per step
        // (from SPLIT_SEQ_STEP_MACS per step, so batch-1 streaming splits too), unless this shape
        // measured faster on one thread (stepSplit)
        const t = this.pool && this.threads > 1 && H >= 16 && B * G * H >= SPLIT_SEQ_STEP_MACS ? this.pool.usable(this.threads) : 1;
        const shape = t > 1 && this.stepSplitMode === 'auto' ? stepSplitShape('lstm', B, H, t, training ? 'training' : 'forward', maxLen) : '';
        const split = t > 1 && (!shape || this.stepSplit.next(shape));
        const ints = [0, B, H, maxLen, pH, pH2, pWhhT, pHP, pTIdx, pXP, pC, pStates, pGates, pCells, step.saveFull];
        const t0 = shape ? performance.now() : 0;
        if (split) this.pool!.range(k, t, 'lstmForwardSteps', H, pAp, [...ints, this.pool!.ctl, step.gate[0]], [step.gate[1], step.gate[2]]);
        else (k.lstmForwardSteps as (...args: number[]) => number)(0, H, pAp, ...ints, 0, ...step.gate);
        if (shape) this.stepSplit.observe(shape, split, performance.now() - t0, maxLen);
        if (maxLen % 2 === 1) this.f32(pH, B * R).set(this.f32(pH2, B * R));
      }
      for (let s = 0; s < maxLen && !fused && parts === 1; s++) {
        step.tIdx = pTIdx + s * B * 4;
        // HP[B, GE] = h[B, R] @ wHh[early]^T: all (early) gates in one GEMM
        if (small) k.gemmSmallM(1, B, GE, R, 1, pH, R, pWhh, R, 0, pHP, G);
        else this.gemmPacked(0, B, GE, R, 1, pH, R, pWhhT, 0, pHP, G, pAp);
        wc.forward(k, step);
        if (P > 0) { // the projection: h = hRaw @ wHr^T
          if (small) k.gemmSmallM(1, B, P, H, 1, pHRawTmp, H, pWhr, H, 0, pProj, P);
          else this.gemmPacked(0, B, P, H, 1, pHRawTmp, H, pWhrT, 0, pProj, P, pAp);
          k.scatterRows(B, P, step.tIdx, pProj, pH, pStates);
        }
      }
      // --- outputs
      const states = this.f32(pStates, TB * R);
      if (a.yStride === R && a.yOffset === 0) {
        a.y.set(states); // padded rows are zero in states
      } else {
        const y = a.y;
        for (let row = 0; row < TB; row++) {
          const t = Math.floor(row / B);
          const o = row * a.yStride + a.yOffset;
          if (t < lens[row % B]) y.set(states.subarray(row * R, row * R + R), o);
          else y.fill(0, o, o + R);
        }
      }
      this.get(pH, a.hN, B * R);
      if (withC && a.cN) this.get(pC, a.cN, B * H);
      if (!training) return null;
      const blocks: ContextBlocks = { ptrs: kept.splice(0), freed: false };
      const ctx: WasmSeqContext = {
        backend: 'wasm', owner: this, args: a, lens, maxLen, pX, pStates, pGates, pCells, pHRaw: pHRawSave, blocks,
      };
      this.contexts++;
      this.contextReaper?.register(ctx, blocks, blocks);
      return ctx;
    } finally {
      for (const p of kept) this.heap.free(p); // a call that failed keeps nothing
      ar.reset();
    }
  }

  // seqBackward: dy [T,B,dyStride], dhN [B,R], dcN [B,H]
  //   -> dx [T,B,I], dh0 [B,R], dc0 [B,H], dWIh [G,I], dWHh [G,R], dB* [G], dWHr [P,H]  (all +=)
  // The context's blocks are freed when it returns: a context serves one backward.
  seqBackward(d: SeqBackwardArgs): void {
    if (d.paired || isPairedContext(d.ctx)) return seqBackwardInTurn('wasm', d, (one) => this.seqBackward(one));
    const ctx = d.ctx as WasmSeqContext;
    if (!ctx || ctx.backend !== 'wasm') throw new Error(`wasm.seqBackward: context from backend '${ctx?.backend}'`);
    if (ctx.owner !== this) throw new Error('wasm.seqBackward: the context comes from another wasm backend instance');
    if (ctx.blocks.freed) {
      throw new Error('wasm.seqBackward: this context was already used by a backward pass or released (a forward context serves one backward)');
    }
    const f = ctx.args;
    assertSeqBackwardArgs('wasm', f, d);
    const { cell, T, B, I, H, P, reverse } = f;
    const G = gateCount(cell) * H;
    const GE = G - CELLS[cell].lateGates * H; // the late gates' columns [GE, G)
    const R = recurrentSize(H, P);
    const TB = T * B;
    const wc = WASM_CELLS[cell];
    const withC = hasCellState(cell);
    const { lens, maxLen, pX, pStates, pGates, pCells, pHRaw } = ctx;
    const { tIdx, prevT, prevRow } = stepTables(T, B, f.lengths, reverse, true);
    const k = this.kernels;
    const ar = this.arena;
    const ver = f.weightVersions;
    ar.reset();
    try {
      const needX = !!d.dWIh;
      const needHprev = !!d.dWHh;
      const small = B <= SMALL_M && maxLen <= SMALL_T;
      const pWihN = d.dx && TB > SMALL_M ? this.packedWeight(f.wIh, ver?.[0], G * I, 0, G, I, I, 'wIh') : 0; // op(B) = wIh [G, I]
      const pWih = d.dx && TB <= SMALL_M ? this.weight(f.wIh, ver?.[0], G * I, 'wIh') : 0;
      const pWhh = small ? this.weight(f.wHh, ver?.[1], G * R, 'wHh') : 0;
      // op(B) = wHh[early] [GE, R] and wHh[late] [G - GE, R] (rows from GE)
      const pWhhN = small ? 0 : this.packedWeight(f.wHh, ver?.[1], G * R, 0, GE, R, R, 'wHh');
      const pWhlN = small || GE === G ? 0 : this.packedWeight(f.wHh, ver?.[1], G * R, 0, G - GE, R, R, 'wHh (late gates)', GE * R);
      const pWhr = P > 0 && small ? this.weight(f.wHr as Float32Array, ver?.[4], P * H, 'wHr') : 0;
      const pWhrN = P > 0 && !small ? this.packedWeight(f.wHr as Float32Array, ver?.[4], P * H, 0, P, H, H, 'wHr') : 0; // op(B) = wHr [P, H]
      const pH0 = f.h0 && (wc.saves || needHprev) ? ar.alloc(B * R, 'h0') : 0;
      const pC0 = withC && f.c0 ? ar.alloc(B * H, 'c0') : 0;
      const pTIdx = ar.alloc(maxLen * B, 'step table');
      const pPrevT = ar.alloc(maxLen * B, 'step table');
      const pPrevRow = needHprev ? ar.alloc(TB, 'previous rows') : 0;
      const nDy = d.dy ? TB * d.dyStride : 0;
      const pDy = d.dy ? ar.alloc(nDy, 'dy') : 0;
      const pDh = ar.alloc(B * R, 'dh');
      const pDc = withC ? ar.alloc(B * H, 'dc') : 0;
      const pDG = ar.alloc(B * G, 'step gate gradient');
      // a batch of two register tiles or more on several threads (no projection): one part of
      // the rows per thread, each running every step alone (seqBackwardRows)
      const parts = this.rowParts(wc, P, small, B, G, H);
      // else an LSTM without projection: each step's gates and the recurrent product of the step after it
      // in one kernel over hidden units (split across the threads), dG alternating between two buffers
      const fused = parts === 1 && cell === 'lstm' && P === 0 && !small && H % 8 === 0;
      const pDG2 = fused ? ar.alloc(B * G, 'step gate gradient (next step)') : 0;
      const pDGi = ar.alloc(TB * G, 'gate gradients');
      const pDGh = wc.splitGrad ? ar.alloc(TB * G, 'recurrent gate gradients') : pDGi;
      const pDrh = GE < G ? ar.alloc(B * R, 'late gates input gradient') : 0;
      const pAp = ar.alloc(k.packedASize(), 'gemm scratch');
      const pDhRaw = P > 0 ? ar.alloc(B * H, 'dh before projection') : 0;
      const pDhAll = P > 0 ? ar.alloc(TB * P, 'saved dh') : 0;
      const pHprev = needHprev ? ar.alloc(TB * R, 'previous states') : 0;
      const pDx = d.dx ? ar.alloc(TB * I, 'dx') : 0;
      const pDWih = d.dWIh ? ar.alloc(G * I, 'dWIh') : 0;
      const pDWhh = d.dWHh ? ar.alloc(G * R, 'dWHh') : 0;
      const pDBih = d.dBIh ? ar.alloc(G, 'dBIh') : 0;
      const pDBhh = d.dBHh ? ar.alloc(G, 'dBHh') : 0;
      const pDWhr = P > 0 && d.dWHr ? ar.alloc(P * H, 'dWHr') : 0;
      const scratch = Math.max(k.packedBSize(TB, I), k.packedBSize(TB, R), k.packedBSize(TB, H));
      const pS = ar.alloc(scratch + k.packedASize(), 'gemm scratch');
      // --- copy in
      if (needX && f.lengths) {
        const xv = this.f32(pX, TB * I); // the context's own x: padded rows zeroed for dWIh
        for (let row = 0; row < TB; row++) if (Math.floor(row / B) >= lens[row % B]) xv.fill(0, row * I, row * I + I);
      }
      if (pH0 && f.h0) this.put(pH0, f.h0, B * R);
      if (pC0 && f.c0) this.put(pC0, f.c0, B * H);
      this.putI(pTIdx, tIdx, maxLen * B);
      this.putI(pPrevT, prevT, maxLen * B);
      if (pPrevRow) this.putI(pPrevRow, prevRow, TB);
      if (d.dy) this.put(pDy, d.dy, nDy);
      if (d.dhN) this.put(pDh, d.dhN, B * R);
      else this.f32(pDh, B * R).fill(0);
      if (withC) {
        if (d.dcN) this.put(pDc, d.dcN, B * H);
        else this.f32(pDc, B * H).fill(0);
      }
      // the step kernels write every row of a processed step: only the rows of unprocessed steps are zeroed here
      if (maxLen < T || f.lengths) {
        this.f32(pDGi, TB * G).fill(0);
        if (wc.splitGrad) this.f32(pDGh, TB * G).fill(0);
        if (pDhAll) this.f32(pDhAll, TB * P).fill(0);
      }
      // --- BPTT
      const pWhl = pWhh ? pWhh + GE * R * 4 : 0; // the late gates' rows of wHh (small calls)
      const step: WasmBackwardStep = {
        B, H, R, tIdx: 0, prevT: 0, dh: pDh, dhIn: P > 0 ? pDhRaw : pDh, dc: pDc,
        gates: pGates, cells: pCells, states: pStates, h0: pH0, c0: pC0, dG: pDG, dGi: pDGi, dGh: pDGh, drh: pDrh,
        gate: gateArgs(f.recurrentActivation),
        lateT: (out) => {
          // out[B, R] = dG[:, GE:G] @ wHh[late]
          if (small) k.gemmSmallM(0, B, R, G - GE, 1, pDG + GE * 4, G, pWhl, R, 0, out, R);
          else this.gemmPacked(0, B, R, G - GE, 1, pDG + GE * 4, G, pWhlN, 0, out, R, pAp);
        },
      };
      if (parts > 1) {
        this.pool!.range(k, parts, 'seqBackwardRows', B, pAp, [k[wc.rows!].value, B, H, G, maxLen, pWhhN, pTIdx, pPrevT, pDh,
          d.dy ? pDy : 0, d.dyStride, d.dyOffset, pDc, pGates, pCells, pStates, pH0, pC0, pDG, pDGi, pDGh, step.gate[0]],
        [step.gate[1]], 1);
      }
      for (let s = maxLen - 1; s >= 0 && fused; s--) {
        const dG = s % 2 ? pDG2 : pDG;
        const dGNext = s % 2 ? pDG : pDG2;
        this.split('lstmBackwardUnits', H, B * G * H >= SPLIT_STEP_MACS, [B, H, s < maxLen - 1 ? 1 : 0, dGNext, pWhhN, pTIdx + s * B * 4,
          pPrevT + s * B * 4, pDh, d.dy ? pDy : 0, d.dyStride, d.dyOffset, pDc, pGates, pCells, pC0, dG, pDGi, step.gate[0]],
        [step.gate[1]], pAp);
      }
      // the recurrent delta of the first step: dh[B, R] += dG @ wHh
      if (fused && maxLen > 0) this.gemmPacked(0, B, R, GE, 1, pDG, G, pWhhN, 1, pDh, R, pAp);
      for (let s = maxLen - 1; s >= 0 && !fused && parts === 1; s--) {
        step.tIdx = pTIdx + s * B * 4;
        step.prevT = pPrevT + s * B * 4;
        if (d.dy) k.addDy(B, R, step.tIdx, pDh, pDy, d.dyStride, d.dyOffset);
        if (P > 0) {
          k.scatterRows(B, P, step.tIdx, pDh, 0, pDhAll);
          // dhRaw = dh @ wHr
          if (small) k.gemmSmallM(0, B, H, P, 1, pDh, P, pWhr, H, 0, pDhRaw, H);
          else this.gemmPacked(0, B, H, P, 1, pDh, P, pWhrN, 0, pDhRaw, H, pAp);
        }
        wc.backward(k, step);
        // dh[B, R] += dG[B, GE] @ wHh[early]: the recurrent delta, all (early) gates in one GEMM
        if (small) k.gemmSmallM(0, B, R, GE, 1, pDG, G, pWhh, R, 1, pDh, R);
        else this.gemmPacked(0, B, R, GE, 1, pDG, G, pWhhN, 1, pDh, R, pAp);
      }
      // --- gradients over all steps at once
      if (d.dx) {
        this.put(pDx, d.dx, TB * I);
        // dx += dGi @ wIh
        if (pWihN) this.gemmPacked(0, TB, I, G, 1, pDGi, G, pWihN, 1, pDx, I, pAp);
        else k.gemmSmallM(0, TB, I, G, 1, pDGi, G, pWih, I, 1, pDx, I);
      }
      if (d.dWIh) {
        this.put(pDWih, d.dWIh, G * I);
        this.gemmAll(1, 0, G, I, TB, 1, pDGi, G, pX, I, 1, pDWih, I, pS); // dWIh += dGi^T @ x
      }
      if (d.dWHh) {
        k.gatherRows(TB, R, B, pPrevRow, pStates, pH0, pHprev);
        this.put(pDWhh, d.dWHh, G * R);
        this.gemmAll(1, 0, GE, R, TB, 1, pDGh, G, pHprev, R, 1, pDWhh, R, pS); // dWHh[early] += dGh^T @ Hprev
        // dWHh[late] += dGh[late]^T @ (the late gates' inputs, saved as cells)
        if (GE < G) this.gemmAll(1, 0, G - GE, R, TB, 1, pDGh + GE * 4, G, pCells, H, 1, pDWhh + GE * R * 4, R, pS);
      }
      if (d.dBIh) {
        this.put(pDBih, d.dBIh, G);
        this.split('addColumnSumsCols', G, TB * G >= SPLIT_ELEMENTS, [TB, G, pDGi, pDBih], []);
      }
      if (d.dBHh) {
        this.put(pDBhh, d.dBHh, G);
        this.split('addColumnSumsCols', G, TB * G >= SPLIT_ELEMENTS, [TB, G, pDGh, pDBhh], []);
      }
      if (pDWhr && d.dWHr) {
        this.put(pDWhr, d.dWHr, P * H);
        this.gemmAll(1, 0, P, H, TB, 1, pDhAll, P, pHRaw, H, 1, pDWhr, H, pS); // dWHr += dh^T @ hRaw
      }
      // --- copy out
      if (d.dx) this.get(pDx, d.dx, TB * I);
      if (d.dWIh) this.get(pDWih, d.dWIh, G * I);
      if (d.dWHh) this.get(pDWhh, d.dWHh, G * R);
      if (d.dBIh) this.get(pDBih, d.dBIh, G);
      if (d.dBHh) this.get(pDBhh, d.dBHh, G);
      if (pDWhr && d.dWHr) this.get(pDWhr, d.dWHr, P * H);
      if (d.dh0) this.addTo(pDh, d.dh0, B * R);
      if (d.dc0 && withC) this.addTo(pDc, d.dc0, B * H);
    } finally {
      ar.reset();
      this.release(ctx);
    }
  }

  // y[n] = op(x[n])
  unaryForward(op: UnaryOp, x: Float32Array, y: Float32Array): void {
    assertUnaryArgs('wasm', op, x, y);
    const n = x.length;
    const ar = this.arena;
    ar.reset();
    const px = ar.alloc(n, 'x');
    const py = ar.alloc(n, 'y');
    this.put(px, x, n);
    this.kernels.unaryForward(UNARY[op], n, px, py);
    this.get(py, y, n);
  }

  // dx[n] += dy[n] * op'(x or y)
  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array): void {
    assertUnaryArgs('wasm', op, x, y, { dy, dx });
    const n = dy.length;
    const ar = this.arena;
    ar.reset();
    const px = ar.alloc(n, 'x');
    const pdy = ar.alloc(n, 'dy');
    const pdx = ar.alloc(n, 'dx');
    this.put(px, op === 'relu' ? x : y, n);
    this.put(pdy, dy, n);
    this.put(pdx, dx, n);
    this.kernels.unaryBackward(UNARY[op], n, px, px, pdy, pdx);
    this.get(pdx, dx, n);
  }

  // logits [N,C], targets [N] -> probs [N,C], losses [N]
  crossEntropyForward(
    N: number, C: number, logits: Float32Array, targets: Int32Array, ignoreIndex: number,
    probs: Float32Array, losses: Float32Array,
  ): void {
    assertCrossEntropyForwardArgs('wasm', N, C, logits, targets, ignoreIndex, probs, losses);
    const ar = this.arena;
    ar.reset();
    try {
      const pl = ar.alloc(N * C, 'logits');
      const pt = ar.alloc(N, 'targets');
      const pp = ar.alloc(N * C, 'probs');
      const ps = ar.alloc(N, 'losses');
      this.put(pl, logits, N * C);
      this.putI(pt, targets, N);
      this.split('crossEntropyForwardRows', N, N * C >= SPLIT_ELEMENTS / 4, [C, pl, pt, ignoreIndex, pp, ps], []);
      this.get(pp, probs, N * C);
      this.get(ps, losses, N);
    } finally {
      ar.reset();
    }
  }

  // dLogits [N,C] += dLosses[n] * (probs - onehot)
  crossEntropyBackward(
    N: number, C: number, probs: Float32Array, targets: Int32Array, ignoreIndex: number,
    dLosses: Float32Array, dLogits: Float32Array,
  ): void {
    assertCrossEntropyBackwardArgs('wasm', N, C, probs, targets, ignoreIndex, dLosses, dLogits);
    const ar = this.arena;
    ar.reset();
    try {
      const pp = ar.alloc(N * C, 'probs');
      const pt = ar.alloc(N, 'targets');
      const pd = ar.alloc(N, 'dLosses');
      const pg = ar.alloc(N * C, 'dLogits');
      this.put(pp, probs, N * C);
      this.putI(pt, targets, N);
      this.put(pd, dLosses, N);
      this.put(pg, dLogits, N * C);
      this.kernels.crossEntropyBackward(N, C, pp, pt, ignoreIndex, pd, pg);
      this.get(pg, dLogits, N * C);
    } finally {
      ar.reset();
    }
  }

  sumSquares(x: Float32Array): number {
    assertSumSquaresArgs('wasm', x);
    const n = x.length;
    const ar = this.arena;
    ar.reset();
    try {
      const px = ar.alloc(n, 'x');
      this.put(px, x, n);
      return this.kernels.sumSquares(n, px);
    } finally {
      ar.reset();
    }
  }

  adamUpdate(a: AdamArgs): void {
    assertAdamArgs('wasm', a);
    const n = a.param.length;
    const ar = this.arena;
    ar.reset();
    try {
      const pp = ar.alloc(n, 'param');
      const pg = ar.alloc(n, 'grad');
      const pm = ar.alloc(n, 'm');
      const pv = ar.alloc(n, 'v');
      this.put(pp, a.param, n);
      this.put(pg, a.grad, n);
      this.put(pm, a.m, n);
      this.put(pv, a.v, n);
      this.split('adamUpdateRange', n, n >= SPLIT_ELEMENTS / 2, [pp, pg, pm, pv, a.decoupled ? 1 : 0],
        [a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.step]);
      this.get(pp, a.param, n);
      this.changed(a.param);
      this.get(pm, a.m, n);
      this.get(pv, a.v, n);
    } finally {
      ar.reset();
    }
  }

  sgdUpdate(a: SgdArgs): void {
    assertSgdArgs('wasm', a);
    const n = a.param.length;
    const useBuf = a.momentum !== 0;
    const ar = this.arena;
    ar.reset();
    try {
      const pp = ar.alloc(n, 'param');
      const pg = ar.alloc(n, 'grad');
      const pb = ar.alloc(useBuf ? n : 0, 'momentumBuffer');
      this.put(pp, a.param, n);
      this.put(pg, a.grad, n);
      if (useBuf) this.put(pb, a.momentumBuffer, n);
      this.kernels.sgdUpdate(n, pp, pg, pb, a.lr, a.momentum, a.dampening, a.weightDecay, a.nesterov ? 1 : 0, a.firstStep ? 1 : 0);
      this.get(pp, a.param, n);
      this.changed(a.param);
      if (useBuf) this.get(pb, a.momentumBuffer, n);
    } finally {
      ar.reset();
    }
  }
}

/**
 * Per processing step s and batch row b: tIdx[s*B+b] = the time index processed (-1 once the
 * sequence is finished), prevT[s*B+b] = the time index processed at step s-1 (-1 = initial
 * state); prevRow[t*B+b] = row of the previous state in [T,B] (-1 = h0, -2 = padding).
 */
function stepTables(T: number, B: number, lengths: Int32Array | null, reverse: boolean, backward = false) {
  const lens = new Int32Array(B);
  let maxLen = 0;
  for (let b = 0; b < B; b++) {
    lens[b] = lengths ? lengths[b] : T;
    maxLen = Math.max(maxLen, lens[b]);
  }
  const tIdx = new Int32Array(maxLen * B);
  const prevT = new Int32Array(backward ? maxLen * B : 0);
  const prevRow = new Int32Array(backward ? T * B : 0);
  for (let b = 0; b < B; b++) {
    const len = lens[b];
    for (let s = 0; s < maxLen; s++) {
      const t = s < len ? (reverse ? len - 1 - s : s) : -1;
      tIdx[s * B + b] = t;
      if (backward) prevT[s * B + b] = t < 0 || s === 0 ? -1 : reverse ? t + 1 : t - 1;
    }
    if (backward) {
      for (let t = 0; t < T; t++) {
        const p = reverse ? t + 1 : t - 1;
        prevRow[t * B + b] = t >= len ? -2 : p < 0 || p >= len ? -1 : p * B + b;
      }
    }
  }
  return { lens, maxLen, tIdx, prevT, prevRow };
}

// ---------------------------------------------------------------------------------------------
// Threads: the threaded build (rnnkit-threads.wasm: shared, imported memory) runs one instance per
// thread on the same linear memory. The calling thread writes a job's arguments into a control
// block in that memory and wakes the workers (Atomics); each computes its share and the caller
// waits for all of them. Jobs: a GEMM (each thread its output rows, cut at register-tile
// boundaries, or its output columns in panels of 16; the sum over K never split) and a kernel
// over a range (RANGE_KERNELS: the batch rows of a whole sequence; an LSTM step over hidden
// units, its product and gates together; Adam's elements; cross-entropy's rows; column sums),
// each element computed as on one thread, so results are bitwise those of one thread.

/** Words of the control block: job counter, workers still running, job, threads, arguments, ready flags, step barrier. */
const CTL = { seq: 0, remain: 1, failed: 2, fn: 3, threads: 4, chunk: 5, args: 8, ready: 48, bar: 64, words: 68 } as const;
const JOB_GEMM = 1;
/**
 * A kernel over a range, each thread on its chunk [j0, j1): args = the kernel (index into
 * RANGE_KERNELS), the range's size, the counts of integer and float arguments, the integers, then
 * the floats as float64 from the next even word.
 */
const JOB_RANGE = 2;
/**
 * The kernels of JOB_RANGE, called as (j0, j1, Ap, ...integers, ...floats). One that returns a
 * step r >= 0 (lstmForwardSteps) stopped at its step barrier: the thread sleeps until the barrier
 * has been passed r times (sleepUntil) and calls it again from step r (its 4th argument).
 */
const RANGE_KERNELS = ['lstmForwardSteps', 'lstmBackwardUnits', 'seqForwardRows', 'seqBackwardRows', 'adamUpdateRange', 'crossEntropyForwardRows', 'addColumnSumsCols', 'fillBiasRows'] as const;
type RangeKernel = (typeof RANGE_KERNELS)[number];
/** Elements (of an element-wise kernel, a fill or a sum) from which a kernel over a range is split across threads. */
const SPLIT_ELEMENTS = 1 << 16;
const JOB_QUIT = -1;
/** Most threads a backend uses (ready flags in the control block). */
export const MAX_WASM_THREADS = 16;
/**
 * A GEMM is split across threads from this many multiply-adds: a smaller one costs less than
 * waking the workers and waiting for the slowest (an LSTM's steps split as one job instead:
 * SPLIT_SEQ_STEP_MACS).
 */
const SPLIT_MACS = 1 << 20;
/**
 * A step over hidden units (its product and its gates) is split from this many multiply-adds of
 * its product, as a GEMM: a batch-1 step (H = 256: 2^18) is over in about 25 us, and a fork-join
 * per step costs more than it saves as soon as the cores are shared.
 */
const SPLIT_STEP_MACS = SPLIT_MACS;
/**
 * An LSTM sequence whose steps run as one job (lstmForwardSteps) is split across the threads
 * from this many multiply-adds per step: a barrier per step costs far less than a job per step.
 */
const SPLIT_SEQ_STEP_MACS = 1 << 16;
/**
 * How long a thread waiting for the other threads (the caller for the workers' shares, a worker
 * for the next job) polls before it sleeps in Atomics.wait, in milliseconds: a job of a
 * recurrent step follows the last one within microseconds, and a sleep costs a wake-up (tens of
 * microseconds) on the critical path; a longer poll only burns a core that another thread, or
 * another process, could use (on a shared machine the thread waited for may not be running).
 */
const SPIN_MS = 0.02;
/** Pages of a threaded build's shared memory: initial, and the maximum its build declares (2 GiB). */
const SHARED_INITIAL_PAGES = 16;
const SHARED_MAX_PAGES = 32768;

/** The worker: instantiates the module on the shared memory and serves jobs until told to quit. */
const WORKER_SOURCE = `
// sleepUntil below, written out (a bundler may rename or rewrite the function itself)
const sleepUntil = (i32, count) => {
  for (let n = Atomics.load(i32, ${CTL.bar + 1}); n < count; n = Atomics.load(i32, ${CTL.bar + 1})) {
    if (Atomics.load(i32, ${CTL.failed}) !== 0) return false;
    Atomics.wait(i32, ${CTL.bar + 1}, n, 1);
  }
  return true;
};
const serve = ({ module, memory, ctl, tile, ap, index }) => {
  const k = new WebAssembly.Instance(module, { env: { memory } }).exports;
  k.setTile(tile);
  const i32 = new Int32Array(memory.buffer, ctl, ${CTL.words});
  const f32 = new Float32Array(memory.buffer, ctl, ${CTL.words});
  const f64 = new Float64Array(memory.buffer, ctl, ${CTL.words / 2});
  let seen = Atomics.load(i32, ${CTL.seq});
  Atomics.store(i32, ${CTL.ready} + index, 1);
  for (;;) {
    // poll for at most ${SPIN_MS} ms, then sleep until the caller posts the next job
    for (let spin = 1, t0 = performance.now(); Atomics.load(i32, ${CTL.seq}) === seen; spin++) {
      if ((spin & 63) === 0 && performance.now() - t0 > ${SPIN_MS}) break;
    }
    Atomics.wait(i32, ${CTL.seq}, seen);
    const seq = Atomics.load(i32, ${CTL.seq});
    if (seq === seen) continue;
    seen = seq;
    const job = i32[${CTL.fn}];
    if (job === ${JOB_QUIT}) return;
    if (index >= i32[${CTL.threads}]) continue;
    try {
      if (job === ${JOB_GEMM}) {
        const a = ${CTL.args};
        const N = i32[a + 2];
        const chunk = i32[a + 12];
        const j0 = index * chunk;
        if (i32[a + 13]) { // rows [j0, j1) of C
          const j1 = Math.min(i32[a + 1], j0 + chunk);
          const transA = i32[a];
          const lda = i32[a + 6];
          const ldc = i32[a + 10];
          if (j0 < j1) {
            k.gemmPacked(transA, j1 - j0, N, i32[a + 3], f32[a + 4], i32[a + 5] + 4 * (transA ? j0 : j0 * lda), lda, i32[a + 7],
              f32[a + 8], i32[a + 9] + 4 * j0 * ldc, ldc, ap);
          }
        } else {
          const j1 = Math.min(N, j0 + chunk);
          if (j0 < j1) {
            k.gemmPackedCols(i32[a], i32[a + 1], N, i32[a + 3], f32[a + 4], i32[a + 5], i32[a + 6], i32[a + 7],
              f32[a + 8], i32[a + 9], i32[a + 10], ap, j0, j1);
          }
        }
      } else if (job === ${JOB_RANGE}) {
        const a = ${CTL.args};
        const n = i32[a + 1];
        const ni = i32[a + 2];
        const nf = i32[a + 3];
        const j0 = index * i32[${CTL.chunk}];
        const j1 = Math.min(n, j0 + i32[${CTL.chunk}]);
        if (j0 < j1) {
          const args = [j0, j1, ap];
          for (let i = 0; i < ni; i++) args.push(i32[a + 4 + i]);
          const d = (a + 4 + ni + 1) >> 1;
          for (let i = 0; i < nf; i++) args.push(f64[d + i]);
          const f = k[${JSON.stringify(RANGE_KERNELS)}[i32[a]]];
          // a kernel with step barriers returns the step to resume from after sleeping here
          for (let r = f(...args); r >= 0; r = f(...args)) {
            if (!sleepUntil(i32, r)) break;
            args[3] = r;
          }
        }
      }
    } catch {
      Atomics.store(i32, ${CTL.failed}, index); // the caller throws instead of using a partial result
      Atomics.notify(i32, ${CTL.bar + 1}); // threads waiting at a step barrier stop
    }
    if (Atomics.sub(i32, ${CTL.remain}, 1) === 1) Atomics.notify(i32, ${CTL.remain});
  }
};
if (typeof require === 'undefined') self.onmessage = (e) => serve(e.data);
else serve(require('node:worker_threads').workerData);
`;

/**
 * Sleeps until the step barrier of the control block i32 (CTL.bar: arrivals, barriers passed)
 * has been passed `count` times; false when a thread failed meanwhile. (Kernels poll the barrier
 * and return here to sleep: JavaScript's Atomics.wait, not a wait inside wasm. The workers have
 * the same function in WORKER_SOURCE.)
 */
function sleepUntil(i32: Int32Array, count: number): boolean {
  for (let n = Atomics.load(i32, CTL.bar + 1); n < count; n = Atomics.load(i32, CTL.bar + 1)) {
    if (Atomics.load(i32, CTL.failed) !== 0) return false;
    Atomics.wait(i32, CTL.bar + 1, n, 1);
  }
  return true;
}

type WorkerLike = { terminate(): unknown; unref?(): void; postMessage?(m: unknown): void };
type GetBuiltin = (id: string) => unknown;

function builtin(id: string): unknown {
  const proc = (globalThis as { process?: { getBuiltinModule?: GetBuiltin } }).process;
  try {
    return typeof proc?.getBuiltinModule === 'function' ? proc.getBuiltinModule(id) : null;
  } catch {
    return null;
  }
}

/**
 * Why this runtime cannot run the threaded build, or null when it can: SharedArrayBuffer
 * (cross-origin isolation in browsers), Atomics.wait on this thread (not a page's main thread)
 * and workers (worker_threads, or Web Workers).
 */
export function wasmThreadsUnavailable(): string | null {
  if (typeof SharedArrayBuffer !== 'function') {
    return 'SharedArrayBuffer is not available (a page needs cross-origin isolation: COOP/COEP headers)';
  }
  if ((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) return 'the page is not cross-origin isolated';
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
  } catch {
    return 'Atomics.wait is not allowed on this thread (a page\'s main thread: run rnnkit in a Web Worker)';
  }
  if (!builtin('node:worker_threads') && typeof (globalThis as { Worker?: unknown }).Worker !== 'function') return 'no workers in this runtime';
  return null;
}

/** The workers of a threaded backend and the control block they watch. */
class WasmThreadPool {
  private readonly workers: WorkerLike[] = [];
  /** GEMMs split so far. */
  jobs = 0;
  /** Of those, the jobs of each kernel over a range. */
  readonly rangeJobs: Partial<Record<RangeKernel, number>> = {};
  private readonly i32: Int32Array;
  private readonly f32: Float32Array;
  private readonly f64: Float64Array;

  constructor(
    private readonly module: WebAssembly.Module, private readonly memory: WebAssembly.Memory,
    private readonly heap: WasmHeap, readonly ctl: number,
  ) {
    this.i32 = new Int32Array(memory.buffer, ctl, CTL.words);
    this.f32 = new Float32Array(memory.buffer, ctl, CTL.words);
    this.f64 = new Float64Array(memory.buffer, ctl, CTL.words / 2);
  }

  /** Starts workers until there are n - 1 (thread 0 is the caller); they become usable when ready. */
  ensure(n: number, packedAFloats: number): void {
    while (this.workers.length < n - 1) {
      const index = this.workers.length + 1;
      const data = {
        module: this.module, memory: this.memory, ctl: this.ctl, index,
        tile: this.heap.alloc(TILE_FLOATS, 'thread tile'), ap: this.heap.alloc(packedAFloats, 'thread scratch'),
      };
      const wt = builtin('node:worker_threads') as { Worker: new (src: string, o: object) => WorkerLike } | null;
      let w: WorkerLike;
      if (wt) {
        w = new wt.Worker(WORKER_SOURCE, { eval: true, workerData: data });
        w.unref?.();
      } else {
        const W = (globalThis as unknown as { Worker: new (url: string, o: object) => WorkerLike }).Worker;
        const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
        w = new W(url, { type: 'module' });
        w.postMessage?.(data);
      }
      this.workers.push(w);
    }
  }

  /** Threads usable now, at most n: the caller and the workers 1..n-1 that are ready. */
  usable(n: number): number {
    let t = 1;
    while (t < n && t <= this.workers.length && Atomics.load(this.i32, CTL.ready + t) === 1) t++;
    return t;
  }

  /** Resolves when workers 1..n-1 are ready (polling: a page's event loop must keep running). */
  async ready(n: number): Promise<void> {
    while (this.usable(n) < Math.min(n, this.workers.length + 1)) await new Promise((r) => setTimeout(r, 5));
  }

  /**
   * C[M, N] = alpha * op(A) @ Bp + beta * C over `threads` threads: a tall product (M >= N) split
   * by rows at multiples of the register tile's rows (each thread packs only its rows of A, and
   * no part is a single row, whose product would take the GEMV path), else by columns in panels of 16.
   */
  gemm(k: WasmKernels, threads: number, transA: number, M: number, N: number, K: number, alpha: number, A: number,
    lda: number, Bp: number, beta: number, C: number, ldc: number, Ap: number): void {
    const mr = k.tileRows();
    const rowChunk = Math.ceil(M / threads / mr) * mr;
    const rows = M >= N && M >= 2 * mr && M - (Math.ceil(M / rowChunk) - 1) * rowChunk !== 1;
    const chunk = rows ? rowChunk : Math.ceil(N / threads / 16) * 16;
    const used = Math.ceil((rows ? M : N) / chunk);
    const { i32, f32 } = this;
    this.jobs++;
    const a = CTL.args;
    i32[a] = transA; i32[a + 1] = M; i32[a + 2] = N; i32[a + 3] = K; f32[a + 4] = alpha; i32[a + 5] = A;
    i32[a + 6] = lda; i32[a + 7] = Bp; f32[a + 8] = beta; i32[a + 9] = C; i32[a + 10] = ldc; i32[a + 12] = chunk;
    i32[a + 13] = rows ? 1 : 0;
    i32[CTL.fn] = JOB_GEMM;
    i32[CTL.threads] = used;
    Atomics.store(i32, CTL.remain, used - 1);
    Atomics.add(i32, CTL.seq, 1);
    Atomics.notify(i32, CTL.seq);
    if (rows) k.gemmPacked(transA, chunk, N, K, alpha, A, lda, Bp, beta, C, ldc, Ap);
    else k.gemmPackedCols(transA, M, N, K, alpha, A, lda, Bp, beta, C, ldc, Ap, 0, Math.min(N, chunk));
    this.join(`a matrix product (${M}x${N}x${K})`);
  }

  /**
   * A kernel of RANGE_KERNELS over [0, n) on `threads` threads, each on its own chunk [j0, j1)
   * (multiples of `align`, 8 unless the kernel needs another: the kernels compute every element
   * as on one thread) with its own scratch Ap.
   */
  range(k: WasmKernels, threads: number, kernel: RangeKernel, n: number, Ap: number, ints: number[], floats: number[], align = 8): void {
    const chunk = Math.ceil(n / threads / align) * align;
    const used = Math.ceil(n / chunk);
    const { i32, f64 } = this;
    const a = CTL.args;
    const d = (a + 4 + ints.length + 1) >> 1; // the floats' first float64 slot
    if (2 * (d + floats.length) > CTL.ready) throw new Error(`wasm: too many arguments for a thread job (${kernel})`);
    this.jobs++;
    this.rangeJobs[kernel] = (this.rangeJobs[kernel] ?? 0) + 1;
    i32[a] = RANGE_KERNELS.indexOf(kernel); i32[a + 1] = n; i32[a + 2] = ints.length; i32[a + 3] = floats.length;
    for (let i = 0; i < ints.length; i++) i32[a + 4 + i] = ints[i];
    for (let i = 0; i < floats.length; i++) f64[d + i] = floats[i];
    i32[CTL.chunk] = chunk;
    i32[CTL.fn] = JOB_RANGE;
    i32[CTL.threads] = used;
    Atomics.store(i32, CTL.bar, 0);
    Atomics.store(i32, CTL.bar + 1, 0);
    Atomics.store(i32, CTL.remain, used - 1);
    Atomics.add(i32, CTL.seq, 1);
    Atomics.notify(i32, CTL.seq);
    try {
      const f = k[kernel] as (...args: number[]) => number | undefined;
      const args = [0, Math.min(n, chunk), Ap, ...ints, ...floats];
      for (let r = f(...args); r !== undefined && r >= 0; r = f(...args)) { // resumed after a step barrier
        if (!sleepUntil(i32, r)) break;
        args[3] = r;
      }
    } catch (e) {
      Atomics.store(i32, CTL.failed, -1); // workers waiting at a step barrier stop
      Atomics.notify(i32, CTL.bar + 1);
      try { this.join(kernel); } catch { /* the caller's own error is the one reported */ }
      throw e;
    }
    this.join(kernel);
  }

  /** Waits for the workers of the current job; throws when one failed. */
  private join(what: string): void {
    const { i32 } = this;
    // poll for at most SPIN_MS, then sleep until the last worker's notify
    for (let spin = 1, t0 = performance.now(); Atomics.load(i32, CTL.remain) !== 0; spin++) {
      if ((spin & 63) === 0 && performance.now() - t0 > SPIN_MS) break;
    }
    for (let r = Atomics.load(i32, CTL.remain); r !== 0; r = Atomics.load(i32, CTL.remain)) Atomics.wait(i32, CTL.remain, r);
    const failed = Atomics.exchange(i32, CTL.failed, 0);
    if (failed) throw new Error(`wasm: worker thread ${failed} failed in ${what}; the result is not usable`);
  }

  /** Stops every worker. */
  close(): void {
    this.i32[CTL.fn] = JOB_QUIT;
    Atomics.add(this.i32, CTL.seq, 1);
    Atomics.notify(this.i32, CTL.seq);
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Loading from bytes or a compiled module (no Node APIs).

/** The wasm build as a compiled `WebAssembly.Module` or as its bytes. */
export type WasmSource = WebAssembly.Module | BufferSource;

function toModule(source: WasmSource): WebAssembly.Module {
  return source instanceof WebAssembly.Module ? source : new WebAssembly.Module(source);
}

/**
 * Chooses between the plain SIMD build and the relaxed-SIMD build: the relaxed one when given
 * and the runtime validates it (Deno, Bun, workerd, Chromium; not Node 20 without a flag).
 */
export function pickWasmBuild(plain: BufferSource, relaxed?: BufferSource | null, prefer: 'auto' | 'plain' | 'relaxed' = 'auto'): BufferSource {
  if (prefer === 'plain' || !relaxed) return plain;
  if (WebAssembly.validate(relaxed)) return relaxed;
  if (prefer === 'relaxed') throw new Error('this runtime does not support WebAssembly relaxed SIMD');
  return plain;
}

/** Cores of this machine (os.availableParallelism, navigator.hardwareConcurrency), at most MAX_WASM_THREADS. */
function defaultThreads(): number {
  const os = builtin('node:os') as { availableParallelism?(): number; cpus(): unknown[] } | null;
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  const n = os ? (os.availableParallelism?.() ?? os.cpus().length) : (nav?.hardwareConcurrency ?? 1);
  return Math.max(1, Math.min(MAX_WASM_THREADS, n));
}

/** Whether a module is a threaded build: it imports its (shared) memory. */
export function isThreadedBuild(module: WebAssembly.Module): boolean {
  return WebAssembly.Module.imports(module).some((i) => i.kind === 'memory');
}

/** The imports of an instance: a threaded build gets a new shared memory. */
function importsFor(module: WebAssembly.Module): WebAssembly.Imports {
  if (!isThreadedBuild(module)) return {};
  const why = wasmThreadsUnavailable();
  if (why) throw new Error(`the threaded rnnkit build (rnnkit-threads.wasm) cannot run here: ${why}; use rnnkit.wasm`);
  return { env: { memory: new WebAssembly.Memory({ initial: SHARED_INITIAL_PAGES, maximum: SHARED_MAX_PAGES, shared: true }) } };
}

/**
 * Synchronously builds the backend from the .wasm bytes or a compiled WebAssembly.Module. The
 * threaded build (rnnkit-threads.wasm) starts its worker threads here (options.threads).
 */
export function createWasmBackend(source: WasmSource, options: WasmBackendOptions = {}): WasmBackend {
  if (!(source instanceof WebAssembly.Module) && !WebAssembly.validate(source)) {
    throw new Error('the rnnkit .wasm does not validate here (this runtime needs WebAssembly SIMD)');
  }
  const module = toModule(source);
  const instance = new WebAssembly.Instance(module, importsFor(module));
  return new WasmBackend(instance, options, module);
}

/**
 * Asynchronously builds the backend (browsers refuse synchronous compilation of big modules on
 * the main thread): from bytes, a compiled module, or a fetch() Response of the .wasm file.
 */
export async function createWasmBackendAsync(
  source: WasmSource | Response | PromiseLike<Response>, options: WasmBackendOptions = {},
): Promise<WasmBackend> {
  let module: WebAssembly.Module;
  const s = await source;
  if (s instanceof WebAssembly.Module) module = s;
  else if (typeof Response !== 'undefined' && s instanceof Response) module = await WebAssembly.compile(await s.arrayBuffer());
  else module = await WebAssembly.compile(s as BufferSource);
  const instance = await WebAssembly.instantiate(module, importsFor(module));
  const backend = new WasmBackend(instance, options, module);
  await backend.whenReady();
  return backend;
}
