// The wasm backend against the reference backend: every kernel and option, random shapes
// (odd sizes included), accumulate semantics, memory reuse, and error messages.
// The wasm build must load: a missing or broken build fails these tests (it never skips them).
import { describe, expect, it } from 'vitest';
import type { CellKind, RecurrentActivation, SeqBackwardArgs, SeqForwardArgs } from '../src/backends/backend.js';
import { recurrentSize } from '../src/backends/backend.js';
import { CELL_KINDS, CELLS, gateCount, hasCellState } from '../src/backends/cells.js';
import { ReferenceBackend } from '../src/backends/reference.js';
import { loadWasmBackend } from '../src/backends/wasm.js';
import { WasmArena, createWasmBackend, pickWasmBuild } from '../src/backends/wasm-core.js';

const ref = new ReferenceBackend();
const wasm = loadWasmBackend();

// a small deterministic generator (mulberry32 + Box-Muller)
function rng(seed: number) {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
  const arr = (n: number, scale = 1) => Float32Array.from({ length: n }, () => normal() * scale);
  const int = (lo: number, hi: number) => lo + Math.floor(u() * (hi - lo + 1));
  return { u, normal, arr, int };
}

/** Max |a - b| relative to the largest |b| (floor 1e-3), as the golden tolerances are stated. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let maxB = 0;
  let maxD = 0;
  for (let i = 0; i < b.length; i++) {
    maxB = Math.max(maxB, Math.abs(b[i]));
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= maxD)) maxD = Number.isNaN(d) ? Infinity : d;
  }
  return maxD / Math.max(maxB, 1e-3);
}

function close(what: string, a: ArrayLike<number> | null, b: ArrayLike<number> | null, tol: number): void {
  if (a === null || b === null) {
    expect(a, what).toBe(b);
    return;
  }
  const e = relErr(a, b);
  if (!(e <= tol)) throw new Error(`${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

describe('wasm backend loads', () => {
  it('loads the built module and reports SIMD', () => {
    const info = wasm.info();
    expect(info.isa).toMatch(/^simd128/);
    // Node has SharedArrayBuffer and worker_threads: the threaded build, one thread per core,
    // unless RNNKIT_WASM_BUILD asks for another build
    const forced = process.env.RNNKIT_WASM_BUILD === 'plain' || process.env.RNNKIT_WASM_BUILD === 'relaxed';
    if (forced) expect(info).toMatchObject({ threads: 1, detail: expect.stringMatching(/one thread: a build without shared memory/) });
    else expect(info.detail).toMatch(/threaded build .*; shared memory, \d+ threads?$/);
  });

  it('chooses the plain build where relaxed SIMD does not validate', () => {
    const plain = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);
    const bogus = new Uint8Array([1, 2, 3]);
    expect(pickWasmBuild(plain, bogus)).toBe(plain);
    expect(pickWasmBuild(plain, null)).toBe(plain);
    expect(() => pickWasmBuild(plain, bogus, 'relaxed')).toThrow(/relaxed SIMD/);
  });

  it('rejects bytes that are not a valid module with a clear message', () => {
    expect(() => createWasmBackend(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 9]))).toThrow(/does not validate/);
  });
});

describe('wasm vector math', () => {
  it('exp, sigmoid and tanh are accurate to about 1e-6 relative', () => {
    const k = wasm.kernels;
    const n = 4 * 5000;
    const x = Float32Array.from({ length: n }, (_, i) => (i < n / 2 ? -20 + (40 * i) / (n / 2) : (rng(3).u() - 0.5) * 1e-3 * (i % 7)));
    const fns = [Math.exp, (v: number) => 1 / (1 + Math.exp(-v)), Math.tanh];
    for (let op = 0; op < 3; op++) {
      wasm.arena.reset();
      const px = wasm.arena.alloc(n, 'x');
      const py = wasm.arena.alloc(n, 'y');
      new Float32Array(k.memory.buffer, px, n).set(x);
      k.vecMath(op, n, px, py);
      const y = new Float32Array(k.memory.buffer, py, n);
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const want = fns[op](x[i]);
        const err = Math.abs(y[i] - want) / Math.max(Math.abs(want), 1e-30);
        worst = Math.max(worst, want === 0 ? Math.abs(y[i]) : err);
      }
      expect(worst, `op ${op}`).toBeLessThan(1e-6);
    }
  });
});

describe('wasm gemm', () => {
  const r = rng(1);
  const cases: [number, number, number][] = [
    [1, 1, 1], [3, 5, 7], [4, 8, 16], [5, 9, 3], [17, 33, 29], [1, 257, 300], [130, 77, 300], [64, 40, 513], [2, 19, 1],
  ];
  for (const [M, N, K] of cases) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        it(`M=${M} N=${N} K=${K} transA=${tA} transB=${tB}`, () => {
          const lda = (tA ? M : K) + r.int(0, 3);
          const ldb = (tB ? K : N) + r.int(0, 3);
          const ldc = N + r.int(0, 3);
          const A = r.arr((tA ? K : M) * lda);
          const B = r.arr((tB ? N : K) * ldb);
          for (const [alpha, beta] of [[1, 0], [0.5, 1], [-1.5, 0.25], [0, 2]]) {
            const C0 = r.arr(M * ldc);
            if (beta === 0) C0.fill(NaN); // beta = 0 ignores C, NaN included
            const Cr = C0.slice();
            const Cw = C0.slice();
            ref.gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, Cr, ldc);
            wasm.gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, Cw, ldc);
            // the gaps between rows (ldc > N) are untouched: compare all of C
            for (let i = 0; i < M * ldc; i++) if (i % ldc >= N) expect(Object.is(Cw[i], C0[i])).toBe(true);
            const pick = (C: Float32Array) => Float32Array.from({ length: M * N }, (_, i) => C[Math.floor(i / N) * ldc + (i % N)]);
            close(`C alpha=${alpha} beta=${beta}`, pick(Cw), pick(Cr), 1e-5);
          }
        });
      }
    }
  }

  it('naive kernel agrees with the fast kernel', () => {
    const k = wasm.kernels;
    const M = 13, N = 21, K = 37;
    const ar = wasm.arena;
    ar.reset();
    const pA = ar.alloc(M * K, 'A'), pB = ar.alloc(N * K, 'B'), pC1 = ar.alloc(M * N, 'C'), pC2 = ar.alloc(M * N, 'C');
    const pS = ar.alloc(k.packedBSize(K, N) + k.packedASize(), 's');
    const mem = () => new Float32Array(k.memory.buffer);
    mem().set(r.arr(M * K), pA / 4);
    mem().set(r.arr(N * K), pB / 4);
    k.gemm(0, 1, M, N, K, 1, pA, K, pB, K, 0, pC1, N, pS);
    k.gemmNaive(0, 1, M, N, K, 1, pA, K, pB, K, 0, pC2, N);
    close('naive vs fast', mem().subarray(pC1 / 4, pC1 / 4 + M * N), mem().subarray(pC2 / 4, pC2 / 4 + M * N), 1e-5);
  });
});

interface SeqCase {
  cell: CellKind;
  T: number; B: number; I: number; H: number; P: number;
  reverse: boolean;
  lengths: boolean;
  bias: boolean;
  init: boolean;
  strided: boolean;
  seed: number;
  /** The gate activation (LSTM, GRU); omitted = sigmoid. */
  act?: RecurrentActivation;
}

