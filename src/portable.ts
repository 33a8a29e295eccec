// The runtime-neutral API of rnnkit: everything here runs in Node.js, Deno, Bun, Cloudflare
// Workers and browsers (no static import of a Node module). src/index.ts adds the Node-only parts;
// src/wasm-entry.ts adds the wasm builders for hosts that hand over the .wasm bytes.
export { Tensor, noGrad, noGradAsync, isGradEnabled } from './tensor.js';
export {
  add, sub, mul, scale, sum, mean, reshape, transpose01, concatLast, select, stack, matmul, linear,
  tanh, sigmoid, relu, embedding, dropout, crossEntropy, mseLoss, bceWithLogits, softmax,
  type CrossEntropyOptions, type Reduction,
} from './ops.js';
export {
  Module, Linear, Embedding, Dropout, Sequential, RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell, RecurrentBase,
  type RNNOptions, type RecurrentInput, type RecurrentOutput, type CellState, type StateDict,
} from './nn.js';
export { LanguageModel, type LanguageModelOptions, type RecurrentState } from './models.js';
export { SGD, Adam, AdamW, Optimizer, clipGradNorm, clipGradValue, type OptimizerState } from './optim.js';
export { Rng, manualSeed } from './random.js';
export { setCheckFinite } from './config.js';
export { readSafetensors, writeSafetensors, SafetensorsError, type NamedTensor } from './safetensors.js';
export {
  getBackend, setBackend, withBackend, loadBackend, backendStatus, setMatmulPrecision, getMatmulPrecision,
  BACKEND_NAMES, type BackendName, type BackendStatus, type SetBackendOptions,
} from './backends/index.js';
export type {
  Backend, BackendInfo, CellKind, SeqForwardArgs, SeqBackwardArgs, MatmulPrecision,
} from './backends/backend.js';
export { ReferenceBackend } from './backends/reference.js';
export { CrossCheckBackend, CrossCheckError } from './backends/crosscheck.js';

// ---- sequence tasks: padding, pooling, attention, text, metrics, encoder-decoder ----
export {
  padSequences, padFeatureSequences, lengthMask, maskedMeanPool, maskedMaxPool, lastStep, timeSlice, dotAttention,
  type PaddedBatch, type PadOptions,
} from './seq.js';
export { SymbolTable, WordTokenizer, splitWords, type SymbolTableOptions, type WordTokenizerOptions } from './text.js';
export {
  accuracy, binaryScores, editDistance, tokenErrorRate, sequenceErrorRate, rmse, mae, type BinaryScores,
} from './metrics.js';
export {
  Seq2Seq, greedyDecode, beamSearch, logSoftmaxRows, gatherBatch,
  type Seq2SeqOptions, type EncoderState, type StepDecoder, type DecodeOptions, type BeamOptions, type Hypothesis,
} from './seq2seq.js';
