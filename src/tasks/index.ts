// `rnnkit example NAME [--minutes N] [--backend NAME] [--json FILE]`: one runnable example per
// sequence-task shape, each on real data from an npm package (nothing is downloaded).
import { parseArgs } from 'node:util';
import type { ExampleOptions, ExampleResult } from './common.js';

export type { ExampleOptions, ExampleResult, MetricRow } from './common.js';

type Runner = (opts: ExampleOptions) => Promise<ExampleResult>;

/** Each example: what it shows, and a lazy loader (so one example does not load another's data). */
export const EXAMPLES: Record<string, { summary: string; run: () => Promise<Runner> }> = {
  spam: { summary: 'many-to-one: SpamAssassin spam vs ham, BiLSTM vs bag-of-words logistic regression', run: async () => (await import('./spam.js')).runSpam },
  stress: { summary: 'many-to-many aligned: CMUdict lexical stress per phoneme, unidirectional vs bidirectional LSTM', run: async () => (await import('./stress.js')).runStress },
  g2p: { summary: 'many-to-many, different lengths: CMUdict grapheme-to-phoneme encoder-decoder, greedy and beam search', run: async () => (await import('./g2p.js')).runG2p },
  names: { summary: 'one-to-many: first names conditioned on female/male via the initial state', run: async () => (await import('./names.js')).runNames },
  co2: { summary: 'forecasting: monthly CO2 (and multi-feature Seattle weather) vs seasonal-naive', run: async () => (await import('./co2.js')).runCo2 },
  adding: { summary: 'long-range dependencies: the adding problem, RNN vs LSTM vs GRU, with/without clipping', run: async () => (await import('./adding.js')).runAdding },
};

export const EXAMPLE_USAGE = `usage: rnnkit example NAME [--minutes N] [--steps N] [--backend auto|native|wasm|reference] [--json FILE] [--out DIR] [--threads N] [--seed N] [--quick]

examples:
${Object.entries(EXAMPLES).map(([name, e]) => `  ${name.padEnd(8)} ${e.summary}`).join('\n')}
`;

/** Runs one example by name. */
export async function runExample(name: string, opts: ExampleOptions = {}): Promise<ExampleResult> {
  const e = EXAMPLES[name];
  if (!e) throw new RangeError(`unknown example '${name}'; choose one of ${Object.keys(EXAMPLES).join(', ')}`);
  return (await e.run())(opts);
}

/** The CLI entry: argv after `example`. Returns the exit code. */
export async function runExampleCli(argv: string[], print: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      minutes: { type: 'string' }, steps: { type: 'string' }, backend: { type: 'string' }, json: { type: 'string' },
      out: { type: 'string' }, threads: { type: 'string' }, seed: { type: 'string' }, quick: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) { print(EXAMPLE_USAGE); return positionals.length === 0 && !values.help ? 2 : 0; }
  const name = positionals[0];
  if (!EXAMPLES[name]) { process.stderr.write(`rnnkit: unknown example '${name}'\n${EXAMPLE_USAGE}`); return 2; }
  const num = (flag: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!(n >= min) || !Number.isFinite(n)) { throw Object.assign(new Error(`--${flag} must be a number >= ${min}, received '${v}'`), { code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' }); }
    return n;
  };
  await runExample(name, {
    minutes: num('minutes', values.minutes, 0.01),
    steps: num('steps', values.steps, 1),
    seed: num('seed', values.seed, 0),
    threads: num('threads', values.threads, 1),
    backend: values.backend,
    json: values.json,
    outDir: values.out,
    quick: values.quick,
    print: (l) => print(l + '\n'),
  });
  return 0;
}
