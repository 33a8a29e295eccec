// Native backend (C++ N-API): cross-checked against the reference backend on random shapes
// (odd sizes, every cell and option) on EVERY ISA path the CPU has, plus packaging, env-var ISA
// selection in child processes, threads determinism, async forms and bad-input handling.
// The addon must load: these tests fail (never skip) when it does not.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import type { Backend, CellKind, SeqBackwardArgs, SeqForwardArgs, UnaryOp } from '../src/backends/backend.js';
import { type NativeAddon, type NativeIsa, NativeBackend, loadNativeAddon, loadNativeBackend } from '../src/backends/native.js';
import { STEP_SPLIT_CALLS, stepSplitShape } from '../src/backends/step-split.js';
import { ReferenceBackend } from '../src/backends/reference.js';
import { LSTM, Rng, SGD, Tensor, getBackend, noGrad, noGradAsync, setBackend, sum, withBackend } from '../src/index.js';
import { CELL_KINDS, CELLS, gateCount, hasCellState } from '../src/backends/cells.js';
import {
  bitwiseEqual, compareSeq, expectClose, randArray, rng, runSeq, seqCases, type SeqCase,
} from './native-helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const native: NativeBackend = loadNativeBackend();
const reference = new ReferenceBackend();
const addon = loadNativeAddon();
// the paths of this build's CPU family, best first, and how the addon lists them in messages
const ALL_ISAS: NativeIsa[] = process.arch === 'arm64' ? ['neon'] : ['avx512', 'avx2', 'sse2'];
const ISA_CHOICES = process.arch === 'arm64' ? 'neon' : 'avx512, avx2 or sse2';
const ISAS = ALL_ISAS.filter((isa) => addon.cpuSupports(isa));
const defaultIsa = native.info().isa as NativeIsa;

describe('native backend loads', () => {
  it('reports the best ISA of this CPU and its threads', () => {
    const info = native.info();
    expect(info.isa).toBe(process.env.RNNKIT_NATIVE_ISA || ISAS[0]);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(ISAS).toContain(ALL_ISAS.at(-1)); // the baseline path runs on every CPU of the family
  });
});

