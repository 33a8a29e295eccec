// The `rnnkit` command line.
import { existsSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { BACKEND_NAMES, type BackendName, backendStatus, getMatmulPrecision, loadBackend, setBackend, setMatmulPrecision, withBackend } from './backends/index.js';
import { CrossCheckBackend } from './backends/crosscheck.js';
import { doctorReport, formatDoctor } from './backends/doctor.js';
import { MATMUL_PRECISIONS, type MatmulPrecision } from './backends/backend.js';
import { type CaseResult, FORWARD_TOLERANCE, GRADIENT_TOLERANCE, goldenCaseNames, packagedGoldenDir, runGoldenCase } from './golden.js';
import { LSTM } from './nn.js';
import { add, mul, sum } from './ops.js';
import { Rng } from './random.js';
import { Tensor } from './tensor.js';
import { CliError, evalCommand, sampleCommand, startCommand, trainCommand, type Io } from './lm/commands.js';

const USAGE = `usage: rnnkit <command> [options]

commands:
  train [options]                         train a language model (--data FILE or --dataset moby-dick)
  sample DIR [options]                    generate text from a trained model
  eval DIR --data FILE                    bits per character (or perplexity) of a model on a text
  start                                   what \`npm start\` runs: a character LSTM on Moby Dick, resumable
  example NAME [options]                  a sequence task on real data: spam, stress, g2p, names, co2, adding
  verify-torch [DIR] [--backend NAME|all] run the PyTorch reference cases (those shipped, or DIR's)
  doctor                                  which backends load, why the others do not, and a cross-check
  help                                    this text

\`rnnkit COMMAND --help\` describes each command's options.
`;

export class UsageError extends Error {}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function fmt(v: number): string {
  return Number.isNaN(v) ? 'error' : v.toExponential(2);
}

export function verifyTorch(argv: string[], print: (s: string) => void): number {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { backend: { type: 'string', default: 'all' }, help: { type: 'boolean' } } });
  if (values.help) {
    print('usage: rnnkit verify-torch [DIR] [--backend native|wasm|reference|all]\n'
      + 'Runs the PyTorch reference cases that ship with rnnkit (its golden/ folder), or those in DIR\n'
      + '(NAME.json + NAME.safetensors per case, the format of golden/README.md).\n');
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`verify-torch takes at most one directory, received ${positionals.length}: ${positionals.join(' ')}`);
  const dir = positionals[0] ?? packagedGoldenDir();
  const requested = values.backend as string;
  let backends: BackendName[];
  if (requested === 'all') {
    backends = BACKEND_NAMES.filter((b) => {
      try { loadBackend(b); return true; } catch (e) { print(`note: skipping backend ${b}: ${(e as Error).message}\n`); return false; }
    });
  } else if ((BACKEND_NAMES as readonly string[]).includes(requested)) {
    backends = [requested as BackendName];
  } else {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, all; received '${requested}'`);
  }
  if (!existsSync(dir)) throw new UsageError(`verify-torch: directory '${dir}' does not exist`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`verify-torch: '${dir}' is not a directory`);
  let names: string[];
  try { names = goldenCaseNames(dir); } catch (e) { throw new UsageError(`verify-torch: cannot read '${dir}': ${(e as Error).message}`); }
  if (names.length === 0) throw new UsageError(`verify-torch: '${dir}' holds no reference case (NAME.json with NAME.safetensors)`);
  const width = Math.max(26, ...names.map((n) => n.length + 2));
  const results: CaseResult[] = [];
  // the cases check fp32 parity with PyTorch: bf16 products ('medium') are off while they run
  const precision = getMatmulPrecision();
  if (precision !== 'highest') print(`note: matmul precision '${precision}' set aside: the cases check fp32 parity with PyTorch\n`);
  setMatmulPrecision('highest');
  print(`${pad('case', width)}${pad('backend', 11)}${pad('forward', 11)}${pad('gradient', 11)}result\n`);
  try {
    for (const backend of backends) {
      for (const name of names) {
        const r = runGoldenCase(dir, name, backend);
        results.push(r);
        print(`${pad(name, width)}${pad(backend, 11)}${pad(fmt(r.forwardError), 11)}${pad(fmt(r.gradError), 11)}${r.pass ? 'pass' : 'FAIL'}${r.detail ? '  ' + r.detail : ''}\n`);
      }
    }
  } finally {
    setMatmulPrecision(precision);
  }
  const passed = results.filter((r) => r.pass).length;
  print(`tolerances: forward ${FORWARD_TOLERANCE}, gradient ${GRADIENT_TOLERANCE} (relative to each tensor's largest magnitude)\n`);
  print(`${passed}/${results.length} cases pass\n`);
  return passed === results.length ? 0 : 1;
}

export function doctor(print: (s: string) => void): number {
  print(formatDoctor(doctorReport()));
  const status = backendStatus();
  for (const s of status) {
    print(s.available ? `  ${pad(s.name, 10)} ok       isa=${s.isa} threads=${s.threads}\n` : `  ${pad(s.name, 10)} missing  ${s.reason}\n`);
  }
  let failures = 0;
  for (const s of status.filter((x) => x.available && x.name !== 'reference')) {
    try {
      const checked = new CrossCheckBackend(loadBackend(s.name), loadBackend('reference'));
      withBackend(checked, () => {
        const rng = new Rng(1);
        const lstm = new LSTM({ inputSize: 7, hiddenSize: 9, numLayers: 2, bidirectional: true, rng });
        const x = new Tensor(Float32Array.from({ length: 5 * 3 * 7 }, () => rng.normal()), [5, 3, 7], true);
        const { output, hN } = lstm.forward(x, { lengths: [5, 2, 4] });
        add(sum(mul(output, output)), sum(hN)).backward();
      });
      print(`cross-check ${s.name} vs reference (bidirectional 2-layer LSTM, forward and backward): ok\n`);
    } catch (e) {
      failures++;
      print(`cross-check ${s.name} vs reference: FAILED: ${(e as Error).message}\n`);
    }
  }
  return failures === 0 ? 0 : 1;
}

// ---- number parsers for commander: one clear message per bad value ----
function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}
function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a non-negative integer.');
  return n;
}
function positiveNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.');
  return n;
}
function nonNegativeNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0.');
  return n;
}
function fraction(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n < 1)) throw new InvalidArgumentError('expected a number in [0, 1).');
  return n;
}
function probability(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0 && n <= 1)) throw new InvalidArgumentError('expected a number in (0, 1].');
  return n;
}

