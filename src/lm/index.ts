// Language models end to end: data, training, checkpoints, generation, reports.
export * from './vocab.js';
export * from './data.js';
export * from './schedule.js';
export * from './checkpoint.js';
export * from './generate.js';
export * from './progress.js';
export * from './report.js';
export * from './trainer.js';
export * from './run.js';
export * from './async.js';
export { LanguageModel, type LanguageModelOptions, type RecurrentState } from '../nn/models.js';
