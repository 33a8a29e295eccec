// A short native training loop (test/valgrind-train.mjs: 2-layer LSTM + Linear, Adam, three steps,
// an inference and an async forward, through the public API) under valgrind's memcheck. Node runs
// with --jitless (no JIT code for valgrind to re-translate) and --expose-gc (the script collects
// before exit, so sequence contexts the tape let go of are finalized, as in a long-running
// process). Counted: every invalid read, write or free in the process, and every definitely-lost
// block whose allocation stack passes through the addon (rnnkit.node / rk::). Uninitialised-value
// tracking is off (V8's own noise, and it triples the time). valgrind: Debian `valgrind` (.ci/run).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendStatus } from '../src/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VALGRIND = ['/usr/bin/valgrind', '/usr/local/bin/valgrind'].find((p) => existsSync(p));
const nativeLoads = backendStatus().find((s) => s.name === 'native')?.available ?? false;

/** The records of a memcheck log (blocks separated by a bare "==PID== " line). */
function records(log: string): string[] {
  return log.split(/^==\d+== ?$/m).map((r) => r.trim()).filter(Boolean);
}

describe.skipIf(!nativeLoads)('native training under valgrind memcheck', () => {
  // skipped without valgrind on a developer machine; under CI (which installs it) a missing valgrind fails
  it.skipIf(!VALGRIND && !process.env.CI)(`no invalid read/write/free, no definitely-lost block from the addon${VALGRIND || process.env.CI ? '' : ' (skipped: valgrind is not installed; .ci/run installs it)'}`, () => {
    if (!VALGRIND) throw new Error('valgrind is not installed (.ci/run installs Debian valgrind)');
    const log = join(mkdtempSync(join(tmpdir(), 'rnnkit-valgrind-')), 'memcheck.log');
    const r = spawnSync(VALGRIND!, [
      '--tool=memcheck', '--leak-check=full', '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
      '--undef-value-errors=no', '--num-callers=40', `--log-file=${log}`,
      process.execPath, '--jitless', '--expose-gc', 'test/valgrind-train.mjs',
    ], { cwd: ROOT, encoding: 'utf8', timeout: 600_000, env: { ...process.env, RNNKIT_THREADS: '2' } });
    const text = readFileSync(log, 'utf8');
    expect(r.status, `${r.stderr}\n${text.slice(-3000)}`).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { backend: string; losses: number[]; same: boolean };
    expect(out.backend).toBe('native');
    expect(out.losses).toHaveLength(3);
    expect(out.losses[2]).toBeLessThan(out.losses[0]); // it trained
    expect(out.same).toBe(true);
    const recs = records(text);
    const invalid = recs.filter((b) => /Invalid (read|write|free)|Mismatched free|Source and destination overlap|Jump to the invalid address/.test(b));
    const leaks = recs.filter((b) => /definitely lost in loss record/.test(b) && /rnnkit\.node|\brk::/.test(b));
    expect(invalid, invalid.join('\n\n')).toEqual([]);
    expect(leaks, leaks.join('\n\n')).toEqual([]);
    expect(text).toMatch(/LEAK SUMMARY|All heap blocks were freed/); // memcheck really ran to the end
  }, 600_000);
});
