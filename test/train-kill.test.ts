// `rnnkit train` killed with SIGKILL at random moments (the run checkpoints every 10 steps and
// validates every 15, so kills land in steps, validations and checkpoint writes), each time
// continued with --resume: every resume loads, and the weights after the full step count are
// bitwise equal to those of an uninterrupted run. RNNKIT_KILLS sets the number of kills (default
// 5; RNNKIT_KILLS=20 for a long run). And a full disk during a checkpoint (a 100 KiB tmpfs when
// this process may mount one, else an injected ENOSPC): one clear line, the previous checkpoint
// still loadable. The spawned commands run the compiled package (dist/).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Rng, readSafetensors } from '../src/index.js';
import { loadLanguageModel, resolveCheckpointDir } from '../src/lm/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const tmp = (): string => mkdtempSync(join(tmpdir(), 'rnnkit-kill-'));
const TEXT = 'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. '.repeat(12);
const STEPS = 150;
const FLAGS = ['--layers', '1', '--hidden', '24', '--embed', '8', '--seq', '12', '--batch', '4', '--val-every', '15', '--checkpoint-every', '10', '--samples', '0', '--no-progress', '--threads', '1'];
const KILLS = Number(process.env.RNNKIT_KILLS ?? 5);

function weightsOf(runDir: string): Buffer {
  return readFileSync(join(resolveCheckpointDir(runDir), 'weights.safetensors'));
}

/** Runs `rnnkit train`, killing it after delayMs (null: let it finish). */
function train(args: string[], delayMs: number | null): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/rnnkit.js', 'train', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = delayMs === null ? null : setTimeout(() => child.kill('SIGKILL'), delayMs);
    child.on('close', (code, signal) => { if (timer) clearTimeout(timer); resolve({ code, signal, out, err }); });
  });
}

describe('rnnkit train under SIGKILL', () => {
  it(`killed ${KILLS} times at random moments and resumed: every resume loads, the final weights equal an uninterrupted run's bit for bit`, async () => {
    const data = join(tmp(), 'book.txt');
    writeFileSync(data, TEXT);
    const whole = join(tmp(), 'whole');
    const t0 = performance.now();
    const ref = await train(['--data', data, ...FLAGS, '--steps', String(STEPS), '--out', whole], null);
    const wallMs = performance.now() - t0;
    expect(ref.code, ref.err).toBe(0);
    const want = weightsOf(whole);

    // rounds: a run killed again and again (each time resumed) until it completes; more rounds until
    // KILLS kills have happened. Every round must end with the uninterrupted run's weights.
    const rng = new Rng(Number(process.env.RNNKIT_KILL_SEED ?? 11));
    let kills = 0;
    let resumes = 0;
    let rounds = 0;
    while (kills < KILLS) {
      rounds++;
      const run = join(tmp(), `killed-${rounds}`);
      for (;;) {
        const resume = existsSync(join(run, 'latest'));
        const args = resume ? ['--resume', run, ...FLAGS, '--steps', String(STEPS)] : ['--data', data, ...FLAGS, '--steps', String(STEPS), '--out', run];
        const r = await train(args, kills < KILLS ? 150 + rng.next() * wallMs * 0.8 : null);
        if (resume) {
          // the checkpoint a kill left behind loaded (the line comes after loading, before training)
          if (r.signal !== 'SIGKILL') expect(r.out, r.err).toMatch(/resumed from step \d+/);
          expect(r.err).not.toMatch(/^rnnkit( train)?: /m);
          resumes++;
        }
        if (r.signal === 'SIGKILL') { kills++; continue; }
        expect(r.code, r.err).toBe(0);
        break;
      }
      expect(loadLanguageModel(run).step).toBe(STEPS);
      expect(Buffer.compare(weightsOf(run), want), `round ${rounds}: final weights differ from the uninterrupted run`).toBe(0);
    }
    expect(kills).toBe(KILLS);
    console.log(`rnnkit train: ${kills} SIGKILLs survived over ${rounds} runs (${resumes} resumes), final weights bitwise equal to the uninterrupted run`);
  }, 600_000);
});

/** A directory on a 100 KiB tmpfs (null when this process may not mount). */
function tinyDisk(): string | null {
  if (process.platform !== 'linux' || process.getuid?.() !== 0 || process.env.RNNKIT_TEST_NO_MOUNT) return null;
  const dir = tmp();
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=100k', 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? dir : null;
}

describe('a full disk during a checkpoint', () => {
  it('one clear error line, and the previous checkpoint stays the one loaded', async () => {
    const data = join(tmp(), 'book.txt');
    writeFileSync(data, TEXT);
    const disk = tinyDisk();
    const run = join(disk ?? tmp(), 'run');
    mkdirSync(run);
    // the first save (step 10) fits; a checkpoint takes about 60 KB, so the second fills the disk
    // (without a tmpfs: writes into the run directory fail with ENOSPC after the first checkpoint)
    const inject = join(tmp(), 'enospc.cjs');
    writeFileSync(inject, `
      const fs = require('node:fs'); const { syncBuiltinESMExports } = require('node:module');
      const write = fs.writeSync; let saves = 0; const seen = new Set();
      fs.writeSync = function (fd, ...rest) {
        let path = ''; try { path = fs.readlinkSync('/proc/self/fd/' + fd); } catch {}
        if (path.includes(${JSON.stringify(run)}) && path.includes('.ckpt-')) {
          const dir = path.split('/').slice(0, -1).join('/'); if (!seen.has(dir)) { seen.add(dir); saves++; }
          if (saves > 1) { const e = new Error('ENOSPC: no space left on device, write'); e.code = 'ENOSPC'; e.errno = -28; e.syscall = 'write'; throw e; }
        }
        return write.call(this, fd, ...rest);
      };
      syncBuiltinESMExports();
    `);
    try {
      const big = ['--layers', '1', '--hidden', '24', '--embed', '8', '--seq', '12', '--batch', '4', '--val-every', '0', '--checkpoint-every', '10', '--samples', '0', '--no-progress'];
      const r = spawnSync(process.execPath, [...(disk ? [] : ['--require', inject]), 'bin/rnnkit.js', 'train', '--data', data, ...big, '--steps', '60', '--out', run], { cwd: ROOT, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(1);
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('rnnkit'));
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^rnnkit: cannot save the checkpoint of step \d+ in .*run \(ENOSPC: no space left on device.*\); the previous checkpoint is kept$/);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      const { step } = loadLanguageModel(run);
      expect(step).toBeGreaterThanOrEqual(10);
      expect(step % 10).toBe(0);
      console.log(`full disk (${disk ? '100 KiB tmpfs' : 'injected ENOSPC'}): "${lines[0]}"; checkpoint of step ${step} still loads`);
    } finally {
      if (disk) spawnSync('umount', [disk]);
    }
  }, 300_000);
});
