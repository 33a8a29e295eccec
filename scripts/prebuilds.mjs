#!/usr/bin/env node
// Builds the stripped N-API binaries that ship in the package, prebuilds/<platform>-<arch>/*.node
// (node-gyp-build loads the one matching the machine, so no compiler is needed at install).
// Each is built in a staging copy of native/ (build/, the local build, is left alone) and kept in
// .cache/prebuilds/, keyed by the sources, the compiler and the target. Linux targets are built
// with prebuildify (node-gyp); win32-x64 with MinGW-w64 directly: the sources and flags of
// binding.gyp, linked against node.exe's N-API exports through an import library that dlltool
// makes from a .def of the napi_* functions the objects call (the addon has no other dependency:
// libstdc++, libgcc and winpthreads are linked in statically).
//
//   node scripts/prebuilds.mjs                     this machine's platform and arch
//   node scripts/prebuilds.mjs --all               linux-x64, linux-arm64 and win32-x64 (prepack;
//                                                  Linux hosts only): the other targets are
//                                                  cross-compiled with Debian's g++-aarch64-linux-gnu /
//                                                  g++-x86-64-linux-gnu and g++-mingw-w64-x86-64
//   node scripts/prebuilds.mjs --arch arm64        one arch of this platform
//   node scripts/prebuilds.mjs --target win32-x64  one platform-arch
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

const MINGW = 'x86_64-w64-mingw32';

/** 'arm64' (this platform) or 'win32-x64' -> { platform, arch } */
function parseTarget(target) {
  const m = /^(?:(linux|darwin|win32)-)?(x64|arm64)$/.exec(target);
  if (!m) throw new Error(`prebuild target must be x64, arm64 or <platform>-<arch> (linux-x64, linux-arm64, win32-x64); received ${target}`);
  return { platform: m[1] ?? hostPlatform(), arch: m[2] };
}

/**
 * Compiler, strip binary and extra environment to build for `target` (an arch of this platform,
 * or 'win32-x64') on this machine, or why not.
 */
export function toolchain(target) {
  const { platform, arch } = parseTarget(target);
  if (platform !== hostPlatform()) {
    if (platform !== 'win32' || arch !== 'x64' || hostPlatform() !== 'linux') {
      return { ok: false, reason: `cannot cross-compile for ${platform}-${arch} on ${hostPlatform()}-${hostArch()}` };
    }
    // the POSIX-threads flavour: GCC 12's win32 flavour has no std::thread
    const cxx = which(`${MINGW}-g++-posix`);
    if (!cxx || !which(`${MINGW}-dlltool`)) return { ok: false, reason: `${MINGW}-g++-posix is missing (apt-get install g++-mingw-w64-x86-64)` };
    return { ok: true, cxx, strip: `${MINGW}-strip`, env: {}, mingw: true };
  }
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
function buildKey(platform, arch, tc) {
  const h = createHash('sha256');
  h.update(readFileSync(join(ROOT, 'binding.gyp')));
  for (const f of readdirSync(join(ROOT, 'native')).sort()) h.update(f).update(readFileSync(join(ROOT, 'native', f)));
  const napi = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'node-addon-api', 'package.json'), 'utf8')).version;
  const cc = tc.cxx ? spawnSync(tc.cxx, ['--version'], { encoding: 'utf8' }).stdout ?? '' : '';
  h.update(`${platform}-${arch}|${napi}|${cc}|${process.versions.node}|${tc.mingw ? readFileSync(fileURLToPath(import.meta.url)) : ''}`);
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

/** Runs a command; throws with its output when it fails. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${(r.stdout ?? '') + (r.stderr ?? '')}`.trim());
  return r.stdout;
}

/**
 * The win32-x64 addon with MinGW-w64 into `out`: binding.gyp's sources (those for x64), defines and
 * C++ flags, node-addon-api with C++ exceptions (its node_addon_api_except target), two compiles
 * at a time (make -j2); then node.def (the napi_* / node_api_* functions the objects import from
 * node.exe), its import library, and a stripped DLL that needs only node.exe and Windows' own DLLs.
 */
