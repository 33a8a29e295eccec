// `rnnkit convert` and `rnnkit run`: run directories, PyTorch state_dicts and ONNX files in and out;
// onnxruntime and PyTorch give what rnnkit gives on the converted files.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { expectCloseToLargest } from './helpers.js';
import { main } from '../src/cli/index.js';
import {
  GRU, LSTM, RNN, Rng, Tensor, cellMetadata, cellOptionsFromMetadata, moduleFromSafetensors, noGrad, readSafetensors, saveSafetensorsFile, toOnnx,
  torchStateDict,
} from '../src/index.js';

const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && (() => {
  try { execFileSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }); return true; } catch { return false; }
})();
const tmp = (): string => mkdtempSync(join(tmpdir(), 'rnnkit-convert-'));
const TEXT = 'It was the best of times, it was the worst of times, it was the age of wisdom. '.repeat(6);

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => { out += s; }, err: (s) => { err += s; }, progressStream: { write: (s: string) => { err += s; }, isTTY: false } });
  return { code, out, err };
}

const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flatMap(flat) : [v as number]);
async function trainedRun(cell: string): Promise<string> {
  const dir = tmp();
  writeFileSync(join(dir, 'book.txt'), TEXT);
  const out = join(dir, 'run');
  const r = await run(['train', '--data', join(dir, 'book.txt'), '--cell', cell, '--layers', '2', '--hidden', '12', '--embed', '6', '--seq', '8',
    '--batch', '2', '--steps', '3', '--val-every', '3', '--samples', '0', '--no-progress', '--out', out]);
  expect(r.code, r.err).toBe(0);
  return out;
}

const IDS = [[1, 2, 3], [4, 0, 2], [3, 3, 1], [0, 5, 6]]; // [T=4][B=3]

