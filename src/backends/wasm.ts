// Node loader of the WebAssembly backend (assembly/, built by `npm run build:wasm` into
// dist/rnnkit.wasm and dist/rnnkit-relaxed.wasm). Reads the bytes next to the package with fs and
// builds the backend synchronously; edge runtimes use ./wasm-core.ts (or rnnkit/wasm) directly.
//
// No static import of a Node module: fs comes from process.getBuiltinModule at load time, so
// importing this file (through the backend registry) also works in browsers and workers, where
// loadWasmBackend() then says why it cannot load and the host builds the backend from bytes.
//
// The threaded build (rnnkit-threads.wasm: shared memory, worker_threads; its relaxed-SIMD twin
// rnnkit-threads-relaxed.wasm where the runtime validates that) where the runtime allows it, with
// RNNKIT_THREADS threads (default: the cores); else the relaxed-SIMD or the plain build.
// RNNKIT_WASM_BUILD=plain|relaxed|threads forces a build (and fails where the runtime lacks it).
import type { Backend } from './backend.js';
import { readEnv } from '../core/config.js';
import { type WasmBackend, type WasmBackendOptions, createWasmBackend, pickWasmBuild, wasmThreadsUnavailable } from './wasm-core.js';

interface FsLike {
  existsSync(p: string): boolean;
  readFileSync(p: string): Uint8Array<ArrayBuffer>;
}
interface UrlLike {
  fileURLToPath(u: URL): string;
}
type GetBuiltin = (id: string) => unknown;

/** The wasm backend from the .wasm files in dist/; options as createWasmBackend's (the detail is set here). */
export function loadWasmBackend(options: Omit<WasmBackendOptions, 'detail'> = {}): WasmBackend & Backend {
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
  const threadsPath = find('rnnkit-threads.wasm');
  const threadsRelaxedPath = find('rnnkit-threads-relaxed.wasm');
  const env = readEnv('RNNKIT_WASM_BUILD');
  const noThreads = wasmThreadsUnavailable();
  if (env === 'threads' || ((env === undefined || env === '' || env === 'auto') && threadsPath && !noThreads)) {
    if (!threadsPath) throw new Error('dist/rnnkit-threads.wasm is missing: run `npm run build:wasm`');
    const n = Number(readEnv('RNNKIT_THREADS'));
    const threads = options.threads ?? (Number.isInteger(n) && n >= 1 ? n : undefined);
    const plainThreads = fs.readFileSync(threadsPath);
    const bytes = pickWasmBuild(plainThreads, threadsRelaxedPath ? fs.readFileSync(threadsRelaxedPath) : null);
    const which = bytes === plainThreads ? `SIMD kernels, threaded build (${threadsPath})` : `relaxed SIMD kernels, threaded build (${threadsRelaxedPath})`;
    return createWasmBackend(bytes, { threads, ...options, detail: `AssemblyScript ${which}` });
  }
  const prefer = env === 'plain' || env === 'relaxed' ? env : 'auto';
  const plain = fs.readFileSync(plainPath);
  const relaxed = relaxedPath ? fs.readFileSync(relaxedPath) : null;
  const bytes = pickWasmBuild(plain, relaxed, prefer);
  const which = bytes === plain ? 'SIMD' : 'relaxed SIMD';
  return createWasmBackend(bytes, { ...options, detail: `AssemblyScript ${which} kernels (${bytes === plain ? plainPath : relaxedPath})` });
}
