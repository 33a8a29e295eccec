// One validation layer in front of every backend's kernels: the same checks, the same messages,
// whichever backend runs (native and wasm check again on their side of the boundary).
import {
  type AdamArgs, type MatmulPrecision, type SeqBackwardArgs, type SeqForwardArgs, type SgdArgs, type UnaryOp,
  MATMUL_PRECISIONS, recurrentSize,
} from './backend.js';
import { CELL_KINDS, CELLS, checkRecurrentActivation, gateCount, hasCellState, isCellKind, modulesWhere } from './cells.js';

type Buffer32 = ArrayLike<number> | null;

function fail(kernel: string, message: string): never {
  throw new RangeError(`${kernel}: ${message}`);
}

function checkSize(kernel: string, name: string, n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0) fail(kernel, `${name} must be a non-negative integer (${what}), received ${n}`);
}

/** Throws unless buf holds at least `need` elements (or is null when allowed). */
export function checkBuffer(kernel: string, name: string, buf: Buffer32, need: number, shape: string, optional = false): void {
  if (buf === null || buf === undefined) {
    if (optional) return;
    fail(kernel, `${name} is required, expected a Float32Array of shape ${shape}`);
  }
  if (buf.length < need) {
    fail(kernel, `${name} has ${buf.length} elements, expected ${need} for shape ${shape}`);
  }
}

export function assertGemmArgs(
  backend: string, transA: boolean, transB: boolean, M: number, N: number, K: number,
  A: Buffer32, lda: number, B: Buffer32, ldb: number, C: Buffer32, ldc: number,
): void {
  const k = `${backend}.gemm`;
  checkSize(k, 'M', M, 'rows of C');
  checkSize(k, 'N', N, 'columns of C');
  checkSize(k, 'K', K, 'inner dimension');
  const aCols = transA ? M : K;
  const aRows = transA ? K : M;
  const bCols = transB ? K : N;
  const bRows = transB ? N : K;
  if (lda < Math.max(1, aCols)) fail(k, `lda ${lda} is smaller than the ${aCols} columns of A`);
  if (ldb < Math.max(1, bCols)) fail(k, `ldb ${ldb} is smaller than the ${bCols} columns of B`);
  if (ldc < Math.max(1, N)) fail(k, `ldc ${ldc} is smaller than the ${N} columns of C`);
  const span = (rows: number, cols: number, ld: number) => (rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols);
  checkBuffer(k, 'A', A, span(aRows, aCols, lda), `[${aRows}, ${aCols}] (ld ${lda})`);
  checkBuffer(k, 'B', B, span(bRows, bCols, ldb), `[${bRows}, ${bCols}] (ld ${ldb})`);
  checkBuffer(k, 'C', C, span(M, N, ldc), `[${M}, ${N}] (ld ${ldc})`);
}

