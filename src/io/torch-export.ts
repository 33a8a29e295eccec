// A language-model run as a PyTorch program: the run's latest checkpoint copied into a new run
// directory beside rnnkit_lm.py (templates/torch/), which trains it further with PyTorch
// (DistributedDataParallel under torchrun) and saves checkpoints rnnkit resumes.
import { chmodSync, copyFileSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJsonFile, readTensorsFile, resolveCheckpointDir, writeCheckpointDir, type CheckpointFiles } from '../lm/checkpoint.js';
import { loadLanguageModel } from '../lm/trainer.js';

/** The PyTorch program (kept as a Python file in the package, not generated). */
export const TORCH_PROGRAM = fileURLToPath(new URL('../../templates/torch/rnnkit_lm.py', import.meta.url));
/** Its file name in an exported directory. */
export const TORCH_PROGRAM_NAME = 'rnnkit_lm.py';

/** The cells the PyTorch program builds (torch.nn.LSTM, GRU, RNN with tanh). */
const TORCH_CELLS = ['lstm', 'gru', 'rnn'];

/** What `exportTorchRun` wrote: the checkpoint directory, the program and the step. */
export interface TorchExport {
  checkpoint: string;
  program: string;
  step: number;
  /** The text the run was trained on (a path or dataset:NAME), from its config. */
  source: string;
}

/**
 * Copies the latest checkpoint of a run (or a checkpoint directory) into outDir as an rnnkit run
 * directory (`latest` + ckpt-<step>) and puts the PyTorch program beside it. Every file of the
 * checkpoint is read and checked first; outDir must be new or empty.
 */
export function exportTorchRun(runDir: string, outDir: string): TorchExport {
  const dir = resolveCheckpointDir(runDir);
  // weights, config.json and vocab.json, checked against each other
  const { config, vocab, step } = loadLanguageModel(dir);
  if (!TORCH_CELLS.includes(config.cell)) throw new Error(`${join(dir, 'config.json')}: cell '${config.cell}' has no PyTorch layer in the exported program (expected ${TORCH_CELLS.join(', ')})`);
  const optimizer = readTensorsFile(dir, 'optimizer.safetensors');
  const optName = optimizer.metadata.optimizer ?? config.optimizer;
  if (optName !== config.optimizer) throw new Error(`${join(dir, 'optimizer.safetensors')}: holds the state of ${optName}, but config.json says ${config.optimizer}`);
  readTensorsFile(dir, 'state.safetensors');
  const trainer = readJsonFile<{ format?: unknown; step?: unknown }>(dir, 'trainer.json');
  if (typeof trainer !== 'object' || trainer === null || trainer.format !== 'rnnkit-lm-trainer') {
    throw new Error(`${join(dir, 'trainer.json')}: not an rnnkit trainer state (format is not "rnnkit-lm-trainer")`);
  }
  if (existsSync(outDir)) {
    if (!statSync(outDir).isDirectory()) throw new Error(`${outDir} exists and is not a directory`);
    if (readdirSync(outDir).length > 0) throw new Error(`${outDir} is not empty (the export writes a new run directory)`);
  }
  const files: CheckpointFiles = {};
  for (const name of ['weights.safetensors', 'optimizer.safetensors', 'state.safetensors', 'trainer.json']) files[name] = readFileSync(join(dir, name));
  // the full configuration (defaults filled in) and the vocabulary as rnnkit reads them
  files['config.json'] = JSON.stringify(config, null, 2) + '\n';
  files['vocab.json'] = JSON.stringify(vocab.toJSON()) + '\n';
  const checkpoint = writeCheckpointDir(outDir, step, files);
  const program = join(outDir, TORCH_PROGRAM_NAME);
  copyFileSync(TORCH_PROGRAM, program);
  chmodSync(program, 0o755);
  return { checkpoint, program, step, source: config.source };
}
