// Kernel-level benchmark of the rnnkit wasm backend on the workloads of bench/workloads.mjs,
// side by side with TensorFlow.js's wasm backend in the same run, printing times and ratios.
//
//   npm run build && node bench/wasm-bench.mjs [--workloads lstm-m,gru-m] [--iters 10] [--peer-iters 5] [--no-tfjs] [--no-ort] [--native] [--copies] [--threads N]
//
// rnnkit: seqForward(training) + seqBackward with dy = G (a fixed random tensor) and every
// gradient (parameters and x) = one train step; "infer" = seqForward(training = false).
// TensorFlow.js: tf.layers.lstm/gru/simpleRNN (recurrentActivation 'sigmoid' like PyTorch),
// (GRU: tfjs only has reset-before, same cost), loss = sum(y * G), tf.variableGrads over the weights and x. One thread for both
// (tfjs-backend-wasm does not start threads in Node).
// onnxruntime-web (wasm, one thread) for the inference workloads, on an ONNX model of the same
// layer written by bench/onnx-lstm.mjs.
// Weights are passed with change counters (as the layers do), so they stay resident in linear
// memory between calls; --copies also times a backend that copies every weight into linear memory
// on every call, interleaved with the resident one (A/B in one run).
// Timing: 3 warm-up iterations, then the median of --iters (min and max shown); the peer uses
// --peer-iters (default 5, warm-up 1) because one of its steps can take tens of seconds.
import { performance } from 'node:perf_hooks';
import { loadWasmBackend } from '../dist/backends/wasm.js';
import { flops, gatesOf, selectWorkloads } from './workloads.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const ITERS = Number(opt('iters', 10));
const PEER_ITERS = Number(opt('peer-iters', 5));
const ONLY = opt('workloads', opt('only', null));
const NO_TFJS = argv.includes('--no-tfjs');
const NO_ORT = argv.includes('--no-ort');
const WITH_NATIVE = argv.includes('--native'); // rnnkit-native with 1 thread, for the wasm / native ratio
const COPIES = argv.includes('--copies'); // A/B: resident weights vs a copy of every weight per call
const THREADS = opt('threads', null); // threads of the threaded build (default: one per core)

let WORKLOADS;
try {
  WORKLOADS = selectWorkloads(ONLY);
} catch (e) {
  console.error(`wasm-bench: ${e.message}`);
  process.exit(1);
}

let seed = 12345;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const randn = (n, s = 1) => Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand()) * s);

/** A and B timed alternately (warm-up, then iters each), so a busy machine slows both alike. */
function timeAB(fa, fb, warm, iters) {
  for (let i = 0; i < warm; i++) {
    fa();
    fb();
  }
  const ta = [];
  const tb = [];
  for (let i = 0; i < iters; i++) {
    for (const [fn, ts] of i % 2 ? [[fb, tb], [fa, ta]] : [[fa, ta], [fb, tb]]) {
      const t0 = performance.now();
      fn();
      ts.push(performance.now() - t0);
    }
  }
  const stat = (ts) => {
    ts.sort((x, y) => x - y);
    return { median: ts[Math.floor(ts.length / 2)], min: ts[0], max: ts[ts.length - 1] };
  };
  return [stat(ta), stat(tb)];
}

function time(fn, warm, iters) {
  for (let i = 0; i < warm; i++) fn();
  const ts = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return { median: ts[Math.floor(ts.length / 2)], min: ts[0], max: ts[ts.length - 1] };
}

