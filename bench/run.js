#!/usr/bin/env node
// rnnkit benchmark: the workloads of bench/workloads.mjs on an rnnkit backend, with PyTorch
// (Debian's python3-torch), oneDNN's RNN primitives (bench/onednn/rnn_bench.cpp, when oneDNN's
// headers are installed: Debian's libdnnl-dev) and onnxruntime-node in the same run.
//
//   npm run bench -- [--backend native|wasm|reference] [--threads N[,M]] [--workloads ids]
//                    [--json FILE] [--reps N] [--rounds R] [--no-torch] [--no-onednn]
//
// Each workload runs in R rounds (default 3); a round times rnnkit, then PyTorch, oneDNN and
// onnxruntime-node on it, ceil(N / R) runs each after the warm-ups (N default 10), so the peers
// see the same machine; medians and ratios are over the runs of all rounds.
// Kernel-level workloads time backend.seqForward (+ seqBackward with dy = a fixed random G),
// exactly the workload's train step (loss = sum(y * G)); charlm uses the public API
// (Embedding -> LSTM x2 -> Linear -> cross-entropy -> Adam). Needs `npm run build:ts` (dist/).
// Efficiency: the single-thread SGEMM peak of this run (the faster of rnnkit's SGEMM and
// PyTorch's torch.mm on square fp32 matrices of PEAK_N) and, per training row, its GFLOP/s as a
// share of that peak times the threads.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { charlmStep, kernelStep, makeRand } from './native-steps.mjs';
import { flops, gatesOf, selectWorkloads } from './workloads.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(ROOT, 'dist', 'index.js'))) {
  console.error('bench: dist/ is missing; run `npm run build:ts` first');
  process.exit(1);
}
const rnnkit = await import('../dist/index.js');
const { loadBackend } = await import('../dist/backends/index.js');

// ---------------------------------------------------------------- options
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const backendName = opt('backend', 'native');
const threadList = opt('threads', '1,2').split(',').map(Number);
const reps = Number(opt('reps', '10'));
const rounds = Number(opt('rounds', '3'));
const repsPerRound = Math.max(1, Math.ceil(reps / rounds));
const warmup = 3;
const jsonFile = opt('json', null);
const withTorch = !argv.includes('--no-torch');
const withOnednn = !argv.includes('--no-onednn');
const PEAK_N = 2048;

// OpenBLAS picks its kernels from the CPU; its Cooperlake (AVX512_BF16) kernels are chosen
// explicitly only where the CPU has them (Debian's OpenBLAS may not detect that CPU by itself).
const cpuFlags = (() => {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
})();
const openblasEnv = /\bavx512_bf16\b/.test(cpuFlags) ? { OPENBLAS_CORETYPE: 'Cooperlake' } : {};

let workloads;
try {
  workloads = selectWorkloads(opt('workloads', null));
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exit(1);
}

// ---------------------------------------------------------------- helpers
const { randArray } = makeRand();

/** Floats the native kernels keep for BPTT (forward context) plus backward scratch, in MB. */
function workspaceMB(w) {
  if (w.cell === 'charlm') w = { ...w, cell: 'lstm' };
  const D = w.bidir ? 2 : 1, T = w.seq, B = w.batch, H = w.hidden, G = gatesOf(w.cell) * H;
  const ctx = (T + 1) * B * H + (w.cell === 'lstm' ? (T + 1) * B * H : 0) + T * B * G + (w.cell === 'gru' ? T * B * H : 0);
  const input = T * B * G; // Gx, the input projection of all steps (reused scratch)
  const bwd = T * B * G * (w.cell === 'gru' ? 2 : 1);
  const floats = w.mode === 'train' ? D * w.layers * ctx + input + bwd : input + 2 * B * H * 2 + B * G * 2;
  return (floats * 4) / 2 ** 20;
}

/** Median, fastest and slowest of samples in ms. */
function summary(ts) {
  const sorted = [...ts].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1] };
}

/** A peer's result row without its per-run samples (the results JSON keeps the summary). */
const withoutSamples = ({ samples_ms: _samples, ...row }) => row;