/** Runs forward (and backward) of one case on both backends and compares every output. */
function checkSeq(c: SeqCase): void {
  const r = rng(c.seed);
  const { cell, T, B, I, H, P, reverse } = c;
  const G = gateCount(cell) * H;
  const R = recurrentSize(H, P);
  const scale = 1 / Math.sqrt(H);
  const lengths = c.lengths ? Int32Array.from({ length: B }, (_, b) => (b === 0 ? T : r.int(1, T))) : null;
  if (lengths && B > 2) [lengths[0], lengths[B - 1]] = [lengths[B - 1], lengths[0]]; // longest not first
  const yStride = c.strided ? 2 * R + 3 : R;
  const yOffset = c.strided ? R + 1 : 0;
  const base: Omit<SeqForwardArgs, 'y' | 'hN' | 'cN'> = {
    cell, T, B, I, H, P, reverse,
    x: r.arr(T * B * I),
    wIh: r.arr(G * I, scale),
    wHh: r.arr(G * R, scale),
    bIh: c.bias ? r.arr(G, scale) : null,
    bHh: c.bias ? r.arr(G, scale) : null,
    wHr: P > 0 ? r.arr(P * H, scale) : null,
    h0: c.init ? r.arr(B * R) : null,
    c0: c.init && hasCellState(cell) ? r.arr(B * H) : null,
    lengths,
    yStride, yOffset,
    training: true,
    recurrentActivation: c.act ?? null,
  };
  const y0 = r.arr(T * B * yStride); // the other columns must stay
  const mk = (): SeqForwardArgs => ({
    ...base, y: y0.slice(), hN: new Float32Array(B * R), cN: hasCellState(cell) ? new Float32Array(B * H) : null,
  });
  const fr = mk();
  const fw = mk();
  const ctxR = ref.seqForward(fr);
  const ctxW = wasm.seqForward(fw);
  const tag = JSON.stringify(c);
  close(`${tag} y`, fw.y, fr.y, 1e-5);
  close(`${tag} hN`, fw.hN, fr.hN, 1e-5);
  close(`${tag} cN`, fw.cN, fr.cN, 1e-5);
  // inference gives the same outputs and no context
  const fi = { ...mk(), training: false };
  expect(wasm.seqForward(fi)).toBeNull();
  close(`${tag} y (inference)`, fi.y, fr.y, 1e-5);
  close(`${tag} hN (inference)`, fi.hN, fr.hN, 1e-5);
  close(`${tag} cN (inference)`, fi.cN, fr.cN, 1e-5);

  const dyStride = c.strided ? R + 5 : R;
  const dyOffset = c.strided ? 2 : 0;
  const dy = r.arr(T * B * dyStride);
  const dhN = r.arr(B * R);
  const dcN = hasCellState(cell) ? r.arr(B * H) : null;
  // pre-filled outputs: gradients accumulate
  const pre = {
    dx: r.arr(T * B * I), dh0: r.arr(B * R), dc0: r.arr(B * H), dWIh: r.arr(G * I), dWHh: r.arr(G * R),
    dBIh: r.arr(G), dBHh: r.arr(G), dWHr: r.arr(Math.max(1, P * H)),
  };
  const mkB = (ctx: unknown): SeqBackwardArgs => ({
    ctx: ctx as SeqBackwardArgs['ctx'], dy, dyStride, dyOffset, dhN, dcN,
    dx: pre.dx.slice(), dh0: pre.dh0.slice(), dc0: hasCellState(cell) ? pre.dc0.slice() : null,
    dWIh: pre.dWIh.slice(), dWHh: pre.dWHh.slice(), dBIh: pre.dBIh.slice(), dBHh: pre.dBHh.slice(),
    dWHr: P > 0 ? pre.dWHr.slice() : null,
  });
  const br = mkB(ctxR);
  const bw = mkB(ctxW);
  ref.seqBackward(br);
  wasm.seqBackward(bw);
  // compare the accumulated part (output - prefill) against the reference's
  const grads = ['dx', 'dh0', 'dc0', 'dWIh', 'dWHh', 'dBIh', 'dBHh', 'dWHr'] as const;
  for (const g of grads) {
    const a = bw[g];
    const b = br[g];
    if (!a || !b) {
      expect(a, g).toBe(b);
      continue;
    }
    const p = pre[g];
    close(`${tag} ${g}`, a.map((v, i) => v - p[i]), b.map((v, i) => v - p[i]), 1e-4);
  }
  // null outputs and null upstream gradients
  const bnR: SeqBackwardArgs = { ...mkB(ctxR), dy: null, dhN: null, dcN: null, dx: null, dWIh: null, dBHh: null, dWHr: null };
  // a wasm context serves one backward (its blocks are freed then): a second forward for the second
  expect(() => wasm.seqBackward(mkB(ctxW))).toThrow('already used by a backward pass');
  const bnW: SeqBackwardArgs = { ...mkB(wasm.seqForward(mk())), dy: null, dhN: null, dcN: null, dx: null, dWIh: null, dBHh: null, dWHr: null };
  if (hasCellState(cell)) {
    bnR.dcN = dcN;
    bnW.dcN = dcN;
  } else {
    bnR.dhN = dhN;
    bnW.dhN = dhN;
  }
  ref.seqBackward(bnR);
  wasm.seqBackward(bnW);
  for (const g of ['dh0', 'dc0', 'dWHh', 'dBIh'] as const) {
    const a = bnW[g];
    const b = bnR[g];
    if (a && b) close(`${tag} ${g} (sparse upstream)`, a, b, 1e-4);
  }
}

