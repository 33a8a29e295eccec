// The messages between the page (src/main.ts) and the Web Worker (src/worker.ts).

/** Settings of a training run in the page (the names of `rnnkit train`'s options). */
export interface TrainSettings {
  hidden: number;
  layers: number;
  embed: number;
  seq: number;
  batch: number;
  lr: number;
  steps: number;
  seed: number;
}

export interface SampleSettings {
  prime: string;
  length: number;
  temperature: number;
  topP: number;
  seed: number;
}

/** A file of a run directory (weights.safetensors, vocab.json, config.json). */
export interface RunFile {
  name: string;
  bytes: ArrayBuffer;
}

export interface ModelInfo {
  cell: string;
  layers: number;
  hidden: number;
  embed: number;
  vocabSize: number;
  parameters: number;
  /** Steps trained (in the page, or read from trainer.json of a run directory). */
  steps: number | null;
  source: string;
}

export type ToWorker =
  | { type: 'init'; wasm: 'auto' | 'plain' | 'relaxed' }
  | { type: 'train'; text: string; settings: TrainSettings }
  | { type: 'stop' }
  | { type: 'sample'; settings: SampleSettings }
  | { type: 'load'; files: RunFile[] }
  | { type: 'save' };

export type FromWorker =
  | { type: 'ready'; isa: string }
  | { type: 'train-start'; vocabSize: number; tokens: number; parameters: number }
  | { type: 'step'; step: number; steps: number; loss: number; tokensPerSecond: number }
  | { type: 'train-end'; step: number; stopped: boolean; model: ModelInfo }
  | { type: 'sample-start'; prime: string }
  | { type: 'piece'; text: string }
  | { type: 'sample-end' }
  | { type: 'loaded'; model: ModelInfo }
  | { type: 'saved'; files: RunFile[] }
  | { type: 'error'; message: string };
