// Event-loop delay (perf_hooks.monitorEventLoopDelay) while training in a worker thread
// (trainInWorker) and while serving with forwardAsync on the native backend; for comparison, the
// same forwards called synchronously. The p99 delays are printed; no timing threshold (the figure
// depends on the machine and its load), only that the work ran and the histogram saw it.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { LSTM, Rng, Tensor, backendStatus, noGrad, noGradAsync, withBackend } from '../src/index.js';
import type * as LM from '../src/lm/index.js';

const TEXT = 'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. '.repeat(10);
const nativeLoads = backendStatus().find((s) => s.name === 'native')?.available ?? false;

/** Runs work while a 10 ms-tick timer and the delay histogram watch the event loop; p99 / max in ms. */
async function measure(work: () => Promise<void>): Promise<{ p50: number; p99: number; max: number; samples: number }> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const ticker = setInterval(() => {}, 10);
  try {
    await work();
  } finally {
    clearInterval(ticker);
    h.disable();
  }
  return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, samples: h.count };
}

const fmt = (r: { p50: number; p99: number; max: number; samples: number }) => `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms (${r.samples} samples)`;

describe('event-loop delay', () => {
  it('while training in a worker thread (trainInWorker)', async () => {
    const lm = (await import(new URL('../dist/lm/index.js', import.meta.url).href)) as typeof LM;
    let steps = 0;
    const r = await measure(async () => {
      const handle = lm.trainInWorker({ text: TEXT, config: { layers: 2, hidden: 64, embed: 16, seq: 32, batch: 8, valEvery: 25 }, steps: 60 }, { onStep: () => { steps++; } });
      const result = await handle.result;
      expect(result.step).toBe(60);
    });
    expect(steps).toBe(60);
    expect(r.samples).toBeGreaterThan(0);
    console.log(`event-loop delay while trainInWorker trains (2-layer LSTM 64, seq 32 x batch 8, 60 steps): ${fmt(r)}`);
  }, 300_000);

  it.skipIf(!nativeLoads)('while serving with forwardAsync on native, and the same forwards called synchronously', async () => {
    await withBackend('native', async () => {
      const rng = new Rng(5);
      const lstm = new LSTM({ inputSize: 64, hiddenSize: 256, numLayers: 2, rng });
      const x = new Tensor(Float32Array.from({ length: 64 * 8 * 64 }, () => rng.normal()), [64, 8, 64]);
      const REQUESTS = 40;
      let done = 0;
      const asyncR = await measure(async () => {
        // four requests in flight at a time, as a server would have
        for (let i = 0; i < REQUESTS; i += 4) {
          await Promise.all([0, 1, 2, 3].map(() => noGradAsync(() => lstm.forwardAsync(x)).then(() => { done++; })));
        }
      });
      const syncR = await measure(async () => {
        for (let i = 0; i < REQUESTS; i++) {
          noGrad(() => lstm.forward(x));
          await new Promise((r) => setImmediate(r));
        }
      });
      expect(done).toBe(REQUESTS);
      expect(asyncR.samples).toBeGreaterThan(0);
      console.log(`event-loop delay serving ${REQUESTS} forwards (2-layer LSTM 256, T 64 x B 8) with forwardAsync: ${fmt(asyncR)}; called synchronously: ${fmt(syncR)}`);
    });
  }, 300_000);
});
