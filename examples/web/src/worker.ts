// The Web Worker of the page: the wasm backend, training, sampling, loading and saving all run
// here, so the page stays responsive whatever the worker does. It speaks the messages of
// protocol.ts and uses only the public API of rnnkit/wasm.
import {
  Adam, LanguageModel, Rng, TextGenerator, Vocabulary, clipGradNorm, createWasmBackendAsync, crossEntropy,
  pickWasmBuild, readSafetensors, setBackend, wasmThreadsUnavailable, writeSafetensors, type RecurrentState,
} from 'rnnkit/wasm';
import plainUrl from 'rnnkit/rnnkit.wasm?url';
import relaxedUrl from 'rnnkit/rnnkit-relaxed.wasm?url';
import threadsUrl from 'rnnkit/rnnkit-threads.wasm?url';
import threadsRelaxedUrl from 'rnnkit/rnnkit-threads-relaxed.wasm?url';
import type { FromWorker, ModelInfo, RunFile, SampleSettings, ToWorker, TrainSettings } from './protocol';

/** The fields of a run directory's config.json that describe the model (as `rnnkit train` writes them). */
interface RunConfig {
  level: 'char' | 'word';
  cell: 'lstm' | 'gru' | 'rnn';
  layers: number;
  hidden: number;
  embed: number;
  dropout: number;
  [key: string]: unknown;
}

interface Loaded {
  model: LanguageModel;
  vocab: Vocabulary;
  config: RunConfig;
  steps: number | null;
}

let current: Loaded | null = null;
let training = false;
let stopRequested = false;
let sampling = false;

const post = (m: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);

// Yields to the worker's message queue (a 'stop' or 'sample' message runs in between steps).
// A MessageChannel round trip is not clamped the way nested setTimeout calls are.
const channel = new MessageChannel();
const waiting: Array<() => void> = [];
channel.port1.onmessage = () => waiting.shift()?.();
const yieldToMessages = () => new Promise<void>((resolve) => { waiting.push(resolve); channel.port2.postMessage(0); });

function info(l: Loaded): ModelInfo {
  return {
    cell: l.config.cell, layers: l.config.layers, hidden: l.config.hidden, embed: l.config.embed, vocabSize: l.vocab.size,
    parameters: l.model.parameterCount(), steps: l.steps, source: String(l.config.source ?? ''),
  };
}

async function init(wasm: 'auto' | 'plain' | 'relaxed'): Promise<void> {
  const fetchBytes = async (url: string) => new Uint8Array(await (await fetch(url)).arrayBuffer());
  // the page is cross-origin isolated (COOP/COEP): the threaded build, one thread per core (its
  // relaxed-SIMD twin where the browser validates it)
  if (wasm === 'auto' && wasmThreadsUnavailable() === null) {
    const [threads, threadsRelaxed] = await Promise.all([fetchBytes(threadsUrl), fetchBytes(threadsRelaxedUrl)]);
    const backend = await createWasmBackendAsync(pickWasmBuild(threads, threadsRelaxed));
    setBackend(backend);
    post({ type: 'ready', isa: `${backend.info().isa}, ${backend.info().threads} threads` });
    return;
  }
  const [plain, relaxed] = await Promise.all([fetchBytes(plainUrl), wasm === 'plain' ? null : fetchBytes(relaxedUrl)]);
  const backend = await createWasmBackendAsync(pickWasmBuild(plain, relaxed, wasm));
  setBackend(backend);
  post({ type: 'ready', isa: backend.info().isa });
}

