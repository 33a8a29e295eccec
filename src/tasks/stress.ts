// `stress`: many-to-many aligned tagging on CMUdict: the lexical stress of every phoneme
// (none / 0 / 1 / 2) from the phoneme sequence with the stress digits removed.
// Embedding -> LSTM (unidirectional or bidirectional) -> Linear over every step, cross-entropy
// with the padding ignored. Per-phoneme and per-word accuracy on held-out words; baseline: the
// most frequent stress of each phoneme symbol.
import { Embedding, LSTM, Linear, Module } from '../nn/layers.js';
import { crossEntropy } from '../core/ops.js';
import { Adam, clipGradNorm } from '../nn/optim.js';
import { Rng } from '../core/random.js';
import { padSequences } from '../nn/seq.js';
import { Tensor, noGrad } from '../core/tensor.js';
import { SymbolTable } from './text.js';
import { Context, type ExampleOptions, type ExampleResult, type MetricRow } from './common.js';
import { loadCmudict, stressClass, stripStress } from './cmudict.js';

export const STRESS_NAMES = ['none', '0', '1', '2'];

/** Embedding -> (Bi)LSTM -> Linear(4) at every step. */
export class StressTagger extends Module {
  readonly embedding: Embedding;
  readonly lstm: LSTM;
  readonly fc: Linear;

  constructor(vocabSize: number, readonly bidirectional: boolean, hiddenSize: number, rng: Rng) {
    super();
    this.embedding = this.registerModule('embedding', new Embedding(vocabSize, 32, { paddingIdx: 0, rng }));
    this.lstm = this.registerModule('lstm', new LSTM({ inputSize: 32, hiddenSize, bidirectional, numLayers: 2, rng }));
    this.fc = this.registerModule('fc', new Linear((bidirectional ? 2 : 1) * hiddenSize, STRESS_NAMES.length, { rng }));
  }

  // ids [T, B], lengths [B] -> logits [T, B, 4]
  forward(ids: ArrayLike<number>, T: number, B: number, lengths: ArrayLike<number>): Tensor {
    return this.fc.forward(this.lstm.forward(this.embedding.forward(ids, [T, B]), { lengths }).output);
  }
}

interface Item { ids: number[]; tags: number[] }

export async function runStress(opts: ExampleOptions = {}): Promise<ExampleResult> {
  const ctx = new Context('stress', opts, 6);
  const quick = opts.quick ?? false;
  const rng = new Rng(opts.seed ?? 1);
  const words = rng.shuffle(loadCmudict());
  const nTest = quick ? 1000 : 5000;
  const testWords = words.slice(0, nTest);
  const trainWords = words.slice(nTest, quick ? nTest + 8000 : undefined);
  const table = SymbolTable.build(trainWords.map((w) => w.phonemes.map(stripStress)));
  const toItem = (w: { phonemes: string[] }): Item => ({ ids: table.encode(w.phonemes.map(stripStress)), tags: w.phonemes.map(stressClass) });
  const train = trainWords.map(toItem);
  const test = testWords.map(toItem);
  ctx.print(`CMUdict: ${train.length} training words, ${test.length} held-out words, ${table.size - 2} phonemes; tags ${STRESS_NAMES.join('/')}`);

  // baseline: the most frequent tag of each phoneme symbol
  const counts = Array.from({ length: table.size }, () => [0, 0, 0, 0]);
  for (const it of train) it.ids.forEach((id, t) => counts[id][it.tags[t]]++);
  const majority = counts.map((c) => c.indexOf(Math.max(...c)));
  const score = (predict: (items: Item[]) => number[][]) => {
    let right = 0, total = 0, wordsRight = 0;
    const preds = predict(test);
    test.forEach((it, i) => {
      let all = true;
      it.tags.forEach((tag, t) => { total++; if (preds[i][t] === tag) right++; else all = false; });
      if (all) wordsRight++;
    });
    return { phoneme: right / total, word: wordsRight / test.length };
  };
  const base = score((items) => items.map((it) => it.ids.map((id) => majority[id])));
  const rows: MetricRow[] = [];
  const results: Record<string, { phoneme: number; word: number; steps: number; seconds: number }> = {};
  for (const bidirectional of [false, true]) {
    const name = bidirectional ? 'BiLSTM' : 'LSTM';
    const model = new StressTagger(table.size, bidirectional, quick ? 32 : 64, new Rng((opts.seed ?? 1) + 10));
    const opt = new Adam(model.parameters(), { lr: 3e-3 });
    const budget = ctx.budget(0.48, quick ? 150 : Infinity);
    const batch = 64;
    const dataRng = new Rng((opts.seed ?? 1) + 20);
    while (budget.more()) {
      const idx = Array.from({ length: batch }, () => dataRng.int(train.length));
      const p = padSequences(idx.map((i) => train[i].ids));
      const y = padSequences(idx.map((i) => train[i].tags), { padValue: -100 });
      opt.zeroGrad();
      const loss = crossEntropy(model.forward(p.data, p.T, p.B, p.lengths), y.data);
      loss.backward();
      clipGradNorm(model.parameters(), 5);
      opt.step();
      budget.tick(name, loss.item());
    }
    model.eval();
    const s = score((items) => {
      const out: number[][] = [];
      noGrad(() => {
        for (let i = 0; i < items.length; i += 500) {
          const part = items.slice(i, i + 500);
          const p = padSequences(part.map((it) => it.ids));
          const logits = model.forward(p.data, p.T, p.B, p.lengths);
          part.forEach((it, b) => out.push(it.ids.map((_, t) => {
            let best = 0;
            for (let c = 1; c < 4; c++) if (logits.data[(t * p.B + b) * 4 + c] > logits.data[(t * p.B + b) * 4 + best]) best = c;
            return best;
          })));
        }
      });
      return out;
    });
    budget.done(name, `per-phoneme ${(100 * s.phoneme).toFixed(2)}%, per-word ${(100 * s.word).toFixed(2)}%`);
    results[name] = { ...s, steps: budget.step, seconds: budget.elapsed };
    rows.push({ task: 'stress', model: `${name} (2 layers)`, metric: 'per-phoneme accuracy', value: s.phoneme, baseline: base.phoneme, baselineName: 'majority per phoneme', seconds: budget.elapsed });
    rows.push({ task: 'stress', model: `${name} (2 layers)`, metric: 'per-word accuracy', value: s.word, baseline: base.word, baselineName: 'majority per phoneme', seconds: budget.elapsed });
  }
  return ctx.finish(rows, { train: train.length, test: test.length, baseline: base, ...results }, []);
}
