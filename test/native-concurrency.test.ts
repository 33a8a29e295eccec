// Overlapping native work (forwardAsync jobs, synchronous calls, worker_threads, optimizer steps,
// setThreads) in a child process: it must exit cleanly and every overlapped result must equal the
// same call alone, bit for bit. Also under AddressSanitizer + UBSan and ThreadSanitizer builds of
// the addon (`npm run build:asan`, `npm run build:tsan`; .ci/run builds both).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendStatus } from '../src/index.js';
import { isTsanAddonReport } from './native-helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = 'test/native-overlap.mjs';
const nativeLoads = backendStatus().find((s) => s.name === 'native')?.available ?? false;

interface Summary { scenarios: Record<string, { runs: number; mismatches: number }>; isa: string }

function runOverlap(env: Record<string, string>): { status: number | null; signal: string | null; stderr: string; summary: Summary | null } {
  const r = spawnSync(process.execPath, ['--expose-gc', SCRIPT], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 900_000, maxBuffer: 64 << 20 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let summary: Summary | null = null;
  try { summary = JSON.parse(line) as Summary; } catch { /* reported below */ }
  return { status: r.status, signal: r.signal, stderr: r.stderr, summary };
}

function expectAllEqual(summary: Summary | null, minRuns: number): void {
  expect(summary, 'the overlap script printed no summary').not.toBeNull();
  const names = Object.keys(summary!.scenarios);
  expect(names.length).toBe(16); // six scenarios at two sizes, detached buffers, weight copies collected and a worker_thread ended during jobs
  for (const [name, r] of Object.entries(summary!.scenarios)) {
    expect(r.mismatches, `${name}: results differ from the same call alone`).toBe(0);
    expect(r.runs, name).toBeGreaterThanOrEqual(/worker_thread|detached|collected/.test(name) ? 2 : minRuns);
  }
}

describe.skipIf(!nativeLoads)('overlapping native work (native backend loads)', () => {
  it('six overlap scenarios 100 times each at 1 and 2 threads and two sizes, and buffers detached during jobs: no crash, results bitwise equal to calls alone', () => {
    const r = runOverlap({});
    expect(r.stderr).not.toMatch(/corruption|free\(\)|Aborted|Segmentation/);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expectAllEqual(r.summary, 100);
  }, 900_000);

  const SANITIZERS: Array<{ kind: string; runtime: string; env: Record<string, string>; isReport: (block: string) => boolean }> = [
    { kind: 'asan', runtime: 'libasan.so', env: { ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
      isReport: (block: string) => /ERROR: AddressSanitizer|runtime error:/.test(block) },
    // V8's own platform threads are not instrumented: only reports that reach the addon count
    { kind: 'tsan', runtime: 'libtsan.so', env: { TSAN_OPTIONS: 'report_signal_unsafe=0:exitcode=0' },
      isReport: isTsanAddonReport },
  ];
  for (const s of SANITIZERS) {
    const addon = `${ROOT}build/${s.kind}/rnnkit.node`;
    const runtime = spawnSync('g++', [`-print-file-name=${s.runtime}`], { encoding: 'utf8' }).stdout?.trim() ?? '';
    const reason = !existsSync(addon) ? `no ${s.kind} build (npm run build:${s.kind})` : !existsSync(runtime) ? `no ${s.runtime}` : '';
    it.skipIf(reason !== '')(`under ${s.kind === 'asan' ? 'AddressSanitizer + UBSan' : 'ThreadSanitizer'}: every scenario, 2 threads, no report${reason ? ` (skipped: ${reason})` : ''}`, () => {
      const r = runOverlap({ ...s.env, LD_PRELOAD: runtime, RNNKIT_NATIVE_ADDON: addon, RNNKIT_OVERLAP_REPS: '3', RNNKIT_OVERLAP_THREADS: '2' });
      const reports = r.stderr.split(/^={10,}$/m).filter(s.isReport);
      expect(reports, reports.join('\n')).toEqual([]);
      expect(r.signal).toBeNull();
      expect(r.status).toBe(0);
      expectAllEqual(r.summary, 3);
    }, 900_000);
  }
});
