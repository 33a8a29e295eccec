// The language-model training loop: TBPTT batches with the hidden state carried between them,
// a learning-rate schedule, gradient clipping (norm logged), validation every N steps with early
// stopping, non-finite checks, callbacks, and exact checkpoint/resume.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend } from '../backends/index.js';
import { LanguageModel } from '../nn/models.js';
import { crossEntropy } from '../core/ops.js';
import { Adam, AdamW, SGD, clipGradNorm, type Optimizer } from '../nn/optim.js';
import { Rng } from '../core/random.js';
import { Tensor, noGrad } from '../core/tensor.js';
import type { NamedTensor } from '../io/safetensors.js';
import {
  WEIGHTS_FILE, findNonFinite, readJsonFile, readTensorsFile, resolveCheckpointDir, tensorsBytes, writeCheckpointDir, type SaveHooks,
} from './checkpoint.js';
import { TbpttBatcher, evalBatches, splitHeldOut, type BatcherState } from './data.js';
import { TextGenerator } from './generate.js';
import { silentProgress, type ProgressSink } from './progress.js';
import { curvesSvg, reportHtml, smooth } from './report.js';
import { learningRate, type ScheduleKind } from './schedule.js';
import { UNK_ID, Vocabulary, type VocabLevel } from './vocab.js';
import { LAYER_NAMES, type LayerName } from '../backends/cells.js';

/** The recurrent cell of a language model: the lower-case layer name (lstm, gru, rnn). */
export type CellName = LayerName;
/** The optimizer of a language-model run. */
export type OptimizerName = 'adam' | 'adamw' | 'sgd';

/** Everything that defines a run (saved as config.json in each checkpoint). */
export interface LMConfig {
  level: VocabLevel;
  cell: CellName;
  layers: number;
  hidden: number;
  embed: number;
  dropout: number;
  seq: number;
  batch: number;
  lr: number;
  optimizer: OptimizerName;
  weightDecay: number;
  momentum: number;
  /** Clip the gradient norm to this (0: no clipping; the norm is logged either way). */
  clip: number;
  schedule: ScheduleKind;
  warmup: number;
  stepSize: number;
  gamma: number;
  minLr: number;
  /** Steps the cosine schedule decays over (0: the first run's step budget, else each run's time budget). */
  decaySteps: number;
  seed: number;
  /** Most frequent tokens kept in the vocabulary (0: all for char level, 10,000 for word level). */
  maxVocab: number;
  /** Fraction of the stream at its end held out for validation. */
  valFraction: number;
  /** Validate every this many steps (0: only at the end). */
  valEvery: number;
  /** Tokens of the held-out split used by the periodic validations (0: all of it). */
  valTokens: number;
  /** Stop when this many validations in a row did not improve the best (0: never); the best is kept in DIR/best. */
  patience: number;
  /** Save a checkpoint every this many steps when the run has an output directory (0: at the end only). */
  checkpointEvery: number;
  /** Where the text came from (a path or dataset:NAME), for resuming and the report. */
  source: string;
}

/** The configuration a run starts from; every field can be overridden. */
export const DEFAULT_CONFIG: LMConfig = {
  level: 'char', cell: 'lstm', layers: 2, hidden: 256, embed: 64, dropout: 0,
  seq: 100, batch: 32, lr: 2e-3, optimizer: 'adam', weightDecay: 0, momentum: 0, clip: 1,
  schedule: 'constant', warmup: 0, stepSize: 1000, gamma: 0.5, minLr: 0, decaySteps: 0,
  seed: 1, maxVocab: 0, valFraction: 0.05, valEvery: 200, valTokens: 0, patience: 0, checkpointEvery: 500, source: '',
};

/** What one optimizer step reports: loss, learning rate, gradient norm and speed. */
export interface StepMetrics {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
}

/** A validation: held-out loss, bits per token and perplexity. */
export interface ValMetrics {
  step: number;
  loss: number;
  bits: number;
  perplexity: number;
  tokens: number;
  best: boolean;
}

/** The training and validation curves of a run. */
export interface TrainHistory {
  train: Array<{ step: number; loss: number; lr: number; gradNorm: number; tps: number }>;
  val: Array<{ step: number; loss: number }>;
}

/** Callbacks of a training run; each may return 'stop' to end it. */
export interface TrainCallbacks {
  /** After every optimizer step. Return 'stop' to end the run. */
  onStep?(m: StepMetrics, trainer: LMTrainer): void | 'stop';
  onValidation?(v: ValMetrics, trainer: LMTrainer): void | 'stop';
  onCheckpoint?(dir: string, trainer: LMTrainer): void;
}

