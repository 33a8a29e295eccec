// Matmul precision 'medium' on the native backend of an installed package, in plain JavaScript (no
// test runner), for test/arm64.test.ts to run in an emulated arm64 Node, once on a CPU model with
// BF16 and once without. The same checks and tolerances as test/native-bf16.test.ts on x86-64:
// - CPU with bf16: info() says bf16 (BFDOT); the GEMM equals the addon's naive bf16 GEMM (operands
//   rounded to bf16, products and sums in double) within 2e-6 * sqrt(K) and the fp32 one within
//   2e-2 (relative to the largest element); K = 0 and beta = 0 ignore NaN in C; 1 and 2 threads
//   give identical bits; LSTM (with projection), GRU and RNN forward + backward under 'medium'
//   stay within 3e-2 (outputs) and 5e-2 (gradients) of the fp32 reference backend.
// - either CPU: 'highest' after 'medium' gives the bits of before.
// - CPU without bf16: 'medium' computes in fp32: info says fp32, results bit-identical to 'highest'.
//   node bf16-check.mjs <package root>
// Prints one JSON line: { arch, bf16, matmul, detail, passed, failed: [{ name, error }] }.
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = process.argv[2] && resolve(process.argv[2]);
if (!root) throw new Error('usage: node bf16-check.mjs <package root>');
const rk = await import(pathToFileURL(join(root, 'dist/index.js')).href);
const { GRU, LSTM, Linear, RNN, Rng, Tensor, add, crossEntropy, loadBackend, mul, reshape, setMatmulPrecision, sum, withBackend } = rk;

const native = loadBackend('native');
const reference = loadBackend('reference');
const addon = createRequire(join(root, 'package.json'))('node-gyp-build')(root);
const BF16 = addon.cpuSupports('bf16');
native.setMatmulPrecision('medium');
const result = { arch: process.arch, bf16: BF16, matmul: native.info().matmul, detail: native.info().detail, passed: 0, failed: [] };
native.setMatmulPrecision('highest');

function check(name, fn) {
  try {
    fn();
    result.passed++;
  } catch (e) {
    result.failed.push({ name, error: String(e?.message ?? e).split('\n')[0] });
  } finally {
    native.setMatmulPrecision('highest');
    setMatmulPrecision('highest');
  }
}
/** max |a - b| relative to max(1e-3, largest |b|) (test/native-helpers.ts relErr) */
function relErr(a, b) {
  if (a.length !== b.length) return Infinity;
  let scale = 1e-3, worst = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  }
  return worst / scale;
}
function expectClose(what, a, b, tol) {
  const e = relErr(a, b);
  if (!(e <= tol)) throw new Error(`${what}: relative error ${e.toExponential(2)} > ${tol}`);
}
const same = (a, b) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
function filled(n, seed) {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}

/** C = gemm(...) on fresh copies: native (current precision), naive bf16, naive fp32. */
function runGemm([M, N, K, tA, tB, alpha, beta], seed) {
  const lda = (tA ? M : K) + (M % 3), ldb = (tB ? K : N) + (N % 2), ldc = N + 2;
  const A = filled((tA ? K : M) * lda, seed), B = filled((tB ? N : K) * ldb, seed + 1), C = filled(M * ldc, seed + 2);
  const got = C.slice(), bf = C.slice(), fp = C.slice();
  native.gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, got, ldc);
  addon.gemmNaiveBf16(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, bf, ldc);
  addon.gemmNaive(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, fp, ldc);
  return { got, bf, fp };
}
const gname = (c) => `${c[0]}x${c[1]}x${c[2]} tA=${c[3]} tB=${c[4]} a=${c[5]} b=${c[6]}`;

/** Forward + backward of one recurrent layer and a linear head; returns output, hN and every gradient. */
function runSeq(backend, { cell, T, B, I, H, P, seed }) {
  return withBackend(backend, () => {
    const rng = new Rng(seed);
    const opts = { inputSize: I, hiddenSize: H, numLayers: 1, bidirectional: true, rng };
    const model = cell === 'gru' ? new GRU(opts) : cell === 'rnn_tanh' ? new RNN(opts) : new LSTM(P ? { ...opts, projSize: P } : opts);
    const x = new Tensor(Float32Array.from({ length: T * B * I }, () => rng.normal()), [T, B, I], true);
    const lengths = Array.from({ length: B }, (_, b) => T - (b % T));
    const { output, hN } = model.forward(x, { lengths });
    const head = new Linear(output.shape[2], 5, { rng });
    const logits = reshape(head.forward(output), [T * B, 5]);
    const loss = add(crossEntropy(logits, Array.from({ length: T * B }, (_, i) => i % 5)), sum(mul(hN, hN)));
    loss.backward();
    return [['output', output.data], ['hN', hN.data], ['dx', x.grad],
      ...[...model.parameters(), ...head.parameters()].map((p, i) => [`grad ${i}`, p.grad])];
  });
}
const SEQ = [
  { cell: 'lstm', T: 5, B: 11, I: 30, H: 40, P: 0, seed: 99 },
  { cell: 'lstm', T: 5, B: 11, I: 30, H: 40, P: 21, seed: 97 },
  { cell: 'gru', T: 5, B: 11, I: 30, H: 40, P: 0, seed: 98 },
  // a tanh RNN is chaotic over many steps (any perturbation grows): 3 steps, as on x86-64
  { cell: 'rnn_tanh', T: 3, B: 11, I: 30, H: 40, P: 0, seed: 96 },
];
const sname = (c) => `${c.cell} T${c.T} B${c.B} I${c.I} H${c.H} P${c.P}`;

