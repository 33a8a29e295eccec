import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import type { BackendName } from '../src/backends/index.js';

const here = dirname(fileURLToPath(import.meta.url));
export const GOLDEN_DIR = process.env.RNNKIT_GOLDEN_DIR ?? resolve(here, '../../shared/golden');

/**
 * Backends the suite runs on: every backend this build ships (the native and wasm loaders are
 * added to the list by their own issues; a backend in the list that fails to load fails tests).
 * RNNKIT_TEST_BACKENDS=reference,native narrows it.
 */
export const SHIPPED_BACKENDS: BackendName[] = ['reference', 'wasm', 'native'];
export const TESTED_BACKENDS: BackendName[] = (process.env.RNNKIT_TEST_BACKENDS?.split(',') as BackendName[] | undefined) ?? SHIPPED_BACKENDS;
