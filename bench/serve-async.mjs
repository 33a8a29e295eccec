#!/usr/bin/env node
// Serving with forwardAsync: keeps N requests in flight (a closed loop, like a server with N
// clients) and prints throughput, latency p50/p99, the event loop's delay p99, the main thread's
// own CPU time per request (Linux) and the whole process's (all threads), beside the same requests
// run one after another with the synchronous forward. RNNKIT_JOB_NICE=n runs the async jobs at a
// lower priority (see the README); the process CPU per request tells its cost where the machine's
// load makes wall-clock throughput vary.
//
//   node bench/serve-async.mjs [--inflight 1,4,16] [--requests 400] [--threads 1,2]
//                              [--jobs 0,16] [--seq 64] [--batch 1] [--hidden 256] [--layers 1]
//
// Each request is one LSTM inference over [seq, batch, 64] (needs `npm run build:ts`, dist/).
// --jobs: the native backend's admission of async jobs (setAsyncJobs) to compare, in the same run:
// 0 is the default (the cores left beside the native pool, at least 1), 16 admits every request
// of up to 16 in flight at once.
import { existsSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { cpus } from 'node:os';
import { LSTM, Rng, Tensor, getBackend, noGrad, noGradAsync, setBackend } from '../dist/index.js';

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const inflightList = opt('inflight', '1,4,16').split(',').map(Number);
const requests = Number(opt('requests', '400'));
const threadList = opt('threads', '1,2').split(',').map(Number);
const jobsList = opt('jobs', '0,16').split(',').map(Number);
const T = Number(opt('seq', '64')), B = Number(opt('batch', '1')), H = Number(opt('hidden', '256')), I = 64;
const L = Number(opt('layers', '1'));

setBackend('native');
const backend = getBackend();
const rng = new Rng(3);
const layer = new LSTM({ inputSize: I, hiddenSize: H, numLayers: L, rng });
const inputs = Array.from({ length: 16 }, () => new Tensor(Float32Array.from({ length: T * B * I }, () => rng.normal()), [T, B, I]));

// CPU time the main thread has run, in ms (Linux: /proc/thread-self/schedstat), or NaN elsewhere
const SCHEDSTAT = '/proc/thread-self/schedstat';
const hasSchedstat = existsSync(SCHEDSTAT);
const mainCpuMs = () => (hasSchedstat ? Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6 : NaN);

// CPU time of the whole process (every thread), in ms
const processCpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

async function serve(inflight) {
  const latencies = [];
  let next = 0;
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const start = performance.now();
  const cpu0 = mainCpuMs();
  const proc0 = processCpuMs();
  async function client() {
    while (next < requests) {
      const x = inputs[next++ % inputs.length];
      const t0 = performance.now();
      await noGradAsync(() => layer.forwardAsync(x));
      latencies.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: inflight }, client));
  const seconds = (performance.now() - start) / 1000;
  const cpu = (mainCpuMs() - cpu0) / requests;
  const proc = (processCpuMs() - proc0) / requests;
  delay.disable();
  latencies.sort((a, b) => a - b);
  return { rps: requests / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), loopP99: delay.percentile(99) / 1e6, cpu, proc };
}

function serveSync() {
  const latencies = [];
  const start = performance.now();
  const cpu0 = mainCpuMs();
  const proc0 = processCpuMs();
  for (let i = 0; i < requests; i++) {
    const t0 = performance.now();
    noGrad(() => layer.forward(inputs[i % inputs.length]));
    latencies.push(performance.now() - t0);
  }
  const seconds = (performance.now() - start) / 1000;
  const cpu = (mainCpuMs() - cpu0) / requests;
  const proc = (processCpuMs() - proc0) / requests;
  latencies.sort((a, b) => a - b);
  // the synchronous calls block the event loop for each request's whole duration
  return { rps: requests / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), loopP99: quantile(latencies, 0.99), cpu, proc };
}

console.log(`LSTM ${I}->${H}${L > 1 ? ` x ${L} layers` : ''}, request [${T}, ${B}, ${I}], ${requests} requests; ${cpus()[0]?.model ?? 'unknown CPU'}, ${backend.info().isa}${process.env.RNNKIT_JOB_NICE ? `, RNNKIT_JOB_NICE=${process.env.RNNKIT_JOB_NICE}` : ''}`);
console.log('| threads | mode | jobs admitted | in flight | requests/s | vs sync | p50 ms | p99 ms | event loop p99 ms | main-thread CPU ms per request | process CPU ms per request |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
const fmt = (x) => (Number.isNaN(x) ? '-' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
for (const threads of threadList) {
  backend.setThreads(threads);
  serveSync(); // warm-up
  const sync = serveSync();
  console.log(`| ${threads} | forward | - | 1 | ${fmt(sync.rps)} | 1.00 | ${fmt(sync.p50)} | ${fmt(sync.p99)} | ${fmt(sync.loopP99)} | ${fmt(sync.cpu)} | ${fmt(sync.proc)} |`);
  for (const inflight of inflightList) {
    const done = new Set(); // jobs running at once, at most, in the settings run so far
    for (const jobs of jobsList) {
      backend.setAsyncJobs(jobs);
      const admitted = backend.asyncJobStats().limit;
      if (done.has(Math.min(admitted, inflight))) continue; // the same as a setting above
      done.add(Math.min(admitted, inflight));
      await serve(inflight); // warm-up
      const r = await serve(inflight);
      console.log(`| ${threads} | forwardAsync | ${jobs === 0 ? `${admitted} (default)` : admitted} | ${inflight} | ${fmt(r.rps)} | ${(r.rps / sync.rps).toFixed(2)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.loopP99)} | ${fmt(r.cpu)} | ${fmt(r.proc)} |`);
    }
    backend.setAsyncJobs(0);
  }
}
