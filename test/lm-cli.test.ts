// `rnnkit train / sample / eval / start`, the async (worker-thread) form of training, and `npm start`.
// The spawned commands run the compiled package (dist/, built by `npm install` / `npm run build:ts`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/index.js';
import type * as LM from '../src/lm/index.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'rnnkit-lmcli-'));
const ROOT = new URL('..', import.meta.url).pathname;
const TEXT = 'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. '.repeat(8);
const TINY = ['--layers', '1', '--hidden', '16', '--embed', '8', '--seq', '10', '--batch', '2', '--val-every', '5', '--samples', '1', '--sample-length', '20'];

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => { out += s; }, err: (s) => { err += s; }, progressStream: { write: (s: string) => { err += s; }, isTTY: false } });
  return { code, out, err };
}

function textFile(): string {
  const f = join(tmp(), 'book.txt');
  writeFileSync(f, TEXT);
  return f;
}

describe('rnnkit train / sample / eval', () => {
  it('trains, saves, resumes, samples and evaluates', async () => {
    const data = textFile();
    const out = join(tmp(), 'run');
    const t = await run(['train', '--data', data, ...TINY, '--steps', '6', '--out', out]);
    expect(t.err).toMatch(/1-layer LSTM \(hidden 16, embedding 8\)/);
    expect(t.out).toMatch(/stopped at step 6 \(steps\)/);
    expect(t.out).toMatch(/held-out \(last 5%\): \d+\.\d+ bits per character/);
    expect(t.out).toMatch(/--- sample 1/);
    expect(t.code).toBe(0);
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    const r = await run(['train', '--resume', out, '--steps', '9', '--no-progress', '--samples', '0']);
    expect(r.out).toMatch(/resumed from step 6/);
    expect(r.out).toMatch(/stopped at step 9/);
    const s1 = await run(['sample', out, '--prime', 'It was', '--length', '30', '--seed', '4', '--temperature', '0.7', '--top-k', '5']);
    const s2 = await run(['sample', out, '--prime', 'It was', '--length', '30', '--seed', '4', '--temperature', '0.7', '--top-k', '5']);
    expect(s1.code).toBe(0);
    expect(s1.out).toBe(s2.out);
    expect(s1.out.startsWith('It was')).toBe(true);
    expect(Array.from(s1.out.trimEnd()).length).toBe(36);
    const greedy = await run(['sample', out, '--temperature', '0', '--length', '10']);
    expect(greedy.code).toBe(0);
    const e = await run(['eval', out, '--data', data]);
    expect(e.out).toMatch(/book\.txt: \d+\.\d+ bits per character, perplexity \d+\.\d+/);
    const h = await run(['eval', out, '--data', data, '--held-out']);
    expect(h.out).toMatch(/held-out last 5%/);
  });

  it('--matmul-precision medium trains with bf16 products where the backend has them, and says so', async () => {
    const { getBackend, setMatmulPrecision } = await import('../src/backends/index.js');
    try {
      const t = await run(['train', '--data', textFile(), ...TINY, '--steps', '4', '--out', join(tmp(), 'run'), '--matmul-precision', 'medium']);
      expect(t.code).toBe(0);
      expect(t.out).toMatch(/stopped at step 4 \(steps\)/);
      const bf16 = getBackend().info().matmul === 'bf16';
      expect(t.err.includes('bf16 matmul')).toBe(bf16);
    } finally {
      setMatmulPrecision('highest');
    }
    expect(getBackend().info().matmul ?? 'fp32').toBe('fp32');
  });

  it('--help on each command exits 0', async () => {
    for (const cmd of ['train', 'sample', 'eval', 'start']) {
      const r = await run([cmd, '--help']);
      expect(r.code, cmd).toBe(0);
      expect(r.out).toMatch(new RegExp(`Usage: rnnkit ${cmd}`));
    }
    const top = await run(['help']);
    expect(top.out).toMatch(/train \[options\]/);
  });

  it('bad flags and bad files: one line on stderr and exit code 2', async () => {
    const data = textFile();
    const dir = tmp();
    writeFileSync(join(dir, 'weights.safetensors'), new Uint8Array([1, 2, 3]));
    // a real checkpoint whose weights file is then broken
    const broken = join(tmp(), 'run');
    expect((await run(['train', '--data', data, ...TINY, '--steps', '1', '--out', broken])).code).toBe(0);
    const lm = await import('../src/lm/index.js');
    writeFileSync(join(lm.resolveCheckpointDir(broken), 'weights.safetensors'), new Uint8Array([7, 7, 7, 7, 7, 7, 7, 7, 7]));
    const cases: Array<[string[], RegExp]> = [
      [['train', '--hidden', 'abc'], /--hidden <n>' argument 'abc' is invalid/],
      [['train', '--bogus'], /unknown option '--bogus'/],
      [['train', '--cell', 'lstmx'], /Allowed choices are lstm, gru, rnn/],
      [['train', '--matmul-precision', 'low'], /Allowed choices are highest, medium/],
      [['train', '--data', '/nonexistent/file.txt'], /--data \/nonexistent\/file.txt: no such file/],
      [['train', '--data', dir], /is a directory/],
      [['train'], /no training text/],
      [['train', '--data', data, '--dataset', 'moby-dick'], /either --data FILE or --dataset NAME/],
      [['train', '--resume', tmp()], /holds no checkpoint/],
      [['sample', '/nonexistent/run'], /no such directory/],
      [['sample', dir], /config\.json: missing/],
      [['sample', broken], /weights\.safetensors: /],
      [['eval', broken, '--data', data], /weights\.safetensors: /],
      [['train', '--resume', broken], /weights\.safetensors: /],
      [['sample', dir, '--top-p', '1.5'], /--top-p <p>' argument '1.5' is invalid/],
      [['sample'], /missing required argument 'dir'/],
      [['eval', dir], /eval needs --data FILE/],
      [['eval', dir, '--data', '/nonexistent.txt'], /no such file/],
    ];
    for (const [argv, pattern] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(pattern);
      expect(r.err.trimEnd().split('\n'), argv.join(' ')).toHaveLength(1);
      expect(r.out).toBe('');
    }
  });

  it('the installed bin reports errors on stderr with a non-zero exit', () => {
    const r = spawnSync(process.execPath, ['bin/rnnkit.js', 'train', '--layers', '0'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^rnnkit train: option '--layers <n>' argument '0' is invalid/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('training in a worker thread', () => {
  it('keeps the event loop free while it trains and reports progress', async () => {
    const lm = (await import(new URL('../dist/lm/index.js', import.meta.url).href)) as typeof LM;
    let ticks = 0;
    let ticksWhileTraining = 0;
    let steps = 0;
    const timer = setInterval(() => { ticks++; if (steps > 0) ticksWhileTraining++; }, 1);
    try {
      const handle = lm.trainInWorker(
        { text: TEXT, config: { layers: 1, hidden: 16, embed: 8, seq: 10, batch: 2, valEvery: 0 }, steps: 40 },
        { onStep: () => { steps++; } },
      );
      const result = await handle.result;
      expect(result.step).toBe(40);
      expect(result.stoppedBy).toBe('steps');
      expect(Number.isFinite(result.val!.bits)).toBe(true);
    } finally {
      clearInterval(timer);
    }
    expect(steps).toBe(40);
    expect(ticksWhileTraining).toBeGreaterThan(0);
    expect(ticks).toBeGreaterThan(0);
  });

  it('rejects with the training error (a clear message) and can be stopped', async () => {
    const lm = (await import(new URL('../dist/lm/index.js', import.meta.url).href)) as typeof LM;
    await expect(lm.trainInWorker({ data: '/nonexistent/book.txt', steps: 3 }).result).rejects.toThrow(/cannot read \/nonexistent\/book.txt/);
    let stopped = false;
    const handle = lm.trainInWorker(
      { text: TEXT, config: { layers: 1, hidden: 16, embed: 8, seq: 10, batch: 2, valEvery: 0 }, steps: 100000 },
      { onStep: (m) => { if (m.step === 3 && !stopped) { stopped = true; handle.stop(); } } },
    );
    const r = await handle.result;
    expect(r.stoppedBy).toBe('aborted');
    expect(r.step).toBeLessThan(100000);
  });
});

describe('npm start', () => {
  it('trains on Moby Dick with a short budget, prints held-out bpc and samples; a second run resumes', () => {
    const out = join(tmp(), 'moby');
    const env = { ...process.env, RNNKIT_START_OUT: out, RNNKIT_START_MINUTES: '0.02' };
    const first = spawnSync('npm', ['start', '--silent', '--', '--samples', '1'], { cwd: ROOT, env, encoding: 'utf8' });
    expect(first.stderr).toMatch(/training a character-level LSTM on Moby Dick/);
    expect(first.stdout).toMatch(/held-out \(last 5%\): \d+\.\d+ bits per character/);
    expect(first.stdout).toMatch(/--- sample 1/);
    expect(first.status).toBe(0);
    expect(existsSync(join(out, 'latest'))).toBe(true);
    expect(readFileSync(join(out, 'curves.svg'), 'utf8')).toMatch(/<svg/);
    const second = spawnSync('npm', ['start', '--silent', '--', '--steps', '1', '--samples', '0'], { cwd: ROOT, env, encoding: 'utf8' });
    expect(second.stderr).toMatch(/continuing the run/);
    expect(second.stdout).toMatch(/resumed from step \d+/);
    expect(second.status).toBe(0);
  });
});