export function assertSeqForwardArgs(backend: string, a: SeqForwardArgs, call = `${backend}.seqForward`): void {
  if (a.paired != null) {
    const k = `${backend}.seqForward`;
    if (typeof a.paired !== 'object') fail(k, `paired must be the arguments of a second call or null, received ${typeof a.paired}`);
    if (a.paired.paired != null) fail(k, 'paired.paired must be null (a pair has two calls)');
    if (a.paired.training !== a.training) fail(k, `paired.training (${a.paired.training}) must equal training (${a.training}): one context holds both calls`);
    assertSeqForwardArgs(backend, a.paired, `${k} paired`);
  }
  const k = `${call}(${a.cell})`;
  if (!isCellKind(a.cell)) fail(k, `cell must be one of ${CELL_KINDS.join(', ')}, received ${String(a.cell)}`);
  for (const [name, v] of [['T', a.T], ['B', a.B], ['I', a.I], ['H', a.H], ['P', a.P]] as const) {
    checkSize(k, name, v, 'size');
  }
  if (a.T < 1 || a.B < 1 || a.H < 1 || a.I < 1) fail(k, `T, B, I and H must be at least 1, received T=${a.T} B=${a.B} I=${a.I} H=${a.H}`);
  if (a.P > 0 && !CELLS[a.cell].projection) fail(k, `a projection (P=${a.P}) exists only for ${modulesWhere((c) => c.projection)}`);
  if (a.P >= a.H && a.P > 0) fail(k, `projection size P=${a.P} must be smaller than H=${a.H}`);
  checkRecurrentActivation(k, a.cell, a.recurrentActivation);
  const { T, B, I, H, P } = a;
  const G = gateCount(a.cell) * H;
  const R = recurrentSize(H, P);
  checkBuffer(k, 'x', a.x, T * B * I, `[T=${T}, B=${B}, I=${I}]`);
  checkBuffer(k, 'wIh', a.wIh, G * I, `[${G}, ${I}]`);
  checkBuffer(k, 'wHh', a.wHh, G * R, `[${G}, ${R}]`);
  checkBuffer(k, 'bIh', a.bIh, G, `[${G}]`, true);
  checkBuffer(k, 'bHh', a.bHh, G, `[${G}]`, true);
  if (P > 0) checkBuffer(k, 'wHr', a.wHr, P * H, `[${P}, ${H}]`);
  const v = a.weightVersions;
  if (v != null && (!Array.isArray(v) || v.length !== 5 || !v.every((n) => Number.isSafeInteger(n)))) {
    fail(k, `weightVersions must be 5 integers (wIh, wHh, bIh, bHh, wHr), received ${JSON.stringify(v)}`);
  }
  checkWeightCopies(backend, k, a);
  checkBuffer(k, 'h0', a.h0, B * R, `[${B}, ${R}]`, true);
  if (hasCellState(a.cell)) {
    checkBuffer(k, 'c0', a.c0, B * H, `[${B}, ${H}]`, true);
    checkBuffer(k, 'cN', a.cN, B * H, `[${B}, ${H}]`, true);
  }
  if (a.yOffset < 0 || a.yOffset + R > a.yStride) fail(k, `y columns [${a.yOffset}, ${a.yOffset + R}) do not fit in yStride ${a.yStride}`);
  checkBuffer(k, 'y', a.y, T * B * a.yStride, `[${T}, ${B}, ${a.yStride}]`);
  checkBuffer(k, 'hN', a.hN, B * R, `[${B}, ${R}]`);
  if (a.lengths) {
    checkBuffer(k, 'lengths', a.lengths, B, `[${B}]`);
    for (let b = 0; b < B; b++) {
      const len = a.lengths[b];
      if (!Number.isInteger(len) || len < 1 || len > T) fail(k, `lengths[${b}] = ${len} is out of range, expected 1..${T}`);
    }
  }
}

const WEIGHT_NAMES = ['wIh', 'wHh', 'bIh', 'bHh', 'wHr'] as const;

/** weightCopies: absent, or 5 entries, each null or a copy made by this backend as long as its weight array. */
function checkWeightCopies(backend: string, k: string, a: SeqForwardArgs): void {
  const c = a.weightCopies;
  if (c == null) return;
  if (!Array.isArray(c) || c.length !== 5) {
    fail(k, `weightCopies must be 5 entries (wIh, wHh, bIh, bHh, wHr), each a weight copy or null, received ${Array.isArray(c) ? `${c.length} entries` : describe(c)}`);
  }
  WEIGHT_NAMES.forEach((name, i) => {
    const copy = c[i] as unknown;
    if (copy == null) return;
    const where = `weightCopies[${i}] (${name})`;
    if (typeof copy !== 'object') fail(k, `${where} must be a weight copy (${backend}.copyWeight) or null, received ${describe(copy)}`);
    const { backend: by, length } = copy as { backend?: unknown; length?: unknown };
    if (by !== backend) fail(k, `${where} must be a weight copy of this backend ('${backend}'), received one of ${typeof by === 'string' ? `'${by}'` : describe(by)}`);
    const array = a[name];
    if (array == null) fail(k, `${where} is given, but ${name} is null`);
    if (length !== array.length) fail(k, `${where} has ${String(length)} elements, expected ${array.length} (the length of ${name})`);
  });
}

export function assertSeqBackwardArgs(
  backend: string, f: SeqForwardArgs, d: SeqBackwardArgs, call = `${backend}.seqBackward`,
): void {
  if ((f.paired != null) !== (d.paired != null)) {
    fail(`${backend}.seqBackward`, 'a paired forward call takes a paired backward call (args.paired), and only it');
  }
  if (f.paired && d.paired) {
    if ((d.paired as Partial<SeqBackwardArgs>).paired != null) fail(`${backend}.seqBackward`, 'paired.paired must be null (a pair has two calls)');
    assertSeqBackwardArgs(backend, f.paired, { ...d.paired, ctx: d.ctx }, `${backend}.seqBackward paired`);
  }
  const k = `${call}(${f.cell})`;
  const { T, B, I, H, P } = f;
  const G = gateCount(f.cell) * H;
  const R = recurrentSize(H, P);
  if (d.dy) {
    if (d.dyOffset < 0 || d.dyOffset + R > d.dyStride) fail(k, `dy columns [${d.dyOffset}, ${d.dyOffset + R}) do not fit in dyStride ${d.dyStride}`);
    checkBuffer(k, 'dy', d.dy, T * B * d.dyStride, `[${T}, ${B}, ${d.dyStride}]`);
  }
  checkBuffer(k, 'dhN', d.dhN, B * R, `[${B}, ${R}]`, true);
  checkBuffer(k, 'dcN', d.dcN, B * H, `[${B}, ${H}]`, true);
  checkBuffer(k, 'dx', d.dx, T * B * I, `[${T}, ${B}, ${I}]`, true);
  checkBuffer(k, 'dh0', d.dh0, B * R, `[${B}, ${R}]`, true);
  checkBuffer(k, 'dc0', d.dc0, B * H, `[${B}, ${H}]`, true);
  checkBuffer(k, 'dWIh', d.dWIh, G * I, `[${G}, ${I}]`, true);
  checkBuffer(k, 'dWHh', d.dWHh, G * R, `[${G}, ${R}]`, true);
  checkBuffer(k, 'dBIh', d.dBIh, G, `[${G}]`, true);
  checkBuffer(k, 'dBHh', d.dBHh, G, `[${G}]`, true);
  if (P > 0) checkBuffer(k, 'dWHr', d.dWHr, P * H, `[${P}, ${H}]`, true);
}

