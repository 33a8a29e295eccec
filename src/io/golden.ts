// PyTorch reference cases (the format of golden/README.md), run through the public API.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BackendName, withBackend } from '../backends/index.js';
import { type RecurrentBase, recurrentLayer } from '../nn/layers.js';
import { type ModuleName, cellKindOf } from '../backends/cells.js';
import { LanguageModel } from '../nn/models.js';
import { add, crossEntropy, mul, sum } from '../core/ops.js';
import { Adam, clipGradNorm } from '../nn/optim.js';
import { oneLine, readSafetensors } from './safetensors.js';
import { Tensor } from '../core/tensor.js';

/** Tolerances of the golden README: relative to the largest magnitude of each tensor. */
export const FORWARD_TOLERANCE = 1e-5;
export const GRADIENT_TOLERANCE = 1e-4;

interface JsonTensor { shape: number[]; data: number[] }

interface GoldenCase {
  name: string;
  module: ModuleName | 'CharLM';
  config: Record<string, unknown>;
  state_dict: Record<string, JsonTensor>;
  inputs: Record<string, JsonTensor | number[] | null>;
  upstream?: Record<string, JsonTensor | null>;
  expected: Record<string, unknown>;
}

export interface CaseResult {
  name: string;
  backend: string;
  /** Worst relative error over forward values (outputs, states, loss, parameters after the step). */
  forwardError: number;
  /** Worst relative error over gradients (and the clipping norm). */
  gradError: number;
  pass: boolean;
  /** Which tensor was worst, or the error that stopped the case. */
  detail: string;
}

/** max|a - b| / max|b| (0 for an all-zero b compared with zeros). */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]);
    worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  }
  return scale === 0 ? worst : worst / scale;
}

class Comparison {
  forward = 0;
  grad = 0;
  worstForward = '';
  worstGrad = '';

  add(kind: 'forward' | 'grad', name: string, actual: ArrayLike<number> | null | undefined, expected: ArrayLike<number>): void {
    const err = actual ? relativeError(actual, expected) : Infinity;
    if (kind === 'forward' && err >= this.forward) { this.forward = err; this.worstForward = name; }
    if (kind === 'grad' && err >= this.grad) { this.grad = err; this.worstGrad = name; }
  }
}

function tensorOf(j: JsonTensor, requiresGrad = false): Tensor {
  return new Tensor(Float32Array.from(j.data), j.shape, requiresGrad);
}

function isTensor(v: unknown): v is JsonTensor {
  return typeof v === 'object' && v !== null && 'shape' in v && 'data' in v;
}

function buildRecurrent(c: GoldenCase): RecurrentBase {
  const cfg = c.config as Record<string, number | boolean | string | undefined>;
  const kind = cellKindOf(`golden case ${c.name}`, c.module, (cfg.nonlinearity as string | undefined) ?? 'tanh');
  return recurrentLayer(kind, {
    inputSize: cfg.input_size as number,
    hiddenSize: cfg.hidden_size as number,
    numLayers: (cfg.num_layers as number | undefined) ?? 1,
    bidirectional: (cfg.bidirectional as boolean | undefined) ?? false,
    bias: (cfg.bias as boolean | undefined) ?? true,
    batchFirst: (cfg.batch_first as boolean | undefined) ?? false,
    projSize: (cfg.proj_size as number | undefined) ?? 0,
  });
}