const backendOption = () => new Option('--backend <name>', 'kernels to use (default: auto, or RNNKIT_BACKEND)').choices(['auto', ...BACKEND_NAMES]);
const matmulPrecisionOption = () => new Option('--matmul-precision <p>', 'highest: fp32 products (default, or RNNKIT_MATMUL_PRECISION); '
  + 'medium: bf16 products with fp32 sums where the CPU has AVX512_BF16 (native backend; torch.set_float32_matmul_precision)').choices([...MATMUL_PRECISIONS]);

function lmProgram(io: Io, setCode: (c: number) => void): Command {
  const program = new Command('rnnkit');
  const configure = (c: Command) => c
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s), outputError: () => {} })
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);
  configure(program);
  configure(program.command('train'))
    .description('Train a language model on a text file or a bundled dataset, with checkpoints, curves and a report in --out.')
    .option('--data <file>', 'UTF-8 text file to train on')
    .addOption(new Option('--dataset <name>', 'bundled dataset').choices(['moby-dick']))
    .addOption(new Option('--level <level>', 'tokens: characters or words (default char)').choices(['char', 'word']))
    .option('--max-vocab <n>', 'keep the n most frequent tokens (default: all chars, 10000 words)', positiveInt)
    .addOption(new Option('--cell <cell>', 'recurrent cell (default lstm)').choices(['lstm', 'gru', 'rnn']))
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
  configure(program.command('sample'))
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
  configure(program.command('eval'))
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
  configure(program.command('start'))
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
  return program;
}

function applyBackend(name: string | undefined, matmulPrecision?: MatmulPrecision): void {
  if (matmulPrecision) setMatmulPrecision(matmulPrecision);
  if (!name) return;
  try {
    setBackend(name as BackendName | 'auto');
  } catch (e) {
    throw new CliError(`--backend ${name}: ${(e as Error).message}`);
  }
}

const LM_COMMANDS = new Set(['train', 'sample', 'eval', 'start']);
let pipeGuard = false;

export async function main(argv: string[], io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Promise<number> {
  const print = io.out;
  const [command, ...rest] = argv;
  try {
    if (command !== undefined && LM_COMMANDS.has(command)) {
      // `rnnkit sample DIR | head`: a closed pipe ends the command quietly
      if (!pipeGuard) {
        pipeGuard = true;
        process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); else throw e; });
      }
      let code = 0;
      const program = lmProgram(io, (c) => { code = c; });
      try {
        await program.parseAsync(argv, { from: 'user' });
      } catch (e) {
        if (e instanceof CommanderError) {
          if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') return 0;
          io.err(`rnnkit ${command}: ${e.message.replace(/^error: /, '').replace(/\n+/g, ' ').trim()} (see rnnkit ${command} --help)\n`);
          return 2;
        }
        throw e;
      }
      return code;
    }
    switch (command) {
      case 'verify-torch': return verifyTorch(rest, print);
      case 'doctor': return doctor(print);
      case 'example': return (await import('./examples/index.js')).runExampleCli(rest, print);
      case undefined: case 'help': case '--help': case '-h': print(USAGE); return command === undefined ? 1 : 0;
      default: throw new UsageError(`unknown command '${command}'\n${USAGE}`);
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof CliError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      const prefix = e instanceof CliError ? `rnnkit ${command}: ` : 'rnnkit: ';
      io.err(`${prefix}${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}
