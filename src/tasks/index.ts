// The sequence-task examples (`rnnkit example NAME`): one per task shape, each on real data from an
// npm package (nothing is downloaded).
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

/** Runs one example by name. */
export async function runExample(name: string, opts: ExampleOptions = {}): Promise<ExampleResult> {
  const e = EXAMPLES[name];
  if (!e) throw new RangeError(`unknown example '${name}'; choose one of ${Object.keys(EXAMPLES).join(', ')}`);
  return (await e.run())(opts);
}
