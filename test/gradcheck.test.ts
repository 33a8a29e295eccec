// Numerical gradient checks.
// 1. Kernel level, float64: the reference seqForward/seqBackward against central finite
//    differences for every cell and option (projection, lengths, reverse, strided output,
//    no bias, initial states), on small shapes.
// 2. Layer level, float32 through the public API: stacking, bidirectional, dropout between
//    layers, batch-first, unbatched input, lengths, cells, Linear, Embedding, losses.
import { describe, expect, it } from 'vitest';
import type { CellKind, RecurrentActivation, SeqForwardArgs } from '../src/backends/backend.js';
import { CELL_KINDS, CELLS, gateCount, hasCellState } from '../src/backends/cells.js';
import { ReferenceBackend } from '../src/backends/reference.js';
import {
  GRU, GRUCell, LSTM, LSTMCell, Linear, Embedding, RNN, RNNCell, Rng, Tensor,
  add, bceWithLogits, crossEntropy, mseLoss, mul, sum, tanh, sigmoid, relu, withBackend,
} from '../src/index.js';
import { TESTED_BACKENDS, gradCheck } from './helpers.js';

const reference = new ReferenceBackend();

function randomArray(rng: Rng, n: number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => rng.normal() * scale);
}

interface KernelCase {
  cell: CellKind; T: number; B: number; I: number; H: number; P: number;
  reverse: boolean; lengths: number[] | null; bias: boolean; states: boolean; yStride: number; yOffset: number;
  act?: RecurrentActivation;
}

/** Runs forward in float64 and returns loss = sum(y*Gy) + sum(hN*Gh) + sum(cN*Gc). */
function kernelLoss(k: KernelCase, p: Record<string, Float64Array | null>, g: Record<string, Float64Array>): number {
  const { T, B, H, P } = k;
  const R = P || H;
  const y = new Float64Array(T * B * k.yStride);
  const hN = new Float64Array(B * R);
  const cN = new Float64Array(B * H);
  reference.seqForward({
    cell: k.cell, T, B, I: k.I, H, P, reverse: k.reverse,
    x: p.x, wIh: p.wIh, wHh: p.wHh, bIh: p.bIh, bHh: p.bHh, wHr: p.wHr, h0: p.h0, c0: p.c0,
    lengths: k.lengths ? Int32Array.from(k.lengths) : null,
    y, yStride: k.yStride, yOffset: k.yOffset, hN, cN: hasCellState(k.cell) ? cN : null, training: false,
    recurrentActivation: k.act ?? null,
  } as unknown as SeqForwardArgs);
  let loss = 0;
  for (let i = 0; i < y.length; i++) loss += y[i] * g.y[i];
  for (let i = 0; i < hN.length; i++) loss += hN[i] * g.hN[i];
  if (hasCellState(k.cell)) for (let i = 0; i < cN.length; i++) loss += cN[i] * g.cN[i];
  return loss;
}

