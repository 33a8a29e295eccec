// The threaded wasm build (rnnkit-threads.wasm): results through the public API are bitwise the
// same on 1 and 2 threads (the GEMMs split their output columns, never the sum over K; LSTM with a
// projection, GRU, reset-before GRU with the hard sigmoid; an LSTM language-model step whose
// recurrent steps, cross-entropy and Adam split their hidden units, rows and elements), the
// loader falls back to one thread where SharedArrayBuffer is missing (as in workerd or a page
// without cross-origin isolation), and setThreads checks its argument.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { withBackend } from '../src/backends/index.js';
import { type WasmBackend, createWasmBackend, stepSplitShape } from '../src/backends/wasm-core.js';
import { STEP_SPLIT_CALLS } from '../src/backends/step-split.js';
import { crossEntropy, mseLoss } from '../src/core/ops.js';
import { Rng } from '../src/core/random.js';
import { Tensor, noGrad } from '../src/core/tensor.js';
import { Embedding, GRU, LSTM, Linear, RNN } from '../src/nn/layers.js';
import { Adam } from '../src/nn/optim.js';

// RNNKIT_WASM_BUILD=relaxed (Node with --experimental-wasm-relaxed-simd): the relaxed-SIMD builds,
// whose register tile has 6 rows instead of 4 (the last test below runs this file so)
const relaxedRun = process.env.RNNKIT_WASM_BUILD === 'relaxed';
const dist = (file: string) => readFileSync(new URL(`../dist/${file}`, import.meta.url));
const threadsBytes = dist(relaxedRun ? 'rnnkit-threads-relaxed.wasm' : 'rnnkit-threads.wasm');
const plainBytes = dist(relaxedRun ? 'rnnkit-relaxed.wasm' : 'rnnkit.wasm');

const bitwise = (a: Float32Array, b: Float32Array, what: string) => {
  expect(a.length, what).toBe(b.length);
  const i = a.findIndex((v, k) => !Object.is(v, b[k]));
  expect(i, `${what}: first difference at ${i}`).toBe(-1);
};