describe.each(ISAS)('native %s kernels vs reference', (isa) => {
  beforeAll(() => native.setIsa(isa));
  afterAll(() => native.setIsa(defaultIsa));

  it('gemm: all transposes, odd sizes, leading dims, alpha/beta', () => {
    const r = rng(7);
    const shapes = [[1, 1, 1], [3, 5, 7], [13, 33, 17], [29, 70, 41], [6, 1, 40], [1, 50, 9], [40, 17, 0]];
    for (const [M, N, K] of shapes) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          for (const [alpha, beta] of [[1, 0], [0.5, 1], [-1.25, 0.75]]) {
            const lda = (tA ? M : K) + (M % 3), ldb = (tB ? K : N) + (N % 2), ldc = N + 2;
            const A = randArray(r, Math.max(1, (tA ? K : M) * lda));
            const B = randArray(r, Math.max(1, (tB ? N : K) * ldb));
            const C = randArray(r, M * ldc);
            if (beta === 0) C.fill(NaN); // beta = 0 must ignore C's contents
            const C2 = C.slice();
            native.gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            reference.gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
            const fix = (c: Float32Array) => c.map((v) => (Number.isNaN(v) ? -7 : v)); // padding columns
            expectClose(`gemm ${M}x${N}x${K} tA=${tA} tB=${tB} a=${alpha} b=${beta}`, fix(C), fix(C2), 1e-5);
          }
        }
      }
    }
  });

  it('gemm: blocks larger than the cache blocks match the naive C++ kernel', () => {
    const r = rng(8);
    for (const [M, N, K, tA, tB] of [[203, 97, 301, false, true], [70, 261, 520, true, false], [33, 515, 260, true, true]] as const) {
      const lda = tA ? M : K, ldb = tB ? K : N;
      const A = randArray(r, M * K), B = randArray(r, K * N), C = randArray(r, M * N), C2 = C.slice();
      native.gemm(tA, tB, M, N, K, 0.9, A, lda, B, ldb, 0.5, C, N);
      addon.gemmNaive(tA, tB, M, N, K, 0.9, A, lda, B, ldb, 0.5, C2, N);
      expectClose(`gemm ${M}x${N}x${K}`, C, C2, 1e-5);
    }
  });

  it('gemm with few rows over a large op(B) (packed in column chunks): the rows of a taller product, bitwise', () => {
    // 12 rows x K 300 over N 2000 columns packs op(B) chunk by chunk; 900 rows (a larger op(A))
    // pack it whole: the first 12 rows (whole register tiles) must agree bit for bit
    const r = rng(14);
    const [M, Mbig, N, K] = [12, 900, 2000, 300];
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        const Abig = randArray(r, Mbig * K), B = randArray(r, K * N);
        // op(A) of the 12-row product: the first 12 rows of the tall one
        const A = tA ? Float32Array.from({ length: K * M }, (_, i) => Abig[Math.floor(i / M) * Mbig + (i % M)]) : Abig.slice(0, M * K);
        const ldb = tB ? K : N;
        const C = new Float32Array(M * N), Cbig = new Float32Array(Mbig * N), want = new Float32Array(M * N);
        native.gemm(tA, tB, M, N, K, 0.75, A, tA ? M : K, B, ldb, 0, C, N);
        native.gemm(tA, tB, Mbig, N, K, 0.75, Abig, tA ? Mbig : K, B, ldb, 0, Cbig, N);
        expect(Buffer.from(C.buffer).equals(Buffer.from(Cbig.buffer, 0, M * N * 4)), `tA=${tA} tB=${tB}`).toBe(true);
        addon.gemmNaive(tA, tB, M, N, K, 0.75, A, tA ? M : K, B, ldb, 0, want, N);
        expectClose(`gemm ${M}x${N}x${K} tA=${tA} tB=${tB}`, C, want, 1e-5);
      }
    }
  });

  it("gemm: a row's bits do not depend on its register tile (rows r0.. r0+M alone = those rows of a 160-row product)", () => {
    // the batch of a sequence splits over threads at any row (B 32: 16 + 16), so a row must get
    // the same sums in a tile of any height, at any offset; M up to gemvRows takes the GEMV path;
    // 145 and 146 rows leave 1 and 2 rows past the first block of rows (MC 144 on avx2)
    const r = rng(16);
    const Mbig = 160, K = 1100; // K over one k-block (KC: 256 floats, 1024 on avx2)
    const g = addon.info().gemvRows;
    for (const N of [40, 200]) { // op(A) read in place (3 column panels) or packed
      for (const tA of [false, true]) {
        const Abig = randArray(r, Mbig * K), B = randArray(r, N * K);
        const Cbig = new Float32Array(Mbig * N);
        native.gemm(tA, true, Mbig, N, K, 1, Abig, tA ? Mbig : K, B, K, 0, Cbig, N);
        for (const [r0, M] of [[0, g + 1], [0, 7], [0, 8], [0, 13], [0, 14], [0, 16], [16, 16], [10, 11], [21, 11], [5, 20], [3, 45], [0, 145], [7, 146]]) {
          // op(A) rows [r0, r0 + M): the same layout (row-major or transposed) as the tall one
          const A = tA ? Float32Array.from({ length: K * M }, (_, i) => Abig[Math.floor(i / M) * Mbig + r0 + (i % M)]) : Abig.slice(r0 * K, (r0 + M) * K);
          const C = new Float32Array(M * N);
          native.gemm(tA, true, M, N, K, 1, A, tA ? M : K, B, K, 0, C, N);
          expect(Buffer.from(C.buffer).equals(Buffer.from(Cbig.buffer, r0 * N * 4, M * N * 4)), `N ${N} tA ${tA} rows ${r0}..${r0 + M}`).toBe(true);
        }
      }
    }
  });

  it('gemm with 1..4 rows (the GEMV path up to info().gemvRows): odd sizes, transposes, alpha/beta', () => {
    // 32 vector registers (avx512, neon) hold 4 rows of GEMV accumulators, 16 (avx2, sse2) 2
    expect(addon.info().gemvRows).toBe(isa === 'avx512' || isa === 'neon' ? 4 : 2);
    const r = rng(12);
    for (const M of [1, 2, 3, 4]) {
      for (const [N, K] of [[1, 1], [5, 2], [31, 7], [33, 64], [71, 257], [200, 3], [1030, 19]]) {
        for (const tA of [false, true]) {
          for (const tB of [false, true]) {
            for (const [alpha, beta] of [[1, 0], [0.5, 1], [-1.25, 0.75]]) {
              const lda = (tA ? M : K) + 1, ldb = (tB ? K : N) + (N % 3), ldc = N + 3;
              const A = randArray(r, (tA ? K : M) * lda), B = randArray(r, (tB ? N : K) * ldb);
              const C = randArray(r, M * ldc);
              if (beta === 0) C.fill(NaN); // beta = 0 must ignore C's contents
              const C2 = C.slice();
              native.gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
              addon.gemmNaive(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
              // the padding columns of C (past N) must keep their contents
              const fix = (c: Float32Array) => c.map((v) => (Number.isNaN(v) ? -7 : v));
              expectClose(`gemm ${M}x${N}x${K} tA=${tA} tB=${tB} a=${alpha} b=${beta}`, fix(C), fix(C2), 1e-5);
            }
          }
        }
      }
    }
  });

  it('gemm with a transposed A that is packed (rows of every panel height, k across k-blocks) matches the naive loop', () => {
    const r = rng(15);
    for (const M of [5, 7, 8, 13, 150, 301]) {
      for (const K of [1, 2, 17, 300, 1100]) {
        const N = 40, lda = M + 3; // 3 column panels: op(A) is packed
        const A = randArray(r, K * lda), B = randArray(r, K * N), C = randArray(r, M * N), want = C.slice();
        native.gemm(true, false, M, N, K, 1, A, lda, B, N, 1, C, N);
        addon.gemmNaive(true, false, M, N, K, 1, A, lda, B, N, 1, want, N);
        expectClose(`gemm transA ${M}x${N}x${K}`, C, want, 1e-5);
      }
    }
  });

  it('gemm whose packed B reaches 2 MiB a k-block (the next panel prefetched ahead, by 1, 2 or 4 tiles): matches the naive loop, the same bits for 1, 2 and 3 threads', () => {
    const threads = native.info().threads;
    const r = rng(17);
    try {
      // N 2100, K 300: a k-block of packed B is over 2 MiB whatever the ISA's k-block (256 or 1024);
      // 3, 13 and 40 rows: 1, 3 and 7 register tiles per panel
      const N = 2100, K = 300;
      for (const M of [3, 13, 40]) {
        for (const tA of [false, true]) {
          const A = randArray(r, M * K), B = randArray(r, K * N);
          const run = (t: number) => {
            native.setThreads(t);
            const C = new Float32Array(M * N);
            native.gemm(tA, false, M, N, K, 1, A, tA ? M : K, B, N, 0, C, N);
            return C;
          };
          const one = run(1), two = run(2), three = run(3);
          expect(Buffer.from(one.buffer).equals(Buffer.from(two.buffer)), `${M}x${N}x${K} tA ${tA}: 1 vs 2 threads`).toBe(true);
          expect(Buffer.from(one.buffer).equals(Buffer.from(three.buffer)), `${M}x${N}x${K} tA ${tA}: 1 vs 3 threads`).toBe(true);
          const want = new Float32Array(M * N);
          addon.gemmNaive(tA, false, M, N, K, 1, A, tA ? M : K, B, N, 0, want, N);
          expectClose(`gemm ${M}x${N}x${K} tA ${tA}`, one, want, 1e-5);
        }
      }
    } finally {
      native.setThreads(threads);
    }
  });

  it('gemm with 1..4 rows over large weights: bitwise the same for 1, 2 and 3 threads', () => {
    const threads = native.info().threads;
    const r = rng(13);
    try {
      for (const [M, N, K] of [[1, 1027, 301], [2, 515, 260], [3, 1024, 256], [4, 333, 700]]) {
        const A = randArray(r, M * K), B = randArray(r, N * K);
        const run = (t: number) => {
          native.setThreads(t);
          const C = new Float32Array(M * N);
          native.gemm(false, true, M, N, K, 1, A, K, B, K, 0, C, N);
          return C;
        };
        const one = run(1), two = run(2), three = run(3);
        expect(Buffer.from(one.buffer).equals(Buffer.from(two.buffer)), `${M}x${N}x${K} 1 vs 2 threads`).toBe(true);
        expect(Buffer.from(one.buffer).equals(Buffer.from(three.buffer)), `${M}x${N}x${K} 1 vs 3 threads`).toBe(true);
        const want = new Float32Array(M * N);
        addon.gemmNaive(false, true, M, N, K, 1, A, K, B, K, 0, want, N);
        expectClose(`gemm ${M}x${N}x${K}`, one, want, 1e-5);
      }
    } finally {
      native.setThreads(threads);
    }
  });

  it('gemm split over rows or columns, cross-entropy, Adam and SGD over the threads: bitwise the same for 1, 2 and 3 threads', () => {
    const threads = native.info().threads;
    const r = rng(14);
    const runAt = <T extends Float32Array[]>(t: number, f: () => T): T => {
      native.setThreads(t);
      return f();
    };
    const same = (what: string, f: () => Float32Array[]) => {
      const one = runAt(1, f), two = runAt(2, f), three = runAt(3, f);
      one.forEach((a, i) => {
        expect(Buffer.from(a.buffer).equals(Buffer.from(two[i].buffer)), `${what} output ${i}: 1 vs 2 threads`).toBe(true);
        expect(Buffer.from(a.buffer).equals(Buffer.from(three[i].buffer)), `${what} output ${i}: 1 vs 3 threads`).toBe(true);
      });
      return one;
    };
    try {
      // more rows than columns (rows split), more columns (columns split), and a transposed A
      for (const [tA, M, N, K] of [[false, 1000, 100, 300], [true, 1024, 256, 1100], [false, 70, 1030, 257], [false, 3203, 65, 129]] as const) {
        const A = randArray(r, M * K), B = randArray(r, N * K), C0 = randArray(r, M * N);
        const [got] = same(`gemm ${M}x${N}x${K}${tA ? ' transA' : ''}`, () => {
          const C = C0.slice();
          native.gemm(tA, true, M, N, K, 0.5, A, tA ? M : K, B, K, 1, C, N);
          return [C];
        });
        const want = C0.slice();
        addon.gemmNaive(tA, true, M, N, K, 0.5, A, tA ? M : K, B, K, 1, want, N);
        expectClose(`gemm ${M}x${N}x${K}`, got, want, 1e-4);
      }
      const N = 3001, C = 65;
      const logits = randArray(r, N * C, 8);
      const targets = Int32Array.from({ length: N }, (_, n) => (n % 7 === 3 ? -1 : (n * 31) % C));
      const dLosses = randArray(r, N);
      const ce = same('cross-entropy', () => {
        const probs = new Float32Array(N * C), losses = new Float32Array(N), dLogits = randArray(rng(2), N * C);
        native.crossEntropyForward(N, C, logits, targets, -1, probs, losses);
        native.crossEntropyBackward(N, C, probs, targets, -1, dLosses, dLogits);
        return [probs, losses, dLogits];
      });
      const refProbs = new Float32Array(N * C), refLosses = new Float32Array(N);
      reference.crossEntropyForward(N, C, logits, targets, -1, refProbs, refLosses);
      expect(Buffer.from(ce[0].buffer).equals(Buffer.from(refProbs.buffer)), 'probs as the reference backend').toBe(true);
      expect(Buffer.from(ce[1].buffer).equals(Buffer.from(refLosses.buffer)), 'losses as the reference backend').toBe(true);
      const n = 100_003;
      const p0 = randArray(r, n), g = randArray(r, n), m0 = randArray(r, n, 0.1), v0 = randArray(r, n, 0.1).map(Math.abs);
      for (const decoupled of [false, true]) {
        same(`adam decoupled ${decoupled}`, () => {
          const param = p0.slice(), m = m0.slice(), v = v0.slice();
          native.adamUpdate({ param, grad: g, m, v, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled, step: 3 });
          return [param, m, v];
        });
      }
      same('sgd', () => {
        const param = p0.slice(), buf = m0.slice();
        native.sgdUpdate({ param, grad: g, momentumBuffer: buf, lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0.01, nesterov: true, firstStep: false });
        return [param, buf];
      });
    } finally {
      native.setThreads(threads);
    }
  });

  const cases = seqCases();
  it.each(cases.map((c) => [`${c.cell}${c.act?.kind === "hardSigmoid" ? ` hardSigmoid ${c.act.alpha}` : ""} T${c.T} B${c.B} I${c.I} H${c.H} P${c.P}${c.reverse ? ' reverse' : ''}${c.lengths ? ' lengths' : ''}${c.bias ? '' : ' nobias'}${c.state ? '' : ' nostate'}${c.stride ? ' strided' : ''}`, c] as [string, SeqCase]))(
    'seqForward + seqBackward: %s', async (_name, c) => {
      const got = await runSeq(native, c);
      const want = await runSeq(reference, c);
      compareSeq(`${isa} ${_name}`, got, want);
    });

  // Batch-1 LSTM without projection: each step is one pass over W_hh packed by unit that also
  // forms the gates. H below, at and above the vector width (4, 8, 16 floats) and over several
  // blocks of units; 130 and 200 are large enough to split the pass over the threads.
  it('batch-1 LSTM step (W_hh product and gate math in one pass): odd H vs reference, bitwise over 1-3 threads, inference = training', async () => {
    const threads = native.info().threads;
    let seed = 500;
    try {
      for (const H of [1, 3, 4, 5, 8, 13, 16, 17, 33, 130, 200]) {
        for (const variant of [0, 1, 2]) {
          const c: SeqCase = {
            cell: 'lstm', T: 2 + (H % 5), B: 1, I: 1 + (H % 7), H, P: 0, reverse: variant === 1, lengths: variant === 2,
            bias: variant !== 1, state: variant !== 2, stride: variant === 1, seed: seed++,
            act: variant === 2 ? { kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 } : undefined,
          };
          const name = `${isa} lstm B1 H${H} variant ${variant}`;
          native.setThreads(1);
          const one = await runSeq(native, c);
          compareSeq(name, one, await runSeq(reference, c), H > 100 ? 2e-5 : 1e-5);
          for (const t of [2, 3]) {
            native.setThreads(t);
            expect(bitwiseEqual(one, await runSeq(native, c)), `${name}: 1 vs ${t} threads`).toBe(true);
          }
        }
        // forward only (no saved activations): the outputs of the training forward
        const G = 4 * H, T = 7, I = 5;
        const args = (training: boolean): SeqForwardArgs => ({
          cell: 'lstm', T, B: 1, I, H, P: 0, reverse: false, x: randArray(rng(1), T * I), wIh: randArray(rng(2), G * I, 0.5),
          wHh: randArray(rng(3), G * H, 0.5), bIh: randArray(rng(4), G, 0.5), bHh: randArray(rng(5), G, 0.5), wHr: null,
          h0: randArray(rng(6), H), c0: randArray(rng(7), H), lengths: null, y: new Float32Array(T * H), yStride: H,
          yOffset: 0, hN: new Float32Array(H), cN: new Float32Array(H), training,
        });
        const inf = args(false), tr = args(true);
        native.seqForward(inf);
        native.seqForward(tr);
        expect(Buffer.from(inf.y.buffer).equals(Buffer.from(tr.y.buffer)), `${isa} lstm B1 H${H} inference y`).toBe(true);
        expect(Buffer.from(inf.cN!.buffer).equals(Buffer.from(tr.cN!.buffer)), `${isa} lstm B1 H${H} inference cN`).toBe(true);
        // a sequence shorter than T, reversed: zero rows of y past its end, hN / cN at its last step
        const short = { ...args(false), reverse: true, lengths: Int32Array.from([T - 3]) };
        const want = { ...short, y: new Float32Array(T * H), hN: new Float32Array(H), cN: new Float32Array(H) };
        native.seqForward(short);
        reference.seqForward(want);
        expectClose(`${isa} lstm B1 H${H} length ${T - 3} y`, short.y, want.y, 1e-5);
        expectClose(`${isa} lstm B1 H${H} length ${T - 3} hN`, short.hN, want.hN, 1e-5);
        expectClose(`${isa} lstm B1 H${H} length ${T - 3} cN`, short.cN!, want.cN!, 1e-5);
      }
    } finally {
      native.setThreads(threads);
    }
  }, 60_000);

  it('unary ops forward and backward (accumulating)', () => {
    const r = rng(9);
    for (const op of ['tanh', 'sigmoid', 'relu'] as UnaryOp[]) {
      for (const n of [1, 7, 16, 37, 1000]) {
        const x = randArray(r, n, 12);
        const y = new Float32Array(n), y2 = new Float32Array(n);
        native.unaryForward(op, x, y);
        reference.unaryForward(op, x, y2);
        expectClose(`${op} fwd n=${n}`, y, y2, 1e-6);
        const dy = randArray(r, n), dx = randArray(r, n), dx2 = dx.slice();
        native.unaryBackward(op, x, y2, dy, dx);
        reference.unaryBackward(op, x, y2, dy, dx2);
        expectClose(`${op} bwd n=${n}`, dx, dx2, 1e-6);
      }
    }
  });
});

