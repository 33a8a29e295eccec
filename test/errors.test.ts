// Bad input gets a clear error naming the argument, the expected and the received value,
// before any kernel runs.
import { describe, expect, it, vi } from 'vitest';
import { TESTED_BACKENDS } from './helpers.js';
import {
  Adam, AdamW, CrossCheckBackend, CrossCheckError, GRU, LSTM, LSTMCell, Linear, RNN, ReferenceBackend, Rng, SGD, Tensor,
  crossEntropy, loadBackend, readSafetensors, setBackend, getBackend, setCheckFinite, withBackend, writeSafetensors, embedding,
} from '../src/index.js';

const rng = new Rng(1);
const randn = (shape: number[]) => new Tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);

describe('layer input errors', () => {
  const lstm = new LSTM({ inputSize: 4, hiddenSize: 5, numLayers: 2 });

  it('names x, the expected and the received shape', () => {
    expect(() => lstm.forward(randn([3, 2, 7]))).toThrow('LSTM.forward: x expected shape [T, B, 4] (time-major) or unbatched [T, 4], received [3, 2, 7]'.replace(' (time-major)', ''));
    expect(() => lstm.forward(randn([3, 2, 4, 1]))).toThrow(/x expected shape \[T, B, 4\].*received \[3, 2, 4, 1\]/);
    const bf = new GRU({ inputSize: 4, hiddenSize: 5, batchFirst: true });
    expect(() => bf.forward(randn([2, 3]))).toThrow(/GRU.forward: x expected shape \[B, T, 4\]/);
  });

  it('rejects a non-tensor input', () => {
    expect(() => lstm.forward([1, 2, 3] as unknown as Tensor)).toThrow('LSTM.forward: x must be a Tensor, received object');
  });

  it('names h0 and c0 with their expected shapes', () => {
    const x = randn([3, 2, 4]);
    expect(() => lstm.forward(x, { h0: randn([1, 2, 5]) })).toThrow(/LSTM.forward: h0 expected shape \[2, 2, 5\].*received \[1, 2, 5\]/);
    expect(() => lstm.forward(x, { c0: randn([2, 3, 5]) })).toThrow(/LSTM.forward: c0 expected shape \[2, 2, 5\].*received \[2, 3, 5\]/);
    expect(() => new GRU({ inputSize: 4, hiddenSize: 5 }).forward(x, { c0: randn([1, 2, 5]) })).toThrow('GRU.forward: c0 is only for LSTM');
  });

  it('checks lengths: count and range', () => {
    const x = randn([3, 2, 4]);
    expect(() => lstm.forward(x, { lengths: [3] })).toThrow('LSTM.forward: lengths must have one entry per sequence (2), received 1');
    expect(() => lstm.forward(x, { lengths: [3, 0] })).toThrow('LSTM.forward: lengths[1] = 0 is out of range, expected an integer in 1..3 (the number of time steps)');
    expect(() => lstm.forward(x, { lengths: [4, 1] })).toThrow(/lengths\[0\] = 4 is out of range/);
    expect(() => lstm.forward(x, { lengths: [2.5, 1] })).toThrow(/lengths\[0\] = 2.5/);
  });

  it('accepts lengths in any order: same results as the sorted batch', () => {
    const r = new Rng(3);
    const l = new LSTM({ inputSize: 2, hiddenSize: 3, bidirectional: true, rng: r });
    const a = new Tensor(Float32Array.from({ length: 4 * 2 }, () => r.normal()), [4, 1, 2]);
    const b = new Tensor(Float32Array.from({ length: 4 * 2 }, () => r.normal()), [4, 1, 2]);
    const interleave = (p: Tensor, q: Tensor) => {
      const out = new Float32Array(16);
      for (let t = 0; t < 4; t++) { out.set(p.data.subarray(t * 2, t * 2 + 2), t * 4); out.set(q.data.subarray(t * 2, t * 2 + 2), t * 4 + 2); }
      return new Tensor(out, [4, 2, 2]);
    };
    const one = l.forward(interleave(a, b), { lengths: [2, 4] });
    const two = l.forward(interleave(b, a), { lengths: [4, 2] });
    for (let t = 0; t < 4; t++) {
      expect(Array.from(one.output.data.subarray((t * 2) * 6, (t * 2 + 1) * 6))).toEqual(Array.from(two.output.data.subarray((t * 2 + 1) * 6, (t * 2 + 2) * 6)));
    }
  });

  it('finds NaN and Inf when asked to check', () => {
    const x = randn([3, 2, 4]);
    x.data[5] = NaN;
    expect(() => lstm.forward(x)).not.toThrow();
    setCheckFinite(true);
    try {
      expect(() => lstm.forward(x)).toThrow('LSTM.forward: x contains NaN at flat index 5 (shape [3, 2, 4]); inputs must be finite');
      const h0 = randn([2, 2, 5]);
      h0.data[0] = Infinity;
      x.data[5] = 0;
      expect(() => lstm.forward(x, { h0 })).toThrow('LSTM.forward: h0 contains Infinity at flat index 0');
    } finally {
      setCheckFinite(false);
    }
  });

  it('checks constructor options', () => {
    expect(() => new LSTM({ inputSize: 0, hiddenSize: 3 })).toThrow('LSTM: inputSize must be a positive integer, received 0');
    expect(() => new LSTM({ inputSize: 2, hiddenSize: 3, projSize: 3 })).toThrow('LSTM: projSize must be smaller than hiddenSize (3), received 3');
    expect(() => new GRU({ inputSize: 2, hiddenSize: 3, projSize: 1 })).toThrow('GRU: projSize is only supported by LSTM');
    expect(() => new RNN({ inputSize: 2, hiddenSize: 3, nonlinearity: 'gelu' as 'relu' })).toThrow("RNN: nonlinearity must be 'tanh' or 'relu', received 'gelu'");
    expect(() => new LSTM({ inputSize: 2, hiddenSize: 3, dropout: 1 })).toThrow('LSTM: dropout must be in [0, 1), received 1');
  });

  it('cells, Linear, Embedding and losses name their arguments', () => {
    const cell = new LSTMCell(3, 4);
    expect(() => cell.step(randn([2, 5]))).toThrow('LSTMCell.step: x expected shape [B, 3], received [2, 5]');
    expect(() => cell.step(randn([2, 3]), { h: randn([2, 3]) })).toThrow('LSTMCell.step: state.h expected shape [2, 4], received [2, 3]');
    expect(() => new Linear(3, 2).forward(randn([4, 2]))).toThrow('Linear.forward: x expected shape [..., 3], received [4, 2]');
    expect(() => embedding(randn([5, 2]), [1, 7], [2])).toThrow('embedding: ids[1] = 7 is out of range, expected an integer in 0..4');
    expect(() => crossEntropy(randn([3, 4]), [0, 1])).toThrow('crossEntropy: targets expected shape [3] (one class id per row of logits [3, 4]), received [2]');
    expect(() => crossEntropy(randn([3, 4]), [0, 1, 4])).toThrow('crossEntropy: targets[2] = 4 is out of range, expected 0..3 or ignoreIndex -100');
    expect(() => new Tensor(new Float32Array(5), [2, 3])).toThrow('Tensor: data has 5 elements but shape [2, 3] needs 6');
    expect(() => randn([2, 2]).backward()).toThrow(/does not require a gradient/);
  });
});

