// `rnnkit export-torch`: a run of `rnnkit train` continues in PyTorch (one process, and two under
// torchrun with DistributedDataParallel on gloo) exactly as it would have in rnnkit, its checkpoints
// come back into `rnnkit train --resume`, and the program's evaluation is `rnnkit eval`'s.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/index.js';
import { readTensorsFile, resolveCheckpointDir } from '../src/lm/checkpoint.js';
import { evaluateIds, loadLanguageModel } from '../src/lm/trainer.js';
import { readText } from '../src/lm/data.js';

const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && (() => {
  try { execFileSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }); return true; } catch { return false; }
})();
const tmp = (): string => mkdtempSync(join(tmpdir(), 'rnnkit-torchexp-'));
const TEXT = "It was the best of times, it was the worst of times; it was the age of wisdom, it wasn't the age of foolishness.\n".repeat(10);
// one thread per process: the test machine is small and shared
const ENV = { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => { out += s; }, err: (s) => { err += s; }, progressStream: { write: (s: string) => { err += s; }, isTTY: false } });
  return { code, out, err };
}

function python(args: string[]): string {
  const r = spawnSync(PYTHON, args, { env: ENV, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`python3 ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Runs PyTorch's launcher (torchrun) and waits for it. The launcher of PyTorch 1.13 has been seen to
 * outlive its workers on a loaded machine (the workers had printed their last line and exited, the
 * launcher then never returned): once the final line is out and the launcher has no child process
 * left, it gets 60 s to exit on its own, then it is killed and `lingered` says so. Everything the
 * workers wrote is checked by the caller either way.
 */
async function torchrun(args: string[], finalLine: RegExp): Promise<{ status: number | null; stdout: string; stderr: string; lingered: boolean }> {
  const child = spawn(PYTHON, ['-m', 'torch.distributed.run', ...args], { env: ENV });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  let lingered = false;
  let idleSince = 0;
  const hasChildren = (): boolean => {
    try { return readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim() !== ''; } catch { return true; }
  };
  const started = Date.now();
  const watch = setInterval(() => {
    if (Date.now() - started > 420_000) { child.kill('SIGKILL'); return; }
    if (!finalLine.test(stdout) || hasChildren()) { idleSince = 0; return; }
    idleSince ||= Date.now();
    if (Date.now() - idleSince > 60_000) { lingered = true; child.kill('SIGKILL'); }
  }, 1000);
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  clearInterval(watch);
  return { status: lingered ? 0 : status, stdout, stderr, lingered };
}

async function trainRun(dir: string, flags: string[]): Promise<{ data: string; out: string }> {
  const data = join(dir, 'book.txt');
  writeFileSync(data, TEXT);
  const out = join(dir, 'run');
  const r = await run(['train', '--data', data, ...flags, '--samples', '0', '--no-progress', '--out', out]);
  expect(r.code, r.err).toBe(0);
  return { data, out };
}

interface TrainerJson { step: number; batcher: unknown; history: { train: Array<{ step: number; loss: number; gradNorm: number }>; val: Array<{ step: number; loss: number }> } }
const trainerJson = (run: string): TrainerJson => JSON.parse(readFileSync(join(resolveCheckpointDir(run), 'trainer.json'), 'utf8')) as TrainerJson;

/** Largest difference between two checkpoints' weights and optimizer buffers, relative to the largest value. */
function checkpointDifference(a: string, b: string): { weights: number; optimizer: number } {
  const diff = (file: string) => {
    const x = readTensorsFile(resolveCheckpointDir(a), file).tensors;
    const y = readTensorsFile(resolveCheckpointDir(b), file).tensors;
    expect([...x.keys()].sort()).toEqual([...y.keys()].sort());
    let d = 0;
    let scale = 0;
    for (const [k, t] of x) {
      const u = y.get(k)!.data;
      expect(y.get(k)!.shape).toEqual(t.shape);
      for (let i = 0; i < t.data.length; i++) {
        d = Math.max(d, Math.abs(t.data[i] - u[i]));
        scale = Math.max(scale, Math.abs(t.data[i]));
      }
    }
    return d / scale;
  };
  return { weights: diff('weights.safetensors'), optimizer: diff('optimizer.safetensors') };
}

/** rnnkit's and the exported program's evaluation of the same checkpoint: bits per character, unrounded. */
function bothEvaluations(runDir: string, data: string, heldOut: boolean): { rnnkit: number; torch: number } {
  const { model, vocab, config } = loadLanguageModel(runDir);
  let ids = vocab.encode(readText(data));
  if (heldOut) ids = ids.subarray(ids.length - Math.max(2, Math.round(ids.length * config.valFraction)));
  const ours = evaluateIds(model, ids, config.seq, config.batch);
  const theirs = JSON.parse(python([join(runDir, 'rnnkit_lm.py'), 'eval', '--run', runDir, '--data', data, '--json', ...(heldOut ? ['--held-out'] : [])])) as { bits: number; tokens: number; unknown: number };
  expect(theirs.tokens).toBe(ours.tokens);
  expect(theirs.unknown).toBe(ours.unknown);
  return { rnnkit: ours.bits, torch: theirs.bits };
}

const SKIP = hasTorch ? '' : ' (skipped: /usr/bin/python3 with torch and numpy is missing)';

describe.skipIf(!hasTorch)(`rnnkit export-torch: PyTorch continues the run, rnnkit takes it back${SKIP}`, () => {
  it('a character LSTM: 2 processes under torchrun (gloo) train steps 4-6 as rnnkit does, rnnkit resumes them, eval agrees', async () => {
    const dir = tmp();
    const flags = ['--layers', '2', '--hidden', '16', '--embed', '8', '--seq', '10', '--batch', '4', '--val-every', '3', '--checkpoint-every', '0', '--lr', '0.01'];
    const { data, out } = await trainRun(dir, [...flags, '--steps', '3']);
    const exp = join(dir, 'torch');
    const e = await run(['export-torch', out, exp]);
    expect(e.code, e.err).toBe(0);
    expect(e.out).toMatch(/exported step 3 to .*ckpt-00000003/);
    expect(e.out).toMatch(/torchrun --nproc_per_node 2 .*rnnkit_lm\.py train --data/);
    expect(existsSync(join(exp, 'rnnkit_lm.py'))).toBe(true);

    // the reference: rnnkit itself continues a copy of the run to step 6, then to step 8
    const ref = join(dir, 'ref');
    cpSync(out, ref, { recursive: true });
    expect((await run(['train', '--resume', ref, '--steps', '6', '--samples', '0', '--no-progress'])).code).toBe(0);
    const ref6 = join(dir, 'ref6');
    cpSync(ref, ref6, { recursive: true });

    // PyTorch, 2 processes, each 2 of the 4 lanes (--redirects/--tee: torchrun of PyTorch 1.13 needs them under Python >= 3.11).
    const port = await freePort();
    const t = await torchrun(['--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', String(port),
      '--redirects', '1', '--tee', '1', join(exp, 'rnnkit_lm.py'), 'train', '--data', data, '--steps', '6', '--log-every', '1'], /step 6: checkpoint/);
    if (t.lingered) console.warn('torchrun outlived its finished workers by 60 s and was stopped; the workers\' output and checkpoint are checked below');
    expect(t.status, `${t.stdout}\n${t.stderr}`).toBe(0);
    expect(`${t.stdout}\n${t.stderr}`).not.toMatch(/Traceback/);
    expect(t.stdout).toMatch(/over 2 processes \(cpu\); from step 3/);
    expect(t.stdout).toMatch(/step 6: checkpoint .*ckpt-00000006/);

    // the same steps: losses, gradient norms, batcher position, weights and Adam moments
    const a = trainerJson(exp);
    const b = trainerJson(ref6);
    expect(a.step).toBe(6);
    expect(a.batcher).toEqual(b.batcher);
    expect(a.history.train.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6]);
    for (let i = 3; i < 6; i++) {
      expect(Math.abs(a.history.train[i].loss - b.history.train[i].loss)).toBeLessThan(1e-4);
      expect(Math.abs(a.history.train[i].gradNorm - b.history.train[i].gradNorm) / b.history.train[i].gradNorm).toBeLessThan(1e-3);
    }
    expect(a.history.val.map((p) => p.step)).toEqual([3, 6]);
    expect(Math.abs(a.history.val[1].loss - b.history.val[1].loss)).toBeLessThan(1e-4);
    const d6 = checkpointDifference(exp, ref6);
    expect(d6.weights).toBeLessThan(1e-4);
    expect(d6.optimizer).toBeLessThan(1e-3);
    expect(readTensorsFile(resolveCheckpointDir(exp), 'optimizer.safetensors').metadata.step).toBe('6');

    // the checkpoint PyTorch wrote: rnnkit samples from it and evaluates it as the program does
    expect((await run(['sample', exp, '--prime', 'It was', '--length', '10'])).code).toBe(0);
    const ev6 = bothEvaluations(exp, data, false);
    expect(Math.abs(ev6.rnnkit - ev6.torch)).toBeLessThan(1e-4);

    // rnnkit resumes the PyTorch checkpoint and continues as the reference does
    const r = await run(['train', '--resume', exp, '--data', data, '--steps', '8', '--samples', '0', '--no-progress']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/resumed from step 6/);
    expect(r.out).toMatch(/stopped at step 8/);
    expect((await run(['train', '--resume', ref, '--steps', '8', '--samples', '0', '--no-progress'])).code).toBe(0);
    const a8 = trainerJson(exp);
    const b8 = trainerJson(ref);
    for (let i = 6; i < 8; i++) expect(Math.abs(a8.history.train[i].loss - b8.history.train[i].loss)).toBeLessThan(1e-4);
    expect(checkpointDifference(exp, ref).weights).toBeLessThan(1e-4);

    // the checkpoint rnnkit wrote: rnnkit eval and the program's eval on the same weights
    const ev8 = bothEvaluations(exp, data, true);
    expect(Math.abs(ev8.rnnkit - ev8.torch)).toBeLessThan(1e-4);
    const line = (await run(['eval', exp, '--data', data])).out;
    const pyLine = python([join(exp, 'rnnkit_lm.py'), 'eval', '--data', data]);
    const bits = (s: string) => Number(/: (\d+\.\d+) bits per character/.exec(s)?.[1]);
    expect(Math.abs(bits(line) - bits(pyLine))).toBeLessThanOrEqual(1.01e-4);
  }, 600_000);

  it('a word-level GRU with SGD momentum: one process trains steps 3-4 as rnnkit does; eval agrees', async () => {
    const dir = tmp();
    const flags = ['--level', 'word', '--cell', 'gru', '--layers', '1', '--hidden', '12', '--embed', '6', '--seq', '6', '--batch', '3',
      '--optimizer', 'sgd', '--lr', '0.5', '--schedule', 'cosine', '--warmup', '1', '--decay-steps', '6', '--val-every', '0', '--checkpoint-every', '0'];
    const { data, out } = await trainRun(dir, [...flags, '--steps', '2']);
    const exp = join(dir, 'torch');
    expect((await run(['export-torch', out, exp])).code).toBe(0);
    python([join(exp, 'rnnkit_lm.py'), 'train', '--data', data, '--steps', '4']);
    expect((await run(['train', '--resume', out, '--steps', '4', '--samples', '0', '--no-progress'])).code).toBe(0);
    const a = trainerJson(exp);
    const b = trainerJson(out);
    expect(a.batcher).toEqual(b.batcher);
    for (let i = 2; i < 4; i++) expect(Math.abs(a.history.train[i].loss - b.history.train[i].loss)).toBeLessThan(1e-4);
    expect(checkpointDifference(exp, out).weights).toBeLessThan(1e-4);
    const ev = bothEvaluations(exp, data, false);
    expect(Math.abs(ev.rnnkit - ev.torch)).toBeLessThan(1e-4);
    // the program splits words as rnnkit does: accents, curly apostrophes, underscores, numbers, odd spaces, emoji
    const tricky = join(dir, 'tricky.txt');
    writeFileSync(tricky, "Café naïve — whale’s don't x_y 3.14 ½ ₂ Ⅻ e\u0301 tab\there 東京 🐳! «it''s» __init__ a’b’c\n"
      + 'nbsp\u00a0here\u2003em\ufeffbom\u001cfs it was   the\r\nage of wisdom\n');
    const evTricky = bothEvaluations(exp, tricky, false);
    expect(Math.abs(evTricky.rnnkit - evTricky.torch)).toBeLessThan(1e-4);
  }, 300_000);
});

describe('rnnkit export-torch: a bad RUN_DIR or OUT_DIR is one clear line', () => {
  const setup = async () => {
    const dir = tmp();
    const { out } = await trainRun(dir, ['--layers', '1', '--hidden', '8', '--embed', '4', '--seq', '8', '--batch', '2', '--steps', '1', '--val-every', '0']);
    return { dir, out };
  };
  const oneLine = (r: { code: number; out: string; err: string }, pattern: RegExp) => {
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/^rnnkit export-torch: /);
    expect(r.err).toMatch(pattern);
  };

  it('a missing directory, a directory that is no run, a checkpoint missing a file, a non-empty OUT_DIR', async () => {
    const { dir, out } = await setup();
    oneLine(await run(['export-torch', join(dir, 'nowhere'), join(dir, 'x1')]), /nowhere: no such directory/);
    mkdirSync(join(dir, 'empty'));
    oneLine(await run(['export-torch', join(dir, 'empty'), join(dir, 'x2')]), /empty holds no checkpoint \(neither latest nor weights\.safetensors\)/);
    writeFileSync(join(dir, 'file.txt'), 'text');
    oneLine(await run(['export-torch', join(dir, 'file.txt'), join(dir, 'x3')]), /file\.txt is not a directory/);
    const ckpt = resolveCheckpointDir(out);
    for (const file of ['optimizer.safetensors', 'trainer.json', 'vocab.json', 'state.safetensors']) {
      const broken = join(dir, `broken-${file}`);
      cpSync(ckpt, broken, { recursive: true });
      rmSync(join(broken, file));
      oneLine(await run(['export-torch', broken, join(dir, `x-${file}`)]), new RegExp(`broken-${file.replace('.', '\\.')}/${file.replace('.', '\\.')}: missing`));
      expect(existsSync(join(dir, `x-${file}`))).toBe(false);
    }
    mkdirSync(join(dir, 'full'));
    writeFileSync(join(dir, 'full', 'keep.txt'), 'mine');
    oneLine(await run(['export-torch', out, join(dir, 'full')]), /full is not empty/);
    expect(readFileSync(join(dir, 'full', 'keep.txt'), 'utf8')).toBe('mine');
    // missing arguments: commander's one line
    const r = await run(['export-torch', out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/missing required argument 'out_dir'/);
  });
});
