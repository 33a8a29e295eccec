// Fuzz targets: every parser of bytes that come from outside (safetensors files, the files of an
// `rnnkit train` run directory that --resume / sample / eval read, vocabularies, PyTorch reference
// cases). Each target is a fast-check arbitrary of inputs (mutations of valid files: bit flips,
// truncation, inserted bytes, header lies, structural JSON changes; and inputs made from scratch)
// and a check: for any input the parser returns a result or throws ONE clear error (a known class
// or a message naming the file / field), never another exception (TypeError, an allocation
// failure), a crash or a hang. Used by test/fuzz.test.ts (a short seeded run) and
// scripts/fuzz.mjs (`npm run fuzz -- --minutes N`: random seeds until the time is up).
// Imports the compiled package (dist/, built by `npm run build:ts`).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { SafetensorsError, readSafetensors, writeSafetensors } from '../dist/index.js';
import { LMTrainer, Vocabulary, loadLanguageModel, resolveCheckpointDir } from '../dist/lm/index.js';
import { runGoldenCase } from '../dist/io/golden.js';

const ROOT = new URL('..', import.meta.url).pathname;

/** An input was handled badly: the message says how. */
export class FuzzFailure extends Error {
  constructor(message) {
    super(message);
    this.name = 'FuzzFailure';
  }
}

// Exceptions that are never a clear answer to bad input: programming errors reached by the data,
// and allocations sized by the data.
const UNCLEAR = /Cannot read propert|Cannot set propert|is not a function|is not iterable|is not defined|Invalid typed array length|Invalid array length|Array buffer allocation failed|Maximum call stack|out of memory|undefined \(reading/i;
const HANG_MS = 5000;

/** Runs fn on one input: a result, or an error that passes isClear; anything else is a FuzzFailure. */
function expectClearOutcome(what, fn, isClear) {
  const t0 = performance.now();
  try {
    fn();
  } catch (e) {
    if (e instanceof FuzzFailure) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    if (!(e instanceof Error)) throw new FuzzFailure(`${what}: threw a non-Error ${String(e)}`);
    if (e instanceof TypeError || e instanceof ReferenceError || UNCLEAR.test(msg)) {
      throw new FuzzFailure(`${what}: unclear ${e.name}: ${msg}\n${e.stack}`);
    }
    if (msg.includes('\n') || msg.trim() === '') throw new FuzzFailure(`${what}: error message is not one line: ${JSON.stringify(msg)}`);
    if (!isClear(e, msg)) throw new FuzzFailure(`${what}: error does not name the problem: ${e.name}: ${msg}`);
  } finally {
    const ms = performance.now() - t0;
    if (ms > HANG_MS) throw new FuzzFailure(`${what}: took ${ms.toFixed(0)} ms on one input (a hang)`);
  }
}

// ---------------------------------------------------------------------------------------------
// Byte mutations of valid files

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip'), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate'), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert'), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('set'), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete'), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('u64'), at: fc.nat(), value: fc.constantFrom(0n, 1n, 7n, 255n, 2n ** 31n, 2n ** 32n, 2n ** 40n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n) }),
);

function applyMutations(bytes, muts) {
  let b = Uint8Array.from(bytes);
  for (const m of muts) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    if (m.kind === 'flip' && at < b.length) b[at] ^= 1 << m.bit;
    else if (m.kind === 'set' && at < b.length) b[at] = m.value;
    else if (m.kind === 'truncate') b = b.subarray(0, at);
    else if (m.kind === 'insert') { const n = new Uint8Array(b.length + m.bytes.length); n.set(b.subarray(0, at)); n.set(m.bytes, at); n.set(b.subarray(at), at + m.bytes.length); b = n; }
    else if (m.kind === 'delete') { const head = b.subarray(0, at); const tail = b.subarray(Math.min(b.length, at + m.count)); const n = new Uint8Array(head.length + tail.length); n.set(head); n.set(tail, head.length); b = n; }
    else if (m.kind === 'u64' && b.length >= 8) { const pos = m.at % 2 === 0 ? 0 : Math.min(at, b.length - 8); new DataView(b.buffer, b.byteOffset).setBigUint64(pos, m.value, true); }
  }
  return b;
}
const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 });

