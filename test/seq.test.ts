// Building blocks of the sequence tasks: padding and lengths, masked pooling and attention
// (finite-difference gradients), the tokenizer, the metrics, greedy vs beam search on a
// hand-made model, and the encoder-decoder.
import { describe, expect, it } from 'vitest';
import {
  Adam, LSTM, Rng, Seq2Seq, Tensor, SymbolTable, WordTokenizer, accuracy, beamSearch, binaryScores, crossEntropy,
  dotAttention, editDistance, greedyDecode, lastStep, lengthMask, mae, maskedMaxPool, maskedMeanPool, mul,
  noGrad, padFeatureSequences, padSequences, rmse, sequenceErrorRate, splitWords, sum, timeSlice, tokenErrorRate,
  type StepDecoder,
} from '../src/index.js';
import { tokenize } from '../src/lm/vocab.js';
import { gradCheck } from './helpers.js';

function randn(rng: Rng, shape: number[], requiresGrad = true): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(Float32Array.from({ length: n }, () => rng.normal()), shape, requiresGrad);
}

const weighted = (y: Tensor) => sum(mul(y, new Tensor(Float32Array.from({ length: y.size }, (_, i) => Math.sin(i + 1)), y.shape)));

describe('padding and lengths', () => {
  it('pads time-major with lengths and a mask', () => {
    const p = padSequences([[5, 6, 7], [8], [9, 10]]);
    expect(p.T).toBe(3);
    expect(p.B).toBe(3);
    expect(Array.from(p.lengths)).toEqual([3, 1, 2]);
    // [T, B]: row t holds step t of every sequence
    expect(Array.from(p.data)).toEqual([5, 8, 9, 6, 0, 10, 7, 0, 0]);
    expect(Array.from(p.mask)).toEqual([1, 1, 1, 1, 0, 1, 1, 0, 0]);
    expect(Array.from(lengthMask(p.lengths, 3))).toEqual(Array.from(p.mask));
  });

  it('truncates at maxLength from either end, pads with padValue, keeps empty sequences as one step', () => {
    const p = padSequences([[1, 2, 3, 4], []], { maxLength: 2, padValue: -1 });
    expect(Array.from(p.data)).toEqual([1, -1, 2, -1]);
    expect(Array.from(p.lengths)).toEqual([2, 1]);
    const q = padSequences([[1, 2, 3, 4]], { maxLength: 2, truncate: 'start' });
    expect(Array.from(q.data)).toEqual([3, 4]);
    expect(() => padSequences([])).toThrow(/non-empty/);
  });

  it('pads feature sequences into [T, B, F]', () => {
    const { x, lengths } = padFeatureSequences([[[1, 2]], [[3, 4], [5, 6]]]);
    expect(x.shape).toEqual([2, 2, 2]);
    expect(Array.from(lengths)).toEqual([1, 2]);
    expect(x.toArray()).toEqual([1, 2, 3, 4, 0, 0, 5, 6]);
  });

  it('a padded batch through an LSTM with lengths equals each sequence run alone', () => {
    const rng = new Rng(1);
    const lstm = new LSTM({ inputSize: 2, hiddenSize: 3, rng });
    const seqs = [[[1, 0], [0, 1], [1, 1]], [[0.5, -1]]];
    const { x, lengths } = padFeatureSequences(seqs);
    const { output, hN } = lstm.forward(x, { lengths });
    const pooled = lastStep(output, lengths);
    expect(Array.from(pooled.data)).toEqual(Array.from(hN.data));
    const alone = lstm.forward(new Tensor(seqs[1].flat(), [1, 1, 2])).hN;
    for (let i = 0; i < 3; i++) expect(hN.data[3 + i]).toBeCloseTo(alone.data[i], 6);
  });
});

