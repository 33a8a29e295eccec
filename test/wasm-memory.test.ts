// The wasm backend's linear memory through the public API: weights stay resident between calls and
// every change is seen (optimizer steps, loadStateDict, writes through `data`, markChanged), the
// results are bitwise those of copying every weight on every call, and nothing leaks: after each
// training step the bytes in use are back at their baseline, release() and garbage collection
// free what is left.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backends/backend.js';
import { createWasmBackend, type WasmBackend } from '../src/backends/wasm-core.js';
import { mseLoss } from '../src/core/ops.js';
import { Rng } from '../src/core/random.js';
import { Tensor, noGrad } from '../src/core/tensor.js';
import { GRU, LSTM } from '../src/nn/layers.js';
import { Adam, SGD } from '../src/nn/optim.js';
import { withBackend } from '../src/backends/index.js';

const bytes = readFileSync(new URL('../dist/rnnkit.wasm', import.meta.url));
const fresh = (residentWeights = true) => createWasmBackend(bytes, { residentWeights });

function randn(n: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal());
}

const bitwise = (a: Float32Array, b: Float32Array, what: string) => {
  expect(a.length, what).toBe(b.length);
  const i = a.findIndex((v, k) => !Object.is(v, b[k]));
  expect(i, `${what}: first difference at ${i}`).toBe(-1);
};

type Net = LSTM | GRU;
const models: Array<[string, () => Net, number, number]> = [
  // [name, model, T, B]: B > 4 packs the weights, B = 1 with few steps uses them as they are
  ['2-layer bidirectional LSTM with projection', () => new LSTM({ inputSize: 5, hiddenSize: 8, numLayers: 2, bidirectional: true, projSize: 3, rng: new Rng(7) }), 6, 5],
  ['GRU, batch 1, 3 steps', () => new GRU({ inputSize: 5, hiddenSize: 8, rng: new Rng(8) }), 3, 1],
  // the late gates' rows of W_hh resident and packed on their own (B > 4), or used as they are (B = 1)
  ['reset-before GRU with the hard sigmoid', () => new GRU({ inputSize: 5, hiddenSize: 8, resetAfter: false, recurrentActivation: 'hardSigmoid', rng: new Rng(9) }), 6, 6],
  ['reset-before GRU, batch 1, 3 steps', () => new GRU({ inputSize: 5, hiddenSize: 8, resetAfter: false, rng: new Rng(10) }), 3, 1],
];

function step(backend: Backend, m: Net, x: Tensor, target: Tensor, opt: Adam | SGD): Float32Array {
  return withBackend(backend, () => {
    opt.zeroGrad();
    const { output } = m.forward(x);
    const loss = mseLoss(output, target);
    loss.backward();
    opt.step();
    return output.data.slice();
  });
}

describe('wasm resident weights', () => {
  for (const [name, make, T, B] of models) {
    it(`${name}: bitwise the results of copying every weight, every change seen`, () => {
      const resident = fresh();
      const copying = fresh(false);
      const a = make();
      const b = make();
      const rng = new Rng(3);
      const x = new Tensor(randn(T * B * 5, rng), [T, B, 5]);
      const out = withBackend(resident, () => noGrad(() => a.forward(x).output));
      const target = Tensor.zeros(out.shape).clone();
      target.data.set(randn(out.size, rng));
      const optA = new Adam(a.parameters(), { lr: 1e-2 });
      const optB = new Adam(b.parameters(), { lr: 1e-2 });
      for (let s = 0; s < 4; s++) bitwise(step(resident, a, x, target, optA), step(copying, b, x, target, optB), `${name} step ${s}`);
      a.parameters().forEach((p, i) => bitwise(p.data, b.parameters()[i].data, `parameter ${i}`));

      const infer = (backend: Backend, m: Net) => withBackend(backend, () => noGrad(() => m.forward(x).output.data.slice()));
      infer(resident, a);
      const uploads = resident.heapStats().weightUploads;
      bitwise(infer(resident, a), infer(copying, b), 'inference');
      expect(resident.heapStats().weightUploads, 'an unchanged weight is not copied again').toBe(uploads);

      // a write through data, as a user would
      for (const m of [a, b]) m.parameters()[1].data[2] += 0.25;
      bitwise(infer(resident, a), infer(copying, b), 'after a write through data');
      expect(resident.heapStats().weightUploads).toBe(uploads + 1);
      // a write through an array kept from before the forward call, then markChanged()
      const keptA = a.parameters()[0].data;
      const keptB = b.parameters()[0].data;
      infer(resident, a);
      keptA[0] -= 0.5;
      keptB[0] -= 0.5;
      a.parameters()[0].markChanged();
      bitwise(infer(resident, a), infer(copying, b), 'after markChanged');
      // loadStateDict, and SGD steps
      const state = make().stateDict();
      a.loadStateDict(state);
      b.loadStateDict(state);
      bitwise(infer(resident, a), infer(copying, b), 'after loadStateDict');
      const sgdA = new SGD(a.parameters(), { lr: 0.1, momentum: 0.9 });
      const sgdB = new SGD(b.parameters(), { lr: 0.1, momentum: 0.9 });
      for (let s = 0; s < 2; s++) bitwise(step(resident, a, x, target, sgdA), step(copying, b, x, target, sgdB), `SGD step ${s}`);
      bitwise(infer(resident, a), infer(copying, b), 'after SGD');
      expect(resident.heapStats().residentWeights).toBeGreaterThan(0);
      expect(copying.heapStats().residentWeights).toBe(0);
    });
  }
});

