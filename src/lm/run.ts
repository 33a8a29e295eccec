// One training job from start to end, as the CLI, `npm start` and the worker run it: read the text,
// build or restore the trainer, choose the backend, train, validate, checkpoint, report.
import type { MatmulPrecision } from '../backends/backend.js';
import { getBackend, setBackend, setMatmulPrecision, type BackendName } from '../backends/index.js';
import { datasetPath, readText } from './data.js';
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LATEST, hasCheckpoint, resolveCheckpointDir } from './checkpoint.js';
import type { ProgressSink } from './progress.js';
import { DEFAULT_CONFIG, LMTrainer, loadCheckpointMeta, prepareData, type LMConfig, type RunResult, type TrainCallbacks } from './trainer.js';

/**
 * A training job as the CLI and `trainInWorker` describe it: the text (or dataset), the
 * configuration, the budget and the run directory.
 */
export interface TrainJob {
  /** Model and training settings (unset fields: DEFAULT_CONFIG, or the checkpoint's when resuming). */
  config?: Partial<LMConfig>;
  /** The text itself, or a file, or a bundled dataset name ('moby-dick'). */
  text?: string;
  data?: string;
  dataset?: string;
  /** Resume from this run (or checkpoint) directory. */
  resume?: string;
  /** Run directory for checkpoints and the report (default: the resumed run's directory). */
  out?: string;
  steps?: number;
  epochs?: number;
  minutes?: number;
  backend?: BackendName | 'auto';
  threads?: number;
  /** 'medium' permits bf16 matrix products (see setMatmulPrecision); unset: as it is. */
  matmulPrecision?: MatmulPrecision;
  /** Tokens of sample text in the report at each checkpoint (default 300). */
  reportSampleLength?: number;
}

/** Progress display, callbacks and abort signal of a training job. */
export interface JobHooks {
  progress?: ProgressSink;
  callbacks?: TrainCallbacks;
  signal?: AbortSignal;
}

/**
 * The result of a training job: the run result, the step it resumed from, the backend and the run
 * directory.
 */
export interface JobResult extends RunResult {
  resumedFrom: number | null;
  backend: string;
  out: string | null;
}

/** Resolves the text of a job and the `source` string recorded in the config. */
export function jobText(job: TrainJob, savedSource?: string): { text: string; source: string } {
  if (job.text !== undefined) return { text: job.text, source: job.data ?? 'text' };
  if (job.data !== undefined) return { text: readText(job.data), source: job.data };
  if (job.dataset !== undefined) return { text: readText(datasetPath(job.dataset)), source: `dataset:${job.dataset}` };
  if (savedSource) {
    if (savedSource.startsWith('dataset:')) return { text: readText(datasetPath(savedSource.slice(8))), source: savedSource };
    if (savedSource !== 'text') return { text: readText(savedSource), source: savedSource };
  }
  throw new Error('no training text: give --data FILE or --dataset NAME');
}

/** Applies --backend, --threads and --matmul-precision. */
export function chooseBackend(backend?: BackendName | 'auto', threads?: number, matmulPrecision?: MatmulPrecision): void {
  if (matmulPrecision) setMatmulPrecision(matmulPrecision);
  if (backend) setBackend(backend);
  if (threads !== undefined) {
    const b = getBackend();
    if (b.setThreads) b.setThreads(threads);
  }
}

/** Builds (or resumes) the trainer of a job. */
export function makeTrainer(job: TrainJob): { trainer: LMTrainer; resumedFrom: number | null } {
  if (job.resume) {
    const meta = loadCheckpointMeta(job.resume);
    const { text } = jobText(job, meta.config.source);
    const trainer = LMTrainer.resume(job.resume, text, job.config ?? {});
    return { trainer, resumedFrom: trainer.step };
  }
  const { text, source } = jobText(job);
  const config: LMConfig = { ...DEFAULT_CONFIG, ...job.config, source };
  const data = prepareData(text, config);
  return { trainer: new LMTrainer(config, data), resumedFrom: null };
}

/** Runs a whole training job. */
export async function runTraining(job: TrainJob, hooks: JobHooks = {}): Promise<JobResult & { trainer: LMTrainer }> {
  chooseBackend(job.backend, job.threads, job.matmulPrecision);
  const { trainer, resumedFrom } = makeTrainer(job);
  const out = job.out ?? (job.resume ? runDirOf(job.resume) : null);
  const result = await trainer.run({
    steps: job.steps, epochs: job.epochs, minutes: job.minutes, out: out ?? undefined, progress: hooks.progress,
    callbacks: hooks.callbacks, signal: hooks.signal, reportSampleLength: job.reportSampleLength,
  });
  return { ...result, resumedFrom, backend: getBackend().name, out, trainer };
}

/** The run directory of a resume path: the path, or its parent when it is a ckpt-N directory inside a run. */
export function runDirOf(path: string): string {
  const dir = resolveCheckpointDir(path);
  if (dir !== path) return path;
  const parent = dirname(resolve(path));
  return /^ckpt-\d+(-\d+)?$/.test(basename(resolve(path))) && existsSync(join(parent, LATEST)) ? parent : path;
}

export { hasCheckpoint };
