// Admission of the native backend's async jobs (setAsyncJobs, asyncJobStats): at most `limit`
// jobs of a JS thread on libuv's threadpool at once, the others waiting in call order. Admission
// never changes a result: every job equals the same synchronous call bit for bit, whatever the
// limit; a job that fails frees its place for the next; the limit is checked at the boundary.
// The addon must load: these tests fail (never skip) when it does not.
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { SeqForwardArgs } from '../src/backends/backend.js';
import { type NativeBackend, loadNativeAddon, loadNativeBackend } from '../src/backends/native.js';
import { LSTM, Rng, Tensor, mul, noGrad, noGradAsync, sum, withBackend } from '../src/index.js';
import { randArray, rng } from './native-helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const native: NativeBackend = loadNativeBackend();
const addon = loadNativeAddon();

/** A forward of one LSTM direction, T 12 x B 4, I 16, H 64, with fresh output arrays. */
function lstmArgs(seed: number): SeqForwardArgs {
  const r = rng(seed);
  const T = 12, B = 4, I = 16, H = 64, G = 4 * H;
  return {
    cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: randArray(r, T * B * I),
    wIh: randArray(r, G * I, 0.2), wHh: randArray(r, G * H, 0.2), bIh: randArray(r, G), bHh: randArray(r, G), wHr: null,
    h0: randArray(r, B * H), c0: randArray(r, B * H), lengths: null, training: false,
    y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: new Float32Array(B * H),
  };
}
const bitwiseEqual = (a: Float32Array, b: Float32Array) =>
  Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
const fresh = (a: SeqForwardArgs): SeqForwardArgs => ({ ...a, y: new Float32Array(a.y.length), hN: new Float32Array(a.hN.length), cN: new Float32Array(a.cN!.length) });

