// A Cloudflare Worker serving two rnnkit models over HTTP, on the WebAssembly backend:
//
//   POST /predict   {"x": [[v, m], ...]}  ([T][F], one sequence) or [T][B][F] (a batch)
//                   -> {"y": [...], "shape": [...]}: an LSTM reads the sequence of the adding
//                   problem (a value and a marker per step) and predicts the sum of the two marked
//                   values, y [1] for one sequence or [B][1] for a batch
//   POST /generate  {"prime": "Call me", "length": 300, "temperature": 0.8, "topP": 0.95, "seed": 1}
//   GET  /generate?prime=Call%20me&length=300&temperature=0.8&topP=0.95&seed=1
//                   -> text/plain, streamed as it is generated: the same text as
//                   `rnnkit sample model/lm --prime ... --length ... --temperature ... --top-p ... --seed ...`
//   GET  /          what the Worker serves
//
// Bad requests get a 4xx status and {"error": "..."} naming the field, what was expected and what
// was received; the Worker goes on serving. The environment variable RNNKIT_WASM = "plain" picks
// the plain SIMD build instead of relaxed SIMD (the plain build gives the same bits as Node).
import {
  LSTM, LanguageModel, Linear, Rng, Tensor, TextGenerator, Vocabulary, checkSamplingOptions, createWasmBackend,
  noGrad, readSafetensors, reshape, select, setBackend,
} from 'rnnkit/wasm';
import plainWasm from 'rnnkit/rnnkit.wasm';
import relaxedWasm from 'rnnkit/rnnkit-relaxed.wasm';
import addingWeights from '../model/adding.safetensors';
import lmConfig from '../model/lm/config.json';
import lmVocab from '../model/lm/vocab.json';
import lmWeights from '../model/lm/weights.safetensors';

/** Request limits: a request over them is refused with 413 before any work. */
export const LIMITS = {
  bodyBytes: 1 << 20,
  steps: 2000,
  batch: 64,
  values: 200_000,
  primeChars: 1000,
  length: 2000,
};

const FLOAT32_MAX = 3.4028234663852886e38;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let models = null;

/** Builds the backend and both models once per isolate, on the first request. */
function load(env) {
  if (models) return models;
  let backend;
  try {
    backend = createWasmBackend(env.RNNKIT_WASM === 'plain' ? plainWasm : relaxedWasm);
  } catch {
    backend = createWasmBackend(plainWasm); // a runtime without relaxed SIMD
  }
  setBackend(backend);

  const adding = readSafetensors(new Uint8Array(addingWeights));
  const meta = adding.metadata;
  const part = (prefix) => new Map([...adding.tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  const inputSize = Number(meta.input_size);
  const hiddenSize = Number(meta.hidden_size);
  const rng = new Rng(0); // the initial weights are replaced by the trained ones just below
  const lstm = new LSTM({ inputSize, hiddenSize, numLayers: Number(meta.num_layers ?? 1), rng });
  const fc = new Linear(hiddenSize, Number(meta.output_size), { rng });
  lstm.loadStateDict(part('lstm.'));
  fc.loadStateDict(part('fc.'));
  lstm.eval();

  const vocab = Vocabulary.fromJSON(lmVocab);
  const lm = new LanguageModel({
    vocabSize: vocab.size, embeddingDim: lmConfig.embed, hiddenSize: lmConfig.hidden, numLayers: lmConfig.layers, cell: lmConfig.cell, rng,
  });
  lm.loadStateDict(readSafetensors(new Uint8Array(lmWeights)).tensors);
  lm.eval();

  models = { backend, predictor: { lstm, fc, inputSize, hiddenSize, meta }, lm, vocab };
  return models;
}

const json = (body, status = 200) => Response.json(body, { status, headers: { 'access-control-allow-origin': '*' } });

/**
 * The request body as text, at most LIMITS.bodyBytes bytes (a 413 past that). An oversized body
 * is still read to its end, up to DRAIN_BYTES, and dropped chunk by chunk: a server that answers
 * before the client has sent its body resets the connection under the client's upload, which
 * then sees a network error instead of the 413 and its message.
 */
const DRAIN_BYTES = 16 << 20;
async function readBody(request) {
  const declared = Number(request.headers.get('content-length') ?? 0);
  const reader = request.body?.getReader();
  const chunks = [];
  let bytes = 0;
  for (let r = reader ? await reader.read() : { done: true }; !r.done; r = await reader.read()) {
    bytes += r.value.byteLength;
    if (bytes > DRAIN_BYTES) {
      await reader.cancel();
      break;
    }
    if (bytes <= LIMITS.bodyBytes && declared <= LIMITS.bodyBytes) chunks.push(r.value);
  }
  if (declared > LIMITS.bodyBytes || bytes > LIMITS.bodyBytes) {
    throw new HttpError(413, `body: at most ${LIMITS.bodyBytes} bytes, received ${declared > LIMITS.bodyBytes ? declared : bytes > DRAIN_BYTES ? `more than ${DRAIN_BYTES}` : bytes}`);
  }
  return new Blob(chunks).text();
}

async function readJson(request) {
  const text = await readBody(request);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `body: expected JSON, received ${text.length ? `invalid JSON (${e.message})` : 'nothing'}`);
  }
}

