// `rnnkit export-torch RUN_DIR OUT_DIR`: a language-model run as a PyTorch (DistributedDataParallel) program.
import type { Command } from 'commander';
import { datasetPath } from '../lm/data.js';
import { TORCH_PROGRAM_NAME, exportTorchRun } from '../io/torch-export.js';
import { CliError, type Io } from './options.js';

function exportTorchCommand(runDir: string, outDir: string, io: Io): number {
  let r;
  try {
    r = exportTorchRun(runDir, outDir);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  let data = r.source && r.source !== 'text' ? r.source : 'FILE';
  if (data.startsWith('dataset:')) {
    try { data = datasetPath(data.slice(8)); } catch { data = 'FILE'; }
  }
  const q = (s: string) => (/^[\w./@:+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const program = `${q(outDir)}/${TORCH_PROGRAM_NAME}`;
  io.out(`exported step ${r.step} to ${r.checkpoint} with ${r.program}\n`
    + `train with PyTorch (several processes: DistributedDataParallel, gloo on CPUs, NCCL on CUDA GPUs):\n`
    + `  torchrun --nproc_per_node 2 ${program} train --data ${q(data)} --steps ${r.step + 1000}\n`
    + `evaluate:  python3 ${program} eval --data ${q(data)} --held-out\n`
    + `continue in rnnkit:  rnnkit train --resume ${q(outDir)} --data ${q(data)}\n`);
  return 0;
}

/** `rnnkit export-torch`. */
export function addTorchCommands(program: Command, io: Io, setCode: (c: number) => void): void {
  program.command('export-torch')
    .summary('a language-model run as a PyTorch program (DistributedDataParallel training, resumable in rnnkit)')
    .description('Copy the latest checkpoint of a run of `rnnkit train` (weights, optimizer state, vocabulary) into OUT_DIR with rnnkit_lm.py, '
      + 'a PyTorch program that trains it further on one or many processes (torchrun) and evaluates it as `rnnkit eval` does. '
      + 'Its checkpoints are rnnkit checkpoints: `rnnkit train --resume OUT_DIR` continues from them.')
    .argument('<run_dir>', 'run or checkpoint directory of `rnnkit train`')
    .argument('<out_dir>', 'new (or empty) directory for the program and the checkpoint')
    .action((runDir: string, outDir: string) => { setCode(exportTorchCommand(runDir, outDir, io)); });
}
