// Kernel-level benchmark of the rnnkit wasm backend on the workloads of bench/workloads.mjs, side
// by side in one run with rnnkit native (one thread), onnxruntime-web and TensorFlow.js's wasm
// backend, in Node and, with --browser chromium, in headless Chromium; prints times and ratios.
//
//   npm run build && node bench/wasm-bench.mjs [--workloads lstm-m,gru-m] [--iters 10] [--peer-iters 5]
//     [--threads 1,2] [--build auto|plain|relaxed|threads|threads-relaxed] [--native] [--no-tfjs] [--no-ort] [--copies]
//     [--node-flags "--experimental-wasm-relaxed-simd"] [--browser chromium]
//
// Where the wasm backend runs (one column each, the same workload one after the other):
//   node                 this process;
//   node <flags>         --node-flags: a second Node process started with these V8 flags (e.g.
//                        --experimental-wasm-relaxed-simd, which Node 20 needs for relaxed SIMD);
//   chromium             --browser chromium: a module Web Worker of a cross-origin isolated page
//                        (COOP/COEP, so the threaded build can start workers) in headless
//                        Chromium (playwright-core; RNNKIT_CHROMIUM or /usr/bin/chromium), served
//                        from this repository on 127.0.0.1 (bench/wasm-bench-worker.mjs).
// The wasm build (--build, default auto): the threaded build for --threads above 1 (where the
// runtime can start workers), else the single-thread one; of either, the relaxed-SIMD variant
// (fused multiply-add) where the runtime validates it; each column says which ran.
//
// The steps (bench/wasm-steps.mjs): rnnkit seqForward(training) + seqBackward with dy = G (a fixed
// random tensor) and every gradient = one train step; "infer" = seqForward(training = false);
// charlm adds the embedding, the output layer, cross-entropy and an Adam step. Weights are passed
// with change counters (as the layers do), so they stay resident in linear memory; --copies also
// times a backend that copies every weight in on every call, interleaved with the resident one.
// onnxruntime-web (wasm, in Node and in Chromium, at the thread count of each column: in Node a
// column after the first runs in a child process) runs the inference workloads on an ONNX model
// of the same layer (bench/onnx-lstm.mjs). TensorFlow.js (Node, wasm backend, one
// thread): tf.layers.lstm/gru/simpleRNN (recurrentActivation 'sigmoid' like PyTorch; GRU: tfjs
// only has reset-before, same cost), loss = sum(y * G), tf.variableGrads over the weights and x.
// Timing: native and every wasm column take turns, one step each per round (3 warm-up rounds, then
// --iters rounds), so a machine that slows down for a while slows every column alike; median (min
// and max shown). Beside the wall time, each Node column shows the CPU time of its process for the
// step (all threads, median): with more threads it should stay close to one thread's (time spent
// waiting for another thread, or work done twice, shows here first, and it is what the other
// programs of a machine lose). TensorFlow.js runs after them, --peer-iters times (default 5, warm-up 1),
// because one of its steps can take tens of seconds.
import { fork } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as api from '../dist/wasm-entry.js';
import { flops, selectWorkloads } from './workloads.mjs';
import { BUILDS, benchServer, chooseBuild, cpuMs, rand, randn, time, timeAB, workloadStep } from './wasm-steps.mjs';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const distBytes = () => Object.fromEntries(Object.entries(BUILDS).map(([name, file]) => [name, readFileSync(join(ROOT, 'dist', file))]));
/** onnxruntime-web with `threads` threads (fixed when its wasm starts: one thread count per process). */
async function loadOrt(threads = 1) {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = threads;
  return ort;
}

