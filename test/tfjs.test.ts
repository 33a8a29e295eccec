// TF.js layers models made by @tensorflow/tfjs load into rnnkit and predict what TF.js predicts;
// unsupported layers and options, and broken files, get one clear error each.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectCloseToLargest } from './helpers.js';
import { main } from '../src/cli/index.js';
import { Embedding, GRU, LSTM, Linear, RNN, RecurrentModel, Rng, Tensor, TfjsError, loadTfjsModel, noGrad, toTfjsModel, type TfjsArtifacts } from '../src/index.js';

interface Saved { modelJson: Record<string, unknown>; weightData: Uint8Array }

async function save(model: tf.LayersModel): Promise<Saved> {
  let saved: Saved | null = null;
  await model.save(tf.io.withSaveHandler(async (a) => {
    saved = {
      modelJson: { format: 'layers-model', modelTopology: a.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }] },
      weightData: new Uint8Array(a.weightData as ArrayBuffer),
    };
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return saved!;
}

const sig = { recurrentActivation: 'sigmoid' } as const;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('loadTfjsModel: rnnkit predicts what TF.js predicts', () => {
  it('Embedding(mask_zero) -> Bidirectional(LSTM, concat) -> LSTM -> Dense(softmax), padded sequences', async () => {
    const m = tf.sequential();
    m.add(tf.layers.embedding({ inputDim: 9, outputDim: 4, maskZero: true, inputLength: 6 }));
    m.add(tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 5, returnSequences: true, ...sig }), mergeMode: 'concat' }));
    m.add(tf.layers.lstm({ units: 3, ...sig }));
    m.add(tf.layers.dense({ units: 4, activation: 'softmax' }));
    const ids = [[1, 2, 3, 4, 5, 6], [7, 8, 1, 0, 0, 0], [2, 0, 0, 0, 0, 0]];
    const want = (m.predict(tf.tensor2d(ids)) as tf.Tensor).dataSync();
    const s = await save(m);
    const r = loadTfjsModel(s.modelJson, s.weightData);
    const got = noGrad(() => r.forward(new Tensor(Float32Array.from(ids.flat()), [3, 6])));
    expect(got.shape).toEqual([3, 4]);
    expectCloseToLargest(got.data, want, 'probabilities');
  });

  it('SimpleRNN(relu) -> Bidirectional(SimpleRNN, sum) -> TimeDistributed(Dense(tanh)) with Dropout', async () => {
    const m = tf.sequential();
    m.add(tf.layers.simpleRNN({ units: 6, activation: 'relu', returnSequences: true, inputShape: [5, 3] }));
    m.add(tf.layers.dropout({ rate: 0.5 }));
    m.add(tf.layers.bidirectional({ layer: tf.layers.simpleRNN({ units: 4, returnSequences: true }), mergeMode: 'sum' }));
    m.add(tf.layers.timeDistributed({ layer: tf.layers.dense({ units: 2, activation: 'tanh' }) }));
    const rng = new Rng(3);
    const x = Float32Array.from({ length: 2 * 5 * 3 }, () => rng.uniform(-1, 1));
    const want = (m.predict(tf.tensor3d(x, [2, 5, 3])) as tf.Tensor).dataSync();
    const s = await save(m);
    const got = noGrad(() => loadTfjsModel(s.modelJson, s.weightData).forward(new Tensor(x, [2, 5, 3])));
    expect(got.shape).toEqual([2, 5, 2]);
    expectCloseToLargest(got.data, want, 'output');
  });

  for (const mergeMode of ['mul', 'ave'] as const) {
    it(`Masking -> Bidirectional(LSTM, ${mergeMode}) returning sequences -> Dense, padded sequences`, async () => {
      const m = tf.sequential();
      m.add(tf.layers.masking({ maskValue: 0, inputShape: [4, 2] }));
      m.add(tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 3, returnSequences: true, ...sig }), mergeMode }));
      m.add(tf.layers.dense({ units: 2 }));
      const rng = new Rng(4);
      const x = Float32Array.from({ length: 3 * 4 * 2 }, () => rng.uniform(0.1, 1));
      x.fill(0, 1 * 8 + 2 * 2, 2 * 8); // sequence 1: 2 steps
      x.fill(0, 2 * 8 + 3 * 2); // sequence 2: 3 steps
      const want = (m.predict(tf.tensor3d(x, [3, 4, 2])) as tf.Tensor).dataSync();
      const s = await save(m);
      const got = noGrad(() => loadTfjsModel(s.modelJson, s.weightData).forward(new Tensor(x, [3, 4, 2])));
      expectCloseToLargest(got.data, want, 'output');
    });
  }

  it('a functional model (input -> LSTM -> Dense)', async () => {
    const input = tf.input({ shape: [3, 2] });
    const h = tf.layers.lstm({ units: 4, ...sig }).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 1, activation: 'sigmoid' }).apply(h) as tf.SymbolicTensor;
    const m = tf.model({ inputs: input, outputs: out });
    const rng = new Rng(5);
    const x = Float32Array.from({ length: 2 * 3 * 2 }, () => rng.uniform(-1, 1));
    const want = (m.predict(tf.tensor3d(x, [2, 3, 2])) as tf.Tensor).dataSync();
    const s = await save(m);
    expectCloseToLargest(noGrad(() => loadTfjsModel(s.modelJson, s.weightData).forward(new Tensor(x, [2, 3, 2]))).data, want, 'output');
  });

  it('GRU reset_after=True (Keras\' default, PyTorch\'s form) gives the Keras equations\' result', async () => {
    // TF.js layers cannot make this layer (it refuses resetAfter: true): write its model.json directly
    const I = 2, H = 3, T = 4;
    const rng = new Rng(6);
    const rand = (n: number) => Float32Array.from({ length: n }, () => rng.uniform(-1, 1));
    const kernel = rand(I * 3 * H), rec = rand(H * 3 * H), bias = rand(2 * 3 * H);
    const weightData = new Uint8Array(new Float32Array([...kernel, ...rec, ...bias]).buffer);
    const modelJson = {
      modelTopology: { class_name: 'Sequential', config: { layers: [{ class_name: 'GRU', config: { name: 'gru', units: H, reset_after: true, recurrent_activation: 'sigmoid', activation: 'tanh', return_sequences: true } }] } },
      weightsManifest: [{ paths: ['w.bin'], weights: [{ name: 'gru/kernel', shape: [I, 3 * H] }, { name: 'gru/recurrent_kernel', shape: [H, 3 * H] }, { name: 'gru/bias', shape: [2, 3 * H] }] }],
    };
    const x = rand(T * I);
    // Keras' GRU with reset_after (gates z, r, h in the kernel columns), in float64
    const s = (v: number) => 1 / (1 + Math.exp(-v));
    let h = new Float64Array(H);
    const want: number[] = [];
    for (let t = 0; t < T; t++) {
      const xi = (g: number, j: number) => { let a = bias[g * H + j]; for (let i = 0; i < I; i++) a += x[t * I + i] * kernel[i * 3 * H + g * H + j]; return a; };
      const hr = (g: number, j: number) => { let a = bias[3 * H + g * H + j]; for (let k = 0; k < H; k++) a += h[k] * rec[k * 3 * H + g * H + j]; return a; };
      const next = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        const z = s(xi(0, j) + hr(0, j));
        const r = s(xi(1, j) + hr(1, j));
        const c = Math.tanh(xi(2, j) + r * hr(2, j));
        next[j] = z * h[j] + (1 - z) * c;
      }
      h = next;
      want.push(...h);
    }
    const got = noGrad(() => loadTfjsModel(modelJson, weightData).forward(new Tensor(x, [1, T, I])));
    expectCloseToLargest(got.data, want, 'GRU output');
  });
});

