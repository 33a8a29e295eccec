// Shared helpers of the native backend tests: seeded random data, tolerant comparison, and a
// cross-check of one sequence forward + backward between two backends.
import { expect } from 'vitest';
import type { Backend, CellKind, RecurrentActivation, SeqBackwardArgs, SeqForwardArgs } from '../src/backends/backend.js';
import { recurrentSize } from '../src/backends/backend.js';
import { CELL_KINDS, CELLS, gateCount, hasCellState } from '../src/backends/cells.js';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randArray(r: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

/** Max |a-b| relative to max(1e-3, max |b|), like the golden tolerances. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let scale = 1e-3;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  }
  return worst / scale;
}

export function expectClose(what: string, a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  const e = relErr(a, b);
  if (!(e <= tol)) throw new Error(`${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

export interface SeqCase {
  cell: CellKind;
  T: number; B: number; I: number; H: number; P: number;
  reverse: boolean;
  lengths: boolean;
  bias: boolean;
  state: boolean;
  stride: boolean;
  seed: number;
  /** The gate activation (LSTM, GRU); omitted = sigmoid. */
  act?: RecurrentActivation;
}

const BWD_OUTPUTS = ['dx', 'dh0', 'dc0', 'dWIh', 'dWHh', 'dBIh', 'dBHh', 'dWHr'] as const;

function makeArgs(c: SeqCase): { fwd: SeqForwardArgs; bwd: Omit<SeqBackwardArgs, 'ctx'> } {
  const r = rng(c.seed);
  const { T, B, I, H, P } = c;
  const G = gateCount(c.cell) * H;
  const R = recurrentSize(H, P);
  const withC = hasCellState(c.cell);
  const yStride = c.stride ? 2 * R + 3 : R;
  const yOffset = c.stride ? 1 + Math.floor(r() * (R + 2)) : 0;
  let lengths: Int32Array | null = null;
  if (c.lengths) {
    lengths = new Int32Array(B);
    for (let b = 0; b < B; b++) lengths[b] = 1 + Math.floor(r() * T);
    lengths[Math.floor(r() * B)] = T;
  }
  const fwd: SeqForwardArgs = {
    cell: c.cell, T, B, I, H, P, reverse: c.reverse,
    x: randArray(r, T * B * I),
    wIh: randArray(r, G * I, 0.5),
    wHh: randArray(r, G * R, 0.5),
    bIh: c.bias ? randArray(r, G, 0.5) : null,
    bHh: c.bias ? randArray(r, G, 0.5) : null,
    wHr: P > 0 ? randArray(r, P * H, 0.5) : null,
    h0: c.state ? randArray(r, B * R) : null,
    c0: c.state && withC ? randArray(r, B * H) : null,
    lengths,
    y: randArray(r, T * B * yStride, 9), // garbage that must be overwritten / kept
    yStride, yOffset,
    hN: randArray(r, B * R, 9),
    cN: withC ? randArray(r, B * H, 9) : null,
    training: true,
    recurrentActivation: c.act ?? null,
  };
  const dyStride = c.stride ? R + 5 : R;
  const bwd = {
    dy: randArray(r, T * B * dyStride),
    dyStride,
    dyOffset: c.stride ? 2 : 0,
    dhN: c.state ? randArray(r, B * R) : null,
    dcN: c.state && withC ? randArray(r, B * H) : null,
    dx: randArray(r, T * B * I), // accumulate onto non-zero values
    dh0: c.state ? randArray(r, B * R) : null,
    dc0: c.state && withC ? randArray(r, B * H) : null,
    dWIh: randArray(r, G * I),
    dWHh: randArray(r, G * R),
    dBIh: c.bias ? randArray(r, G) : null,
    dBHh: c.bias ? randArray(r, G) : null,
    dWHr: P > 0 ? randArray(r, P * H) : null,
  };
  return { fwd, bwd };
}

function cloneFwd(a: SeqForwardArgs): SeqForwardArgs {
  return { ...a, y: a.y.slice(), hN: a.hN.slice(), cN: a.cN ? a.cN.slice() : null };
}

function cloneBwd(a: Omit<SeqBackwardArgs, 'ctx'>): Omit<SeqBackwardArgs, 'ctx'> {
  const o = { ...a };
  for (const k of BWD_OUTPUTS) o[k] = a[k] ? (a[k] as Float32Array).slice() : null;
  return o;
}

export interface SeqResult {
  y: Float32Array; hN: Float32Array; cN: Float32Array | null;
  grads: Record<string, Float32Array | null>;
}

