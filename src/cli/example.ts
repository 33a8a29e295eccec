// `rnnkit example NAME`: one runnable example per sequence-task shape, on real data from npm packages.
import { Argument, type Command, InvalidArgumentError, Option } from 'commander';
import { EXAMPLES, runExample } from '../tasks/index.js';
import { type Io, backendOption, nonNegativeInt, positiveInt } from './options.js';

function minutes(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0.01) throw new InvalidArgumentError('expected a number >= 0.01.');
  return n;
}

export function addExampleCommand(program: Command, io: Io, setCode: (c: number) => void): void {
  program.command('example')
    .summary('a sequence task on real data: spam, stress, g2p, names, co2, adding')
    .description('Train one sequence task on real data end to end and print its metrics table (nothing is downloaded).')
    .addArgument(new Argument('<name>', 'which example').choices(Object.keys(EXAMPLES)))
    .option('--minutes <x>', 'training time budget (each example has its default)', minutes)
    .option('--steps <n>', 'cap on optimizer steps per model', positiveInt)
    .addOption(backendOption())
    .option('--json <file>', 'write the metrics here as JSON')
    .option('--out <dir>', 'directory for plots (default examples/out/NAME)')
    .option('--threads <n>', 'threads of the native backend (default 1)', positiveInt)
    .option('--seed <n>', 'random seed', nonNegativeInt)
    .addOption(new Option('--quick', 'a small subset of the data'))
    .addHelpText('after', `\nExamples:\n${Object.entries(EXAMPLES).map(([name, e]) => `  ${name.padEnd(8)} ${e.summary}`).join('\n')}\n`)
    .action(async (name: string, f: { minutes?: number; steps?: number; backend?: string; json?: string; out?: string; threads?: number; seed?: number; quick?: boolean }) => {
      await runExample(name, {
        minutes: f.minutes, steps: f.steps, seed: f.seed, threads: f.threads, backend: f.backend, json: f.json, outDir: f.out, quick: f.quick,
        print: (l) => io.out(l + '\n'),
      });
      setCode(0);
    });
}
