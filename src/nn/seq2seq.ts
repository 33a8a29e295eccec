// Encoder-decoder (sequence-to-sequence) model and decoding.
//
// Encoder: Embedding -> bidirectional LSTM over the padded source (with lengths).
// Decoder: Embedding -> LSTM whose initial (h, c) is the encoder's final forward and backward
//   states of the last layer concatenated ([1, B, 2H]), so its hidden size is 2 * hiddenSize;
//   optionally Luong dot attention over the encoder outputs, then Linear to the target vocabulary.
// Training uses teacher forcing: the decoder reads the true previous target token at every step.
// Decoding (greedyDecode, beamSearch) works on any StepDecoder, so it is testable on a hand-made model.
import { Embedding, LSTM, Linear, Module } from './layers.js';
import { concatLast, logSoftmaxRows, reshape, select, tanh } from '../core/ops.js';
import type { Rng } from '../core/random.js';
import { dotAttention } from './seq.js';
import { Tensor, noGrad } from '../core/tensor.js';

/** One decoding step over a batch of N hypotheses, and reordering of the batch. */
export interface StepDecoder<S> {
  /** tokens [N] (the previous token of each hypothesis) -> log-probabilities [N, vocabSize] and the next state. */
  step(tokens: readonly number[], state: S): { logProbs: Float32Array; state: S };
  /** The state of the hypotheses at the given batch rows (rows may repeat). */
  select(state: S, rows: readonly number[]): S;
  readonly vocabSize: number;
}

/**
 * Options of greedy and beam decoding: the start (bos) and end (eos) token ids, and a maximum
 * length.
 */
export interface DecodeOptions {
  /** Token fed at the first step. */
  bos: number;
  /** Token that ends a hypothesis (not included in the result). */
  eos: number;
  /** Stop after this many tokens (default 50). */
  maxLength?: number;
}

/** Greedy decoding: the most probable token at every step, for a batch of N sources. */
export function greedyDecode<S>(decoder: StepDecoder<S>, state: S, batchSize: number, options: DecodeOptions): number[][] {
  const maxLength = options.maxLength ?? 50;
  const V = decoder.vocabSize;
  const out: number[][] = Array.from({ length: batchSize }, () => []);
  const done = new Array<boolean>(batchSize).fill(false);
  let tokens = new Array<number>(batchSize).fill(options.bos);
  let s = state;
  for (let t = 0; t < maxLength && done.includes(false); t++) {
    const r = decoder.step(tokens, s);
    s = r.state;
    tokens = tokens.map((_, n) => {
      let best = 0;
      for (let v = 1; v < V; v++) if (r.logProbs[n * V + v] > r.logProbs[n * V + best]) best = v;
      if (!done[n]) {
        if (best === options.eos) done[n] = true;
        else out[n].push(best);
      }
      return best;
    });
  }
  return out;
}

/** Options of `beamSearch`: beam width and length penalty, beside the decoding options. */
export interface BeamOptions extends DecodeOptions {
  /** Hypotheses kept at every step (default 5). */
  beamSize?: number;
  /** Rank finished hypotheses by log-probability / length^alpha (default 0: plain log-probability). */
  lengthPenalty?: number;
}

/** A decoded sequence with its log-probability. */
export interface Hypothesis {
  tokens: number[];
  /** Total log-probability (eos included). */
  logProb: number;
}

/**
 * Beam search for ONE source (state of batch size 1): keeps the beamSize best partial
 * hypotheses by total log-probability, and returns the finished ones, best first.
 */
