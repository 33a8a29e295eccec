// The timed steps of bench/wasm-bench.mjs, shared by every place it runs the wasm backend: in the
// bench's own Node process, in a second Node process started with other V8 flags, and in a Web
// Worker of headless Chromium (bench/wasm-bench-worker.mjs). No Node module is imported here.
//
// rnnkit: seqForward(training) + seqBackward with dy = G (a fixed random tensor) and every
// gradient (parameters and x) = one train step; "infer" = seqForward(training = false); charlm adds
// the embedding, the output layer, cross-entropy and an Adam step over every parameter.
// Weights are passed with change counters (as the layers do), so they stay resident in linear
// memory between calls.
import { gatesOf } from './workloads.mjs';

let seed = 12345;
export const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
export const randn = (n, s = 1) => Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand()) * s);

const stat = (ts) => {
  ts.sort((x, y) => x - y);
  return { median: ts[Math.floor(ts.length / 2)], min: ts[0], max: ts[ts.length - 1] };
};

/** Median, min and max of `iters` timed calls after `warm` untimed ones (ms). */
export function time(fn, warm, iters) {
  for (let i = 0; i < warm; i++) fn();
  const ts = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return stat(ts);
}

/** time() of an async step. */
export async function timeAsync(fn, warm, iters) {
  for (let i = 0; i < warm; i++) await fn();
  const ts = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return stat(ts);
}

/** A and B timed alternately (warm-up, then iters each), so a busy machine slows both alike. */
export function timeAB(fa, fb, warm, iters) {
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
  return [stat(ta), stat(tb)];
}

// ---- charlm: embedding(65 -> 64) -> LSTM x2 (256) -> linear(256 -> 65) -> softmax CE (mean) ->
// Adam step over every parameter; kernel level on rnnkit (embedding gather/scatter in JS).
export function rnnkitCharlm(backend, w) {
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

/** One train step (or inference) of a recurrent stack, kernel level. */
export function rnnkitStep(backend, w) {
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
export function rnnkitStreamSteps(backend, w) {
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

/** The step of a workload on a backend (rnnkit's layer stack, or the char LM). */
export const workloadStep = (backend, w) => (w.cell === 'charlm' ? rnnkitCharlm(backend, w) : rnnkitStep(backend, w));

/** onnxruntime-web (wasm, one thread) on an ONNX model of the same layer: a step = one session.run. */
export async function ortStep(ort, w) {
  const { onnxRecurrentModel } = await import('./onnx-lstm.mjs');
  const session = await ort.InferenceSession.create(onnxRecurrentModel(w.cell, w.seq, w.batch, w.input, w.hidden, randn), { executionProviders: ['wasm'] });
  const X = new ort.Tensor('float32', randn(w.seq * w.batch * w.input), [w.seq, w.batch, w.input]);
  return () => session.run({ X });
}

/** Whether onnxruntime-web runs a workload here: inference of one layer, one direction. */
export const ortRuns = (w) => w.mode !== 'train' && w.layers === 1 && !w.bidir;

/** CPU time used so far by this process, all its threads (ms), or null outside Node, Deno and Bun. */
export function cpuMs() {
  const u = globalThis.process?.cpuUsage?.();
  return u ? (u.user + u.system) / 1000 : null;
}

/** The wasm builds by name, as files of dist/. */
export const BUILDS = { plain: 'rnnkit.wasm', relaxed: 'rnnkit-relaxed.wasm', threads: 'rnnkit-threads.wasm', 'threads-relaxed': 'rnnkit-threads-relaxed.wasm' };

/**
 * Which wasm build to run: `build` 'auto' takes the threaded build for more than one thread
 * (where this runtime can run it), else the single-thread one; of either, the relaxed-SIMD
 * variant where the runtime validates it. A name of BUILDS forces that build. Returns [name, bytes].
 */
export function chooseBuild(bytes, build, threads, threadsWhyNot) {
  if (build === 'auto') {
    const [plain, relaxed] = threads > 1 && !threadsWhyNot ? ['threads', 'threads-relaxed'] : ['plain', 'relaxed'];
    return WebAssembly.validate(bytes[relaxed]) ? [relaxed, bytes[relaxed]] : [plain, bytes[plain]];
  }
  if (!bytes[build]) throw new Error(`unknown wasm build '${build}' (expected auto, ${Object.keys(BUILDS).join(', ')})`);
  if (!WebAssembly.validate(bytes[build])) throw new Error(`the ${build} build does not validate in this runtime`);
  return [build, bytes[build]];
}

/**
 * The measuring end of the bench, the same wherever it runs: `init` builds the wasm backend (and
 * loads onnxruntime-web), `prepare` builds a workload's steps, `time` times one call of one of them.
 *   api: rnnkit/wasm (createWasmBackendAsync, wasmThreadsUnavailable); bytes: the builds by name (BUILDS);
 *   loadOrt: (threads) => onnxruntime-web with that many threads, or null.
 */
export function benchServer(api, bytes, loadOrt) {
  let backend = null;
  let ort = null;
  let build = '';
  let steps = {};
  return async (msg) => {
    if (msg.type === 'init') {
      const why = api.wasmThreadsUnavailable();
      let src;
      [build, src] = chooseBuild(bytes, msg.build, msg.threads, why);
      backend = await api.createWasmBackendAsync(src, { threads: msg.threads });
      await backend.whenReady();
      ort = msg.ort ? await loadOrt(msg.threads) : null;
      const info = backend.info();
      return { build, isa: info.isa, threads: info.threads, detail: info.detail, threadsWhyNot: why, ort: !!ort };
    }
    if (msg.type === 'prepare') {
      // the steps of one workload: rnnkit's, step by step (lstm-stream), onnxruntime-web's; answers their names
      const w = msg.workload;
      steps = { rnnkit: workloadStep(backend, w) };
      if (w.id === 'lstm-stream') steps.stream = rnnkitStreamSteps(backend, w);
      if (ort && ortRuns(w)) steps.ort = await ortStep(ort, w);
      return Object.keys(steps);
    }
    if (msg.type === 'time') {
      // one timed call of a prepared step: wall time and CPU time of the whole process (every
      // thread; null where the runtime cannot tell, as in a browser), in ms; the bench takes
      // turns between the places
      const cpu0 = cpuMs();
      const t0 = performance.now();
      await steps[msg.step]();
      const ms = performance.now() - t0;
      return { ms, cpu: cpu0 === null ? null : cpuMs() - cpu0 };
    }
    throw new Error(`unknown bench message ${msg.type}`);
  };
}
