// Files from outside that once were read wrongly or failed unclearly (each case was found by the
// fuzz targets of test/fuzz-targets.mjs): now refused with one error naming the file and field,
// before anything sized by the file is allocated.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng, SafetensorsError, readSafetensors, writeSafetensors } from '../src/index.js';
import { LMTrainer, TbpttBatcher, Vocabulary, loadLanguageModel, prepareData, resolveCheckpointDir } from '../src/lm/index.js';
import { runGoldenCase } from '../src/io/golden.js';
import { GOLDEN_DIR } from './helpers.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'rnnkit-badfiles-'));
const TEXT = 'It was the best of times, it was the worst of times, it was the age of wisdom. '.repeat(6);
const TINY = { layers: 1, hidden: 8, embed: 4, seq: 8, batch: 2, valEvery: 0, checkpointEvery: 0 };

describe('safetensors', () => {
  it('a tensor name given twice in the header is refused (JSON.parse would keep the last silently)', () => {
    const good = writeSafetensors({ a: { shape: [1], data: new Float32Array([1]) } });
    const header = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}';
    const bytes = new Uint8Array(8 + header.length + 4);
    new DataView(bytes.buffer).setUint32(0, header.length, true);
    bytes.set(new TextEncoder().encode(header), 8);
    expect(() => readSafetensors(bytes)).toThrow(SafetensorsError);
    expect(() => readSafetensors(bytes)).toThrow('tensor "a" appears twice in the header');
    // the same names nested deeper or as metadata values are not top-level repeats
    const meta = writeSafetensors({ a: { shape: [1], data: new Float32Array([1]) } }, { a: 'a', '"a"': 'x' });
    expect(readSafetensors(meta).tensors.get('a')!.data[0]).toBe(1);
    expect(readSafetensors(good).tensors.size).toBe(1);
  });
});

describe('error messages quoting the bytes', () => {
  it('a header that is not JSON and holds line breaks or NUL gives a one-line message', () => {
    const header = '{"a":\n\u0000}';
    const bytes = new Uint8Array(8 + header.length);
    new DataView(bytes.buffer).setUint32(0, header.length, true);
    bytes.set(new TextEncoder().encode(header), 8);
    let message = '';
    try { readSafetensors(bytes); } catch (e) { message = (e as Error).message; }
    expect(message).toMatch(/^header is not valid JSON: /);
    expect(message).toContain('\\u000a');
    expect(message).not.toMatch(/[\n\r\u0000]/);
  });
});

describe('vocabularies', () => {
  it('tokens that are not strings are refused (null used to throw a TypeError, numbers were accepted)', () => {
    for (const [level, bad] of [['char', null], ['word', 5], ['word', []], ['char', { a: 1 }]] as const) {
      const json = { format: 'rnnkit-vocab', version: 1, level, tokens: ['<pad>', '<unk>', '<eos>', bad, 'b'] };
      expect(() => Vocabulary.fromJSON(json)).toThrow(/^Vocabulary: token 3 must be a string, received /);
    }
  });
});

describe('random and batcher states', () => {
  it('an all-zero Rng state (a fixed point: normal() never returned) and non-integers are refused', () => {
    expect(() => new Rng(1).setState([0, 0, 0, 0])).toThrow('Rng state must not be all zeros');
    expect(() => new Rng(1).setState([1.5, 2, 3, 4])).toThrow(/4 unsigned 32-bit integers/);
    expect(() => new Rng(1).setState([-1, 2, 3, 4])).toThrow(/4 unsigned 32-bit integers/);
  });

  it('a batcher state with positions out of range or an order that is not a permutation is refused', () => {
    const ids = Int32Array.from({ length: 200 }, (_, i) => i % 7);
    const b = new TbpttBatcher(ids, 5, 3, 1);
    const good = b.getState();
    const set = (patch: object) => () => new TbpttBatcher(ids, 5, 3, 1).setState({ ...good, ...patch });
    expect(set({})).not.toThrow();
    expect(set({ index: 1e9 })).toThrow(/index must be an integer in \[0, \d+\], received 1000000000/);
    expect(set({ offset: -1 })).toThrow(/offset must be an integer in \[0, 4\], received -1/);
    expect(set({ offset: 5 })).toThrow(/offset must be an integer in \[0, 4\]/);
    expect(set({ epoch: 'x' })).toThrow(/epoch must be an integer/);
    expect(set({ order: [0, 0, 1] })).toThrow(/order must be a permutation of 0..2/);
  });
});