describe('native stepSplit: a small batch\'s steps split across the threads or on one thread', () => {
  /** fn run with the native pool at n threads, then at the threads it had. */
  const atThreads = async <T,>(n: number, fn: () => T | Promise<T>): Promise<T> => {
    const before = native.info().threads;
    native.setThreads(n);
    try {
      return await fn();
    } finally {
      native.setThreads(before);
    }
  };
  // Addons that record the stepThreads each sequence call was given (undefined: the pool's).
  const spied = () => {
    const seen: Array<number | undefined> = [];
    const spy: NativeAddon = Object.create(addon);
    const record = <A extends { stepThreads?: number }>(a: A) => (seen.push(a.stepThreads), a);
    spy.seqForward = (a) => addon.seqForward(record(a));
    spy.seqBackward = (h, f, a) => addon.seqBackward(h, f, record(a));
    spy.seqForwardAsync = (a) => addon.seqForwardAsync(record(a));
    spy.seqBackwardAsync = (h, f, a) => addon.seqBackwardAsync(h, f, record(a));
    return { spy, seen };
  };
  // the calls whose steps split one by one: batch-1 LSTM (one pass over W_hh per step), GRU, the
  // reset-before GRU (its late gates' product too), RNN and an LSTM with projection at batch 1-2
  const stepCases: SeqCase[] = [
    { cell: 'lstm', T: 9, B: 1, I: 7, H: 256, P: 0, reverse: false, lengths: false, bias: true, state: true, stride: false, seed: 81 },
    { cell: 'gru', T: 8, B: 2, I: 5, H: 160, P: 0, reverse: true, lengths: true, bias: true, state: true, stride: true, seed: 82 },
    { cell: 'gru_reset_before', T: 6, B: 1, I: 9, H: 200, P: 0, reverse: false, lengths: false, bias: false, state: true, stride: false, seed: 83 },
    { cell: 'rnn_tanh', T: 7, B: 1, I: 4, H: 300, P: 0, reverse: false, lengths: false, bias: true, state: false, stride: false, seed: 84 },
    { cell: 'lstm', T: 5, B: 2, I: 6, H: 260, P: 130, reverse: false, lengths: true, bias: true, state: true, stride: false, seed: 85 },
  ];

  it('options.stepSplit is checked', () => {
    expect(() => loadNativeBackend({ stepSplit: 'never' as 'auto' })).toThrow(
      new RangeError("loadNativeBackend: options.stepSplit must be 'auto' or 'always', received never"));
    expect(loadNativeBackend({ stepSplit: 'always' }).stepSplitChoices()).toEqual([]);
  });

  it('the addon says which calls split their steps one by one, at the threads in use, and checks stepThreads', () => atThreads(2, () => {
    const gemv = addon.info().gemvRows > 0;
    expect(addon.stepSplitThreads('lstm', 1, 256, 0, false)).toBe(gemv ? 2 : 1);
    expect(addon.stepSplitThreads('lstm', 1, 256, 0, true)).toBe(gemv ? 2 : 1); // backward: dG @ W_hh on the GEMV path
    expect(addon.stepSplitThreads('gru', 2, 160, 0, false)).toBe(gemv ? 2 : 1);
    expect(addon.stepSplitThreads('lstm', 1, 64, 0, false)).toBe(1); // a step too small to split
    expect(addon.stepSplitThreads('lstm', 64, 256, 0, false)).toBe(1); // a batch: GEMM steps or parts of it
    native.setThreads(1);
    expect(addon.stepSplitThreads('lstm', 1, 256, 0, false)).toBe(1);
    expect(() => addon.stepSplitThreads('lstm', 1, 256, 300, false)).toThrow(
      'native.stepSplitThreads: projection size P must be 0, or smaller than H for LSTM, received 300');
    expect(() => addon.stepSplitThreads('lstm', 0, 256, 0, false)).toThrow('native.stepSplitThreads: B must be an integer in [1, 2147483647], received 0');
    const G = 4 * 8;
    const args = {
      cell: 'lstm', T: 2, B: 1, I: 3, H: 8, P: 0, reverse: false, x: new Float32Array(6), wIh: new Float32Array(G * 3),
      wHh: new Float32Array(G * 8), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null, y: new Float32Array(16),
      yStride: 8, yOffset: 0, hN: new Float32Array(8), cN: null, training: false,
    } as SeqForwardArgs;
    expect(() => addon.seqForward({ ...args, stepThreads: -1 })).toThrow(
      'native.seqForward(lstm): stepThreads must be an integer in [0, 256], received -1');
    expect(() => addon.seqForward({ ...args, stepThreads: 'one' as unknown as number })).toThrow('native.seqForward(lstm): stepThreads must be a number');
  }));

  it('outputs and gradients are bitwise the same split and on one thread at 2 threads (sync and async), as the chooser picks; info().detail says the choice', () => atThreads(2, async () => {
    for (const c of stepCases) {
      const name = `${c.cell} B${c.B} H${c.H}${c.P ? ` P${c.P}` : ''}`;
      const t = addon.stepSplitThreads(c.cell, c.B, c.H, c.P, false);
      const tb = addon.stepSplitThreads(c.cell, c.B, c.H, c.P, true);
      if (addon.info().gemvRows > 0) expect(Math.min(t, tb), `${name}: its steps split`).toBe(2);
      const shapes = [stepSplitShape(c.cell, c.B, c.H, t, 'training'), stepSplitShape(c.cell, c.B, c.H, tb, 'backward')];
      // one backend each way, decided by fed observations (3 calls of 64 steps each way, one thread faster or slower)
      const make = (oneFaster: boolean) => {
        const { spy, seen } = spied();
        const b = new NativeBackend(spy);
        for (const shape of shapes) {
          for (let i = 0; i < STEP_SPLIT_CALLS; i++) {
            b.stepSplit.observe(shape, true, oneFaster ? 3 : 1, 64);
            b.stepSplit.observe(shape, false, 2, 64);
          }
        }
        return { b, seen };
      };
      const split = make(false), one = make(true), always = (() => {
        const { spy, seen } = spied();
        return { b: new NativeBackend(spy, { stepSplit: 'always' }), seen };
      })();
      for (const mode of ['sync', 'async'] as const) {
        const want = await runSeq(split.b, c, mode);
        expect(bitwiseEqual(want, await runSeq(one.b, c, mode)), `${name} ${mode}: split vs one thread`).toBe(true);
        expect(bitwiseEqual(want, await runSeq(always.b, c, mode)), `${name} ${mode}: split vs always`).toBe(true);
      }
      // each forward and backward call: one thread only where the chooser said so
      expect(one.seen, `${name}: one thread`).toEqual([t > 1 ? 1 : undefined, tb > 1 ? 1 : undefined, t > 1 ? 1 : undefined, tb > 1 ? 1 : undefined]);
      expect(split.seen, `${name}: split`).toEqual([undefined, undefined, undefined, undefined]);
      expect(always.seen, `${name}: always`).toEqual([undefined, undefined, undefined, undefined]);
      if (t > 1) {
        expect(one.b.info().detail, name).toContain(`; ${shapes[0]}: steps on one thread (split 46.9 us/step, one thread 31.3 us/step)`);
        expect(split.b.info().detail, name).toContain(`; ${shapes[0]}: steps split (split 15.6 us/step, one thread 31.3 us/step)`);
        expect(always.b.info().detail, name).toMatch(/; small-batch steps always split$/);
      }
    }
  }), 60_000);

  it('a backend times the calls of a shape both ways, then keeps the faster', () => atThreads(2, async () => {
    const b = loadNativeBackend();
    const m = new LSTM({ inputSize: 8, hiddenSize: 256, rng: new Rng(7) });
    const x = new Tensor(new Float32Array(64 * 8).fill(0.25), [64, 1, 8]);
    const previous = getBackend();
    setBackend(b);
    try { // calls split and on one thread, in turn (every other one async), then the faster kept
      for (let i = 0; i < 2 * STEP_SPLIT_CALLS + 1; i++) {
        if (i % 2) await noGradAsync(() => m.forwardAsync(x));
        else noGrad(() => m.forward(x));
      }
    } finally {
      setBackend(previous);
    }
    const choices = b.stepSplitChoices();
    if (addon.info().gemvRows === 0) {
      expect(choices).toEqual([]); // no GEMV kernels (bf16 tables): no step splits one by one
      return;
    }
    expect(choices.map((c) => c.shape)).toEqual([stepSplitShape('lstm', 1, 256, 2, 'forward')]);
    expect(typeof choices[0].split).toBe('boolean'); // STEP_SPLIT_CALLS calls each way, then the faster kept
    expect(choices[0].splitUsPerStep).toBeGreaterThan(0);
    expect(choices[0].oneUsPerStep).toBeGreaterThan(0);
    expect(b.info().detail).toMatch(/; lstm B 1, H 256, 2 threads: steps (split|on one thread) \(split [\d.]+ us\/step, one thread [\d.]+ us\/step\)$/);
  }));
});