// Values that break assumptions when put anywhere in a JSON document
const nastyValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, -0.5, 1.5, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, 1e308, -1e308, '', 'NaN', 'Infinity', 'x', '__proto__', [], {}, [[]], [null], [-1], [2 ** 40], [0, 2 ** 40], [1.5, 2]),
  fc.integer(), fc.double(), fc.string({ maxLength: 8 }),
  fc.array(fc.integer({ min: -3, max: 70 }), { maxLength: 4 }),
);

/** Sets (or deletes) the value at a random path of a JSON document (a deep copy). */
function mutateJson(doc, choices) {
  const copy = structuredClone(doc);
  for (const c of choices) {
    let parent = null;
    let key = null;
    let node = copy;
    for (const step of c.path) {
      if (node === null || typeof node !== 'object') break;
      const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
      if (keys.length === 0) break;
      parent = node;
      key = keys[step % keys.length];
      node = node[key];
      if (c.stop) break;
    }
    if (parent === null) continue;
    if (c.remove) { if (Array.isArray(parent)) parent.splice(key, 1); else delete parent[key]; }
    else parent[key] = c.value;
  }
  return copy;
}
const jsonMutations = fc.array(fc.record({ path: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), stop: fc.boolean(), remove: fc.boolean(), value: nastyValue }), { minLength: 1, maxLength: 3 });

const enc = new TextEncoder();

/** A JSON file (bytes), mutated structurally or as bytes, or replaced by arbitrary JSON / bytes. */
function jsonFileInput(doc) {
  const text = JSON.stringify(doc);
  return fc.oneof(
    { weight: 4, arbitrary: jsonMutations.map((m) => enc.encode(JSON.stringify(mutateJson(doc, m)))) },
    { weight: 3, arbitrary: mutations.map((m) => applyMutations(enc.encode(text), m)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => enc.encode(JSON.stringify(v) ?? '')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );
}

// ---------------------------------------------------------------------------------------------
// safetensors

const smallTensor = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }).chain((shape) => {
  const n = shape.reduce((p, d) => p * d, 1);
  return fc.float32Array({ minLength: n, maxLength: n }).map((data) => ({ shape, data }));
});
const tensorName = fc.oneof(fc.string({ minLength: 1, maxLength: 6 }), fc.constantFrom('a', 'b', '0', '10', 'weight', '__proto__', 'constructor')).filter((s) => s !== '__metadata__');
const tensorMap = fc.dictionary(tensorName, smallTensor, { maxKeys: 4 });
const metadataArb = fc.option(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }), { nil: undefined });

/** A header entry made of plausible and implausible parts. */
const headerEntry = fc.record({
  dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I32', 'U8', 'BOOL', 'F8_E4M3', 'f32', 'XX', ''), nastyValue),
  shape: fc.oneof(fc.array(fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constantFrom(-1, 1.5, 2 ** 31, 2 ** 40, 2 ** 53, 1e300, 'NaN', null)), { maxLength: 4 }), nastyValue),
  data_offsets: fc.oneof(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 })), fc.tuple(fc.constantFrom(0, -1, 2 ** 40, 2 ** 53, 1e300, 0.5), fc.constantFrom(0, 4, 2 ** 40, -4, 1.5)), nastyValue),
}, { requiredKeys: [] });

/** A file whose header is written by hand (duplicate names possible) and whose length field may lie. */
const craftedFile = fc.record({
  entries: fc.array(fc.tuple(fc.constantFrom('a', 'b', 'a', '__metadata__', 'w'), headerEntry), { maxLength: 4 }),
  dataLength: fc.integer({ min: 0, max: 300 }),
  lengthLie: fc.option(fc.constantFrom(0n, 1n, 2n ** 32n - 1n, 2n ** 40n, 2n ** 63n), { nil: null }),
}).map(({ entries, dataLength, lengthLie }) => {
  const header = enc.encode(`{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  const out = new Uint8Array(8 + header.length + dataLength);
  new DataView(out.buffer).setBigUint64(0, lengthLie ?? BigInt(header.length), true);
  out.set(header, 8);
  return out;
});

const safetensorsInput = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(tensorMap, metadataArb, mutations).map(([t, m, muts]) => applyMutations(writeSafetensors(t, m), muts)) },
  { weight: 3, arbitrary: craftedFile },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
);

function checkSafetensors(bytes) {
  expectClearOutcome('readSafetensors', () => {
    const { tensors } = readSafetensors(bytes);
    let decoded = 0;
    for (const [name, t] of tensors) {
      const n = t.shape.reduce((p, d) => p * d, 1);
      if (t.data.length !== n) throw new FuzzFailure(`readSafetensors: "${name}" has ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
      decoded += t.data.byteLength;
    }
    // F16/BF16 widen to 4 bytes: a result is at most twice the file (an allocation bounded by the input)
    if (decoded > 2 * bytes.length) throw new FuzzFailure(`readSafetensors: decoded ${decoded} bytes from a ${bytes.length}-byte file`);
  }, (e) => e instanceof SafetensorsError);
}