function checkTargets(kernel: string, N: number, C: number, targets: Int32Array, ignoreIndex: number): void {
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t !== ignoreIndex && !(t >= 0 && t < C)) {
      throw new RangeError(`${kernel}: targets[${n}] = ${t} is out of range, expected 0..${C - 1} or ignoreIndex ${ignoreIndex}`);
    }
  }
}

// crossEntropyForward: logits [N,C], targets [N] -> probs [N,C], losses [N]
export function assertCrossEntropyForwardArgs(
  backend: string, N: number, C: number, logits: Buffer32, targets: Int32Array, ignoreIndex: number,
  probs: Buffer32, losses: Buffer32,
): void {
  const k = `${backend}.crossEntropyForward`;
  checkBuffer(k, 'logits', logits, N * C, `[${N}, ${C}]`);
  checkBuffer(k, 'targets', targets, N, `[${N}]`);
  checkBuffer(k, 'probs', probs, N * C, `[${N}, ${C}]`);
  checkBuffer(k, 'losses', losses, N, `[${N}]`);
  checkTargets(k, N, C, targets, ignoreIndex);
}

// crossEntropyBackward: probs [N,C], targets [N], dLosses [N] -> dLogits [N,C]
export function assertCrossEntropyBackwardArgs(
  backend: string, N: number, C: number, probs: Buffer32, targets: Int32Array, ignoreIndex: number,
  dLosses: Buffer32, dLogits: Buffer32,
): void {
  const k = `${backend}.crossEntropyBackward`;
  checkBuffer(k, 'probs', probs, N * C, `[${N}, ${C}]`);
  checkBuffer(k, 'targets', targets, N, `[${N}]`);
  checkBuffer(k, 'dLosses', dLosses, N, `[${N}]`);
  checkBuffer(k, 'dLogits', dLogits, N * C, `[${N}, ${C}]`);
  checkTargets(k, N, C, targets, ignoreIndex);
}

const UNARY_OPS: readonly UnaryOp[] = ['tanh', 'sigmoid', 'relu'];

// unaryForward: x [n] -> y [n]; unaryBackward (dy given): dy [n], x (relu) or y (tanh, sigmoid) [n] -> dx [n].
// Both x and y are required (the interface's types); only the one the op reads must hold n elements.
export function assertUnaryArgs(
  backend: string, op: UnaryOp, x: Buffer32, y: Buffer32, backward?: { dy: Buffer32; dx: Buffer32 },
): void {
  const kernel = `${backend}.${backward ? 'unaryBackward' : 'unaryForward'}`;
  if (!UNARY_OPS.includes(op)) fail(kernel, `op must be tanh, sigmoid or relu, received ${String(op)}`);
  const k = `${kernel}(${op})`;
  // n is the length of x (forward) or dy (backward)
  const first = backward ? backward.dy : x;
  checkBuffer(k, backward ? 'dy' : 'x', first, 0, '[n]');
  const n = first!.length;
  // forward reads x and writes y; backward reads x for relu, y for tanh and sigmoid
  checkBuffer(k, 'x', x, !backward || op === 'relu' ? n : 0, `[${n}]`);
  checkBuffer(k, 'y', y, !backward || op !== 'relu' ? n : 0, `[${n}]`);
  if (backward) checkBuffer(k, 'dx', backward.dx, n, `[${n}]`);
}

export function assertSumSquaresArgs(backend: string, x: Buffer32): void {
  checkBuffer(`${backend}.sumSquares`, 'x', x, 0, '[n]');
}

