// The Cloudflare Worker example (examples/worker) under miniflare (workerd, the Workers runtime),
// bundled as wrangler bundles it and reached with real HTTP requests on 127.0.0.1: predictions
// match rnnkit in Node, generated text matches `rnnkit sample` byte for byte, bad requests get a
// 4xx with a message and the Worker keeps serving. Prints the CPU time per request of the workerd
// process (Linux /proc). Needs `npm run build` (dist/).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LSTM, Linear, Tensor, noGrad, readSafetensors, reshape, select } from '../src/index.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const EXAMPLE = join(ROOT, 'examples/worker');
const LM_DIR = join(EXAMPLE, 'model/lm');

let mf: Miniflare;
let base = '';

/** A request body of n bytes ('x') sent in 64 KiB chunks, without a content-length. */
const chunked = (n: number) => new ReadableStream<Uint8Array>({
  start(c) {
    for (let i = 0; i < n; i += 65536) c.enqueue(new Uint8Array(Math.min(65536, n - i)).fill(120));
    c.close();
  },
});
const post = (path: string, body: unknown) => fetch(`${base}${path}`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body),
});

// the adding problem: a value and a marker per step; the target is the sum of the two marked values
function addingSequence(T: number, seed: number, i: number, j: number): { x: number[][]; sum: number } {
  let s = seed;
  const rand = () => { s = (s * 1103515245 + 12345) % 2 ** 31; return s / 2 ** 31; };
  const x = Array.from({ length: T }, (_, t) => [rand(), t === i || t === j ? 1 : 0]);
  return { x, sum: x[i][0] + x[j][0] };
}

/** The same model in Node (rnnkit, this process): LSTM -> last hidden state -> Linear. */
function nodePredict(xs: number[][][]): number[] {
  const st = readSafetensors(new Uint8Array(readFileSync(join(EXAMPLE, 'model/adding.safetensors'))));
  const part = (p: string) => new Map([...st.tensors].filter(([k]) => k.startsWith(p)).map(([k, v]) => [k.slice(p.length), v]));
  const H = Number(st.metadata.hidden_size);
  const lstm = new LSTM({ inputSize: 2, hiddenSize: H });
  const fc = new Linear(H, 1);
  lstm.loadStateDict(part('lstm.'));
  fc.loadStateDict(part('fc.'));
  const T = xs[0].length;
  const B = xs.length;
  const data = new Float32Array(T * B * 2);
  xs.forEach((x, b) => x.forEach((row, t) => { data[(t * B + b) * 2] = row[0]; data[(t * B + b) * 2 + 1] = row[1]; }));
  return noGrad(() => Array.from(fc.forward(reshape(select(lstm.forward(new Tensor(data, [T, B, 2])).hN, 0), [B, H])).data));
}

/** Process ids of this process's children named workerd. */
function workerdPids(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    const kids = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').trim();
    for (const pid of kids ? kids.split(/\s+/).map(Number) : []) {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'workerd') pids.push(pid);
    }
  }
  return pids;
}

/** User + system CPU seconds of the given processes (Linux). */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  }
  return ticks / 100; // USER_HZ
}

beforeAll(async () => {
  expect(existsSync(join(ROOT, 'dist/wasm-entry.js')), 'dist/ (run npm run build)').toBe(true);
  const { buildWorker, MODULE_RULES } = await import('../examples/worker/build.mjs');
  const script: string = await buildWorker(mkdtempSync(join(tmpdir(), 'rnnkit-worker-')));
  const { Miniflare } = await import('miniflare');
  mf = new Miniflare({
    modules: true, scriptPath: script, modulesRoot: dirname(script), modulesRules: MODULE_RULES,
    compatibilityDate: '2024-09-23', host: '127.0.0.1', port: 0,
    // the plain SIMD build: the same bits as rnnkit's wasm backend in Node, for the exact comparisons
    bindings: { RNNKIT_WASM: 'plain' },
  });
  base = (await mf.ready).toString().replace(/\/$/, '');
}, 120_000);

afterAll(async () => {
  await mf?.dispose();
});