if (BF16) {
  let seed = 100;
  for (const M of [1, 2, 5, 8, 13, 25]) {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
      const N = [1, 7, 12, 13, 31, 70][(M + seed) % 6], K = [1, 3, 17, 64, 515, 1031][(M * 5 + seed) % 6];
      const [alpha, beta] = [[1, 0], [0.5, 1], [-1.25, 0.75]][seed % 3];
      const c = [M, N, K, tA, tB, alpha, beta];
      const s = seed;
      seed += 3;
      check(`bf16 gemm ${gname(c)}`, () => {
        native.setMatmulPrecision('medium');
        const { got, bf, fp } = runGemm(c, s);
        expectClose('vs naive bf16', got, bf, 2e-6 * Math.sqrt(K));
        expectClose('vs naive fp32', got, fp, 2e-2);
      });
    }
  }
  check('bf16 gemm: K = 0 and beta = 0 with NaN in C', () => {
    native.setMatmulPrecision('medium');
    const C = new Float32Array(6).fill(NaN);
    native.gemm(false, false, 2, 3, 0, 1, new Float32Array(1), 1, new Float32Array(1), 3, 0, C, 3);
    if (C.some((v) => v !== 0)) throw new Error(`K = 0: ${[...C]}`);
    const A = filled(10, 4), B = filled(15, 5), D = new Float32Array(6).fill(NaN), E = new Float32Array(6);
    native.gemm(false, false, 2, 3, 5, 1, A, 5, B, 3, 0, D, 3);
    addon.gemmNaiveBf16(false, false, 2, 3, 5, 1, A, 5, B, 3, 0, E, 3);
    expectClose('beta 0 ignores NaN', D, E, 1e-6);
  });
  check('bf16 gemm: identical with 1 and 2 threads', () => {
    const threads = native.info().threads;
    try {
      for (const c of [[130, 200, 260, false, true, 1, 0], [40, 400, 256, false, true, 1, 0], [300, 40, 130, true, false, 0.5, 1]]) {
        native.setMatmulPrecision('medium');
        native.setThreads(1);
        const one = runGemm(c, 5).got;
        native.setThreads(2);
        const two = runGemm(c, 5).got;
        if (!same(one, two)) throw new Error(`${gname(c)} differs`);
      }
    } finally {
      native.setThreads(threads);
    }
  });
  for (const c of SEQ) {
    check(`forward + backward under 'medium' vs reference (fp32): ${sname(c)}`, () => {
      setMatmulPrecision('medium'); // withBackend applies it (the reference backend stays fp32)
      native.setMatmulPrecision('medium');
      if (native.info().matmul !== 'bf16') throw new Error(`matmul is ${native.info().matmul}`);
      const got = runSeq(native, c), want = runSeq(reference, c);
      for (let i = 0; i < got.length; i++) expectClose(got[i][0], got[i][1], want[i][1], i < 2 ? 3e-2 : 5e-2);
    });
  }
}

// both CPUs: 'highest' after 'medium' restores the fp32 bits; without bf16 'medium' is fp32
const g = [37, 70, 129, false, true, 0.5, 1];
const c = SEQ[1];
check("'highest' after 'medium' gives bit-identical results to before", () => {
  const gemm0 = runGemm(g, 9).got, seq0 = runSeq(native, c);
  native.setMatmulPrecision('medium');
  runGemm(g, 9);
  native.setMatmulPrecision('highest');
  if (!same(runGemm(g, 9).got, gemm0)) throw new Error('gemm differs');
  runSeq(native, c).forEach(([n, v], i) => { if (!same(v, seq0[i][1])) throw new Error(`${n} differs`); });
});
if (!BF16) {
  check("'medium' without bf16 computes in fp32: info says fp32, results bit-identical to 'highest'", () => {
    const gemm0 = runGemm(g, 9).got, seq0 = runSeq(native, c);
    setMatmulPrecision('medium'); // withBackend applies it
    native.setMatmulPrecision('medium');
    if (native.info().matmul !== 'fp32' || native.getMatmulPrecision() !== 'medium') throw new Error(JSON.stringify(native.info()));
    if (!same(runGemm(g, 9).got, gemm0)) throw new Error('gemm differs');
    runSeq(native, c).forEach(([n, v], i) => { if (!same(v, seq0[i][1])) throw new Error(`${n} differs`); });
  });
}

console.log(JSON.stringify(result));
