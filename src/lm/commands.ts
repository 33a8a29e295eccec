// The language-model commands of the `rnnkit` CLI: train, sample, eval, start (what `npm start` runs).
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { MatmulPrecision } from '../backends/backend.js';
import { getBackend, type BackendName } from '../backends/index.js';
import { Rng } from '../random.js';
import { hasCheckpoint, resolveCheckpointDir } from './checkpoint.js';
import { datasetPath, readText } from './data.js';
import { TextGenerator, checkSamplingOptions, type SamplingOptions } from './generate.js';
import { ConsoleProgress } from './progress.js';
import { chooseBackend, runTraining, type TrainJob } from './run.js';
import { evaluateIds, loadLanguageModel, type LMConfig } from './trainer.js';

export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** Progress output (stderr in the CLI); tests pass a plain stream. */
  progressStream?: { write(s: string): unknown; isTTY?: boolean; columns?: number };
}

/** A problem with the command line or its files: one line on stderr, exit code 2. */
export class CliError extends Error {}

export interface TrainFlags {
  data?: string;
  dataset?: string;
  level?: 'char' | 'word';
  maxVocab?: number;
  cell?: 'lstm' | 'gru' | 'rnn';
  layers?: number;
  hidden?: number;
  embed?: number;
  dropout?: number;
  seq?: number;
  batch?: number;
  lr?: number;
  optimizer?: 'adam' | 'adamw' | 'sgd';
  weightDecay?: number;
  clip?: number;
  schedule?: 'constant' | 'step' | 'cosine';
  warmup?: number;
  stepSize?: number;
  gamma?: number;
  minLr?: number;
  decaySteps?: number;
  minutes?: number;
  steps?: number;
  epochs?: number;
  valEvery?: number;
  valTokens?: number;
  patience?: number;
  checkpointEvery?: number;
  seed?: number;
  backend?: BackendName | 'auto';
  threads?: number;
  matmulPrecision?: MatmulPrecision;
  out?: string;
  resume?: string;
  samples?: number;
  sampleLength?: number;
  progress?: boolean;
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');

function configFrom(f: TrainFlags): Partial<LMConfig> {
  const c: Partial<LMConfig> = {};
  const set = <K extends keyof LMConfig>(k: K, v: LMConfig[K] | undefined) => { if (v !== undefined) c[k] = v; };
  set('level', f.level); set('cell', f.cell); set('layers', f.layers); set('hidden', f.hidden); set('embed', f.embed);
  set('dropout', f.dropout); set('seq', f.seq); set('batch', f.batch); set('lr', f.lr); set('optimizer', f.optimizer);
  set('weightDecay', f.weightDecay); set('clip', f.clip); set('schedule', f.schedule); set('warmup', f.warmup);
  set('stepSize', f.stepSize); set('gamma', f.gamma); set('minLr', f.minLr); set('decaySteps', f.decaySteps);
  set('valEvery', f.valEvery); set('valTokens', f.valTokens); set('patience', f.patience); set('checkpointEvery', f.checkpointEvery);
  set('seed', f.seed); set('maxVocab', f.maxVocab);
  return c;
}

function checkDataFlags(f: { data?: string; dataset?: string }): void {
  if (f.data !== undefined && f.dataset !== undefined) throw new CliError('give either --data FILE or --dataset NAME, not both');
  if (f.data !== undefined) {
    if (!existsSync(f.data)) throw new CliError(`--data ${f.data}: no such file`);
    try { readText(f.data); } catch (e) { throw new CliError(`--data ${(e as Error).message}`); }
  }
  if (f.dataset !== undefined) {
    try { datasetPath(f.dataset); } catch (e) { throw new CliError(`--dataset: ${(e as Error).message}`); }
  }
}

function defaultOut(f: TrainFlags): string {
  const name = f.dataset ?? (f.data ? basename(f.data, extname(f.data)) : 'run');
  return join('runs', name.replace(/[^\w.-]+/g, '_') || 'run');
}

async function train(f: TrainFlags, io: Io, opts: { defaultMinutes: number; title: string; samples: number }): Promise<number> {
  checkDataFlags(f);
  if (f.resume !== undefined) {
    try { resolveCheckpointDir(f.resume); } catch (e) { throw new CliError(`--resume: ${(e as Error).message}`); }
  }
  const out = f.out ?? (f.resume ? undefined : defaultOut(f));
  if (out !== undefined && f.resume === undefined && hasCheckpoint(out)) {
    throw new CliError(`${out} already holds a checkpoint: continue it with --resume ${out}, or choose another --out`);
  }
  if (f.resume === undefined && f.data === undefined && f.dataset === undefined) throw new CliError('no training text: give --data FILE or --dataset NAME (e.g. --dataset moby-dick)');
  const budget = f.steps === undefined && f.epochs === undefined && f.minutes === undefined ? { minutes: opts.defaultMinutes } : {};
  const job: TrainJob = {
    config: configFrom(f), data: f.data, dataset: f.dataset, resume: f.resume, out, steps: f.steps, epochs: f.epochs, minutes: f.minutes,
    backend: f.backend, threads: f.threads, matmulPrecision: f.matmulPrecision, ...budget,
  };
  const progress = f.progress === false ? undefined : new ConsoleProgress({ stream: io.progressStream ?? process.stderr });
  const abort = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      io.err('\nrnnkit: stopping after this step (validating and saving the checkpoint); press Ctrl-C again to quit at once\n');
      abort.abort();
    } else {
      process.exit(130);
    }
  };
  try {
    chooseBackend(f.backend, f.threads, f.matmulPrecision);
  } catch (e) {
    throw new CliError(`--backend ${f.backend}: ${(e as Error).message}`);
  }
  job.backend = undefined;
  job.threads = undefined;
  job.matmulPrecision = undefined;
  process.on('SIGINT', onSigint);
  const budgetText = [job.steps !== undefined ? `until step ${job.steps}` : '', job.epochs !== undefined ? `${job.epochs} epochs` : '', job.minutes !== undefined ? `${job.minutes} minutes` : ''].filter(Boolean).join(', ');
  let announced = false;
  try {
    const r = await runTraining(job, {
      progress,
      signal: abort.signal,
      callbacks: {
        onStep: (_m, tr) => {
          if (!announced) {
            announced = true;
            const b = getBackend().info();
            io.err(`${opts.title}: ${tr.config.layers}-layer ${tr.config.cell.toUpperCase()} (hidden ${tr.config.hidden}, embedding ${tr.config.embed}), `
              + `${fmtInt(tr.model.parameterCount())} parameters, ${tr.vocab.size} ${tr.vocab.level} tokens; seq ${tr.config.seq} x batch ${tr.config.batch}; `
              + `${getBackend().name} backend (${b.isa}, ${b.threads} thread${b.threads === 1 ? '' : 's'}${b.matmul === 'bf16' ? ', bf16 matmul' : ''}); ${budgetText}\n`);
            if (getBackend().name === 'reference') io.err('note: the reference backend is plain TypeScript and slow; `rnnkit doctor` says why native/wasm did not load\n');
          }
        },
      },
    });
    const tr = r.trainer;
    const unit = tr.vocab.level === 'char' ? 'bits per character' : 'bits per token';
    if (r.resumedFrom !== null) io.out(`resumed from step ${r.resumedFrom}\n`);
    io.out(`stopped at step ${r.step} (${r.stoppedBy}) after ${r.seconds.toFixed(1)} s\n`);
    if (r.val) io.out(`held-out (last ${Math.round(tr.config.valFraction * 100)}%): ${r.val.bits.toFixed(3)} ${unit}, perplexity ${r.val.perplexity.toFixed(2)}, over ${fmtInt(r.val.tokens)} tokens\n`);
    io.out(`speed: ${fmtInt(r.tokensPerSecond)} tokens/s (${r.backend})\n`);
    if (r.checkpoint) io.out(`checkpoint: ${r.checkpoint}\nreport: ${join(r.out!, 'report.html')} (curves: ${join(r.out!, 'curves.svg')})\n`);
    if (opts.samples > 0) {
      const gen = new TextGenerator(tr.model, tr.vocab);
      for (let i = 0; i < opts.samples; i++) {
        const prime = tr.vocab.level === 'char' ? ['The ', 'Whale', 'Call me'][i % 3] : 'The';
        io.out(`\n--- sample ${i + 1} (temperature 0.8, seed ${i + 1}) ---\n${gen.generate(prime, f.sampleLength ?? 300, { temperature: 0.8 }, i + 1)}\n`);
      }
    }
    if (r.checkpoint && r.out) io.out(`\ncontinue training: rnnkit train --resume ${r.out}   sample: rnnkit sample ${r.out}\n`);
    return r.stoppedBy === 'aborted' ? 130 : 0;
  } catch (e) {
    // a checkpoint or report that cannot be written (a full disk): one line, the previous checkpoint kept
    if ((e as Error).name === 'NonFiniteError' || (e as Error).name === 'CheckpointWriteError' || typeof (e as { code?: unknown }).code === 'string') {
      io.err(`rnnkit: ${(e as Error).message}\n`);
      return 1;
    }
    // before the first step, an error is about the flags, the files or the checkpoint: one line
    if (!announced && e instanceof Error) throw new CliError(e.message);
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export function trainCommand(f: TrainFlags, io: Io): Promise<number> {
  return train(f, io, { defaultMinutes: 10, title: 'training', samples: f.samples ?? 1 });
}

export interface StartFlags {
  minutes?: number;
  steps?: number;
  out?: string;
  backend?: BackendName | 'auto';
  threads?: number;
  matmulPrecision?: MatmulPrecision;
  samples?: number;
  progress?: boolean;
}

/** `npm start`: a 2-layer character LSTM on Moby Dick for a few minutes; a second run resumes. */
export function startCommand(f: StartFlags, io: Io): Promise<number> {
  const out = f.out ?? process.env.RNNKIT_START_OUT ?? join('runs', 'moby-dick');
  const envMinutes = process.env.RNNKIT_START_MINUTES;
  let minutes = f.minutes;
  if (minutes === undefined && envMinutes !== undefined) {
    minutes = Number(envMinutes);
    if (!(minutes > 0)) throw new CliError(`RNNKIT_START_MINUTES must be a positive number, received '${envMinutes}'`);
  }
  if (minutes === undefined && f.steps === undefined) minutes = 3;
  const resume = hasCheckpoint(out);
  // a demo of training speed: bf16 products where the CPU has them (unless the user chose)
  const matmulPrecision = f.matmulPrecision ?? (process.env.RNNKIT_MATMUL_PRECISION ? undefined : 'medium');
  io.err(resume
    ? `rnnkit start: continuing the run in ${out} (delete that directory to start over)\n`
    : `rnnkit start: training a character-level LSTM on Moby Dick into ${out}\n`);
  const flags: TrainFlags = resume
    ? { resume: out, out, minutes, steps: f.steps, backend: f.backend, threads: f.threads, matmulPrecision, progress: f.progress }
    : {
      dataset: 'moby-dick', out, cell: 'lstm', layers: 2, hidden: 256, embed: 64, seq: 100, batch: 32, clip: 1,
      // the recipe tuned for a budget of minutes (bench/lm-charlm.sh): a high peak rate, cosine decay over the budget
      lr: 1.5e-2, schedule: 'cosine', warmup: 100,
      valEvery: 100, checkpointEvery: 100, minutes, steps: f.steps, backend: f.backend, threads: f.threads, matmulPrecision, progress: f.progress,
    };
  if (resume && f.steps !== undefined) {
    // --steps counts from where the run is
    flags.steps = loadLanguageModel(out).step + f.steps;
  }
  return train(flags, io, { defaultMinutes: 3, title: 'rnnkit start', samples: f.samples ?? 3 });
}

export interface SampleFlags extends SamplingOptions {
  prime?: string;
  length?: number;
  seed?: number;
  backend?: BackendName | 'auto';
}

export function sampleCommand(dir: string, f: SampleFlags, io: Io): number {
  try { checkSamplingOptions(f); } catch (e) { throw new CliError((e as Error).message); }
  let loaded;
  try { loaded = loadLanguageModel(dir); } catch (e) { throw new CliError((e as Error).message); }
  const gen = new TextGenerator(loaded.model, loaded.vocab);
  const prime = f.prime ?? '';
  gen.prime(prime);
  io.out(prime);
  for (const piece of gen.stream(f.length ?? 500, { temperature: f.temperature, topK: f.topK, topP: f.topP }, new Rng(f.seed ?? 1))) io.out(piece);
  io.out('\n');
  return 0;
}

export interface EvalFlags {
  data?: string;
  dataset?: string;
  seq?: number;
  batch?: number;
  heldOut?: boolean;
}

export function evalCommand(dir: string, f: EvalFlags, io: Io): number {
  if (f.data === undefined && f.dataset === undefined) throw new CliError('eval needs --data FILE (or --dataset NAME)');
  checkDataFlags(f);
  let loaded;
  try { loaded = loadLanguageModel(dir); } catch (e) { throw new CliError((e as Error).message); }
  const text = f.data !== undefined ? readText(f.data) : readText(datasetPath(f.dataset!));
  let what = f.data ?? `dataset ${f.dataset}`;
  let ids = loaded.vocab.encode(text);
  if (f.heldOut) {
    // the same split as training: the last valFraction of the token stream
    ids = ids.subarray(ids.length - Math.max(2, Math.round(ids.length * loaded.config.valFraction)));
    what += ` (held-out last ${Math.round(loaded.config.valFraction * 100)}%)`;
  }
  if (ids.length < 2) throw new CliError(`${what}: too short to evaluate (fewer than 2 tokens)`);
  const r = evaluateIds(loaded.model, ids, f.seq ?? loaded.config.seq, f.batch ?? loaded.config.batch);
  const unit = loaded.vocab.level === 'char' ? 'bits per character' : 'bits per token';
  io.out(`${what}: ${r.bits.toFixed(4)} ${unit}, perplexity ${r.perplexity.toFixed(3)}, loss ${r.loss.toFixed(4)} nats over ${fmtInt(r.tokens)} tokens`
    + `${r.unknown ? ` (${fmtInt(r.unknown)} unknown to the vocabulary)` : ''}\n`);
  return 0;
}