describe('checkpoint files', () => {
  let run = '';
  let ckpt = '';
  const files: Record<string, Buffer> = {};
  beforeAll(async () => {
    run = join(tmp(), 'run');
    const tr = new LMTrainer(TINY, prepareData(TEXT, { level: 'char', valFraction: 0.05 }));
    await tr.run({ steps: 3, reportSampleLength: 0 });
    tr.save(run);
    ckpt = resolveCheckpointDir(run);
    for (const f of ['config.json', 'trainer.json', 'weights.safetensors', 'optimizer.safetensors', 'state.safetensors']) files[f] = readFileSync(join(ckpt, f));
  });
  /** Replaces one file of the checkpoint, runs fn, puts the file back. */
  function withFile(file: string, content: string | Uint8Array, fn: () => void): void {
    writeFileSync(join(ckpt, file), content);
    try { fn(); } finally { writeFileSync(join(ckpt, file), files[file]); }
  }
  const json = (f: string) => JSON.parse(files[f].toString('utf8'));

  it('the untouched checkpoint resumes and loads', () => {
    expect(LMTrainer.resume(run, TEXT).step).toBe(3);
    expect(loadLanguageModel(run).step).toBe(3);
  });

  it('config.json claiming a huge model is refused by the weights check before the model is allocated', () => {
    withFile('config.json', JSON.stringify({ ...json('config.json'), hidden: 1 << 20 }), () => {
      const want = /weights\.safetensors: lstm\.weight_hh_l0 has shape \[32,8\], but config\.json and vocab\.json give \[4194304,1048576\]/;
      expect(() => LMTrainer.resume(run, TEXT)).toThrow(want);
      expect(() => loadLanguageModel(run)).toThrow(want);
    });
    withFile('config.json', JSON.stringify({ ...json('config.json'), layers: 3 }), () => {
      expect(() => loadLanguageModel(run)).toThrow(/weights\.safetensors: has no lstm\.weight_hh_l2, which config\.json \(3-layer lstm\) needs/);
    });
  });

  it('vocab.json that is not JSON: one line naming the file once (the parser quotes the line break)', () => {
    writeFileSync(join(ckpt, 'vocab.json'), '\u0000\n');
    try {
      let message = '';
      try { loadLanguageModel(run); } catch (e) { message = (e as Error).message; }
      expect(message.split('vocab.json')).toHaveLength(2);
      expect(message).toMatch(/vocab\.json: .*JSON/);
      expect(message).not.toMatch(/[\n\u0000]/);
    } finally {
      writeFileSync(join(ckpt, 'vocab.json'), JSON.stringify(new LMTrainer(TINY, prepareData(TEXT, { level: 'char', valFraction: 0.05 })).vocab.toJSON()) + '\n');
    }
    expect(loadLanguageModel(run).step).toBe(3);
  });

  it('config.json that is not an object or has a bad field names the file', () => {
    withFile('config.json', '[]', () => expect(() => loadLanguageModel(run)).toThrow(/config\.json: expected a JSON object, received \[\]/));
    withFile('config.json', JSON.stringify({ ...json('config.json'), level: '' }), () => expect(() => LMTrainer.resume(run, TEXT)).toThrow(/config\.json: level must be char or word/));
  });

  it('trainer.json with a missing or wrong field names the file and the field (was a TypeError at the next step)', () => {
    const st = json('trainer.json');
    const cases: Array<[object, RegExp]> = [
      [{ batcher: undefined }, /trainer\.json: batcher must be an object/],
      [{ history: { train: [null], val: [] } }, /trainer\.json: history\.train\[0\] must hold numbers/],
      [{ step: -1 }, /trainer\.json: step must be a non-negative integer/],
      [{ modelRng: [0, 0, 0, 0] }, /trainer\.json: Rng state must not be all zeros/],
      [{ batcher: { ...st.batcher, offset: 99 } }, /trainer\.json: TbpttBatcher\.setState: offset must be an integer/],
    ];
    for (const [patch, want] of cases) {
      withFile('trainer.json', JSON.stringify({ ...st, ...patch }), () => expect(() => LMTrainer.resume(run, TEXT)).toThrow(want));
    }
  });

  it('optimizer and carried-state files with bad metadata, shapes or values name the file', () => {
    const opt = readSafetensors(new Uint8Array(files['optimizer.safetensors']));
    withFile('optimizer.safetensors', writeSafetensors(opt.tensors, { ...opt.metadata, hyper: 'null' }),
      () => expect(() => LMTrainer.resume(run, TEXT)).toThrow(/optimizer\.safetensors: metadata hyper must be a JSON object, received null/));
    withFile('optimizer.safetensors', writeSafetensors(opt.tensors, { ...opt.metadata, hyper: '{' }),
      () => expect(() => LMTrainer.resume(run, TEXT)).toThrow(/optimizer\.safetensors: .*JSON/));
    withFile('optimizer.safetensors', writeSafetensors(opt.tensors, { ...opt.metadata, step: 'NaN' }),
      () => expect(() => LMTrainer.resume(run, TEXT)).toThrow(/optimizer\.safetensors: metadata step must be a non-negative integer/));
    const st = readSafetensors(new Uint8Array(files['state.safetensors']));
    const h = st.tensors.get('h')!;
    withFile('state.safetensors', writeSafetensors({ h: { shape: [1, 1, 8], data: h.data.subarray(0, 8) }, c: st.tensors.get('c')! }, st.metadata),
      () => expect(() => LMTrainer.resume(run, TEXT)).toThrow(/state\.safetensors: the carried state "h" has shape \[1,1,8\], expected \[1,2,8\]/));
    const w = readSafetensors(new Uint8Array(files['weights.safetensors']));
    w.tensors.get('fc.bias')!.data[0] = NaN;
    withFile('weights.safetensors', writeSafetensors(w.tensors, w.metadata),
      () => expect(() => loadLanguageModel(run)).toThrow(/weights\.safetensors: weight fc\.bias\[0\] = NaN is not finite/));
  });
});