/**
 * How long `LMTrainer.run` trains (steps, epochs or minutes), where it saves, and what it reports
 * to.
 */
export interface RunOptions {
  /** Train until this step number (absolute: a resumed run counts the steps already done). */
  steps?: number;
  /** Train until this many epochs over the training split (absolute). */
  epochs?: number;
  /** Wall-time budget of this call, in minutes. */
  minutes?: number;
  /** Run directory for checkpoints and the report (none: nothing is written). */
  out?: string;
  callbacks?: TrainCallbacks;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** Yield to the event loop between steps (lets signals and timers run). Default true. */
  yieldEvery?: boolean;
  /** Tokens of generated text written into the report (0: none). Default 300. */
  reportSampleLength?: number;
  saveHooks?: SaveHooks;
}

/** Why a run stopped. */
export type StopReason = 'steps' | 'epochs' | 'time' | 'early-stopping' | 'callback' | 'aborted';

/** How a call of `LMTrainer.run` ended: step, reason, last losses, speed and checkpoint. */
export interface RunResult {
  step: number;
  stoppedBy: StopReason;
  trainLoss: number;
  val: ValMetrics | null;
  /** Training throughput of this run (optimizer steps only: validation and saving not counted). */
  tokensPerSecond: number;
  /** Wall time of this run. */
  seconds: number;
  checkpoint: string | null;
}

/** A non-finite loss or gradient: names the step and the tensor; the step is not applied. */
export class NonFiniteError extends Error {
  constructor(readonly step: number, readonly tensor: string, detail: string) {
    super(`step ${step}: non-finite ${tensor} (${detail}); the step was not applied and no checkpoint was written`);
    this.name = 'NonFiniteError';
  }
}

interface TrainerState {
  format: 'rnnkit-lm-trainer';
  version: 1;
  step: number;
  batcher: BatcherState;
  modelRng: number[];
  bestVal: number | null;
  badValidations: number;
  trainSeconds: number;
  tokensSeen: number;
  history: TrainHistory;
  dataHash: string;
  dataTokens: number;
}