export function beamSearch<S>(decoder: StepDecoder<S>, state: S, options: BeamOptions): Hypothesis[] {
  const K = options.beamSize ?? 5;
  const maxLength = options.maxLength ?? 50;
  const alpha = options.lengthPenalty ?? 0;
  const V = decoder.vocabSize;
  const rank = (h: Hypothesis) => h.logProb / (alpha ? Math.pow(h.tokens.length + 1, alpha) : 1);
  let beams: Hypothesis[] = [{ tokens: [], logProb: 0 }];
  let s = state;
  const finished: Hypothesis[] = [];
  for (let t = 0; t < maxLength && beams.length > 0; t++) {
    const r = decoder.step(beams.map((b) => (b.tokens.length ? b.tokens[b.tokens.length - 1] : options.bos)), s);
    const candidates: Array<{ from: number; token: number; logProb: number }> = [];
    beams.forEach((b, n) => {
      for (let v = 0; v < V; v++) candidates.push({ from: n, token: v, logProb: b.logProb + r.logProbs[n * V + v] });
    });
    candidates.sort((a, b) => b.logProb - a.logProb);
    const next: Hypothesis[] = [];
    const rows: number[] = [];
    for (const c of candidates) {
      if (next.length >= K) break;
      if (c.token === options.eos) {
        // a finished hypothesis takes a beam slot only among the top candidates
        finished.push({ tokens: beams[c.from].tokens, logProb: c.logProb });
        continue;
      }
      next.push({ tokens: [...beams[c.from].tokens, c.token], logProb: c.logProb });
      rows.push(c.from);
    }
    // stop when no live hypothesis can beat the best finished one (log-probabilities only fall)
    if (alpha === 0 && finished.length >= K && next.every((h) => h.logProb < Math.max(...finished.map((f) => f.logProb)))) break;
    beams = next;
    if (beams.length) s = decoder.select(r.state, rows);
  }
  if (finished.length === 0) finished.push(...beams);
  return finished.sort((a, b) => rank(b) - rank(a)).slice(0, K);
}

/** Rows of a [..., N, C]-shaped tensor's middle (batch) dimension: x [A, N, C] -> [A, rows.length, C] (no gradient). */
export function gatherBatch(x: Tensor, rows: readonly number[]): Tensor {
  const [A, N, C] = x.shape;
  const out = new Float32Array(A * rows.length * C);
  for (let a = 0; a < A; a++) {
    rows.forEach((r, i) => {
      if (r < 0 || r >= N) throw new RangeError(`gatherBatch: row ${r} out of range 0..${N - 1}`);
      out.set(x.data.subarray((a * N + r) * C, (a * N + r + 1) * C), (a * rows.length + i) * C);
    });
  }
  return new Tensor(out, [A, rows.length, C]);
}

/**
 * Options of `Seq2Seq`: source and target vocabulary sizes, embedding and hidden sizes, layers,
 * attention, dropout, random source.
 */
export interface Seq2SeqOptions {
  srcVocabSize: number;
  tgtVocabSize: number;
  embeddingDim: number;
  /** Encoder hidden size per direction; the decoder's is twice this. */
  hiddenSize: number;
  /** Encoder layers (default 1). */
  numLayers?: number;
  /** Luong dot attention over the encoder outputs (default true). */
  attention?: boolean;
  dropout?: number;
  rng?: Rng;
}

/** What the encoder hands the decoder. */
export interface EncoderState {
  /** [S, B, 2H] encoder outputs (attention memory). */
  memory: Tensor;
  /** [B] source lengths. */
  lengths: Int32Array;
  /** [1, B, 2H] decoder hidden and cell state. */
  h: Tensor;
  c: Tensor;
}

/** Bidirectional-LSTM encoder, LSTM decoder started from the encoder's final states. */
export class Seq2Seq extends Module {
  readonly srcEmbedding: Embedding;
  readonly encoder: LSTM;
  readonly tgtEmbedding: Embedding;
  readonly decoder: LSTM;
  readonly combine: Linear | null;
  readonly fc: Linear;
  readonly options: Seq2SeqOptions;

