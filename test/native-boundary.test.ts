// Random bad arguments at the native boundary (test/native-boundary.mjs), straight into the addon
// and through the public backend, in a child process so that a crash is seen as one: every call
// returns or throws an Error. Also with the AddressSanitizer + UBSan build when it exists (a
// use-after-free or overflow that does not crash shows there as a report).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendStatus } from '../src/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const nativeLoads = backendStatus().find((s) => s.name === 'native')?.available ?? false;
const ASAN_ADDON = `${ROOT}build/asan/rnnkit.node`;
const ASAN_RUNTIME = spawnSync('g++', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout?.trim() ?? '';

interface Stats { calls: number; returned: number; threw: number; nonErrors: string[]; byFunction: Record<string, { returned: number; threw: number }> }

function runBoundary(env: Record<string, string>): { stats: Stats | null; status: number | null; signal: string | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--expose-gc', 'test/native-boundary.mjs'], {
    cwd: ROOT, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20, env: { ...process.env, ...env },
  });
  let stats: Stats | null = null;
  try { stats = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Stats; } catch { /* reported below */ }
  return { stats, status: r.status, signal: r.signal, stderr: r.stderr };
}

function expectNoCrash(r: ReturnType<typeof runBoundary>, calls: number): void {
  expect(r.stderr).not.toMatch(/ERROR: AddressSanitizer|runtime error:|corruption|free\(\)|Segmentation/);
  expect(r.signal, r.stderr.slice(-3000)).toBeNull();
  expect(r.status, r.stderr.slice(-3000)).toBe(0);
  expect(r.stats, 'the child printed no summary').not.toBeNull();
  expect(r.stats!.nonErrors).toEqual([]);
  expect(r.stats!.calls).toBeGreaterThanOrEqual(calls * 20);
  // most changed calls are refused, and some (a NaN value, a SharedArrayBuffer, an offset view) run
  expect(r.stats!.threw).toBeGreaterThan(r.stats!.calls / 2);
  expect(r.stats!.returned).toBeGreaterThan(0);
}

describe.skipIf(!nativeLoads)('the native boundary under random bad arguments', () => {
  it('addon functions and the public backend: 200 changed calls each, every one returns or throws an Error', () => {
    expectNoCrash(runBoundary({ RNNKIT_BOUNDARY_CALLS: '200', RNNKIT_BOUNDARY_SEED: '7' }), 200);
  }, 600_000);

  const reason = !existsSync(ASAN_ADDON) ? 'no asan build (npm run build:asan)' : !existsSync(ASAN_RUNTIME) ? 'no libasan.so' : '';
  it.skipIf(reason !== '')(`the same under AddressSanitizer + UBSan: no report (getters that detach and free a buffer included)${reason ? ` (skipped: ${reason})` : ''}`, () => {
    expectNoCrash(runBoundary({
      RNNKIT_BOUNDARY_CALLS: '150', RNNKIT_BOUNDARY_SEED: '8', LD_PRELOAD: ASAN_RUNTIME, RNNKIT_NATIVE_ADDON: ASAN_ADDON,
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    }), 150);
  }, 600_000);
});
