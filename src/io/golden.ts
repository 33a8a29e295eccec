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
import { readSafetensors } from './safetensors.js';
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

/** Runs one case (NAME.json + NAME.safetensors in dir) on one backend. */
export function runGoldenCase(dir: string, name: string, backend: BackendName): CaseResult {
  const cmp = new Comparison();
  try {
    const c = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as GoldenCase;
    const bytes = readFileSync(join(dir, `${name}.safetensors`));
    const weights = readSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).tensors;
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
