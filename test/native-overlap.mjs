// Overlapping native work, run in a child process by test/native-concurrency.test.ts (a heap
// corruption shows as a crash, often only at exit, so the process itself is what is checked).
// Every result of an overlapped call must equal, bit for bit, the result of the same call alone.
// Scenarios 1-4 run under both admission settings of async jobs, in turn: the default (a few at
// a time, the rest waiting in the addon) and 16 at once (every job on libuv's threadpool together).
// Run with --expose-gc to collect detached buffers at once. Prints one JSON line: { scenarios: { name: { runs, mismatches } }, threads, isa }.
//   RNNKIT_OVERLAP_REPS     repetitions of each scenario per size and thread count (default 50)
//   RNNKIT_OVERLAP_THREADS  comma-separated native thread counts (default 1,2)
import { Worker } from 'node:worker_threads';
import {
  Adam, GRU, LSTM, RNN, Rng, Tensor, getBackend, mul, noGrad, noGradAsync, setBackend, sum,
} from '../dist/index.js';

const REPS = Number(process.env.RNNKIT_OVERLAP_REPS ?? 50);
const THREADS = (process.env.RNNKIT_OVERLAP_THREADS ?? '1,2').split(',').map(Number);
// small: below the threading thresholds; medium: every GEMM and gate loop split over the pool
const SIZES = [
  { name: 'small', T: 6, B: 3, I: 5, H: 8 },
  { name: 'medium', T: 16, B: 8, I: 64, H: 256 },
];

setBackend('native');
const backend = getBackend();
const results = {};
const record = (name, same) => {
  const r = (results[name] ??= { runs: 0, mismatches: 0 });
  r.runs++;
  if (!same) r.mismatches++;
};
const bytes = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const sameData = (a, b) => Buffer.compare(bytes(a), bytes(b)) === 0;
const same = (a, b) => sameData(a.data, b.data);
const sameOut = (a, b) => same(a.output, b.output) && same(a.hN, b.hN) && (!a.cN || same(a.cN, b.cN));
const randn = (rng, shape) => new Tensor(Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => rng.normal()), shape);
const infer = (layer, x) => noGrad(() => layer.forward(x));
const inferAsync = (layer, x) => noGradAsync(() => layer.forwardAsync(x));

// worker_threads running synchronous forwards of their own model, checked against their first result
const WORKER_SRC = `
  import { parentPort, workerData } from 'node:worker_threads';
  const { LSTM, Rng, Tensor, noGrad } = await import(workerData.entry);
  const { T, B, I, H, reps } = workerData;
  const rng = new Rng(7);
  const layer = new LSTM({ inputSize: I, hiddenSize: H, rng });
  const x = new Tensor(Float32Array.from({ length: T * B * I }, () => rng.normal()), [T, B, I]);
  const first = noGrad(() => layer.forward(x)).output.data;
  let mismatches = 0;
  for (let i = 0; i < reps; i++) {
    const y = noGrad(() => layer.forward(x)).output.data;
    if (Buffer.compare(Buffer.from(y.buffer, y.byteOffset, y.byteLength), Buffer.from(first.buffer, first.byteOffset, first.byteLength)) !== 0) mismatches++;
  }
  parentPort.postMessage({ runs: reps, mismatches });
`;

