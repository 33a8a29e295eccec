// `g2p`: grapheme-to-phoneme conversion on CMUdict with an encoder-decoder: bidirectional LSTM
// encoder over the letters, LSTM decoder started from the encoder's final states (with dot
// attention over the encoder outputs), teacher forcing in training; greedy and beam-search
// decoding. Word error rate (any phoneme wrong) and phoneme error rate (edit distance / length)
// on held-out words. Phonemes without stress digits (the usual 39-phoneme CMUdict g2p setting).
// Scored twice: against each word's first pronunciation only (strict), and counting a hypothesis
// right when it matches any of the dictionary's pronunciations of the word (the usual CMUdict
// g2p scoring; PER then uses the closest pronunciation).
import { crossEntropy } from '../core/ops.js';
import { Adam, clipGradNorm } from '../nn/optim.js';
import { Rng } from '../core/random.js';
import { Seq2Seq } from '../nn/seq2seq.js';
import { padSequences } from '../nn/seq.js';
import { SymbolTable } from './text.js';
import { editDistance, sequenceErrorRate, tokenErrorRate } from './metrics.js';
import { Context, type ExampleOptions, type ExampleResult, type MetricRow } from './common.js';
import { loadCmudict, loadCmudictVariants, stripStress } from './cmudict.js';

const BOS = '<s>';
const EOS = '</s>';

export async function runG2p(opts: ExampleOptions = {}): Promise<ExampleResult> {
  const ctx = new Context('g2p', opts, 14);
  const quick = opts.quick ?? false;
  const rng = new Rng(opts.seed ?? 1);
  const words = rng.shuffle(loadCmudict().filter((w) => /^[A-Z]{2,20}$/.test(w.word)));
  const nTest = quick ? 150 : 2000;
  const testWords = words.slice(0, nTest);
  const trainWords = words.slice(nTest, quick ? nTest + 6000 : undefined);
  const letters = SymbolTable.build(trainWords.map((w) => [...w.word]));
  const phones = SymbolTable.build(trainWords.map((w) => w.phonemes.map(stripStress)), { specials: [BOS, EOS] });
  const bos = phones.id(BOS);
  const eos = phones.id(EOS);
  const src = (w: { word: string }) => letters.encode([...w.word]);
  const tgt = (w: { phonemes: string[] }) => phones.encode(w.phonemes.map(stripStress));
  const train = trainWords.map((w) => ({ src: src(w), tgt: tgt(w) }));
  ctx.print(`CMUdict g2p: ${train.length} training words, ${testWords.length} held-out; ${letters.size - 2} letters -> ${phones.size - 4} phonemes (no stress)`);
  const H = quick ? 48 : 128;
  const model = new Seq2Seq({ srcVocabSize: letters.size, tgtVocabSize: phones.size, embeddingDim: quick ? 32 : 64, hiddenSize: H, rng: new Rng((opts.seed ?? 1) + 5) });
  const opt = new Adam(model.parameters(), { lr: 3e-3 });
  const budget = ctx.budget(0.85, quick ? 250 : Infinity);
  const batch = 64;
  const dataRng = new Rng((opts.seed ?? 1) + 6);
  let lrDropped = false;
  while (budget.more()) {
    if (!lrDropped && budget.fraction > 0.75) { opt.lr /= 3; lrDropped = true; }
    const idx = Array.from({ length: batch }, () => dataRng.int(train.length));
    const s = padSequences(idx.map((i) => train[i].src));
    const tin = padSequences(idx.map((i) => [bos, ...train[i].tgt]));
    const tout = padSequences(idx.map((i) => [...train[i].tgt, eos]), { padValue: -100 });
    opt.zeroGrad();
    const loss = crossEntropy(model.forward(s.data, s.T, s.B, s.lengths, tin.data, tin.T), tout.data);
    loss.backward();
    clipGradNorm(model.parameters(), 5);
    opt.step();
    budget.tick('seq2seq', loss.item());
  }
  budget.done('seq2seq (teacher forcing)');
  model.eval();
  const refs = testWords.map((w) => w.phonemes.map(stripStress));
  const variants = loadCmudictVariants();
  const allRefs = testWords.map((w) => (variants.get(w.word) ?? [w.phonemes]).map((p) => p.map(stripStress)));
  const decode = (kind: 'greedy' | 'beam') => {
    const t0 = Date.now();
    const hyps: string[][] = [];
    const chunk = kind === 'greedy' ? 500 : 1;
    for (let i = 0; i < testWords.length; i += chunk) {
      const part = testWords.slice(i, i + chunk);
      const p = padSequences(part.map(src));
      const o = { bos, eos, maxLength: 30 };
      const out = kind === 'greedy' ? model.greedy(p.data, p.T, p.B, p.lengths, o) : model.beam(p.data, p.T, p.B, p.lengths, { ...o, beamSize: 5 });
      for (const h of out) hyps.push(phones.decode(h));
    }
    return { hyps, seconds: (Date.now() - t0) / 1000 };
  };
  const rows: MetricRow[] = [];
  const details: Record<string, unknown> = { train: train.length, test: testWords.length, hiddenSize: H, steps: budget.step };
  const samples: string[] = [];
  for (const kind of ['greedy', 'beam'] as const) {
    const { hyps, seconds } = decode(kind);
    const wer = sequenceErrorRate(hyps, refs);
    const per = tokenErrorRate(hyps, refs);
    // any listed pronunciation: the closest one is the reference
    const closest = hyps.map((h, i) => allRefs[i].reduce((best, r) => (editDistance(h, r) < editDistance(h, best) ? r : best), allRefs[i][0]));
    const werAny = sequenceErrorRate(hyps, closest);
    const perAny = tokenErrorRate(hyps, closest);
    const model = `BiLSTM enc-dec + attention, ${kind === 'greedy' ? 'greedy' : 'beam 5'}`;
    const time = budget.elapsed + seconds;
    rows.push({ task: 'g2p', model, metric: 'word error rate', value: werAny, seconds: time });
    rows.push({ task: 'g2p', model, metric: 'phoneme error rate', value: perAny, seconds: time });
    rows.push({ task: 'g2p', model, metric: 'word error rate (first pronunciation only)', value: wer, seconds: time });
    rows.push({ task: 'g2p', model, metric: 'phoneme error rate (first pronunciation only)', value: per, seconds: time });
    details[kind] = { wer: werAny, per: perAny, werFirstOnly: wer, perFirstOnly: per, decodeSeconds: seconds };
    ctx.print(`${kind}: WER ${(100 * werAny).toFixed(2)}%, PER ${(100 * perAny).toFixed(2)}% (any listed pronunciation); first pronunciation only: WER ${(100 * wer).toFixed(2)}%, PER ${(100 * per).toFixed(2)}% (${seconds.toFixed(1)} s to decode)`);
    if (kind === 'beam') for (let i = 0; i < 8; i++) samples.push(`${testWords[i].word}: ${hyps[i].join(' ')}   (CMUdict: ${refs[i].join(' ')})`);
  }
  for (const s of samples) ctx.print(`  ${s}`);
  details.samples = samples;
  return ctx.finish(rows, details, []);
}