describe('examples/worker under miniflare (workerd), over HTTP', () => {
  it('GET / describes the endpoints and the backend', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    const body = await res.json() as { backend: string; endpoints: Record<string, unknown> };
    expect(body.backend).toBe('wasm (simd128)');
    expect(Object.keys(body.endpoints)).toEqual(['POST /predict', 'POST /generate', 'GET /generate']);
  });

  it('POST /predict: [T][F] and [T][B][F] give the predictions of the same model in Node, close to the sums', async () => {
    const seqs = [addingSequence(30, 1, 3, 20), addingSequence(30, 2, 10, 21), addingSequence(30, 3, 0, 29), addingSequence(30, 4, 14, 15)];
    const want = nodePredict(seqs.map((s) => s.x));
    const one = await post('/predict', { x: seqs[0].x });
    expect(one.status).toBe(200);
    const r1 = await one.json() as { y: number[]; shape: number[] };
    expect(r1.shape).toEqual([1]);
    expect(r1.y[0]).toBeCloseTo(want[0], 5);

    // [T][B][F]: time-major, as rnnkit and PyTorch take a batch
    const batch = seqs[0].x.map((_, t) => seqs.map((s) => s.x[t]));
    const rb = await (await post('/predict', { x: batch })).json() as { y: number[][]; shape: number[] };
    expect(rb.shape).toEqual([4, 1]);
    rb.y.forEach((row, b) => {
      expect(row[0]).toBeCloseTo(want[b], 5);
      expect(Math.abs(row[0] - seqs[b].sum)).toBeLessThan(0.25); // the trained model solves the task
    });

    // any length the model was trained on (4 to 50 steps)
    for (const seq of [addingSequence(4, 5, 1, 2), addingSequence(50, 6, 5, 40)]) {
      const r = await (await post('/predict', { x: seq.x })).json() as { y: number[] };
      expect(r.y[0]).toBeCloseTo(nodePredict([seq.x])[0], 5);
      expect(Math.abs(r.y[0] - seq.sum)).toBeLessThan(0.25);
    }
  });

  it('POST and GET /generate stream exactly the text of rnnkit sample with the same settings', async () => {
    const s = { prime: 'Call me ', length: 300, temperature: 0.8, topP: 0.95, seed: 5 };
    const cli = execFileSync(process.execPath, [join(ROOT, 'bin/rnnkit.js'), 'sample', LM_DIR, '--prime', s.prime,
      '--length', String(s.length), '--temperature', String(s.temperature), '--top-p', String(s.topP), '--seed', String(s.seed),
      '--backend', 'wasm'], { encoding: 'utf8' }).replace(/\n$/, '');
    const res = await post('/generate', s);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.headers.get('content-length')).toBeNull(); // streamed
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let chunks = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) { text += decoder.decode(r.value, { stream: true }); chunks++; }
    expect(chunks).toBeGreaterThan(0);
    expect(Array.from(text).length).toBe(s.prime.length + s.length);
    expect(text).toBe(cli);
    const q = new URLSearchParams({ prime: s.prime, length: String(s.length), temperature: String(s.temperature), topP: String(s.topP), seed: String(s.seed) });
    expect(await (await fetch(`${base}/generate?${q}`)).text()).toBe(cli);
  });

  it('bad requests: a 4xx with a message naming the field, and the Worker keeps serving', async () => {
    const good = addingSequence(30, 1, 3, 20).x;
    const before = await (await post('/predict', { x: good })).json() as { y: number[] };
    const cases: Array<[() => Promise<Response>, number, RegExp]> = [
      [() => post('/predict', 'not json'), 400, /^body: expected JSON, received invalid JSON/],
      [() => post('/predict', ''), 400, /^body: expected JSON, received nothing$/],
      [() => post('/predict', [1, 2]), 400, /^body: expected \{"x": \[T\]\[F\] or \[T\]\[B\]\[F\]\}, received an array of 2$/],
      [() => post('/predict', {}), 400, /^x: expected a non-empty array \[T\]\[F\] or \[T\]\[B\]\[F\], received nothing$/],
      [() => post('/predict', { x: [] }), 400, /^x: expected a non-empty array/],
      [() => post('/predict', { x: [1, 2] }), 400, /^x: expected \[T\]\[F\] or \[T\]\[B\]\[F\] numbers, received 1 level of arrays$/],
      [() => post('/predict', { x: [[[[1]]]] }), 400, /received 4 levels of arrays$/],
      [() => post('/predict', { x: [[1, 2], [3]] }), 400, /^x\[1\]: expected an array of 2 \(as x\[0\]\), received an array of 1$/],
      [() => post('/predict', { x: [[1, 2], 5] }), 400, /^x\[1\]: expected an array of 2 \(as x\[0\]\), received 5$/],
      [() => post('/predict', { x: [[0.5, 'a']] }), 400, /^x\[0\]\[1\]: expected a finite number, received "a"$/],
      [() => post('/predict', { x: [[0.5, null]] }), 400, /^x\[0\]\[1\]: expected a finite number, received null$/],
      [() => post('/predict', '{"x": [[0.5, 1], [1e39, 0]]}'), 400, /^x\[1\]\[0\]: expected a number within float32 range \(±3.4e38\), received 1e\+39$/],
      [() => post('/predict', { x: [[1, 2, 3]] }), 400, /^x: expected 2 features per step \(F\), received 3 \(shape 1 x 3\)$/],
      [() => post('/predict', { x: [[[1, 2, 3]]] }), 400, /^x: expected 2 features per step \(F\), received 3 \(shape 1 x 1 x 3\)$/],
      [() => post('/predict', { x: Array.from({ length: 5000 }, () => [0, 0]) }), 413, /^x: at most 2000 steps, received 5000$/],
      [() => post('/predict', { x: [Array.from({ length: 100 }, () => [0, 0])] }), 413, /^x: at most 64 sequences in a batch, received 100$/],
      [() => post('/predict', { x: Array.from({ length: 1000 }, () => Array.from({ length: 64 }, () => [0, 0, 0, 0])) }), 413, /^x: at most 200000 numbers, received 1000 x 64 x 4$/],
      [() => post('/predict', 'x'.repeat(3 << 20)), 413, /^body: at most 1048576 bytes, received 3145728$/],
      // the same without a declared length (a chunked upload): counted as it arrives
      [() => fetch(`${base}/predict`, { method: 'POST', body: chunked(2 << 20), duplex: 'half' } as RequestInit), 413, /^body: at most 1048576 bytes, received 2097152$/],
      [() => fetch(`${base}/predict`), 405, /^\/predict: expected POST with a JSON body, received GET$/],
      [() => fetch(`${base}/nothing`), 404, /^\/nothing: no such endpoint/],
      [() => post('/generate', { length: 1e6 }), 413, /^length: at most 2000, received 1000000$/],
      [() => post('/generate', { length: 2.5 }), 400, /^length: expected an integer >= 1, received 2.5$/],
      [() => post('/generate', { temperature: -1 }), 400, /^temperature: expected a number >= 0, received -1$/],
      [() => post('/generate', { topP: 2 }), 400, /^topP: expected a number in \(0, 1\], received 2$/],
      [() => post('/generate', { prime: 42 }), 400, /^prime: expected a string, received 42$/],
      [() => post('/generate', { prime: 'x'.repeat(5000) }), 413, /^prime: at most 1000 characters, received 5000$/],
      [() => fetch(`${base}/generate?length=abc`), 400, /^length: expected an integer >= 1, received "abc"$/],
      [() => fetch(`${base}/generate`, { method: 'PUT' }), 405, /^\/generate: expected GET or POST, received PUT$/],
    ];
    for (const [request, status, message] of cases) {
      const res = await request();
      const body = await res.json() as { error: string };
      expect({ status: res.status, error: body.error }).toEqual({ status, error: expect.stringMatching(message) });
    }
    const after = await post('/predict', { x: good });
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual(before);
    expect((await fetch(`${base}/generate?length=20&seed=2`)).status).toBe(200);
  });

  it('the default relaxed-SIMD build serves the same predictions (within float32 rounding)', async () => {
    const { buildWorker, MODULE_RULES } = await import('../examples/worker/build.mjs');
    const script: string = await buildWorker(mkdtempSync(join(tmpdir(), 'rnnkit-worker-')));
    const { Miniflare } = await import('miniflare');
    const relaxed = new Miniflare({
      modules: true, scriptPath: script, modulesRoot: dirname(script), modulesRules: MODULE_RULES, compatibilityDate: '2024-09-23',
    });
    try {
      const index = await (await relaxed.dispatchFetch('http://localhost/')).json() as { backend: string };
      expect(index.backend).toBe('wasm (simd128+relaxed)');
      const seq = addingSequence(30, 5, 7, 25);
      const res = await relaxed.dispatchFetch('http://localhost/predict', { method: 'POST', body: JSON.stringify({ x: seq.x }) });
      const { y } = await res.json() as { y: number[] };
      expect(y[0]).toBeCloseTo(nodePredict([seq.x])[0], 4);
    } finally {
      await relaxed.dispose();
    }
  });

  it.runIf(process.platform === 'linux')('CPU time per request of the workerd process (printed, no threshold)', async () => {
    const pids = workerdPids();
    expect(pids.length).toBeGreaterThan(0);
    const x = addingSequence(30, 1, 3, 20).x;
    const measure = async (n: number, request: () => Promise<Response>) => {
      await (await request()).arrayBuffer(); // warm
      const t0 = cpuSeconds(pids);
      for (let i = 0; i < n; i++) {
        const res = await request();
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
      return ((cpuSeconds(pids) - t0) / n) * 1000;
    };
    const predictMs = await measure(100, () => post('/predict', { x }));
    const generateMs = await measure(15, () => post('/generate', { prime: 'Call me ', length: 300, temperature: 0.8, seed: 1 }));
    console.log(`CPU time per request under miniflare (workerd process, ${pids.length} process): `
      + `POST /predict [30][2]: ${predictMs.toFixed(2)} ms; POST /generate 300 characters: ${generateMs.toFixed(2)} ms`);
    expect(predictMs).toBeGreaterThanOrEqual(0);
    expect(generateMs).toBeGreaterThan(0);
  });
});
