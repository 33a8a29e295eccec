#!/usr/bin/env node
// SGEMM beside torch.mm: the native addon's gemm on a square product and on the products the
// training workloads of bench/workloads.mjs run (per-step recurrent product, input projection,
// weight and input gradients), in one run, GFLOP/s of each and the ratio to PyTorch.
//
//   node bench/gemm.mjs [--threads N] [--rounds R] [--shapes lstm-l,lstm-m,square]
//                       [--baseline path/to/other/rnnkit.node] [--no-torch]
//
// Rounds alternate rnnkit, the optional baseline build (a second copy of the addon, e.g. an older
// build, loaded into the same process) and PyTorch (one python3 process per round), and every
// figure is the fastest sample over all rounds, so a busy machine disturbs the ratios less. With
// one thread the samples are CPU time of the process (time other processes hold the core does
// not count); with more, wall-clock time.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WORKLOADS, gatesOf } from './workloads.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const threads = Number(opt('threads', '1'));
const rounds = Number(opt('rounds', '3'));
const groups = opt('shapes', 'square,lstm-l,lstm-m').split(',');
const baselinePath = opt('baseline', null);
const withTorch = !argv.includes('--no-torch') && existsSync('/usr/bin/python3');

// ---------------------------------------------------------------- shapes
// [label, transA, transB, M, N, K]
const shapes = [];
for (const g of groups) {
  if (g === 'square') {
    shapes.push(['square 2048', false, false, 2048, 2048, 2048]);
    continue;
  }
  const w = WORKLOADS.find((r) => r.id === g);
  if (!w || w.cell === 'charlm') {
    console.error(`bench/gemm: unknown shape group '${g}'; expected square or a workload id`);
    process.exit(1);
  }
  const TB = w.seq * w.batch, H = w.hidden, I = w.input, G = gatesOf(w.cell) * H, B = w.batch;
  shapes.push(
    [`${g} input proj`, false, true, TB, G, I],  // X @ W_ih^T
    [`${g} step fwd`, false, false, B, G, H],    // h @ W_hh^T (W_hh packed as [H, G])
    [`${g} step bwd`, false, false, B, H, G],    // dG @ W_hh
    [`${g} dW_ih`, true, false, G, I, TB],       // dG^T @ X
    [`${g} dW_hh`, true, false, G, H, TB],       // dG^T @ H
    [`${g} dx`, false, false, TB, I, G],         // dG @ W_ih
  );
}

let seed = 12345;
const randArray = (n) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = seed / 4294967296 - 0.5;
  }
  return a;
};
const data = shapes.map(([, tA, tB, M, N, K]) => ({
  A: randArray(M * K), B: randArray(K * N), C: new Float32Array(M * N),
  lda: tA ? M : K, ldb: tB ? K : N,
}));

// ---------------------------------------------------------------- timing
const cpuClock = threads === 1;
/** ms: the process's CPU time (user + system) with one thread, else wall-clock time */
const clock = cpuClock ? () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
} : () => performance.now();
/** Fastest time (ms) of one call of fn: samples of >= 20 ms of repeated calls. */
function fastest(fn, samples = 5) {
  fn();
  let t0 = clock();
  fn();
  const once = Math.max(clock() - t0, 1e-3);
  const inner = Math.max(1, Math.ceil(20 / once));
  let best = Infinity;
  for (let s = 0; s < samples; s++) {
    t0 = clock();
    for (let i = 0; i < inner; i++) fn();
    best = Math.min(best, (clock() - t0) / inner);
  }
  return best;
}
function timeAddon(addon) {
  addon.setThreads(threads);
  return shapes.map(([, tA, tB, M, N, K], i) => {
    const d = data[i];
    return fastest(() => addon.gemm(tA, tB, M, N, K, 1, d.A, d.lda, d.B, d.ldb, 0, d.C, N));
  });
}
const PY = `
import json, sys, time, torch
torch.set_num_threads(${threads})
clock = time.process_time if ${threads} == 1 else time.perf_counter
out = []
for tA, tB, M, N, K in json.loads(sys.argv[1]):
    a = torch.randn(K, M).t() if tA else torch.randn(M, K)
    b = torch.randn(N, K).t() if tB else torch.randn(K, N)
    f = lambda: torch.mm(a, b)
    f()
    t0 = clock(); f(); once = max(clock() - t0, 1e-6)
    inner = max(1, int(0.02 / once + 0.999))
    best = float('inf')
    for _ in range(5):
        t0 = clock()
        for _ in range(inner): f()
        best = min(best, (clock() - t0) / inner)
    out.append(best * 1e3)
print(json.dumps(out))
`;
function timeTorch() {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  const r = spawnSync('/usr/bin/python3', ['-c', PY, JSON.stringify(shapes.map((s) => s.slice(1)))], { env, encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`bench/gemm: PyTorch run failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`);
    return null;
  }
  return JSON.parse(r.stdout.trim());
}

// ---------------------------------------------------------------- run
const addon = require(join(ROOT, 'build', 'Release', 'rnnkit.node'));
const baseline = baselinePath ? require(resolve(baselinePath)) : null;
const best = { own: shapes.map(() => Infinity), base: shapes.map(() => Infinity), torch: shapes.map(() => Infinity) };
const keep = (k, ts) => ts && ts.forEach((t, i) => { best[k][i] = Math.min(best[k][i], t); });
let torchOk = withTorch;
for (let r = 0; r < rounds; r++) {
  keep('own', timeAddon(addon));
  if (baseline) keep('base', timeAddon(baseline));
  if (torchOk) {
    const t = timeTorch();
    if (!t) torchOk = false;
    keep('torch', t);
  }
}

const gf = (i, ms) => (2 * shapes[i][3] * shapes[i][4] * shapes[i][5]) / ms / 1e6;
const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : '-');
console.log(`SGEMM, ${threads} thread(s), fastest of ${rounds} rounds, ${cpuClock ? 'CPU' : 'wall-clock'} time (GFLOP/s; ratio = rnnkit / other)`);
console.log(`| product | op | M x N x K | rnnkit |${baseline ? ' baseline | ratio baseline |' : ''}${torchOk ? ' torch.mm | ratio torch |' : ''}`);
console.log(`|---|---|---|---|${baseline ? '---|---|' : ''}${torchOk ? '---|---|' : ''}`);
shapes.forEach(([label, tA, tB, M, N, K], i) => {
  const own = gf(i, best.own[i]);
  let row = `| ${label} | ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'} | ${M} x ${N} x ${K} | ${f1(own)} |`;
  if (baseline) row += ` ${f1(gf(i, best.base[i]))} | ${f2(best.base[i] / best.own[i])} |`;
  if (torchOk) row += ` ${f1(gf(i, best.torch[i]))} | ${f2(best.torch[i] / best.own[i])} |`;
  console.log(row);
});
