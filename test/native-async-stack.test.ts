// forwardAsync without a graph on native runs every layer and direction of a model as ONE async
// job (seqForwardStackAsync): one completion per request, the layers' outputs kept in the job.
// Checked: the results equal the synchronous forward bit for bit (stacked, bidirectional,
// projection, lengths, initial states; LSTM, GRU, RNN), one addon call per request, a recorded
// forward and dropout between layers in training still run call by call, and the addon's entry
// checks its arguments. While a job runs, its threads give up their core between time steps at
// most every RNNKIT_JOB_YIELD_US µs (300 by default, 0: never), counted by asyncJobStats().yields.
// The addon must load: these tests fail (never skip) when it does not.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { SeqForwardArgs } from '../src/backends/backend.js';
import { type NativeBackend, loadNativeAddon, loadNativeBackend } from '../src/backends/native.js';
import { GRU, LSTM, RNN, Rng, Tensor, noGrad, noGradAsync, withBackend } from '../src/index.js';
import { randArray, rng } from './native-helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const native: NativeBackend = loadNativeBackend();
const addon = loadNativeAddon() as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;

const bitwiseEqual = (a: Float32Array, b: Float32Array) =>
  Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

/** Counts the addon's async forward entries called while f runs. */
async function countCalls<T>(f: () => Promise<T>): Promise<{ value: T; stack: number; single: number }> {
  const stackFn = addon.seqForwardStackAsync, singleFn = addon.seqForwardAsync;
  let stack = 0, single = 0;
  addon.seqForwardStackAsync = (...a) => { stack++; return stackFn(...a); };
  addon.seqForwardAsync = (...a) => { single++; return singleFn(...a); };
  try {
    return { value: await f(), stack, single };
  } finally {
    addon.seqForwardStackAsync = stackFn;
    addon.seqForwardAsync = singleFn;
  }
}

/** One LSTM direction, T 6 x B 3, with fresh outputs; x given (a layer's input may be another's y). */
function lstmArgs(seed: number, x: Float32Array, I: number, H: number, y = new Float32Array(6 * 3 * H)): SeqForwardArgs {
  const r = rng(seed);
  const T = 6, B = 3, G = 4 * H;
  return {
    cell: 'lstm', T, B, I, H, P: 0, reverse: false, x,
    wIh: randArray(r, G * I, 0.3), wHh: randArray(r, G * H, 0.3), bIh: randArray(r, G), bHh: randArray(r, G), wHr: null,
    h0: randArray(r, B * H), c0: randArray(r, B * H), lengths: null, training: false,
    y, yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: new Float32Array(B * H),
  };
}