/** n timed runs of fn (ms) after the warm-ups. */
function samples(fn, n) {
  for (let i = 0; i < warmup; i++) fn();
  const ts = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return ts;
}

async function samplesAsync(fn, n) {
  for (let i = 0; i < warmup; i++) await fn();
  const ts = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return ts;
}

// onnxruntime-node for the inference workloads (optional: `ONNXRUNTIME_NODE_INSTALL=skip npm i --no-save
// onnxruntime-node`); the LSTM is exported to ONNX by PyTorch.
let ort = null;
try {
  ort = (await import('onnxruntime-node')).default;
} catch {
  ort = null;
}
const ortModels = new Map();
function exportOnnx(w) {
  if (ortModels.has(w.id)) return ortModels.get(w.id);
  const file = join(tmpdir(), `rnnkit-bench-${w.id}.onnx`);
  const py = `import torch\nm = torch.nn.LSTM(${w.input}, ${w.hidden}, ${w.layers})\n` +
    `torch.onnx.export(m, (torch.randn(${w.seq}, ${w.batch}, ${w.input}),), '${file}', input_names=['x'], opset_version=14)\n`;
  const out = spawnSync('/usr/bin/python3', ['-c', py], { encoding: 'utf8', env: { ...process.env, ...openblasEnv } });
  const ok = out.status === 0 && existsSync(file) ? file : null;
  ortModels.set(w.id, ok);
  return ok;
}
/** onnxruntime-node's run of an LSTM inference workload (async), or null where it does not apply. */
async function ortRunner(w, threads) {
  if (!ort || !hasTorch || w.mode !== 'infer' || w.cell !== 'lstm') return null;
  const file = exportOnnx(w);
  if (!file) return null;
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential' });
  const x = new ort.Tensor('float32', randArray(w.seq * w.batch * w.input), [w.seq, w.batch, w.input]);
  return () => session.run({ x });
}

/**
 * Resolves after 100 ms: onnxruntime's threads poll for work for some 30-40 ms after a session is
 * created and after each run, on the cores the next runs (rnnkit's, and its step-split chooser's
 * first timings) need; they are idle by then.
 */
const idle = () => new Promise((resolve) => setTimeout(resolve, 100));

/** SGEMM n x n x n; gflops from the fastest of the runs (the peak). */
function sgemmPeak(be, n) {
  const A = randArray(n * n), B = randArray(n * n), C = new Float32Array(n * n);
  const t = summary(samples(() => be.gemm(false, false, n, n, n, 1, A, n, B, n, 0, C, n), reps));
  return { ...t, gflops: (2 * n ** 3) / t.min / 1e6 };
}

function runTorch(threads, list, n = reps) {
  const env = { ...process.env, ...openblasEnv, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  const out = spawnSync('/usr/bin/python3', [join(ROOT, 'bench', 'torch_bench.py'), String(threads), JSON.stringify(list), String(warmup), String(n)], { env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (out.status !== 0) {
    console.error(`bench: PyTorch run failed: ${(out.stderr || out.error?.message || '').trim().split('\n').pop()}`);
    return [];
  }
  return out.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// oneDNN: bench/onednn/rnn_bench.cpp, compiled here on first use (and again when the source is
// newer) where oneDNN's C++ headers are installed; run once per workload and thread count.
const ONEDNN_SRC = join(ROOT, 'bench', 'onednn', 'rnn_bench.cpp');
const ONEDNN_BIN = join(ROOT, 'build', 'onednn', 'rnn_bench');
function buildOnednn() {
  if (!withOnednn) return { bin: null, why: 'skipped (--no-onednn)' };
  if (!['/usr/include/dnnl.hpp', '/usr/include/oneapi/dnnl/dnnl.hpp'].some((f) => existsSync(f))) {
    return { bin: null, why: 'not available (no oneDNN headers: apt-get install libdnnl-dev)' };
  }
  if (existsSync(ONEDNN_BIN) && statSync(ONEDNN_BIN).mtimeMs >= statSync(ONEDNN_SRC).mtimeMs) return { bin: ONEDNN_BIN, why: '' };
  mkdirSync(dirname(ONEDNN_BIN), { recursive: true });
  const out = spawnSync('g++', ['-O2', '-std=c++17', ONEDNN_SRC, '-o', ONEDNN_BIN, '-ldnnl'], { encoding: 'utf8' });
  if (out.status !== 0) {
    const msg = (out.stderr || out.error?.message || '').trim().split('\n').find((l) => /error/.test(l)) || 'g++ failed';
    return { bin: null, why: `not available (building bench/onednn/rnn_bench.cpp failed: ${msg.trim()})` };
  }
  return { bin: ONEDNN_BIN, why: '' };
}
function runOnednn(bin, w, threads, n) {
  if (!bin || w.cell === 'charlm') return null;
  const args = [w.id, w.cell, w.mode, w.seq, w.batch, w.input, w.hidden, w.layers, w.bidir ? 1 : 0, warmup, n].map(String);
  const out = spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), OMP_PROC_BIND: 'false' } });
  if (out.status !== 0) {
    console.error(`bench: oneDNN ${w.id} failed: ${(out.stderr || out.error?.message || '').trim().split('\n').pop()}`);
    return null;
  }
  return JSON.parse(out.stdout.trim());
}