describe('masked pooling and attention', () => {
  const lengths = [3, 1, 2];
  it('mean, max and last step ignore padding', () => {
    // x [T=3, B=3, C=1]; padding holds huge values that must not show up
    const x = new Tensor([1, 2, 3, 4, 99, 5, 6, 99, 99], [3, 3, 1]);
    expect(maskedMeanPool(x, lengths).toArray()).toEqual([Math.fround(11 / 3), 2, 4]);
    expect(maskedMaxPool(x, lengths).toArray()).toEqual([6, 2, 5]);
    expect(lastStep(x, lengths).toArray()).toEqual([6, 2, 5]);
    expect(maskedMeanPool(x).toArray()[1]).toBeCloseTo((2 + 99 + 99) / 3, 4);
    expect(() => lastStep(x, [4, 1, 1])).toThrow(/out of range/);
  });

  it('gradients match finite differences and padding gets none', () => {
    const rng = new Rng(3);
    const x = randn(rng, [3, 3, 4]);
    for (const op of [maskedMeanPool, maskedMaxPool, lastStep]) {
      expect(gradCheck([x], () => weighted(op(x, lengths)))).toBeLessThan(3e-3);
      // padding positions: t >= len_b
      for (let b = 0; b < 3; b++) for (let t = lengths[b]; t < 3; t++) for (let c = 0; c < 4; c++) expect(x.grad![(t * 3 + b) * 4 + c]).toBe(0);
    }
    expect(gradCheck([x], () => weighted(timeSlice(x, 1, 3)))).toBeLessThan(3e-3);
  });

  it('dot attention: weights sum to one over real keys, gradients match finite differences', () => {
    const rng = new Rng(4);
    const q = randn(rng, [2, 3, 4]);
    const k = randn(rng, [3, 3, 4]);
    const { weights } = dotAttention(q, k, lengths);
    for (let t = 0; t < 2; t++) {
      for (let b = 0; b < 3; b++) {
        const row = Array.from(weights.subarray((t * 3 + b) * 3, (t * 3 + b + 1) * 3));
        expect(row.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
        for (let s = lengths[b]; s < 3; s++) expect(row[s]).toBe(0);
      }
    }
    expect(gradCheck([q, k], () => weighted(dotAttention(q, k, lengths).context))).toBeLessThan(3e-3);
    for (let b = 0; b < 3; b++) for (let s = lengths[b]; s < 3; s++) for (let c = 0; c < 4; c++) expect(k.grad![(s * 3 + b) * 4 + c]).toBe(0);
  });
});

describe('text', () => {
  it('word tokenizer caps the vocabulary by frequency, maps the rest to <unk>', () => {
    const tok = WordTokenizer.fit(['the cat sat', 'the dog sat', 'The END!'], { maxSize: 5 });
    expect(tok.vocab.symbols).toEqual(['<pad>', '<unk>', 'the', 'sat', 'cat']);
    expect(tok.encode('The cat ran!')).toEqual([2, 4, 1, 1]);
    expect(tok.encode('the cat sat', 2)).toEqual([2, 4]);
    expect(tok.decode([2, 4, 1])).toBe('the cat <unk>');
    expect(tok.tokenize("Don't stop-now")).toEqual(["don't", 'stop', '-', 'now']);
    const again = WordTokenizer.fromVocabulary(tok.vocab.toJSON());
    expect(again.encode('the cat')).toEqual([2, 4]);
  });

  it('one word splitter: the word tokenizer and word-level LM vocabularies split alike', () => {
    const text = "The whale’s jaw, don't snake_case rock'n'roll x''y 42km!";
    const words = ['The', 'whale’s', 'jaw', ',', "don't", 'snake_case', "rock'n'roll", 'x', "'", "'", 'y', '42km', '!'];
    expect(splitWords(text)).toEqual(words);
    expect(tokenize(text, 'word')).toEqual(words);
    expect(WordTokenizer.fit([text]).tokenize(text)).toEqual(words.map((w) => w.toLowerCase()));
  });

  it('vocabulary with specials and minCount', () => {
    const v = SymbolTable.build([['a', 'b', 'a'], ['c']], { specials: ['<s>'], minCount: 2 });
    expect(v.symbols).toEqual(['<pad>', '<unk>', '<s>', 'a']);
    expect(v.encode(['a', 'z'])).toEqual([3, 1]);
  });
});

describe('metrics', () => {
  it('accuracy, precision, recall, F1', () => {
    const pred = [1, 1, 0, 0, 1, 0];
    const gold = [1, 0, 0, 1, 1, 0];
    expect(accuracy(pred, gold)).toBeCloseTo(4 / 6);
    const s = binaryScores(pred, gold);
    expect([s.tp, s.fp, s.tn, s.fn]).toEqual([2, 1, 2, 1]);
    expect(s.precision).toBeCloseTo(2 / 3);
    expect(s.recall).toBeCloseTo(2 / 3);
    expect(s.f1).toBeCloseTo(2 / 3);
    expect(binaryScores([0, 0], [0, 0]).f1).toBe(0);
    expect(() => accuracy([1], [1, 2])).toThrow(/entries/);
  });

  it('edit distance, token (phoneme) and sequence (word) error rates', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance([], ['a', 'b'])).toBe(2);
    expect(editDistance(['K', 'AE', 'T'], ['K', 'AE', 'T'])).toBe(0);
    const hyp = [['K', 'AE', 'T'], ['D', 'AO']];
    const ref = [['K', 'AE', 'T'], ['D', 'AO', 'G']];
    expect(tokenErrorRate(hyp, ref)).toBeCloseTo(1 / 6);
    expect(sequenceErrorRate(hyp, ref)).toBe(0.5);
  });

  it('RMSE and MAE', () => {
    expect(rmse([1, 2, 3], [1, 2, 5])).toBeCloseTo(Math.sqrt(4 / 3));
    expect(mae([1, 2, 3], [1, 0, 5])).toBeCloseTo(4 / 3);
  });
});

