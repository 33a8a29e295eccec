// Node loader of the WebAssembly backend (assembly/, built by `npm run build:wasm` into
// dist/rnnkit.wasm and dist/rnnkit-relaxed.wasm). Reads the bytes next to the package with fs and
// builds the backend synchronously; edge runtimes use ./wasm-core.ts (or rnnkit/wasm) directly.
//
// RNNKIT_WASM_BUILD=plain|relaxed forces a build (relaxed fails where the runtime lacks it).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backend.js';
import { createWasmBackend, pickWasmBuild, type WasmBackend } from './wasm-core.js';

/** Where the built .wasm files may be: dist/ seen from dist/backends/ or from src/backends/. */
function findWasm(file: string): string | null {
  for (const rel of [`../${file}`, `../../dist/${file}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return null;
}

export function loadWasmBackend(): WasmBackend & Backend {
  if (typeof WebAssembly === 'undefined') throw new Error('this runtime has no WebAssembly');
  const plainPath = findWasm('rnnkit.wasm');
  if (!plainPath) throw new Error('dist/rnnkit.wasm is missing: run `npm run build:wasm`');
  const relaxedPath = findWasm('rnnkit-relaxed.wasm');
  const env = typeof process === 'undefined' ? undefined : process.env.RNNKIT_WASM_BUILD;
  const prefer = env === 'plain' || env === 'relaxed' ? env : 'auto';
  const plain = readFileSync(plainPath);
  const relaxed = relaxedPath ? readFileSync(relaxedPath) : null;
  const bytes = pickWasmBuild(plain, relaxed, prefer);
  const which = bytes === plain ? 'SIMD' : 'relaxed SIMD';
  return createWasmBackend(bytes, { detail: `AssemblyScript ${which} kernels (${bytes === plain ? plainPath : relaxedPath})` });
}
