// Every PyTorch reference case passes on every backend that this build has.
import { describe, expect, it } from 'vitest';
import { goldenCaseNames, runGoldenCase } from '../src/io/golden.js';
import { GOLDEN_DIR, TESTED_BACKENDS } from './helpers.js';

const names = goldenCaseNames(GOLDEN_DIR);

describe('golden cases from PyTorch', () => {
  it('finds the reference cases', () => {
    expect(names.length).toBeGreaterThanOrEqual(12);
  });
  for (const backend of TESTED_BACKENDS) {
    describe(backend, () => {
      for (const name of names) {
        it(name, () => {
          const r = runGoldenCase(GOLDEN_DIR, name, backend);
          expect(r.detail).toBe('');
          expect(r.pass).toBe(true);
        });
      }
    });
  }
});