describe('decoding', () => {
  // A hand-made model over tokens {0: eos, 1: bos, 2: A, 3: B}. The state is the prefix.
  // P(A) = 0.6, P(B) = 0.4 first; after A every continuation is unlikely (0.4 at most), after B
  // eos has 0.9. Greedy takes A (0.6 * 0.4 = 0.24); the best sequence is B eos (0.36).
  const table = (prefix: number[]): number[] => {
    const key = prefix.join(',');
    if (key === '') return [0.0, 0, 0.6, 0.4];
    if (key === '2') return [0.4, 0, 0.3, 0.3];
    if (key === '3') return [0.9, 0, 0.05, 0.05];
    return [1, 0, 0, 0];
  };
  const model: StepDecoder<number[][]> = {
    vocabSize: 4,
    step: (tokens, prefixes) => {
      const next = prefixes.map((p, n) => (tokens[n] === 1 ? p : [...p, tokens[n]]));
      return { logProbs: Float32Array.from(next.flatMap((p) => table(p).map(Math.log))), state: next };
    },
    select: (prefixes, rows) => rows.map((r) => prefixes[r]),
  };

  it('greedy misses the best sequence, beam search finds it', () => {
    expect(greedyDecode(model, [[]], 1, { bos: 1, eos: 0 })).toEqual([[2]]);
    const hyps = beamSearch(model, [[]], { bos: 1, eos: 0, beamSize: 2 });
    expect(hyps[0].tokens).toEqual([3]);
    expect(Math.exp(hyps[0].logProb)).toBeCloseTo(0.36, 5);
    expect(hyps[1].tokens).toEqual([2]);
    // a beam of one is greedy
    expect(beamSearch(model, [[]], { bos: 1, eos: 0, beamSize: 1 })[0].tokens).toEqual([2]);
  });

  it('encoder-decoder learns to reverse short sequences with teacher forcing; greedy and beam decode them', () => {
    const rng = new Rng(5);
    // tokens: 0 pad, 1 bos, 2 eos, 3..6 symbols
    const model = new Seq2Seq({ srcVocabSize: 7, tgtVocabSize: 7, embeddingDim: 8, hiddenSize: 16, rng });
    const opt = new Adam(model.parameters(), { lr: 0.02 });
    const make = (n: number) => Array.from({ length: n }, () => Array.from({ length: 1 + rng.int(4) }, () => 3 + rng.int(4)));
    for (let step = 0; step < 150; step++) {
      const srcs = make(16);
      const src = padSequences(srcs);
      const tgtIn = padSequences(srcs.map((s) => [1, ...[...s].reverse()]));
      const tgtOut = padSequences(srcs.map((s) => [...[...s].reverse(), 2]), { padValue: -100 });
      opt.zeroGrad();
      const logits = model.forward(src.data, src.T, src.B, src.lengths, tgtIn.data, tgtIn.T);
      crossEntropy(logits, tgtOut.data).backward();
      opt.step();
    }
    const tests = make(20);
    const src = padSequences(tests);
    const want = tests.map((s) => [...s].reverse());
    const greedy = model.greedy(src.data, src.T, src.B, src.lengths, { bos: 1, eos: 2, maxLength: 8 });
    const beam = model.beam(src.data, src.T, src.B, src.lengths, { bos: 1, eos: 2, maxLength: 8, beamSize: 3 });
    expect(sequenceErrorRate(greedy, want)).toBeLessThan(0.3);
    expect(sequenceErrorRate(beam, want)).toBeLessThan(0.3);
    // the decoder's initial state is the encoder's final state: batch row b of h equals [fwd_b, bwd_b]
    const enc = noGrad(() => model.encode(src.data, src.T, src.B, src.lengths));
    expect(enc.h.shape).toEqual([1, src.B, 32]);
  });
});
