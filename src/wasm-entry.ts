// rnnkit/wasm: the entry for edge runtimes and browsers (Deno, Bun, Cloudflare Workers, web
// pages). It never touches Node-only modules: the host hands over the .wasm bytes, a compiled
// WebAssembly.Module (Cloudflare Workers: `import wasm from 'rnnkit/rnnkit.wasm'`), or a fetch()
// Response, and gets the wasm backend plus the safetensors reader.
//
//   import { createWasmBackend, readSafetensors } from 'rnnkit/wasm';
//   import wasm from './rnnkit.wasm';            // a WebAssembly.Module in workerd
//   const backend = createWasmBackend(wasm);
//   const { tensors } = readSafetensors(new Uint8Array(bytes));
//   backend.seqForward({ cell: 'lstm', ... });
export {
  WasmBackend, WasmArena, createWasmBackend, createWasmBackendAsync, pickWasmBuild,
  type WasmBackendOptions, type WasmKernels, type WasmSource,
} from './backends/wasm-core.js';
export { readSafetensors, writeSafetensors, SafetensorsError, type NamedTensor } from './safetensors.js';
export type {
  Backend, BackendInfo, CellKind, SeqBackwardArgs, SeqContext, SeqForwardArgs, UnaryOp,
} from './backends/backend.js';
export { gateCount, recurrentSize } from './backends/backend.js';
