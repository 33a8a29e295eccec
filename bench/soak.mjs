// Soak run: N training steps of a small character LSTM language model on the native and the wasm
// backend, sampling the process's resident memory (and the wasm module's linear memory) every few
// steps after a garbage collection; fits the slope of resident memory after warm-up (a leak shows
// as a slope that stays above zero over long runs) and draws the memory curves as an SVG.
//   node --expose-gc bench/soak.mjs [--steps 1000] [--backends native,wasm] [--svg soak.svg]
// (npm run soak -- --steps 20000). Needs the compiled package (npm run build).
import { writeFileSync } from 'node:fs';
import { LMTrainer, prepareData } from '../dist/lm/index.js';
import { getBackend, setBackend } from '../dist/index.js';
import { lineChartSvg } from '../dist/tasks/plot.js';

const args = process.argv.slice(2);
const opt = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const STEPS = Number(opt('steps', '1000'));
const BACKENDS = opt('backends', 'native,wasm').split(',');
const SVG = opt('svg', 'soak.svg');
const EVERY = Math.max(1, Math.round(STEPS / 200));
const WARMUP = 0.2; // the first 20% of the steps are left out of the fit
if (!Number.isInteger(STEPS) || STEPS < 10) { console.error(`--steps must be an integer >= 10, received ${opt('steps')}`); process.exit(2); }
if (!globalThis.gc) console.error('note: run with node --expose-gc for samples taken after a collection (less noise)');

const TEXT = 'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world. '.repeat(40);

/** Least-squares slope and intercept of y over x. */
function fit(points) {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0, sxx = 0;
  for (const [x, y] of points) { sxy += (x - mx) * (y - my); sxx += (x - mx) ** 2; }
  const slope = sxx > 0 ? sxy / sxx : 0;
  return { slope, intercept: my - slope * mx };
}

const MB = 2 ** 20;
const series = [];
const summary = [];
for (const name of BACKENDS) {
  setBackend(name);
  const backend = getBackend();
  const trainer = new LMTrainer({ layers: 1, hidden: 128, embed: 32, seq: 50, batch: 16, valEvery: 0, checkpointEvery: 0, seed: 3 }, prepareData(TEXT, { level: 'char', valFraction: 0.05 }));
  const rss = [];
  const heap = [];
  const wasmMem = [];
  const t0 = performance.now();
  for (let step = 1; step <= STEPS; step++) {
    trainer.trainStep();
    if (step % EVERY === 0 || step === STEPS) {
      globalThis.gc?.();
      const m = process.memoryUsage();
      rss.push([step, m.rss / MB]);
      heap.push([step, (m.heapUsed + m.external) / MB]);
      if (typeof backend.memoryBytes === 'function') wasmMem.push([step, backend.memoryBytes() / MB]);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = rss.filter(([s]) => s > STEPS * WARMUP);
  const { slope } = fit(after);
  const line = {
    backend: name, steps: STEPS, seconds: Number(seconds.toFixed(1)),
    rssMB: { first: Number(rss[0][1].toFixed(1)), last: Number(rss.at(-1)[1].toFixed(1)) },
    rssSlopeKBPer1000Steps: Number((slope * 1024 * 1000).toFixed(1)),
    heapPlusExternalSlopeKBPer1000Steps: Number((fit(heap.filter(([s]) => s > STEPS * WARMUP)).slope * 1024 * 1000).toFixed(1)),
    ...(wasmMem.length ? { wasmMemoryMB: { first: wasmMem[0][1], last: wasmMem.at(-1)[1] }, wasmSlopeKBPer1000Steps: Number((fit(wasmMem.filter(([s]) => s > STEPS * WARMUP)).slope * 1024 * 1000).toFixed(1)) } : {}),
    lossFirst: Number(trainer.history.train[0].loss.toFixed(3)), lossLast: Number(trainer.history.train.at(-1).loss.toFixed(3)),
  };
  summary.push(line);
  console.log(JSON.stringify(line));
  series.push({ name: `${name}: resident memory`, points: rss });
  series.push({ name: `${name}: JS heap + external buffers`, points: heap, dashed: true });
  if (wasmMem.length) series.push({ name: `${name}: wasm linear memory`, points: wasmMem });
}
writeFileSync(SVG, lineChartSvg(series, { title: `Memory over ${STEPS} training steps (char LSTM 128)`, xLabel: 'step', yLabel: 'MiB' }));
console.log(`wrote ${SVG}`);
