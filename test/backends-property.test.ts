// Properties across backends: random small models and inputs (cell, layers, bidirectional,
// projection, lengths, batch-first, bias, initial state) drawn by fast-check; the native and wasm
// backends agree with the reference backend within the golden tolerances (forward values 1e-5,
// gradients 1e-4, relative to the largest magnitude), forward and gradients of the input, the
// initial states and every parameter.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FORWARD_TOLERANCE, GRADIENT_TOLERANCE, relativeError } from '../src/io/golden.js';
import { GRU, LSTM, RNN, Rng, Tensor, add, backendStatus, mul, sum, withBackend, type BackendName, type RecurrentBase } from '../src/index.js';

const available = (['native', 'wasm'] as const).filter((b) => backendStatus().find((s) => s.name === b)?.available);

const caseArb = fc.record({
  cell: fc.constantFrom('lstm', 'gru', 'rnn_tanh', 'rnn_relu'),
  layers: fc.integer({ min: 1, max: 2 }),
  bidirectional: fc.boolean(),
  proj: fc.boolean(),
  lengths: fc.boolean(),
  batchFirst: fc.boolean(),
  bias: fc.boolean(),
  state: fc.boolean(),
  T: fc.integer({ min: 1, max: 6 }),
  B: fc.integer({ min: 1, max: 4 }),
  I: fc.integer({ min: 1, max: 9 }),
  H: fc.integer({ min: 2, max: 12 }),
  seed: fc.integer({ min: 0, max: 2 ** 30 }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer C> ? C : never;

interface Result { values: Record<string, Float32Array>; grads: Record<string, Float32Array> }

function runCase(c: Case, backend: BackendName): Result {
  return withBackend(backend, () => {
    const rng = new Rng(c.seed);
    const P = c.cell === 'lstm' && c.proj ? Math.max(1, c.H - 1 - (c.seed % (c.H - 1))) : 0;
    const options = { inputSize: c.I, hiddenSize: c.H, numLayers: c.layers, bidirectional: c.bidirectional, bias: c.bias, batchFirst: c.batchFirst, projSize: P, rng };
    const model: RecurrentBase = c.cell === 'lstm' ? new LSTM(options) : c.cell === 'gru' ? new GRU(options) : new RNN({ ...options, nonlinearity: c.cell === 'rnn_relu' ? 'relu' : 'tanh' });
    const D = c.bidirectional ? 2 : 1;
    const R = P || c.H;
    const rand = (shape: readonly number[], grad = false) => new Tensor(Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => rng.normal()), [...shape], grad);
    const x = rand(c.batchFirst ? [c.B, c.T, c.I] : [c.T, c.B, c.I], true);
    const h0 = c.state ? rand([c.layers * D, c.B, R], true) : null;
    const c0 = c.state && c.cell === 'lstm' ? rand([c.layers * D, c.B, c.H], true) : null;
    const lengths = c.lengths ? Array.from({ length: c.B }, () => 1 + Math.floor(rng.next() * c.T)) : null;
    const { output, hN, cN } = model.forward(x, { h0, c0, lengths });
    let loss = add(sum(mul(output, rand(output.shape))), sum(mul(hN, rand(hN.shape))));
    if (cN) loss = add(loss, sum(mul(cN, rand(cN.shape))));
    loss.backward();
    const values: Record<string, Float32Array> = { output: output.data, hN: hN.data };
    if (cN) values.cN = cN.data;
    const grads: Record<string, Float32Array> = { x: x.grad ?? new Float32Array(x.size) };
    if (h0) grads.h0 = h0.grad ?? new Float32Array(h0.size);
    if (c0) grads.c0 = c0.grad ?? new Float32Array(c0.size);
    for (const [name, p] of model.namedParameters()) grads[name] = p.grad ?? new Float32Array(p.size);
    return { values, grads };
  });
}

describe.skipIf(available.length === 0)(`native and wasm agree with the reference on random models (${available.join(', ')})`, () => {
  it('250 random configurations: forward within 1e-5, gradients within 1e-4', () => {
    let runs = 0;
    fc.assert(fc.property(caseArb, (c) => {
      const want = runCase(c, 'reference');
      for (const backend of available) {
        const got = runCase(c, backend);
        for (const [k, v] of Object.entries(want.values)) {
          const e = relativeError(got.values[k], v);
          if (!(e <= FORWARD_TOLERANCE)) throw new Error(`${backend} ${k}: relative error ${e} > ${FORWARD_TOLERANCE} for ${JSON.stringify(c)}`);
        }
        for (const [k, g] of Object.entries(want.grads)) {
          const e = relativeError(got.grads[k], g);
          if (!(e <= GRADIENT_TOLERANCE)) throw new Error(`${backend} grad ${k}: relative error ${e} > ${GRADIENT_TOLERANCE} for ${JSON.stringify(c)}`);
        }
      }
      runs++;
    }), { seed: 20_261_129, numRuns: 250 });
    expect(runs).toBe(250);
  }, 300_000);
});