// ---------------------------------------------------------------------------------------------
// vocabularies

const VALID_VOCAB = { format: 'rnnkit-vocab', version: 1, level: 'char', tokens: ['<pad>', '<unk>', '<eos>', ' ', 'a', 'b', 'é', '😀'] };
const vocabInput = fc.oneof(
  jsonFileInput(VALID_VOCAB),
  jsonFileInput({ ...VALID_VOCAB, level: 'word', tokens: ['<pad>', '<unk>', '<eos>', 'the', 'whale', ','] }),
);

function checkVocab(bytes) {
  let json;
  try { json = JSON.parse(new TextDecoder().decode(bytes)); } catch { return; } // not JSON: the caller's JSON error
  expectClearOutcome('Vocabulary.fromJSON', () => {
    const v = Vocabulary.fromJSON(json);
    if (!v.tokens.every((t) => typeof t === 'string')) throw new FuzzFailure(`Vocabulary.fromJSON accepted non-string tokens ${JSON.stringify(v.tokens)}`);
    const ids = v.encode('a whale, the end\n');
    v.decode(ids);
    for (let id = 0; id < v.size; id++) v.piece(id);
  }, (_e, msg) => /vocabulary|Vocabulary/.test(msg));
}

// ---------------------------------------------------------------------------------------------
// checkpoints (the files of a run directory)

export const CKPT_TEXT = 'It was the best of times, it was the worst of times, it was the age of wisdom. '.repeat(6);
const CKPT_CONFIG = { layers: 1, hidden: 8, embed: 4, seq: 8, batch: 2, valEvery: 0, checkpointEvery: 0 };
const CKPT_FILES = ['latest', 'weights.safetensors', 'optimizer.safetensors', 'state.safetensors', 'vocab.json', 'config.json', 'trainer.json'];
const NAMES_A_FILE = /latest|checkpoint pointer|weights\.safetensors|optimizer\.safetensors|state\.safetensors|vocab\.json|config\.json|trainer\.json|ckpt-\d+/;

let ckptFixture = null;
/** A run directory of a tiny model trained 3 steps (made once per process), with the bytes of each file. */
async function checkpointFixture() {
  if (ckptFixture) return ckptFixture;
  const runDir = join(mkdtempSync(join(tmpdir(), 'rnnkit-fuzz-ckpt-')), 'run');
  const trainer = new LMTrainer(CKPT_CONFIG, (await import('../dist/lm/index.js')).prepareData(CKPT_TEXT, { level: 'char', valFraction: 0.05 }));
  await trainer.run({ steps: 3, reportSampleLength: 0 });
  trainer.save(runDir);
  const ckptDir = resolveCheckpointDir(runDir);
  const files = {};
  for (const f of CKPT_FILES) files[f] = readFileSync(f === 'latest' ? join(runDir, f) : join(ckptDir, f));
  ckptFixture = { runDir, ckptDir, files, json: Object.fromEntries(CKPT_FILES.filter((f) => f.endsWith('.json') || f === 'latest').map((f) => [f, JSON.parse(files[f].toString('utf8'))])) };
  return ckptFixture;
}

function checkpointInput(fx) {
  return fc.oneof(...CKPT_FILES.map((file) => fc.tuple(fc.constant(file), file.endsWith('.safetensors')
    ? fc.oneof({ weight: 3, arbitrary: mutations.map((m) => applyMutations(fx.files[file], m)) }, { weight: 1, arbitrary: craftedFile })
    : jsonFileInput(fx.json[file]))));
}