describe('native non-ISA kernels vs reference', () => {
  it('cross-entropy forward/backward with ignoreIndex', () => {
    const r = rng(10);
    const N = 13, C = 7;
    const logits = randArray(r, N * C, 5);
    const targets = Int32Array.from({ length: N }, (_, i) => (i % 5 === 0 ? -100 : Math.floor(r() * C)));
    const p = new Float32Array(N * C), l = new Float32Array(N), p2 = p.slice(), l2 = l.slice();
    native.crossEntropyForward(N, C, logits, targets, -100, p, l);
    reference.crossEntropyForward(N, C, logits, targets, -100, p2, l2);
    expectClose('probs', p, p2, 1e-6);
    expectClose('losses', l, l2, 1e-6);
    const dl = randArray(r, N), d = randArray(r, N * C), d2 = d.slice();
    native.crossEntropyBackward(N, C, p2, targets, -100, dl, d);
    reference.crossEntropyBackward(N, C, p2, targets, -100, dl, d2);
    expectClose('dLogits', d, d2, 1e-6);
  });

  it('sumSquares, adam, adamw, sgd', () => {
    const r = rng(11);
    const x = randArray(r, 1001);
    expect(native.sumSquares(x)).toBeCloseTo(reference.sumSquares(x), 9);
    for (const decoupled of [false, true]) {
      const param = randArray(r, 77), grad = randArray(r, 77), m = randArray(r, 77, 0.1), v = randArray(r, 77, 0.1).map(Math.abs);
      const a = { param: param.slice(), grad, m: m.slice(), v: v.slice(), lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, decoupled, step: 3 };
      const b = { ...a, param: param.slice(), m: m.slice(), v: v.slice() };
      native.adamUpdate(a);
      reference.adamUpdate(b);
      expectClose('adam param', a.param, b.param, 1e-6);
      expectClose('adam m', a.m, b.m, 1e-6);
      expectClose('adam v', a.v, b.v, 1e-6);
    }
    for (const [momentum, nesterov, firstStep] of [[0, false, false], [0.9, false, true], [0.9, true, false]] as const) {
      const param = randArray(r, 50), grad = randArray(r, 50), buf = randArray(r, 50);
      const a = { param: param.slice(), grad, momentumBuffer: buf.slice(), lr: 0.1, momentum, dampening: nesterov ? 0 : 0.1, weightDecay: 0.01, nesterov, firstStep }; // nesterov: dampening 0 (PyTorch)
      const b = { ...a, param: param.slice(), momentumBuffer: buf.slice() };
      native.sgdUpdate(a);
      reference.sgdUpdate(b);
      expectClose('sgd param', a.param, b.param, 1e-6);
      expectClose('sgd buf', a.momentumBuffer, b.momentumBuffer, 1e-6);
    }
  });
});