describe('native async jobs: admission', () => {
  afterEach(() => native.setAsyncJobs(0));

  it('the default limit is a job per core, one fewer than libuv\'s threadpool at most, at least 1', () => {
    const cores = cpus().length;
    const uvThreads = Math.min(1024, Math.max(1, Number(process.env.UV_THREADPOOL_SIZE) || 4));
    const expected = Math.max(1, Math.min(cores, uvThreads - 1));
    expect(native.asyncJobStats().limit).toBe(expected);
    native.setAsyncJobs(3);
    expect(native.asyncJobStats().limit).toBe(3);
    native.setAsyncJobs(0);
    expect(native.asyncJobStats().limit).toBe(expected);
  });

  for (const limit of [1, 2, 8]) {
    it(`limit ${limit}: 12 jobs at once equal the synchronous calls bit for bit, settle in call order, and at most ${limit} run at once`, async () => {
      native.setAsyncJobs(limit);
      const cases = Array.from({ length: 12 }, (_, i) => lstmArgs(100 + i));
      const expected = cases.map((a) => { const s = fresh(a); native.seqForward(s); return s; });
      native.asyncJobStats(true);
      const order: number[] = [];
      const samples: number[] = [];
      const sample = setInterval(() => samples.push(native.asyncJobStats().admitted), 0);
      const outs = cases.map(fresh);
      await Promise.all(outs.map((a, i) => native.seqForwardAsync!(a).then(() => { order.push(i); samples.push(native.asyncJobStats().admitted); })));
      clearInterval(sample);
      const stats = native.asyncJobStats();
      expect(stats.limit).toBe(limit);
      expect(stats.peakExecuting).toBeGreaterThanOrEqual(1);
      expect(stats.peakExecuting).toBeLessThanOrEqual(limit);
      expect(stats.peakWaiting).toBe(Math.max(0, 12 - limit)); // the rest waited in the addon
      expect(Math.max(...samples)).toBeLessThanOrEqual(limit);
      expect(stats.admitted).toBe(0);
      expect(stats.waiting).toBe(0);
      if (limit === 1) expect(order).toEqual([...order].sort((a, b) => a - b)); // one at a time: first called, first settled
      outs.forEach((o, i) => {
        expect(bitwiseEqual(o.y, expected[i].y), `job ${i} y`).toBe(true);
        expect(bitwiseEqual(o.hN, expected[i].hN), `job ${i} hN`).toBe(true);
        expect(bitwiseEqual(o.cN!, expected[i].cN!), `job ${i} cN`).toBe(true);
      });
    }, 60_000);
  }

  it('a job that fails (an output detached while it waits) frees its place: the jobs after it run', async () => {
    native.setAsyncJobs(1);
    const cases = Array.from({ length: 6 }, (_, i) => fresh(lstmArgs(200 + i)));
    const expected = cases.map((a) => { const s = fresh(a); native.seqForward(s); return s; });
    const jobs = cases.map((a) => addon.seqForwardAsync(a));
    structuredClone(cases[1].y.buffer, { transfer: [cases[1].y.buffer] }); // job 1 waits behind job 0
    structuredClone(cases[3].hN.buffer, { transfer: [cases[3].hN.buffer] });
    const outcomes = await Promise.allSettled(jobs);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(String((outcomes[1] as PromiseRejectedResult).reason.message)).toMatch(/an output array was detached or transferred while the job ran/);
    for (const i of [0, 2, 4, 5]) expect(bitwiseEqual(cases[i].y, expected[i].y), `job ${i}`).toBe(true);
    expect(native.asyncJobStats()).toMatchObject({ admitted: 0, waiting: 0 });
  }, 60_000);

  it('a call with bad arguments is rejected at once and takes no place', async () => {
    native.setAsyncJobs(1);
    const good = fresh(lstmArgs(300));
    const running = native.seqForwardAsync!(good);
    await expect(native.seqForwardAsync!({ ...fresh(lstmArgs(301)), H: 65 })).rejects.toThrow(/wIh has 4096 elements, expected 4160/);
    expect(() => addon.seqForwardAsync({ ...fresh(lstmArgs(302)), T: 0 })).toThrow(/T/);
    expect(native.asyncJobStats()).toMatchObject({ admitted: 1, waiting: 0 });
    await running;
    expect(native.asyncJobStats()).toMatchObject({ admitted: 0, waiting: 0 });
  });

  it('raising the limit admits waiting jobs at once', async () => {
    native.setAsyncJobs(1);
    const jobs = Array.from({ length: 5 }, (_, i) => native.seqForwardAsync!(fresh(lstmArgs(400 + i))));
    expect(native.asyncJobStats()).toMatchObject({ admitted: 1, waiting: 4 });
    native.setAsyncJobs(4);
    expect(native.asyncJobStats()).toMatchObject({ admitted: 4, waiting: 1 });
    await Promise.all(jobs);
    expect(native.asyncJobStats()).toMatchObject({ admitted: 0, waiting: 0 });
  });

  it('setAsyncJobs checks n: an integer in 0..1024', () => {
    for (const bad of [-1, 1.5, NaN, 1025, Infinity]) {
      expect(() => native.setAsyncJobs(bad), String(bad)).toThrow(/native\.setAsyncJobs: n must be an integer in 0\.\.1024 \(0: the default\), received/);
    }
    expect(() => addon.setAsyncJobs(-3)).toThrow(/native\.setAsyncJobs/);
    expect(() => (addon.setAsyncJobs as (n: unknown) => void)('2')).toThrow(/native\.setAsyncJobs/);
  });

  it('forwardAsync on a model under limit 1: outputs and gradients equal the synchronous ones; switching the backend while jobs wait changes nothing', async () => {
    native.setAsyncJobs(1);
    await withBackend('native', async () => {
      const r = new Rng(9);
      const lstm = new LSTM({ inputSize: 16, hiddenSize: 48, numLayers: 2, bidirectional: true, rng: r });
      const x = new Tensor(Float32Array.from({ length: 10 * 3 * 16 }, () => r.normal()), [10, 3, 16]);
      const sync = noGrad(() => lstm.forward(x));
      const out = lstm.forward(x).output;
      sum(mul(out, out)).backward();
      const grads = lstm.parameters().map((p) => Float32Array.from(p.grad!));
      lstm.zeroGrad();

      const pending = [0, 1, 2].map(() => noGradAsync(() => lstm.forwardAsync(x)));
      const training = lstm.forwardAsync(x); // waits behind the three
      const results = await withBackend('reference', () => Promise.all(pending));
      for (const res of results) expect(bitwiseEqual(res.output.data, sync.output.data)).toBe(true);
      const trained = (await training).output;
      expect(bitwiseEqual(trained.data, sync.output.data)).toBe(true);
      sum(mul(trained, trained)).backward();
      lstm.parameters().forEach((p, i) => expect(bitwiseEqual(p.grad!, grads[i]), `gradient ${i}`).toBe(true));
    });
  }, 60_000);

  it('forwardAsync gives each job the addon\'s copy of every weight, made once while the weight\'s change counter holds, and new after every kind of write', async () => {
    await withBackend('native', async () => {
      const r = new Rng(4);
      const lstm = new LSTM({ inputSize: 8, hiddenSize: 16, numLayers: 2, rng: r });
      const x = new Tensor(Float32Array.from({ length: 5 * 2 * 8 }, () => r.normal()), [5, 2, 8]);
      const seen: unknown[][] = []; // the weights as the addon received them, per serve: [layer 0 wIh, layer 1 wHh]
      let copiesMade = 0;
      const original = { seqForwardAsync: addon.seqForwardAsync, seqForwardStackAsync: addon.seqForwardStackAsync, copyWeight: addon.copyWeight };
      const see = (a: Parameters<typeof addon.seqForwardAsync>[0]) => { if (a.I === 8) seen.push([a.wIh]); else seen.at(-1)!.push(a.wHh); };
      addon.seqForwardAsync = (a) => { see(a); return original.seqForwardAsync.call(addon, a); };
      addon.seqForwardStackAsync = (calls) => { calls.forEach(see); return original.seqForwardStackAsync.call(addon, calls); };
      addon.copyWeight = (w) => { copiesMade++; return original.copyWeight.call(addon, w); };
      try {
        const wHh = lstm.weights[1][0].wHh;
        // each serve: the output equals the synchronous forward on the weights as they are now
        const serve = async () => {
          const out = await noGradAsync(() => lstm.forwardAsync(x));
          expect(bitwiseEqual(out.output.data, noGrad(() => lstm.forward(x)).output.data)).toBe(true);
          return seen.at(-1)!;
        };
        const [first0, first1] = await serve();
        for (const h of [first0, first1]) expect(h instanceof Float32Array, 'a handle of the addon, not an array').toBe(false);
        const made = copiesMade;
        expect(made).toBe(lstm.parameters().length); // one copy per weight
        const [again0, again1] = await serve();
        expect(again0).toBe(first0); // unchanged: the same copies, none made
        expect(again1).toBe(first1);
        expect(copiesMade).toBe(made);
        const kept = wHh.data; // handing out data counts as a write
        const [, second] = await serve();
        expect(second).not.toBe(first1);
        expect(copiesMade).toBe(made + 1); // only the weight written
        expect((await serve())[1]).toBe(second);
        kept[0] += 1; // a write through a kept array: seen after markChanged()
        wHh.markChanged();
        const [, third] = await serve();
        expect(third).not.toBe(second);
        lstm.loadStateDict(new Map([...lstm.stateDict()].map(([k, v]) => [k, { shape: v.shape, data: v.data.map((y) => y * 0.5) }])));
        const [fourth0, fourth1] = await serve();
        expect(fourth0).not.toBe(first0);
        expect(fourth1).not.toBe(third);
        expect((await serve())[1]).toBe(fourth1);
      } finally {
        Object.assign(addon, original);
      }
    });
  }, 60_000);

  it.skipIf(process.platform !== 'linux')(`RNNKIT_JOB_NICE=10 (Linux): a job's thread runs at nice +10 while the job runs and gets its priority back after, where the process may restore it${process.platform !== 'linux' ? ' (skipped: not Linux)' : ''}`, () => {
    const src = `
      import { readdirSync, readFileSync } from 'node:fs';
      import { execSync } from 'node:child_process';
      const { loadNativeBackend } = await import(${JSON.stringify(new URL('../dist/backends/native.js', import.meta.url).href)});
      const native = loadNativeBackend();
      const nices = () => readdirSync('/proc/self/task').map((t) => { try { return Number(readFileSync('/proc/self/task/' + t + '/stat', 'utf8').split(') ')[1].split(' ')[16]); } catch { return 0; } });
      const T = 400, B = 8, I = 64, H = 256, G = 4 * H;
      const a = () => ({ cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: new Float32Array(T * B * I), wIh: new Float32Array(G * I),
        wHh: new Float32Array(G * H), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null, training: false,
        y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: new Float32Array(B * H) });
      let during = 0;
      const job = native.seqForwardAsync(a());
      const poll = setInterval(() => { during = Math.max(during, ...nices()); }, 1);
      await job;
      clearInterval(poll);
      await new Promise((r) => setTimeout(r, 20));
      // whether this process may lower a nice value again (root, CAP_SYS_NICE or RLIMIT_NICE)
      let mayRestore = false;
      try { execSync('renice -n 5 -p ' + process.pid + ' >/dev/null && renice -n 0 -p ' + process.pid + ' >/dev/null', { stdio: 'ignore' }); mayRestore = true; } catch {}
      console.log(JSON.stringify({ during, after: Math.max(...nices()), mayRestore }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, RNNKIT_JOB_NICE: '10' } });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { during: number; after: number; mayRestore: boolean };
    expect(out.after).toBe(0); // every thread back at its priority (or never changed)
    expect(out.during).toBe(out.mayRestore ? 10 : 0);
  }, 60_000);

  it('a worker_thread that ends while its jobs wait: the process exits cleanly', () => {
    const src = `
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const { parentPort } = require('node:worker_threads');
        import(${JSON.stringify(new URL('../dist/backends/native.js', import.meta.url).href)}).then(({ loadNativeBackend }) => {
          const native = loadNativeBackend();
          native.setAsyncJobs(1);
          const T = 64, B = 8, I = 64, H = 256, G = 4 * H;
          const a = () => ({ cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: new Float32Array(T * B * I), wIh: new Float32Array(G * I),
            wHh: new Float32Array(G * H), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null, training: false,
            y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: new Float32Array(B * H) });
          for (let i = 0; i < 8; i++) native.seqForwardAsync(a());
          parentPort.postMessage(native.asyncJobStats().waiting);
        });
      \`, { eval: true });
      w.once('message', (waiting) => { console.log('waiting', waiting); w.terminate().then(() => console.log('terminated')); });
    `;
    const r = spawnSync(process.execPath, ['-e', src], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/waiting 7\nterminated/);
  }, 60_000);
});