describe('weights: stateDict and safetensors errors', () => {
  it('loadStateDict names every missing, unexpected and mis-shaped tensor, and changes nothing', () => {
    const lstm = new LSTM({ inputSize: 2, hiddenSize: 3 });
    const sd = lstm.stateDict();
    const before = lstm.weights[0][0].wIh.data.slice();
    sd.delete('bias_hh_l0');
    sd.set('weight_hr_l0', { shape: [1, 3], data: new Float32Array(3) });
    sd.set('weight_ih_l0', { shape: [12, 3], data: new Float32Array(36).fill(1) });
    expect(() => lstm.loadStateDict(sd)).toThrow('loadStateDict(LSTM): missing: bias_hh_l0; unexpected: weight_hr_l0; weight_ih_l0 has shape [12, 3], expected [12, 2]');
    expect(Array.from(lstm.weights[0][0].wIh.data)).toEqual(Array.from(before));
  });

  it('a PyTorch-named state dict round-trips through safetensors bytes', () => {
    const a = new LSTM({ inputSize: 2, hiddenSize: 3, numLayers: 2, bidirectional: true, projSize: 2, rng: new Rng(5) });
    const b = new LSTM({ inputSize: 2, hiddenSize: 3, numLayers: 2, bidirectional: true, projSize: 2, rng: new Rng(6) });
    const names = a.namedParameters().map(([n]) => n);
    expect(names).toContain('weight_hr_l1_reverse');
    expect(names.slice(0, 5)).toEqual(['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0', 'weight_hr_l0']);
    b.loadStateDict(readSafetensors(writeSafetensors(a.stateDict())).tensors);
    const x = new Tensor(Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)), [3, 2, 2]);
    expect(Array.from(b.forward(x).output.data)).toEqual(Array.from(a.forward(x).output.data));
  });

  it('a corrupt weight file is refused with a reason', () => {
    const bytes = writeSafetensors({ w: { shape: [2], data: new Float32Array(2) } });
    expect(() => readSafetensors(bytes.subarray(0, bytes.length - 3))).toThrow(/w/);
    const header = new Uint8Array(bytes);
    new DataView(header.buffer).setUint32(0, 1 << 30, true);
    expect(() => readSafetensors(header)).toThrow(/header/i);
  });
});