describe('wasm seqForward / seqBackward vs reference', () => {
  let seed = 100;
  for (const cell of CELL_KINDS) {
    const projections = CELLS[cell].projection ? [0, 3] : [0];
    for (const P of projections) {
      for (const reverse of [false, true]) {
        for (const lengths of [false, true]) {
          const c: SeqCase = {
            cell, T: 5 + (seed % 3), B: 3 + (seed % 4), I: 7, H: 9 + (seed % 2) * 4, P, reverse, lengths,
            bias: (seed & 1) === 0, init: (seed & 2) === 0, strided: (seed & 4) === 0, seed: seed++,
          };
          it(`${cell} P=${P} reverse=${reverse} lengths=${lengths} bias=${c.bias} init=${c.init} strided=${c.strided}`, () => checkSeq(c));
        }
      }
    }
  }
  for (const cell of CELL_KINDS.filter((k) => CELLS[k].gateActivation)) {
    for (const [alpha, beta] of [[0.2, 0.5], [0.9, 0.45]]) {
      const c: SeqCase = {
        cell, T: 6, B: 5, I: 7, H: 11, P: 0, reverse: alpha > 0.5, lengths: true, bias: true, init: true, strided: alpha < 0.5,
        seed: seed++, act: { kind: 'hardSigmoid', alpha, beta },
      };
      it(`${cell} hardSigmoid alpha ${alpha} beta ${beta} reverse=${c.reverse} lengths strided=${c.strided}`, () => checkSeq(c));
    }
  }
  it('the reset-before GRU across the GEMM blocks and on the small-batch path', () => {
    checkSeq({ cell: 'gru_reset_before', T: 3, B: 9, I: 33, H: 90, P: 0, reverse: true, lengths: true, bias: true, init: false, strided: true, seed: 31 });
    checkSeq({ cell: 'gru_reset_before', T: 10, B: 2, I: 6, H: 11, P: 0, reverse: false, lengths: true, bias: true, init: true, strided: false, seed: 32 });
    checkSeq({ cell: 'gru_reset_before', T: 1, B: 1, I: 1, H: 1, P: 0, reverse: false, lengths: false, bias: false, init: true, strided: false, seed: 33, act: { kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 } });
  });
  it('every option flipped: bias, h0/c0, strides', () => {
    for (const cell of CELL_KINDS) {
      for (let m = 0; m < 8; m++) {
        checkSeq({
          cell, T: 4, B: 5, I: 3, H: 6, P: CELLS[cell].projection && m & 1 ? 2 : 0, reverse: (m & 2) !== 0, lengths: true,
          bias: (m & 1) !== 0, init: (m & 2) === 0, strided: (m & 4) !== 0, seed: 1000 + m,
        });
      }
    }
  });
  it('larger shapes across the GEMM blocks (I, H > 256 rows of packing, B not a multiple of 4)', () => {
    checkSeq({ cell: 'lstm', T: 3, B: 6, I: 260, H: 70, P: 0, reverse: false, lengths: true, bias: true, init: true, strided: false, seed: 7 });
    checkSeq({ cell: 'gru', T: 3, B: 9, I: 33, H: 90, P: 0, reverse: true, lengths: false, bias: true, init: false, strided: true, seed: 8 });
    checkSeq({ cell: 'lstm', T: 4, B: 2, I: 17, H: 40, P: 33, reverse: true, lengths: true, bias: true, init: true, strided: true, seed: 9 });
  });
  it('few rows over many steps (packed per-step GEMMs with partial 4-row tiles)', () => {
    checkSeq({ cell: 'lstm', T: 10, B: 3, I: 5, H: 12, P: 5, reverse: false, lengths: true, bias: true, init: true, strided: true, seed: 21 });
    checkSeq({ cell: 'gru', T: 12, B: 2, I: 6, H: 11, P: 0, reverse: true, lengths: true, bias: true, init: true, strided: false, seed: 22 });
    checkSeq({ cell: 'rnn_tanh', T: 9, B: 1, I: 4, H: 9, P: 0, reverse: false, lengths: false, bias: false, init: true, strided: false, seed: 23 });
    // batch 1 over many steps: the packed GEMV path (16- and 8-column panels, partial panels)
    checkSeq({ cell: 'lstm', T: 11, B: 1, I: 7, H: 21, P: 19, reverse: true, lengths: false, bias: true, init: true, strided: true, seed: 24 });
    checkSeq({ cell: 'gru', T: 10, B: 1, I: 300, H: 37, P: 0, reverse: false, lengths: false, bias: true, init: false, strided: false, seed: 25 });
    // an LSTM's batch-1 steps as one kernel, odd steps through the weights from the last column:
    // 16-column tiles and a last tile of 8 in every gate, odd and even step counts
    checkSeq({ cell: 'lstm', T: 13, B: 1, I: 9, H: 40, P: 0, reverse: false, lengths: false, bias: true, init: true, strided: false, seed: 26 });
    checkSeq({ cell: 'lstm', T: 10, B: 1, I: 5, H: 24, P: 0, reverse: true, lengths: true, bias: true, init: false, strided: true, seed: 27 });
  });
  it('B = 1 and T = 1', () => {
    checkSeq({ cell: 'lstm', T: 1, B: 1, I: 1, H: 1, P: 0, reverse: false, lengths: false, bias: true, init: true, strided: false, seed: 11 });
    checkSeq({ cell: 'gru', T: 6, B: 1, I: 5, H: 3, P: 0, reverse: true, lengths: true, bias: false, init: true, strided: false, seed: 12 });
  });
});