function runRecurrentCase(c: GoldenCase, weights: Map<string, { shape: number[]; data: Float32Array }>, cmp: Comparison): void {
  const model = buildRecurrent(c);
  model.loadStateDict(weights);
  const x = tensorOf(c.inputs.x as JsonTensor, true);
  const h0 = isTensor(c.inputs.h0) ? tensorOf(c.inputs.h0, true) : null;
  const c0 = isTensor(c.inputs.c0) ? tensorOf(c.inputs.c0, true) : null;
  const lengths = (c.inputs.lengths as number[] | null) ?? null;
  const { output, hN, cN } = model.forward(x, { h0, c0, lengths });
  const up = c.upstream ?? {};
  let loss = sum(mul(output, tensorOf(up.output as JsonTensor)));
  if (isTensor(up.h_n)) loss = add(loss, sum(mul(hN, tensorOf(up.h_n))));
  if (isTensor(up.c_n) && cN) loss = add(loss, sum(mul(cN, tensorOf(up.c_n))));
  loss.backward();

  const e = c.expected as Record<string, JsonTensor | null | Record<string, JsonTensor>>;
  cmp.add('forward', 'output', output.data, (e.output as JsonTensor).data);
  cmp.add('forward', 'h_n', hN.data, (e.h_n as JsonTensor).data);
  if (isTensor(e.c_n)) cmp.add('forward', 'c_n', cN?.data, e.c_n.data);
  const grads = e.grad as Record<string, JsonTensor>;
  const params = new Map(model.namedParameters());
  for (const [name, g] of Object.entries(grads)) {
    const actual = name === 'x' ? x.grad : name === 'h0' ? h0?.grad : name === 'c0' ? c0?.grad : params.get(name)?.grad;
    cmp.add('grad', `grad ${name}`, actual ?? new Float32Array(g.data.length), g.data);
  }
}

function runCharLMCase(c: GoldenCase, weights: Map<string, { shape: number[]; data: Float32Array }>, cmp: Comparison): void {
  const cfg = c.config as { vocab: number; embedding_dim: number; hidden_size: number; num_layers: number; clip_grad_norm: number; optimizer: { lr: number; betas: [number, number]; eps: number } };
  const model = new LanguageModel({ vocabSize: cfg.vocab, embeddingDim: cfg.embedding_dim, hiddenSize: cfg.hidden_size, numLayers: cfg.num_layers });
  model.loadStateDict(weights);
  const tokens = c.inputs.tokens as JsonTensor;
  const targets = c.inputs.targets as JsonTensor;
  const [T, B] = tokens.shape;
  const { logits } = model.forward(tokens.data, T, B);
  const loss = crossEntropy(logits, targets.data);
  loss.backward();
  const e = c.expected as {
    logits: JsonTensor; loss: number; grad: Record<string, JsonTensor>; total_norm: number;
    clipped_grad: Record<string, JsonTensor>; after_step: Record<string, JsonTensor>;
  };
  cmp.add('forward', 'logits', logits.data, e.logits.data);
  cmp.add('forward', 'loss', [loss.item()], [e.loss]);
  const params = new Map(model.namedParameters());
  for (const [name, g] of Object.entries(e.grad)) cmp.add('grad', `grad ${name}`, params.get(name)?.grad, g.data);
  const norm = clipGradNorm(model.parameters(), cfg.clip_grad_norm);
  cmp.add('grad', 'total_norm', [norm], [e.total_norm]);
  for (const [name, g] of Object.entries(e.clipped_grad)) cmp.add('grad', `clipped ${name}`, params.get(name)?.grad, g.data);
  // The optimizer is checked on the file's own clipped gradients (see the golden README).
  for (const [name, g] of Object.entries(e.clipped_grad)) params.get(name)!.grad = Float32Array.from(g.data);
  const adam = new Adam(model.parameters(), { lr: cfg.optimizer.lr, betas: cfg.optimizer.betas, eps: cfg.optimizer.eps });
  adam.step();
  for (const [name, p] of Object.entries(e.after_step)) cmp.add('forward', `after_step ${name}`, params.get(name)?.data, p.data);
}

// ---- the format of a case file, checked before anything is built (messages name the field) ----

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function need(ok: boolean, where: string, what: string, v: unknown): void {
  if (!ok) throw new Error(`${where} must be ${what}, received ${show(v)}`);
}

function plainObject(v: unknown, where: string): Record<string, unknown> {
  need(typeof v === 'object' && v !== null && !Array.isArray(v), where, 'an object', v);
  return v as Record<string, unknown>;
}

const isPosInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

