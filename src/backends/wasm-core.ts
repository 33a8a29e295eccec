// The WebAssembly backend built from the module's bytes or a compiled WebAssembly.Module.
// Node-free: no fs, no module, no process; usable in Deno, Bun, workers and browsers.
//
// Memory: the kernels (assembly/index.ts) work on byte offsets into the module's linear memory.
// This file keeps one arena above heapBase(): every kernel call resets it, allocates what it
// needs (growing memory only when a call needs more than any call before), copies its inputs in
// and its outputs out. A training loop therefore reaches a fixed memory size after its first
// step. Growing memory detaches every view, so views are created after all allocations of a call.
// A forward call's saved activations are copied out into the returned context (plain JS arrays),
// so nothing stays allocated between calls.
import {
  type AdamArgs, type Backend, type BackendInfo, type MatmulPrecision, type SeqBackwardArgs, type SeqContext,
  type SeqForwardArgs, type SgdArgs, type UnaryOp, recurrentSize,
} from './backend.js';
import { type CellKind, type RecurrentActivation, CELLS, gateCount, hasCellState } from './cells.js';
import {
  assertAdamArgs, assertCrossEntropyBackwardArgs, assertCrossEntropyForwardArgs, assertGemmArgs, assertMatmulPrecision,
  assertSeqBackwardArgs, assertSeqForwardArgs, assertSgdArgs, assertSumSquaresArgs, assertUnaryArgs,
} from './validate.js';

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

/** A bump allocator over linear memory, reset at the start of every kernel call. */
export class WasmArena {
  private top: number;
  /** Largest number of bytes any call has used (high-water mark above the base). */
  peak = 0;

  constructor(private readonly memory: WebAssembly.Memory, readonly base: number, private readonly kernel = 'wasm') {
    this.top = base;
  }

  reset(): void {
    this.top = this.base;
  }

  /** Reserves n float32 (or int32) elements, 16-byte aligned; grows memory when needed. */
  alloc(n: number, what: string): number {
    const bytes = Math.ceil((n * 4) / 16) * 16;
    const ptr = this.top;
    const end = ptr + bytes;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
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
    this.top = end;
    this.peak = Math.max(this.peak, end - this.base);
    return ptr;
  }
}