describe('wasm threads', () => {
  it('training through the public API is bitwise the same on 1 and 2 threads', async () => {
    const one = createWasmBackend(threadsBytes, { threads: 1 });
    const two = createWasmBackend(threadsBytes, { threads: 2 });
    await two.whenReady();
    expect(one.info().threads).toBe(1);
    expect(two.info()).toMatchObject({ threads: 2, detail: expect.stringMatching(/shared memory, 2 threads/) });
    const rng = new Rng(5);
    const cases: Array<[() => LSTM | GRU, number, number, number]> = [
      // per-step GEMMs big enough to split: B * G * R >= 2^20 multiply-adds
      [() => new LSTM({ inputSize: 24, hiddenSize: 128, numLayers: 2, bidirectional: true, projSize: 96, rng: new Rng(1) }), 24, 24, 6],
      [() => new GRU({ inputSize: 24, hiddenSize: 640, rng: new Rng(2) }), 24, 1, 10], // batch 1: the GEMV path
      // reset-before GRU with the hard sigmoid: the late gates' product (r * h) @ W_hn^T splits too
      [() => new GRU({ inputSize: 24, hiddenSize: 256, resetAfter: false, recurrentActivation: 'hardSigmoid', rng: new Rng(3) }), 24, 24, 5],
    ];
    for (const [make, I, B, T] of cases) {
      const x = new Tensor(Float32Array.from({ length: T * B * I }, () => rng.normal()), [T, B, I]);
      const run = (backend: typeof one) => {
        const m = make();
        const opt = new Adam(m.parameters(), { lr: 1e-2 });
        const outs: Float32Array[] = [];
        withBackend(backend, () => {
          for (let s = 0; s < 3; s++) {
            opt.zeroGrad();
            const { output, hN } = m.forward(x);
            mseLoss(output, Tensor.zeros(output.shape)).backward();
            outs.push(output.data.slice(), hN.data.slice(), ...m.parameters().map((p) => p.grad!.slice()));
            opt.step();
          }
        });
        return outs;
      };
      const before = two.splitGemms;
      const a = run(one);
      const b = run(two);
      expect(two.splitGemms - before, 'GEMMs were split across the threads').toBeGreaterThan(3 * T);
      expect(one.splitGemms).toBe(0);
      a.forEach((v, i) => bitwise(v, b[i], `${make().constructor.name} tensor ${i}`));
    }
    two.close();
    expect(two.info().threads).toBe(1);
  });

  it('a language-model train step (LSTM steps over batch parts, cross-entropy, Adam) is bitwise the same on 1 and 2 threads', async () => {
    const one = createWasmBackend(threadsBytes, { threads: 1 });
    const two = createWasmBackend(threadsBytes, { threads: 2 });
    await two.whenReady();
    const [T, B, V, H] = [12, 16, 100, 128];
    const rng = new Rng(9);
    const ids = Int32Array.from({ length: T * B }, () => rng.int(V));
    const targets = Int32Array.from({ length: T * B }, () => rng.int(V));
    const lengths = Int32Array.from({ length: B }, (_, b) => (b % 3 === 0 ? T : 1 + ((b * 5) % T))); // packed sequences
    const run = (backend: typeof one) => {
      const emb = new Embedding(V, 16, { rng: new Rng(1) });
      // no projection, B 16 = 4 register tiles: each thread runs every step of its half of the batch
      const lstm = new LSTM({ inputSize: 16, hiddenSize: H, numLayers: 2, rng: new Rng(2) });
      const head = new Linear(H, V, { rng: new Rng(3) });
      const params = [...emb.parameters(), ...lstm.parameters(), ...head.parameters()];
      const opt = new Adam(params, { lr: 1e-2 });
      const h0 = new Tensor(Float32Array.from({ length: 2 * B * H }, (_, i) => Math.sin(i)), [2, B, H]);
      const outs: Float32Array[] = [];
      withBackend(backend, () => {
        for (let s = 0; s < 2; s++) {
          opt.zeroGrad();
          const { output, hN, cN } = lstm.forward(emb.forward(ids, [T, B]), { h0, lengths });
          const loss = crossEntropy(head.forward(output), targets); // [T * B, V] logits: rows split across threads
          loss.backward();
          outs.push(loss.data.slice(), output.data.slice(), hN.data.slice(), cN!.data.slice(), ...params.map((p) => p.grad!.slice()));
          opt.step();
          outs.push(...params.map((p) => p.data.slice()));
        }
      });
      return outs;
    };
    const before = [two.splitGemms, two.splitJobs('seqForwardRows'), two.splitJobs('seqBackwardRows')];
    const a = run(one);
    const b = run(two);
    expect(two.splitGemms - before[0], 'jobs were split across the threads').toBeGreaterThan(8);
    // 2 layers, 2 train steps: 4 sequence forwards and 4 backwards, one job each
    expect([two.splitJobs('seqForwardRows') - before[1], two.splitJobs('seqBackwardRows') - before[2]]).toEqual([4, 4]);
    a.forEach((v, i) => bitwise(v, b[i], `tensor ${i}`));
    two.close();
  });

  /**
   * The single-thread build and the threaded build on 1, 2 and 3 threads, ready to run (an LSTM's
   * small-batch steps always split, whichever way this machine runs them faster).
   */
  const threadCounts = async () => {
    const plain = createWasmBackend(plainBytes);
    const one = createWasmBackend(threadsBytes, { threads: 1 });
    const two = createWasmBackend(threadsBytes, { threads: 2, stepSplit: 'always' });
    const three = createWasmBackend(threadsBytes, { threads: 3, stepSplit: 'always' });
    await Promise.all([two.whenReady(), three.whenReady()]);
    return { plain, one, two, three };
  };

  it('LSTM inference with the steps as one job (batch 1 and a few rows, odd and even lengths) is bitwise the same on 1, 2 and 3 threads and on the plain build', async () => {
    const { plain, one, two, three } = await threadCounts();
    const rng = new Rng(11);
    // [batch, steps, lengths]: H 256 makes a batch-1 step 2^18 multiply-adds, enough to split
    const cases: Array<[number, number, number[] | null]> = [[1, 37, null], [1, 64, null], [3, 20, [20, 7, 13]]];
    for (const [B, T, lens] of cases) {
      const m = new LSTM({ inputSize: 40, hiddenSize: 256, numLayers: 2, rng: new Rng(4) });
      const x = new Tensor(Float32Array.from({ length: T * B * 40 }, () => rng.normal()), [T, B, 40]);
      const h0 = new Tensor(Float32Array.from({ length: 2 * B * 256 }, (_, i) => Math.cos(i)), [2, B, 256]);
      const lengths = lens ? Int32Array.from(lens) : undefined;
      const run = (backend: typeof one) => withBackend(backend, () => noGrad(() => {
        const { output, hN, cN } = m.forward(x, { h0, lengths });
        return [output.data.slice(), hN.data.slice(), cN!.data.slice()];
      }));
      const before = [two.splitJobs('lstmForwardSteps'), three.splitJobs('lstmForwardSteps')];
      const ref = run(plain);
      for (const [backend, name] of [[one, '1 thread'], [two, '2 threads'], [three, '3 threads']] as const) {
        run(backend).forEach((v, i) => bitwise(v, ref[i], `B ${B}, T ${T}, ${name}: tensor ${i}`));
      }
      // one job per layer: the steps of each layer ran on every thread
      expect(two.splitJobs('lstmForwardSteps') - before[0], `B ${B}, T ${T}: sequences split on 2 threads`).toBe(2);
      expect(three.splitJobs('lstmForwardSteps') - before[1], `B ${B}, T ${T}: sequences split on 3 threads`).toBe(2);
    }
    for (const b of [two, three]) b.close();
  });

  it('batch-1 LSTM inference with a last tile of 8 hidden units per thread (H 136) is bitwise the same on 1, 2 and 3 threads and on the plain build', async () => {
    const { plain, one, two, three } = await threadCounts();
    const rng = new Rng(12);
    // H 136 = 17 tiles of 8: a step is 1 * 544 * 136 multiply-adds (split); the threads' shares
    // are 72 + 64 (2 threads) and 48 + 48 + 40 units (3 threads)
    for (const T of [15, 16]) {
      const m = new LSTM({ inputSize: 12, hiddenSize: 136, rng: new Rng(5) });
      const x = new Tensor(Float32Array.from({ length: T * 12 }, () => rng.normal()), [T, 1, 12]);
      const run = (backend: typeof one) => withBackend(backend, () => noGrad(() => {
        const { output, hN, cN } = m.forward(x);
        return [output.data.slice(), hN.data.slice(), cN!.data.slice()];
      }));
      const before = [two.splitJobs('lstmForwardSteps'), three.splitJobs('lstmForwardSteps')];
      const ref = run(plain);
      for (const [backend, name] of [[one, '1 thread'], [two, '2 threads'], [three, '3 threads']] as const) {
        run(backend).forEach((v, i) => bitwise(v, ref[i], `T ${T}, ${name}: tensor ${i}`));
      }
      expect(two.splitJobs('lstmForwardSteps') - before[0], `T ${T}: split on 2 threads`).toBe(1);
      expect(three.splitJobs('lstmForwardSteps') - before[1], `T ${T}: split on 3 threads`).toBe(1);
    }
    for (const b of [two, three]) b.close();
  });

  it('the steps of a small-batch LSTM run on one thread where its shape measured faster so (bitwise the same), split where split measured faster, always split when forced', async () => {
    const plain = createWasmBackend(plainBytes);
    const [T, H, I] = [40, 256, 24];
    const rng = new Rng(13);
    const m = new LSTM({ inputSize: I, hiddenSize: H, numLayers: 2, rng: new Rng(6) });
    const x = new Tensor(Float32Array.from({ length: T * I }, () => rng.normal()), [T, 1, I]);
    const run = (backend: WasmBackend) => withBackend(backend, () => noGrad(() => {
      const { output, hN, cN } = m.forward(x);
      return [output.data.slice(), hN.data.slice(), cN!.data.slice()];
    }));
    const ref = run(plain);
    const shape = stepSplitShape('lstm', 1, H, 2, 'forward');
    // the observations injected: the way per step the jobs of this shape would have timed
    const cases: Array<[string, WasmBackend, number, RegExp]> = [];
    for (const [name, splitMs, oneMs, splits, said] of [
      ['waiting costs more than the split gains: one thread', 3, 2, 0, /steps on one thread \(split 46\.9 us\/step, one thread 31\.3 us\/step\)/],
      ['the split gains: split', 1, 2, 2, /steps split \(split 15\.6 us\/step, one thread 31\.3 us\/step\)/],
    ] as const) {
      const b = createWasmBackend(threadsBytes, { threads: 2 });
      await b.whenReady();
      for (let i = 0; i < STEP_SPLIT_CALLS; i++) {
        b.stepSplit.observe(shape, true, splitMs, 64);
        b.stepSplit.observe(shape, false, oneMs, 64);
      }
      cases.push([name, b, splits, said]);
    }
    const forced = createWasmBackend(threadsBytes, { threads: 2, stepSplit: 'always' });
    await forced.whenReady();
    for (let i = 0; i < STEP_SPLIT_CALLS; i++) {
      forced.stepSplit.observe(shape, true, 3, 64);
      forced.stepSplit.observe(shape, false, 2, 64);
    }
    cases.push(['forced despite one thread measured faster: split', forced, 2, /small-batch LSTM steps always split/]);
    for (const [name, b, splits, said] of cases) {
      const before = b.splitJobs('lstmForwardSteps');
      run(b).forEach((v, i) => bitwise(v, ref[i], `${name}: tensor ${i}`));
      expect(b.splitJobs('lstmForwardSteps') - before, `${name}: jobs split (one per layer)`).toBe(splits);
      expect(b.info().detail, name).toMatch(said);
      b.close();
    }
    expect(() => createWasmBackend(threadsBytes, { threads: 1, stepSplit: 'never' as 'auto' })).toThrow(
      "createWasmBackend: options.stepSplit must be 'auto' or 'always', received never");
  });

  it('a real backend times its small-batch LSTM jobs: STEP_SPLIT_CALLS calls each way, then the faster kept', async () => {
    const two = createWasmBackend(threadsBytes, { threads: 2 });
    await two.whenReady();
    const m = new LSTM({ inputSize: 8, hiddenSize: 128, rng: new Rng(7) });
    const x = new Tensor(new Float32Array(64 * 8).fill(0.25), [64, 1, 8]);
    withBackend(two, () => noGrad(() => { for (let i = 0; i < 2 * STEP_SPLIT_CALLS + 1; i++) m.forward(x); }));
    const [choice] = two.stepSplitChoices();
    expect(choice.shape).toBe(stepSplitShape('lstm', 1, 128, 2, 'forward'));
    expect(typeof choice.split).toBe('boolean');
    expect(choice.splitUsPerStep).toBeGreaterThan(0);
    expect(choice.oneUsPerStep).toBeGreaterThan(0);
    expect(two.splitJobs('lstmForwardSteps')).toBe(STEP_SPLIT_CALLS + (choice.split ? 1 : 0));
    two.close();
  });

  it('a batch split into one part per thread (LSTM, GRU, RNN; B 32, 48, 30, 29, 9 cut evenly; lengths, both directions; training forward and backward, inference) is bitwise the same on 1, 2 and 3 threads and on the single-thread build', async () => {
    const { plain, one, two, three } = await threadCounts();
    const rng = new Rng(21);
    const I = 12;
    const T = 9;
    const makers: Array<[string, () => LSTM | GRU | RNN]> = [
      ['LSTM', () => new LSTM({ inputSize: I, hiddenSize: 64, numLayers: 2, bidirectional: true, rng: new Rng(1) })],
      ['LSTM hard sigmoid, H 60', () => new LSTM({ inputSize: I, hiddenSize: 60, recurrentActivation: 'hardSigmoid', rng: new Rng(2) })],
      ['GRU, H 60', () => new GRU({ inputSize: I, hiddenSize: 60, numLayers: 2, bidirectional: true, rng: new Rng(3) })],
      ['RNN tanh', () => new RNN({ inputSize: I, hiddenSize: 64, bidirectional: true, rng: new Rng(4) })],
      ['RNN relu', () => new RNN({ inputSize: I, hiddenSize: 64, nonlinearity: 'relu', rng: new Rng(5) })],
    ];
    // the batch is cut evenly (B / t rows a part, at least a register tile each), so parts start
    // inside the whole batch's register tiles and end in partial tiles of every height, 1 and 2
    // rows too: on the plain build's 4-row tiles B 29 is 15 14 and 10 10 9 (last tiles 3 2 and
    // 2 2 1 rows), B 9 is 5 4 on 2 and 3 threads; on the relaxed build's 6-row tiles B 32 is
    // 16 16 and 11 11 10, B 29 15 14 (last tiles 3 2), and B 9 is not split.
    const mr = two.kernels.tileRows();
    expect(mr).toBe(relaxedRun ? 6 : 4);
    for (const B of [32, 48, 30, 29, 9]) {
      const x = new Tensor(Float32Array.from({ length: T * B * I }, () => rng.normal()), [T, B, I]);
      const lengths = Int32Array.from({ length: B }, (_, b) => (b % 4 === 0 ? T : 1 + ((b * 7) % T)));
      for (const [name, make] of makers) {
        for (const packed of [false, true]) {
          const run = (backend: typeof one) => {
            const m = make();
            const outs: Float32Array[] = [];
            withBackend(backend, () => {
              const opts = packed ? { lengths } : {};
              const { output, hN } = m.forward(x, opts);
              mseLoss(output, Tensor.zeros(output.shape)).backward();
              outs.push(output.data.slice(), hN.data.slice(), ...m.parameters().map((p) => p.grad!.slice()));
              noGrad(() => {
                const inf = m.forward(x, opts);
                outs.push(inf.output.data.slice(), inf.hN.data.slice());
              });
            });
            return outs;
          };
          const before = [two, three].map((b) => b.splitJobs('seqForwardRows') + b.splitJobs('seqBackwardRows'));
          const ref = run(plain);
          for (const [backend, threads] of [[one, 1], [two, 2], [three, 3]] as const) {
            run(backend).forEach((v, i) => bitwise(v, ref[i], `${name}, B ${B}${packed ? ', lengths' : ''}, ${threads} threads: tensor ${i}`));
          }
          // a job per layer and direction (4 parameters each) for the training forward, the backward and the inference forward
          const jobs = [two, three].map((b, i) => b.splitJobs('seqForwardRows') + b.splitJobs('seqBackwardRows') - before[i]);
          // (a step of B * G * H >= 2^16 multiply-adds: wHh [G, H] is the second parameter)
          const params = make().parameters();
          const split = Math.floor(B / mr) >= 2 && B * params[1].data.length >= 1 << 16;
          const expected = split ? 3 * (params.length / 4) : 0;
          expect(jobs, `${name}, B ${B}: jobs split by rows on 2 and 3 threads`).toEqual([expected, expected]);
        }
      }
    }
    for (const b of [two, three]) b.close();
  });

  it.skipIf(relaxedRun)('the batch split is bitwise the same on the relaxed-SIMD builds too (their 6-row tiles; Node with --experimental-wasm-relaxed-simd)', () => {
    const root = new URL('..', import.meta.url);
    const out = execFileSync(process.execPath, [
      '--experimental-wasm-relaxed-simd', 'node_modules/vitest/vitest.mjs', 'run', 'test/wasm-threads.test.ts',
      '-t', 'a batch split into one part per thread', '--pool=threads', '--reporter=dot',
    ], { cwd: root, encoding: 'utf8', env: { ...process.env, RNNKIT_WASM_BUILD: 'relaxed', NO_COLOR: '1', FORCE_COLOR: '0' } });
    expect(out).toMatch(/Tests\s+1 passed/);
    expect(out).not.toMatch(/failed/);
  }, 600_000);

  it('setThreads checks its argument; a build without shared memory stays on one thread and says why', () => {
    const plain = createWasmBackend(plainBytes);
    expect(() => plain.setThreads(0)).toThrow('wasm.setThreads: n must be a positive integer, received 0');
    expect(() => plain.setThreads(1.5)).toThrow('received 1.5');
    plain.setThreads(4);
    expect(plain.info()).toMatchObject({ threads: 1, detail: expect.stringMatching(/one thread: a build without shared memory/) });
  });

  it('without SharedArrayBuffer the loader picks a single-threaded build and training works', () => {
    const script = `
      delete globalThis.SharedArrayBuffer;
      const { loadWasmBackend } = await import('./dist/backends/wasm.js');
      const { createWasmBackend, wasmThreadsUnavailable, setBackend, LSTM, Tensor, mseLoss } = await import('./dist/wasm-entry.js');
      const { readFileSync } = await import('node:fs');
      const b = loadWasmBackend();
      setBackend(b);
      const m = new LSTM({ inputSize: 3, hiddenSize: 4 });
      const { output } = m.forward(new Tensor(new Float32Array(2 * 2 * 3).fill(0.5), [2, 2, 3]));
      mseLoss(output, Tensor.zeros(output.shape)).backward();
      let threaded = '';
      try { createWasmBackend(readFileSync('./dist/rnnkit-threads.wasm')); } catch (e) { threaded = e.message; }
      console.log(JSON.stringify({ info: b.info(), why: wasmThreadsUnavailable(), grad: m.parameters()[0].grad.some((v) => v !== 0), threaded }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url), encoding: 'utf8' });
    const r = JSON.parse(out);
    expect(r.info.threads).toBe(1);
    expect(r.info.detail).not.toMatch(/threaded/);
    expect(r.why).toMatch(/SharedArrayBuffer is not available/);
    expect(r.grad).toBe(true);
    expect(r.threaded).toMatch(/the threaded rnnkit build \(rnnkit-threads.wasm\) cannot run here: SharedArrayBuffer is not available/);
  });
});