async function main() {
  const ITERS = Number(opt('iters', 10));
  const PEER_ITERS = Number(opt('peer-iters', 5));
  const NO_TFJS = argv.includes('--no-tfjs');
  const NO_ORT = argv.includes('--no-ort');
  const WITH_NATIVE = argv.includes('--native'); // rnnkit-native with 1 thread, for the wasm / native ratio
  const COPIES = argv.includes('--copies'); // A/B: resident weights vs a copy of every weight per call
  // threads of the wasm backend, one column per count (more than 1: the threaded build)
  const THREADS = String(opt('threads', '1')).split(',').map(Number);
  if (!THREADS.every((n) => Number.isInteger(n) && n >= 1)) fail(`--threads: expected positive integers separated by commas, received '${opt('threads')}'`);
  const BUILD = opt('build', 'auto');
  const NODE_FLAGS = opt('node-flags', null);
  const BROWSER = opt('browser', null);
  if (BROWSER !== null && BROWSER !== 'chromium') fail(`--browser: only chromium is supported, received '${BROWSER}'`);
  let WORKLOADS;
  try {
    WORKLOADS = selectWorkloads(opt('workloads', opt('only', null)));
  } catch (e) {
    fail(e.message);
  }

  // ---- where the wasm backend runs
  // (one per thread count; onnxruntime-web beside each at the same thread count: it takes its
  // thread count once per process, so in Node the later counts run in child processes)
  const engines = THREADS.map((n, i) => ({ ...(i === 0 ? inProcess() : nodeChild([], 'node')), threads: n, ort: true }));
  if (NODE_FLAGS) {
    const flags = NODE_FLAGS.split(/\s+/).filter(Boolean);
    console.log(`node-flags: a second Node process with ${flags.join(' ')}`);
    for (const n of THREADS) engines.push({ ...nodeChild(flags), threads: n, ort: false });
  }
  if (BROWSER) {
    const browser = await chromiumBrowser();
    for (const n of THREADS) engines.push({ ...await browser.page(), threads: n, ort: true });
  }
  for (const e of engines) {
    try {
      e.info = await e.call({ type: 'init', build: BUILD, threads: e.threads, ort: !NO_ORT && e.ort });
    } catch (err) {
      fail(`${e.name}, ${e.threads} thread(s): ${String(err.message).split('\n')[0]}`);
    }
    e.label = `${e.name} ${e.info.build} ${e.info.threads}t`;
    console.log(`${e.name}: rnnkit wasm ${e.info.build} build (${e.info.isa}), ${e.info.threads} thread(s)` +
      `${e.info.threadsWhyNot ? ` (threads unavailable: ${e.info.threadsWhyNot})` : ''}; ${e.info.detail}`);
  }
  let copying = null;
  if (COPIES) {
    const [, bytes] = chooseBuild(distBytes(), BUILD, THREADS[0], api.wasmThreadsUnavailable());
    copying = await api.createWasmBackendAsync(bytes, { threads: THREADS[0], residentWeights: false });
  }
  const tf = NO_TFJS ? null : await loadTf();
  let native = null;
  if (WITH_NATIVE) {
    try {
      native = (await import('../dist/backends/native.js')).loadNativeBackend();
      native.setThreads?.(1);
      console.log(`rnnkit native: ${native.info().isa}, 1 thread`);
    } catch (e) {
      console.log(`rnnkit native unavailable: ${e.message}`);
    }
  }
  console.log(`node ${process.version}; iters ${ITERS} (tfjs ${PEER_ITERS}); median [min, max]`);

  const fmt = (t) => `${t.median.toFixed(2)} ms [${t.min.toFixed(2)}, ${t.max.toFixed(2)}]`;
  const rows = [];
  try {
    for (const w of WORKLOADS) {
      const row = { id: w.id, engines: [] };
      const parts = [w.id.padEnd(13)];
      // every timed step of this workload, taking turns (warm-up rounds, then ITERS rounds): a
      // machine that slows down for a while slows every column alike
      const timed = [];
      if (native) {
        const fn = workloadStep(native, w);
        timed.push({
          what: 'native', ts: [], cs: [],
          once: async () => {
            const c0 = cpuMs();
            const t0 = performance.now();
            fn();
            return { ms: performance.now() - t0, cpu: cpuMs() - c0 };
          },
        });
      }
      for (const [i, e] of engines.entries()) {
        for (const step of await e.call({ type: 'prepare', workload: w })) timed.push({ what: step, engine: i, once: () => e.call({ type: 'time', step }), ts: [], cs: [] });
      }
      for (let round = 0; round < 3 + ITERS; round++) {
        for (const t of timed) {
          const { ms, cpu } = await t.once();
          if (round >= 3) {
            t.ts.push(ms);
            if (cpu !== null) t.cs.push(cpu);
          }
          // onnxruntime's threads poll for work a while after a run (some 30-40 ms in Node), on
          // the cores the next column needs: it starts once they are idle
          if (t.what === 'ort') await new Promise((done) => setTimeout(done, 100));
        }
      }
      const stat = (ts) => {
        ts.sort((x, y) => x - y);
        return { median: ts[Math.floor(ts.length / 2)], min: ts[0], max: ts[ts.length - 1] };
      };
      const get = (what, engine) => {
        const t = timed.find((x) => x.what === what && x.engine === engine);
        return t && { ...stat(t.ts), cpu: t.cs.length ? stat(t.cs).median : null };
      };
      const n = get('native', undefined);
      if (n) {
        row.native = n.median;
        parts.push(`native-1t ${fmt(n)}, cpu ${n.cpu.toFixed(2)} ms`);
      }
      for (const [i, e] of engines.entries()) {
        const r = { rnnkit: get('rnnkit', i), stream: get('stream', i), ort: get('ort', i) };
        const gf = flops(w) / (r.rnnkit.median * 1e6);
        let s = `${e.label} ${fmt(r.rnnkit)}${r.rnnkit.cpu === null ? '' : `, cpu ${r.rnnkit.cpu.toFixed(2)} ms`} ${gf.toFixed(1)} GFLOP/s`;
        if (w.cell === 'charlm') s += ` = ${Math.round((w.seq * w.batch) / (r.rnnkit.median / 1000))} tokens/s`;
        if (row.native) s += ` (/native ${(r.rnnkit.median / row.native).toFixed(2)})`;
        if (r.stream) s += `, step by step (${w.seq} calls, T=1) ${fmt(r.stream)} = ${(r.stream.median / w.seq * 1000).toFixed(1)} us/step`;
        if (r.ort) {
          s += ` | ort-web there ${fmt(r.ort)}${r.ort.cpu === null ? '' : `, cpu ${r.ort.cpu.toFixed(2)} ms`}` +
            ` (rnnkit / ort ${(r.rnnkit.median / r.ort.median).toFixed(3)}${r.ort.cpu ? `, in CPU time ${(r.rnnkit.cpu / r.ort.cpu).toFixed(3)}` : ''})`;
        }
        parts.push(s);
        row.engines.push({ ms: r.rnnkit.median, cpu: r.rnnkit.cpu, gflops: gf, ort: r.ort?.median, usPerStep: r.stream && (r.stream.median / w.seq) * 1000 });
      }
      if (copying) {
        const ab = timeAB(workloadStep(engines[0].backend(), w), workloadStep(copying, w), 3, ITERS);
        row.resident = ab[0].median;
        row.copies = ab[1].median;
        parts.push(`A/B in this process: resident ${fmt(ab[0])} | weights copied every call ${fmt(ab[1])} | resident / copied ${(ab[0].median / ab[1].median).toFixed(3)}`);
      }
      if (tf) {
        const t = time(w.cell === 'charlm' ? tfCharlm(tf, w) : tfStep(tf, w), 1, PEER_ITERS);
        row.tfjs = t.median;
        parts.push(`tfjs-wasm ${fmt(t)} (rnnkit node / tfjs ${(row.engines[0].ms / t.median).toFixed(4)})`);
      }
      console.log(parts.join('\n    '));
      rows.push(row);
    }
  } finally {
    for (const e of engines) await e.close();
  }

  // ---- the table
  const f = (v, d) => (v === undefined || v === null ? '-' : v.toFixed(d));
  const r2 = (a, b) => (a && b ? (a / b).toFixed(2) : '-');
  const head = ['workload', ...(native ? ['native 1t ms'] : [])];
  const base = engines.map((e) => engines.findIndex((x) => x.name === e.name)); // the first column of the same place
  // per column: wall ms, CPU ms of the process; a column with more threads than the first of its
  // place: its speed-up in wall time and its CPU time over that column's
  engines.forEach((e, i) => head.push(`wasm ${e.label} ms`, `${e.label} cpu ms`, ...(native ? [`${e.name} / native`] : []),
    ...(base[i] !== i ? [`${e.info.threads}t speed-up`, `${e.info.threads}t cpu / ${engines[base[i]].info.threads}t cpu`] : [])));
  head.push('GFLOP/s (node)');
  engines.forEach((e) => { if (e.info.ort) head.push(`ort-web ${e.label} ms`, `rnnkit / ort (${e.label})`); });
  if (engines.length > 1) head.push('step by step us/step (per column)');
  if (COPIES) head.push('copied every call ms', 'resident / copied');
  if (tf) head.push('tfjs-wasm ms', 'rnnkit node / tfjs');
  console.log(`\n| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
  for (const r of rows) {
    const cells = [r.id, ...(native ? [f(r.native, 2)] : [])];
    r.engines.forEach((x, i) => cells.push(f(x.ms, 2), f(x.cpu, 2), ...(native ? [r2(x.ms, r.native)] : []),
      ...(base[i] !== i ? [`${r2(r.engines[base[i]].ms, x.ms)}x`, r2(x.cpu, r.engines[base[i]].cpu)] : [])));
    cells.push(f(r.engines[0].gflops, 1));
    engines.forEach((e, i) => { if (e.info.ort) cells.push(f(r.engines[i].ort, 2), r.engines[i].ort ? (r.engines[i].ms / r.engines[i].ort).toFixed(3) : '-'); });
    if (engines.length > 1) cells.push(r.engines.some((x) => x.usPerStep) ? r.engines.map((x) => f(x.usPerStep, 1)).join(' / ') : '-');
    if (COPIES) cells.push(f(r.copies, 2), r.copies ? (r.resident / r.copies).toFixed(3) : '-');
    if (tf) cells.push(f(r.tfjs, 1), r.tfjs ? (r.engines[0].ms / r.tfjs).toFixed(4) : '-');
    console.log(`| ${cells.join(' | ')} |`);
  }

  // ---- engines
  function inProcess() {
    let backend = null;
    const serve = benchServer({
      ...api,
      createWasmBackendAsync: async (src, o) => (backend = await api.createWasmBackendAsync(src, o)),
    }, distBytes(), loadOrt);
    return { name: 'node', call: serve, close: async () => backend?.close(), backend: () => backend };
  }

  function nodeChild(flags, name = 'node-flags') {
    const child = fork(fileURLToPath(import.meta.url), ['--serve'], { execArgv: flags, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return { name, ...messenger((m) => child.send(m), (on) => child.on('message', on), () => child.kill()) };
  }

  /** Headless Chromium serving this repository; page() opens one more bench page (its own worker and backend). */
  async function chromiumBrowser() {
    const executablePath = process.env.RNNKIT_CHROMIUM ?? '/usr/bin/chromium';
    if (!existsSync(executablePath)) fail(`--browser chromium: no Chromium at ${executablePath} (apt-get install -y chromium, or set RNNKIT_CHROMIUM)`);
    const { chromium } = await import('playwright-core');
    const server = await serveRepository();
    const browser = await chromium.launch({
      executablePath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    let open = 0;
    return {
      page: async () => {
        const page = await browser.newPage();
        open++;
        page.on('pageerror', (e) => console.error(`chromium page error: ${e}`));
        page.on('console', (m) => { if (m.type() === 'error') console.error(`chromium: ${m.text()}`); });
        await page.goto(`http://127.0.0.1:${server.address().port}/__wasm-bench__.html`);
        await page.evaluate(() => window.benchReady);
        if (!(await page.evaluate(() => crossOriginIsolated))) fail('the bench page is not cross-origin isolated');
        return {
          name: 'chromium',
          call: (msg) => page.evaluate((m) => window.bench(m), msg),
          close: async () => {
            await page.close();
            if (--open === 0) {
              await browser.close();
              server.close();
            }
          },
        };
      },
    };
  }
}

