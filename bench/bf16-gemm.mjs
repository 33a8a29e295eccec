#!/usr/bin/env node
// fp32 vs bf16 GEMM throughput of the native addon (matmul precision 'highest' vs 'medium') on the
// GEMM shapes of the issue-5 language model (2-layer LSTM, hidden 256, embedding 64, batch 32,
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
