// forwardAsync: the same results and gradients as forward, on every tested backend.
import { describe, expect, it } from 'vitest';
import { GRU, LSTM, Rng, Tensor, mul, sum, withBackend, setBackend, getBackend } from '../src/index.js';
import { TESTED_BACKENDS } from './helpers.js';

for (const backend of TESTED_BACKENDS) {
  describe(`forwardAsync on ${backend}`, () => {
    it('matches forward, values and gradients (bidirectional, stacked, lengths, batch-first)', async () => {
      const previous = getBackend();
      setBackend(backend);
      try {
        const rng = new Rng(4);
        for (const layer of [
          new LSTM({ inputSize: 5, hiddenSize: 7, numLayers: 2, bidirectional: true, batchFirst: true, projSize: 3, rng }),
          new GRU({ inputSize: 5, hiddenSize: 6, rng }),
          new GRU({ inputSize: 5, hiddenSize: 6, bidirectional: true, resetAfter: false, recurrentActivation: 'hardSigmoid', rng }),
          new LSTM({ inputSize: 5, hiddenSize: 4, recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 1 / 6, rng }),
        ]) {
          const shape = layer.batchFirst ? [3, 9, 5] : [9, 3, 5];
          const x = new Tensor(Float32Array.from({ length: 135 }, () => rng.normal()), shape, true);
          const sync = layer.forward(x, { lengths: [9, 4, 6] });
          sum(mul(sync.output, sync.output)).backward();
          const gradSync = layer.parameters().map((p) => Array.from(p.grad!));
          const dxSync = Array.from(x.grad!);
          layer.zeroGrad();
          x.zeroGrad();
          const pending = layer.forwardAsync(x, { lengths: [9, 4, 6] });
          expect(pending).toBeInstanceOf(Promise);
          const asyncResult = await pending;
          expect(Array.from(asyncResult.output.data)).toEqual(Array.from(sync.output.data));
          expect(Array.from(asyncResult.hN.data)).toEqual(Array.from(sync.hN.data));
          sum(mul(asyncResult.output, asyncResult.output)).backward();
          expect(layer.parameters().map((p) => Array.from(p.grad!))).toEqual(gradSync);
          expect(Array.from(x.grad!)).toEqual(dxSync);
        }
      } finally {
        setBackend(previous);
      }
    });
  });
}

it('withBackend leaves the previous backend in place', () => {
  const before = getBackend().name;
  withBackend('reference', () => expect(getBackend().name).toBe('reference'));
  expect(getBackend().name).toBe(before);
});