/** call(msg) -> Promise of the answer over a message channel ({ id, msg } out, { id, result | error } back). */
function messenger(send, listen, stop) {
  let next = 0;
  const pending = new Map();
  listen(({ id, result, error }) => {
    const p = pending.get(id);
    pending.delete(id);
    if (error) p.fail(new Error(error));
    else p.ok(result);
  });
  return {
    call: (msg) => new Promise((ok, failed) => {
      const id = ++next;
      pending.set(id, { ok, fail: failed });
      send({ id, msg });
    }),
    close: async () => stop(),
  };
}

/** The page of the Chromium column: starts bench/wasm-bench-worker.mjs and relays the bench's messages. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>rnnkit wasm bench</title><link rel="icon" href="data:,">
<script type="module">
const worker = new Worker('/bench/wasm-bench-worker.mjs', { type: 'module' });
const pending = new Map();
let next = 0;
window.benchReady = new Promise((ready, failed) => {
  worker.onerror = (e) => failed(new Error('bench worker: ' + e.message));
  worker.onmessage = (e) => {
    if (e.data.ready) return ready(true);
    const p = pending.get(e.data.id);
    pending.delete(e.data.id);
    if (e.data.error) p[1](new Error(e.data.error)); else p[0](e.data.result);
  };
});
window.bench = async (msg) => {
  await window.benchReady;
  return new Promise((ok, failed) => { const id = ++next; pending.set(id, [ok, failed]); worker.postMessage({ id, msg }); });
};
</script>`;

/** Serves the repository (dist/, bench/, node_modules/onnxruntime-web/) on 127.0.0.1 with COOP/COEP. */
function serveRepository() {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const headers = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };
    if (path === '/__wasm-bench__.html') return res.writeHead(200, { ...headers, 'content-type': 'text/html' }).end(PAGE);
    const file = join(ROOT, path);
    const allowed = ['dist', 'bench', 'node_modules/onnxruntime-web'].some((d) => file.startsWith(join(ROOT, d) + '/'));
    if (!allowed || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end();
    res.writeHead(200, { ...headers, 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

function fail(message) {
  console.error(`wasm-bench: ${message}`);
  process.exit(1);
}

// ---- TensorFlow.js wasm (Node)
async function loadTf() {
  const tf = await import('@tensorflow/tfjs');
  const wasmMod = await import('@tensorflow/tfjs-backend-wasm');
  const { createRequire } = await import('node:module');
  const { dirname } = await import('node:path');
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  wasmMod.setWasmPaths(dir + '/');
  await tf.setBackend('wasm');
  await tf.ready();
  return tf;
}

function tfCharlm(tf, w) {
  const { seq: T, batch: B, hidden: H, vocab: V } = w;
  const N = T * B;
  // tfjs-wasm has no gradient of an embedding lookup (UnsortedSegmentSum): dense over one-hot
  const oneHot = tf.oneHot(tf.tensor2d(Int32Array.from({ length: N }, () => Math.floor(rand() * V)), [B, T], 'int32'), V).toFloat();
  const targets = tf.oneHot(tf.tensor2d(Int32Array.from({ length: N }, () => Math.floor(rand() * V)), [B, T], 'int32'), V).toFloat();
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: w.input, useBias: false, inputShape: [T, V] }),
      tf.layers.lstm({ units: H, returnSequences: true, recurrentActivation: 'sigmoid', recurrentInitializer: 'glorotNormal' }),
      tf.layers.lstm({ units: H, returnSequences: true, recurrentActivation: 'sigmoid', recurrentInitializer: 'glorotNormal' }),
      tf.layers.dense({ units: V }),
    ],
  });
  const opt = tf.train.adam(2e-3);
  return () => tf.tidy(() => {
    const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(targets, model.apply(oneHot)), true);
    loss.dataSync();
  });
}

