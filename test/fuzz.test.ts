// A short seeded fuzzing run of every parser of outside bytes (test/fuzz-targets.mjs): safetensors
// files, the files of a training run directory (what --resume, sample and eval read),
// vocabularies and PyTorch reference cases. Any input must give a result or one clear error.
// Longer runs with random seeds: `npm run fuzz -- --minutes N`.
import { afterAll, describe, it } from 'vitest';
// @ts-expect-error: a JavaScript module of the test suite (shared with scripts/fuzz.mjs)
import { TARGETS, cleanupFixtures, fc } from './fuzz-targets.mjs';

const SEED = 20_261_129;

interface Target { name: string; runs: number; setup(): Promise<{ arbitrary: unknown; check(input: unknown): void }> }

describe('fuzzing the parsers of outside bytes (seeded)', () => {
  afterAll(() => cleanupFixtures());
  for (const t of TARGETS as Target[]) {
    it(`${t.name}: ${t.runs} inputs, each a result or one clear error`, async () => {
      const { arbitrary, check } = await t.setup();
      fc.assert(fc.property(arbitrary, (input: unknown) => { check(input); }), { seed: SEED, numRuns: t.runs });
    }, 120_000);
  }
});