describe('forwardAsync without a graph: one native job per request', () => {
  it('stacked and bidirectional models (projection, lengths, h0/c0; LSTM, GRU, RNN) equal the synchronous forward bit for bit, in one addon call each', async () => {
    await withBackend('native', async () => {
      const r = new Rng(21);
      const models = [
        new LSTM({ inputSize: 5, hiddenSize: 9, numLayers: 3, bidirectional: true, projSize: 4, rng: r }),
        new LSTM({ inputSize: 5, hiddenSize: 40, numLayers: 2, rng: r }),
        new GRU({ inputSize: 5, hiddenSize: 7, numLayers: 2, bidirectional: true, rng: r }),
        new RNN({ inputSize: 5, hiddenSize: 6, numLayers: 2, nonlinearity: 'relu', rng: r }),
        new GRU({ inputSize: 5, hiddenSize: 6, rng: r }),
      ];
      for (const [i, m] of models.entries()) {
        const name = `model ${i} (${m.constructor.name})`;
        const D = m.bidirectional ? 2 : 1, R = m.projSize || m.hiddenSize;
        const x = new Tensor(Float32Array.from({ length: 8 * 3 * 5 }, () => r.normal()), [8, 3, 5]);
        const h0 = new Tensor(Float32Array.from({ length: m.numLayers * D * 3 * R }, () => r.normal()), [m.numLayers * D, 3, R]);
        const c0 = m instanceof LSTM ? new Tensor(Float32Array.from({ length: m.numLayers * D * 3 * m.hiddenSize }, () => r.normal()), [m.numLayers * D, 3, m.hiddenSize]) : undefined;
        const state = { h0, c0, lengths: [8, 3, 5] };
        const sync = noGrad(() => m.forward(x, state));
        const { value: res, stack, single } = await countCalls(() => noGradAsync(() => m.forwardAsync(x, state)));
        expect({ stack, single }, name).toEqual({ stack: 1, single: 0 });
        expect(bitwiseEqual(res.output.data, sync.output.data), `${name} output`).toBe(true);
        expect(bitwiseEqual(res.hN.data, sync.hN.data), `${name} hN`).toBe(true);
        if (sync.cN) expect(bitwiseEqual(res.cN!.data, sync.cN.data), `${name} cN`).toBe(true);
      }
    });
  }, 60_000);

  it('a recorded forward, and dropout between layers in training, run call by call', async () => {
    await withBackend('native', async () => {
      const r = new Rng(22);
      const x = new Tensor(Float32Array.from({ length: 4 * 2 * 5 }, () => r.normal()), [4, 2, 5]);
      const m = new LSTM({ inputSize: 5, hiddenSize: 6, numLayers: 2, rng: r });
      expect(await countCalls(async () => { await m.forwardAsync(x); })).toMatchObject({ stack: 0, single: 2 });
      const dropped = new LSTM({ inputSize: 5, hiddenSize: 6, numLayers: 2, dropout: 0.5, rng: r });
      expect(await countCalls(() => noGradAsync(async () => { await dropped.forwardAsync(x); }))).toMatchObject({ stack: 0, single: 2 });
      dropped.eval();
      expect(await countCalls(() => noGradAsync(async () => { await dropped.forwardAsync(x); }))).toMatchObject({ stack: 1, single: 0 });
    });
  }, 60_000);

  it("seqForwardStackAsync: a call reads an earlier call's y as its x from the job, that y array is left as it was, the last results go back", async () => {
    const x0 = randArray(rng(1), 6 * 3 * 4);
    const layer1 = lstmArgs(2, x0, 4, 8);
    layer1.y.fill(7); // left as it was: the job keeps its own buffer for it
    const layer2 = lstmArgs(3, layer1.y, 8, 5);
    await native.seqForwardStackAsync([layer1, layer2]);
    expect(layer1.y.every((v) => v === 7)).toBe(true);
    const s1 = lstmArgs(2, x0, 4, 8);
    native.seqForward(s1);
    const s2 = lstmArgs(3, s1.y, 8, 5);
    native.seqForward(s2);
    expect(bitwiseEqual(layer2.y, s2.y)).toBe(true);
    expect(bitwiseEqual(layer1.hN, s1.hN) && bitwiseEqual(layer1.cN!, s1.cN!)).toBe(true);
    expect(bitwiseEqual(layer2.hN, s2.hN) && bitwiseEqual(layer2.cN!, s2.cN!)).toBe(true);
  });

  it('seqForwardStackAsync checks its arguments: a non-empty array of inference calls, each checked as seqForward checks it', async () => {
    const x = randArray(rng(4), 6 * 3 * 4);
    await expect(native.seqForwardStackAsync([])).rejects.toThrow(/calls must be a non-empty array/);
    await expect(native.seqForwardStackAsync([{ ...lstmArgs(5, x, 4, 8), training: true }])).rejects.toThrow(/calls\[0\]\.training must be false/);
    await expect(native.seqForwardStackAsync([lstmArgs(5, x, 4, 8), lstmArgs(6, x, 5, 8)])).rejects.toThrow(/x/);
    // the addon itself, past the TypeScript layer
    await expect(async () => addon.seqForwardStackAsync('calls')).rejects.toThrow(/calls must be an array/);
    await expect(async () => addon.seqForwardStackAsync([])).rejects.toThrow(/1\.\.4096 calls, received 0/);
    await expect(async () => addon.seqForwardStackAsync([5])).rejects.toThrow(/calls\[0\]/);
    await expect(async () => addon.seqForwardStackAsync([{ ...lstmArgs(5, x, 4, 8), training: true }])).rejects.toThrow(/training must be false/);
    const short = lstmArgs(7, x, 4, 8);
    await expect(async () => addon.seqForwardStackAsync([short, lstmArgs(8, short.y, 9, 5)])).rejects.toThrow(/x/);
  });

  it('the jobs yield their core between time steps: at most one yield per interval of RNNKIT_JOB_YIELD_US, none with 0', () => {
    // in a fresh process per setting (the interval is read once): one job of 400 steps, its wall time and yields
    const src = `
      const { loadNativeBackend } = await import(${JSON.stringify(new URL('../dist/backends/native.js', import.meta.url).href)});
      const native = loadNativeBackend();
      const T = 400, B = 8, I = 64, H = 256, G = 4 * H;
      const args = () => ({ cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: new Float32Array(T * B * I).fill(0.1), wIh: new Float32Array(G * I).fill(0.01),
        wHh: new Float32Array(G * H).fill(0.01), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null, training: false,
        y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: new Float32Array(B * H) });
      await native.seqForwardStackAsync([args()]);
      native.asyncJobStats(true);
      const t0 = performance.now();
      await native.seqForwardStackAsync([args(), args()]);
      console.log(JSON.stringify({ ms: performance.now() - t0, yields: native.asyncJobStats().yields }));
    `;
    const run = (us: string) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, RNNKIT_JOB_YIELD_US: us } });
      expect(r.stderr).toBe('');
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; yields: number };
    };
    const byDefault = run('');
    console.log(`one job of 2 x 400 steps: ${byDefault.ms.toFixed(0)} ms, ${byDefault.yields} yields`);
    expect(byDefault.yields).toBeGreaterThan(0);
    // per thread at most one yield per 300 µs (the job's thread and the pool's: 2 threads at most here)
    expect(byDefault.yields).toBeLessThanOrEqual(Math.ceil((2 * byDefault.ms * 1000) / 300) + 2);
    const never = run('0');
    expect(never.yields).toBe(0);
    const rare = run('1000000'); // once a second at most: none in a job shorter than that
    if (rare.ms < 1000) expect(rare.yields).toBe(0);
  }, 120_000);
});
