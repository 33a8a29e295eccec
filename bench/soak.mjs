// Soak run: N training steps of a character LSTM language model on the native and the wasm
// backend, sampling the process's resident memory, the JS heap + external buffers, the wasm
// module's linear memory and the native backend's own memory (its recycled-block cache and the
// bytes malloc has in use) every few steps after a garbage collection. Fits the slope of each
// after warm-up (a leak shows as a slope that stays above zero over long runs) and draws the
// memory curves as an SVG.
//   node --expose-gc bench/soak.mjs [--steps 1000] [--backends native,wasm] [--svg soak.svg]
//                                   [--hidden 128] [--batch 16] [--seq 50]
// (npm run soak -- --steps 10000 --hidden 64). Needs the compiled package (npm run build).
// The text is a seeded random sequence of words, so it cannot be memorised: the loss levels off
// near the text's entropy instead of falling to zero.
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LMTrainer, prepareData } from '../dist/lm/index.js';
import { getBackend, setBackend } from '../dist/index.js';
import { lineChartSvg } from '../dist/tasks/plot.js';

const args = process.argv.slice(2);
const opt = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const intOpt = (name, fallback, min) => {
  const v = Number(opt(name, String(fallback)));
  if (!Number.isInteger(v) || v < min) { console.error(`--${name} must be an integer >= ${min}, received ${opt(name)}`); process.exit(2); }
  return v;
};
const STEPS = intOpt('steps', 1000, 10);
const HIDDEN = intOpt('hidden', 128, 1);
const BATCH = intOpt('batch', 16, 1);
const SEQ = intOpt('seq', 50, 2);
const BACKENDS = opt('backends', 'native,wasm').split(',');
const SVG = opt('svg', 'soak.svg');
const EVERY = Math.max(1, Math.round(STEPS / 200));
const WARMUP = 0.2; // the first 20% of the steps are left out of the fit
if (!globalThis.gc) console.error('note: run with node --expose-gc for samples taken after a collection (less noise)');

/** 60,000 words drawn from a fixed list by a seeded generator (a text no model can memorise). */
function randomText(words = 60_000) {
  const list = ('the of and to in is was he for it with as his on be at by had are but from or have an they which one you were her all she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three').split(' ');
  let s = 0x2545f491;
  const next = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 2 ** 32; };
  const out = [];
  for (let i = 0; i < words; i++) out.push(list[Math.floor(next() * list.length)] + (next() < 0.08 ? '.' : ''));
  return out.join(' ');
}
const TEXT = randomText();

/** Least-squares slope of y over x. */
function slopeOf(points) {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0, sxx = 0;
  for (const [x, y] of points) { sxy += (x - mx) * (y - my); sxx += (x - mx) ** 2; }
  return sxx > 0 ? sxy / sxx : 0;
}
const MB = 2 ** 20;
/** Slope after warm-up, in KiB per 1,000 steps, of a series sampled in MiB. */
const kbPer1000 = (points) => Number((slopeOf(points.filter(([s]) => s > STEPS * WARMUP)) * 1024 * 1000).toFixed(1));
const firstLast = (points) => ({ first: Number(points[0][1].toFixed(1)), last: Number(points.at(-1)[1].toFixed(1)) });

const series = [];
for (const name of BACKENDS) {
  setBackend(name);
  const backend = getBackend();
  const trainer = new LMTrainer({ layers: 1, hidden: HIDDEN, embed: 32, seq: SEQ, batch: BATCH, valEvery: 0, checkpointEvery: 0, seed: 3 }, prepareData(TEXT, { level: 'char', valFraction: 0.05 }));
  const rss = [], heap = [], wasmMem = [], nativeCache = [], mallocInUse = [], mallocHeld = [];
  const t0 = performance.now();
  for (let step = 1; step <= STEPS; step++) {
    trainer.trainStep();
    if (step % EVERY === 0 || step === STEPS) {
      globalThis.gc?.();
      await sleep(10); // the freed array buffers are swept on another thread
      const m = process.memoryUsage();
      rss.push([step, m.rss / MB]);
      heap.push([step, (m.heapUsed + m.external) / MB]);
      if (typeof backend.memoryBytes === 'function') wasmMem.push([step, backend.memoryBytes() / MB]);
      if (typeof backend.memoryStats === 'function') {
        const n = backend.memoryStats();
        nativeCache.push([step, n.cacheBytes / MB]);
        if (n.mallocInUseBytes !== undefined) mallocInUse.push([step, n.mallocInUseBytes / MB]);
        if (n.mallocArenaBytes !== undefined) mallocHeld.push([step, (n.mallocArenaBytes + n.mallocMmapBytes) / MB]);
      }
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const losses = trainer.history.train.map((p) => p.loss);
  const meanLoss = (xs) => Number((xs.reduce((s, x) => s + x, 0) / xs.length).toPrecision(4));
  const line = {
    backend: name, steps: STEPS, model: `char LSTM ${HIDDEN}, seq ${SEQ} x batch ${BATCH}`, seconds: Number(seconds.toFixed(1)),
    rssMB: firstLast(rss), rssSlopeKBPer1000Steps: kbPer1000(rss),
    heapPlusExternalSlopeKBPer1000Steps: kbPer1000(heap),
    ...(wasmMem.length ? { wasmMemoryMB: firstLast(wasmMem), wasmSlopeKBPer1000Steps: kbPer1000(wasmMem) } : {}),
    ...(nativeCache.length ? { nativeCacheMB: firstLast(nativeCache), nativeCacheSlopeKBPer1000Steps: kbPer1000(nativeCache) } : {}),
    ...(mallocInUse.length ? { mallocInUseMB: firstLast(mallocInUse), mallocInUseSlopeKBPer1000Steps: kbPer1000(mallocInUse) } : {}),
    // what malloc holds from the system (in use + free kept for reuse)
    ...(mallocHeld.length ? { mallocHeldMB: firstLast(mallocHeld), mallocHeldSlopeKBPer1000Steps: kbPer1000(mallocHeld) } : {}),
    // mean training loss of the first and the last 50 steps
    lossFirst: meanLoss(losses.slice(0, 50)), lossLast: meanLoss(losses.slice(-50)),
  };
  console.log(JSON.stringify(line));
  series.push({ name: `${name}: resident memory`, points: rss });
  series.push({ name: `${name}: JS heap + external buffers`, points: heap, dashed: true });
  if (wasmMem.length) series.push({ name: `${name}: wasm linear memory`, points: wasmMem });
  if (mallocInUse.length) series.push({ name: `${name}: malloc in use`, points: mallocInUse, dashed: true });
}
writeFileSync(SVG, lineChartSvg(series, { title: `Memory over ${STEPS} training steps (char LSTM ${HIDDEN})`, xLabel: 'step', yLabel: 'MiB' }));
console.log(`wrote ${SVG}`);