// ---------------------------------------------------------------- run
const be = loadBackend(backendName);
rnnkit.setBackend(be);
const info = be.info();
const hasTorch = withTorch && existsSync('/usr/bin/python3') &&
  spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const onednn = buildOnednn();
console.log(`rnnkit bench: backend ${be.name} (isa ${info.isa}), ${rounds} rounds of ${repsPerRound} runs after ${warmup} warm-ups, ` +
  `PyTorch ${hasTorch ? `yes${openblasEnv.OPENBLAS_CORETYPE ? ' (OPENBLAS_CORETYPE=Cooperlake)' : ''}` : 'not available'}, ` +
  `oneDNN ${onednn.bin ? 'yes (OpenMP threads)' : onednn.why}, onnxruntime-node ${ort && hasTorch ? 'yes' : 'not available'}`);
const results = [];
const fmt = (v, d = 2) => (v === undefined || v === null || Number.isNaN(v) ? '-' : v.toFixed(d));
const pct = (v) => (v === undefined || v === null || Number.isNaN(v) ? '-' : `${(100 * v).toFixed(0)}%`);

// single-thread SGEMM peak: the faster of rnnkit's SGEMM and torch.mm (fastest run of each)
let peakGflops = null;
if (be.gemm) {
  be.setThreads?.(1);
  const own = sgemmPeak(be, PEAK_N);
  const torchPeak = hasTorch ? runTorch(1, [{ id: 'sgemm', n: PEAK_N }]).find((r) => r.workload === 'sgemm') : undefined;
  const torchGflops = torchPeak ? (2 * PEAK_N ** 3) / torchPeak.min_ms / 1e6 : null;
  peakGflops = Math.max(own.gflops, torchGflops ?? 0);
  console.log(`\nSGEMM peak, 1 thread, ${PEAK_N}^3 fp32 (fastest of the runs): ${be.name} ${fmt(own.gflops, 1)} GFLOP/s` +
    (torchPeak ? `, PyTorch torch.mm ${fmt(torchGflops, 1)} GFLOP/s` : '') + ` -> peak ${fmt(peakGflops, 1)} GFLOP/s`);
  results.push({ workload: `sgemm-${PEAK_N}`, impl: 'rnnkit', backend: be.name, threads: 1, median_ms: own.median, min_ms: own.min, max_ms: own.max, gflops: own.gflops, tokens_per_s: null });
  if (torchPeak) results.push({ ...withoutSamples(torchPeak), workload: `sgemm-${PEAK_N}`, gflops: torchGflops, tokens_per_s: null });
}

