#!/usr/bin/env node
// fp32 vs bf16 GEMM throughput of the native addon (matmul precision 'highest' vs 'medium') on the
// GEMM shapes of the language model of `npm start` (2-layer LSTM, hidden 256, embedding 64, batch 32,
// seq 100): per-step recurrent forward / backward and the all-steps input / weight-gradient GEMMs.
//
//   node bench/bf16-gemm.mjs [--threads 1,2] [--ms 300]
//
// 'medium' runs bf16 only on avx512 CPUs with avx512_bf16; elsewhere both columns are fp32.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const addon = require('node-gyp-build')(join(dirname(fileURLToPath(import.meta.url)), '..'));
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const threads = opt('threads', '1,2').split(',').map(Number);
const ms = Number(opt('ms', '300'));

// [name, M, N, K, transA, transB]: C[M, N] = op(A)[M, K] @ op(B)[K, N]
const shapes = [
  ['fwd step h @ W_hh^T', 32, 1024, 256, false, true],
  ['bwd step dG @ W_hh', 32, 256, 1024, false, false],
  ['input proj, layer 1', 3200, 1024, 64, false, true],
  ['input proj, layer 2', 3200, 1024, 256, false, true],
  ['dW_hh = dG^T @ h', 1024, 256, 3200, true, false],
];

function rand(n) {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.random() * 2 - 1;
  return x;
}

function gflops([, M, N, K, tA, tB]) {
  const A = rand(M * K), B = rand(K * N), C = new Float32Array(M * N);
  const run = () => addon.gemm(tA, tB, M, N, K, 1, A, tA ? M : K, B, tB ? K : N, 0, C, N);
  for (let i = 0; i < 3; i++) run();
  let best = Infinity;
  const end = performance.now() + ms;
  while (performance.now() < end) {  // best of short batches: the least disturbed by other load
    const reps = Math.max(1, Math.ceil(2e7 / (M * N * K)));
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  return (2 * M * N * K) / (best * 1e6);
}

addon.setMatmulPrecision('medium');
const bf16 = addon.info().matmul === 'bf16';
addon.setMatmulPrecision('highest');
console.log(`isa ${addon.info().isa}; 'medium' runs ${bf16 ? 'bf16 (VDPBF16PS)' : 'fp32 (no avx512_bf16 here)'}; best of ${ms} ms per cell`);
console.log('shape                          M     N     K  thr   fp32 GF/s   bf16 GF/s   ratio');
for (const s of shapes) {
  for (const t of threads) {
    addon.setThreads(t);
    addon.setMatmulPrecision('highest');
    const f = gflops(s);
    addon.setMatmulPrecision('medium');
    const b = gflops(s);
    addon.setMatmulPrecision('highest');
    const [name, M, N, K] = s;
    console.log(`${name.padEnd(24)} ${String(M).padStart(7)} ${String(N).padStart(5)} ${String(K).padStart(5)} ${String(t).padStart(4)}` +
      ` ${f.toFixed(1).padStart(11)} ${b.toFixed(1).padStart(11)} ${(b / f).toFixed(2).padStart(7)}`);
  }
}

// The whole GEMM-bound part of one LM training step: forward + backward of both LSTM layers
// (T 100, B 32, embedding 64, hidden 256) through the sequence kernels, where W_hh is packed once
// per call (the per-step GEMMs above repack B on every gemm() call).
const T = 100, B = 32, E = 64, H = 256;
const layer = (I) => ({
  cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: rand(T * B * I), wIh: rand(4 * H * I).map((v) => v / 16),
  wHh: rand(4 * H * H).map((v) => v / 16), bIh: rand(4 * H), bHh: rand(4 * H), wHr: null, h0: null, c0: null,
  lengths: null, y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H),
  cN: new Float32Array(B * H), training: true,
});
const layers = [layer(E), layer(H)];
const dy = rand(T * B * H);
const grads = (I) => ({
  dy, dyStride: H, dyOffset: 0, dhN: null, dcN: null, dx: new Float32Array(T * B * I), dh0: null, dc0: null,
  dWIh: new Float32Array(4 * H * I), dWHh: new Float32Array(4 * H * H), dBIh: new Float32Array(4 * H),
  dBHh: new Float32Array(4 * H), dWHr: null,
});
const lmStep = () => {
  for (const f of layers) addon.seqBackward(addon.seqForward(f), f, grads(f.I));
};
const lmMs = () => {
  for (let i = 0; i < 2; i++) lmStep();
  let best = Infinity;
  const end = performance.now() + Math.max(ms, 1000);
  while (performance.now() < end) {
    const t0 = performance.now();
    lmStep();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
};
console.log('\n2-layer LSTM LM step, seq kernels fwd + bwd (T 100, B 32, E 64, H 256): best ms');
console.log('threads   fp32 ms   bf16 ms   speed-up');
for (const t of threads) {
  addon.setThreads(t);
  addon.setMatmulPrecision('highest');
  const f = lmMs();
  addon.setMatmulPrecision('medium');
  const b = lmMs();
  addon.setMatmulPrecision('highest');
  console.log(`${String(t).padStart(7)} ${f.toFixed(1).padStart(9)} ${b.toFixed(1).padStart(9)} ${(f / b).toFixed(2).padStart(10)}`);
}