describe('PyTorch reference case files', () => {
  function runCase(json: unknown, weights = readFileSync(join(GOLDEN_DIR, 'lstm_proj.safetensors'))) {
    const dir = tmp();
    writeFileSync(join(dir, 'case.json'), JSON.stringify(json));
    writeFileSync(join(dir, 'case.safetensors'), weights);
    return runGoldenCase(dir, 'case', 'reference');
  }
  const good = JSON.parse(readFileSync(join(GOLDEN_DIR, 'lstm_proj.json'), 'utf8'));

  it('the untouched case passes in a copied folder', () => {
    const dir = tmp();
    copyFileSync(join(GOLDEN_DIR, 'lstm_proj.json'), join(dir, 'case.json'));
    copyFileSync(join(GOLDEN_DIR, 'lstm_proj.safetensors'), join(dir, 'case.safetensors'));
    expect(runGoldenCase(dir, 'case', 'reference')).toMatchObject({ pass: true, detail: '' });
  });

  it('a missing or wrong field fails the case with a detail naming it (was "Cannot read properties of undefined")', () => {
    const cases: Array<[object, string]> = [
      [{ ...good, config: null }, 'case.json: config must be an object, received null'],
      [{ ...good, inputs: { ...good.inputs, x: { shape: [2], data: [1] } } }, 'case.json: inputs.x.data must be 2 numbers (shape [2]), received "1 numbers"'],
      [{ ...good, expected: { ...good.expected, grad: [] } }, 'case.json: expected.grad must be an object, received []'],
      [{ ...good, module: 'Transformer' }, 'case.json: module must be RNN, LSTM, GRU or CharLM, received "Transformer"'],
      [{ ...good, config: { ...good.config, hidden_size: 1 << 20 } }, 'case.safetensors: weight_ih_l0 has shape [24,4], but the case\'s config gives [4194304,4]'],
    ];
    for (const [json, detail] of cases) expect(runCase(json)).toMatchObject({ pass: false, detail });
  });
});