function checkKernel(k: KernelCase, seed: number): number {
  const rng = new Rng(seed);
  const G = gateCount(k.cell) * k.H;
  const R = k.P || k.H;
  const withC = hasCellState(k.cell);
  const p: Record<string, Float64Array | null> = {
    x: randomArray(rng, k.T * k.B * k.I),
    wIh: randomArray(rng, G * k.I, 0.5),
    wHh: randomArray(rng, G * R, 0.5),
    bIh: k.bias ? randomArray(rng, G, 0.5) : null,
    bHh: k.bias ? randomArray(rng, G, 0.5) : null,
    wHr: k.P ? randomArray(rng, k.P * k.H, 0.5) : null,
    h0: k.states ? randomArray(rng, k.B * R) : null,
    c0: k.states && withC ? randomArray(rng, k.B * k.H) : null,
  };
  const g = { y: randomArray(rng, k.T * k.B * k.yStride), hN: randomArray(rng, k.B * R), cN: randomArray(rng, k.B * k.H) };
  // analytic
  const y = new Float64Array(k.T * k.B * k.yStride);
  const ctx = reference.seqForward({
    cell: k.cell, T: k.T, B: k.B, I: k.I, H: k.H, P: k.P, reverse: k.reverse, ...p,
    lengths: k.lengths ? Int32Array.from(k.lengths) : null, y, yStride: k.yStride, yOffset: k.yOffset,
    hN: new Float64Array(k.B * R), cN: withC ? new Float64Array(k.B * k.H) : null, training: true,
    recurrentActivation: k.act ?? null,
  } as unknown as SeqForwardArgs);
  const grads: Record<string, Float64Array> = {};
  for (const [name, v] of Object.entries(p)) if (v) grads[name] = new Float64Array(v.length);
  reference.seqBackward({
    ctx: ctx!, dy: g.y as unknown as Float32Array, dyStride: k.yStride, dyOffset: k.yOffset,
    dhN: g.hN as unknown as Float32Array, dcN: withC ? (g.cN as unknown as Float32Array) : null,
    dx: grads.x as unknown as Float32Array, dh0: (grads.h0 ?? null) as unknown as Float32Array, dc0: (grads.c0 ?? null) as unknown as Float32Array,
    dWIh: grads.wIh as unknown as Float32Array, dWHh: grads.wHh as unknown as Float32Array,
    dBIh: (grads.bIh ?? null) as unknown as Float32Array, dBHh: (grads.bHh ?? null) as unknown as Float32Array,
    dWHr: (grads.wHr ?? null) as unknown as Float32Array,
  });
  // numerical, central differences
  const eps = 1e-6;
  let worst = 0;
  for (const [name, v] of Object.entries(p)) {
    if (!v) continue;
    for (let i = 0; i < v.length; i++) {
      const keep = v[i];
      v[i] = keep + eps;
      const up = kernelLoss(k, p, g);
      v[i] = keep - eps;
      const down = kernelLoss(k, p, g);
      v[i] = keep;
      const numeric = (up - down) / (2 * eps);
      const err = Math.abs(numeric - grads[name][i]) / Math.max(1, Math.abs(numeric));
      worst = Math.max(worst, err);
    }
  }
  return worst;
}

describe('float64 finite differences of the reference sequence kernels', () => {
  const variants: Array<Partial<KernelCase> & { label: string }> = [
    { label: 'plain' },
    { label: 'reverse', reverse: true },
    { label: 'lengths (unsorted)', lengths: [2, 4, 1] },
    { label: 'reverse with lengths', reverse: true, lengths: [3, 1, 4] },
    { label: 'no bias', bias: false },
    { label: 'zero initial states', states: false },
    { label: 'strided output (bidirectional slot)', yStride: 11, yOffset: 3 },
  ];
  for (const cell of CELL_KINDS) {
    for (const v of variants) {
      it(`${cell}: ${v.label}`, () => {
        const H = 3;
        const k: KernelCase = { cell, T: 4, B: 3, I: 2, H, P: 0, reverse: false, lengths: null, bias: true, states: true, yStride: H, yOffset: 0, ...v };
        if (k.yStride < k.yOffset + H) k.yStride = k.yOffset + H;
        expect(checkKernel(k, 7 + CELLS[cell].id)).toBeLessThan(1e-6);
      });
    }
  }
  const projected = CELL_KINDS.filter((c) => CELLS[c].projection);
  for (const cell of projected) for (const v of [{ label: 'projection' }, { label: 'projection, reverse, lengths', reverse: true, lengths: [4, 2, 3] }]) {
    it(`${cell}: ${v.label}`, () => {
      const k: KernelCase = { cell, T: 4, B: 3, I: 2, H: 4, P: 2, reverse: false, lengths: null, bias: true, states: true, yStride: 2, yOffset: 0, ...v };
      expect(checkKernel(k, 3)).toBeLessThan(1e-6);
    });
  }
  // the hard sigmoid: TF.js's slope (most gates on the linear part) and a steep one (many gates
  // saturated at 0 or 1, where the derivative is 0); no pre-activation lands within eps of a kink
  const hard: Array<Partial<KernelCase> & { label: string }> = [
    { label: 'hardSigmoid alpha 0.2 beta 0.5', act: { kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 } },
    { label: 'hardSigmoid alpha 1/6 (Keras 3), reverse with lengths', act: { kind: 'hardSigmoid', alpha: 1 / 6, beta: 0.5 }, reverse: true, lengths: [3, 1, 4] },
    { label: 'hardSigmoid steep (alpha 0.9, beta 0.4): saturated gates', act: { kind: 'hardSigmoid', alpha: 0.9, beta: 0.4 } },
  ];
  for (const cell of CELL_KINDS.filter((c) => CELLS[c].gateActivation)) {
    for (const v of hard) {
      it(`${cell}: ${v.label}`, () => {
        const k: KernelCase = { cell, T: 4, B: 3, I: 2, H: 3, P: 0, reverse: false, lengths: null, bias: true, states: true, yStride: 3, yOffset: 0, ...v };
        expect(checkKernel(k, 13 + CELLS[cell].id)).toBeLessThan(1e-6);
      });
    }
  }
  it('lstm: hardSigmoid with a projection', () => {
    const k: KernelCase = { cell: 'lstm', T: 4, B: 3, I: 2, H: 4, P: 2, reverse: false, lengths: [4, 2, 3], bias: true, states: true, yStride: 2, yOffset: 0, act: { kind: 'hardSigmoid', alpha: 0.5, beta: 0.5 } };
    expect(checkKernel(k, 5)).toBeLessThan(1e-6);
  });
});

