// Loader of the WebAssembly backend (assembly/, built by AssemblyScript).
// Filled in by the wasm-backend issue; until then it reports why it is unavailable.
import type { Backend } from './backend.js';

export function loadWasmBackend(): Backend {
  throw new Error('the wasm build is not part of this build yet');
}