describe('native threads and async', () => {
  const big: SeqCase = { cell: 'lstm', T: 9, B: 37, I: 45, H: 70, P: 0, reverse: true, lengths: true, bias: true, state: true, stride: true, seed: 99 };
  const gru: SeqCase = { ...big, cell: 'gru', reverse: false, seed: 98 };
  const proj: SeqCase = { ...big, P: 21, seed: 97 };
  // batch 1 and a batch whose rows end one by one: the per-step products take the GEMV path
  // (with weights large enough to be split over the threads)
  const stream: SeqCase = { cell: 'lstm', T: 6, B: 1, I: 9, H: 130, P: 0, reverse: false, lengths: false, bias: true, state: true, stride: false, seed: 96 };
  const shrink: SeqCase = { ...big, cell: 'gru', B: 5, H: 150, seed: 95 };
  // batches split into even parts, one per thread, each running every step alone (2 and 3 parts
  // of 48 rows: 24 + 24, 16 x 3; of 32 rows: 16 + 16, 10 + 11 + 11, parts that do not start at a
  // register tile; variable lengths leave the last steps to the first part)
  const parts: SeqCase = { ...big, B: 48, H: 40, P: 0, seed: 94 };
  const partsGru: SeqCase = { ...big, cell: 'gru', B: 48, H: 40, reverse: false, seed: 93 };
  const partsProj: SeqCase = { ...big, B: 48, H: 40, P: 13, state: false, seed: 92 };
  const partsRnn: SeqCase = { ...big, cell: 'rnn_tanh', B: 48, H: 72, seed: 91 };
  const parts32: SeqCase[] = [
    { ...big, B: 32, H: 40, seed: 90 },
    { ...big, B: 32, H: 40, reverse: false, lengths: false, seed: 89 },
    { ...big, cell: 'gru', B: 32, H: 40, seed: 88 },
    { ...big, cell: 'gru_reset_before', B: 32, H: 40, reverse: false, seed: 87 },
    { ...big, cell: 'rnn_tanh', B: 32, H: 72, seed: 86 },
    { ...big, B: 32, H: 40, P: 13, seed: 85 },
  ];

  it('results are bitwise identical for 1, 2 and 3 threads (batches 1, 5, 32, 37, 48)', async () => {
    const threads = native.info().threads;
    try {
      for (const c of [big, gru, proj, stream, shrink, parts, partsGru, partsProj, partsRnn, ...parts32]) {
        native.setThreads(1);
        const one = await runSeq(native, c);
        native.setThreads(2);
        const two = await runSeq(native, c);
        native.setThreads(3);
        const three = await runSeq(native, c);
        expect(bitwiseEqual(one, two), `${c.cell} B${c.B} P${c.P} 1 vs 2 threads`).toBe(true);
        expect(bitwiseEqual(one, three), `${c.cell} B${c.B} P${c.P} 1 vs 3 threads`).toBe(true);
        compareSeq(`${c.cell} B${c.B}`, one, await runSeq(reference, c));
      }
    } finally {
      native.setThreads(threads);
    }
  });

  it('large workspaces recycled between calls (garbage contents) give the same results', async () => {
    // > 1 MiB blocks go through the native buffer cache: the second and third runs get the first
    // run's freed (non-zero) memory, so any read of a never-written row would show up here
    const cases: SeqCase[] = [
      { cell: 'lstm', T: 8, B: 40, I: 50, H: 300, P: 0, reverse: true, lengths: true, bias: true, state: true, stride: true, seed: 31 },
      { cell: 'gru', T: 8, B: 40, I: 50, H: 300, P: 0, reverse: false, lengths: true, bias: true, state: false, stride: false, seed: 32 },
      { cell: 'lstm', T: 8, B: 40, I: 50, H: 300, P: 40, reverse: false, lengths: true, bias: false, state: true, stride: true, seed: 33 },
    ];
    for (const c of cases) {
      const first = await runSeq(native, c);
      // H = 300 with weights of scale 0.5 (not 1/sqrt(H)) gives pre-activations of ~10: float32
      // dot products of 350 terms then differ from the float64 reference by a little over 1e-5
      compareSeq(`${c.cell} P${c.P}`, first, await runSeq(reference, c), 5e-5, 2e-4);
      for (const other of cases) await runSeq(native, other);
      expect(bitwiseEqual(first, await runSeq(native, c)), `${c.cell} P${c.P} rerun`).toBe(true);
    }
  }, 60_000);

  it('seqForwardAsync / seqBackwardAsync give the sync results and keep the event loop free', async () => {
    const sync = await runSeq(native, big, 'sync');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const [a, b] = await Promise.all([runSeq(native, big, 'async'), runSeq(native, proj, 'async')]);
    clearInterval(timer);
    expect(bitwiseEqual(sync, a)).toBe(true);
    compareSeq('async proj', b, await runSeq(reference, proj));
    expect(ticks).toBeGreaterThanOrEqual(0);
    // the weights as the addon's copies (forward and backward jobs share them): the same bits
    expect(bitwiseEqual(sync, await runSeq(native, big, 'async copies'))).toBe(true);
    expect(bitwiseEqual(await runSeq(native, proj, 'sync'), await runSeq(native, proj, 'async copies'))).toBe(true);
  });

  // The two directions of a bidirectional layer as one paired call (x, y and dx shared, y split
  // by columns): bitwise the results of the calls in turn, at every thread count, sync and async.
  function pairedLayer(cell: CellKind, P: number, lengths: boolean, seed: number) {
    const r = rng(seed);
    const T = 9, B = 37, I = 45, H = 70;
    const G = gateCount(cell) * H, R = P > 0 ? P : H, withC = hasCellState(cell);
    const lens = lengths ? Int32Array.from({ length: B }, (_, b) => (b === 3 ? T : 1 + Math.floor(r() * T))) : null;
    const x = randArray(r, T * B * I), y = randArray(r, T * B * 2 * R, 9), dx = randArray(r, T * B * I);
    const dy = randArray(r, T * B * 2 * R);
    const call = (d: number): SeqForwardArgs => ({
      cell, T, B, I, H, P, reverse: d === 1, x, wIh: randArray(r, G * I, 0.5), wHh: randArray(r, G * R, 0.5),
      bIh: randArray(r, G, 0.5), bHh: randArray(r, G, 0.5), wHr: P > 0 ? randArray(r, P * H, 0.5) : null,
      h0: randArray(r, B * R), c0: withC ? randArray(r, B * H) : null, lengths: lens, y, yStride: 2 * R, yOffset: d * R,
      hN: new Float32Array(B * R), cN: withC ? new Float32Array(B * H) : null, training: true,
    });
    const grads = (d: number): Omit<SeqBackwardArgs, 'ctx'> => ({
      dy, dyStride: 2 * R, dyOffset: d * R, dhN: randArray(r, B * R), dcN: withC ? randArray(r, B * H) : null, dx,
      dh0: new Float32Array(B * R), dc0: withC ? new Float32Array(B * H) : null, dWIh: new Float32Array(G * I),
      dWHh: new Float32Array(G * R), dBIh: new Float32Array(G), dBHh: new Float32Array(G), dWHr: P > 0 ? new Float32Array(P * H) : null,
    });
    return { f: [call(0), call(1)], b: [grads(0), grads(1)] };
  }
  const outputsOf = (l: ReturnType<typeof pairedLayer>) => Buffer.concat([
    l.f[0].y, l.b[0].dx!, ...[0, 1].flatMap((d) => [l.f[d].hN, l.f[d].cN, l.b[d].dh0, l.b[d].dc0, l.b[d].dWIh, l.b[d].dWHh, l.b[d].dBIh, l.b[d].dBHh, l.b[d].dWHr]),
  ].filter((a): a is Float32Array => !!a).map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
  async function runLayer(be: Backend, l: ReturnType<typeof pairedLayer>, how: 'in turn' | 'paired' | 'paired async') {
    if (how === 'in turn') {
      const ctx = l.f.map((f) => be.seqForward(f)!);
      l.b.forEach((b, d) => be.seqBackward({ ...b, ctx: ctx[d] }));
    } else if (how === 'paired') {
      const ctx = be.seqForward({ ...l.f[0], paired: l.f[1] })!;
      be.seqBackward({ ...l.b[0], ctx, paired: l.b[1] });
    } else {
      const ctx = (await be.seqForwardAsync!({ ...l.f[0], paired: l.f[1] }))!;
      await be.seqBackwardAsync!({ ...l.b[0], ctx, paired: l.b[1] });
    }
    return outputsOf(l);
  }

  it('paired calls (both directions of a layer): bitwise the calls in turn at 1 to 4 threads, sync and async; reference too', async () => {
    const threads = native.info().threads;
    try {
      for (const [cell, P, lengths, seed] of [['lstm', 0, true, 1], ['gru', 0, false, 2], ['lstm', 23, false, 3], ['gru_reset_before', 0, true, 4], ['rnn_tanh', 0, true, 5]] as const) {
        native.setThreads(1);
        const want = await runLayer(native, pairedLayer(cell, P, lengths, seed), 'in turn');
        for (const n of [1, 2, 3, 4]) {
          native.setThreads(n);
          for (const how of ['in turn', 'paired', 'paired async'] as const) {
            expect((await runLayer(native, pairedLayer(cell, P, lengths, seed), how)).equals(want), `${cell} P${P} ${how} at ${n} threads`).toBe(true);
          }
        }
        const ref = await runLayer(reference, pairedLayer(cell, P, lengths, seed), 'in turn');
        expect((await runLayer(reference, pairedLayer(cell, P, lengths, seed), 'paired')).equals(ref), `${cell} reference paired`).toBe(true);
      }
    } finally {
      native.setThreads(threads);
    }
  }, 60_000);

  it('paired calls where one writes what the other reads or writes run in turn (the same results)', async () => {
    const threads = native.info().threads;
    try {
      native.setThreads(2);
      // the second call reads the first call's y as its x; both write one hN; both add to one dWIh
      const make = () => {
        const l = pairedLayer('lstm', 0, false, 7);
        const f1 = { ...l.f[1], I: 2 * 70, x: l.f[0].y, wIh: randArray(rng(8), 4 * 70 * 140, 0.5), hN: l.f[0].hN, y: new Float32Array(9 * 37 * 70), yStride: 70, yOffset: 0, reverse: false };
        const b1 = { ...l.b[1], dx: null, dWIh: new Float32Array(4 * 70 * 140) };
        const b0 = { ...l.b[0], dWHh: b1.dWHh };
        return { f: [l.f[0], f1], b: [b0, b1] };
      };
      const outs = (l: ReturnType<typeof make>) => [l.f[0].y, l.f[1].y, l.f[0].hN, l.b[0].dx, l.b[0].dWHh, l.b[1].dWIh, l.b[0].dWIh];
      const a = make(), b = make();
      a.f.forEach((f, d) => a.b[d] = { ...a.b[d], ctx: native.seqForward(f)! } as typeof a.b[0]);
      a.b.forEach((g) => native.seqBackward(g as SeqBackwardArgs));
      const ctx = native.seqForward({ ...b.f[0], paired: b.f[1] })!;
      native.seqBackward({ ...b.b[0], ctx, paired: b.b[1] });
      outs(a).forEach((v, i) => expect(Buffer.from(v!.buffer).equals(Buffer.from(outs(b)[i]!.buffer)), `output ${i}`).toBe(true));
    } finally {
      native.setThreads(threads);
    }
  });

  it('the layers make a paired call for a bidirectional layer only on a backend with pairedCalls, with the same results', () => {
    const run = (be: Backend) => {
      const calls: string[] = [];
      const spy: Backend = Object.assign(Object.create(be) as Backend, {
        seqForward: (a: SeqForwardArgs) => (calls.push(a.paired ? 'paired' : 'one'), be.seqForward(a)),
        seqBackward: (a: SeqBackwardArgs) => (calls.push(a.paired ? 'paired' : 'one'), be.seqBackward(a)),
      });
      const lstm = new LSTM({ inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, rng: new Rng(3) });
      const x = new Tensor(Float32Array.from({ length: 5 * 2 * 3 }, (_, i) => Math.sin(i)), [5, 2, 3]);
      const out = withBackend(spy, () => {
        const { output } = lstm.forward(x);
        sum(output).backward();
        return [output.data, ...lstm.parameters().map((p) => p.grad!)];
      });
      return { calls, out: Buffer.concat(out.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))) };
    };
    const paired = run(native);
    expect(paired.calls).toEqual(['paired', 'paired', 'paired', 'paired']);
    const plain = Object.assign(Object.create(native) as Backend, { pairedCalls: undefined });
    const inTurn = run(plain);
    expect(inTurn.calls).toEqual(['one', 'one', 'one', 'one', 'one', 'one', 'one', 'one']);
    expect(inTurn.out.equals(paired.out)).toBe(true);
  });

  it('paired calls: bad pairs throw clear errors', () => {
    const l = pairedLayer('gru', 0, false, 9);
    expect(() => native.seqForward({ ...l.f[0], paired: { ...l.f[1], training: false } })).toThrow('paired.training (false) must equal training (true)');
    expect(() => native.seqForward({ ...l.f[0], paired: { ...l.f[1], paired: l.f[0] } })).toThrow('paired.paired must be null');
    expect(() => native.seqForward({ ...l.f[0], paired: { ...l.f[1], x: new Float32Array(3) } })).toThrow('native.seqForward paired(gru): x has 3 elements');
    const pair = native.seqForward({ ...l.f[0], paired: l.f[1] })!;
    expect(() => native.seqBackward({ ...l.b[0], ctx: pair })).toThrow('a paired forward call takes a paired backward call');
    const one = native.seqForward(l.f[0])!;
    expect(() => native.seqBackward({ ...l.b[0], ctx: one, paired: l.b[1] })).toThrow('a paired forward call takes a paired backward call');
    expect(() => native.seqBackward({ ...l.b[0], ctx: pair, paired: { ...l.b[1], dWIh: new Float32Array(2) } })).toThrow('native.seqBackward paired(gru): dWIh has 2 elements');
    const a = addon as unknown as Record<string, (...args: unknown[]) => unknown>;
    expect(() => a.seqForward({ ...l.f[0], paired: { ...l.f[1], paired: l.f[0] } })).toThrow('paired.paired must be null');
    expect(() => a.seqForward({ ...l.f[0], paired: 3 })).toThrow('paired must be an object');
    expect(() => a.seqForward({ ...l.f[0], paired: { ...l.f[1], training: false } })).toThrow('paired.training must equal training');
    const h = a.seqForward({ ...l.f[0], paired: l.f[1] });
    expect(() => a.seqBackward(h, l.f[0], l.b[0])).toThrow('a paired forward call takes a paired backward call');
    expect(() => a.seqBackward(h, { ...l.f[0], paired: l.f[1] }, { ...l.b[0], paired: { ...l.b[1], dx: new Float32Array(1) } })).toThrow('dx has 1 elements');
    expect(() => a.seqForwardAsync({ ...l.f[0], paired: l.f[1] })).toThrow('args.paired is not taken here');
  });

  it('inference (training=false) returns null and the same outputs', () => {
    const r = rng(5);
    const T = 6, B = 4, I = 5, H = 9;
    const args = {
      cell: 'lstm' as const, T, B, I, H, P: 0, reverse: true, x: randArray(r, T * B * I), wIh: randArray(r, 4 * H * I),
      wHh: randArray(r, 4 * H * H), bIh: null, bHh: randArray(r, 4 * H), wHr: null, h0: null, c0: null,
      lengths: Int32Array.from([3, 6, 1, 4]), y: new Float32Array(T * B * H), yStride: H, yOffset: 0,
      hN: new Float32Array(B * H), cN: new Float32Array(B * H), training: false,
    };
    const ref = { ...args, y: args.y.slice(), hN: args.hN.slice(), cN: args.cN.slice() };
    expect(native.seqForward(args)).toBeNull();
    reference.seqForward(ref);
    expectClose('y', args.y, ref.y, 1e-5);
    expectClose('hN', args.hN, ref.hN, 1e-5);
    expectClose('cN', args.cN, ref.cN, 1e-5);
  });
});