function randn(rng: Rng, shape: number[], requiresGrad = true): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(Float32Array.from({ length: n }, () => rng.normal() * 0.7), shape, requiresGrad);
}

for (const backend of TESTED_BACKENDS) describe(`float32 finite differences through the public layers on ${backend}`, () => {
  const on = (fn: () => void) => () => withBackend(backend, fn);
  const TOL = 3e-3;
  const layerCases: Array<{ label: string; make: (rng: Rng) => LSTM | GRU | RNN; input: number[]; lengths?: number[] }> = [
    { label: 'LSTM 2 layers bidirectional with lengths', make: (rng) => new LSTM({ inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, rng }), input: [4, 3, 3], lengths: [4, 1, 3] },
    { label: 'LSTM projection, bidirectional', make: (rng) => new LSTM({ inputSize: 3, hiddenSize: 4, projSize: 2, bidirectional: true, rng }), input: [3, 2, 3] },
    { label: 'GRU batch-first, 2 layers, no bias', make: (rng) => new GRU({ inputSize: 3, hiddenSize: 3, numLayers: 2, batchFirst: true, bias: false, rng }), input: [2, 4, 3] },
    { label: 'RNN relu bidirectional 2 layers', make: (rng) => new RNN({ inputSize: 2, hiddenSize: 3, numLayers: 2, bidirectional: true, nonlinearity: 'relu', rng }), input: [3, 2, 2] },
    { label: 'LSTM 2 layers with dropout 0.3 between layers (fixed mask by seed)', make: (rng) => new LSTM({ inputSize: 2, hiddenSize: 3, numLayers: 2, dropout: 0.3, rng }), input: [3, 2, 2] },
    { label: 'GRU unbatched input', make: (rng) => new GRU({ inputSize: 3, hiddenSize: 3, rng }), input: [4, 3] },
    { label: 'GRU reset-before, 2 layers bidirectional with lengths', make: (rng) => new GRU({ inputSize: 3, hiddenSize: 3, numLayers: 2, bidirectional: true, resetAfter: false, rng }), input: [4, 3, 3], lengths: [4, 1, 3] },
    { label: 'GRU reset-before with the hard sigmoid (alpha 1/6), batch-first', make: (rng) => new GRU({ inputSize: 3, hiddenSize: 4, batchFirst: true, resetAfter: false, recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 1 / 6, rng }), input: [2, 4, 3] },
    { label: 'LSTM hard sigmoid (TF.js 0.2 / 0.5), bidirectional with lengths', make: (rng) => new LSTM({ inputSize: 3, hiddenSize: 4, bidirectional: true, recurrentActivation: 'hardSigmoid', rng }), input: [4, 3, 3], lengths: [2, 4, 3] },
    { label: 'GRU reset-after with the hard sigmoid', make: (rng) => new GRU({ inputSize: 3, hiddenSize: 3, recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 0.3, hardSigmoidBeta: 0.4, rng }), input: [3, 2, 3] },
  ];
  for (const c of layerCases) {
    it(c.label, on(() => {
      const rng = new Rng(11);
      const layer = c.make(rng);
      const x = randn(rng, c.input);
      const unbatched = c.input.length === 2;
      const B = unbatched ? 1 : layer.batchFirst ? c.input[0] : c.input[1];
      const D = layer.bidirectional ? 2 : 1;
      const R = layer.projSize || layer.hiddenSize;
      const stateShape = unbatched ? [layer.numLayers * D, R] : [layer.numLayers * D, B, R];
      const h0 = randn(rng, stateShape);
      const c0 = hasCellState(layer.cell) ? randn(rng, unbatched ? [layer.numLayers * D, layer.hiddenSize] : [layer.numLayers * D, B, layer.hiddenSize]) : null;
      const seed = 5;
      const loss = () => {
        // the dropout mask must be the same in every evaluation: reseed the layer's generator
        (layer as unknown as { rng: Rng }).rng.setState(new Rng(seed).getState());
        const { output, hN, cN } = layer.forward(x, { h0, c0, lengths: c.lengths });
        const w = new Tensor(Float32Array.from({ length: output.size }, (_, i) => Math.sin(i + 1)), output.shape);
        let l = add(sum(mul(output, w)), sum(mul(hN, hN)));
        if (cN) l = add(l, sum(cN));
        return l;
      };
      const tensors = [x, h0, ...(c0 ? [c0] : []), ...layer.parameters()];
      expect(gradCheck(tensors, loss)).toBeLessThan(TOL);
    }));
  }

  for (const [label, make] of [
    ['LSTMCell', (rng: Rng) => new LSTMCell(3, 4, { rng })],
    ['GRUCell', (rng: Rng) => new GRUCell(3, 4, { rng })],
    ['RNNCell relu', (rng: Rng) => new RNNCell(3, 4, { nonlinearity: 'relu', rng })],
    ['GRUCell reset-before', (rng: Rng) => new GRUCell(3, 4, { resetAfter: false, rng })],
    ['LSTMCell hard sigmoid', (rng: Rng) => new LSTMCell(3, 4, { recurrentActivation: 'hardSigmoid', rng })],
  ] as const) {
    it(`${label} over three steps`, on(() => {
      const rng = new Rng(2);
      const cell = make(rng);
      const xs = [randn(rng, [2, 3]), randn(rng, [2, 3]), randn(rng, [2, 3])];
      const h0 = randn(rng, [2, 4]);
      const loss = () => {
        let state = { h: h0, c: hasCellState(cell.cell) ? h0 : null };
        for (const x of xs) state = cell.step(x, state);
        return add(sum(mul(state.h, state.h)), state.c ? sum(state.c) : sum(state.h));
      };
      expect(gradCheck([...xs, h0, ...cell.parameters()], loss)).toBeLessThan(TOL);
    }));
  }

  it('Embedding -> Linear -> cross-entropy with ignore index', on(() => {
    const rng = new Rng(3);
    const emb = new Embedding(5, 3, { rng });
    const fc = new Linear(3, 4, { rng });
    const ids = [0, 4, 2, 2, 1, 3];
    const targets = [1, -100, 3, 0, 2, -100];
    const loss = () => crossEntropy(fc.forward(emb.forward(ids)), targets);
    expect(gradCheck([...emb.parameters(), ...fc.parameters()], loss)).toBeLessThan(TOL);
  }));

  it('binary cross-entropy with logits, MSE, and the activations', on(() => {
    const rng = new Rng(4);
    const a = randn(rng, [2, 3]);
    const b = randn(rng, [2, 3]);
    const t = new Tensor([1, 0, 1, 0.5, 0, 1], [2, 3]);
    const loss = () => add(add(bceWithLogits(a, t), mseLoss(tanh(a), sigmoid(b))), mseLoss(relu(b), t, 'sum'));
    expect(gradCheck([a, b], loss)).toBeLessThan(TOL);
  }));

});

describe('cross-check plumbing', () => {
  it('the same layer gradients under a cross-checked backend', () => {
    // reference cross-checked against itself exercises the cross-check plumbing of every kernel
    const rng = new Rng(9);
    const lstm = new LSTM({ inputSize: 2, hiddenSize: 3, bidirectional: true, rng });
    const x = randn(rng, [3, 2, 2]);
    const run = () => withBackend('reference', () => {
      lstm.zeroGrad();
      sum(mul(lstm.forward(x).output, lstm.forward(x).output)).backward();
      return lstm.parameters().map((p) => Array.from(p.grad!));
    }, { crossCheck: 'reference' });
    expect(run()).toEqual(run());
  });
});