function checkTensor(v: unknown, where: string): void {
  const t = plainObject(v, where);
  need(Array.isArray(t.shape) && t.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `${where}.shape`, 'an array of non-negative integers', t.shape);
  need(Array.isArray(t.data) && t.data.every((x) => typeof x === 'number'), `${where}.data`, 'an array of numbers', typeof t.data === 'object' ? '(an array with other values)' : t.data);
  const n = (t.shape as number[]).reduce((p, d) => p * d, 1);
  need((t.data as number[]).length === n, `${where}.data`, `${n} numbers (shape ${show(t.shape)})`, `${(t.data as number[]).length} numbers`);
}

function checkOptionalTensor(v: unknown, where: string): void {
  if (v !== undefined && v !== null) checkTensor(v, where);
}

function checkTensors(v: unknown, where: string): void {
  for (const [k, t] of Object.entries(plainObject(v, where))) checkTensor(t, `${where}.${k}`);
}

function checkWeight(weights: Map<string, { shape: number[] }>, name: string, shape: number[], file: string): void {
  const w = weights.get(name);
  if (!w) throw new Error(`${file} has no ${name}, which the case's config needs`);
  if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${file}: ${name} has shape ${show(w.shape)}, but the case's config gives ${show(shape)}`);
  }
}

/** Checks a parsed case file and its weights against each other, before any model is allocated. */
function checkCase(raw: unknown, weights: Map<string, { shape: number[] }>, name: string): GoldenCase {
  const f = `${name}.json`;
  const w = `${name}.safetensors`;
  const c = plainObject(raw, f);
  need(['RNN', 'LSTM', 'GRU', 'CharLM'].includes(c.module as string), `${f}: module`, 'RNN, LSTM, GRU or CharLM', c.module);
  const cfg = plainObject(c.config, `${f}: config`);
  const inputs = plainObject(c.inputs, `${f}: inputs`);
  const expected = plainObject(c.expected, `${f}: expected`);
  const posInt = (k: string) => need(isPosInt(cfg[k]), `${f}: config.${k}`, 'a positive integer', cfg[k]);
  if (c.module === 'CharLM') {
    ['vocab', 'embedding_dim', 'hidden_size', 'num_layers'].forEach(posInt);
    need(typeof cfg.clip_grad_norm === 'number' && cfg.clip_grad_norm > 0, `${f}: config.clip_grad_norm`, 'a positive number', cfg.clip_grad_norm);
    const o = plainObject(cfg.optimizer, `${f}: config.optimizer`);
    need(typeof o.lr === 'number' && typeof o.eps === 'number' && Array.isArray(o.betas) && o.betas.length === 2 && o.betas.every((b) => typeof b === 'number'),
      `${f}: config.optimizer`, '{ lr, betas: [b1, b2], eps } of numbers', o);
    const V = cfg.vocab as number;
    for (const k of ['tokens', 'targets']) {
      checkTensor(inputs[k], `${f}: inputs.${k}`);
      const t = inputs[k] as JsonTensor;
      need(t.shape.length === 2, `${f}: inputs.${k}.shape`, '[T, B]', t.shape);
      need(t.data.every((id) => Number.isInteger(id) && id >= 0 && id < V), `${f}: inputs.${k}.data`, `token ids in [0, ${V})`, '(other values)');
    }
    checkTensor(expected.logits, `${f}: expected.logits`);
    need(typeof expected.loss === 'number' && typeof expected.total_norm === 'number', `${f}: expected.loss and total_norm`, 'numbers', [expected.loss, expected.total_norm]);
    for (const k of ['grad', 'clipped_grad', 'after_step']) checkTensors(expected[k], `${f}: expected.${k}`);
    const [E, H, L] = [cfg.embedding_dim as number, cfg.hidden_size as number, cfg.num_layers as number];
    checkWeight(weights, 'embedding.weight', [V, E], w);
    checkWeight(weights, 'lstm.weight_hh_l0', [4 * H, H], w);
    checkWeight(weights, `lstm.weight_hh_l${L - 1}`, [4 * H, H], w);
  } else {
    posInt('input_size');
    posInt('hidden_size');
    if (cfg.num_layers !== undefined) posInt('num_layers');
    if (cfg.proj_size !== undefined) need(Number.isSafeInteger(cfg.proj_size) && (cfg.proj_size as number) >= 0, `${f}: config.proj_size`, 'a non-negative integer', cfg.proj_size);
    for (const k of ['bidirectional', 'bias', 'batch_first']) if (cfg[k] !== undefined) need(typeof cfg[k] === 'boolean', `${f}: config.${k}`, 'true or false', cfg[k]);
    if (cfg.nonlinearity !== undefined) need(cfg.nonlinearity === 'tanh' || cfg.nonlinearity === 'relu', `${f}: config.nonlinearity`, "'tanh' or 'relu'", cfg.nonlinearity);
    checkTensor(inputs.x, `${f}: inputs.x`);
    checkOptionalTensor(inputs.h0, `${f}: inputs.h0`);
    checkOptionalTensor(inputs.c0, `${f}: inputs.c0`);
    if (inputs.lengths !== undefined && inputs.lengths !== null) {
      need(Array.isArray(inputs.lengths) && inputs.lengths.every(isPosInt), `${f}: inputs.lengths`, 'an array of positive integers', inputs.lengths);
    }
    const up = plainObject(c.upstream ?? {}, `${f}: upstream`);
    checkTensor(up.output, `${f}: upstream.output`);
    checkOptionalTensor(up.h_n, `${f}: upstream.h_n`);
    checkOptionalTensor(up.c_n, `${f}: upstream.c_n`);
    checkTensor(expected.output, `${f}: expected.output`);
    checkTensor(expected.h_n, `${f}: expected.h_n`);
    checkOptionalTensor(expected.c_n, `${f}: expected.c_n`);
    checkTensors(expected.grad, `${f}: expected.grad`);
    const G = c.module === 'LSTM' ? 4 : c.module === 'GRU' ? 3 : 1;
    const [I, H, L, P] = [cfg.input_size as number, cfg.hidden_size as number, (cfg.num_layers as number | undefined) ?? 1, (cfg.proj_size as number | undefined) ?? 0];
    checkWeight(weights, 'weight_ih_l0', [G * H, I], w);
    checkWeight(weights, `weight_hh_l${L - 1}`, [G * H, P || H], w);
  }
  return c as unknown as GoldenCase;
}

