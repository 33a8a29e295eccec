// Short versions of every `rnnkit example` (small subsets, step caps instead of time budgets):
// each must learn beyond its trivial baseline. No timing thresholds.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/index.js';
import { runExample, type ExampleResult } from '../src/tasks/index.js';

const out = mkdtempSync(join(tmpdir(), 'rnnkit-examples-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Step caps bind long before the (generous) time budget, so results do not depend on machine speed. */
const run = (name: string): Promise<ExampleResult> => runExample(name, { quick: true, minutes: 30, verbose: false, outDir: join(out, name) });

const value = (r: ExampleResult, model: RegExp, metric: string) => {
  const row = r.rows.find((x) => model.test(x.model) && x.metric === metric);
  if (!row) throw new Error(`no row ${model} / ${metric} in ${JSON.stringify(r.rows)}`);
  return row;
};

describe('examples (short versions)', () => {
  it('spam: the BiLSTM beats the majority class clearly', async () => {
    const r = await run('spam');
    const acc = value(r, /BiLSTM/, 'accuracy');
    const majority = value(r, /majority/, 'accuracy').value;
    expect(acc.value).toBeGreaterThan(majority + 0.08);
    expect(value(r, /BiLSTM/, 'f1').value).toBeGreaterThan(0.6);
    expect(value(r, /logistic/, 'accuracy').value).toBeGreaterThan(majority + 0.08);
  });

  it('stress: both taggers beat the per-phoneme majority; the bidirectional one is better per word', async () => {
    const r = await run('stress');
    const uni = value(r, /^LSTM/, 'per-word accuracy');
    const bi = value(r, /^BiLSTM/, 'per-word accuracy');
    expect(uni.value).toBeGreaterThan(uni.baseline!);
    expect(bi.value).toBeGreaterThan(bi.baseline! + 0.1);
    expect(bi.value).toBeGreaterThan(uni.value);
  });

  it('g2p: the encoder-decoder gets most phonemes right with greedy and beam decoding', async () => {
    const r = await run('g2p');
    // an empty or unrelated output has a phoneme error rate near 100%
    expect(value(r, /greedy/, 'phoneme error rate').value).toBeLessThan(0.45);
    expect(value(r, /beam/, 'phoneme error rate').value).toBeLessThan(0.45);
    expect(value(r, /beam/, 'word error rate').value).toBeLessThan(0.95);
  });

  it('names: both models are far below the uniform code length and produce samples per class', async () => {
    const r = await run('names');
    const uniform = Math.log2(26);
    expect(value(r, /unconditional/, 'held-out bits/char').value).toBeLessThan(uniform - 1);
    expect(value(r, /conditional \(/, 'held-out bits/char').value).toBeLessThan(uniform - 1);
    expect((r.details.samples_female as string[]).length).toBe(10);
    expect((r.details.samples_male as string[]).length).toBe(10);
  });

  it('co2: the forecasts beat seasonal-naive; plots are written', async () => {
    const r = await run('co2');
    const co2 = value(r, /36 months/, 'RMSE (ppm)');
    expect(co2.value).toBeLessThan(co2.baseline!);
    const weather = r.rows.find((x) => x.metric === 'RMSE (°C)' && x.baselineName === 'persistence')!;
    expect(weather.value).toBeLessThan(weather.baseline!);
    for (const p of r.plots) expect(readFileSync(p, 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
  });

  it('adding: GRU and LSTM solve length 50, the gradient-norm plot is written', async () => {
    const r = await run('adding');
    expect(value(r, /^GRU/, 'MSE').value).toBeLessThan(0.05);
    expect(value(r, /^LSTM/, 'MSE').value).toBeLessThan(0.05);
    expect(existsSync(join(out, 'adding', 'gradient-norm-T50.svg'))).toBe(true);
  });

  it('rnnkit example parses options, writes --json and rejects bad input', async () => {
    const lines: string[] = [];
    const json = join(out, 'names.json');
    const cli = async (argv: string[]) => {
      let stdout = '', stderr = '';
      const code = await main(['example', ...argv], { out: (s) => { stdout += s; }, err: (s) => { stderr += s; } });
      return { code, stdout, stderr };
    };
    const r = await cli(['names', '--quick', '--steps', '20', '--json', json, '--out', join(out, 'cli')]);
    lines.push(r.stdout);
    expect(r.code).toBe(0);
    const saved = JSON.parse(readFileSync(json, 'utf8'));
    expect(saved.name).toBe('names');
    expect(saved.rows.length).toBe(2);
    expect(lines.join('')).toMatch(/held-out bits\/char/);
    expect((await cli([])).code).toBe(2);
    const unknown = await cli(['nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/value 'nope' is invalid for argument 'name'\. Allowed choices are spam, stress, g2p, names, co2, adding/);
    const bad = await cli(['names', '--minutes', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--minutes <x>' argument 'x' is invalid\. expected a number >= 0\.01/);
  });
});