// A weight copy (copyWeight) keeps what the kernels make of it: the layouts the products read it
// in (W_ih^T for the input projection, W_hh^T for the steps, the fused batch-1 LSTM step's W_hh),
// each made on the first call that needs it (per ISA) and reused by every later call.
describe('native weight copies: packed once per copy and layout', () => {
  const packsMade = () => native.memoryStats().weightPacksMade;
  const sameBits = (p: Float32Array, q: Float32Array) => Buffer.from(p.buffer, p.byteOffset, p.byteLength).equals(Buffer.from(q.buffer, q.byteOffset, q.byteLength));
  afterAll(() => native.setIsa(defaultIsa));

  // the cases: the fused batch-1 LSTM step; a batch whose rows finish at different steps (the
  // products' GEMM and GEMV layouts) with a projection; the late gates of a reset-before GRU
  it('calls with the copies give the bits of calls with the arrays at 1-3 threads on every ISA, and pack each layout once per copy and ISA', () => {
    const threads = native.info().threads;
    const r = rng(900);
    const cases = [
      { cell: 'lstm' as const, T: 9, B: 1, I: 6, H: 130, P: 0, lengths: null },
      { cell: 'lstm' as const, T: 7, B: 5, I: 4, H: 24, P: 11, lengths: Int32Array.from([7, 2, 5, 1, 3]) },
      { cell: 'gru_reset_before' as const, T: 6, B: 3, I: 5, H: 20, P: 0, lengths: Int32Array.from([6, 1, 4]) },
    ];
    try {
      for (const c of cases) {
        const G = gateCount(c.cell) * c.H, R = c.P || c.H;
        const w = {
          wIh: randArray(r, G * c.I, 0.3), wHh: randArray(r, G * R, 0.3), bIh: randArray(r, G, 0.3), bHh: randArray(r, G, 0.3),
          wHr: c.P ? randArray(r, c.P * c.H, 0.3) : null,
        };
        const x = randArray(r, c.T * c.B * c.I), h0 = randArray(r, c.B * R), c0 = hasCellState(c.cell) ? randArray(r, c.B * c.H) : null;
        const copies = [w.wIh, w.wHh, w.bIh, w.bHh, w.wHr].map((v) => v && native.copyWeight(v));
        const run = (withCopies: boolean, reverse: boolean, training = false) => {
          const a: SeqForwardArgs = {
            ...c, reverse, x, ...w, h0, c0, y: new Float32Array(c.T * c.B * R), yStride: R, yOffset: 0,
            hN: new Float32Array(c.B * R), cN: c0 && new Float32Array(c.B * c.H), training,
            weightCopies: withCopies ? copies : undefined,
          };
          native.seqForward(a);
          return Buffer.concat([a.y, a.hN, ...(a.cN ? [a.cN] : [])].map((v) => Buffer.from(v.buffer)));
        };
        for (const isa of ISAS) {
          native.setIsa(isa);
          let before = packsMade();
          for (const t of [1, 2, 3]) {
            native.setThreads(t);
            for (const reverse of [false, true]) {
              const name = `${isa} ${c.cell} B${c.B} ${t} threads reverse ${reverse}`;
              const arrays = run(false, reverse);
              expect(run(true, reverse).equals(arrays), `${name}: copies vs arrays`).toBe(true);
              if (t === 1 && !reverse) {
                expect(packsMade(), `${name}: the first call packs`).toBeGreaterThan(before);
                before = packsMade();
              }
              expect(run(true, reverse).equals(arrays), `${name}: again`).toBe(true);
            }
          }
          expect(packsMade(), `${isa} ${c.cell} B${c.B}: later calls reuse the layouts`).toBe(before);
          // a training forward packs its own (its weights change at the next step): the same bits
          expect(run(true, false, true).equals(run(false, false)), `${isa} ${c.cell} B${c.B}: training`).toBe(true);
          const fresh = [w.wIh, w.wHh, w.bIh, w.bHh, w.wHr].map((v) => v && native.copyWeight(v));
          const trainingPacks = packsMade();
          native.seqForward({ ...c, reverse: false, x, ...w, h0, c0, y: new Float32Array(c.T * c.B * R), yStride: R, yOffset: 0,
            hN: new Float32Array(c.B * R), cN: c0 && new Float32Array(c.B * c.H), training: true, weightCopies: fresh });
          expect(packsMade(), `${isa} ${c.cell} B${c.B}: a training forward keeps no layout`).toBe(trainingPacks);
        }
      }
      expect(native.memoryStats().weightPackBytes).toBeGreaterThan(0);
    } finally {
      native.setThreads(threads);
    }
  }, 60_000);

  it('the layers reuse the packed weights in inference, sync and async, and pack again after a weight changes: never a stale result', async () => {
    await withBackend('native', async () => {
      const r = new Rng(21);
      const lstm = new LSTM({ inputSize: 5, hiddenSize: 40, rng: r });
      const x = new Tensor(Float32Array.from({ length: 12 * 5 }, () => r.normal()), [12, 1, 5]);
      const opt = new SGD(lstm.parameters(), { lr: 0.1 });
      const recorded = () => lstm.forward(x).output.data; // a recorded forward reads the arrays, packs per call
      const before = packsMade();
      const first = noGrad(() => lstm.forward(x)).output.data;
      const perModel = packsMade() - before;
      expect(perModel, 'the first inference packs W_ih and W_hh (one layout each)').toBe(2);
      expect(sameBits(first, recorded())).toBe(true);
      expect(sameBits(noGrad(() => lstm.forward(x)).output.data, first)).toBe(true);
      expect(sameBits((await noGradAsync(() => lstm.forwardAsync(x))).output.data, first)).toBe(true);
      expect(packsMade() - before, 'later inference, sync and async, reuse them').toBe(perModel);
      // a training step changes every weight: the next inference packs the new W_hh
      sum(lstm.forward(x).output).backward();
      opt.step();
      opt.zeroGrad();
      const stepped = noGrad(() => lstm.forward(x)).output.data;
      expect(packsMade() - before, 'changed weights are packed again').toBe(2 * perModel);
      expect(sameBits(stepped, first), 'the output moved with the weights').toBe(false);
      expect(sameBits(stepped, recorded()), 'inference after the step: the bits of the new weights').toBe(true);
      expect(sameBits((await noGradAsync(() => lstm.forwardAsync(x))).output.data, stepped)).toBe(true);
      // a write through the data getter moves the counter too
      const wHh = lstm.weights[0][0].wHh;
      wHh.data[3] += 0.25;
      const written = noGrad(() => lstm.forward(x)).output.data;
      expect(packsMade() - before, 'a written W_hh is packed again, W_ih not').toBe(2 * perModel + 1);
      expect(sameBits(written, stepped)).toBe(false);
      expect(sameBits(written, recorded())).toBe(true);
    });
  }, 60_000);
});