describe('loadTfjsModel: TF.js\'s defaults (hard-sigmoid gates, the reset-before GRU)', () => {
  const rng = new Rng(21);
  // inputs large enough that many gates sit on the hard sigmoid's flat parts
  const input = (n: number, scale = 2) => Float32Array.from({ length: n }, () => rng.uniform(-scale, scale));

  it('LSTM with its default recurrent activation (hard_sigmoid) -> Dense', async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 5, inputShape: [6, 3], returnSequences: true }));
    m.add(tf.layers.dense({ units: 2 }));
    const x = input(3 * 6 * 3);
    const want = (m.predict(tf.tensor3d(x, [3, 6, 3])) as tf.Tensor).dataSync();
    const s = await save(m);
    expect(JSON.stringify(s.modelJson)).toContain('"recurrent_activation":"hard_sigmoid"');
    const r = loadTfjsModel(s.modelJson, s.weightData);
    expectCloseToLargest(noGrad(() => r.forward(new Tensor(x, [3, 6, 3]))).data, want, 'output');
  });

  it('GRU with its defaults (reset-before, hard_sigmoid), two stacked, the last returning its final state', async () => {
    const m = tf.sequential();
    m.add(tf.layers.gru({ units: 4, inputShape: [5, 3], returnSequences: true }));
    m.add(tf.layers.gru({ units: 3 }));
    const x = input(2 * 5 * 3);
    const want = (m.predict(tf.tensor3d(x, [2, 5, 3])) as tf.Tensor).dataSync();
    const s = await save(m);
    const r = loadTfjsModel(s.modelJson, s.weightData);
    const rnn = r.exportSteps().find((st) => st.kind === 'recurrent');
    expect(rnn && rnn.kind === 'recurrent' && rnn.rnn.cell).toBe('gru_reset_before');
    expectCloseToLargest(noGrad(() => r.forward(new Tensor(x, [2, 5, 3]))).data, want, 'output');
  });

  for (const recurrentActivation of ['sigmoid', 'hardSigmoid'] as const) {
    it(`Masking -> Bidirectional(GRU, ${recurrentActivation}) -> Bidirectional(LSTM, ${recurrentActivation}) -> Dense, padded sequences`, async () => {
      const m = tf.sequential();
      m.add(tf.layers.masking({ maskValue: 0, inputShape: [4, 2] }));
      m.add(tf.layers.bidirectional({ layer: tf.layers.gru({ units: 3, returnSequences: true, recurrentActivation }), mergeMode: 'concat' }));
      m.add(tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 2, returnSequences: true, recurrentActivation }), mergeMode: 'sum' }));
      m.add(tf.layers.dense({ units: 2 }));
      const x = Float32Array.from({ length: 3 * 4 * 2 }, () => rng.uniform(0.1, 2));
      x.fill(0, 1 * 8 + 2 * 2, 2 * 8); // sequence 1: 2 steps
      x.fill(0, 2 * 8 + 3 * 2); // sequence 2: 3 steps
      const want = (m.predict(tf.tensor3d(x, [3, 4, 2])) as tf.Tensor).dataSync();
      const s = await save(m);
      const got = noGrad(() => loadTfjsModel(s.modelJson, s.weightData).forward(new Tensor(x, [3, 4, 2])));
      expectCloseToLargest(got.data, want, 'output');
    });
  }

  it('Embedding(mask_zero) -> GRU (reset-before, no bias) -> Dense(softmax)', async () => {
    const m = tf.sequential();
    m.add(tf.layers.embedding({ inputDim: 9, outputDim: 4, maskZero: true, inputLength: 5 }));
    m.add(tf.layers.gru({ units: 3, useBias: false }));
    m.add(tf.layers.dense({ units: 4, activation: 'softmax' }));
    const ids = [[1, 2, 3, 4, 5], [7, 8, 1, 0, 0]];
    const want = (m.predict(tf.tensor2d(ids)) as tf.Tensor).dataSync();
    const s = await save(m);
    const got = noGrad(() => loadTfjsModel(s.modelJson, s.weightData).forward(new Tensor(Float32Array.from(ids.flat()), [2, 5])));
    expectCloseToLargest(got.data, want, 'probabilities');
  });
});

