// Backend registry: which backends exist, how each loads, and which one the library uses.
//
// Priority order for 'auto': native, then wasm, then reference. The choice can be forced by
// setBackend(name) or the environment variable RNNKIT_BACKEND; RNNKIT_CROSSCHECK=<name> (or
// setBackend(name, { crossCheck })) wraps the chosen backend so every kernel also runs on <name>.
// setMatmulPrecision(p) (or RNNKIT_MATMUL_PRECISION) applies to the backend in use and to every
// backend selected later.
import type { Backend, MatmulPrecision } from './backend.js';
import { readEnv } from '../core/config.js';
import { CrossCheckBackend, type CrossCheckOptions } from './crosscheck.js';
import { assertMatmulPrecision } from './validate.js';
import { loadNativeBackend } from './native.js';
import { ReferenceBackend } from './reference.js';
import { loadWasmBackend } from './wasm.js';

/** A backend by name: 'native' (C++ addon), 'wasm' (WebAssembly) or 'reference' (TypeScript). */
export type BackendName = 'native' | 'wasm' | 'reference';
/** The backends in the order `auto` tries them: native, wasm, reference. */
export const BACKEND_NAMES: readonly BackendName[] = ['native', 'wasm', 'reference'];

const loaders: Record<BackendName, () => Backend> = {
  native: loadNativeBackend,
  wasm: loadWasmBackend,
  reference: () => new ReferenceBackend(),
};

const loaded = new Map<BackendName, Backend>();
const failures = new Map<BackendName, Error>();

/** Loads (once) and returns the named backend; throws with the reason it is unavailable. */
export function loadBackend(name: BackendName): Backend {
  if (!BACKEND_NAMES.includes(name)) {
    throw new RangeError(`backend must be one of auto, ${BACKEND_NAMES.join(', ')}; received '${name}'`);
  }
  const have = loaded.get(name);
  if (have) return have;
  const failed = failures.get(name);
  if (failed) throw failed;
  try {
    const backend = loaders[name]();
    loaded.set(name, backend);
    return backend;
  } catch (e) {
    const err = new Error(`backend '${name}' is unavailable: ${(e as Error).message}`);
    failures.set(name, err);
    throw err;
  }
}

/** Whether a backend loads here, and why not (see `backendStatus()`). */
export interface BackendStatus {
  name: BackendName;
  available: boolean;
  reason?: string;
  isa?: string;
  threads?: number;
}

/** Tries every backend and says which load and why the others do not. */
export function backendStatus(): BackendStatus[] {
  return BACKEND_NAMES.map((name) => {
    try {
      const b = loadBackend(name);
      const info = b.info();
      return { name, available: true, isa: info.isa, threads: info.threads };
    } catch (e) {
      return { name, available: false, reason: (e as Error).message };
    }
  });
}

let fallbackSaid = false;

/**
 * The fastest backend that loads: native, then wasm, then reference. Under Node, where the native
 * addon is expected, a fallback is said once, in one line on stderr, with the reason.
 */
export function resolveAuto(): Backend {
  let nativeError: Error | null = null;
  for (const name of BACKEND_NAMES) {
    try {
      const b = loadBackend(name);
      const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
      if (name !== 'native' && nativeError && node && !fallbackSaid) {
        fallbackSaid = true;
        const why = nativeError.message.replace(/^backend 'native' is unavailable: /, '');
        console.warn(`rnnkit: using the ${name} backend, the native addon did not load: ${why} (\`npx rnnkit doctor\` says more)`);
      }
      return b;
    } catch (e) {
      if (name === 'native') nativeError = e as Error;
      // fall through to the next one; `rnnkit doctor` and backendStatus() say why
    }
  }
  throw new Error('no backend could be loaded');
}

/**
 * Options of `setBackend` / `withBackend`, e.g. `crossCheck: 'reference'` to check every kernel
 * against another backend.
 */
export interface SetBackendOptions extends CrossCheckOptions {
  /** Also run every kernel on this backend and throw on the first mismatch. */
  crossCheck?: BackendName | null;
}

let current: Backend | null = null;
let matmulPrecision: MatmulPrecision | null = null;  // null: not chosen yet (RNNKIT_MATMUL_PRECISION or 'highest')

/** The matmul precision chosen by setMatmulPrecision, else RNNKIT_MATMUL_PRECISION, else 'highest'. */
export function getMatmulPrecision(): MatmulPrecision {
  if (!matmulPrecision) {
    const env = readEnv('RNNKIT_MATMUL_PRECISION');
    let p: MatmulPrecision = 'highest';
    if (env) {
      assertMatmulPrecision('RNNKIT_MATMUL_PRECISION', env);
      p = env;
    }
    matmulPrecision = p;
  }
  return matmulPrecision;
}

/**
 * Internal precision of fp32 matrix products, as torch.set_float32_matmul_precision: 'highest'
 * (default, exact fp32) or 'medium' (permits bf16 inputs with fp32 accumulation: the native
 * backend on AVX-512 CPUs with avx512_bf16 and arm64 CPUs with BF16; every other backend and CPU stays fp32, see
 * info().matmul). Applies to the backend in use and to backends selected later.
 */
export function setMatmulPrecision(p: MatmulPrecision): void {
  assertMatmulPrecision('setMatmulPrecision', p);
  matmulPrecision = p;
  current?.setMatmulPrecision?.(p);
}

function resolve(name: BackendName | 'auto' | Backend, options: SetBackendOptions): Backend {
  let backend = typeof name === 'object' ? name : name === 'auto' ? resolveAuto() : loadBackend(name);
  if (options.crossCheck) {
    backend = new CrossCheckBackend(backend, loadBackend(options.crossCheck), options);
  }
  backend.setMatmulPrecision?.(getMatmulPrecision());
  return backend;
}

/** Chooses the backend every layer and op uses from now on. Returns it. */
export function setBackend(name: BackendName | 'auto' | Backend, options: SetBackendOptions = {}): Backend {
  current = resolve(name, options);
  return current;
}

/** The backend in use (first call: RNNKIT_BACKEND or auto, with RNNKIT_CROSSCHECK if set). */
export function getBackend(): Backend {
  if (!current) {
    const name = (readEnv('RNNKIT_BACKEND') || 'auto') as BackendName | 'auto';
    const crossCheck = (readEnv('RNNKIT_CROSSCHECK') || null) as BackendName | null;
    current = resolve(name, { crossCheck });
  }
  return current;
}

/** Runs fn with the given backend in use, restoring the previous one afterwards. */
export function withBackend<T>(name: BackendName | Backend, fn: () => T, options: SetBackendOptions = {}): T {
  const previous = current;
  current = resolve(name, options);
  try {
    return fn();
  } finally {
    current = previous;
    current?.setMatmulPrecision?.(getMatmulPrecision());
  }
}