function buildMingw(tc, stage, out) {
  const gyp = JSON.parse(readFileSync(join(ROOT, 'binding.gyp'), 'utf8')).targets[0];
  const x64 = gyp.conditions.find(([cond]) => cond === "target_arch=='x64'")[1];
  const sources = [...gyp.sources, ...x64.sources];
  const nd = nodeDir();
  if (!nd) throw new Error(`no Node headers (include/node/node_api.h) next to ${process.execPath}`);
  const napiInclude = join(ROOT, 'node_modules', 'node-addon-api');
  const flags = [...gyp.cflags_cc, '-D_WIN32_WINNT=0x0A00', '-DNAPI_CPP_EXCEPTIONS', '-DBUILDING_NODE_EXTENSION',
    ...gyp.defines.map((d) => `-D${d}`), `-I${join(nd, 'include', 'node')}`, `-I${napiInclude}`];
  const names = sources.map((f) => `${f.replace(/\W/g, '_')}.o`);  // in the stage folder
  const objs = names.map((o) => join(stage, o));
  const q = (a) => `'${a.replace(/'/g, "'\\''")}'`;  // for the shell make runs each recipe in
  const rules = sources.map((f, i) => `${names[i]}:\n\t${[tc.cxx, ...flags, '-c', join(ROOT, f), '-o', names[i]].map(q).join(' ')}\n`);
  writeFileSync(join(stage, 'Makefile'), `all: ${names.join(' ')}\n${rules.join('')}`);
  run('make', ['-j2', 'all'], { cwd: stage });
  const used = new Set();
  for (const line of run(`${MINGW}-nm`, ['-u', ...objs]).split('\n')) {
    const m = /^\s*U (?:__imp_)?((?:napi|node_api)_\w+)$/.exec(line);
    if (m) used.add(m[1]);
  }
  writeFileSync(join(stage, 'node.def'), `LIBRARY node.exe\nEXPORTS\n${[...used].sort().join('\n')}\n`);
  run(`${MINGW}-dlltool`, ['-d', join(stage, 'node.def'), '-l', join(stage, 'libnode.a'), '-D', 'node.exe']);
  run(tc.cxx, ['-shared', '-s', '-o', out, ...objs, join(stage, 'libnode.a'), '-static', '-static-libgcc', '-static-libstdc++']);
}

/**
 * Builds (or takes from the cache) the prebuild for `target` (an arch of this platform, or
 * 'win32-x64') and returns the path of the cached .node file. Throws with the build's output
 * when it fails.
 */
export function buildPrebuild(target = hostArch(), { quiet = true } = {}) {
  const { platform, arch } = parseTarget(target);
  const tc = toolchain(target);
  if (!tc.ok) throw new Error(tc.reason);
  const key = buildKey(platform, arch, tc);
  const cached = join(CACHE, `${platform}-${arch}-${key}`, 'rnnkit.node');
  if (existsSync(cached)) return cached;

  if (tc.mingw) {
    const stage = mkdtempSync(join(tmpdir(), 'rnnkit-prebuild-'));
    try {
      if (!quiet) console.log(`building ${platform}-${arch} with ${tc.cxx}`);
      buildMingw(tc, stage, join(stage, 'rnnkit.node'));
      mkdirSync(dirname(cached), { recursive: true });
      copyFileSync(join(stage, 'rnnkit.node'), cached);
      return cached;
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
  }

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

/** Writes prebuilds/<platform>-<arch>/rnnkit.node for each target (the folder is replaced). */
export function writePrebuilds(targets, out = join(ROOT, 'prebuilds')) {
  const written = [];
  for (const target of targets) {
    const file = buildPrebuild(target, { quiet: false });
    const { platform, arch } = parseTarget(target);
    const dir = join(out, `${platform}-${arch}`);
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
      console.error(`--all builds the linux-x64, linux-arm64 and win32-x64 prebuilds and runs on Linux; this is ${hostPlatform()}`);
      process.exit(1);
    }
    archs = ['linux-x64', 'linux-arm64', 'win32-x64'];
  }
  const a = args.indexOf('--arch');
  if (a >= 0) archs = [args[a + 1]];
  const t = args.indexOf('--target');
  if (t >= 0) archs = [args[t + 1]];
  try {
    for (const f of writePrebuilds(archs)) console.log(`prebuild: ${f.slice(ROOT.length + 1)}`);
  } catch (e) {
    console.error(String(e.message ?? e));
    process.exit(1);
  }
}