async function train(text: string, s: TrainSettings): Promise<void> {
  const vocab = Vocabulary.build(text, { level: 'char' });
  const ids = vocab.encode(text);
  // B lanes of contiguous text read side by side, T characters at a time (truncated BPTT): the
  // hidden state of each lane is carried from one window to the next.
  const T = s.seq;
  const B = s.batch;
  const lane = Math.floor((ids.length - 1) / B);
  if (lane < T) throw new Error(`the text has ${ids.length} characters: too few for batch ${B} x seq ${T} (give at least ${B * T + 1})`);
  const model = new LanguageModel({
    vocabSize: vocab.size, embeddingDim: s.embed, hiddenSize: s.hidden, numLayers: s.layers, cell: 'lstm', rng: new Rng(s.seed),
  });
  const config: RunConfig = {
    level: 'char', cell: 'lstm', layers: s.layers, hidden: s.hidden, embed: s.embed, dropout: 0, seq: T, batch: B, lr: s.lr,
    optimizer: 'adam', clip: 1, seed: s.seed, source: 'browser',
  };
  current = { model, vocab, config, steps: 0 };
  const params = model.parameters();
  const optimizer = new Adam(params, { lr: s.lr });
  post({ type: 'train-start', vocabSize: vocab.size, tokens: ids.length, parameters: model.parameterCount() });

  const inputs = new Int32Array(T * B);
  const targets = new Int32Array(T * B);
  let position = 0;
  let state: RecurrentState | null = null;
  let step = 0;
  training = true;
  stopRequested = false;
  try {
    while (step < s.steps && !stopRequested) {
      const t0 = performance.now();
      if (position + T > lane) { position = 0; state = null; }
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          inputs[t * B + b] = ids[b * lane + position + t];
          targets[t * B + b] = ids[b * lane + position + t + 1];
        }
      }
      position += T;
      model.train();
      optimizer.zeroGrad();
      const { logits, state: next } = model.forward(inputs, T, B, state);
      const loss = crossEntropy(logits, targets);
      loss.backward();
      clipGradNorm(params, 1);
      optimizer.step();
      state = { h: next.h ? next.h.detach() : null, c: next.c ? next.c.detach() : null };
      step++;
      current.steps = step;
      const seconds = (performance.now() - t0) / 1000;
      post({ type: 'step', step, steps: s.steps, loss: loss.item(), tokensPerSecond: (T * B) / seconds });
      await yieldToMessages();
    }
  } finally {
    training = false;
    model.eval();
  }
  post({ type: 'train-end', step, stopped: stopRequested, model: info(current) });
}

async function sample(s: SampleSettings): Promise<void> {
  if (!current) throw new Error('no model yet: train one or load a run directory');
  if (sampling) return;
  sampling = true;
  const wasTraining = current.model.training;
  current.model.eval();
  try {
    // the same calls as `rnnkit sample DIR --prime P --length N --temperature T --top-p P --seed S`
    const generator = new TextGenerator(current.model, current.vocab);
    generator.prime(s.prime);
    post({ type: 'sample-start', prime: s.prime });
    let chunk = '';
    let n = 0;
    for (const piece of generator.stream(s.length, { temperature: s.temperature, topP: s.topP }, new Rng(s.seed))) {
      chunk += piece;
      if (++n % 8 === 0) {
        post({ type: 'piece', text: chunk });
        chunk = '';
        await yieldToMessages();
      }
    }
    if (chunk) post({ type: 'piece', text: chunk });
    post({ type: 'sample-end' });
  } finally {
    current.model.train(wasTraining);
    sampling = false;
  }
}