function checkCheckpoint(fx, [file, bytes]) {
  const path = file === 'latest' ? join(fx.runDir, file) : join(fx.ckptDir, file);
  writeFileSync(path, bytes);
  try {
    // what `rnnkit train --resume DIR` reads, then one training step on what was read
    expectClearOutcome(`resume with a changed ${file}`, () => {
      const t = LMTrainer.resume(fx.runDir, CKPT_TEXT);
      t.trainStep();
    }, (e, msg) => NAMES_A_FILE.test(msg) || e.name === 'NonFiniteError'); // weights that overflow: the step names the tensor
    // what `rnnkit sample DIR` / `rnnkit eval DIR` read
    expectClearOutcome(`loadLanguageModel with a changed ${file}`, () => { loadLanguageModel(fx.runDir); }, (_e, msg) => NAMES_A_FILE.test(msg));
  } finally {
    writeFileSync(path, fx.files[file]);
  }
}

// ---------------------------------------------------------------------------------------------
// PyTorch reference cases (rnnkit verify-torch DIR reads NAME.json + NAME.safetensors)

let goldenFixture = null;
function goldenFixtureFor() {
  if (goldenFixture) return goldenFixture;
  const dir = mkdtempSync(join(tmpdir(), 'rnnkit-fuzz-golden-'));
  const src = join(ROOT, 'golden');
  const name = 'lstm_proj';
  goldenFixture = { dir, json: JSON.parse(readFileSync(join(src, `${name}.json`), 'utf8')), weights: readFileSync(join(src, `${name}.safetensors`)) };
  return goldenFixture;
}

function goldenInput(fx) {
  return fc.oneof(
    { weight: 3, arbitrary: jsonMutations.map((m) => ({ json: enc.encode(JSON.stringify(mutateJson(fx.json, m))), weights: fx.weights })) },
    { weight: 1, arbitrary: mutations.map((m) => ({ json: enc.encode(JSON.stringify(fx.json)), weights: applyMutations(fx.weights, m) })) },
    { weight: 1, arbitrary: mutations.map((m) => ({ json: applyMutations(enc.encode(JSON.stringify(fx.json)), m), weights: fx.weights })) },
  );
}

function checkGolden(fx, input) {
  writeFileSync(join(fx.dir, 'case.json'), input.json);
  writeFileSync(join(fx.dir, 'case.safetensors'), input.weights);
  expectClearOutcome('runGoldenCase', () => {
    const r = runGoldenCase(fx.dir, 'case', 'reference');
    // a case that cannot run reports why in one line (it never throws)
    if (!r.pass && !r.detail) throw new FuzzFailure('runGoldenCase: failed without saying why');
    if (r.detail.includes('\n') || UNCLEAR.test(r.detail)) throw new FuzzFailure(`runGoldenCase: unclear detail: ${r.detail}`);
  }, () => false);
}

// ---------------------------------------------------------------------------------------------

/** The targets: name, an async setup returning { arbitrary, check }, and the inputs of a short run. */
export const TARGETS = [
  { name: 'safetensors', runs: 20_000, setup: async () => ({ arbitrary: safetensorsInput, check: checkSafetensors }) },
  {
    name: 'safetensors-roundtrip', runs: 5_000,
    setup: async () => ({
      arbitrary: fc.tuple(tensorMap, metadataArb),
      check: ([t, m]) => {
        const back = readSafetensors(writeSafetensors(t, m));
        for (const [name, x] of Object.entries(t)) {
          const y = back.tensors.get(name);
          if (!y || JSON.stringify(y.shape) !== JSON.stringify(x.shape) || !Buffer.from(y.data.buffer).equals(Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength))) {
            throw new FuzzFailure(`safetensors round trip changed "${name}"`);
          }
        }
        if (back.tensors.size !== Object.keys(t).length) throw new FuzzFailure('safetensors round trip changed the tensor count');
      },
    }),
  },
  { name: 'vocabulary', runs: 20_000, setup: async () => ({ arbitrary: vocabInput, check: checkVocab }) },
  { name: 'checkpoint', runs: 600, setup: async () => { const fx = await checkpointFixture(); return { arbitrary: checkpointInput(fx), check: (i) => checkCheckpoint(fx, i) }; } },
  { name: 'golden-case', runs: 1_000, setup: async () => { const fx = goldenFixtureFor(); return { arbitrary: goldenInput(fx), check: (i) => checkGolden(fx, i) }; } },
];

/** Removes the temporary directories of the fixtures. */
export function cleanupFixtures() {
  if (ckptFixture) rmSync(join(ckptFixture.runDir, '..'), { recursive: true, force: true });
  if (goldenFixture) rmSync(goldenFixture.dir, { recursive: true, force: true });
  ckptFixture = null;
  goldenFixture = null;
}

export { fc };
