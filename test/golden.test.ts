// Every PyTorch reference case (golden/, shipped with the package) passes on every backend that this build has.
import { execFileSync } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { goldenCaseNames, packagedGoldenDir, runGoldenCase } from '../src/io/golden.js';
import { GOLDEN_DIR, TESTED_BACKENDS } from './helpers.js';

const names = goldenCaseNames(GOLDEN_DIR);
const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

describe('golden cases from PyTorch', () => {
  it('finds every reference case (cells, stacking, bidirectional, lengths, projection, batch-first, the language-model step)', () => {
    expect(names).toEqual(expect.arrayContaining([
      'lstm', 'gru', 'rnn_tanh', 'rnn_nobias', 'rnn_relu_2layer', 'lstm_bi_2layer', 'gru_bi_2layer', 'lstm_packed_bi',
      'gru_packed', 'lstm_nostate_batch_first', 'lstm_proj', 'lstm_proj_bi_2layer_packed', 'gru_packed_batch_first_nostate',
      'rnn_relu_bi_packed_nobias', 'lstm_2layer_batch_first_nobias', 'charlm_step',
    ]));
  });

  it('the package finds its own golden/ folder (the one the tests read)', () => {
    expect(packagedGoldenDir()).toBe(GOLDEN_DIR);
  });

  it('golden/ is in the npm package', () => {
    const [pack] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })) as [{ files: { path: string }[] }];
    const packed = new Set(pack.files.map((f) => f.path));
    expect(packed.has('golden/README.md')).toBe(true);
    for (const name of names) {
      expect(packed.has(`golden/${name}.json`), name).toBe(true);
      expect(packed.has(`golden/${name}.safetensors`), name).toBe(true);
    }
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