// ---- charlm: embedding(65 -> 64) -> LSTM x2 (256) -> linear(256 -> 65) -> softmax CE (mean) ->
// Adam step over every parameter; kernel level on rnnkit (embedding gather/scatter in JS).
function rnnkitCharlm(backend, w) {
  const { seq: T, batch: B, hidden: H, vocab: V } = w;
  const E = w.emb;
  const N = T * B;
  const s = 1 / Math.sqrt(H);
  const G = 4 * H;
  const tokens = Int32Array.from({ length: N }, () => Math.floor(rand() * V));
  const targets = Int32Array.from({ length: N }, () => Math.floor(rand() * V));
  const param = (n, sc) => ({ p: randn(n, sc), g: new Float32Array(n), m: new Float32Array(n), v: new Float32Array(n) });
  const emb = param(V * E, 1);
  const layers = [E, H].map((I) => ({ I, wIh: param(G * I, s), wHh: param(G * H, s), bIh: param(G, s), bHh: param(G, s), y: new Float32Array(N * H), dx: new Float32Array(N * I) }));
  const fcW = param(V * H, s);
  const fcB = param(V, s);
  const params = [emb, ...layers.flatMap((l) => [l.wIh, l.wHh, l.bIh, l.bHh]), fcW, fcB];
  const x = new Float32Array(N * E);
  const hN = new Float32Array(B * H);
  const cN = new Float32Array(B * H);
  const logits = new Float32Array(N * V);
  const probs = new Float32Array(N * V);
  const losses = new Float32Array(N);
  const dLosses = new Float32Array(N).fill(1 / N);
  const dLogits = new Float32Array(N * V);
  const dY = new Float32Array(N * H);
  let step = 0; // also the weights' change counter: Adam changes them once per step
  return () => {
    for (const q of params) q.g.fill(0);
    for (let n = 0; n < N; n++) x.set(emb.p.subarray(tokens[n] * E, tokens[n] * E + E), n * E);
    let input = x;
    const ctxs = layers.map((l) => {
      const ctx = backend.seqForward({
        cell: 'lstm', T, B, I: l.I, H, P: 0, reverse: false, x: input, wIh: l.wIh.p, wHh: l.wHh.p, bIh: l.bIh.p, bHh: l.bHh.p,
        wHr: null, weightVersions: [step, step, step, step, 0], h0: null, c0: null, lengths: null, y: l.y, yStride: H, yOffset: 0, hN, cN, training: true,
      });
      input = l.y;
      return ctx;
    });
    for (let n = 0; n < N; n++) logits.set(fcB.p, n * V);
    backend.gemm(false, true, N, V, H, 1, input, H, fcW.p, H, 1, logits, V);
    backend.crossEntropyForward(N, V, logits, targets, -100, probs, losses);
    dLogits.fill(0);
    backend.crossEntropyBackward(N, V, probs, targets, -100, dLosses, dLogits);
    backend.gemm(true, false, V, H, N, 1, dLogits, V, input, H, 1, fcW.g, H);
    for (let n = 0; n < N; n++) for (let c = 0; c < V; c++) fcB.g[c] += dLogits[n * V + c];
    backend.gemm(false, false, N, H, V, 1, dLogits, V, fcW.p, H, 0, dY, H);
    let dy = dY;
    for (let l = layers.length - 1; l >= 0; l--) {
      const L = layers[l];
      L.dx.fill(0);
      backend.seqBackward({
        ctx: ctxs[l], dy, dyStride: H, dyOffset: 0, dhN: null, dcN: null, dx: L.dx, dh0: null, dc0: null,
        dWIh: L.wIh.g, dWHh: L.wHh.g, dBIh: L.bIh.g, dBHh: L.bHh.g, dWHr: null,
      });
      dy = L.dx;
    }
    for (let n = 0; n < N; n++) {
      const o = tokens[n] * E;
      for (let e = 0; e < E; e++) emb.g[o + e] += dy[n * E + e];
    }
    step++;
    for (const q of params) {
      backend.adamUpdate({ param: q.p, grad: q.g, m: q.m, v: q.v, lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, step });
    }
  };
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

// ---- rnnkit wasm (kernel level)
function rnnkitStep(backend, w) {
  const g = gatesOf(w.cell);
  const dirs = w.bidir ? 2 : 1;
  const { seq: T, batch: B, hidden: H } = w;
  const G = g * H;
  const layers = [];
  for (let l = 0; l < w.layers; l++) {
    const I = l === 0 ? w.input : H * dirs;
    const d = [];
    for (let k = 0; k < dirs; k++) {
      const s = 1 / Math.sqrt(H);
      d.push({
        wIh: randn(G * I, s), wHh: randn(G * H, s), bIh: randn(G, s), bHh: randn(G, s),
        dWIh: new Float32Array(G * I), dWHh: new Float32Array(G * H), dBIh: new Float32Array(G), dBHh: new Float32Array(G),
      });
    }
    layers.push({ I, dirs: d, y: new Float32Array(T * B * H * dirs), dx: new Float32Array(T * B * I) });
  }
  const x = randn(T * B * w.input);
  const Gy = randn(T * B * H * dirs);
  const hN = new Float32Array(B * H);
  const cN = w.cell === 'lstm' ? new Float32Array(B * H) : null;
  return () => {
    let input = x;
    const ctxs = [];
    for (const layer of layers) {
      const cs = [];
      layer.dirs.forEach((p, k) => {
        cs.push(backend.seqForward({
          cell: w.cell, T, B, I: layer.I, H, P: 0, reverse: k === 1, x: input, wIh: p.wIh, wHh: p.wHh, bIh: p.bIh, bHh: p.bHh,
          wHr: null, weightVersions: [0, 0, 0, 0, 0], h0: null, c0: null, lengths: null, y: layer.y, yStride: H * dirs, yOffset: k * H, hN, cN,
          training: w.mode === 'train',
        }));
      });
      ctxs.push(cs);
      input = layer.y;
    }
    if (w.mode !== 'train') return;
    let dy = Gy;
    for (let l = layers.length - 1; l >= 0; l--) {
      const layer = layers[l];
      layer.dx.fill(0);
      layer.dirs.forEach((p, k) => {
        backend.seqBackward({
          ctx: ctxs[l][k], dy, dyStride: H * dirs, dyOffset: k * H, dhN: null, dcN: null, dx: layer.dx, dh0: null, dc0: null,
          dWIh: p.dWIh, dWHh: p.dWHh, dBIh: p.dBIh, dBHh: p.dBHh, dWHr: null,
        });
      });
      dy = layer.dx;
    }
  };
}

/** lstm-stream as a stream: one seqForward call per step (T = 1), the state carried in h0/c0. */
function rnnkitStreamSteps(backend, w) {
  const { batch: B, hidden: H, input: I } = w;
  const G = 4 * H;
  const s = 1 / Math.sqrt(H);
  const p = { wIh: randn(G * I, s), wHh: randn(G * H, s), bIh: randn(G, s), bHh: randn(G, s) };
  const xs = randn(w.seq * B * I);
  const h = [new Float32Array(B * H), new Float32Array(B * H)];
  const c = [new Float32Array(B * H), new Float32Array(B * H)];
  const y = new Float32Array(B * H);
  return () => {
    h[0].fill(0);
    c[0].fill(0);
    for (let t = 0; t < w.seq; t++) {
      const a = t & 1;
      backend.seqForward({
        cell: 'lstm', T: 1, B, I, H, P: 0, reverse: false, x: xs.subarray(t * B * I, (t + 1) * B * I), ...p, wHr: null, weightVersions: [0, 0, 0, 0, 0],
        h0: h[a], c0: c[a], lengths: null, y, yStride: H, yOffset: 0, hN: h[1 - a], cN: c[1 - a], training: false,
      });
    }
  };
}

async function timeAsync(fn, warm, iters) {
  for (let i = 0; i < warm; i++) await fn();
  const ts = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return { median: ts[Math.floor(ts.length / 2)], min: ts[0], max: ts[ts.length - 1] };
}

// ---- onnxruntime-web (inference only)
async function loadOrt() {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  return ort;
}
async function ortRun(ort, w) {
  const { onnxRecurrentModel } = await import('./onnx-lstm.mjs');
  const session = await ort.InferenceSession.create(onnxRecurrentModel(w.cell, w.seq, w.batch, w.input, w.hidden, randn), { executionProviders: ['wasm'] });
  const X = new ort.Tensor('float32', randn(w.seq * w.batch * w.input), [w.seq, w.batch, w.input]);
  return () => session.run({ X });
}

// ---- TensorFlow.js wasm
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

// ---- run
const backend = loadWasmBackend();
const copying = COPIES ? loadWasmBackend({ residentWeights: false }) : null;
for (const b of [backend, copying]) {
  if (b && THREADS) b.setThreads(Number(THREADS));
  await b?.whenReady();
}
const tf = NO_TFJS ? null : await loadTf();
const ort = NO_ORT ? null : await loadOrt();
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
const fmt = (t) => `${t.median.toFixed(2)} ms [${t.min.toFixed(2)}, ${t.max.toFixed(2)}]`;
console.log(`rnnkit wasm: ${backend.info().isa}, ${backend.info().threads} thread(s), ${backend.info().detail}`);
console.log(`node ${process.version}; iters ${ITERS} (peer ${PEER_ITERS}); median [min, max]`);
const rows = [];
for (const w of WORKLOADS) {
  const run = (b) => (w.cell === 'charlm' ? rnnkitCharlm(b, w) : rnnkitStep(b, w));
  let r;
  let copies = null;
  if (copying) [r, copies] = timeAB(run(backend), run(copying), 3, ITERS);
  else r = time(run(backend), 3, ITERS);
  const gf = flops(w) / (r.median * 1e6);
  let line = `${w.id.padEnd(13)} rnnkit-wasm ${fmt(r)} ${gf.toFixed(1)} GFLOP/s`;
  const row = { id: w.id, rnnkit: r.median, gflops: gf };
  if (w.cell === 'charlm') line += ` = ${Math.round((w.seq * w.batch) / (r.median / 1000))} tokens/s`;
  if (copies) {
    row.copies = copies.median;
    line += ` | weights copied every call ${fmt(copies)} | resident / copied ${(r.median / copies.median).toFixed(3)}`;
  }
  if (native) {
    const n = time(w.cell === 'charlm' ? rnnkitCharlm(native, w) : rnnkitStep(native, w), 3, ITERS);
    row.native = n.median;
    line += ` | native-1t ${fmt(n)} | wasm/native ${(r.median / n.median).toFixed(2)}`;
  }
  if (w.id === 'lstm-stream') {
    let s;
    let sc = null;
    if (copying) [s, sc] = timeAB(rnnkitStreamSteps(backend, w), rnnkitStreamSteps(copying, w), 3, ITERS);
    else s = time(rnnkitStreamSteps(backend, w), 3, ITERS);
    line += ` | step by step (256 calls, T=1): ${fmt(s)} = ${(s.median / w.seq * 1000).toFixed(1)} us/step`;
    if (sc) line += ` (weights copied every call: ${(sc.median / w.seq * 1000).toFixed(1)} us/step)`;
    row.stream = s.median;
  }
  if (tf) {
    const t = time(w.cell === 'charlm' ? tfCharlm(tf, w) : tfStep(tf, w), 1, PEER_ITERS);
    row.tfjs = t.median;
    line += ` | tfjs-wasm ${fmt(t)} | ratio ${(r.median / t.median).toFixed(4)}`;
  }
  if (ort && w.mode !== 'train' && w.layers === 1 && !w.bidir) {
    const o = await timeAsync(await ortRun(ort, w), 3, ITERS);
    row.ort = o.median;
    line += ` | ort-web ${fmt(o)} | ratio ${(r.median / o.median).toFixed(3)}`;
  }
  console.log(line);
  rows.push(row);
}
console.log(`\n| workload | rnnkit-wasm ms |${COPIES ? ' weights copied every call ms | resident / copied |' : ''} GFLOP/s | tfjs-wasm ms | rnnkit / tfjs | ort-web ms | rnnkit / ort | native 1t ms | wasm / native |`);
console.log(`|---|---|${COPIES ? '---|---|' : ''}---|---|---|---|---|---|---|`);
const f = (v, d) => (v === undefined ? '-' : v.toFixed(d));
for (const r of rows) {
  const ab = COPIES ? ` ${f(r.copies, 2)} | ${r.copies ? (r.rnnkit / r.copies).toFixed(3) : '-'} |` : '';
  console.log(`| ${r.id} | ${r.rnnkit.toFixed(2)} |${ab} ${r.gflops.toFixed(1)} | ${f(r.tfjs, 1)} | ${r.tfjs ? (r.rnnkit / r.tfjs).toFixed(4) : '-'} | ` +
    `${f(r.ort, 2)} | ${r.ort ? (r.rnnkit / r.ort).toFixed(3) : '-'} | ${f(r.native, 2)} | ${r.native ? (r.rnnkit / r.native).toFixed(2) : '-'} |`);
}
