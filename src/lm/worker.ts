// Worker-thread entry of trainInWorker: runs one training job and reports back by messages.
import { parentPort, workerData } from 'node:worker_threads';
import { runTraining, type TrainJob } from './run.js';
import type { ProgressInfo } from './progress.js';

if (parentPort) {
  const port = parentPort;
  const abort = new AbortController();
  port.on('message', (msg: { type: string }) => {
    if (msg?.type === 'abort') abort.abort();
  });
  const job = workerData as TrainJob;
  runTraining(job, {
    signal: abort.signal,
    progress: {
      update: (info: ProgressInfo) => port.postMessage({ type: 'progress', info }),
      log: (line: string) => port.postMessage({ type: 'log', line }),
      end: () => {},
    },
    callbacks: {
      onStep: (m) => { port.postMessage({ type: 'step', metrics: m }); },
      onValidation: (v) => { port.postMessage({ type: 'validation', metrics: v }); },
      onCheckpoint: (dir) => { port.postMessage({ type: 'checkpoint', dir }); },
    },
  }).then(
    ({ trainer: _trainer, ...result }) => { port.postMessage({ type: 'done', result }); port.close(); },
    (e: Error) => { port.postMessage({ type: 'error', name: e?.name, message: e?.message ?? String(e) }); port.close(); },
  );
}
