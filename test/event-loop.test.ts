// Event-loop delay (perf_hooks.monitorEventLoopDelay) while training in a worker thread
// (trainInWorker) and while serving with forwardAsync on the native backend; for comparison, the
// same forwards called synchronously. The p99 delays are printed, not asserted: a delay is wall
// time, which depends on the machine and its load. What is asserted is the main thread's own CPU
// time (Linux: /proc/thread-self/schedstat, which a busy machine does not inflate): the
// synchronous part of every forwardAsync call is short, and the main thread's whole share of a
// served request is a small part of what the same forward costs it when called synchronously.
// The native backend admits a few async jobs at a time (setAsyncJobs; the default leaves the cores
// to one job and the event loop): asserted from the addon's counters, never more jobs running at
// once than the limit; the same requests with all four admitted at once are printed beside.
// Each serving measurement runs until the histogram holds 300 samples (at most 8 s), so its p99 is
// a percentile rather than the worst sample; beside it, how long the loop's thread waited, ready,
// for a core (schedstat's second field): the part of the delay that other threads' work made. forwardAsync shares the addon's copy of each weight
// (copyWeight) instead of copying the weights for every job: asserted from the addon's byte counters
// (a copy per call copies every weight on the main thread; shared copies copy none), with the
// main thread's CPU per request of each printed beside. Both layers of a request run as one job
// (seqForwardStackAsync): the main thread copies the model's input, not layer 1's output.
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { LSTM, Rng, Tensor, backendStatus, getBackend, noGrad, noGradAsync, withBackend } from '../src/index.js';
import type * as LM from '../src/lm/index.js';

const TEXT = 'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. '.repeat(10);
const nativeLoads = backendStatus().find((s) => s.name === 'native')?.available ?? false;

/** Delay samples per measurement while serving (the timer ticks every 10 ms): p99 is then a percentile, not the worst sample. */
const SAMPLES = 300;
/** A measurement stops at SAMPLES or after this long, so the test stays short on a slow or busy machine. */
const MAX_MS = 8_000;

/** Delays in ms; waited: ms the main thread spent ready to run but waiting for a core (Linux), else NaN. */
type Delays = { p50: number; p99: number; max: number; samples: number; waited: number };

/**
 * Runs work while a 10 ms-tick timer and the delay histogram watch the event loop; work is given
 * enough(): true once the histogram holds SAMPLES samples (or MAX_MS passed). Delays in ms.
 */
async function measure(work: (enough: () => boolean) => Promise<void>): Promise<Delays> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  const w0 = threadWaitMs();
  h.enable();
  const ticker = setInterval(() => {}, 10);
  const t0 = performance.now();
  try {
    await work(() => h.count >= SAMPLES || performance.now() - t0 > MAX_MS);
  } finally {
    clearInterval(ticker);
    h.disable();
  }
  return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, samples: h.count, waited: threadWaitMs() - w0 };
}

const SCHEDSTAT = '/proc/thread-self/schedstat';
const hasSchedstat = existsSync(SCHEDSTAT);
/** CPU time the calling thread has run, in ms (the first field of schedstat, in ns). */
const threadCpuMs = () => Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6;
/** Time the calling thread has waited ready to run for a core, in ms (the second field of schedstat), or NaN. */
const threadWaitMs = () => (hasSchedstat ? Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[1]) / 1e6 : NaN);

