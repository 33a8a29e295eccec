#!/usr/bin/env node
// Builds the stripped N-API binaries that ship in the package, prebuilds/<platform>-<arch>/*.node
// (node-gyp-build loads the one matching the machine, so no compiler is needed at install).
// Each is built with prebuildify in a staging copy of native/ (build/, the local build, is left
// alone) and kept in .cache/prebuilds/, keyed by the sources, the compiler and the arch.
//
//   node scripts/prebuilds.mjs           this machine's platform and arch
//   node scripts/prebuilds.mjs --all     linux-x64 and linux-arm64 (prepack; Linux hosts only);
//                                        the other arch is cross-compiled with Debian's
//                                        g++-aarch64-linux-gnu / g++-x86-64-linux-gnu
//   node scripts/prebuilds.mjs --arch arm64
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { arch as hostArch, platform as hostPlatform, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = join(ROOT, '.cache', 'prebuilds');
const GNU_TRIPLE = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v "${cmd}"`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Compiler, strip binary and extra environment to build for `arch` on this machine, or why not. */
export function toolchain(arch) {
  if (arch === hostArch()) {
    const cxx = process.env.CXX || (hostPlatform() === 'win32' ? null : 'c++');
    return { ok: true, cxx, strip: 'strip', env: {} };
  }
  const triple = GNU_TRIPLE[arch];
  if (hostPlatform() !== 'linux' || !triple) return { ok: false, reason: `cannot cross-compile for ${arch} on ${hostPlatform()}-${hostArch()}` };
  const cxx = which(`${triple}-g++`);
  if (!cxx) {
    return { ok: false, reason: `${triple}-g++ is missing (apt-get install g++-${triple.replace('_', '-').replace('-linux-gnu', '')}-linux-gnu)` };
  }
  return { ok: true, cxx, strip: `${triple}-strip`, env: { CC: `${triple}-gcc`, CXX: `${triple}-g++` } };
}

/** Hash of everything the binary depends on. */
function buildKey(arch, tc) {
  const h = createHash('sha256');
  h.update(readFileSync(join(ROOT, 'binding.gyp')));
  for (const f of readdirSync(join(ROOT, 'native')).sort()) h.update(f).update(readFileSync(join(ROOT, 'native', f)));
  const napi = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'node-addon-api', 'package.json'), 'utf8')).version;
  const cc = tc.cxx ? spawnSync(tc.cxx, ['--version'], { encoding: 'utf8' }).stdout ?? '' : '';
  h.update(`${hostPlatform()}-${arch}|${napi}|${cc}|${process.versions.node}`);
  return h.digest('hex').slice(0, 16);
}

/** Node's headers next to this Node (Debian: /usr/include/node), so node-gyp downloads nothing. */
function nodeDir() {
  const dir = resolve(dirname(process.execPath), '..');
  return existsSync(join(dir, 'include', 'node', 'node_api.h')) ? dir : null;
}

function nodeGypBin() {
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  const bundled = resolve(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  return existsSync(bundled) ? bundled : 'node-gyp';
}

/**
 * Builds (or takes from the cache) the prebuild for `arch` on this platform and returns the path
 * of the cached .node file. Throws with the build's output when it fails.
 */
export function buildPrebuild(arch = hostArch(), { quiet = true } = {}) {
  const tc = toolchain(arch);
  if (!tc.ok) throw new Error(tc.reason);
  const key = buildKey(arch, tc);
  const cached = join(CACHE, `${hostPlatform()}-${arch}-${key}`, 'rnnkit.node');
  if (existsSync(cached)) return cached;

  const stage = mkdtempSync(join(tmpdir(), 'rnnkit-prebuild-'));
  try {
    copyFileSync(join(ROOT, 'binding.gyp'), join(stage, 'binding.gyp'));
    cpSync(join(ROOT, 'native'), join(stage, 'native'), { recursive: true });
    writeFileSync(join(stage, 'package.json'), JSON.stringify({ name: 'rnnkit', version: '0.0.0' }));
    symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'junction');
    const env = { ...process.env, ...tc.env, PREBUILD_NODE_GYP: nodeGypBin(), npm_config_jobs: '2' };
    const nd = nodeDir();
    if (nd) env.npm_config_nodedir = nd;
    const r = spawnSync(process.execPath, [
      join(ROOT, 'node_modules', 'prebuildify', 'bin.js'), '--napi', '--strip', `--strip-bin=${tc.strip}`, `--arch=${arch}`,
    ], { cwd: stage, env, encoding: 'utf8', stdio: quiet ? 'pipe' : 'inherit' });
    const outDir = join(stage, 'prebuilds', `${hostPlatform()}-${arch}`);
    const built = existsSync(outDir) ? readdirSync(outDir).find((f) => f.endsWith('.node')) : undefined;
    if (r.status !== 0 || !built) {
      throw new Error(`prebuildify for ${hostPlatform()}-${arch} failed (exit ${r.status}):\n${(r.stdout ?? '') + (r.stderr ?? '')}`.trim());
    }
    mkdirSync(dirname(cached), { recursive: true });
    copyFileSync(join(outDir, built), cached);
    return cached;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** Writes prebuilds/<platform>-<arch>/rnnkit.node for each arch (the folder is replaced). */
export function writePrebuilds(archs, out = join(ROOT, 'prebuilds')) {
  const written = [];
  for (const arch of archs) {
    const file = buildPrebuild(arch, { quiet: false });
    const dir = join(out, `${hostPlatform()}-${arch}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    copyFileSync(file, join(dir, 'rnnkit.node'));
    written.push(join(dir, 'rnnkit.node'));
  }
  return written;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  let archs = [hostArch()];
  if (args.includes('--all')) {
    if (hostPlatform() !== 'linux') {
      console.error(`--all builds the linux-x64 and linux-arm64 prebuilds and runs on Linux; this is ${hostPlatform()}`);
      process.exit(1);
    }
    archs = ['x64', 'arm64'];
  }
  const a = args.indexOf('--arch');
  if (a >= 0) archs = [args[a + 1]];
  try {
    for (const f of writePrebuilds(archs)) console.log(`prebuild: ${f.slice(ROOT.length + 1)}`);
  } catch (e) {
    console.error(String(e.message ?? e));
    process.exit(1);
  }
}