/** A short SHA-256 fingerprint of a text (a resumed run checks it trains on the same text). */
export function hashText(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

function checkConfig(c: LMConfig): void {
  const posInt = (k: keyof LMConfig) => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, received ${v}`);
  };
  const nonNegInt = (k: keyof LMConfig) => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${k} must be a non-negative integer, received ${v}`);
  };
  (['layers', 'hidden', 'embed', 'seq', 'batch', 'stepSize'] as const).forEach(posInt);
  (['warmup', 'valEvery', 'valTokens', 'patience', 'checkpointEvery', 'decaySteps', 'seed', 'maxVocab'] as const).forEach(nonNegInt);
  if (!LAYER_NAMES.includes(c.cell)) throw new RangeError(`cell must be one of ${LAYER_NAMES.join(', ')}, received '${c.cell}'`);
  if (!['char', 'word'].includes(c.level)) throw new RangeError(`level must be char or word, received '${c.level}'`);
  if (!['adam', 'adamw', 'sgd'].includes(c.optimizer)) throw new RangeError(`optimizer must be adam, adamw or sgd, received '${c.optimizer}'`);
  if (!['constant', 'step', 'cosine'].includes(c.schedule)) throw new RangeError(`schedule must be constant, step or cosine, received '${c.schedule}'`);
  if (!(c.lr > 0) || !Number.isFinite(c.lr)) throw new RangeError(`lr must be a positive number, received ${c.lr}`);
  if (!(c.clip >= 0)) throw new RangeError(`clip must be >= 0 (0 = no clipping), received ${c.clip}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new RangeError(`dropout must be in [0, 1), received ${c.dropout}`);
  if (!(c.valFraction > 0 && c.valFraction < 1)) throw new RangeError(`valFraction must be in (0, 1), received ${c.valFraction}`);
}

/**
 * A prepared text: its vocabulary, the token ids of the training and held-out splits, and a hash
 * of the text.
 */
export interface LMData {
  vocab: Vocabulary;
  train: Int32Array;
  val: Int32Array;
  hash: string;
}

/** Encodes text with a vocabulary (built from the text when not given) and splits off the held-out tail. */
export function prepareData(text: string, config: Pick<LMConfig, 'level' | 'valFraction'> & { maxVocab?: number }, vocab?: Vocabulary): LMData {
  const maxSize = config.maxVocab ? config.maxVocab : config.level === 'word' ? 10_000 : undefined;
  const v = vocab ?? Vocabulary.build(text, { level: config.level, maxSize });
  const ids = v.encode(text);
  const { train, val } = splitHeldOut(ids, config.valFraction);
  return { vocab: v, train, val, hash: hashText(text) };
}

/**
 * Trains a language model on prepared data: truncated BPTT with the state carried between batches,
 * schedules, clipping, periodic validation, early stopping, atomic checkpoints and exact resume.
 */
export class LMTrainer {
  readonly config: LMConfig;
  readonly vocab: Vocabulary;
  readonly model: LanguageModel;
  readonly optimizer: Optimizer;
  readonly batcher: TbpttBatcher;
  private readonly modelRng: Rng;
  private readonly params: Array<[string, Tensor]>;
  step = 0;
  carried: { h: Tensor | null; c: Tensor | null } | null = null;
  bestVal: number | null = null;
  badValidations = 0;
  trainSeconds = 0;
  tokensSeen = 0;
  history: TrainHistory = { train: [], val: [] };
  /** Set after a non-finite step: the trainer refuses to continue or to save. */
  failed: NonFiniteError | null = null;

  constructor(config: Partial<LMConfig>, readonly data: LMData) {
    this.config = { ...DEFAULT_CONFIG, ...config };
    checkConfig(this.config);
    const c = this.config;
    this.vocab = data.vocab;
    this.modelRng = new Rng(c.seed);
    this.model = new LanguageModel({
      vocabSize: data.vocab.size, embeddingDim: c.embed, hiddenSize: c.hidden, numLayers: c.layers, cell: c.cell, dropout: c.dropout, rng: this.modelRng,
    });
    this.params = this.model.namedParameters();
    const params = this.params.map(([, t]) => t);
    this.optimizer = c.optimizer === 'sgd'
      ? new SGD(params, { lr: c.lr, momentum: c.momentum, weightDecay: c.weightDecay })
      : c.optimizer === 'adamw' ? new AdamW(params, { lr: c.lr, weightDecay: c.weightDecay }) : new Adam(params, { lr: c.lr, weightDecay: c.weightDecay });
    this.batcher = new TbpttBatcher(data.train, c.seq, c.batch, c.seed + 1);
  }

  /** Bits per token from a loss in nats. */
  static bits(loss: number): number {
    return loss / Math.LN2;
  }

  lrAt(step: number, progress?: number): number {
    const c = this.config;
    return learningRate({ kind: c.schedule, lr: c.lr, warmup: c.warmup, stepSize: c.stepSize, gamma: c.gamma, minLr: c.minLr, totalSteps: c.decaySteps || undefined }, step, progress);
  }

  /** One optimizer step on the next batch. Throws NonFiniteError (and applies nothing) on NaN/Inf. */
  trainStep(progress?: number): StepMetrics {
    if (this.failed) throw this.failed;
    const t0 = performance.now();
    const stepNo = this.step + 1;
    const batch = this.batcher.next();
    if (batch.reset) this.carried = null;
    const lr = this.lrAt(stepNo, progress);
    this.optimizer.lr = lr;
    this.model.train();
    this.optimizer.zeroGrad();
    const { logits, state } = this.model.forward(batch.inputs, batch.T, batch.B, this.carried);
    const loss = crossEntropy(logits, batch.targets);
    const lossValue = loss.item();
    if (!Number.isFinite(lossValue)) this.fail(new NonFiniteError(stepNo, 'loss', `loss = ${lossValue}`));
    loss.backward();
    const params = this.optimizer.params;
    const gradNorm = this.config.clip > 0 ? clipGradNorm(params, this.config.clip) : Math.sqrt(params.reduce((s, p) => s + (p.grad ? getBackend().sumSquares(p.grad) : 0), 0));
    if (!Number.isFinite(gradNorm)) {
      let where = 'gradient norm';
      let detail = `norm = ${gradNorm}`;
      outer: for (const [name, p] of this.params) {
        const g = p.grad;
        if (!g) continue;
        for (let i = 0; i < g.length; i++) {
          if (!Number.isFinite(g[i])) { where = `gradient of ${name}`; detail = `element ${i} = ${g[i]}`; break outer; }
        }
      }
      this.optimizer.zeroGrad();
      this.fail(new NonFiniteError(stepNo, where, detail));
    }
    this.optimizer.step();
    this.optimizer.zeroGrad();
    this.carried = { h: state.h ? state.h.detach() : null, c: state.c ? state.c.detach() : null };
    this.step = stepNo;
    const seconds = (performance.now() - t0) / 1000;
    const tokens = batch.T * batch.B;
    this.trainSeconds += seconds;
    this.tokensSeen += tokens;
    const m: StepMetrics = { step: stepNo, epoch: this.batcher.epochProgress, loss: lossValue, lr, gradNorm, tokens, seconds, tokensPerSecond: tokens / seconds };
    this.history.train.push({ step: stepNo, loss: lossValue, lr, gradNorm, tps: Math.round(m.tokensPerSecond) });
    return m;
  }

  private fail(e: NonFiniteError): never {
    this.failed = e;
    throw e;
  }

  /** Mean loss (nats per token) over a token stream, state carried, no gradient. */
  evaluate(ids: Int32Array, maxTokens = 0): { loss: number; tokens: number } {
    const stream = maxTokens > 0 && ids.length > maxTokens + 1 ? ids.subarray(0, maxTokens + 1) : ids;
    const r = evaluateIds(this.model, stream, this.config.seq, this.config.batch);
    return { loss: r.loss, tokens: r.tokens };
  }

  /** Validation on the held-out split; updates the early-stopping record. */
  validate(maxTokens = this.config.valTokens): ValMetrics {
    const { loss, tokens } = this.evaluate(this.data.val, maxTokens);
    const best = this.bestVal === null || loss < this.bestVal;
    if (best) { this.bestVal = loss; this.badValidations = 0; } else this.badValidations++;
    const last = this.history.val.at(-1);
    if (last && last.step === this.step) last.loss = loss;
    else this.history.val.push({ step: this.step, loss });
    return { step: this.step, loss, bits: LMTrainer.bits(loss), perplexity: Math.exp(loss), tokens, best };
  }

  /** Trains until a budget is met; validates, checkpoints and reports along the way. */
  async run(o: RunOptions = {}): Promise<RunResult> {
    const c = this.config;
    const progress = o.progress ?? silentProgress;
    const started = performance.now();
    const deadline = o.minutes !== undefined ? started + o.minutes * 60_000 : Infinity;
    if (o.steps === undefined && o.epochs === undefined && o.minutes === undefined) {
      throw new RangeError('run: give a budget: steps, epochs or minutes');
    }
    // a cosine schedule decays over decaySteps; without it, over the first step budget given
    // (recorded in the config so that a resumed run continues the same curve), else over the time budget
    if (c.schedule === 'cosine' && c.decaySteps === 0 && o.steps !== undefined) c.decaySteps = o.steps;
    const startStep = this.step;
    const startTokens = this.tokensSeen;
    const startTrainSeconds = this.trainSeconds;
    let stoppedBy: StopReason | null = null;
    let lastVal: ValMetrics | null = null;
    let lastLoss = NaN;
    let checkpoint: string | null = null;
    let emaTps = 0;
    const fraction = (): number => {
      const parts: number[] = [];
      if (o.steps !== undefined) parts.push((this.step - startStep) / Math.max(1, o.steps - startStep));
      if (o.epochs !== undefined) parts.push(this.batcher.epochProgress / o.epochs);
      if (o.minutes !== undefined) parts.push((performance.now() - started) / (o.minutes * 60_000));
      return Math.min(1, Math.max(0, ...parts));
    };
    const bitsLabel = this.vocab.level === 'char' ? 'bpc' : 'bits/token';
    const doValidate = (final: boolean): ValMetrics => {
      const v = this.validate(final ? 0 : c.valTokens);
      lastVal = v;
      progress.log(`step ${this.step}: validation loss ${v.loss.toFixed(4)}, ${v.bits.toFixed(3)} ${bitsLabel}, perplexity ${v.perplexity.toFixed(2)} (${v.tokens} tokens)${v.best ? ' (best)' : ''}`);
      // with early stopping on, the best model so far is kept as a checkpoint of its own in DIR/best
      if (v.best && c.patience > 0 && o.out) progress.log(`step ${this.step}: best checkpoint ${this.save(join(o.out, 'best'), o.saveHooks)}`);
      if (o.callbacks?.onValidation?.(v, this) === 'stop') stoppedBy = 'callback';
      if (c.patience > 0 && this.badValidations >= c.patience) stoppedBy = 'early-stopping';
      return v;
    };
    let savedAt: { step: number; vals: number } | null = null;
    const save = (): void => {
      if (!o.out) return;
      checkpoint = this.save(o.out, o.saveHooks);
      savedAt = { step: this.step, vals: this.history.val.length };
      this.writeReport(o.out, o.reportSampleLength ?? 300);
      progress.log(`step ${this.step}: checkpoint ${checkpoint}`);
      o.callbacks?.onCheckpoint?.(checkpoint, this);
    };
    try {
      while (stoppedBy === null) {
        if (o.steps !== undefined && this.step >= o.steps) { stoppedBy = 'steps'; break; }
        if (o.epochs !== undefined && this.batcher.epochProgress >= o.epochs) { stoppedBy = 'epochs'; break; }
        if (performance.now() >= deadline) { stoppedBy = 'time'; break; }
        if (o.signal?.aborted) { stoppedBy = 'aborted'; break; }
        const timeFraction = o.minutes !== undefined ? (performance.now() - started) / (o.minutes * 60_000) : undefined;
        const m = this.trainStep(timeFraction);
        lastLoss = m.loss;
        emaTps = emaTps === 0 ? m.tokensPerSecond : 0.9 * emaTps + 0.1 * m.tokensPerSecond;
        if (o.callbacks?.onStep?.(m, this) === 'stop') stoppedBy = 'callback';
        const f = fraction();
        const elapsed = (performance.now() - started) / 1000;
        progress.update({
          step: this.step, fraction: f, etaSeconds: f > 0 ? (elapsed / f) * (1 - f) : NaN, loss: m.loss, bits: LMTrainer.bits(m.loss),
          tokensPerSecond: emaTps, lr: m.lr, gradNorm: m.gradNorm, epoch: m.epoch, valBits: (lastVal as ValMetrics | null)?.bits,
        });
        if (c.valEvery > 0 && this.step % c.valEvery === 0) doValidate(false);
        if (o.out && c.checkpointEvery > 0 && this.step % c.checkpointEvery === 0) save();
        if (o.yieldEvery !== false) await new Promise<void>((r) => setImmediate(r));
      }
      // the closing validation always covers the whole held-out split
      const lv = lastVal as ValMetrics | null;
      if (this.step > 0 && !(lv !== null && lv.step === this.step && c.valTokens === 0)) doValidate(true);
      const sa = savedAt as { step: number; vals: number } | null;
      if (o.out && !(sa !== null && sa.step === this.step && sa.vals === this.history.val.length)) save();
    } finally {
      progress.end();
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      step: this.step, stoppedBy: stoppedBy as StopReason, trainLoss: lastLoss, val: lastVal, checkpoint,
      tokensPerSecond: (this.tokensSeen - startTokens) / Math.max(1e-9, this.trainSeconds - startTrainSeconds), seconds,
    };
  }

  // ---- checkpoints ----

  private trainerState(): TrainerState {
    return {
      format: 'rnnkit-lm-trainer', version: 1, step: this.step, batcher: this.batcher.getState(), modelRng: this.modelRng.getState(),
      bestVal: this.bestVal, badValidations: this.badValidations, trainSeconds: this.trainSeconds, tokensSeen: this.tokensSeen,
      history: this.history, dataHash: this.data.hash, dataTokens: this.data.train.length + this.data.val.length,
    };
  }

  /** Writes a checkpoint into the run directory atomically; refuses after a non-finite step or with non-finite weights. */
  save(runDir: string, hooks?: SaveHooks): string {
    if (this.failed) throw new Error(`not saving a checkpoint: ${this.failed.message}`);
    const weights = this.model.stateDict();
    const bad = findNonFinite(weights);
    if (bad) throw new Error(`not saving a checkpoint: weight ${bad} is not finite`);
    const opt = this.optimizer.stateDict();
    const badOpt = findNonFinite(opt.buffers);
    if (badOpt) throw new Error(`not saving a checkpoint: optimizer buffer ${badOpt} is not finite`);
    const carried = new Map<string, NamedTensor>();
    if (this.carried?.h) carried.set('h', { shape: [...this.carried.h.shape], data: this.carried.h.data });
    if (this.carried?.c) carried.set('c', { shape: [...this.carried.c.shape], data: this.carried.c.data });
    const files = {
      [WEIGHTS_FILE]: tensorsBytes(weights, { format: 'pt', producer: 'rnnkit' }),
      'optimizer.safetensors': tensorsBytes(opt.buffers, { step: String(opt.step), hyper: JSON.stringify(opt.hyper), optimizer: this.config.optimizer }),
      'state.safetensors': tensorsBytes(carried, { present: this.carried ? '1' : '0' }),
      'vocab.json': JSON.stringify(this.vocab.toJSON()) + '\n',
      'config.json': JSON.stringify(this.config, null, 2) + '\n',
      'trainer.json': JSON.stringify(this.trainerState()) + '\n',
    };
    return writeCheckpointDir(runDir, this.step, files, hooks);
  }

  /**
   * Rebuilds a trainer from a checkpoint (a run directory or a checkpoint directory) and the text
   * it was trained on. Config fields in `overrides` replace saved ones where that is safe (lr,
   * schedule, validation and checkpoint cadence, patience); the model shape always comes from the
   * checkpoint.
   */
  static resume(path: string, text: string, overrides: Partial<LMConfig> = {}): LMTrainer {
    const dir = resolveCheckpointDir(path);
    const { config, vocab } = loadCheckpointMeta(dir);
    const safe: Array<keyof LMConfig> = ['lr', 'schedule', 'warmup', 'stepSize', 'gamma', 'minLr', 'decaySteps', 'clip', 'valEvery', 'valTokens', 'patience', 'checkpointEvery'];
    const merged: LMConfig = { ...config };
    for (const k of safe) if (overrides[k] !== undefined) (merged as unknown as Record<string, unknown>)[k] = overrides[k];
    // the weights are read (and checked against config.json) before the model is allocated
    const weights = readWeights(dir, merged, vocab);
    const data = prepareData(text, merged, vocab);
    const trainer = inFile(join(dir, 'config.json'), () => new LMTrainer(merged, data));
    const statePath = join(dir, 'trainer.json');
    const st = readJsonFile<TrainerState>(dir, 'trainer.json');
    inFile(statePath, () => checkTrainerState(st));
    if (st.dataHash !== data.hash) {
      throw new Error(`${dir} was trained on other text (hash ${st.dataHash}, this text ${data.hash}); resume with the same --data or --dataset`);
    }
    inFile(join(dir, WEIGHTS_FILE), () => trainer.model.loadStateDict(weights));
    const optPath = join(dir, 'optimizer.safetensors');
    const opt = readTensorsFile(dir, 'optimizer.safetensors');
    inFile(optPath, () => {
      const step = Number(opt.metadata.step ?? 0);
      if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`metadata step must be a non-negative integer, received ${JSON.stringify(opt.metadata.step)}`);
      const hyper = JSON.parse(opt.metadata.hyper ?? '{}') as unknown;
      if (typeof hyper !== 'object' || hyper === null || Array.isArray(hyper)) throw new RangeError(`metadata hyper must be a JSON object, received ${describeValue(hyper)}`);
      const lr = (hyper as { lr?: unknown }).lr;
      if (lr !== undefined && !(typeof lr === 'number' && lr > 0 && Number.isFinite(lr))) throw new RangeError(`metadata hyper.lr must be a positive number, received ${describeValue(lr)}`);
      const bad = findNonFinite(opt.tensors);
      if (bad) throw new RangeError(`buffer ${bad} is not finite`);
      trainer.optimizer.loadStateDict({ step, buffers: opt.tensors, hyper: hyper as Record<string, number> });
    });
    const carriedPath = join(dir, 'state.safetensors');
    const carried = readTensorsFile(dir, 'state.safetensors');
    if (carried.metadata.present === '1') {
      inFile(carriedPath, () => {
        const R = merged.hidden;
        const expected = [merged.layers, merged.batch, R];
        const t = (k: string, needed: boolean) => {
          const v = carried.tensors.get(k);
          if (!v) { if (needed) throw new RangeError(`the carried state "${k}" is missing`); return null; }
          if (v.shape.length !== 3 || v.shape.some((d, i) => d !== expected[i])) throw new RangeError(`the carried state "${k}" has shape ${JSON.stringify(v.shape)}, expected ${JSON.stringify(expected)}`);
          const bad = findNonFinite(new Map([[k, v]]));
          if (bad) throw new RangeError(`the carried state ${bad} is not finite`);
          return new Tensor(v.data, v.shape);
        };
        trainer.carried = { h: t('h', true), c: t('c', merged.cell === 'lstm') };
      });
    }
    inFile(statePath, () => {
      trainer.batcher.setState(st.batcher);
      trainer.modelRng.setState(st.modelRng);
    });
    trainer.step = st.step;
    trainer.bestVal = st.bestVal;
    trainer.badValidations = st.badValidations;
    trainer.trainSeconds = st.trainSeconds;
    trainer.tokensSeen = st.tokensSeen;
    trainer.history = st.history;
    return trainer;
  }

  /** curves.svg and report.html in the run directory (written aside and renamed). */
  writeReport(runDir: string, sampleLength = 300): void {
    const bitsLabel = this.vocab.level === 'char' ? 'bits per character' : 'bits per token';
    const train = smooth(this.history.train.map((p) => ({ step: p.step, value: LMTrainer.bits(p.loss) })), 20);
    const val = this.history.val.map((p) => ({ step: p.step, value: LMTrainer.bits(p.loss) }));
    const svg = curvesSvg(train, val, { title: `${this.config.cell.toUpperCase()} language model`, yLabel: bitsLabel });
    const samples: string[] = [];
    if (sampleLength > 0) {
      const gen = new TextGenerator(this.model, this.vocab);
      const prime = this.vocab.level === 'char' ? 'The ' : 'The';
      samples.push(gen.generate(prime, sampleLength, { temperature: 0.8 }, 1));
    }
    const lastVal = this.history.val.at(-1);
    const recent = this.history.train.slice(-20);
    const summary: Array<[string, string]> = [
      ['step', String(this.step)],
      ['epochs', this.batcher.epochProgress.toFixed(3)],
      ['training loss (last 20 steps)', recent.length ? (recent.reduce((s, p) => s + p.loss, 0) / recent.length).toFixed(4) : '-'],
      [`validation ${bitsLabel}`, lastVal ? LMTrainer.bits(lastVal.loss).toFixed(4) : '-'],
      ['validation perplexity', lastVal ? Math.exp(lastVal.loss).toFixed(3) : '-'],
      ['training time', `${this.trainSeconds.toFixed(1)} s`],
      ['tokens/s (mean)', this.trainSeconds > 0 ? Math.round(this.tokensSeen / this.trainSeconds).toString() : '-'],
      ['parameters', String(this.model.parameterCount())],
      ['vocabulary', `${this.vocab.size} ${this.vocab.level} tokens`],
      ['backend', `${getBackend().name} (${getBackend().info().isa}, ${getBackend().info().threads} threads)`],
    ];
    mkdirSync(runDir, { recursive: true });
    const html = reportHtml({ title: `rnnkit run: ${this.config.source || 'text'}`, svg, summary, config: { ...this.config }, samples });
    for (const [file, content] of [['curves.svg', svg], ['report.html', html]] as const) {
      const tmp = join(runDir, `.${file}.tmp-${process.pid}`);
      writeFileSync(tmp, content);
      renameSync(tmp, join(runDir, file)); // replaces the old file atomically (POSIX)
    }
  }
}

/** Runs fn; an error it throws gets the file it is about in front of its message (same class). */
function inFile<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error && !e.message.startsWith(path)) e.message = `${path}: ${e.message}`;
    throw e;
  }
}

function describeValue(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** trainer.json: every field the trainer takes over, of the right type (the messages name the field). */
function checkTrainerState(st: TrainerState): void {
  if (typeof st !== 'object' || st === null || Array.isArray(st)) throw new RangeError(`expected a JSON object, received ${describeValue(st)}`);
  if (st.format !== 'rnnkit-lm-trainer') throw new RangeError('not an rnnkit trainer state (format is not "rnnkit-lm-trainer")');
  const count = (k: 'step' | 'badValidations') => {
    if (!Number.isSafeInteger(st[k]) || st[k] < 0) throw new RangeError(`${k} must be a non-negative integer, received ${describeValue(st[k])}`);
  };
  count('step');
  count('badValidations');
  for (const k of ['trainSeconds', 'tokensSeen'] as const) {
    if (typeof st[k] !== 'number' || !(st[k] >= 0) || !Number.isFinite(st[k])) throw new RangeError(`${k} must be a non-negative number, received ${describeValue(st[k])}`);
  }
  if (st.bestVal !== null && !(typeof st.bestVal === 'number' && Number.isFinite(st.bestVal))) throw new RangeError(`bestVal must be a number or null, received ${describeValue(st.bestVal)}`);
  if (typeof st.dataHash !== 'string') throw new RangeError(`dataHash must be a string, received ${describeValue(st.dataHash)}`);
  if (typeof st.batcher !== 'object' || st.batcher === null) throw new RangeError(`batcher must be an object, received ${describeValue(st.batcher)}`);
  const h = st.history;
  if (typeof h !== 'object' || h === null || !Array.isArray(h.train) || !Array.isArray(h.val)) throw new RangeError(`history must be { train: [...], val: [...] }, received ${describeValue(h)}`);
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  h.train.forEach((p, i) => {
    if (typeof p !== 'object' || p === null || !num(p.step) || !num(p.loss) || !num(p.lr) || !num(p.gradNorm) || !num(p.tps)) {
      throw new RangeError(`history.train[${i}] must hold numbers step, loss, lr, gradNorm and tps, received ${describeValue(p)}`);
    }
  });
  h.val.forEach((p, i) => {
    if (typeof p !== 'object' || p === null || !num(p.step) || !num(p.loss)) throw new RangeError(`history.val[${i}] must hold numbers step and loss, received ${describeValue(p)}`);
  });
}

/**
 * Reads weights.safetensors (memory bounded by the file) and checks it against config.json and
 * vocab.json before any model is allocated: a config that lies about the size is refused here.
 */
function readWeights(dir: string, config: LMConfig, vocab: Vocabulary): Map<string, NamedTensor> {
  const path = join(dir, WEIGHTS_FILE);
  const weights = readTensorsFile(dir, WEIGHTS_FILE).tensors;
  inFile(path, () => {
    const gates = config.cell === 'lstm' ? 4 : config.cell === 'gru' ? 3 : 1;
    const want: Array<[string, number[]]> = [
      ['embedding.weight', [vocab.size, config.embed]],
      [`${config.cell}.weight_hh_l0`, [gates * config.hidden, config.hidden]],
      [`${config.cell}.weight_hh_l${config.layers - 1}`, [gates * config.hidden, config.hidden]],
    ];
    for (const [name, shape] of want) {
      const t = weights.get(name);
      if (!t) throw new RangeError(`has no ${name}, which config.json (${config.layers}-layer ${config.cell}) needs`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new RangeError(`${name} has shape ${JSON.stringify(t.shape)}, but config.json and vocab.json give ${JSON.stringify(shape)}`);
      }
    }
    if (weights.has(`${config.cell}.weight_hh_l${config.layers}`)) throw new RangeError(`has more layers than config.json's ${config.layers}`);
    const bad = findNonFinite(weights);
    if (bad) throw new RangeError(`weight ${bad} is not finite`);
  });
  return weights;
}