describe('rnnkit convert / run', () => {
  it('a trained run directory -> ONNX: onnxruntime gives what `rnnkit run` gives', async () => {
    const runDir = await trainedRun('lstm');
    const dir = tmp();
    const c = await run(['convert', runDir, join(dir, 'lm.onnx')]);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/Embedding \d+ x 6, LSTM 6 -> 12, 2 layers, Linear 12 -> \d+/);
    writeFileSync(join(dir, 'in.json'), JSON.stringify({ x: IDS }));
    const r = await run(['run', runDir, '--input', join(dir, 'in.json'), '--output', join(dir, 'out.json')]);
    expect(r.code, r.err).toBe(0);
    const want = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8'));
    const session = await ort.InferenceSession.create(join(dir, 'lm.onnx'));
    const got = await session.run({ x: new ort.Tensor('int64', BigInt64Array.from(IDS.flat().map(BigInt)), [4, 3]) });
    expectCloseToLargest(got.output.data as Float32Array, flat(want.output), 'logits');
    expectCloseToLargest(got.h_n.data as Float32Array, flat(want.h_n), 'h_n');
    expectCloseToLargest(got.c_n.data as Float32Array, flat(want.c_n), 'c_n');
    // ONNX -> state_dict -> run: the same numbers again
    expect((await run(['convert', join(dir, 'lm.onnx'), join(dir, 'lm.safetensors')])).code).toBe(0);
    const again = await run(['run', join(dir, 'lm.safetensors'), '--input', join(dir, 'in.json')]);
    expect(again.code, again.err).toBe(0);
    expectCloseToLargest(flat(JSON.parse(again.out).output), flat(want.output), 'reloaded logits');
  }, 60_000);

  it('a PyTorch state_dict of an RNN with --nonlinearity relu -> ONNX, with initial state and lengths', async () => {
    const dir = tmp();
    const rnn = new RNN({ inputSize: 3, hiddenSize: 5, numLayers: 2, bidirectional: true, nonlinearity: 'relu', rng: new Rng(2) });
    await saveSafetensorsFile(join(dir, 'rnn.safetensors'), rnn);
    const c = await run(['convert', join(dir, 'rnn.safetensors'), join(dir, 'rnn.onnx'), '--nonlinearity', 'relu', '--initial-state', '--lengths']);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/RNN \(relu\) 3 -> 5, 2 layers, bidirectional/);
    const rng = new Rng(5);
    const x = Array.from({ length: 4 }, () => Array.from({ length: 2 }, () => Array.from({ length: 3 }, () => rng.uniform(-1, 1))));
    const h0 = Array.from({ length: 4 }, () => Array.from({ length: 2 }, () => Array.from({ length: 5 }, () => rng.uniform(-1, 1))));
    writeFileSync(join(dir, 'in.json'), JSON.stringify({ x, h0, lengths: [4, 2] }));
    const r = await run(['run', join(dir, 'rnn.safetensors'), '--nonlinearity', 'relu', '--input', join(dir, 'in.json')]);
    expect(r.code, r.err).toBe(0);
    const want = JSON.parse(r.out);
    const session = await ort.InferenceSession.create(join(dir, 'rnn.onnx'));
    const got = await session.run({
      x: new ort.Tensor('float32', Float32Array.from(flat(x)), [4, 2, 3]),
      h0: new ort.Tensor('float32', Float32Array.from(flat(h0)), [4, 2, 5]),
      lengths: new ort.Tensor('int32', Int32Array.from([4, 2]), [2]),
    });
    expectCloseToLargest(got.output.data as Float32Array, flat(want.output), 'output');
    expectCloseToLargest(got.h_n.data as Float32Array, flat(want.h_n), 'h_n');
  });

  it('bad files and arguments: one clear line each, exit code 2', async () => {
    const dir = tmp();
    const gru = new GRU({ inputSize: 2, hiddenSize: 3 });
    writeFileSync(join(dir, 'gru.onnx'), toOnnx(gru).subarray(0, 40));
    writeFileSync(join(dir, 'odd.safetensors'), new Uint8Array([1, 2, 3]));
    await saveSafetensorsFile(join(dir, 'named.safetensors'), new Map([['encoder.weight', { shape: [2, 2], data: new Float32Array(4) }]]));
    const lstm = new LSTM({ inputSize: 2, hiddenSize: 4, projSize: 2 });
    await saveSafetensorsFile(join(dir, 'proj.safetensors'), lstm);
    writeFileSync(join(dir, 'in.json'), JSON.stringify({ x: [[[1, 2]], [[3]]] }));
    const cases: Array<[string[], RegExp]> = [
      [['convert', join(dir, 'missing.onnx'), join(dir, 'o.safetensors')], /missing\.onnx: no such file or directory/],
      [['convert', join(dir, 'gru.onnx'), join(dir, 'o.txt')], /o\.txt: unknown output format '\.txt'/],
      [['convert', join(dir, 'gru.onnx'), join(dir, 'o.safetensors')], /gru\.onnx: not a valid ONNX model/],
      [['convert', join(dir, 'odd.safetensors'), join(dir, 'o.onnx')], /odd\.safetensors: /],
      [['convert', join(dir, 'named.safetensors'), join(dir, 'o.onnx')], /unexpected tensor names encoder\.weight/],
      [['convert', join(dir, 'proj.safetensors'), join(dir, 'o.onnx')], /LSTM projSize \(2\) cannot be exported/],
      [['convert', join(dir, 'proj.safetensors'), join(dir, 'o.onnx'), '--nonlinearity', 'gelu'], /--nonlinearity.*gelu/],
      [['run', join(dir, 'proj.safetensors'), '--input', join(dir, 'in.json')], /"x": not rectangular: \[1\]\[0\] should be an array of 2/],
      [['run', join(dir, 'proj.safetensors'), '--input', join(dir, 'nope.json')], /nope\.json: no such file/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe.skipIf(!hasTorch)(`rnnkit -> PyTorch${hasTorch ? '' : ' (skipped: /usr/bin/python3 with torch is missing)'}`, () => {
  it('a model trained with rnnkit train loads into PyTorch from its safetensors state_dict and gives rnnkit\'s outputs', async () => {
    for (const cell of ['gru', 'lstm']) {
      const runDir = await trainedRun(cell);
      const dir = tmp();
      expect((await run(['convert', runDir, join(dir, 'lm.safetensors')])).code).toBe(0);
      writeFileSync(join(dir, 'in.json'), JSON.stringify({ x: IDS }));
      const r = await run(['run', runDir, '--input', join(dir, 'in.json')]);
      expect(r.code, r.err).toBe(0);
      const want = JSON.parse(r.out);
      // the safetensors file read with json + struct (the format is a JSON header and raw little-endian floats)
      const script = `
import json, struct, sys, torch
path, cell = sys.argv[1], sys.argv[2]
raw = open(path, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
state = {}
for name, info in header.items():
    if name == '__metadata__': continue
    assert info['dtype'] == 'F32'
    a, b = info['data_offsets']
    state[name] = torch.tensor(struct.unpack('<%df' % ((b - a) // 4), raw[8 + n + a:8 + n + b])).reshape(info['shape'])
V, E = state['embedding.weight'].shape
H = state['fc.weight'].shape[1]
L = sum(1 for k in state if k.startswith(cell + '.weight_ih_l'))
class LM(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.embedding = torch.nn.Embedding(V, E)
        setattr(s, cell, getattr(torch.nn, cell.upper())(E, H, num_layers=L))
        s.fc = torch.nn.Linear(H, V)
m = LM().eval()
m.load_state_dict(state)
x = torch.tensor(json.loads(sys.argv[3]))
with torch.no_grad():
    o, h = getattr(m, cell)(m.embedding(x))
    out = {'output': m.fc(o).tolist(), 'h_n': (h[0] if cell == 'lstm' else h).tolist()}
print(json.dumps(out))
`;
      writeFileSync(join(dir, 'load.py'), script);
      const torchOut = JSON.parse(execFileSync(PYTHON, [join(dir, 'load.py'), join(dir, 'lm.safetensors'), cell, JSON.stringify(IDS)],
        { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } }));
      expectCloseToLargest(flat(torchOut.output), flat(want.output), `${cell} logits`);
      expectCloseToLargest(flat(torchOut.h_n), flat(want.h_n), `${cell} h_n`);
    }
  }, 120_000);
});

describe('state_dicts: sizes are checked before anything is allocated', () => {
  it('a layer number far beyond the weights present is named', async () => {
    const { moduleFromStateDict } = await import('../src/index.js');
    const t = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    const state = new Map([['weight_ih_l0', t([4, 2])], ['weight_hh_l0', t([4, 4])], ['weight_ih_l999999', t([4, 4])]]);
    expect(() => moduleFromStateDict(state)).toThrow('state_dict: weight_ih_l1 is missing (the weights name layers up to 999999)');
  });
});

describe('the cell options PyTorch lacks (reset-before GRU, hard-sigmoid gates) in safetensors', () => {
  const models = () => [
    new GRU({ inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, resetAfter: false, rng: new Rng(1) }),
    new LSTM({ inputSize: 3, hiddenSize: 4, recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 1 / 6, rng: new Rng(2) }),
    new GRU({ inputSize: 3, hiddenSize: 4, resetAfter: false, recurrentActivation: 'hardSigmoid', rng: new Rng(3) }),
  ].map((m) => m.eval());
  const x = new Tensor(Float32Array.from({ length: 5 * 2 * 3 }, (_, i) => Math.sin(i) * 2), [5, 2, 3]);

  it('saveSafetensorsFile records them in the metadata; moduleFromSafetensors reads the same model back', async () => {
    const dir = tmp();
    for (const m of models()) {
      const path = join(dir, `${m.cell}.safetensors`);
      await saveSafetensorsFile(path, m);
      const bytes = new Uint8Array(readFileSync(path));
      expect(readSafetensors(bytes).metadata).toEqual(cellMetadata(m));
      const back = moduleFromSafetensors(bytes) as typeof m;
      expect(back.cell).toBe(m.cell);
      expect(back.recurrentActivation).toEqual(m.recurrentActivation);
      const want = noGrad(() => m.forward(x));
      const got = noGrad(() => back.forward(x));
      expect(Array.from(got.output.data)).toEqual(Array.from(want.output.data));
    }
  });

  it('rnnkit convert keeps them (safetensors -> safetensors -> ONNX) and describes them', async () => {
    const dir = tmp();
    const m = models()[2];
    await saveSafetensorsFile(join(dir, 'in.safetensors'), m);
    const c = await run(['convert', join(dir, 'in.safetensors'), join(dir, 'out.safetensors')]);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toContain('GRU (reset-before), hard-sigmoid gates (alpha 0.2, beta 0.5)');
    const o = await run(['convert', join(dir, 'out.safetensors'), join(dir, 'out.onnx')]);
    expect(o.code, o.err).toBe(0);
    const session = await ort.InferenceSession.create(readFileSync(join(dir, 'out.onnx')));
    const got = await session.run({ x: new ort.Tensor('float32', x.data, [...x.shape]) });
    expectCloseToLargest(got.output.data as Float32Array, noGrad(() => m.forward(x)).output.data, 'onnxruntime output');
  });

  it('a PyTorch state_dict is refused with one clear error; PyTorch\'s own cells pass', () => {
    const [rb, hard] = models();
    expect(() => torchStateDict(rb)).toThrow('PyTorch export: torch.nn has no layer with a reset-before GRU (resetAfter: false); PyTorch would run these weights as a different cell (save as rnnkit safetensors, ONNX or TF.js instead)');
    expect(() => torchStateDict(hard)).toThrow(/torch\.nn has no layer with hard-sigmoid gates \(recurrentActivation 'hardSigmoid', alpha 0\.1666\d+, beta 0\.5\)/);
    expect([...torchStateDict(new GRU({ inputSize: 2, hiddenSize: 3 })).keys()]).toEqual(['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']);
  });

  it('bad metadata values are refused naming the key', () => {
    expect(() => cellOptionsFromMetadata({ resetAfter: 'yes' })).toThrow("metadata resetAfter must be 'true' or 'false', received 'yes'");
    expect(() => cellOptionsFromMetadata({ recurrentActivation: 'relu' })).toThrow("metadata recurrentActivation must be 'sigmoid' or 'hardSigmoid', received 'relu'");
    expect(() => cellOptionsFromMetadata({ recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 'x' })).toThrow("metadata hardSigmoidAlpha must be a finite number, received 'x'");
    expect(cellOptionsFromMetadata({ format: 'pt' })).toEqual({});
  });
});