/** Runs one case (NAME.json + NAME.safetensors in dir) on one backend. */
export function runGoldenCase(dir: string, name: string, backend: BackendName): CaseResult {
  const cmp = new Comparison();
  try {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8'));
    } catch (e) {
      throw new Error(`${name}.json: ${oneLine((e as Error).message)}`);
    }
    const bytes = readFileSync(join(dir, `${name}.safetensors`));
    let weights: Map<string, { shape: number[]; data: Float32Array }>;
    try {
      weights = readSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).tensors;
    } catch (e) {
      throw new Error(`${name}.safetensors: ${(e as Error).message}`);
    }
    const c = checkCase(raw, weights, name);
    withBackend(backend, () => {
      if (c.module === 'CharLM') runCharLMCase(c, weights, cmp);
      else runRecurrentCase(c, weights, cmp);
    });
  } catch (err) {
    return { name, backend, forwardError: NaN, gradError: NaN, pass: false, detail: (err as Error).message };
  }
  const pass = cmp.forward <= FORWARD_TOLERANCE && cmp.grad <= GRADIENT_TOLERANCE;
  const detail = pass ? '' : cmp.forward > FORWARD_TOLERANCE ? `worst: ${cmp.worstForward}` : `worst: ${cmp.worstGrad}`;
  return { name, backend, forwardError: cmp.forward, gradError: cmp.grad, pass, detail };
}

/**
 * The golden/ folder that ships with the package: found by walking up from this module to the
 * package root (the folder whose package.json is rnnkit's), so it works from dist/ and from src/.
 */
export function packagedGoldenDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'rnnkit') return join(dir, 'golden');
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no rnnkit package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The case names of a directory: every NAME.json with a NAME.safetensors beside it. */
export function goldenCaseNames(dir: string): string[] {
  const files = new Set(readdirSync(dir));
  return [...files].filter((f) => f.endsWith('.json') && files.has(f.replace(/\.json$/, '.safetensors'))).map((f) => f.replace(/\.json$/, '')).sort();
}