describe('loadTfjsModel: unsupported and malformed models', () => {
  it('an unknown recurrent activation is refused, naming the layer and the accepted values', async () => {
    const l = tf.sequential();
    l.add(tf.layers.lstm({ units: 2, inputShape: [3, 2], name: 'lstm_1', recurrentActivation: 'tanh' }));
    const sl = await save(l);
    expect(() => loadTfjsModel(sl.modelJson, sl.weightData)).toThrow("LSTM 'lstm_1': recurrent_activation 'tanh' is not supported (expected 'sigmoid' or 'hard_sigmoid')");
  });

  it('an unknown layer, truncated weights, wrong shapes', async () => {
    const c = tf.sequential();
    c.add(tf.layers.conv1d({ filters: 2, kernelSize: 2, inputShape: [4, 2], name: 'conv' }));
    const sc = await save(c);
    expect(() => loadTfjsModel(sc.modelJson, sc.weightData)).toThrow("Conv1D 'conv': layer class 'Conv1D' is not supported");
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 2, inputShape: [3, 2], name: 'lstm', ...sig }));
    const s = await save(m);
    expect(() => loadTfjsModel(s.modelJson, s.weightData.subarray(0, 20))).toThrow(TfjsError);
    expect(() => loadTfjsModel(s.modelJson, s.weightData.subarray(0, 20))).toThrow(/weight data is too short: 'lstm\/kernel' needs bytes 0\.\.64, the weight files hold 20 \(a shard is missing or truncated\)/);
    const bad = structuredClone(s.modelJson) as { weightsManifest: Array<{ weights: Array<{ shape: number[] }> }> };
    bad.weightsManifest[0].weights[0].shape = [8, 2];
    expect(() => loadTfjsModel(bad, s.weightData)).toThrow("LSTM 'lstm': kernel has shape [8, 2], expected [8, 8]");
    expect(() => loadTfjsModel({ format: 'graph-model' }, new Uint8Array(0))).toThrow(/modelTopology is missing/);
  });

  it('rnnkit convert / run read model.json + weights.bin; a missing shard is one clear error', async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 2, inputShape: [3, 2], returnSequences: true, ...sig }));
    const s = await save(m);
    const dir = mkdtempSync(join(tmpdir(), 'rnnkit-tfjs-'));
    writeFileSync(join(dir, 'model.json'), JSON.stringify(s.modelJson));
    const io = () => { const o = { out: '', err: '' }; return { o, io: { out: (x: string) => { o.out += x; }, err: (x: string) => { o.err += x; } } }; };
    const missing = io();
    expect(await main(['convert', join(dir, 'model.json'), join(dir, 'm.safetensors')], missing.io)).toBe(2);
    expect(missing.o.err).toMatch(/model\.json: weight file weights\.bin is missing/);
    writeFileSync(join(dir, 'weights.bin'), s.weightData);
    const x = [[[0.1, 0.2], [0.3, -0.4], [0.5, 0.6]]];
    writeFileSync(join(dir, 'in.json'), JSON.stringify({ x }));
    const r = io();
    expect(await main(['run', join(dir, 'model.json'), '--input', join(dir, 'in.json')], r.io), r.o.err).toBe(0);
    const want = (m.predict(tf.tensor3d(x)) as tf.Tensor).dataSync();
    expectCloseToLargest((JSON.parse(r.o.out).output as number[][][]).flat(2), want, 'run output');
    const c = io();
    expect(await main(['convert', join(dir, 'model.json'), join(dir, 'm.safetensors')], c.io), c.o.err).toBe(0);
    // and back out as TF.js: model.json + weights beside it, loaded by tf.loadLayersModel
    const w = io();
    expect(await main(['convert', join(dir, 'model.json'), join(dir, 'out.json')], w.io), w.o.err).toBe(0);
    const written = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8'));
    expect(written.weightsManifest[0].paths).toEqual(['out.weights.bin']);
    const back = await loadInTfjs({ modelJson: written, weightData: new Uint8Array(readFileSync(join(dir, 'out.weights.bin'))) });
    expectCloseToLargest((back.predict(tf.tensor3d(x)) as tf.Tensor).dataSync(), want, 'written model');
  });
});