/** The model of a run directory from its files: the shape comes from the weights, checked against config.json. */
function load(files: RunFile[]): void {
  if (training) throw new Error('stop the training before loading a model');
  const find = (name: string) => files.find((f) => f.name === name);
  const weights = find('weights.safetensors') ?? files.find((f) => f.name.endsWith('.safetensors'));
  const vocabFile = find('vocab.json');
  if (!weights || !vocabFile) {
    throw new Error(`pick weights.safetensors and vocab.json (and config.json) of a run's checkpoint directory; received ${files.map((f) => f.name).join(', ') || 'no files'}`);
  }
  const text = (f: RunFile) => new TextDecoder().decode(f.bytes);
  const parseJson = (f: RunFile) => {
    try { return JSON.parse(text(f)); } catch (e) { throw new Error(`${f.name}: ${(e as Error).message}`); }
  };
  let vocab: Vocabulary;
  try { vocab = Vocabulary.fromJSON(parseJson(vocabFile)); } catch (e) { throw new Error(`vocab.json: ${(e as Error).message}`); }
  let tensors;
  try { tensors = readSafetensors(new Uint8Array(weights.bytes)).tensors; } catch (e) { throw new Error(`${weights.name}: ${(e as Error).message}`); }
  const shape = (name: string) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${weights.name}: no tensor ${name} (not a language model of rnnkit train)`);
    return t.shape;
  };
  const cellKey = [...tensors.keys()].find((k) => /^(lstm|gru|rnn)\.weight_hh_l0$/.test(k));
  if (!cellKey) throw new Error(`${weights.name}: no recurrent layer (lstm.*, gru.* or rnn.* tensors)`);
  const cell = cellKey.split('.')[0] as RunConfig['cell'];
  const [vocabSize, embed] = shape('embedding.weight');
  const hidden = shape(cellKey)[1];
  let layers = 0;
  while (tensors.has(`${cell}.weight_hh_l${layers}`)) layers++;
  const configFile = find('config.json');
  const saved = configFile ? parseJson(configFile) as Partial<RunConfig> : {};
  const config: RunConfig = { level: 'char', dropout: 0, ...saved, cell, layers, hidden, embed };
  for (const k of ['cell', 'layers', 'hidden', 'embed'] as const) {
    if (saved[k] !== undefined && saved[k] !== config[k]) {
      throw new Error(`config.json says ${k} ${String(saved[k])} but ${weights.name} holds ${k} ${String(config[k])}`);
    }
  }
  if (vocabSize !== vocab.size) throw new Error(`vocab.json has ${vocab.size} tokens but ${weights.name} ${vocabSize}`);
  const model = new LanguageModel({ vocabSize, embeddingDim: embed, hiddenSize: hidden, numLayers: layers, cell, rng: new Rng(0) });
  model.loadStateDict(tensors);
  model.eval();
  const trainer = find('trainer.json');
  const steps = trainer ? Number(parseJson(trainer).step) : null;
  current = { model, vocab, config, steps: Number.isFinite(steps) ? steps : null };
  post({ type: 'loaded', model: info(current) });
}

/** The files `rnnkit sample DIR` and `rnnkit eval DIR` read, as `rnnkit train` writes them. */
function save(): void {
  if (!current) throw new Error('no model to save: train one first');
  const encode = (s: string) => new TextEncoder().encode(s).buffer as ArrayBuffer;
  const weights = writeSafetensors(current.model.stateDict(), { format: 'pt', producer: 'rnnkit' });
  const files: RunFile[] = [
    { name: 'weights.safetensors', bytes: weights.slice().buffer as ArrayBuffer },
    { name: 'vocab.json', bytes: encode(JSON.stringify(current.vocab.toJSON()) + '\n') },
    { name: 'config.json', bytes: encode(JSON.stringify(current.config, null, 2) + '\n') },
  ];
  post({ type: 'saved', files }, files.map((f) => f.bytes));
}

let ready: Promise<void> = Promise.resolve();

self.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  const run = async () => {
    switch (m.type) {
      case 'init': return init(m.wasm);
      case 'train':
        if (training) throw new Error('already training');
        return train(m.text, m.settings);
      case 'stop': stopRequested = true; return;
      case 'sample': return sample(m.settings);
      case 'load': return load(m.files);
      case 'save': return save();
    }
  };
  // everything waits for the backend; training, sampling and the rest interleave between steps
  const job = (m.type === 'init' ? run() : ready.then(run)).catch((err: unknown) => {
    post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  });
  if (m.type === 'init') ready = job;
};