function tfStep(tf, w) {
  const dirs = w.bidir ? 2 : 1;
  const { seq: T, batch: B, hidden: H } = w;
  const layers = [];
  for (let l = 0; l < w.layers; l++) {
    const mk = () => {
      const o = { units: H, returnSequences: true, recurrentInitializer: 'glorotNormal' };
      if (w.cell === 'lstm') return tf.layers.lstm({ ...o, recurrentActivation: 'sigmoid' });
      if (w.cell === 'gru') return tf.layers.gru({ ...o, recurrentActivation: 'sigmoid' }); // tfjs has no reset_after: same FLOPs
      return tf.layers.simpleRNN({ ...o, activation: 'tanh' });
    };
    layers.push(w.bidir ? tf.layers.bidirectional({ layer: mk(), mergeMode: 'concat' }) : mk());
  }
  const x = tf.variable(tf.tensor3d(randn(B * T * w.input), [B, T, w.input]));
  const G = tf.tensor3d(randn(B * T * H * dirs), [B, T, H * dirs]);
  const forward = () => layers.reduce((h, layer) => layer.apply(h), x);
  tf.tidy(() => forward()); // builds the weights
  if (w.mode !== 'train') return () => tf.tidy(() => forward().dataSync());
  return () => tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(forward(), G)));
    value.dataSync();
    for (const g of Object.values(grads)) g.dataSync();
  });
}

// ---- a second Node process (--node-flags): answers the parent's messages, nothing else
if (argv.includes('--serve')) {
  const serve = benchServer(api, distBytes(), loadOrt);
  process.on('disconnect', () => process.exit(0));
  process.on('message', async ({ id, msg }) => {
    try {
      process.send({ id, result: await serve(msg) });
    } catch (e) {
      process.send({ id, error: String(e?.stack ?? e) });
    }
  });
} else {
  await main();
}