describe('wasm element-wise kernels, cross-entropy, optimizers', () => {
  const r = rng(5);
  it('unary forward and backward', () => {
    for (const op of ['tanh', 'sigmoid', 'relu'] as const) {
      const n = 37;
      const x = r.arr(n, 3);
      const yr = new Float32Array(n);
      const yw = new Float32Array(n);
      ref.unaryForward(op, x, yr);
      wasm.unaryForward(op, x, yw);
      close(`${op} forward`, yw, yr, 1e-6);
      const dy = r.arr(n);
      const dx0 = r.arr(n);
      const dxr = dx0.slice();
      const dxw = dx0.slice();
      ref.unaryBackward(op, x, yr, dy, dxr);
      wasm.unaryBackward(op, x, yr, dy, dxw);
      close(`${op} backward`, dxw, dxr, 1e-6);
    }
  });
  it('cross-entropy forward and backward with ignoreIndex', () => {
    const N = 11, C = 13;
    const logits = r.arr(N * C, 4);
    const targets = Int32Array.from({ length: N }, (_, i) => (i === 3 ? -100 : r.int(0, C - 1)));
    const pr = new Float32Array(N * C), lr = new Float32Array(N), pw = new Float32Array(N * C), lw = new Float32Array(N);
    ref.crossEntropyForward(N, C, logits, targets, -100, pr, lr);
    wasm.crossEntropyForward(N, C, logits, targets, -100, pw, lw);
    close('probs', pw, pr, 1e-6);
    close('losses', lw, lr, 1e-6);
    expect(lw[3]).toBe(0);
    const dL = r.arr(N);
    const g0 = r.arr(N * C);
    const gr = g0.slice(), gw = g0.slice();
    ref.crossEntropyBackward(N, C, pr, targets, -100, dL, gr);
    wasm.crossEntropyBackward(N, C, pr, targets, -100, dL, gw);
    close('dLogits', gw, gr, 1e-6);
    expect(() => wasm.crossEntropyForward(N, C, logits, Int32Array.from(targets, () => C), -100, pw, lw))
      .toThrow(/wasm.crossEntropyForward: targets\[0\] = 13 is out of range/);
  });
  it('sumSquares in double precision', () => {
    const x = r.arr(1001);
    expect(wasm.sumSquares(x)).toBeCloseTo(ref.sumSquares(x), 9);
  });
  it('Adam, AdamW and SGD (momentum, nesterov, dampening) steps', () => {
    const n = 29;
    for (const decoupled of [false, true]) {
      for (const wd of [0, 0.01]) {
        const p = r.arr(n), g = r.arr(n), m = r.arr(n, 0.1), v = r.arr(n, 0.1).map(Math.abs);
        const a = { param: p.slice(), grad: g, m: m.slice(), v: v.slice(), lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd, decoupled, step: 3 };
        const b = { ...a, param: p.slice(), m: m.slice(), v: v.slice() };
        ref.adamUpdate(a);
        wasm.adamUpdate(b);
        close('adam param', b.param, a.param, 1e-6);
        close('adam m', b.m, a.m, 1e-6);
        close('adam v', b.v, a.v, 1e-6);
      }
    }
    for (const [momentum, nesterov, firstStep, dampening] of [[0, false, true, 0], [0.9, false, true, 0], [0.9, true, false, 0], [0.5, false, false, 0.1]] as const) {
      const p = r.arr(n), g = r.arr(n), buf = r.arr(n);
      const a = { param: p.slice(), grad: g, momentumBuffer: buf.slice(), lr: 0.1, momentum, dampening, weightDecay: 0.01, nesterov, firstStep };
      const b = { ...a, param: p.slice(), momentumBuffer: buf.slice() };
      ref.sgdUpdate(a);
      wasm.sgdUpdate(b);
      close('sgd param', b.param, a.param, 1e-6);
      close('sgd buffer', b.momentumBuffer, a.momentumBuffer, 1e-6);
    }
  });
});