describe('wasm resident weights: the packed W_hh of a batch-1 stream', () => {
  it('is packed once while the model does not change, and packed again after an optimizer step (no stale result)', () => {
    // batch 1 over more than 8 steps: the packed GEMV path (each step's product and gates in one kernel)
    const [T, B, I, H] = [20, 1, 5, 16];
    const resident = fresh();
    const copying = fresh(false);
    const a = new LSTM({ inputSize: I, hiddenSize: H, rng: new Rng(12) });
    const b = new LSTM({ inputSize: I, hiddenSize: H, rng: new Rng(12) });
    const rng = new Rng(4);
    const x = new Tensor(randn(T * B * I, rng), [T, B, I]);
    const infer = (backend: Backend, m: Net) => withBackend(backend, () => noGrad(() => m.forward(x).output.data.slice()));
    const first = infer(resident, a);
    const packs = resident.heapStats().weightPacks;
    expect(packs, 'W_ih and W_hh packed on first use').toBeGreaterThanOrEqual(2);
    for (let s = 0; s < 3; s++) bitwise(infer(resident, a), first, `call ${s + 2}`);
    expect(resident.heapStats().weightPacks, 'an unchanged model is not packed again').toBe(packs);
    bitwise(first, infer(copying, b), 'resident and copied weights');

    const target = Tensor.zeros([T, B, H]).clone();
    target.data.set(randn(T * B * H, rng));
    const optA = new Adam(a.parameters(), { lr: 1e-2 });
    const optB = new Adam(b.parameters(), { lr: 1e-2 });
    step(resident, a, x, target, optA);
    step(copying, b, x, target, optB);
    const packsAfterStep = resident.heapStats().weightPacks;
    const after = infer(resident, a);
    const packsAfterInfer = resident.heapStats().weightPacks;
    expect(packsAfterInfer - packsAfterStep, 'the changed W_ih and W_hh are packed again').toBeGreaterThanOrEqual(2);
    bitwise(after, infer(copying, b), 'after an optimizer step');
    expect(after.some((v, i) => v !== first[i]), 'the step changed the result').toBe(true);
    bitwise(infer(resident, a), after, 'the next call');
    expect(resident.heapStats().weightPacks, 'packed once per version').toBe(packsAfterInfer);
  });
});

describe('wasm resident weights: the late gates of a reset-before GRU', () => {
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

  it('a change of W_hh after an optimizer step or a write to its late rows only is seen, as the reference computes', () => {
    const H = 8;
    const T = 6;
    const B = 6; // packed GEMMs: the early and the late rows of W_hh each have a packed copy
    const resident = fresh();
    const m = new GRU({ inputSize: 5, hiddenSize: H, resetAfter: false, recurrentActivation: 'hardSigmoid', rng: new Rng(11) });
    const rng = new Rng(12);
    const x = new Tensor(randn(T * B * 5, rng), [T, B, 5]);
    const target = new Tensor(randn(T * B * H, rng), [T, B, H]);
    const infer = (backend: Backend | 'reference') => withBackend(backend, () => noGrad(() => m.forward(x).output.data.slice()));
    const grads = (backend: Backend | 'reference') => withBackend(backend, () => {
      for (const p of m.parameters()) p.zeroGrad();
      mseLoss(m.forward(x).output, target).backward();
      return m.parameters().map((p) => p.grad!.slice());
    });
    const agree = (what: string) => {
      expect(maxDiff(infer(resident), infer('reference')), `${what}: output`).toBeLessThan(1e-5);
      const g = grads(resident);
      grads('reference').forEach((r, i) => expect(maxDiff(g[i], r), `${what}: gradient ${i}`).toBeLessThan(1e-4));
    };
    agree('first use');
    const uploads = resident.heapStats().weightUploads;
    // an optimizer step on the wasm backend changes every weight, the late rows of W_hh among them
    const wHh = m.parameters()[1];
    const lateBefore = wHh.data.slice(2 * H * H);
    withBackend(resident, () => {
      const opt = new Adam(m.parameters(), { lr: 0.05 });
      opt.zeroGrad();
      mseLoss(m.forward(x).output, target).backward();
      opt.step();
    });
    expect(maxDiff(wHh.data.slice(2 * H * H), lateBefore), 'the step moved the late rows').toBeGreaterThan(1e-3);
    agree('after an Adam step');
    expect(resident.heapStats().weightUploads).toBeGreaterThan(uploads);
    // a write to one weight of the late rows (the n gate's W_hn) only
    const before = infer(resident);
    wHh.data[2 * H * H + 3 * H + 5] += 0.75;
    const after = infer(resident);
    expect(maxDiff(after, before), 'the write changes the output').toBeGreaterThan(1e-4);
    agree('after a write to W_hn');
  });
});