describe('native cell kinds: the addon\'s table is the cell table of src/backends/cells.ts', () => {
  it('names, ids, gate counts, cell state and projection agree', () => {
    expect(addon.cellKinds()).toEqual(CELL_KINDS.map((kind) => ({
      name: kind, id: CELLS[kind].id, gates: gateCount(kind), cState: hasCellState(kind), projection: CELLS[kind].projection,
      gateActivation: CELLS[kind].gateActivation, lateGates: CELLS[kind].lateGates,
    })));
  });

  it.each(CELL_KINDS)('seqForward accepts %s with the table\'s gate count (and refuses one gate row less)', (cell) => {
    const T = 2, B = 2, I = 3, H = 4, G = gateCount(cell) * H;
    const args = {
      cell, T, B, I, H, P: 0, reverse: false, x: new Float32Array(T * B * I), wIh: new Float32Array(G * I),
      wHh: new Float32Array(G * H), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null,
      y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H),
      cN: hasCellState(cell) ? new Float32Array(B * H) : null, training: false,
    };
    expect(addon.seqForward(args)).toBeNull();
    expect(() => addon.seqForward({ ...args, wIh: new Float32Array((G - H) * I) })).toThrow(`wIh has ${(G - H) * I} elements, expected at least ${G * I}`);
  });
});

describe('native bad inputs throw JS errors (no crash)', () => {
  const T = 3, B = 2, I = 4, H = 5;
  const base = () => ({
    cell: 'gru' as const, T, B, I, H, P: 0, reverse: false, x: new Float32Array(T * B * I), wIh: new Float32Array(3 * H * I),
    wHh: new Float32Array(3 * H * H), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null,
    y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: null, training: true,
  });

  it('through the backend: the shared validation messages', () => {
    expect(() => native.seqForward({ ...base(), x: new Float32Array(5) })).toThrow('native.seqForward(gru): x has 5 elements, expected 24 for shape [T=3, B=2, I=4]');
    expect(() => native.seqForward({ ...base(), lengths: Int32Array.from([0, 3]) })).toThrow('lengths[0] = 0 is out of range, expected 1..3');
    expect(() => native.gemm(false, false, 2, 2, 2, 1, new Float32Array(3), 2, new Float32Array(4), 2, 0, new Float32Array(4), 2)).toThrow('native.gemm: A has 3 elements, expected 4');
    const ctx = native.seqForward(base());
    expect(() => native.seqBackward({ ctx: ctx!, dy: new Float32Array(2), dyStride: H, dyOffset: 0, dhN: null, dcN: null, dx: null, dh0: null, dc0: null, dWIh: null, dWHh: null, dBIh: null, dBHh: null, dWHr: null })).toThrow('dy has 2 elements');
    expect(() => native.seqBackward({ ctx: { backend: 'reference' }, dy: null, dyStride: H, dyOffset: 0, dhN: null, dcN: null, dx: null, dh0: null, dc0: null, dWIh: null, dWHh: null, dBIh: null, dBHh: null, dWHr: null })).toThrow("context from backend 'reference'");
  });

  it('straight into the addon: C++ checks every buffer and type', () => {
    const a = addon as unknown as Record<string, (...args: unknown[]) => unknown>;
    expect(() => a.seqForward({ ...base(), x: new Float32Array(5) })).toThrow(RangeError);
    expect(() => a.seqForward({ ...base(), x: new Float32Array(5) })).toThrow('native.seqForward(gru): x has 5 elements, expected at least 24');
    expect(() => a.seqForward({ ...base(), x: new Float64Array(24) })).toThrow('x must be a Float32Array');
    expect(() => a.seqForward({ ...base(), wHh: [1, 2, 3] })).toThrow('wHh must be a Float32Array');
    expect(() => a.seqForward({ ...base(), y: new Float32Array(29) })).toThrow('y has 29 elements');
    expect(() => a.seqForward({ ...base(), yOffset: 1 })).toThrow('y columns do not fit in yStride');
    expect(() => a.seqForward({ ...base(), lengths: Int32Array.from([2, 4]) })).toThrow('lengths[1] = 4 is out of range');
    expect(() => a.seqForward({ ...base(), lengths: new Int32Array(1) })).toThrow('lengths has 1 elements');
    expect(() => a.seqForward({ ...base(), T: 2.5 })).toThrow('T must be an integer');
    expect(() => a.seqForward({ ...base(), cell: 'lstmx' })).toThrow(`cell must be one of ${CELL_KINDS.join(', ')}, received lstmx`);
    expect(() => a.seqForward({ ...base(), cell: 4 })).toThrow(`cell must be a string, one of ${CELL_KINDS.join(', ')}`);
    expect(() => a.seqForward({ ...base(), P: 2 })).toThrow('a projection exists only for LSTM');
    expect(() => a.seqForward({ ...base(), recurrentActivation: 'hard' })).toThrow("recurrentActivation must be { kind: 'sigmoid' } or { kind: 'hardSigmoid', alpha, beta }");
    expect(() => a.seqForward({ ...base(), recurrentActivation: { kind: 'relu6' } })).toThrow("received kind 'relu6'");
    expect(() => a.seqForward({ ...base(), recurrentActivation: { kind: 'hardSigmoid', alpha: NaN, beta: 0.5 } })).toThrow('hardSigmoid alpha must be a positive finite number');
    expect(() => a.seqForward({ ...base(), recurrentActivation: { kind: 'hardSigmoid', alpha: 0.2, beta: '0.5' } })).toThrow('hardSigmoid beta must be a finite number');
    expect(() => a.seqForward({ ...base(), cell: 'rnn_tanh', G: 1, recurrentActivation: { kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 } })).toThrow("recurrentActivation 'hardSigmoid' is only for cells with sigmoid gates");
    expect(() => a.seqForward({ ...base(), T: 1e6, B: 1e6 })).toThrow(RangeError);
    expect(() => a.seqForward(42)).toThrow('args must be an object');
    expect(() => a.seqBackward({}, base(), {})).toThrow('ctx is not a context of native.seqForward');
    const ctx = a.seqForward(base());
    expect(() => a.seqBackward(ctx, { ...base(), T: 2 }, {})).toThrow('do not match');
    const used = a.seqForward(base());
    a.seqBackward(used, base(), {});
    expect(() => a.seqBackward(used, base(), {})).toThrow('already used by a backward pass');
    expect(() => a.seqBackward(ctx, base(), { dy: null, dx: new Float32Array(3) })).toThrow('dx has 3 elements');
    expect(() => a.seqBackward(ctx, base(), { dy: new Float32Array(30), dyStride: H, dyOffset: 1 })).toThrow('dy columns do not fit');
    expect(() => a.gemm(false, false, 2, 2, 2, 1, new Float32Array(4), 2, new Float32Array(4), 2, 0, new Float32Array(3), 2)).toThrow('C has 3 elements');
    expect(() => a.gemm(false, false, 2, 2, 2, 1, new Float32Array(4), 1, new Float32Array(4), 2, 0, new Float32Array(4), 2)).toThrow('lda is smaller');
    expect(() => a.gemm(false, false, 2)).toThrow('expected 13 arguments');
    expect(() => a.unaryForward('tanh', new Float32Array(4), new Float32Array(3))).toThrow('y has 3 elements');
    expect(() => a.unaryForward('exp', new Float32Array(4), new Float32Array(4))).toThrow('op must be tanh, sigmoid or relu');
    expect(() => a.unaryBackward('relu', new Float32Array(2), new Float32Array(0), new Float32Array(4), new Float32Array(4))).toThrow('x has 2 elements');
    expect(() => a.crossEntropyForward(2, 3, new Float32Array(6), Int32Array.from([0, 3]), -100, new Float32Array(6), new Float32Array(2))).toThrow('targets[1] = 3 is not a class id');
    expect(() => a.crossEntropyBackward(2, 3, new Float32Array(6), new Int32Array(1), -100, new Float32Array(2), new Float32Array(6))).toThrow('targets has 1 elements');
    expect(() => a.adamUpdate(new Float32Array(4), new Float32Array(4), new Float32Array(3), new Float32Array(4), 1, 0.9, 0.99, 1e-8, 0, false, 1)).toThrow('m has 3 elements');
    expect(() => a.sgdUpdate(new Float32Array(4), new Float32Array(4), new Float32Array(0), 0.1, 0.9, 0, 0, false, true)).toThrow('momentumBuffer has 0 elements');
    expect(() => a.sumSquares(null)).toThrow('x is required');
    expect(() => a.setIsa('avx9')).toThrow(`isa must be ${ISA_CHOICES}`);
    expect(() => a.setThreads(0)).toThrow(RangeError);
  });
});