// addColumnSums: x [M, N] -> dst [N]
export function assertColumnSumsArgs(backend: string, M: number, N: number, x: Buffer32, dst: Buffer32): void {
  const k = `${backend}.addColumnSums`;
  checkSize(k, 'M', M, 'rows of x');
  checkSize(k, 'N', N, 'columns of x');
  checkBuffer(k, 'x', x, M * N, `[${M}, ${N}]`);
  checkBuffer(k, 'dst', dst, N, `[${N}]`);
}

/** Throws unless v is a finite number in [lo, hi) (lo = -Infinity: any finite number). */
function checkHyper(kernel: string, name: string, v: number, lo: number, hi = Infinity): void {
  if (typeof v === 'number' && Number.isFinite(v) && v >= lo && v < hi) return;
  const expected = hi < Infinity ? `a number in [${lo}, ${hi})` : lo > -Infinity ? `a finite number >= ${lo}` : 'a finite number';
  fail(kernel, `${name} must be ${expected}, received ${String(v)}`);
}

function checkFlag(kernel: string, name: string, v: boolean): void {
  if (typeof v !== 'boolean') fail(kernel, `${name} must be a boolean, received ${String(v)}`);
}

/**
 * The hyper-parameters PyTorch's Adam / AdamW accept (eps = 0 included, as PyTorch does). Used by
 * the kernels and by the optimizers' constructors (where = 'Adam', 'AdamW').
 */
export function checkAdamHyper(where: string, h: Pick<AdamArgs, 'lr' | 'beta1' | 'beta2' | 'eps' | 'weightDecay'>): void {
  checkHyper(where, 'lr', h.lr, 0);
  checkHyper(where, 'beta1', h.beta1, 0, 1);
  checkHyper(where, 'beta2', h.beta2, 0, 1);
  checkHyper(where, 'eps', h.eps, 0);
  checkHyper(where, 'weightDecay', h.weightDecay, 0);
}

/** The hyper-parameters PyTorch's SGD accepts; used by the kernels and by the SGD constructor. */
export function checkSgdHyper(
  where: string, h: Pick<SgdArgs, 'lr' | 'momentum' | 'dampening' | 'weightDecay' | 'nesterov'>,
): void {
  checkHyper(where, 'lr', h.lr, 0);
  checkHyper(where, 'momentum', h.momentum, 0);
  checkHyper(where, 'dampening', h.dampening, -Infinity);
  checkHyper(where, 'weightDecay', h.weightDecay, 0);
  checkFlag(where, 'nesterov', h.nesterov);
  if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
    fail(where, `nesterov needs momentum > 0 and dampening 0, received momentum ${h.momentum} and dampening ${h.dampening}`);
  }
}

// adamUpdate: param [n], grad [n], m [n], v [n]
export function assertAdamArgs(backend: string, a: AdamArgs): void {
  const k = `${backend}.adamUpdate`;
  checkAdamHyper(k, a);
  if (!Number.isInteger(a.step) || a.step < 1) fail(k, `step must be an integer >= 1 (1-based, for bias correction), received ${a.step}`);
  checkFlag(k, 'decoupled', a.decoupled);
  checkBuffer(k, 'param', a.param, 0, '[n]');
  const n = a.param.length;
  checkBuffer(k, 'grad', a.grad, n, `[${n}]`);
  checkBuffer(k, 'm', a.m, n, `[${n}]`);
  checkBuffer(k, 'v', a.v, n, `[${n}]`);
}

// sgdUpdate: param [n], grad [n], momentumBuffer [n] (read only when momentum != 0)
export function assertSgdArgs(backend: string, a: SgdArgs): void {
  const k = `${backend}.sgdUpdate`;
  checkSgdHyper(k, a);
  checkFlag(k, 'firstStep', a.firstStep);
  checkBuffer(k, 'param', a.param, 0, '[n]');
  const n = a.param.length;
  checkBuffer(k, 'grad', a.grad, n, `[${n}]`);
  checkBuffer(k, 'momentumBuffer', a.momentumBuffer, a.momentum !== 0 ? n : 0, `[${n}]`);
}

/** Throws unless p is a MatmulPrecision ('highest' or 'medium'), naming where and what it got. */
export function assertMatmulPrecision(where: string, p: unknown): asserts p is MatmulPrecision {
  if (typeof p !== 'string') {
    throw new TypeError(`${where}: precision must be a string, 'highest' or 'medium'; received ${describe(p)}`);
  }
  if (!(MATMUL_PRECISIONS as readonly string[]).includes(p)) {
    throw new RangeError(`${where}: precision must be 'highest' or 'medium'; received '${p}'`);
  }
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return `${typeof v} ${String(v)}`;
}