interface WasmSeqContext extends SeqContext {
  args: SeqForwardArgs;
  lens: Int32Array;
  maxLen: number;
  /** [T,B,R] states h_t; [T,B,G] activated gates (LSTM/GRU); [T,B,H] cells (LSTM c, GRU W_hn h + b_hn);
   * [T,B,H] LSTM o*tanh(c) before the projection (P > 0). */
  states: Float32Array;
  gates: Float32Array | null;
  cells: Float32Array | null;
  hRaw: Float32Array | null;
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
interface WasmCell {
  /** Keeps the gates [T, B, G] and one [H] vector per row and step (cells): LSTM c, GRU W_hn h + b_hn, reset-before GRU r * h. */
  saves: boolean;
  /** b_hh of the last gate stays out of the folded bias (GRU: inside r * (.)). */
  lastBiasInside: boolean;
  /** The recurrent-side gradients differ from the input side (GRU: dn * r). */
  splitGrad: boolean;
  forward(k: WasmKernels, s: WasmForwardStep): void;
  backward(k: WasmKernels, s: WasmBackwardStep): void;
}

function rnnCell(relu: number): WasmCell {
  return {
    saves: false, lastBiasInside: false, splitGrad: false,
    forward: (k, s) => k.rnnStepForward(s.B, s.H, s.tIdx, s.xp, s.hp, relu, s.h, s.states),
    backward: (k, s) => k.rnnStepBackward(s.B, s.H, s.tIdx, relu, s.dh, s.states, s.dG, s.dGi),
  };
}

const WASM_CELLS: Record<CellKind, WasmCell> = {
  lstm: {
    saves: true, lastBiasInside: false, splitGrad: false,
    forward: (k, s) => k.lstmStepForward(s.B, s.H, s.tIdx, s.xp, s.hp, s.c, s.hOut, s.H, s.hSave, s.gates, s.cells, s.saveFull, ...s.gate),
    backward: (k, s) => k.lstmStepBackward(s.B, s.H, s.R, s.tIdx, s.prevT, s.dhIn, s.dh, s.dc, s.gates, s.cells, s.c0, s.dG, s.dGi, s.gate[0], s.gate[1]),
  },
  gru: {
    saves: true, lastBiasInside: true, splitGrad: true,
    forward: (k, s) => k.gruStepForward(s.B, s.H, s.tIdx, s.xp, s.hp, s.bHhLast, s.h, s.states, s.gates, s.cells, s.saveFull, ...s.gate),
    backward: (k, s) => k.gruStepBackward(s.B, s.H, s.tIdx, s.prevT, s.dh, s.gates, s.cells, s.states, s.h0, s.dG, s.dGi, s.dGh, s.gate[0], s.gate[1]),
  },
  rnn_tanh: rnnCell(0),
  rnn_relu: rnnCell(1),
  gru_reset_before: {
    saves: true, lastBiasInside: false, splitGrad: false,
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
}

/**
 * The WebAssembly backend (AssemblyScript, 128-bit SIMD): made by `createWasmBackend` from the
 * module or its bytes, in any runtime.
 */
export class WasmBackend implements Backend {
  readonly name = 'wasm';
  readonly kernels: WasmKernels;
  readonly arena: WasmArena;
  readonly relaxed: boolean;
  private readonly detail: string;

  constructor(instance: WebAssembly.Instance, options: WasmBackendOptions = {}) {
    this.kernels = instance.exports as unknown as WasmKernels;
    this.arena = new WasmArena(this.kernels.memory, this.kernels.heapBase());
    this.relaxed = this.kernels.isRelaxed() === 1;
    this.detail = options.detail ?? 'AssemblyScript SIMD kernels';
  }

  info(): BackendInfo {
    return { isa: this.relaxed ? 'simd128+relaxed' : 'simd128', threads: 1, matmul: 'fp32', detail: this.detail };
  }

  /** Accepted for the registry; 'medium' only permits bf16, and wasm has no bf16 dot product: fp32. */
  setMatmulPrecision(p: MatmulPrecision): void {
    assertMatmulPrecision('wasm.setMatmulPrecision', p);
  }

  /** Bytes of linear memory the module holds now. */
  memoryBytes(): number {
    return this.kernels.memory.buffer.byteLength;
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
    const pA = ar.alloc(nA, 'gemm A');
    const pB = ar.alloc(nB, 'gemm B');
    const pC = ar.alloc(nC, 'gemm C');
    const pS = ar.alloc(k.packedBSize(K, N) + k.packedASize(), 'gemm scratch');
    this.put(pA, A, nA);
    this.put(pB, B, nB);
    this.put(pC, C, nC);
    k.gemm(+transA, +transB, M, N, K, alpha, pA, lda, pB, ldb, beta, pC, ldc, pS);
    this.get(pC, C, nC);
  }

  // seqForward: x [T,B,I], wIh [G,I], wHh [G,R], b* [G], wHr [P,H], h0 [B,R], c0 [B,H]
  //   -> y [T,B,yStride] (cols yOffset..+R), hN [B,R], cN [B,H]
  seqForward(a: SeqForwardArgs): SeqContext | null {
    assertSeqForwardArgs('wasm', a);
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
    ar.reset();
    // --- allocate everything first (memory may grow), then create views
    const pX = ar.alloc(TB * I, 'x');
    const pWih = ar.alloc(G * I, 'wIh');
    const pWhh = ar.alloc(G * R, 'wHh');
    const pBih = a.bIh ? ar.alloc(G, 'bIh') : 0;
    const pBhh = a.bHh ? ar.alloc(G, 'bHh') : 0;
    const pWhr = P > 0 ? ar.alloc(P * H, 'wHr') : 0;
    const pTIdx = ar.alloc(maxLen * B, 'step table');
    const pXP = ar.alloc(TB * G, 'input projection');
    const pS = ar.alloc(k.packedBSize(I, G) + k.packedASize(), 'gemm scratch');
    // a few rows and steps (streaming): per-step GEMMs straight from the weights, no packing
    const small = B <= SMALL_M && maxLen <= SMALL_T;
    const pWhhP = small ? 0 : ar.alloc(k.packedBSize(R, GE), 'packed wHh');
    const pWhlP = GE < G && !small ? ar.alloc(k.packedBSize(R, G - GE), 'packed wHh (late gates)') : 0;
    const pWhrP = P > 0 && !small ? ar.alloc(k.packedBSize(H, P), 'packed wHr') : 0;
    const pAp = ar.alloc(k.packedASize(), 'gemm scratch');
    const pH = ar.alloc(B * R, 'h');
    const pC = withC ? ar.alloc(B * H, 'c') : 0;
    const pHP = ar.alloc(B * G, 'recurrent projection');
    const pRh = GE < G ? ar.alloc(B * R, 'late gates input') : 0;
    const pStates = ar.alloc(TB * R, 'states');
    const saveRows = training ? TB : B;
    const pGates = wc.saves ? ar.alloc(saveRows * G, 'gates') : 0;
    const pCells = wc.saves ? ar.alloc(saveRows * H, 'cells') : 0;
    const pHRawTmp = P > 0 ? ar.alloc(B * H, 'h before projection') : 0;
    const pHRawSave = P > 0 && training ? ar.alloc(TB * H, 'saved h before projection') : 0;
    const pProj = P > 0 ? ar.alloc(B * P, 'projection') : 0;
    // --- copy in
    this.put(pX, a.x, TB * I);
    this.put(pWih, a.wIh, G * I);
    this.put(pWhh, a.wHh, G * R);
    if (a.bIh) this.put(pBih, a.bIh, G);
    if (a.bHh) this.put(pBhh, a.bHh, G);
    if (a.wHr) this.put(pWhr, a.wHr, P * H);
    this.putI(pTIdx, tIdx, maxLen * B);
    if (a.h0) this.put(pH, a.h0, B * R);
    else this.f32(pH, B * R).fill(0);
    if (withC) {
      if (a.c0) this.put(pC, a.c0, B * H);
      else this.f32(pC, B * H).fill(0);
    }
    if (pHRawSave) this.f32(pHRawSave, TB * H).fill(0);
    if (pCells && training) this.f32(pCells, TB * H).fill(0); // rows of unprocessed steps enter backward's GEMMs
    if (maxLen < T || a.lengths) this.f32(pStates, TB * R).fill(0);
    // --- input projection for all steps: XP = (bIh + bHh) + x @ wIh^T   [TB, G]
    k.fillBias(TB, G, pBih, pBhh, wc.lastBiasInside ? H : 0, pXP);
    k.gemm(0, 1, TB, G, I, 1, pX, I, pWih, I, 1, pXP, G, pS);
    const pWhl = pWhh + GE * R * 4; // the late gates' rows of wHh
    if (!small) {
      k.packB(1, R, GE, pWhh, R, pWhhP); // op(B) = wHh[early]^T [R, GE]
      if (pWhlP) k.packB(1, R, G - GE, pWhl, R, pWhlP); // op(B) = wHh[late]^T [R, G - GE]
      if (P > 0) k.packB(1, H, P, pWhr, H, pWhrP); // op(B) = wHr^T [H, P]
    }
    const step: WasmForwardStep = {
      B, H, R, tIdx: 0, xp: pXP, hp: pHP, h: pH, c: pC, hOut: P > 0 ? pHRawTmp : pH, hSave: P > 0 ? pHRawSave : pStates,
      states: pStates, gates: pGates, cells: pCells, saveFull: training ? 1 : 0,
      bHhLast: pBhh && wc.lastBiasInside ? pBhh + (G - H) * 4 : 0, rh: pRh, gate: gateArgs(a.recurrentActivation),
      late: (v) => {
        // HP[B, GE:G] = v[B, R] @ wHh[late]^T
        if (small) k.gemmSmallM(1, B, G - GE, R, 1, v, R, pWhl, R, 0, pHP + GE * 4, G);
        else k.gemmPacked(0, B, G - GE, R, 1, v, R, pWhlP, 0, pHP + GE * 4, G, pAp);
      },
    };
    for (let s = 0; s < maxLen; s++) {
      step.tIdx = pTIdx + s * B * 4;
      // HP[B, GE] = h[B, R] @ wHh[early]^T: all (early) gates in one GEMM
      if (small) k.gemmSmallM(1, B, GE, R, 1, pH, R, pWhh, R, 0, pHP, G);
      else k.gemmPacked(0, B, GE, R, 1, pH, R, pWhhP, 0, pHP, G, pAp);
      wc.forward(k, step);
      if (P > 0) { // the projection: h = hRaw @ wHr^T
        if (small) k.gemmSmallM(1, B, P, H, 1, pHRawTmp, H, pWhr, H, 0, pProj, P);
        else k.gemmPacked(0, B, P, H, 1, pHRawTmp, H, pWhrP, 0, pProj, P, pAp);
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
    const ctx: WasmSeqContext = {
      backend: 'wasm', args: a, lens, maxLen,
      states: states.slice(),
      gates: wc.saves ? this.f32(pGates, TB * G).slice() : null,
      cells: wc.saves ? this.f32(pCells, TB * H).slice() : null,
      hRaw: P > 0 ? this.f32(pHRawSave, TB * H).slice() : null,
    };
    return ctx;
  }

  // seqBackward: dy [T,B,dyStride], dhN [B,R], dcN [B,H]
  //   -> dx [T,B,I], dh0 [B,R], dc0 [B,H], dWIh [G,I], dWHh [G,R], dB* [G], dWHr [P,H]  (all +=)
  seqBackward(d: SeqBackwardArgs): void {
    const ctx = d.ctx as WasmSeqContext;
    if (!ctx || ctx.backend !== 'wasm') throw new Error(`wasm.seqBackward: context from backend '${ctx?.backend}'`);
    const f = ctx.args;
    assertSeqBackwardArgs('wasm', f, d);
    const { cell, T, B, I, H, P, reverse } = f;
    const G = gateCount(cell) * H;
    const GE = G - CELLS[cell].lateGates * H; // the late gates' columns [GE, G)
    const R = recurrentSize(H, P);
    const TB = T * B;
    const wc = WASM_CELLS[cell];
    const withC = hasCellState(cell);
    const { lens, maxLen } = ctx;
    const { tIdx, prevT, prevRow } = stepTables(T, B, f.lengths, reverse, true);
    const k = this.kernels;
    const ar = this.arena;
    ar.reset();
    const needX = !!d.dWIh;
    const needHprev = !!d.dWHh;
    const pX = needX ? ar.alloc(TB * I, 'x') : 0;
    const pWih = d.dx ? ar.alloc(G * I, 'wIh') : 0;
    const pWhh = ar.alloc(G * R, 'wHh');
    const pWhr = P > 0 ? ar.alloc(P * H, 'wHr') : 0;
    const pH0 = f.h0 && (wc.saves || needHprev) ? ar.alloc(B * R, 'h0') : 0;
    const pC0 = withC && f.c0 ? ar.alloc(B * H, 'c0') : 0;
    const pStates = ar.alloc(TB * R, 'states');
    const pGates = wc.saves ? ar.alloc(TB * G, 'gates') : 0;
    const pCells = wc.saves ? ar.alloc(TB * H, 'cells') : 0;
    const pHRaw = P > 0 ? ar.alloc(TB * H, 'h before projection') : 0;
    const pTIdx = ar.alloc(maxLen * B, 'step table');
    const pPrevT = ar.alloc(maxLen * B, 'step table');
    const pPrevRow = needHprev ? ar.alloc(TB, 'previous rows') : 0;
    const nDy = d.dy ? TB * d.dyStride : 0;
    const pDy = d.dy ? ar.alloc(nDy, 'dy') : 0;
    const pDh = ar.alloc(B * R, 'dh');
    const pDc = withC ? ar.alloc(B * H, 'dc') : 0;
    const pDG = ar.alloc(B * G, 'step gate gradient');
    const pDGi = ar.alloc(TB * G, 'gate gradients');
    const pDGh = wc.splitGrad ? ar.alloc(TB * G, 'recurrent gate gradients') : pDGi;
    const pDrh = GE < G ? ar.alloc(B * R, 'late gates input gradient') : 0;
    const small = B <= SMALL_M && maxLen <= SMALL_T;
    const pWhhP = small ? 0 : ar.alloc(k.packedBSize(GE, R), 'packed wHh');
    const pWhlP = GE < G && !small ? ar.alloc(k.packedBSize(G - GE, R), 'packed wHh (late gates)') : 0;
    const pAp = ar.alloc(k.packedASize(), 'gemm scratch');
    const pDhRaw = P > 0 ? ar.alloc(B * H, 'dh before projection') : 0;
    const pWhrP = P > 0 && !small ? ar.alloc(k.packedBSize(P, H), 'packed wHr') : 0;
    const pDhAll = P > 0 ? ar.alloc(TB * P, 'saved dh') : 0;
    const pHprev = needHprev ? ar.alloc(TB * R, 'previous states') : 0;
    const pDx = d.dx ? ar.alloc(TB * I, 'dx') : 0;
    const pDWih = d.dWIh ? ar.alloc(G * I, 'dWIh') : 0;
    const pDWhh = d.dWHh ? ar.alloc(G * R, 'dWHh') : 0;
    const pDBih = d.dBIh ? ar.alloc(G, 'dBIh') : 0;
    const pDBhh = d.dBHh ? ar.alloc(G, 'dBHh') : 0;
    const pDWhr = P > 0 && d.dWHr ? ar.alloc(P * H, 'dWHr') : 0;
    const scratch = Math.max(k.packedBSize(G, I), k.packedBSize(TB, I), k.packedBSize(TB, R), k.packedBSize(TB, H));
    const pS = ar.alloc(scratch + k.packedASize(), 'gemm scratch');
    // --- copy in
    if (needX) {
      this.put(pX, f.x, TB * I);
      if (f.lengths) {
        const xv = this.f32(pX, TB * I);
        for (let row = 0; row < TB; row++) if (Math.floor(row / B) >= lens[row % B]) xv.fill(0, row * I, row * I + I);
      }
    }
    if (pWih) this.put(pWih, f.wIh, G * I);
    this.put(pWhh, f.wHh, G * R);
    if (pWhr && f.wHr) this.put(pWhr, f.wHr, P * H);
    if (pH0 && f.h0) this.put(pH0, f.h0, B * R);
    if (pC0 && f.c0) this.put(pC0, f.c0, B * H);
    this.put(pStates, ctx.states, TB * R);
    if (ctx.gates) this.put(pGates, ctx.gates, TB * G);
    if (ctx.cells) this.put(pCells, ctx.cells, TB * H);
    if (ctx.hRaw) this.put(pHRaw, ctx.hRaw, TB * H);
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
    this.f32(pDGi, TB * G).fill(0);
    if (wc.splitGrad) this.f32(pDGh, TB * G).fill(0);
    if (pDhAll) this.f32(pDhAll, TB * P).fill(0);
    // --- BPTT
    const pWhl = pWhh + GE * R * 4; // the late gates' rows of wHh
    if (!small) {
      k.packB(0, GE, R, pWhh, R, pWhhP); // op(B) = wHh[early] [GE, R]
      if (pWhlP) k.packB(0, G - GE, R, pWhl, R, pWhlP); // op(B) = wHh[late] [G - GE, R]
      if (P > 0) k.packB(0, P, H, pWhr, H, pWhrP); // op(B) = wHr [P, H]
    }
    const step: WasmBackwardStep = {
      B, H, R, tIdx: 0, prevT: 0, dh: pDh, dhIn: P > 0 ? pDhRaw : pDh, dc: pDc,
      gates: pGates, cells: pCells, states: pStates, h0: pH0, c0: pC0, dG: pDG, dGi: pDGi, dGh: pDGh, drh: pDrh,
      gate: gateArgs(f.recurrentActivation),
      lateT: (out) => {
        // out[B, R] = dG[:, GE:G] @ wHh[late]
        if (small) k.gemmSmallM(0, B, R, G - GE, 1, pDG + GE * 4, G, pWhl, R, 0, out, R);
        else k.gemmPacked(0, B, R, G - GE, 1, pDG + GE * 4, G, pWhlP, 0, out, R, pAp);
      },
    };
    for (let s = maxLen - 1; s >= 0; s--) {
      step.tIdx = pTIdx + s * B * 4;
      step.prevT = pPrevT + s * B * 4;
      if (d.dy) k.addDy(B, R, step.tIdx, pDh, pDy, d.dyStride, d.dyOffset);
      if (P > 0) {
        k.scatterRows(B, P, step.tIdx, pDh, 0, pDhAll);
        // dhRaw = dh @ wHr
        if (small) k.gemmSmallM(0, B, H, P, 1, pDh, P, pWhr, H, 0, pDhRaw, H);
        else k.gemmPacked(0, B, H, P, 1, pDh, P, pWhrP, 0, pDhRaw, H, pAp);
      }
      wc.backward(k, step);
      // dh[B, R] += dG[B, GE] @ wHh[early]: the recurrent delta, all (early) gates in one GEMM
      if (small) k.gemmSmallM(0, B, R, GE, 1, pDG, G, pWhh, R, 1, pDh, R);
      else k.gemmPacked(0, B, R, GE, 1, pDG, G, pWhhP, 1, pDh, R, pAp);
    }
    // --- gradients over all steps at once
    if (d.dx) {
      this.put(pDx, d.dx, TB * I);
      k.gemm(0, 0, TB, I, G, 1, pDGi, G, pWih, I, 1, pDx, I, pS); // dx += dGi @ wIh
    }
    if (d.dWIh) {
      this.put(pDWih, d.dWIh, G * I);
      k.gemm(1, 0, G, I, TB, 1, pDGi, G, pX, I, 1, pDWih, I, pS); // dWIh += dGi^T @ x
    }
    if (d.dWHh) {
      k.gatherRows(TB, R, B, pPrevRow, pStates, pH0, pHprev);
      this.put(pDWhh, d.dWHh, G * R);
      k.gemm(1, 0, GE, R, TB, 1, pDGh, G, pHprev, R, 1, pDWhh, R, pS); // dWHh[early] += dGh^T @ Hprev
      // dWHh[late] += dGh[late]^T @ (the late gates' inputs, saved as cells)
      if (GE < G) k.gemm(1, 0, G - GE, R, TB, 1, pDGh + GE * 4, G, pCells, H, 1, pDWhh + GE * R * 4, R, pS);
    }
    if (d.dBIh) {
      this.put(pDBih, d.dBIh, G);
      k.addColumnSums(TB, G, pDGi, pDBih);
    }
    if (d.dBHh) {
      this.put(pDBhh, d.dBHh, G);
      k.addColumnSums(TB, G, pDGh, pDBhh);
    }
    if (pDWhr && d.dWHr) {
      this.put(pDWhr, d.dWHr, P * H);
      k.gemm(1, 0, P, H, TB, 1, pDhAll, P, pHRaw, H, 1, pDWhr, H, pS); // dWHr += dh^T @ hRaw
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
    const pl = ar.alloc(N * C, 'logits');
    const pt = ar.alloc(N, 'targets');
    const pp = ar.alloc(N * C, 'probs');
    const ps = ar.alloc(N, 'losses');
    this.put(pl, logits, N * C);
    this.putI(pt, targets, N);
    this.kernels.crossEntropyForward(N, C, pl, pt, ignoreIndex, pp, ps);
    this.get(pp, probs, N * C);
    this.get(ps, losses, N);
  }

  // dLogits [N,C] += dLosses[n] * (probs - onehot)
  crossEntropyBackward(
    N: number, C: number, probs: Float32Array, targets: Int32Array, ignoreIndex: number,
    dLosses: Float32Array, dLogits: Float32Array,
  ): void {
    assertCrossEntropyBackwardArgs('wasm', N, C, probs, targets, ignoreIndex, dLosses, dLogits);
    const ar = this.arena;
    ar.reset();
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
  }

  sumSquares(x: Float32Array): number {
    assertSumSquaresArgs('wasm', x);
    const n = x.length;
    const ar = this.arena;
    ar.reset();
    const px = ar.alloc(n, 'x');
    this.put(px, x, n);
    return this.kernels.sumSquares(n, px);
  }

  adamUpdate(a: AdamArgs): void {
    assertAdamArgs('wasm', a);
    const n = a.param.length;
    const ar = this.arena;
    ar.reset();
    const pp = ar.alloc(n, 'param');
    const pg = ar.alloc(n, 'grad');
    const pm = ar.alloc(n, 'm');
    const pv = ar.alloc(n, 'v');
    this.put(pp, a.param, n);
    this.put(pg, a.grad, n);
    this.put(pm, a.m, n);
    this.put(pv, a.v, n);
    this.kernels.adamUpdate(n, pp, pg, pm, pv, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.decoupled ? 1 : 0, a.step);
    this.get(pp, a.param, n);
    this.get(pm, a.m, n);
    this.get(pv, a.v, n);
  }

  sgdUpdate(a: SgdArgs): void {
    assertSgdArgs('wasm', a);
    const n = a.param.length;
    const useBuf = a.momentum !== 0;
    const ar = this.arena;
    ar.reset();
    const pp = ar.alloc(n, 'param');
    const pg = ar.alloc(n, 'grad');
    const pb = ar.alloc(useBuf ? n : 0, 'momentumBuffer');
    this.put(pp, a.param, n);
    this.put(pg, a.grad, n);
    if (useBuf) this.put(pb, a.momentumBuffer, n);
    this.kernels.sgdUpdate(n, pp, pg, pb, a.lr, a.momentum, a.dampening, a.weightDecay, a.nesterov ? 1 : 0, a.firstStep ? 1 : 0);
    this.get(pp, a.param, n);
    if (useBuf) this.get(pb, a.momentumBuffer, n);
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

/** Synchronously builds the backend from the .wasm bytes or a compiled WebAssembly.Module. */
export function createWasmBackend(source: WasmSource, options: WasmBackendOptions = {}): WasmBackend {
  if (!(source instanceof WebAssembly.Module) && !WebAssembly.validate(source)) {
    throw new Error('the rnnkit .wasm does not validate here (this runtime needs WebAssembly SIMD)');
  }
  const instance = new WebAssembly.Instance(toModule(source), {});
  return new WasmBackend(instance, options);
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
  const instance = await WebAssembly.instantiate(module, {});
  return new WasmBackend(instance, options);
}