/** Reads config and vocabulary of a checkpoint (a run directory or a checkpoint directory). */
export function loadCheckpointMeta(path: string): { dir: string; config: LMConfig; vocab: Vocabulary; step: number } {
  const dir = resolveCheckpointDir(path);
  const saved = readJsonFile<Partial<LMConfig>>(dir, 'config.json');
  const config = inFile(join(dir, 'config.json'), () => {
    if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) throw new RangeError(`expected a JSON object, received ${describeValue(saved)}`);
    const c = { ...DEFAULT_CONFIG, ...saved };
    checkConfig(c);
    return c;
  });
  const vocabJson = readJsonFile(dir, 'vocab.json');
  const vocab = inFile(join(dir, 'vocab.json'), () => Vocabulary.fromJSON(vocabJson));
  if (vocab.level !== config.level) throw new Error(`${join(dir, 'vocab.json')}: a ${vocab.level}-level vocabulary, but config.json says level ${config.level}`);
  const st = existsSync(join(dir, 'trainer.json')) ? readJsonFile<{ step: number }>(dir, 'trainer.json') : { step: 0 };
  if (typeof st !== 'object' || st === null || !Number.isSafeInteger(st.step) || st.step < 0) {
    throw new Error(`${join(dir, 'trainer.json')}: step must be a non-negative integer, received ${describeValue((st as { step?: unknown } | null)?.step)}`);
  }
  return { dir, config, vocab, step: st.step };
}

