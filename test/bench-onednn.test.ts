// The oneDNN peer of `npm run bench` (bench/onednn/rnn_bench.cpp): builds against Debian's
// libdnnl-dev and times every cell in both modes, one and two layers, both directions.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../bench/onednn/rnn_bench.cpp', import.meta.url));
const HEADERS = ['/usr/include/dnnl.hpp', '/usr/include/oneapi/dnnl/dnnl.hpp'].some((f) => existsSync(f));
const SKIP = HEADERS ? '' : ' (skipped: no oneDNN headers; apt-get install libdnnl-dev)';

describe.skipIf(!HEADERS)(`bench/onednn/rnn_bench.cpp${SKIP}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'rnnkit-onednn-'));
  const bin = join(dir, 'rnn_bench');
  let build: ReturnType<typeof spawnSync>;
  beforeAll(() => {
    build = spawnSync('g++', ['-O1', '-std=c++17', SRC, '-o', bin, '-ldnnl'], { encoding: 'utf8' });
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = (...args: Array<string | number>) =>
    spawnSync(bin, args.map(String), { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });

  it('builds and times every cell, mode, layer count and direction', () => {
    expect(build.status, String(build.stderr)).toBe(0);
    for (const cell of ['lstm', 'gru', 'rnn_tanh']) {
      for (const mode of ['train', 'infer']) {
        for (const [layers, bidir] of [[1, 0], [2, 1]]) {
          const out = run(`${cell}-${mode}`, cell, mode, 5, 3, 7, 9, layers, bidir, 1, 3);
          expect(out.status, `${cell} ${mode} ${layers} ${bidir}: ${out.stderr}`).toBe(0);
          const r = JSON.parse(out.stdout);
          expect(r.workload).toBe(`${cell}-${mode}`);
          expect(r.impl).toBe('onednn');
          expect(r.min_ms).toBeGreaterThan(0);
          expect(r.min_ms).toBeLessThanOrEqual(r.median_ms);
          expect(r.median_ms).toBeLessThanOrEqual(r.max_ms);
          // every timed run, in order (bench/run.js pools them over its rounds)
          expect(r.samples_ms).toHaveLength(3);
          expect(Math.min(...r.samples_ms)).toBe(r.min_ms);
          expect(Math.max(...r.samples_ms)).toBe(r.max_ms);
        }
      }
    }
  }, 180_000);

  it('refuses an unknown cell, mode or size with a message', () => {
    expect(run('x', 'lstmx', 'train', 5, 3, 7, 9, 1, 0, 1, 3).stderr).toMatch(/unknown cell 'lstmx'; expected lstm, gru or rnn_tanh/);
    expect(run('x', 'lstm', 'fit', 5, 3, 7, 9, 1, 0, 1, 3).stderr).toMatch(/unknown mode 'fit'; expected train or infer/);
    expect(run('x', 'lstm', 'train', 0, 3, 7, 9, 1, 0, 1, 3).stderr).toMatch(/must be >= 1/);
    expect(run('x').stderr).toMatch(/usage: rnn_bench ID CELL MODE/);
  });
});