describe('wasm linear memory does not leak', () => {
  it('after every training step the bytes in use are back at their baseline; release() frees the rest', () => {
    const wasm: WasmBackend = fresh();
    const m = new LSTM({ inputSize: 6, hiddenSize: 16, numLayers: 2, bidirectional: true, rng: new Rng(1) });
    const rng = new Rng(2);
    const opt = new Adam(m.parameters(), { lr: 1e-3 });
    const idle = wasm.heapStats();
    expect(idle.bytesInUse).toBe(0);
    const baseline: number[] = [];
    const memory: number[] = [];
    for (let s = 0; s < 60; s++) {
      const T = 3 + (s % 5); // shapes change from step to step
      const B = 1 + (s % 7);
      const x = new Tensor(randn(T * B * 6, rng), [T, B, 6]);
      const target = new Tensor(randn(T * B * 32, rng), [T, B, 32]);
      step(wasm, m, x, target, opt);
      const st = wasm.heapStats();
      expect(st.contexts, `step ${s}`).toBe(0);
      expect(st.bytesInUse, `step ${s}: only the resident weights stay`).toBe(st.residentBytes);
      baseline.push(st.bytesInUse);
      memory.push(st.memoryBytes);
    }
    // the resident weights of 4 directions (weights, biases, their packed forms once a call
    // needed them) and nothing else: constant once every shape was seen
    expect(new Set(baseline.slice(10)).size).toBe(1);
    expect(memory[memory.length - 1]).toBe(memory[10]); // memory reached its size after the first shapes
    // a training forward whose backward never comes: its context is released explicitly
    const ctx = wasm.seqForward({
      cell: 'gru', T: 2, B: 2, I: 3, H: 4, P: 0, reverse: false, x: new Float32Array(12), wIh: new Float32Array(36),
      wHh: new Float32Array(48), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null,
      y: new Float32Array(16), yStride: 4, yOffset: 0, hN: new Float32Array(8), cN: null, training: true,
    });
    expect(wasm.heapStats().contexts).toBe(1);
    wasm.release(ctx!);
    expect(wasm.heapStats()).toMatchObject({ contexts: 0, bytesInUse: baseline[baseline.length - 1] });
    expect(() => wasm.seqBackward({
      ctx: ctx!, dy: null, dyStride: 4, dyOffset: 0, dhN: null, dcN: null, dx: null, dh0: null, dc0: null,
      dWIh: null, dWHh: null, dBIh: null, dBHh: null, dWHr: null,
    })).toThrow('already used by a backward pass or released');
    wasm.release();
    expect(wasm.heapStats()).toMatchObject({ bytesInUse: 0, residentWeights: 0, residentBytes: 0 });
    // and the weights come back on their next use
    const x = new Tensor(randn(2 * 3 * 6, rng), [2, 3, 6]);
    const again = withBackend(wasm, () => noGrad(() => m.forward(x).output.data.slice()));
    bitwise(again, withBackend(fresh(false), () => noGrad(() => m.forward(x).output.data.slice())), 'after release()');
  });

  it('a layer that is garbage-collected frees its resident weights, a dropped graph its contexts', () => {
    // a separate process with --expose-gc (dist/ build), as a program that builds and drops layers
    const script = `
      import { readFileSync } from 'node:fs';
      import { createWasmBackend, setBackend, LSTM, Tensor } from './dist/wasm-entry.js';
      const wasm = createWasmBackend(readFileSync('./dist/rnnkit.wasm'));
      setBackend(wasm);
      const x = new Tensor(new Float32Array(4 * 8 * 10).fill(0.5), [4, 8, 10]);
      const build = () => {
        for (let i = 0; i < 20; i++) {
          const m = new LSTM({ inputSize: 10, hiddenSize: 32, numLayers: 2 });
          m.forward(x); // a graph for backward, never used
        }
      };
      build();
      const busy = wasm.heapStats();
      for (let i = 0; i < 10 && wasm.heapStats().bytesInUse > 0; i++) {
        globalThis.gc();
        await new Promise((r) => setTimeout(r, 20));
      }
      console.log(JSON.stringify({ busy, idle: wasm.heapStats() }));
    `;
    const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
      cwd: new URL('..', import.meta.url), encoding: 'utf8',
    });
    const { busy, idle } = JSON.parse(out);
    expect(busy.residentWeights).toBeGreaterThan(0);
    expect(busy.contexts).toBeGreaterThan(0);
    expect(idle).toMatchObject({ bytesInUse: 0, residentWeights: 0, contexts: 0 });
  });
});