const describe = (v) => (Array.isArray(v) ? `an array of ${v.length}` : v === null ? 'null' : typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : typeof v === 'object' ? 'an object' : String(v));

/** Nested arrays of numbers -> flat Float32Array and shape; every row the same length, every value a finite number. */
export function toTensorData(x, name = 'x') {
  if (!Array.isArray(x) || x.length === 0) throw new HttpError(400, `${name}: expected a non-empty array [T][F] or [T][B][F], received ${x === undefined ? 'nothing' : describe(x)}`);
  const shape = [];
  for (let v = x; Array.isArray(v); v = v[0]) {
    if (v.length === 0) throw new HttpError(400, `${name}: expected non-empty arrays, received an empty one at depth ${shape.length}`);
    shape.push(v.length);
  }
  if (shape.length !== 2 && shape.length !== 3) throw new HttpError(400, `${name}: expected [T][F] or [T][B][F] numbers, received ${shape.length} level${shape.length === 1 ? '' : 's'} of arrays`);
  if (shape[0] > LIMITS.steps) throw new HttpError(413, `${name}: at most ${LIMITS.steps} steps, received ${shape[0]}`);
  if (shape.length === 3 && shape[1] > LIMITS.batch) throw new HttpError(413, `${name}: at most ${LIMITS.batch} sequences in a batch, received ${shape[1]}`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count > LIMITS.values) throw new HttpError(413, `${name}: at most ${LIMITS.values} numbers, received ${shape.join(' x ')}`);
  const data = new Float32Array(count);
  let k = 0;
  const walk = (v, depth, path) => {
    if (depth === shape.length) {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new HttpError(400, `${name}${path}: expected a finite number, received ${describe(v)}`);
      if (Math.abs(v) > FLOAT32_MAX) throw new HttpError(400, `${name}${path}: expected a number within float32 range (±3.4e38), received ${v}`);
      data[k++] = v;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new HttpError(400, `${name}${path}: expected an array of ${shape[depth]} (as ${name}${'[0]'.repeat(depth)}), received ${describe(v)}`);
    }
    for (let i = 0; i < v.length; i++) walk(v[i], depth + 1, `${path}[${i}]`);
  };
  walk(x, 0, '');
  return { data, shape };
}

function predict(env, body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, `body: expected {"x": [T][F] or [T][B][F]}, received ${describe(body)}`);
  const { predictor } = load(env);
  const { data, shape } = toTensorData(body.x);
  const F = shape[shape.length - 1];
  if (F !== predictor.inputSize) {
    throw new HttpError(400, `x: expected ${predictor.inputSize} features per step (F), received ${F} (shape ${shape.join(' x ')})`);
  }
  const batched = shape.length === 3;
  const B = batched ? shape[1] : 1;
  const y = noGrad(() => {
    const x = new Tensor(data, batched ? shape : [shape[0], 1, F]);
    const { hN } = predictor.lstm.forward(x); // hN [layers, B, H]
    const last = select(hN, hN.shape[0] - 1);
    return predictor.fc.forward(reshape(last, [B, predictor.hiddenSize])); // [B, 1]
  });
  const rows = Array.from({ length: B }, (_, b) => Array.from(y.data.subarray(b * y.shape[1], (b + 1) * y.shape[1])));
  return json({ y: batched ? rows : rows[0], shape: batched ? [B, y.shape[1]] : [y.shape[1]] });
}