/** mode 'async copies': the async calls, with the weights also given as the backend's copies (copyWeight). */
export async function runSeq(backend: Backend, c: SeqCase, mode: 'sync' | 'async' | 'async copies' = 'sync'): Promise<SeqResult> {
  const { fwd: f0, bwd: b0 } = makeArgs(c);
  const fwd = cloneFwd(f0);
  const bwd = cloneBwd(b0);
  const async = mode !== 'sync';
  if (mode === 'async copies') {
    const copy = (w: Float32Array | null) => (w ? backend.copyWeight!(w) : null);
    fwd.weightCopies = [copy(fwd.wIh), copy(fwd.wHh), copy(fwd.bIh), copy(fwd.bHh), copy(fwd.wHr)];
  }
  const ctx = async && backend.seqForwardAsync ? await backend.seqForwardAsync(fwd) : backend.seqForward(fwd);
  if (!ctx) throw new Error('no context');
  const args = { ...bwd, ctx } as SeqBackwardArgs;
  if (async && backend.seqBackwardAsync) await backend.seqBackwardAsync(args);
  else backend.seqBackward(args);
  const grads: Record<string, Float32Array | null> = {};
  for (const k of BWD_OUTPUTS) grads[k] = args[k];
  return { y: fwd.y, hN: fwd.hN, cN: fwd.cN, grads };
}

export function compareSeq(what: string, a: SeqResult, b: SeqResult, fwdTol = 1e-5, gradTol = 1e-4): void {
  expectClose(`${what} y`, a.y, b.y, fwdTol);
  expectClose(`${what} hN`, a.hN, b.hN, fwdTol);
  if (a.cN && b.cN) expectClose(`${what} cN`, a.cN, b.cN, fwdTol);
  for (const k of BWD_OUTPUTS) {
    const x = a.grads[k];
    const y = b.grads[k];
    expect(x === null, `${what} ${k} null`).toBe(y === null);
    if (x && y) expectClose(`${what} ${k}`, x, y, gradTol);
  }
}

export function bitwiseEqual(a: SeqResult, b: SeqResult): boolean {
  const eq = (x: Float32Array | null, y: Float32Array | null) =>
    x === y || (!!x && !!y && Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength)));
  if (!eq(a.y, b.y) || !eq(a.hN, b.hN) || !eq(a.cN, b.cN)) return false;
  return BWD_OUTPUTS.every((k) => eq(a.grads[k], b.grads[k]));
}

/** The random cases every ISA path runs. */
export function seqCases(): SeqCase[] {
  const cases: SeqCase[] = [];
  let seed = 1;
  for (const cell of CELL_KINDS) {
    for (const reverse of [false, true]) {
      for (const variant of [0, 1, 2]) {
        const r = rng(1000 + seed);
        const P = CELLS[cell].projection && variant === 1 ? 3 : 0;
        cases.push({
          cell,
          T: 2 + Math.floor(r() * 5),
          B: 1 + Math.floor(r() * 5),
          I: 1 + Math.floor(r() * 19),
          H: variant === 2 ? 17 + Math.floor(r() * 20) : 1 + Math.floor(r() * 9) + P,
          P,
          reverse,
          lengths: variant !== 0,
          bias: variant !== 1,
          state: variant !== 2,
          stride: variant !== 0,
          seed: seed++,
        });
      }
    }
  }
  // the hard sigmoid on every cell with sigmoid gates: TF.js's slope, and a steep one that
  // saturates many gates (derivative 0)
  for (const cell of CELL_KINDS.filter((k) => CELLS[k].gateActivation)) {
    for (const [alpha, beta] of [[0.2, 0.5], [0.9, 0.45]]) {
      const r = rng(1000 + seed);
      cases.push({
        cell, T: 3 + Math.floor(r() * 4), B: 1 + Math.floor(r() * 5), I: 1 + Math.floor(r() * 19), H: 5 + Math.floor(r() * 15),
        P: 0, reverse: alpha > 0.5, lengths: true, bias: true, state: true, stride: alpha < 0.5, seed: seed++,
        act: { kind: 'hardSigmoid', alpha, beta },
      });
    }
  }
  return cases;
}

/**
 * Whether a block of ThreadSanitizer's output (between its ===== lines) reports the addon: one of
 * its stacks (a racing access, a mutex misuse) has the addon's code as its first frame below the
 * sanitizer's interceptors, the C++ library's and node-addon-api's headers. node and V8 are not
 * instrumented, so TSan also reports V8's own threads against each other, e.g. a V8 platform job
 * torn down by the collector that an addon call's allocation ran: such a stack reaches the addon
 * only deeper down, and the report does not count.
 */
export function isTsanAddonReport(block: string): boolean {
  if (!block.includes('WARNING: ThreadSanitizer')) return false;
  const ours = /\brk::|native\/\w+\.(cpp|h|inc)\b/;
  const notCode = /libsanitizer|libtsan\.so|\/include\/c\+\+\/|node-addon-api\//;
  return block.split(/\n[ \t]*\n/).some((stack) => {
    const first = stack.split('\n').find((l) => /^\s+#\d+ /.test(l) && !notCode.test(l));
    return first !== undefined && ours.test(first);
  });
}
