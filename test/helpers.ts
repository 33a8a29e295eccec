import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { dirname, resolve } from 'node:path';
import type { BackendName } from '../src/backends/index.js';
import type { Tensor } from '../src/core/tensor.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The PyTorch reference cases of the repository (golden/, written by test/fixtures/make_torch_fixtures.py). */
export const GOLDEN_DIR = resolve(here, '../golden');

/**
 * Backends the suite runs on: every backend this build ships (the native and wasm loaders are
 * added to the list by their own issues; a backend in the list that fails to load fails tests).
 * RNNKIT_TEST_BACKENDS=reference,native narrows it.
 */
export const SHIPPED_BACKENDS: BackendName[] = ['reference', 'wasm', 'native'];
export const TESTED_BACKENDS: BackendName[] = (process.env.RNNKIT_TEST_BACKENDS?.split(',') as BackendName[] | undefined) ?? SHIPPED_BACKENDS;

/** Worst relative error of analytic vs central-difference gradients (float32, eps 1e-2) over every element of the tensors. */
export function gradCheck(tensors: Tensor[], loss: () => Tensor): number {
  for (const t of tensors) t.zeroGrad();
  loss().backward();
  const analytic = tensors.map((t) => Float32Array.from(t.grad ?? new Float32Array(t.size)));
  const eps = 1e-2;
  let worst = 0;
  tensors.forEach((t, k) => {
    for (let i = 0; i < t.size; i++) {
      const keep = t.data[i];
      t.data[i] = keep + eps;
      const up = loss().item();
      t.data[i] = keep - eps;
      const down = loss().item();
      t.data[i] = keep;
      const numeric = (up - down) / (2 * eps);
      worst = Math.max(worst, Math.abs(numeric - analytic[k][i]) / Math.max(1, Math.abs(numeric)));
    }
  });
  return worst;
}

/** |actual - expected| <= 1e-5 * max(1, max |expected|) elementwise: the round-trip tolerance of model formats. */
export function expectCloseToLargest(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  const tol = 1e-5 * Math.max(scale, 1);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst, `${what}: largest difference ${worst} (tolerance ${tol})`).toBeLessThanOrEqual(tol);
}