function generationSettings(src) {
  const number = (key, fallback, check, expected) => {
    const raw = src[key];
    if (raw === undefined || raw === null || raw === '') return fallback;
    const v = typeof raw === 'string' ? Number(raw) : raw;
    if (typeof v !== 'number' || !check(v)) throw new HttpError(400, `${key}: expected ${expected}, received ${describe(raw)}`);
    return v;
  };
  const prime = src.prime ?? '';
  if (typeof prime !== 'string') throw new HttpError(400, `prime: expected a string, received ${describe(prime)}`);
  if (prime.length > LIMITS.primeChars) throw new HttpError(413, `prime: at most ${LIMITS.primeChars} characters, received ${prime.length}`);
  const length = number('length', 300, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  if (length > LIMITS.length) throw new HttpError(413, `length: at most ${LIMITS.length}, received ${length}`);
  const s = {
    prime, length,
    temperature: number('temperature', 1, (v) => Number.isFinite(v) && v >= 0, 'a number >= 0'),
    topP: number('topP', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    topK: number('topK', 0, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0'),
    seed: number('seed', 1, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0'),
  };
  try { checkSamplingOptions(s); } catch (e) { throw new HttpError(400, e.message); }
  return s;
}

/** Streams prime + `length` generated characters, 32 at a time. */
function generate(env, s) {
  const { lm, vocab } = load(env);
  const generator = new TextGenerator(lm, vocab);
  generator.prime(s.prime);
  const pieces = generator.stream(s.length, { temperature: s.temperature, topP: s.topP, topK: s.topK }, new Rng(s.seed));
  const encoder = new TextEncoder();
  let first = true;
  const stream = new ReadableStream({
    pull(controller) {
      let chunk = first ? s.prime : '';
      first = false;
      for (let i = 0; i < 32; i++) {
        const next = pieces.next();
        if (next.done) {
          if (chunk) controller.enqueue(encoder.encode(chunk));
          controller.close();
          return;
        }
        chunk += next.value;
      }
      controller.enqueue(encoder.encode(chunk));
    },
  });
  return new Response(stream, { headers: { 'content-type': 'text/plain; charset=utf-8', 'access-control-allow-origin': '*' } });
}

function index(env) {
  const { backend, predictor, vocab } = load(env);
  return json({
    name: 'rnnkit worker',
    backend: `${backend.name} (${backend.info().isa})`,
    endpoints: {
      'POST /predict': {
        body: '{"x": [T][F] or [T][B][F] numbers}',
        model: `LSTM(${predictor.inputSize} -> ${predictor.hiddenSize}) + Linear: the adding problem (x[t] = [value, marker], y = sum of the two marked values)`,
        limits: { steps: LIMITS.steps, batch: LIMITS.batch, values: LIMITS.values, bodyBytes: LIMITS.bodyBytes },
      },
      'POST /generate': {
        body: '{"prime": "Call me", "length": 300, "temperature": 0.8, "topP": 0.95, "topK": 0, "seed": 1}',
        model: `character ${lmConfig.cell.toUpperCase()} ${lmConfig.layers}x${lmConfig.hidden} trained on Moby Dick (${vocab.size} tokens)`,
        limits: { length: LIMITS.length, primeChars: LIMITS.primeChars },
      },
      'GET /generate': 'the same settings as query parameters: /generate?prime=Call%20me&length=200',
    },
  });
}

export default {
  async fetch(request, env) {
    const { pathname, searchParams } = new URL(request.url);
    try {
      if (pathname === '/' && request.method === 'GET') return index(env);
      if (pathname === '/predict') {
        if (request.method !== 'POST') throw new HttpError(405, `/predict: expected POST with a JSON body, received ${request.method}`);
        return predict(env, await readJson(request));
      }
      if (pathname === '/generate') {
        if (request.method === 'GET') return generate(env, generationSettings(Object.fromEntries(searchParams)));
        if (request.method === 'POST') {
          const body = await readJson(request);
          if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, `body: expected {"prime", "length", ...}, received ${describe(body)}`);
          return generate(env, generationSettings(body));
        }
        throw new HttpError(405, `/generate: expected GET or POST, received ${request.method}`);
      }
      throw new HttpError(404, `${pathname}: no such endpoint (GET /, POST /predict, GET or POST /generate)`);
    } catch (e) {
      if (e instanceof HttpError) return json({ error: e.message }, e.status);
      // rnnkit's own argument checks (a shape or value it refuses) are the client's error too
      if (e instanceof RangeError || e instanceof TypeError) return json({ error: e.message }, 400);
      return json({ error: `internal error: ${e?.message ?? e}` }, 500);
    }
  },
};
