// The native test suite (test/native.test.ts: kernels cross-checked with the reference on every ISA
// path the CPU has, threads, async forms, bad input) and the PyTorch reference cases on the native
// backend under RNNKIT_NATIVE_ISA=each ISA, run again with the addon built under AddressSanitizer +
// UBSan and under ThreadSanitizer (`npm run build:asan`, `npm run build:tsan`; .ci/run builds
// both). Node itself is not instrumented: the sanitizer runtime is preloaded and only the addon
// carries the checks. A report fails the test; for ThreadSanitizer only reports with a frame in
// the addon (rk:: or native/*.cpp) count: V8's threads and vitest's bundler are not instrumented.
// Which tests of native.test.ts run under each sanitizer is said at SANITIZERS below.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendStatus } from '../src/index.js';
import { loadNativeAddon } from '../src/backends/native.js';
import { isTsanAddonReport } from './native-helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const nativeLoads = backendStatus().find((s) => s.name === 'native')?.available ?? false;
const ISAS = nativeLoads ? (['avx512', 'avx2', 'sse2'] as const).filter((isa) => loadNativeAddon().cpuSupports(isa)) : [];
// CI runs the whole suite once per forced ISA: the sanitizer runs cover every ISA in the run
// without RNNKIT_NATIVE_ISA, and are not repeated in the forced ones.
const forcedIsa = process.env.RNNKIT_NATIVE_ISA ?? '';

export const SANITIZERS = [
  {
    kind: 'asan', title: 'AddressSanitizer + UBSan', runtime: 'libasan.so',
    env: { ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
    // every test of native.test.ts but the qemu ones and the large-workspace one (minutes under ASan;
    // workspace reuse is also exercised by the overlap scenarios of native-concurrency.test.ts)
    nativeTests: '^(?!.*(qemu-user|large workspaces recycled)).*$', nativeWhat: 'test/native.test.ts',
    isReport: (block: string) => /ERROR: AddressSanitizer|runtime error:/.test(block),
  },
  {
    kind: 'tsan', title: 'ThreadSanitizer', runtime: 'libtsan.so',
    env: { TSAN_OPTIONS: 'report_signal_unsafe=0:exitcode=0' },
    // the tests that run the thread pool: threads and async (1-3 threads, async forms), the GEMM
    // above the cache blocks; the small cross-checks stay below the threading thresholds
    nativeTests: '^(?!.*large workspaces recycled).*(native threads and async|blocks larger than the cache blocks).*$',
    nativeWhat: 'the threaded tests of test/native.test.ts',
    isReport: isTsanAddonReport,
  },
] as const;

/** The environment of this process without vitest's own variables (a nested run starts fresh). */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(VITEST|TINYPOOL|NODE_OPTIONS)/.test(k)) env[k] = v;
  return env;
}

/** Runs vitest on files with a name filter under a sanitizer; fails on a report, a crash or a vacuous run. */
function nestedRun(s: (typeof SANITIZERS)[number], runtime: string, addon: string, files: string[], pattern: string, env: Record<string, string>, minPassed: number): void {
  const r = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...files, '--testNamePattern', pattern, '--reporter=dot'], {
    cwd: ROOT, encoding: 'utf8', timeout: 600_000, maxBuffer: 256 << 20,
    env: { ...cleanEnv(), ...s.env, ...env, LD_PRELOAD: runtime, RNNKIT_NATIVE_ADDON: addon, RNNKIT_TEST_BACKENDS: 'native', NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  const output = `${r.stdout}\n${r.stderr}`;
  const reports = output.split(/^={10,}$/m).filter(s.isReport);
  expect(reports, reports.join('\n').slice(0, 20_000)).toEqual([]);
  expect(r.signal, output.slice(-4000)).toBeNull();
  expect(r.status, output.slice(-4000)).toBe(0);
  // the nested run really ran the tests (a filter or path mistake would pass vacuously)
  const passed = Number(/Tests\s+(\d+) passed/.exec(output)?.[1] ?? 0);
  expect(passed, output.slice(-4000)).toBeGreaterThanOrEqual(minPassed);
}

describe.skipIf(!nativeLoads)('the native tests under sanitizers', () => {
  for (const s of SANITIZERS) {
    const addon = `${ROOT}build/${s.kind}/rnnkit.node`;
    const runtime = spawnSync('g++', [`-print-file-name=${s.runtime}`], { encoding: 'utf8' }).stdout?.trim() ?? '';
    const reason = forcedIsa ? `covered by the run without RNNKIT_NATIVE_ISA (this one forces ${forcedIsa})`
      : !existsSync(addon) ? `no ${s.kind} build (npm run build:${s.kind})`
      : !existsSync(runtime) ? `no ${s.runtime}` : '';
    const skipped = reason ? ` (skipped: ${reason})` : '';
    it.skipIf(reason !== '')(`${s.title}: ${s.nativeWhat} (kernels on every ISA: ${ISAS.join(', ')}) pass with no report${skipped}`, () => {
      nestedRun(s, runtime, addon, ['test/native.test.ts'], s.nativeTests, {}, s.kind === 'asan' ? 60 : 3);
    }, 600_000);
    for (const isa of ISAS) {
      it.skipIf(reason !== '')(`${s.title}, RNNKIT_NATIVE_ISA=${isa}: the 16 PyTorch reference cases on native pass with no report${skipped}`, () => {
        nestedRun(s, runtime, addon, ['test/golden.test.ts'], '^golden cases from PyTorch native ', { RNNKIT_NATIVE_ISA: isa }, 16);
      }, 600_000);
    }
  }
});