describe('wasm memory', () => {
  it('a training loop reuses memory: it stops growing after the first step', () => {
    const r = rng(9);
    const T = 6, B = 4, I = 8, H = 16, G = 4 * H;
    const args: SeqForwardArgs = {
      cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: r.arr(T * B * I), wIh: r.arr(G * I), wHh: r.arr(G * H),
      bIh: r.arr(G), bHh: r.arr(G), wHr: null, h0: null, c0: null, lengths: null,
      y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: new Float32Array(B * H), training: true,
    };
    const step = () => {
      const ctx = wasm.seqForward(args);
      wasm.seqBackward({
        ctx: ctx!, dy: args.y, dyStride: H, dyOffset: 0, dhN: null, dcN: null, dx: new Float32Array(T * B * I),
        dh0: null, dc0: null, dWIh: new Float32Array(G * I), dWHh: new Float32Array(G * H), dBIh: null, dBHh: null, dWHr: null,
      });
      wasm.gemm(false, true, 33, 17, 9, 1, r.arr(33 * 9), 9, r.arr(17 * 9), 9, 0, new Float32Array(33 * 17), 17);
    };
    step();
    const after1 = wasm.memoryBytes();
    for (let i = 0; i < 50; i++) step();
    expect(wasm.memoryBytes()).toBe(after1);
  });

  it('exhausting memory gives a clear error', () => {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 2 });
    const arena = new WasmArena(mem, 1024);
    arena.alloc(1000, 'small');
    expect(() => arena.alloc(1e6, 'big buffer')).toThrow(/out of WebAssembly memory: this call needs 3\.8 MiB of linear memory \(at big buffer\)/);
    const arena4g = new WasmArena(new WebAssembly.Memory({ initial: 1 }), 0);
    expect(() => arena4g.alloc(2 ** 31, 'huge')).toThrow(/more than the 4 GiB a wasm32 module can address/);
  });
});

