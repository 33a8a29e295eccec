// Node loader of the WebAssembly backend (assembly/, built by `npm run build:wasm` into
// dist/rnnkit.wasm and dist/rnnkit-relaxed.wasm). Reads the bytes next to the package with fs and
// builds the backend synchronously; edge runtimes use ./wasm-core.ts (or rnnkit/wasm) directly.
//
// No static import of a Node module: fs comes from process.getBuiltinModule at load time, so
// importing this file (through the backend registry) also works in browsers and workers, where
// loadWasmBackend() then says why it cannot load and the host builds the backend from bytes.
//
// RNNKIT_WASM_BUILD=plain|relaxed forces a build (relaxed fails where the runtime lacks it).
import type { Backend } from './backend.js';
import { readEnv } from '../core/config.js';
import { createWasmBackend, pickWasmBuild, type WasmBackend } from './wasm-core.js';

interface FsLike {
  existsSync(p: string): boolean;
  readFileSync(p: string): Uint8Array<ArrayBuffer>;
}
interface UrlLike {
  fileURLToPath(u: URL): string;
}
type GetBuiltin = (id: string) => unknown;

export function loadWasmBackend(): WasmBackend & Backend {
  if (typeof WebAssembly === 'undefined') throw new Error('this runtime has no WebAssembly');
  const proc = (globalThis as { process?: { getBuiltinModule?: GetBuiltin } }).process;
  const getBuiltin = proc?.getBuiltinModule;
  if (typeof getBuiltin !== 'function') {
    throw new Error('no file system here: build the backend from the .wasm bytes with rnnkit/wasm (createWasmBackend)');
  }
  const fs = getBuiltin('node:fs') as FsLike;
  const url = getBuiltin('node:url') as UrlLike;
  /** Where the built .wasm files may be: dist/ seen from dist/backends/ or from src/backends/. */
  const find = (file: string): string | null => {
    for (const rel of [`../${file}`, `../../dist/${file}`]) {
      const p = url.fileURLToPath(new URL(rel, import.meta.url));
      if (fs.existsSync(p)) return p;
    }
    return null;
  };
  const plainPath = find('rnnkit.wasm');
  if (!plainPath) throw new Error('dist/rnnkit.wasm is missing: run `npm run build:wasm`');
  const relaxedPath = find('rnnkit-relaxed.wasm');
  const env = readEnv('RNNKIT_WASM_BUILD');
  const prefer = env === 'plain' || env === 'relaxed' ? env : 'auto';
  const plain = fs.readFileSync(plainPath);
  const relaxed = relaxedPath ? fs.readFileSync(relaxedPath) : null;
  const bytes = pickWasmBuild(plain, relaxed, prefer);
  const which = bytes === plain ? 'SIMD' : 'relaxed SIMD';
  return createWasmBackend(bytes, { detail: `AssemblyScript ${which} kernels (${bytes === plain ? plainPath : relaxedPath})` });
}
