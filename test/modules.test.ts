// Modules: seeded initialisation in PyTorch's ranges, parameter names, train/eval, Sequential.
import { describe, expect, it } from 'vitest';
import { Dropout, Embedding, GRU, LSTM, Linear, RNN, Rng, Sequential, Tensor, noGrad, relu } from '../src/index.js';

const maxAbs = (t: Tensor) => t.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('initialisation', () => {
  it('recurrent weights are U(-1/sqrt(H), 1/sqrt(H)) and cover the range', () => {
    const lstm = new LSTM({ inputSize: 10, hiddenSize: 25, numLayers: 2, rng: new Rng(1) });
    for (const p of lstm.parameters()) {
      expect(maxAbs(p)).toBeLessThanOrEqual(1 / 5);
      expect(maxAbs(p)).toBeGreaterThan(0.9 / 5);
    }
  });

  it('Linear is U(-1/sqrt(in), 1/sqrt(in)); Embedding is N(0, 1) with a zero padding row', () => {
    const fc = new Linear(16, 8, { rng: new Rng(2) });
    expect(maxAbs(fc.weight)).toBeLessThanOrEqual(0.25);
    expect(maxAbs(fc.bias!)).toBeLessThanOrEqual(0.25);
    const emb = new Embedding(200, 50, { paddingIdx: 3, rng: new Rng(3) });
    const d = emb.weight.data;
    const mean = d.reduce((s, v) => s + v, 0) / d.length;
    const variance = d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
    expect(Array.from(d.subarray(150, 200)).every((v) => v === 0)).toBe(true);
  });

  it('the same seed gives the same weights; another seed does not', () => {
    const a = new GRU({ inputSize: 3, hiddenSize: 4, rng: new Rng(7) }).parameters().map((p) => Array.from(p.data));
    const b = new GRU({ inputSize: 3, hiddenSize: 4, rng: new Rng(7) }).parameters().map((p) => Array.from(p.data));
    const c = new GRU({ inputSize: 3, hiddenSize: 4, rng: new Rng(8) }).parameters().map((p) => Array.from(p.data));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });
});

describe('modules', () => {
  it('use PyTorch parameter names and shapes', () => {
    const rnn = new RNN({ inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, bias: false });
    expect(rnn.namedParameters().map(([n, t]) => `${n}:${t.shape.join('x')}`)).toEqual([
      'weight_ih_l0:4x3', 'weight_hh_l0:4x4', 'weight_ih_l0_reverse:4x3', 'weight_hh_l0_reverse:4x4',
      'weight_ih_l1:4x8', 'weight_hh_l1:4x4', 'weight_ih_l1_reverse:4x8', 'weight_hh_l1_reverse:4x4',
    ]);
    const model = new Sequential(new Linear(3, 5), new Dropout(0.5), new Linear(5, 2));
    expect(model.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    expect(model.parameterCount()).toBe(3 * 5 + 5 + 5 * 2 + 2);
  });

  it('eval() turns dropout off everywhere; train() turns it back on', () => {
    const model = new Sequential(new Linear(4, 64, { rng: new Rng(1) }), new Dropout(0.5, { rng: new Rng(2) }));
    const x = new Tensor(new Float32Array(4).fill(1), [1, 4]);
    const zeros = (t: Tensor) => t.data.filter((v) => v === 0).length;
    expect(zeros(model.forward(x))).toBeGreaterThan(10);
    model.eval();
    expect(zeros(noGrad(() => model.forward(x)))).toBe(0);
    model.train();
    expect(zeros(model.forward(x))).toBeGreaterThan(10);
  });

  it('LSTM dropout between layers applies only in training', () => {
    const lstm = new LSTM({ inputSize: 2, hiddenSize: 8, numLayers: 2, dropout: 0.5, rng: new Rng(3) });
    const x = new Tensor(Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)), [3, 2, 2]);
    const a = lstm.forward(x).output.toArray();
    const b = lstm.forward(x).output.toArray();
    expect(a).not.toEqual(b);
    lstm.eval();
    expect(lstm.forward(x).output.toArray()).toEqual(lstm.forward(x).output.toArray());
  });

  it('Sequential composes modules that take and return one tensor', () => {
    const fc = new Linear(2, 2, { rng: new Rng(1) });
    fc.weight.data.set([1, -1, 2, 0]);
    fc.bias!.data.set([0, -5]);
    const model = new Sequential(fc);
    const y = model.forward(new Tensor([3, 1], [1, 2]));
    expect(y.toArray()).toEqual([2, 1]);
    expect(relu(new Tensor([-1, 2])).toArray()).toEqual([0, 2]);
  });
});