for (const threads of THREADS) {
  backend.setThreads(threads);
  for (const size of SIZES) {
    const { T, B, I, H } = size;
    const rng = new Rng(threads * 100 + T);
    const lstm = new LSTM({ inputSize: I, hiddenSize: H, numLayers: 2, rng });
    const gru = new GRU({ inputSize: I, hiddenSize: H, bidirectional: true, rng });
    const rnn = new RNN({ inputSize: I, hiddenSize: H, rng });
    const x = randn(rng, [T, B, I]);
    const x2 = randn(rng, [T, B, I]);
    const alone = { lstm: infer(lstm, x), lstm2: infer(lstm, x2), gru: infer(gru, x), rnn: infer(rnn, x) };

    for (let rep = 0; rep < REPS; rep++) {
      backend.setAsyncJobs(rep % 2 ? 16 : 0);
      // 1. two jobs on one layer at once
      const [a, b] = await Promise.all([inferAsync(lstm, x), inferAsync(lstm, x2)]);
      record(`two jobs on one layer (${size.name})`, sameOut(a, alone.lstm) && sameOut(b, alone.lstm2));
      // 2. jobs on two layers at once
      const [c, d, e] = await Promise.all([inferAsync(lstm, x), inferAsync(gru, x), inferAsync(rnn, x)]);
      record(`jobs on three layers (${size.name})`, sameOut(c, alone.lstm) && sameOut(d, alone.gru) && sameOut(e, alone.rnn));
      // 3. a job while the main thread runs synchronous forwards on other layers
      const pending = inferAsync(lstm, x);
      const syncGru = infer(gru, x);
      const syncRnn = infer(rnn, x);
      record(`job beside synchronous calls (${size.name})`,
        sameOut(await pending, alone.lstm) && sameOut(syncGru, alone.gru) && sameOut(syncRnn, alone.rnn));
      // 4. setThreads while jobs run
      const during = [inferAsync(gru, x), inferAsync(lstm, x)];
      backend.setThreads(threads === 1 ? 2 : 1);
      backend.setThreads(threads);
      const [f, g] = await Promise.all(during);
      record(`setThreads during jobs (${size.name})`, sameOut(f, alone.gru) && sameOut(g, alone.lstm));
    }
    backend.setAsyncJobs(0);

    // 5. an optimizer step on the same layer while a job reads its weights: the job sees the weights
    // as they were when it started, for its output and for the gradients of its backward (two
    // layers, both directions: the later jobs start after the step, from the call's snapshot),
    // and the next job sees the new weights
    const layer = new LSTM({ inputSize: I, hiddenSize: H, numLayers: 2, bidirectional: true, rng: new Rng(5) });
    const opt = new Adam(layer.parameters(), { lr: 1e-2 });
    const trainStep = () => {
      const out = layer.forward(x).output;
      sum(mul(out, out)).backward();
      opt.step();
      layer.zeroGrad();
    };
    for (let rep = 0; rep < REPS; rep++) {
      const before = infer(layer, x);
      layer.zeroGrad();
      const forwardBefore = layer.forward(x).output;
      sum(mul(forwardBefore, forwardBefore)).backward();
      const gradsBefore = layer.parameters().map((p) => Float32Array.from(p.grad));
      layer.zeroGrad();

      const inferring = inferAsync(layer, x);
      const training = layer.forwardAsync(x);
      trainStep(); // changes every weight while both jobs run
      const inferred = await inferring;
      const trained = await training;
      sum(mul(trained.output, trained.output)).backward();
      const gradsOk = layer.parameters().every((p, i) => sameData(p.grad, gradsBefore[i]));
      layer.zeroGrad();
      const after = infer(layer, x);
      const changed = !sameOut(after, before);
      const nextSeesStep = sameOut(await inferAsync(layer, x), after);
      record(`optimizer step during jobs (${size.name})`, sameOut(inferred, before) && same(trained.output, before.output) && gradsOk && changed && nextSeesStep);
    }

    // 6. worker_threads with synchronous calls while the main thread's jobs run
    const entry = new URL('../dist/index.js', import.meta.url).href;
    const workers = [0, 1].map(() => new Promise((resolve, reject) => {
      const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(WORKER_SRC)}`), { workerData: { entry, T, B, I, H, reps: Math.max(2, REPS / 10) } });
      w.once('message', resolve);
      w.once('error', reject);
    }));
    const main = [];
    for (let rep = 0; rep < Math.max(2, REPS / 10); rep++) main.push(inferAsync(lstm, x));
    const mainOk = (await Promise.all(main)).every((r) => sameOut(r, alone.lstm));
    for (const w of await Promise.all(workers)) {
      record(`worker_threads beside jobs (${size.name})`, w.mismatches === 0 && mainOk);
    }
  }
}
// 7. the caller's buffers detached (transferred) while jobs run: the jobs work on their own copies,
// so the results are unchanged; an output array that is gone when a job settles rejects its promise
{
  const { loadNativeAddon } = await import('../dist/backends/native.js');
  const addon = loadNativeAddon();
  const { T, B, I, H } = SIZES[1];
  const rng = new Rng(11);
  const layer = new LSTM({ inputSize: I, hiddenSize: H, rng });
  const x = randn(rng, [T, B, I]);
  const alone = infer(layer, x);
  for (let rep = 0; rep < Math.max(2, REPS / 5); rep++) {
    const input = new Tensor(Float32Array.from(x.data), x.shape);
    const pending = inferAsync(layer, input);
    structuredClone(input.data.buffer, { transfer: [input.data.buffer] }); // input.data is now detached
    globalThis.gc?.();
    record('input detached during a job', sameOut(await pending, alone));

    const w = layer.weights[0][0];
    const args = {
      cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: Float32Array.from(x.data), wIh: w.wIh.data, wHh: w.wHh.data,
      bIh: w.bIh.data, bHh: w.bHh.data, wHr: null, h0: null, c0: null, lengths: null, training: false,
      y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: new Float32Array(B * H),
    };
    const job = addon.seqForwardAsync(args);
    structuredClone(args.y.buffer, { transfer: [args.y.buffer] });
    structuredClone(args.x.buffer, { transfer: [args.x.buffer] });
    globalThis.gc?.();
    const outcome = await job.then(() => 'resolved', (e) => String(e.message));
    record('output detached during a job: a clear rejection', /an output array was detached or transferred while the job ran/.test(outcome));
  }
}

// 7b. weight copies (copyWeight) whose handles are collected while the jobs that read them run:
// a job shares the copy, which lives until the job ends, so the results are unchanged
{
  const { loadNativeAddon } = await import('../dist/backends/native.js');
  const addon = loadNativeAddon();
  const T = 200, B = 8, I = 64, H = 256;
  const rng = new Rng(17);
  const layer = new LSTM({ inputSize: I, hiddenSize: H, rng });
  const x = randn(rng, [T, B, I]);
  const alone = infer(layer, x);
  const w = layer.weights[0][0];
  for (let rep = 0; rep < Math.max(2, REPS / 5); rep++) {
    const collected = new FinalizationRegistry(() => { handlesGone++; });
    let handlesGone = 0;
    const out = { y: new Float32Array(T * B * H), hN: new Float32Array(B * H), cN: new Float32Array(B * H) };
    let settled = false;
    const job = (() => {
      const handles = [w.wIh, w.wHh, w.bIh, w.bHh].map((t) => addon.copyWeight(Float32Array.from(t.data)));
      handles.forEach((h) => collected.register(h, null));
      const [wIh, wHh, bIh, bHh] = handles;
      return addon.seqForwardAsync({
        cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: x.data, wIh, wHh, bIh, bHh, wHr: null, h0: null, c0: null,
        lengths: null, training: false, y: out.y, yStride: H, yOffset: 0, hN: out.hN, cN: out.cN,
      });
    })();
    job.then(() => { settled = true; }, () => { settled = true; });
    // collect until the four handles are gone (their copies live on in the job)
    for (let i = 0; i < 50 && handlesGone < 4; i++) {
      globalThis.gc?.();
      await new Promise((r) => setImmediate(r));
    }
    const goneWhileRunning = handlesGone === 4 && !settled;
    await job;
    record('weight copies collected during a job', (goneWhileRunning || !globalThis.gc) && sameData(out.y, alone.output.data) && sameData(out.hN, alone.hN.data) && sameData(out.cN, alone.cN.data));
  }
}

// 8. a worker_thread terminated while its jobs run and wait: the process goes on, and a job of the
// main thread afterwards gives the same result
{
  const entry = new URL('../dist/index.js', import.meta.url).href;
  const { T, B, I, H } = SIZES[1];
  const rng = new Rng(13);
  const layer = new LSTM({ inputSize: I, hiddenSize: H, rng });
  const x = randn(rng, [T, B, I]);
  const alone = infer(layer, x);
  for (let rep = 0; rep < Math.max(2, REPS / 10); rep++) {
    const src = `
      import { parentPort, workerData } from 'node:worker_threads';
      const { LSTM, Rng, Tensor, getBackend, noGradAsync, setBackend } = await import(workerData.entry);
      setBackend('native');
      const { T, B, I, H } = workerData;
      const layer = new LSTM({ inputSize: I, hiddenSize: H, numLayers: 2, rng: new Rng(1) });
      const x = new Tensor(new Float32Array(T * B * I), [T, B, I]);
      for (let i = 0; i < 6; i++) noGradAsync(() => layer.forwardAsync(x));
      parentPort.postMessage(getBackend().asyncJobStats().waiting);
    `;
    const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(src)}`), { workerData: { entry, T, B, I, H } });
    const waiting = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    await w.terminate();
    record('worker_thread ended while its jobs run and wait', waiting > 0 && sameOut(await inferAsync(layer, x), alone));
  }
}

console.log(JSON.stringify({ scenarios: results, threads: THREADS, isa: backend.info().isa }));
