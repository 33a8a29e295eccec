// Trains the two small models the Worker serves and writes them into model/:
//   model/lm/       a character LSTM on Moby Dick, trained by `rnnkit train` (its checkpoint's
//                   weights.safetensors, vocab.json and config.json: `rnnkit sample model/lm` reads it)
//   model/adding.safetensors
//                   an LSTM regressor for the adding problem: x [T][2] (a value and a marker per
//                   step) -> the sum of the two marked values; its shape in the file's metadata
// Run from the repository root after `npm run build`: node examples/worker/make-model.mjs
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Adam, LSTM, Linear, Rng, clipGradNorm, mseLoss, reshape, saveSafetensorsFile, select } from 'rnnkit';
import { addingBatch as addingTaskBatch } from '../../dist/tasks/adding.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = join(here, 'model');

// 1. the character LSTM, with the rnnkit CLI
const tmp = mkdtempSync(join(tmpdir(), 'rnnkit-worker-model-'));
execFileSync(process.execPath, [
  join(root, 'bin/rnnkit.js'), 'train', '--dataset', 'moby-dick', '--layers', '1', '--hidden', '64', '--embed', '16',
  '--seq', '64', '--batch', '32', '--lr', '0.006', '--schedule', 'cosine', '--steps', '4000', '--val-every', '0',
  '--val-tokens', '20000', '--samples', '1', '--sample-length', '200', '--no-progress', '--out', join(tmp, 'run'),
], { stdio: 'inherit' });
const run = join(tmp, 'run');
const ckpt = join(run, JSON.parse(readFileSync(join(run, 'latest'), 'utf8')).checkpoint);
mkdirSync(join(out, 'lm'), { recursive: true });
for (const f of ['weights.safetensors', 'vocab.json', 'config.json']) copyFileSync(join(ckpt, f), join(out, 'lm', f));
rmSync(tmp, { recursive: true, force: true });

// 2. the adding problem: an LSTM reads the sequence, a Linear layer maps its last hidden state to the sum
// sequences of 4 to 50 steps, so that the model answers for any length in that range
const MIN_T = 4;
const MAX_T = 50;
const B = 64;
const H = 32;
const rng = new Rng(1);
// one batch of sequences of a random length in [MIN_T, MAX_T] (the adding task of `rnnkit example adding`)
const addingBatch = () => addingTaskBatch(MIN_T + rng.int(MAX_T - MIN_T + 1), B, rng);
const lstm = new LSTM({ inputSize: 2, hiddenSize: H, rng });
const fc = new Linear(H, 1, { rng });
const params = [...lstm.parameters(), ...fc.parameters()];
const opt = new Adam(params, { lr: 1e-2 });
let avg = 0;
for (let step = 1; step <= 4000; step++) {
  const { x, y } = addingBatch();
  const { hN } = lstm.forward(x);
  const loss = mseLoss(fc.forward(reshape(select(hN, 0), [B, H])), y);
  opt.zeroGrad();
  loss.backward();
  clipGradNorm(params, 1);
  opt.step();
  avg = step === 1 ? loss.item() : 0.98 * avg + 0.02 * loss.item();
  if (step % 500 === 0) console.log(`adding: step ${step}, mse ${avg.toFixed(4)} (predicting 1 always: 0.167)`);
}
const tensors = new Map([
  ...[...lstm.stateDict()].map(([k, v]) => [`lstm.${k}`, v]),
  ...[...fc.stateDict()].map(([k, v]) => [`fc.${k}`, v]),
]);
await saveSafetensorsFile(join(out, 'adding.safetensors'), tensors, {
  task: 'adding', cell: 'lstm', input_size: '2', hidden_size: String(H), num_layers: '1', output_size: '1',
  trained_lengths: `${MIN_T}-${MAX_T}`, mse: avg.toFixed(4),
});
console.log(`wrote ${out}`);