async function loadInTfjs(a: TfjsArtifacts): Promise<tf.LayersModel> {
  const buffer = a.weightData.buffer.slice(a.weightData.byteOffset, a.weightData.byteOffset + a.weightData.byteLength) as ArrayBuffer;
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: a.modelJson.modelTopology as object, weightSpecs: a.modelJson.weightsManifest[0].weights as tf.io.WeightsManifestEntry[], weightData: buffer }));
}

describe('toTfjsModel: tf.loadLayersModel loads what rnnkit writes and predicts the same', () => {
  it('Embedding -> 2-layer bidirectional LSTM -> Linear', async () => {
    const rng = new Rng(8);
    const m = new RecurrentModel({ embedding: new Embedding(7, 3, { rng }), rnn: new LSTM({ inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, rng }), fc: new Linear(8, 5, { rng }) }).eval();
    const B = 2, T = 4;
    const idsBT = [[1, 2, 3, 4], [5, 6, 0, 1]];
    const idsTB = Array.from({ length: T }, (_, t) => idsBT.map((row) => row[t]));
    const want = noGrad(() => m.forward(new Tensor(Float32Array.from(idsTB.flat()), [T, B]))).output; // [T, B, 5]
    const tm = await loadInTfjs(toTfjsModel(m));
    const got = (tm.predict(tf.tensor2d(idsBT)) as tf.Tensor).dataSync(); // [B, T, 5]
    const wantBT = Array.from({ length: B * T * 5 }, (_, k) => { const b = Math.floor(k / (T * 5)), t = Math.floor(k / 5) % T, o = k % 5; return want.data[(t * B + b) * 5 + o]; });
    expectCloseToLargest(got, wantBT, 'logits');
  });

  it('RNN relu with 2 layers (features in, sequences out)', async () => {
    const rnn = new RNN({ inputSize: 3, hiddenSize: 5, numLayers: 2, nonlinearity: 'relu', batchFirst: true, rng: new Rng(9) }).eval();
    const rng = new Rng(10);
    const x = Float32Array.from({ length: 2 * 4 * 3 }, () => rng.uniform(-1, 1));
    const want = noGrad(() => rnn.forward(new Tensor(x, [2, 4, 3]))).output;
    const tm = await loadInTfjs(toTfjsModel(rnn));
    expectCloseToLargest((tm.predict(tf.tensor3d(x, [2, 4, 3])) as tf.Tensor).dataSync(), want.data, 'output');
  });

  it('a model read from TF.js is written back with its masks, merges and activations', async () => {
    const m = tf.sequential();
    m.add(tf.layers.embedding({ inputDim: 9, outputDim: 4, maskZero: true, inputLength: 5 }));
    m.add(tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 3, returnSequences: true, ...sig }), mergeMode: 'ave' }));
    m.add(tf.layers.simpleRNN({ units: 3 }));
    m.add(tf.layers.dense({ units: 2, activation: 'softmax' }));
    const ids = [[1, 2, 3, 4, 5], [7, 8, 0, 0, 0]];
    const want = (m.predict(tf.tensor2d(ids)) as tf.Tensor).dataSync();
    const s = await save(m);
    const again = await loadInTfjs(toTfjsModel(loadTfjsModel(s.modelJson, s.weightData)));
    expectCloseToLargest((again.predict(tf.tensor2d(ids)) as tf.Tensor).dataSync(), want, 'probabilities');
  });

  for (const recurrentActivation of ['sigmoid', 'hardSigmoid'] as const) {
    it(`a reset-before GRU (${recurrentActivation}), 2 layers bidirectional, and a hard-sigmoid LSTM`, async () => {
      const rng = new Rng(12);
      const x = Float32Array.from({ length: 2 * 5 * 3 }, () => rng.uniform(-2, 2));
      for (const rnn of [
        new GRU({ inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, batchFirst: true, resetAfter: false, recurrentActivation, rng }),
        new LSTM({ inputSize: 3, hiddenSize: 4, batchFirst: true, recurrentActivation, rng }),
      ]) {
        rnn.eval();
        const want = noGrad(() => rnn.forward(new Tensor(x, [2, 5, 3]))).output;
        const tm = await loadInTfjs(toTfjsModel(rnn));
        expectCloseToLargest((tm.predict(tf.tensor3d(x, [2, 5, 3])) as tf.Tensor).dataSync(), want.data, `${rnn.cell} output`);
      }
    });
  }

  it('a TF.js GRU model read and written back predicts the same', async () => {
    const m = tf.sequential();
    m.add(tf.layers.gru({ units: 3, inputShape: [4, 2], returnSequences: true }));
    m.add(tf.layers.dense({ units: 2 }));
    const x = tf.randomUniform([2, 4, 2], -2, 2, 'float32', 7);
    const want = (m.predict(x) as tf.Tensor).dataSync();
    const s = await save(m);
    const again = await loadInTfjs(toTfjsModel(loadTfjsModel(s.modelJson, s.weightData)));
    expectCloseToLargest((again.predict(x) as tf.Tensor).dataSync(), want, 'output');
  });

  it('PyTorch\'s GRU and a hard sigmoid other than TF.js\'s are refused with the reason', () => {
    expect(() => toTfjsModel(new GRU({ inputSize: 2, hiddenSize: 3 }))).toThrow(/GRU cannot be written: TF.js layers only implements the reset-before GRU \(reset_after=False\), and this GRU is PyTorch's reset-after form \(build it with resetAfter: false for TF.js\)/);
    expect(() => toTfjsModel(new LSTM({ inputSize: 2, hiddenSize: 3, recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 1 / 6 })))
      .toThrow(/TF.js's hard_sigmoid is clamp\(0.2 x \+ 0.5, 0, 1\); this LSTM's hard sigmoid has alpha 0.1666/);
  });
});

describe('loadTfjsModel: sizes in the file are checked before anything is allocated', () => {
  it('units far larger than the weights is a shape error, not an allocation failure', async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 2, inputShape: [3, 2], name: 'lstm', ...sig }));
    const s = await save(m);
    const bad = structuredClone(s.modelJson) as { modelTopology: { config: { layers: Array<{ config: { units: number } }> } } };
    bad.modelTopology.config.layers[0].config.units = 1e9;
    expect(() => loadTfjsModel(bad, s.weightData)).toThrow(/LSTM 'lstm': kernel has shape \[2, 8\], expected \[2, 4000000000\]/);
  });
});
