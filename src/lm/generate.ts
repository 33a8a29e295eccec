// Text generation: greedy, temperature, top-k and top-p (nucleus) sampling, seeded, streamed token
// by token through single-step cells (LSTMCell / GRUCell / RNNCell carrying the weights of each
// layer of the trained stack) with the recurrent state kept between calls.
import type { LanguageModel } from '../nn/models.js';
import { type CellState, type StepCell, stepCell } from '../nn/layers.js';
import { parameterNames } from '../backends/cells.js';
import { softmaxProbs } from '../core/ops.js';
import { Rng, drawIndex } from '../core/random.js';
import { Tensor, noGrad } from '../core/tensor.js';
import { EOS_ID, PAD_ID, UNK_ID, type Vocabulary } from './vocab.js';

export { drawIndex, softmaxProbs };

/** How to pick each next token: temperature (0 = greedy), top-k, top-p. */
export interface SamplingOptions {
  /** Softmax temperature; 0 means greedy (the most likely token). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probabilities add up to at least p (1: all). */
  topP?: number;
}

/** Throws a RangeError naming the option when a sampling option is out of range. */
export function checkSamplingOptions(o: SamplingOptions): void {
  const t = o.temperature ?? 1;
  if (!(t >= 0) || !Number.isFinite(t)) throw new RangeError(`temperature must be a finite number >= 0, received ${o.temperature}`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) throw new RangeError(`top-k must be a non-negative integer, received ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new RangeError(`top-p must be in (0, 1], received ${o.topP}`);
}

/**
 * Restricts a probability distribution to its top-k tokens and then to its top-p nucleus, and
 * renormalises. Ties keep the lower index first. Always keeps at least one token.
 */
export function filterDistribution(probs: ArrayLike<number>, topK = 0, topP = 1): Float64Array {
  const n = probs.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  let keep = n;
  if (topK > 0) keep = Math.min(keep, topK);
  if (topP < 1) {
    let total = 0;
    for (let i = 0; i < keep; i++) total += probs[order[i]];
    let cum = 0;
    for (let i = 0; i < keep; i++) {
      cum += probs[order[i]];
      if (cum >= topP * total) { keep = i + 1; break; }
    }
  }
  const out = new Float64Array(n);
  let s = 0;
  for (let i = 0; i < keep; i++) s += probs[order[i]];
  for (let i = 0; i < keep; i++) out[order[i]] = probs[order[i]] / s;
  return out;
}

/** Picks the next token from logits: greedy when temperature is 0, otherwise seeded sampling. */
export function pickToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng, banned: readonly number[] = []): number {
  const temperature = o.temperature ?? 1;
  if (temperature === 0) {
    let best = -1;
    for (let i = 0; i < logits.length; i++) if (!banned.includes(i) && (best < 0 || logits[i] > logits[best])) best = i;
    return best;
  }
  const probs = filterDistribution(softmaxProbs(logits, temperature, banned), o.topK ?? 0, o.topP ?? 1);
  return drawIndex(probs, rng);
}


/**
 * Streams text out of a trained LanguageModel one token at a time. The model's weights are copied
 * into one single-step cell per layer when the generator is made (train more, make a new one).
 */
export class TextGenerator {
  private readonly cells: StepCell[];
  private states: Array<CellState | null>;
  private lastLogits: Float32Array | null = null;
  private lastId: number | null = null;
  readonly banned: number[] = [PAD_ID, UNK_ID];

  constructor(private readonly model: LanguageModel, readonly vocab: Vocabulary) {
    const layers = model.options.numLayers ?? 1;
    const H = model.options.hiddenSize;
    const E = model.options.embeddingDim;
    const params = new Map(model.rnn.namedParameters());
    this.cells = [];
    for (let l = 0; l < layers; l++) {
      const input = l === 0 ? E : H;
      const rng = new Rng(0); // the init is overwritten by the trained weights just below
      const kind = model.rnn.cell;
      const cell = stepCell(kind, input, H, { rng });
      const sd = new Map<string, { shape: number[]; data: Float32Array }>();
      const layerNames = parameterNames(kind, l, false, { bias: true, projSize: 0 });
      const cellNames = parameterNames(kind, null, false, { bias: true, projSize: 0 });
      for (const k of ['wIh', 'wHh', 'bIh', 'bHh'] as const) {
        const p = params.get(layerNames[k]!);
        if (p) sd.set(cellNames[k]!, { shape: [...p.shape], data: p.data });
      }
      cell.loadStateDict(sd);
      cell.eval();
      this.cells.push(cell);
    }
    this.states = this.cells.map(() => null);
    if (vocab.size !== model.options.vocabSize) {
      throw new RangeError(`TextGenerator: the vocabulary has ${vocab.size} tokens but the model ${model.options.vocabSize}`);
    }
  }

  /** Forgets the recurrent state (start of a new text). */
  reset(): void {
    this.states = this.cells.map(() => null);
    this.lastLogits = null;
    this.lastId = null;
  }

  /** Feeds one token through embedding -> cells -> fc; returns the logits of the next token. */
  step(id: number): Float32Array {
    return noGrad(() => {
      const E = this.model.options.embeddingDim;
      const w = this.model.embedding.weight.data;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocab.size) throw new RangeError(`TextGenerator.step: id ${id} is out of range`);
      let x = new Tensor(w.slice(id * E, (id + 1) * E), [1, E]);
      this.cells.forEach((cell, l) => {
        const s = cell.step(x, this.states[l]);
        this.states[l] = s;
        x = s.h;
      });
      const logits = this.model.fc.forward(x).data;
      this.lastLogits = logits;
      this.lastId = id;
      return logits;
    });
  }

  /** Feeds a prime text (an empty prime feeds a line end, or <eos>). Returns the next-token logits. */
  prime(text: string): Float32Array {
    let ids = Array.from(this.vocab.encode(text));
    if (ids.length === 0) {
      const nl = this.vocab.level === 'char' ? this.vocab.id('\n') : EOS_ID;
      ids = [nl === UNK_ID ? EOS_ID : nl];
    }
    let logits = this.lastLogits ?? new Float32Array(0);
    for (const id of ids) logits = this.step(id);
    return logits;
  }

  /**
   * Yields `length` pieces of text one token at a time, continuing from the current state (call
   * prime() first). Word-level pieces carry their leading space. Stops early at <eos> when stopAtEos.
   */
  *stream(length: number, o: SamplingOptions = {}, rng: Rng = new Rng(0), stopAtEos = false): Generator<string> {
    checkSamplingOptions(o);
    if (!this.lastLogits) this.prime('');
    for (let i = 0; i < length; i++) {
      const id = pickToken(this.lastLogits!, o, rng, this.banned);
      if (stopAtEos && id === EOS_ID) return;
      const piece = this.vocab.piece(id, this.lastId);
      this.step(id);
      yield piece;
    }
  }

  /** prime + stream, collected: the prime text followed by `length` generated tokens. */
  generate(prime: string, length: number, o: SamplingOptions = {}, seed = 0): string {
    this.reset();
    this.prime(prime);
    let s = prime;
    for (const piece of this.stream(length, o, new Rng(seed))) s += piece;
    return s;
  }
}