for (const threads of threadList) {
  be.setThreads?.(threads);
  console.log(`\n== threads ${threads}` + (peakGflops ? ` (% peak: GFLOP/s of a training row / (${threads} x ${fmt(peakGflops, 1)}))` : ''));
  console.log('| workload | rnnkit ms (min-max) | PyTorch ms | ratio PyTorch | oneDNN ms | ratio oneDNN | ORT ms | ratio ORT | GFLOP/s | % peak | tokens/s | workspace MB | max RSS MB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const w of workloads) {
    // rounds alternate rnnkit and each peer on the workload, so a drift of the machine's speed
    // during the run reaches all of them; every figure is over the samples of all rounds
    const own = [], peer = { pytorch: [], onednn: [], ort: [] };
    let ptRow, dnRow;
    try {
      const step = w.cell === 'charlm' ? charlmStep(rnnkit, w) : kernelStep(be, w);
      const ortRun = await ortRunner(w, threads);
      if (ortRun) await idle();
      for (let round = 0; round < rounds; round++) {
        own.push(...samples(step, repsPerRound));
        const pt = hasTorch ? runTorch(threads, [w], repsPerRound).find((x) => x.workload === w.id) : undefined;
        if (pt) peer.pytorch.push(...pt.samples_ms), (ptRow = pt);
        const dn = runOnednn(onednn.bin, w, threads, repsPerRound);
        if (dn) peer.onednn.push(...dn.samples_ms), (dnRow = dn);
        if (ortRun) {
          peer.ort.push(...(await samplesAsync(ortRun, repsPerRound)));
          await idle();
        }
      }
    } catch (e) {
      console.log(`| ${w.id} | failed: ${e.message.split('\n')[0]} | | | | | | | | | | | |`);
      continue;
    }
    const t = summary(own);
    const tokens = w.batch * w.seq;
    const r = {
      workload: w.id, impl: 'rnnkit', backend: be.name, threads, median_ms: t.median, min_ms: t.min, max_ms: t.max,
      gflops: flops(w) / t.median / 1e6, tokens_per_s: (tokens / t.median) * 1e3,
      max_rss_mb: process.resourceUsage().maxRSS / 1024, workspace_mb: workspaceMB(w),
    };
    if (peakGflops && w.mode === 'train') r.peak_fraction = r.gflops / (threads * peakGflops);
    results.push(r);
    const peerRow = (row, ts, fields) => {
      const p = summary(ts);
      const out = { ...withoutSamples(row), ...fields, median_ms: p.median, min_ms: p.min, max_ms: p.max, gflops: flops(w) / p.median / 1e6, tokens_per_s: (tokens / p.median) * 1e3 };
      results.push(out);
      return out;
    };
    const pt = ptRow && peerRow(ptRow, peer.pytorch, {});
    const dn = dnRow && peerRow(dnRow, peer.onednn, { backend: 'onednn-cpu', threads });
    const ot = peer.ort.length ? peerRow({ workload: w.id, impl: 'onnxruntime-node', backend: 'ort-cpu', threads }, peer.ort, {}) : null;
    const extra = w.id === 'lstm-stream' ? ` (${fmt((t.median / w.seq) * 1e3, 1)} us/step)` : '';
    console.log(`| ${w.id} | ${fmt(t.median)} (${fmt(t.min)}-${fmt(t.max)})${extra} | ${pt ? fmt(pt.median_ms) : '-'} | ` +
      `${pt ? fmt(t.median / pt.median_ms) : '-'} | ${dn ? fmt(dn.median_ms) : '-'} | ${dn ? fmt(t.median / dn.median_ms) : '-'} | ` +
      `${ot ? fmt(ot.median_ms) : '-'} | ${ot ? fmt(t.median / ot.median_ms) : '-'} | ${fmt(r.gflops, 1)} | ${pct(r.peak_fraction)} | ` +
      `${fmt(r.tokens_per_s, 0)} | ${fmt(r.workspace_mb, 1)} | ${fmt(r.max_rss_mb, 0)} |`);
  }
}
if (jsonFile) {
  writeFileSync(jsonFile, JSON.stringify(results, null, 2));
  console.log(`\nwrote ${jsonFile}`);
}
