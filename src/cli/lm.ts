// The language-model commands of the `rnnkit` CLI: train, sample, eval, start (what `npm start` runs).
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { type Command, Option } from 'commander';
import type { MatmulPrecision } from '../backends/backend.js';
import { LAYER_NAMES, type LayerName } from '../backends/cells.js';
import { getBackend, type BackendName } from '../backends/index.js';
import { Rng } from '../core/random.js';
import { hasCheckpoint, resolveCheckpointDir } from '../lm/checkpoint.js';
import { datasetPath, readText } from '../lm/data.js';
import { TextGenerator, checkSamplingOptions, type SamplingOptions } from '../lm/generate.js';
import { ConsoleProgress } from '../lm/progress.js';
import { chooseBackend, runTraining, type TrainJob } from '../lm/run.js';
import { evaluateIds, loadLanguageModel, type LMConfig } from '../lm/trainer.js';
import {
  CliError, type Io, applyBackend, backendOption, fraction, matmulPrecisionOption, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber, probability,
} from './options.js';

interface TrainFlags {
  data?: string;
  dataset?: string;
  level?: 'char' | 'word';
  maxVocab?: number;
  cell?: LayerName;
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

function trainCommand(f: TrainFlags, io: Io): Promise<number> {
  return train(f, io, { defaultMinutes: 10, title: 'training', samples: f.samples ?? 1 });
}

interface StartFlags {
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
function startCommand(f: StartFlags, io: Io): Promise<number> {
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

interface SampleFlags extends SamplingOptions {
  prime?: string;
  length?: number;
  seed?: number;
  backend?: BackendName | 'auto';
}

function sampleCommand(dir: string, f: SampleFlags, io: Io): number {
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

interface EvalFlags {
  data?: string;
  dataset?: string;
  seq?: number;
  batch?: number;
  heldOut?: boolean;
}

function evalCommand(dir: string, f: EvalFlags, io: Io): number {
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

/** The language-model commands: train, sample, eval, start. */
export function addLanguageModelCommands(program: Command, io: Io, setCode: (c: number) => void): void {
  program.command('train')
    .summary('train a language model (--data FILE or --dataset moby-dick)')
    .description('Train a language model on a text file or a bundled dataset, with checkpoints, curves and a report in --out.')
    .option('--data <file>', 'UTF-8 text file to train on')
    .addOption(new Option('--dataset <name>', 'bundled dataset').choices(['moby-dick']))
    .addOption(new Option('--level <level>', 'tokens: characters or words (default char)').choices(['char', 'word']))
    .option('--max-vocab <n>', 'keep the n most frequent tokens (default: all chars, 10000 words)', positiveInt)
    .addOption(new Option('--cell <cell>', 'recurrent cell (default lstm)').choices(LAYER_NAMES))
    .option('--layers <n>', 'recurrent layers (default 2)', positiveInt)
    .option('--hidden <n>', 'hidden size (default 256)', positiveInt)
    .option('--embed <n>', 'embedding size (default 64)', positiveInt)
    .option('--dropout <p>', 'dropout on the embeddings, between recurrent layers and on their output (default 0)', fraction)
    .option('--seq <n>', 'truncated-BPTT length (default 100)', positiveInt)
    .option('--batch <n>', 'batch size (default 32)', positiveInt)
    .option('--lr <x>', 'learning rate (default 0.002)', positiveNumber)
    .addOption(new Option('--optimizer <name>', 'optimizer (default adam)').choices(['adam', 'adamw', 'sgd']))
    .option('--weight-decay <x>', 'weight decay (default 0)', nonNegativeNumber)
    .option('--clip <x>', 'clip the gradient norm to this, 0 = off (default 1)', nonNegativeNumber)
    .addOption(new Option('--schedule <kind>', 'learning-rate schedule (default constant)').choices(['constant', 'step', 'cosine']))
    .option('--warmup <n>', 'warm-up steps (default 0)', nonNegativeInt)
    .option('--step-size <n>', 'step schedule: multiply the rate by --gamma every n steps (default 1000)', positiveInt)
    .option('--gamma <x>', 'step schedule: decay factor (default 0.5)', positiveNumber)
    .option('--min-lr <x>', 'cosine schedule: the rate it decays to (default 0)', nonNegativeNumber)
    .option('--decay-steps <n>', 'cosine schedule: steps to decay over (default: --steps, else the time budget)', positiveInt)
    .option('--minutes <x>', 'time budget of this run (default 10 when no --steps/--epochs)', positiveNumber)
    .option('--steps <n>', 'train until this step (counting the steps of a resumed run)', positiveInt)
    .option('--epochs <x>', 'train until this many epochs', positiveNumber)
    .option('--val-every <n>', 'validate every n steps, 0 = only at the end (default 200)', nonNegativeInt)
    .option('--val-tokens <n>', 'held-out tokens for the periodic validations, 0 = all (default 0)', nonNegativeInt)
    .option('--patience <n>', 'early stopping after n validations without improvement, 0 = off', nonNegativeInt)
    .option('--checkpoint-every <n>', 'save every n steps, 0 = only at the end (default 500)', nonNegativeInt)
    .option('--seed <n>', 'random seed (default 1)', nonNegativeInt)
    .addOption(backendOption())
    .option('--threads <n>', 'threads of the native backend', positiveInt)
    .addOption(matmulPrecisionOption())
    .option('--out <dir>', 'run directory (default runs/<data name>)')
    .option('--resume <dir>', 'continue the run in this directory (exactly where it stopped)')
    .option('--samples <n>', 'samples printed at the end (default 1)', nonNegativeInt)
    .option('--sample-length <n>', 'tokens per printed sample (default 300)', positiveInt)
    .option('--no-progress', 'no progress bar or progress lines')
    .action(async (flags) => { setCode(await trainCommand(flags, io)); });
  program.command('sample')
    .summary('generate text from a trained model')
    .description('Generate text from a trained model (a run directory or a checkpoint directory), streamed token by token.')
    .argument('<dir>', 'run or checkpoint directory')
    .option('--prime <text>', 'text the generation continues', '')
    .option('--temperature <t>', 'softmax temperature, 0 = greedy (default 1)', nonNegativeNumber)
    .option('--top-k <k>', 'sample among the k most likely tokens, 0 = all', nonNegativeInt)
    .option('--top-p <p>', 'sample from the smallest set of tokens with probability >= p', probability)
    .option('--length <n>', 'tokens to generate (default 500)', positiveInt)
    .option('--seed <n>', 'random seed (default 1)', nonNegativeInt)
    .addOption(backendOption())
    .addOption(matmulPrecisionOption())
    .action((dir: string, flags) => { applyBackend(flags.backend, flags.matmulPrecision); setCode(sampleCommand(dir, flags, io)); });
  program.command('eval')
    .summary('bits per character (or perplexity) of a model on a text')
    .description('Bits per character (char models) or perplexity of a trained model on a text.')
    .argument('<dir>', 'run or checkpoint directory')
    .option('--data <file>', 'UTF-8 text file to evaluate on')
    .addOption(new Option('--dataset <name>', 'bundled dataset').choices(['moby-dick']))
    .option('--held-out', 'only the held-out part (the last 5%), as in training')
    .option('--seq <n>', 'window length (default: the training --seq)', positiveInt)
    .option('--batch <n>', 'lanes read in parallel (default: the training --batch)', positiveInt)
    .addOption(backendOption())
    .addOption(matmulPrecisionOption())
    .action((dir: string, flags) => { applyBackend(flags.backend, flags.matmulPrecision); setCode(evalCommand(dir, flags, io)); });
  program.command('start')
    .summary('what `npm start` runs: a character LSTM on Moby Dick, resumable')
    .description('What `npm start` runs: train a 2-layer character LSTM on Moby Dick for a few minutes (RNNKIT_START_MINUTES, default 3), '
      + 'save it in runs/moby-dick, print held-out bits per character and samples. Running it again resumes.')
    .option('--minutes <x>', 'time budget (default RNNKIT_START_MINUTES or 3)', positiveNumber)
    .option('--steps <n>', 'train this many more steps', positiveInt)
    .option('--out <dir>', 'run directory (default RNNKIT_START_OUT or runs/moby-dick)')
    .addOption(backendOption())
    .option('--threads <n>', 'threads of the native backend', positiveInt)
    .addOption(matmulPrecisionOption())
    .option('--samples <n>', 'samples printed at the end (default 3)', nonNegativeInt)
    .option('--no-progress', 'no progress bar or progress lines')
    .action(async (flags) => { setCode(await startCommand(flags, io)); });
}
