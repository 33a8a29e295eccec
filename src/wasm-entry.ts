// rnnkit/wasm: the entry for edge runtimes and browsers (Deno, Bun, Cloudflare Workers, web
// pages). It never touches Node-only modules: the host hands over the .wasm bytes, a compiled
// WebAssembly.Module (Cloudflare Workers: `import wasm from 'rnnkit/rnnkit.wasm'`), or a fetch()
// Response, builds the wasm backend from it, and has the whole model API (layers, training,
// safetensors bytes) on top of it.
//
//   import { createWasmBackend, setBackend, LSTM, Tensor, readSafetensors } from 'rnnkit/wasm';
//   import wasm from 'rnnkit/rnnkit.wasm';       // a WebAssembly.Module in workerd
//   setBackend(createWasmBackend(wasm));
//   const lstm = new LSTM({ inputSize: 4, hiddenSize: 5 });
//   lstm.loadStateDict(readSafetensors(new Uint8Array(bytes)).tensors);
//   const { output } = lstm.forward(x);
export {
  WasmBackend, WasmArena, WasmHeap, createWasmBackend, createWasmBackendAsync, pickWasmBuild, isThreadedBuild, wasmThreadsUnavailable,
  MAX_WASM_THREADS,
  type WasmBackendOptions, type WasmHeapStats, type StepSplitChoice, type WasmKernels, type WasmSource,
} from './backends/wasm-core.js';
export * from './portable.js';
export type { SeqContext, UnaryOp } from './backends/backend.js';
export { gateCount, recurrentSize } from './backends/backend.js';
// Language models without a file system: vocabularies and text generation, the same sampling as
// `rnnkit sample` (a seed gives the same text in both), for models read from a run directory's
// weights.safetensors, vocab.json and config.json.
export {
  Vocabulary, tokenize, PAD, UNK, EOS, PAD_ID, UNK_ID, EOS_ID, SPECIALS,
  type VocabLevel, type VocabularyJSON, type BuildVocabOptions,
} from './lm/vocab.js';
export {
  TextGenerator, pickToken, filterDistribution, softmaxProbs, drawIndex, checkSamplingOptions, type SamplingOptions,
} from './lm/generate.js';