  constructor(options: Seq2SeqOptions) {
    super();
    this.options = options;
    const { embeddingDim: E, hiddenSize: H, rng } = options;
    this.srcEmbedding = this.registerModule('src_embedding', new Embedding(options.srcVocabSize, E, { paddingIdx: 0, rng }));
    this.encoder = this.registerModule('encoder', new LSTM({ inputSize: E, hiddenSize: H, numLayers: options.numLayers ?? 1, bidirectional: true, dropout: options.dropout ?? 0, rng }));
    this.tgtEmbedding = this.registerModule('tgt_embedding', new Embedding(options.tgtVocabSize, E, { paddingIdx: 0, rng }));
    this.decoder = this.registerModule('decoder', new LSTM({ inputSize: E, hiddenSize: 2 * H, rng }));
    this.combine = options.attention === false ? null : this.registerModule('combine', new Linear(4 * H, 2 * H, { rng }));
    this.fc = this.registerModule('fc', new Linear(2 * H, options.tgtVocabSize, { rng }));
  }

  // src ids [S, B] time-major, lengths [B] -> encoder memory and the decoder's initial state
  encode(src: ArrayLike<number>, S: number, B: number, lengths: ArrayLike<number>): EncoderState {
    const x = this.srcEmbedding.forward(src, [S, B]);
    const { output, hN, cN } = this.encoder.forward(x, { lengths });
    const L = this.encoder.numLayers;
    const H = this.options.hiddenSize;
    // last layer: forward direction at 2L-2, backward at 2L-1; each [B, H] -> [1, B, 2H]
    const join = (t: Tensor) => reshape(concatLast([select(t, 2 * L - 2), select(t, 2 * L - 1)]), [1, B, 2 * H]);
    return { memory: output, lengths: Int32Array.from(lengths), h: join(hN), c: join(cN!) };
  }

  // tgtIn ids [T, B] (teacher forcing: bos then the target shifted) -> logits [T, B, V], final state
  decode(tgtIn: ArrayLike<number>, T: number, B: number, enc: EncoderState): { logits: Tensor; h: Tensor; c: Tensor } {
    const y = this.tgtEmbedding.forward(tgtIn, [T, B]);
    const { output, hN, cN } = this.decoder.forward(y, { h0: enc.h, c0: enc.c });
    let top = output;
    if (this.combine) {
      const { context } = dotAttention(output, enc.memory, enc.lengths);
      top = tanh(this.combine.forward(concatLast([output, context])));
    }
    return { logits: this.fc.forward(top), h: hN, c: cN! };
  }

  /** Teacher-forced logits [T, B, V] for a batch. */
  forward(src: ArrayLike<number>, S: number, B: number, lengths: ArrayLike<number>, tgtIn: ArrayLike<number>, T: number): Tensor {
    return this.decode(tgtIn, T, B, this.encode(src, S, B, lengths)).logits;
  }

  /** The model as a StepDecoder (no gradient) for greedyDecode / beamSearch, from an encoded batch. */
  stepDecoder(): StepDecoder<EncoderState> {
    const V = this.options.tgtVocabSize;
    return {
      vocabSize: V,
      step: (tokens, state) => noGrad(() => {
        const r = this.decode(tokens, 1, tokens.length, state);
        return { logProbs: logSoftmaxRows(r.logits.data, V), state: { ...state, h: r.h, c: r.c } };
      }),
      select: (state, rows) => ({
        memory: gatherBatch(state.memory, rows),
        lengths: Int32Array.from(rows, (r) => state.lengths[r]),
        h: gatherBatch(state.h, rows),
        c: gatherBatch(state.c, rows),
      }),
    };
  }

  /** Greedy decoding of a padded source batch. */
  greedy(src: ArrayLike<number>, S: number, B: number, lengths: ArrayLike<number>, options: DecodeOptions): number[][] {
    const enc = noGrad(() => this.encode(src, S, B, lengths));
    return greedyDecode(this.stepDecoder(), enc, B, options);
  }

  /** Beam search for every source of a padded batch (one beam search per source); the best hypothesis each. */
  beam(src: ArrayLike<number>, S: number, B: number, lengths: ArrayLike<number>, options: BeamOptions): number[][] {
    const dec = this.stepDecoder();
    const enc = noGrad(() => this.encode(src, S, B, lengths));
    const out: number[][] = [];
    for (let b = 0; b < B; b++) {
      const one = dec.select(enc, [b]);
      out.push(beamSearch(dec, one, options)[0]?.tokens ?? []);
    }
    return out;
  }
}