describe('backend selection and cross-check', () => {
  it('rejects unknown backend names, listing the valid ones', () => {
    expect(() => setBackend('gpu' as 'native')).toThrow("backend must be one of auto, native, wasm, reference; received 'gpu'");
  });

  it('setBackend and withBackend change what the layers use', () => {
    const previous = getBackend();
    try {
      expect(setBackend('reference').name).toBe('reference');
      expect(withBackend('reference', () => getBackend().name, { crossCheck: 'reference' })).toBe('reference+check(reference)');
      expect(getBackend().name).toBe('reference');
    } finally {
      setBackend(previous);
    }
  });

  it('the kernels check their buffers whatever the caller', () => {
    const be = new ReferenceBackend();
    expect(() => be.seqForward({
      cell: 'lstm', T: 2, B: 1, I: 3, H: 2, P: 0, reverse: false, x: new Float32Array(5), wIh: new Float32Array(24), wHh: new Float32Array(16),
      bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null, y: new Float32Array(4), yStride: 2, yOffset: 0,
      hN: new Float32Array(2), cN: null, training: false,
    })).toThrow('reference.seqForward(lstm): x has 5 elements, expected 6 for shape [T=2, B=1, I=3]');
    expect(() => be.gemm(false, false, 2, 2, 2, 1, new Float32Array(3), 2, new Float32Array(4), 2, 0, new Float32Array(4), 2)).toThrow('reference.gemm: A has 3 elements, expected 4 for shape [2, 2] (ld 2)');
  });

  it('every backend refuses a bad cross-entropy target with the same message', () => {
    for (const name of TESTED_BACKENDS) {
      const be = loadBackend(name);
      expect(() => be.crossEntropyForward(2, 3, new Float32Array(6), Int32Array.from([0, 3]), -100, new Float32Array(6), new Float32Array(2)))
        .toThrow(`${name}.crossEntropyForward: targets[1] = 3 is out of range, expected 0..2 or ignoreIndex -100`);
      expect(() => be.crossEntropyBackward(2, 3, new Float32Array(6), Int32Array.from([0, 1]), -100, new Float32Array(2), new Float32Array(5)))
        .toThrow(`${name}.crossEntropyBackward: dLogits has 5 elements, expected 6 for shape [2, 3]`);
    }
  });

  describe.each(TESTED_BACKENDS)('%s: element-wise and optimizer kernels refuse bad arguments with the shared message', (name) => {
    const be = loadBackend(name);
    const f = (n: number) => new Float32Array(n);
    const bad = (x: unknown) => x as never;

    it('unaryForward and unaryBackward: op and buffer lengths', () => {
      expect(() => be.unaryForward(bad('exp'), f(4), f(4))).toThrow(`${name}.unaryForward: op must be tanh, sigmoid or relu, received exp`);
      expect(() => be.unaryBackward(bad('gelu'), f(4), f(4), f(4), f(4))).toThrow(`${name}.unaryBackward: op must be tanh, sigmoid or relu, received gelu`);
      expect(() => be.unaryForward('tanh', f(4), f(3))).toThrow(`${name}.unaryForward(tanh): y has 3 elements, expected 4 for shape [4]`);
      expect(() => be.unaryForward('relu', bad(null), f(3))).toThrow(`${name}.unaryForward(relu): x is required, expected a Float32Array of shape [n]`);
      // relu reads x, tanh and sigmoid read y; the other one may be short
      expect(() => be.unaryBackward('relu', f(2), f(0), f(4), f(4))).toThrow(`${name}.unaryBackward(relu): x has 2 elements, expected 4 for shape [4]`);
      expect(() => be.unaryBackward('sigmoid', f(0), f(3), f(4), f(4))).toThrow(`${name}.unaryBackward(sigmoid): y has 3 elements, expected 4 for shape [4]`);
      expect(() => be.unaryBackward('tanh', f(0), f(4), f(4), f(3))).toThrow(`${name}.unaryBackward(tanh): dx has 3 elements, expected 4 for shape [4]`);
      const dx = Float32Array.of(1, 1);
      be.unaryBackward('tanh', f(0), Float32Array.of(0.5, 0), Float32Array.of(2, 2), dx);
      expect(Array.from(dx)).toEqual([2.5, 3]);
    });

    it('sumSquares: x is required', () => {
      expect(() => be.sumSquares(bad(null))).toThrow(`${name}.sumSquares: x is required, expected a Float32Array of shape [n]`);
    });

    const adam = (over: object) => ({
      param: Float32Array.of(1, 2, 3), grad: Float32Array.of(1, 1, 1), m: f(3), v: f(3), lr: 0.1, beta1: 0.9, beta2: 0.999,
      eps: 1e-8, weightDecay: 0, decoupled: false, step: 1, ...over,
    });
    it('adamUpdate: hyper-parameters and buffers, before anything is written', () => {
      const cases: [object, string][] = [
        [{ lr: -0.1 }, 'lr must be a finite number >= 0, received -0.1'],
        [{ lr: NaN }, 'lr must be a finite number >= 0, received NaN'],
        [{ beta1: 1 }, 'beta1 must be a number in [0, 1), received 1'],
        [{ beta2: -0.5 }, 'beta2 must be a number in [0, 1), received -0.5'],
        [{ eps: -1e-8 }, 'eps must be a finite number >= 0, received -1e-8'],
        [{ weightDecay: Infinity }, 'weightDecay must be a finite number >= 0, received Infinity'],
        [{ step: 0 }, 'step must be an integer >= 1 (1-based, for bias correction), received 0'],
        [{ step: 1.5 }, 'step must be an integer >= 1 (1-based, for bias correction), received 1.5'],
        [{ decoupled: 1 }, 'decoupled must be a boolean, received 1'],
        [{ m: f(2) }, 'm has 2 elements, expected 3 for shape [3]'],
        [{ grad: null }, 'grad is required, expected a Float32Array of shape [3]'],
      ];
      for (const [over, message] of cases) {
        const a = adam(over);
        expect(() => be.adamUpdate(bad(a))).toThrow(`${name}.adamUpdate: ${message}`);
        expect(Array.from(a.param)).toEqual([1, 2, 3]);
      }
      const ok = adam({ eps: 0 }); // PyTorch accepts eps = 0
      be.adamUpdate(ok);
      expect(Array.from(ok.param)).not.toEqual([1, 2, 3]);
    });

    const sgd = (over: object) => ({
      param: Float32Array.of(1, 2, 3), grad: Float32Array.of(1, 1, 1), momentumBuffer: f(3), lr: 0.1, momentum: 0.9,
      dampening: 0, weightDecay: 0, nesterov: false, firstStep: true, ...over,
    });
    it('sgdUpdate: hyper-parameters and buffers, before anything is written', () => {
      const cases: [object, string][] = [
        [{ lr: -1 }, 'lr must be a finite number >= 0, received -1'],
        [{ momentum: -0.9 }, 'momentum must be a finite number >= 0, received -0.9'],
        [{ dampening: NaN }, 'dampening must be a finite number, received NaN'],
        [{ weightDecay: -0.01 }, 'weightDecay must be a finite number >= 0, received -0.01'],
        [{ nesterov: true, momentum: 0 }, 'nesterov needs momentum > 0 and dampening 0, received momentum 0 and dampening 0'],
        [{ nesterov: true, dampening: 0.1 }, 'nesterov needs momentum > 0 and dampening 0, received momentum 0.9 and dampening 0.1'],
        [{ firstStep: 'yes' }, 'firstStep must be a boolean, received yes'],
        [{ momentumBuffer: f(0) }, 'momentumBuffer has 0 elements, expected 3 for shape [3]'],
        [{ grad: f(2) }, 'grad has 2 elements, expected 3 for shape [3]'],
      ];
      for (const [over, message] of cases) {
        const a = sgd(over);
        expect(() => be.sgdUpdate(bad(a))).toThrow(`${name}.sgdUpdate: ${message}`);
        expect(Array.from(a.param)).toEqual([1, 2, 3]);
      }
      const plain = sgd({ momentum: 0, momentumBuffer: f(0) }); // the buffer is not read without momentum
      be.sgdUpdate(plain);
      expect(Array.from(plain.param)).toEqual([0.9, 1.9, 2.9].map(Math.fround));
    });
  });

  it('optimizers check their options when built, and lr again at every step', () => {
    const p = new Tensor(Float32Array.of(1, 2), [2], true);
    expect(() => new Adam([p], { betas: [1, 0.999] })).toThrow('Adam: beta1 must be a number in [0, 1), received 1');
    expect(() => new AdamW([p], { eps: -1 })).toThrow('AdamW: eps must be a finite number >= 0, received -1');
    expect(() => new Adam([p], { lr: NaN })).toThrow('Adam: lr must be a finite number >= 0, received NaN');
    expect(() => new SGD([p], { lr: 0.1, momentum: -1 })).toThrow('SGD: momentum must be a finite number >= 0, received -1');
    expect(() => new SGD([p], { lr: 0.1, weightDecay: -1 })).toThrow('SGD: weightDecay must be a finite number >= 0, received -1');
    expect(() => new SGD([p], { lr: 0.1, nesterov: true })).toThrow('SGD: nesterov needs momentum > 0 and dampening 0, received momentum 0 and dampening 0');
    const opt = new SGD([p], { lr: 0.1 });
    p.grad = Float32Array.of(1, 1);
    opt.lr = -1; // e.g. a broken schedule
    expect(() => withBackend('reference', () => opt.step())).toThrow('reference.sgdUpdate: lr must be a finite number >= 0, received -1');
  });

  it('cross-check mode throws on the first mismatch, naming kernel, shapes and worst element', () => {
    class Skewed extends ReferenceBackend {
      override readonly name = 'skewed' as 'reference';
      override unaryForward(op: 'tanh' | 'sigmoid' | 'relu', x: Float32Array, y: Float32Array): void {
        super.unaryForward(op, x, y);
        y[2] += 0.5;
      }
    }
    const checked = new CrossCheckBackend(new Skewed(), new ReferenceBackend());
    expect(() => checked.unaryForward('tanh', new Float32Array([0, 0.1, 0.2, 0.3]), new Float32Array(4))).toThrow(CrossCheckError);
    expect(() => checked.unaryForward('tanh', new Float32Array([0, 0.1, 0.2, 0.3]), new Float32Array(4)))
      .toThrow(/cross-check failed in unaryForward\(tanh\) \(n=4\): y\[2\] is 0\.69.* on skewed but 0\.197.* on reference/);
  });

  it('RNNKIT_BACKEND and RNNKIT_CROSSCHECK choose the backend at start-up', async () => {
    vi.resetModules();
    vi.stubEnv('RNNKIT_BACKEND', 'reference');
    vi.stubEnv('RNNKIT_CROSSCHECK', 'reference');
    try {
      const fresh = await import('../src/backends/index.js');
      expect(fresh.getBackend().name).toBe('reference+check(reference)');
      vi.resetModules();
      vi.stubEnv('RNNKIT_BACKEND', 'tpu');
      const bad = await import('../src/backends/index.js');
      expect(() => bad.getBackend()).toThrow("backend must be one of auto, native, wasm, reference; received 'tpu'");
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});