/** Loads a trained model (for sampling and evaluation) from a checkpoint. */
export function loadLanguageModel(path: string): { model: LanguageModel; vocab: Vocabulary; config: LMConfig; step: number; dir: string } {
  const { dir, config, vocab, step } = loadCheckpointMeta(path);
  const weights = readWeights(dir, config, vocab);
  const model = new LanguageModel({
    vocabSize: vocab.size, embeddingDim: config.embed, hiddenSize: config.hidden, numLayers: config.layers, cell: config.cell, dropout: config.dropout, rng: new Rng(0),
  });
  inFile(join(dir, WEIGHTS_FILE), () => model.loadStateDict(weights));
  model.eval();
  return { model, vocab, config, step, dir };
}

/** Mean loss of a model over a token stream (state carried, no gradient); counts <unk> tokens. */
export function evaluateIds(model: LanguageModel, ids: Int32Array, seq = 100, batch = 32): { loss: number; bits: number; perplexity: number; tokens: number; unknown: number } {
  if (ids.length < 2) throw new Error('the text is too short to evaluate (fewer than 2 tokens)');
  let unknown = 0;
  for (const id of ids) if (id === UNK_ID) unknown++;
  const wasTraining = model.training;
  model.eval();
  try {
    return noGrad(() => {
      let total = 0;
      let count = 0;
      let state: { h: Tensor | null; c: Tensor | null } | null = null;
      for (const b of evalBatches(ids, seq, batch)) {
        const { logits, state: next } = model.forward(b.inputs, b.T, b.B, state);
        total += crossEntropy(logits, b.targets, { reduction: 'sum' }).item();
        count += b.T * b.B;
        state = next;
      }
      const loss = total / count;
      return { loss, bits: loss / Math.LN2, perplexity: Math.exp(loss), tokens: count, unknown };
    });
  } finally {
    model.train(wasTraining);
  }
}

/** Mean loss of a model over a text. */
export function evaluateText(model: LanguageModel, vocab: Vocabulary, text: string, seq = 100, batch = 32): ReturnType<typeof evaluateIds> {
  return evaluateIds(model, vocab.encode(text), seq, batch);
}