describe('wasm input validation (same messages as every backend)', () => {
  const T = 2, B = 2, I = 3, H = 4, G = 16;
  const good = (): SeqForwardArgs => ({
    cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: new Float32Array(T * B * I), wIh: new Float32Array(G * I),
    wHh: new Float32Array(G * H), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null,
    y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: null, training: true,
  });
  it('seqForward', () => {
    expect(() => wasm.seqForward({ ...good(), x: new Float32Array(5) })).toThrow('wasm.seqForward(lstm): x has 5 elements, expected 12 for shape [T=2, B=2, I=3]');
    expect(() => wasm.seqForward({ ...good(), lengths: Int32Array.of(2, 3) })).toThrow('wasm.seqForward(lstm): lengths[1] = 3 is out of range, expected 1..2');
    expect(() => wasm.seqForward({ ...good(), yOffset: 1 })).toThrow('wasm.seqForward(lstm): y columns [1, 5) do not fit in yStride 4');
    expect(() => wasm.seqForward({ ...good(), cell: 'gru', P: 2 })).toThrow(/a projection \(P=2\) exists only for LSTM/);
  });
  it('seqBackward', () => {
    const ctx = wasm.seqForward(good())!;
    expect(() => wasm.seqBackward({
      ctx, dy: new Float32Array(3), dyStride: H, dyOffset: 0, dhN: null, dcN: null, dx: null, dh0: null, dc0: null,
      dWIh: null, dWHh: null, dBIh: null, dBHh: null, dWHr: null,
    })).toThrow('wasm.seqBackward(lstm): dy has 3 elements, expected 16 for shape [2, 2, 4]');
    const refCtx = ref.seqForward({ ...good() })!;
    expect(() => wasm.seqBackward({
      ctx: refCtx, dy: null, dyStride: H, dyOffset: 0, dhN: null, dcN: null, dx: null, dh0: null, dc0: null,
      dWIh: null, dWHh: null, dBIh: null, dBHh: null, dWHr: null,
    })).toThrow("wasm.seqBackward: context from backend 'reference'");
  });
  it('gemm', () => {
    const a = new Float32Array(6);
    expect(() => wasm.gemm(false, false, 2, 3, 3, 1, a, 3, a, 2, 0, a, 3)).toThrow('wasm.gemm: ldb 2 is smaller than the 3 columns of B');
    expect(() => wasm.gemm(false, false, 2, 3, 3, 1, a, 3, new Float32Array(8), 3, 0, a, 3)).toThrow('wasm.gemm: B has 8 elements, expected 9 for shape [3, 3] (ld 3)');
  });
});
