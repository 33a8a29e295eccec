// Ready-made models built from the layers.
import { type Tensor } from '../core/tensor.js';
import { Dropout, Embedding, Linear, Module, type RecurrentBase, type RecurrentInput, type RecurrentOutput, recurrentLayer } from './layers.js';
import { type LayerName, cellKindOf, cellSpec } from '../backends/cells.js';
import type { Rng } from '../core/random.js';

/**
 * Options of `LanguageModel`: vocabulary size, embedding and hidden sizes, layers, cell, dropout
 * and random source.
 */
export interface LanguageModelOptions {
  vocabSize: number;
  embeddingDim: number;
  hiddenSize: number;
  numLayers?: number;
  cell?: LayerName;
  /**
   * Dropout on the embeddings, between the recurrent layers and on the recurrent output, as in
   * PyTorch's word_language_model example (training mode only; 0 = none).
   */
  dropout?: number;
  rng?: Rng;
}

/** The recurrent state a language model carries between batches (c only for LSTM). */
export interface RecurrentState {
  h: Tensor | null;
  c: Tensor | null;
}

/**
 * Embedding -> recurrent stack -> Linear, PyTorch names `embedding.*`, `lstm.*` (or `gru.*`,
 * `rnn.*`) and `fc.*`: the CharLM of the golden cases and the model of `rnnkit train`.
 */
export class LanguageModel extends Module {
  readonly embedding: Embedding;
  readonly rnn: RecurrentBase;
  readonly fc: Linear;
  private readonly drop: Dropout;

  constructor(readonly options: LanguageModelOptions) {
    super();
    const { vocabSize, embeddingDim, hiddenSize, rng } = options;
    const cell = options.cell ?? 'lstm';
    this.embedding = this.registerModule('embedding', new Embedding(vocabSize, embeddingDim, { rng }));
    const rnnOptions = { inputSize: embeddingDim, hiddenSize, numLayers: options.numLayers ?? 1, dropout: options.dropout ?? 0, rng };
    const rnn = recurrentLayer(cellKindOf('LanguageModel', cell.toUpperCase()), rnnOptions);
    this.rnn = this.registerModule(cell, rnn);
    this.fc = this.registerModule('fc', new Linear(hiddenSize, vocabSize, { rng }));
    this.drop = this.registerModule('drop', new Dropout(options.dropout ?? 0, { rng }));
  }

  // tokens [T, B] (time-major ids) -> logits [T, B, vocab], and the final state
  forward(tokens: ArrayLike<number>, T: number, B: number, state: RecurrentState | null = null): { logits: Tensor; state: RecurrentState } {
    const x = this.drop.forward(this.embedding.forward(tokens, [T, B]));
    const { output, hN, cN } = this.rnn.forward(x, { h0: state?.h ?? null, c0: state?.c ?? null });
    return { logits: this.fc.forward(this.drop.forward(output)), state: { h: hN, c: cN } };
  }
}

/** The layers of a RecurrentModel. */
export interface RecurrentModelParts {
  /** Token ids in front of the recurrent stack (input: ids [T, B]); none = feature input [T, B, inputSize]. */
  embedding?: Embedding | null;
  rnn: RecurrentBase;
  /** Linear head applied to every step of the recurrent output. */
  fc?: Linear | null;
}

/**
 * Optional Embedding -> recurrent stack -> optional Linear: what model files (ONNX, safetensors
 * state_dicts) describe. Parameter names `embedding.*`, `lstm.*` / `gru.*` / `rnn.*`, `fc.*`, as in
 * LanguageModel, so a LanguageModel's weights load into it and back.
 */
export class RecurrentModel extends Module {
  readonly embedding: Embedding | null;
  readonly rnn: RecurrentBase;
  readonly fc: Linear | null;

  constructor(parts: RecurrentModelParts) {
    super();
    this.embedding = parts.embedding ? this.registerModule('embedding', parts.embedding) : null;
    this.rnn = this.registerModule(cellSpec(parts.rnn.cell).module.toLowerCase(), parts.rnn);
    this.fc = parts.fc ? this.registerModule('fc', parts.fc) : null;
  }

  /** x: token ids [T, B] (as numbers) with an embedding, else features [T, B, inputSize]. */
  forward(x: Tensor, state: RecurrentInput = {}): RecurrentOutput {
    const input = this.embedding ? this.embedding.forward(x.data, x.shape) : x;
    const r = this.rnn.forward(input, state);
    return { output: this.fc ? this.fc.forward(r.output) : r.output, hN: r.hN, cN: r.cN };
  }
}
