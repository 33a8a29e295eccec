// ONNX export and import: onnxruntime (node and web) runs what toOnnx writes and agrees with rnnkit;
// graphs written by torch.onnx.export load and give PyTorch's outputs; bad files get one clear error.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { expectCloseToLargest } from './helpers.js';
import {
  GRU, LSTM, LanguageModel, OnnxError, RNN, RecurrentModel, Rng, Tensor, loadOnnx, noGrad, toOnnx, type RecurrentBase,
} from '../src/index.js';

const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && (() => {
  try { execFileSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }); return true; } catch { return false; }
})();

function randomTensor(shape: number[], rng: Rng): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(Float32Array.from({ length: n }, () => rng.uniform(-1, 1)), shape);
}

type Ort = typeof ortNode;
async function runOrt(ort: Ort, bytes: Uint8Array, feeds: Record<string, { data: Float32Array | Int32Array | BigInt64Array; dims: number[] }>) {
  const session = await ort.InferenceSession.create(bytes);
  const inputs: Record<string, InstanceType<Ort['Tensor']>> = {};
  for (const [name, f] of Object.entries(feeds)) {
    const type = f.data instanceof Float32Array ? 'float32' : f.data instanceof Int32Array ? 'int32' : 'int64';
    inputs[name] = new ort.Tensor(type, f.data, f.dims);
  }
  const out = await session.run(inputs);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

interface Case { name: string; make: (rng: Rng) => RecurrentBase; T: number; B: number; state: boolean; lengths: boolean }
const CASES: Case[] = [
  { name: 'LSTM 1 layer', make: (rng) => new LSTM({ inputSize: 3, hiddenSize: 5, rng }), T: 4, B: 2, state: false, lengths: false },
  { name: 'LSTM 2 layers bidirectional, states, lengths', make: (rng) => new LSTM({ inputSize: 6, hiddenSize: 8, numLayers: 2, bidirectional: true, rng }), T: 7, B: 3, state: true, lengths: true },
  { name: 'GRU 3 layers, states', make: (rng) => new GRU({ inputSize: 4, hiddenSize: 16, numLayers: 3, rng }), T: 5, B: 4, state: true, lengths: false },
  { name: 'GRU bidirectional, lengths', make: (rng) => new GRU({ inputSize: 5, hiddenSize: 7, bidirectional: true, rng }), T: 6, B: 3, state: false, lengths: true },
  { name: 'RNN tanh 2 layers bidirectional', make: (rng) => new RNN({ inputSize: 3, hiddenSize: 33, numLayers: 2, bidirectional: true, rng }), T: 9, B: 2, state: true, lengths: true },
  { name: 'RNN relu, no bias', make: (rng) => new RNN({ inputSize: 4, hiddenSize: 6, nonlinearity: 'relu', bias: false, rng }), T: 5, B: 2, state: true, lengths: false },
  { name: 'LSTM batchFirst', make: (rng) => new LSTM({ inputSize: 3, hiddenSize: 4, batchFirst: true, rng }), T: 3, B: 5, state: false, lengths: false },
  // the reset-before GRU (linear_before_reset=0) and hard-sigmoid gates (HardSigmoid, alpha, beta)
  { name: 'GRU reset-before 2 layers bidirectional, states, lengths', make: (rng) => new GRU({ inputSize: 4, hiddenSize: 6, numLayers: 2, bidirectional: true, resetAfter: false, rng }), T: 6, B: 3, state: true, lengths: true },
  { name: 'GRU reset-before, hard sigmoid (TF.js 0.2 / 0.5)', make: (rng) => new GRU({ inputSize: 3, hiddenSize: 5, resetAfter: false, recurrentActivation: 'hardSigmoid', rng }), T: 5, B: 2, state: true, lengths: false },
  { name: 'GRU reset-after, hard sigmoid alpha 1/6 (Keras 3), bidirectional', make: (rng) => new GRU({ inputSize: 3, hiddenSize: 5, bidirectional: true, recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 1 / 6, rng }), T: 5, B: 2, state: false, lengths: true },
  { name: 'LSTM hard sigmoid steep (alpha 0.9, beta 0.45), 2 layers bidirectional, states', make: (rng) => new LSTM({ inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 0.9, hardSigmoidBeta: 0.45, rng }), T: 5, B: 3, state: true, lengths: true },
];

describe('toOnnx: onnxruntime runs the exported model and agrees with rnnkit', () => {
  for (const c of CASES) {
    for (const [runtime, ort] of [['onnxruntime-node', ortNode], ['onnxruntime-web', ortWeb as unknown as Ort]] as const) {
      it(`${c.name} (${runtime})`, async () => {
        const rng = new Rng(7);
        const m = c.make(rng).eval();
        const D = m.bidirectional ? 2 : 1;
        const x = randomTensor(m.batchFirst ? [c.B, c.T, m.inputSize] : [c.T, c.B, m.inputSize], rng);
        const h0 = c.state ? randomTensor([m.numLayers * D, c.B, m.hiddenSize], rng) : null;
        const c0 = c.state && m.cell === 'lstm' ? randomTensor([m.numLayers * D, c.B, m.hiddenSize], rng) : null;
        const lengths = c.lengths ? Int32Array.from({ length: c.B }, (_, b) => (b === 0 ? c.T : 1 + ((b * 3) % c.T))) : null;
        const want = noGrad(() => m.forward(x, { h0, c0, lengths }));
        const bytes = toOnnx(m, { initialState: c.state, lengths: c.lengths });
        const feeds: Parameters<typeof runOrt>[2] = { x: { data: x.data, dims: [...x.shape] } };
        if (h0) feeds.h0 = { data: h0.data, dims: [...h0.shape] };
        if (c0) feeds.c0 = { data: c0.data, dims: [...c0.shape] };
        if (lengths) feeds.lengths = { data: lengths, dims: [c.B] };
        const got = await runOrt(ort, bytes, feeds);
        expectCloseToLargest(got.output, want.output.data, 'output');
        expectCloseToLargest(got.h_n, want.hN.data, 'h_n');
        if (want.cN) expectCloseToLargest(got.c_n, want.cN.data, 'c_n');
        // and back: the file loads into rnnkit with the same weights
        const back = loadOnnx(bytes);
        expect([...back.stateDict().keys()].sort()).toEqual([...m.stateDict().keys()].map((k) => `${m.constructor.name.toLowerCase()}.${k}`).sort());
        for (const [k, v] of m.stateDict()) expect(back.rnn.stateDict().get(k)!.data).toEqual(v.data);
        expect(back.rnn.cell).toBe(m.cell);
        // ONNX keeps alpha and beta as float32
        const f32 = (a: typeof m.recurrentActivation) => (a.kind === 'hardSigmoid' ? { ...a, alpha: Math.fround(a.alpha), beta: Math.fround(a.beta) } : a);
        expect(f32(back.rnn.recurrentActivation)).toEqual(f32(m.recurrentActivation));
      });
    }
  }

  it('LanguageModel (Embedding -> GRU stack -> Linear) with int64 token input', async () => {
    const rng = new Rng(3);
    const lm = new LanguageModel({ vocabSize: 11, embeddingDim: 6, hiddenSize: 9, numLayers: 2, cell: 'gru', dropout: 0.3, rng }).eval();
    const T = 5, B = 3;
    const ids = Array.from({ length: T * B }, () => Math.floor(rng.uniform(0, 11)));
    const want = noGrad(() => lm.forward(ids, T, B));
    const got = await runOrt(ortNode, toOnnx(lm), { x: { data: BigInt64Array.from(ids.map(BigInt)), dims: [T, B] } });
    expectCloseToLargest(got.output, want.logits.data, 'logits');
    expectCloseToLargest(got.h_n, want.state.h!.data, 'h_n');
    const back = loadOnnx(toOnnx(lm));
    const again = noGrad(() => back.forward(new Tensor(Float32Array.from(ids), [T, B])));
    expectCloseToLargest(again.output.data, want.logits.data, 'reloaded logits');
  });

  it('LSTM projSize is refused, naming it', () => {
    expect(() => toOnnx(new LSTM({ inputSize: 3, hiddenSize: 5, projSize: 2 }))).toThrow(/projSize \(2\).*no projection/);
  });

  it('a module that is not recurrent is refused, naming what was received', () => {
    expect(() => toOnnx({} as never)).toThrow(/module must be an RNN, LSTM, GRU, LanguageModel or RecurrentModel, received Object/);
  });
});

describe('loadOnnx: malformed and unsupported files', () => {
  const { onnx } = onnxProto;
  const good = toOnnx(new GRU({ inputSize: 3, hiddenSize: 4, rng: new Rng(1) }));
  const edit = (f: (m: InstanceType<typeof onnx.ModelProto>) => void) => {
    const m = onnx.ModelProto.decode(good);
    f(m);
    return onnx.ModelProto.encode(m).finish();
  };
  const gruNode = (m: InstanceType<typeof onnx.ModelProto>) => m.graph!.node!.find((n) => n.opType === 'GRU')!;

  it('truncated protobuf', () => {
    expect(() => loadOnnx(good.subarray(0, good.length - 7))).toThrow(OnnxError);
    expect(() => loadOnnx(good.subarray(0, good.length - 7))).toThrow(/not a valid ONNX model/);
  });
  it('random bytes', () => {
    expect(() => loadOnnx(new TextEncoder().encode('{"format": "layers-model"}'))).toThrow(/not a valid ONNX model/);
  });
  it('an empty graph', () => {
    expect(() => loadOnnx(new Uint8Array(0))).toThrow(/no graph nodes/);
  });
  it('an unknown operator', () => {
    const bytes = edit((m) => { m.graph!.node!.push(onnx.NodeProto.create({ opType: 'Softmax', name: 'sm', input: ['output'], output: ['p'] })); });
    expect(() => loadOnnx(bytes)).toThrow(/unsupported ONNX operator 'Softmax' \(node 'sm'\)/);
  });
  it('linear_before_reset=0 is the reset-before GRU; HardSigmoid without alpha / beta takes ONNX\'s defaults', () => {
    const rb = loadOnnx(edit((m) => { gruNode(m).attribute!.find((a) => a.name === 'linear_before_reset')!.i = 0; }));
    expect(rb.rnn.cell).toBe('gru_reset_before');
    const hard = loadOnnx(edit((m) => {
      gruNode(m).attribute!.push(onnx.AttributeProto.create({ name: 'activations', type: 8, strings: ['HardSigmoid', 'Tanh'].map((s) => new TextEncoder().encode(s)) }));
    }));
    expect(hard.rnn.recurrentActivation).toEqual({ kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 });
    expect(hard.rnn.cell).toBe('gru');
  });
  it('gate activations rnnkit does not have, and a bad linear_before_reset', () => {
    const acts = (names: string[]) => edit((m) => {
      gruNode(m).attribute!.push(onnx.AttributeProto.create({ name: 'activations', type: 8, strings: names.map((s) => new TextEncoder().encode(s)) }));
    });
    expect(() => loadOnnx(acts(['Relu', 'Tanh']))).toThrow(/GRU 'GRU_\d+': activation Relu is not supported for the gates \(expected Sigmoid or HardSigmoid\)/);
    expect(() => loadOnnx(acts(['Sigmoid', 'Relu']))).toThrow(/activation Relu is not supported \(expected Tanh for the cell input and output\)/);
    const lbr = edit((m) => { gruNode(m).attribute!.find((a) => a.name === 'linear_before_reset')!.i = 2; });
    expect(() => loadOnnx(lbr)).toThrow(/linear_before_reset must be 0 or 1, received 2/);
  });
  it('weights of the wrong shape', () => {
    const bytes = edit((m) => { m.graph!.initializer!.find((t) => t.name === 'gru.R_l0')!.dims = [1, 12, 2]; });
    expect(() => loadOnnx(bytes)).toThrow(/initializer 'gru.R_l0': 192 bytes of data, expected 96/);
  });
  it('a weight that is not an initializer', () => {
    const bytes = edit((m) => { m.graph!.initializer = m.graph!.initializer!.filter((t) => t.name !== 'gru.W_l0'); });
    expect(() => loadOnnx(bytes)).toThrow(/input W \('gru.W_l0'\) must be a float32 initializer/);
  });
});

describe.skipIf(!hasTorch)(`PyTorch <-> ONNX <-> rnnkit${hasTorch ? '' : ' (skipped: /usr/bin/python3 with torch is missing)'}`, () => {
  it('torch.onnx.export graphs load into rnnkit and give PyTorch\'s outputs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rnnkit-onnx-'));
    const script = `
import torch, json, sys
torch.manual_seed(0)
out = sys.argv[1]
class LM(torch.nn.Module):
    def __init__(s, cell, **kw):
        super().__init__()
        s.embedding = torch.nn.Embedding(12, 5)
        setattr(s, cell, getattr(torch.nn, cell.upper())(5, 6, **kw))
        s.cell = cell
        d = 2 if kw.get('bidirectional') else 1
        s.fc = torch.nn.Linear(6 * d, 12)
    def forward(s, x):
        o, h = getattr(s, s.cell)(s.embedding(x))
        return s.fc(o), (h[0] if isinstance(h, tuple) else h)
models = {
  'lstm': torch.nn.LSTM(4, 7, num_layers=2, bidirectional=True),
  'gru': torch.nn.GRU(4, 5, num_layers=3),
  'rnn_relu': torch.nn.RNN(4, 6, nonlinearity='relu', bidirectional=True),
  'lm_gru': LM('gru', num_layers=2, bidirectional=True),
  'lm_lstm': LM('lstm'),
}
res = {}
for name, m in models.items():
    m.eval()
    x = torch.randint(0, 12, (5, 3)) if name.startswith('lm') else torch.randn(5, 3, 4)
    with torch.no_grad():
        y = m(x)
    outs = ['output', 'h_n', 'c_n'] if name == 'lstm' else ['output', 'h_n']
    torch.onnx.export(m, (x,), f'{out}/{name}.onnx', input_names=['x'], output_names=outs, opset_version=14)
    flat = [y[0], y[1][0], y[1][1]] if name == 'lstm' else [y[0], y[1]]
    res[name] = {'x': x.flatten().tolist(), 'xshape': list(x.shape), 'outs': [t.flatten().tolist() for t in flat]}
json.dump(res, open(f'{out}/expected.json', 'w'))
`;
    writeFileSync(join(dir, 'export.py'), script);
    execFileSync(PYTHON, [join(dir, 'export.py'), dir], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } });
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    for (const [name, e] of Object.entries(expected) as Array<[string, { x: number[]; xshape: number[]; outs: number[][] }]>) {
      const m: RecurrentModel = loadOnnx(readFileSync(join(dir, `${name}.onnx`)));
      const got = noGrad(() => m.forward(new Tensor(Float32Array.from(e.x), e.xshape)));
      expectCloseToLargest(got.output.data, e.outs[0], `${name} output`);
      expectCloseToLargest(got.hN.data, e.outs[1], `${name} h_n`);
      if (e.outs[2]) expectCloseToLargest(got.cN!.data, e.outs[2], `${name} c_n`);
    }
  }, 120_000);
});
