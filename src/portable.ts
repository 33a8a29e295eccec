// The runtime-neutral API of rnnkit: everything here runs in Node.js, Deno, Bun, Cloudflare
// Workers and browsers (no static import of a Node module). src/index.ts adds the Node-only parts;
// src/wasm-entry.ts adds the wasm builders for hosts that hand over the .wasm bytes.
export { Tensor, noGrad, noGradAsync, isGradEnabled, type GradNode } from './core/tensor.js';
export {
  add, sub, mul, scale, sum, mean, reshape, transpose01, concatLast, select, stack, matmul, linear,
  tanh, sigmoid, relu, embedding, dropout, crossEntropy, mseLoss, bceWithLogits, softmax, logSoftmaxRows,
  type CrossEntropyOptions, type Reduction,
} from './core/ops.js';
export {
  Module, Linear, Embedding, Dropout, Sequential, RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell, RecurrentBase,
  type RNNOptions, type RecurrentInput, type RecurrentOutput, type CellState, type StateDict,
  type LinearOptions, type EmbeddingOptions, type CellOptions,
} from './nn/layers.js';
export type { DirectionWeights } from './nn/recurrent.js';
export { LanguageModel, RecurrentModel, type LanguageModelOptions, type RecurrentModelParts, type RecurrentState } from './nn/models.js';
export { SGD, Adam, AdamW, Optimizer, clipGradNorm, clipGradValue, type OptimizerState, type SGDOptions, type AdamOptions } from './nn/optim.js';
export { Rng, manualSeed } from './core/random.js';
export { setCheckFinite } from './core/config.js';
export { readSafetensors, writeSafetensors, SafetensorsError, type NamedTensor } from './io/safetensors.js';
export { loadTfjsModel, toTfjsModel, TfjsModel, TfjsError, type TfjsArtifacts } from './io/tfjs.js';
export { cellMetadata, cellOptionsFromMetadata, moduleFromSafetensors, moduleFromStateDict, torchStateDict, type StateDictOptions } from './io/torch.js';
export {
  getBackend, setBackend, withBackend, loadBackend, backendStatus, setMatmulPrecision, getMatmulPrecision,
  BACKEND_NAMES, type BackendName, type BackendStatus, type SetBackendOptions,
} from './backends/index.js';
export type {
  AsyncJobStats, Backend, BackendInfo, NativeMemoryStats, CellKind, SeqForwardArgs, SeqBackwardArgs, MatmulPrecision, AdamArgs, SgdArgs,
} from './backends/backend.js';
export { ReferenceBackend, type FloatArray } from './backends/reference.js';
export { CrossCheckBackend, CrossCheckError, type CrossCheckOptions } from './backends/crosscheck.js';

// ---- sequence tasks: padding, pooling, attention, text, metrics, encoder-decoder ----
export {
  padSequences, padFeatureSequences, lengthMask, maskedMeanPool, maskedMaxPool, lastStep, timeSlice, dotAttention,
  type PaddedBatch, type PadOptions,
} from './nn/seq.js';
export { SymbolTable, WordTokenizer, splitWords, type SymbolTableOptions, type WordTokenizerOptions } from './tasks/text.js';
export {
  accuracy, binaryScores, editDistance, tokenErrorRate, sequenceErrorRate, rmse, mae, type BinaryScores,
} from './tasks/metrics.js';
export {
  Seq2Seq, greedyDecode, beamSearch, gatherBatch,
  type Seq2SeqOptions, type EncoderState, type StepDecoder, type DecodeOptions, type BeamOptions, type Hypothesis,
} from './nn/seq2seq.js';