const fmt = (r: Delays) => `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms (${r.samples} samples` +
  (Number.isNaN(r.waited) ? ')' : `; the loop's thread waited ${r.waited.toFixed(0)} ms for a core)`);

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
      const MIN_REQUESTS = 40; // each measurement serves at least this many, and on until it has SAMPLES samples
      for (let i = 0; i < 4; i++) { await noGradAsync(() => lstm.forwardAsync(x)); noGrad(() => lstm.forward(x)); } // warm-up
      const backend = getBackend();
      let done = 0;
      const syncParts: number[] = []; // main-thread CPU of each call's synchronous part, ms
      const call = () => {
        const c0 = hasSchedstat ? threadCpuMs() : 0;
        const p = noGradAsync(() => lstm.forwardAsync(x)).then(() => { done++; });
        if (hasSchedstat) syncParts.push(threadCpuMs() - c0);
        return p;
      };
      // four requests in flight at a time, as a server would have; returns the requests served
      const serve = async (enough: () => boolean) => {
        let n = 0;
        for (; n < MIN_REQUESTS || !enough(); n += 4) await Promise.all([0, 1, 2, 3].map(call));
        return n;
      };
      backend.asyncJobStats!(true);
      let served = 0;
      let mainCpuAsync = 0;
      const asyncR = await measure(async (enough) => {
        const c0 = hasSchedstat ? threadCpuMs() : 0;
        served = await serve(enough);
        if (hasSchedstat) mainCpuAsync = (threadCpuMs() - c0) / served;
      });
      const jobs = backend.asyncJobStats!();
      // the default admission: never more jobs running at once than the limit; with fewer cores
      // than requests in flight, the others waited
      expect(jobs.limit).toBe(Math.max(1, Math.min(cpus().length, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1)));
      expect(jobs.peakExecuting).toBeGreaterThanOrEqual(1);
      expect(jobs.peakExecuting).toBeLessThanOrEqual(jobs.limit);
      if (jobs.limit < 4) expect(jobs.peakWaiting).toBeGreaterThanOrEqual(4 - jobs.limit);
      backend.setAsyncJobs!(4);
      let servedAll = 0;
      const allR = await measure(async (enough) => { servedAll = await serve(enough); });
      backend.setAsyncJobs!(0);
      let mainCpuSync = 0;
      let servedSync = 0;
      const syncR = await measure(async (enough) => {
        const c0 = hasSchedstat ? threadCpuMs() : 0;
        for (; servedSync < MIN_REQUESTS || !enough(); servedSync++) {
          noGrad(() => lstm.forward(x));
          await new Promise((r) => setImmediate(r));
        }
        if (hasSchedstat) mainCpuSync = (threadCpuMs() - c0) / servedSync;
      });
      expect(done).toBe(served + servedAll);
      expect(asyncR.samples).toBeGreaterThan(0);
      console.log(`event-loop delay serving forwards (2-layer LSTM 256, T 64 x B 8) with forwardAsync, 4 in flight, ${jobs.limit} admitted at a time (${cpus().length} cores, ${backend.info().threads} pool threads), ${served} requests: ${fmt(asyncR)}; all 4 admitted at once, ${servedAll} requests: ${fmt(allR)}; called synchronously, ${servedSync} forwards: ${fmt(syncR)}`);
      if (!hasSchedstat) {
        console.log(`no ${SCHEDSTAT} on this system: the main thread's CPU time is not checked`);
        return;
      }
      syncParts.sort((a, b) => a - b);
      console.log(`main-thread CPU per request: forwardAsync ${mainCpuAsync.toFixed(2)} ms (synchronous part median ${syncParts[syncParts.length >> 1].toFixed(2)} ms, max ${syncParts.at(-1)!.toFixed(2)} ms), synchronous forward ${mainCpuSync.toFixed(2)} ms`);
      // no call blocks the event loop for long (a generous bound: a call takes about 1 ms of CPU)
      expect(syncParts.at(-1)!).toBeLessThan(25);
      // the kernels run elsewhere: the main thread does well under half the work it does for a synchronous forward
      expect(mainCpuAsync).toBeLessThan(0.5 * mainCpuSync);
    });
  }, 300_000);

  it.skipIf(!nativeLoads)("forwardAsync on native shares the addon's weight copies: no weight is copied on the main thread per request", async () => {
    await withBackend('native', async () => {
      const rng = new Rng(6);
      const lstm = new LSTM({ inputSize: 64, hiddenSize: 256, numLayers: 2, rng });
      const x = new Tensor(Float32Array.from({ length: 64 * 8 * 64 }, () => rng.normal()), [64, 8, 64]);
      const weightBytes = 4 * lstm.parameters().reduce((n, p) => n + p.size, 0);
      // the model's input only: the two layers run as one job, which keeps layer 1's output for layer 2
      const inputBytes = 4 * 64 * 8 * 64;
      const backend = getBackend();
      // without copyWeight, recurrent.ts hands the weights over as arrays and the addon copies them for every job
      const perCallCopies = async (f: () => Promise<unknown>) => {
        Object.defineProperty(backend, 'copyWeight', { value: undefined, configurable: true });
        try { await f(); } finally { delete (backend as { copyWeight?: unknown }).copyWeight; }
      };
      const round = () => Promise.all([0, 1, 2, 3].map(() => noGradAsync(() => lstm.forwardAsync(x))));
      await round();
      await perCallCopies(round);
      // rounds of four requests in turn, so that the machine's load falls on both alike
      const ROUNDS = 30;
      const cpu = { shared: 0, perCall: 0 };
      const bytes = { shared: { copiedBytes: 0, sharedBytes: 0 }, perCall: { copiedBytes: 0, sharedBytes: 0 } };
      const take = (into: { copiedBytes: number; sharedBytes: number }) => {
        const s = backend.asyncJobStats!(true);
        into.copiedBytes += s.copiedBytes;
        into.sharedBytes += s.sharedBytes;
      };
      backend.asyncJobStats!(true);
      for (let i = 0; i < ROUNDS; i++) {
        let c0 = hasSchedstat ? threadCpuMs() : 0;
        await round();
        if (hasSchedstat) cpu.shared += threadCpuMs() - c0;
        take(bytes.shared);
        c0 = hasSchedstat ? threadCpuMs() : 0;
        await perCallCopies(round);
        if (hasSchedstat) cpu.perCall += threadCpuMs() - c0;
        take(bytes.perCall);
      }
      const requests = 4 * ROUNDS;
      // shared: every job reads the weight copies, the main thread copies only the inputs
      expect(bytes.shared.sharedBytes).toBe(requests * weightBytes);
      expect(bytes.shared.copiedBytes).toBe(requests * inputBytes);
      // a copy per call: the weights too, on the main thread, for every request
      expect(bytes.perCall.sharedBytes).toBe(0);
      expect(bytes.perCall.copiedBytes).toBe(requests * (inputBytes + weightBytes));
      const perRequest = (ms: number) => (ms / requests).toFixed(2);
      console.log(`main thread per forwardAsync request (2-layer LSTM 256, ${(weightBytes / 1e6).toFixed(1)} MB of weights): ${(bytes.shared.copiedBytes / requests / 1e6).toFixed(2)} MB copied with the shared weight copies, ${(bytes.perCall.copiedBytes / requests / 1e6).toFixed(2)} MB with a copy per call` +
        (hasSchedstat ? `; CPU ${perRequest(cpu.shared)} ms against ${perRequest(cpu.perCall)} ms` : ''));
    });
  }, 300_000);
});