describe('ISA selection by RNNKIT_NATIVE_ISA in a fresh process', () => {
  const script = `
    const { createRequire } = require('node:module');
    const addon = require('node-gyp-build')(process.argv[1]);
    const n = 37, A = new Float32Array(n * n).map((_, i) => Math.sin(i)), C = new Float32Array(n * n), C2 = new Float32Array(n * n);
    addon.gemm(false, true, n, n, n, 1, A, n, A, n, 0, C, n);
    addon.gemmNaive(false, true, n, n, n, 1, A, n, A, n, 0, C2, n);
    let err = 0; for (let i = 0; i < C.length; i++) err = Math.max(err, Math.abs(C[i] - C2[i]));
    console.log(JSON.stringify({ isa: addon.info().isa, threads: addon.info().threads, err }));`;
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['-e', script, ROOT], { env: { ...process.env, ...env }, encoding: 'utf8', cwd: ROOT });

  it.each(ISAS)('RNNKIT_NATIVE_ISA=%s selects that path', (isa) => {
    const out = run({ RNNKIT_NATIVE_ISA: isa, RNNKIT_THREADS: '3' });
    expect(out.status, out.stderr).toBe(0);
    const res = JSON.parse(out.stdout.trim());
    expect(res.isa).toBe(isa);
    expect(res.threads).toBe(3);
    expect(res.err).toBeLessThan(1e-4);
  });

  it('an unknown or unsupported ISA makes loading fail with a clear message', () => {
    const out = run({ RNNKIT_NATIVE_ISA: 'avx9' });
    expect(out.status).not.toBe(0);
    expect(out.stderr).toContain(`RNNKIT_NATIVE_ISA must be ${ISA_CHOICES}, received avx9`);
  });
});

// The binary that ships (prebuilds/ after `npm run prebuilds`, else the local build) on older CPU
// models emulated by qemu-user: it must run there and pick the matching kernels.
// Needs Debian's qemu-user (`apt-get install -y qemu-user`); skipped only when qemu is absent.
const QEMU = ['/usr/bin/qemu-x86_64', '/usr/bin/qemu-x86_64-static'].find((p) => existsSync(p));
describe.skipIf(!QEMU || process.arch !== 'x64')(`prebuilt addon under qemu-user on older x86-64 CPU models${process.arch !== 'x64' ? ' (skipped: x86-64 only)' : ''}`, () => {
  const prebuild = join(ROOT, 'prebuilds', 'linux-x64');
  const binary = existsSync(prebuild) && readdirSync(prebuild).find((f) => f.endsWith('.node'))
    ? join(prebuild, readdirSync(prebuild).find((f) => f.endsWith('.node'))!)
    : join(ROOT, 'build', 'Release', 'rnnkit.node');
  const T = 5, B = 3, I = 7, H = 11;
  const r = rng(21);
  const data = {
    x: Array.from(randArray(r, T * B * I)), wIh: Array.from(randArray(r, 4 * H * I)), wHh: Array.from(randArray(r, 4 * H * H)),
    b: Array.from(randArray(r, 4 * H)),
  };
  const script = `
    const addon = require(process.argv[1]);
    const d = JSON.parse(process.argv[2]);
    const F = (a) => Float32Array.from(a);
    const T = ${T}, B = ${B}, I = ${I}, H = ${H};
    const args = { cell: 'lstm', T, B, I, H, P: 0, reverse: true, x: F(d.x), wIh: F(d.wIh), wHh: F(d.wHh), bIh: F(d.b), bHh: null,
      wHr: null, h0: null, c0: null, lengths: Int32Array.from([5, 2, 4]), y: new Float32Array(T * B * H), yStride: H, yOffset: 0,
      hN: new Float32Array(B * H), cN: new Float32Array(B * H), training: true };
    const ctx = addon.seqForward(args);
    const dWHh = new Float32Array(4 * H * H);
    addon.seqBackward(ctx, args, { dy: args.y.slice(), dyStride: H, dyOffset: 0, dWHh });
    console.log(JSON.stringify({ isa: addon.info().isa, y: Array.from(args.y), dWHh: Array.from(dWHh) }));`;
  const host = (isa: NativeIsa) => {
    const res = spawnSync(process.execPath, ['-e', script, binary, JSON.stringify(data)], { encoding: 'utf8', env: { ...process.env, RNNKIT_NATIVE_ISA: isa } });
    expect(res.status, res.stderr).toBe(0);
    return JSON.parse(res.stdout);
  };

  it.each([['Haswell', 'avx2'], ['Nehalem', 'sse2']] as const)('-cpu %s picks %s and computes the same numbers', (cpu, isa) => {
    const env = { ...process.env };
    delete env.RNNKIT_NATIVE_ISA;
    const out = spawnSync(QEMU!, ['-cpu', cpu, process.execPath, '-e', script, binary, JSON.stringify(data)], { encoding: 'utf8', env, timeout: 120_000 });
    expect(out.status, out.stderr).toBe(0);
    const got = JSON.parse(out.stdout.trim().split('\n').pop()!);
    expect(got.isa).toBe(isa);
    const want = host(isa);
    expectClose(`${cpu} y`, got.y, want.y, 1e-6);
    expectClose(`${cpu} dWHh`, got.dWHh, want.dWHh, 1e-6);
  }, 180_000);
});
