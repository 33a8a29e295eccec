// The async form of training: the job runs in a worker_thread, so the caller's event loop stays
// free (timers, servers, UI keep running); progress arrives as callbacks.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ProgressInfo } from './progress.js';
import type { JobResult, TrainJob } from './run.js';
import type { StepMetrics, ValMetrics } from './trainer.js';

/**
 * What a training run in a worker reports back to the main thread: steps, validations,
 * checkpoints, progress and log lines.
 */
export interface WorkerCallbacks {
  onProgress?(info: ProgressInfo): void;
  onLog?(line: string): void;
  onStep?(m: StepMetrics): void;
  onValidation?(v: ValMetrics): void;
  onCheckpoint?(dir: string): void;
}

/**
 * A training run in a worker thread (`trainInWorker`): its result as a promise, and ways to stop
 * it.
 */
export interface TrainingHandle {
  /** Settles when the job ends (rejects with the job's error, e.g. a non-finite step). */
  result: Promise<JobResult>;
  /** Asks the job to stop after the current step (it still validates and saves). */
  stop(): void;
  /** Kills the worker at once (no final checkpoint). */
  terminate(): Promise<number>;
}

function workerUrl(): URL {
  const here = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  // running from the TypeScript sources (tests): use the compiled worker in dist/
  return new URL('../../dist/lm/worker.js', import.meta.url);
}

/** Starts a training job in a worker thread. The job must be plain data (no functions). */
export function trainInWorker(job: TrainJob, callbacks: WorkerCallbacks = {}): TrainingHandle {
  const worker = new Worker(workerUrl(), { workerData: job });
  let settled = false;
  const result = new Promise<JobResult>((resolve, reject) => {
    worker.on('message', (msg: { type: string; [k: string]: unknown }) => {
      switch (msg.type) {
        case 'progress': callbacks.onProgress?.(msg.info as ProgressInfo); break;
        case 'log': callbacks.onLog?.(msg.line as string); break;
        case 'step': callbacks.onStep?.(msg.metrics as StepMetrics); break;
        case 'validation': callbacks.onValidation?.(msg.metrics as ValMetrics); break;
        case 'checkpoint': callbacks.onCheckpoint?.(msg.dir as string); break;
        case 'done': settled = true; resolve(msg.result as JobResult); break;
        case 'error': {
          settled = true;
          const e = new Error(msg.message as string);
          e.name = (msg.name as string) || 'Error';
          reject(e);
          break;
        }
      }
    });
    worker.on('error', (e) => { if (!settled) { settled = true; reject(e); } });
    worker.on('exit', (code) => { if (!settled) { settled = true; reject(new Error(`training worker exited with code ${code}`)); } });
  });
  return {
    result,
    stop: () => worker.postMessage({ type: 'abort' }),
    terminate: () => worker.terminate(),
  };
}
