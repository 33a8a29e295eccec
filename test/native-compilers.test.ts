// native/ compiles with the other compilers the addon is built with: Clang (the compiler of
// macOS, here for x86-64 and arm64 Linux) and MinGW-w64 for Windows (compile only, against
// Node's headers: catches a POSIX-only call or a missing Windows header before a Windows CI run).
// Each compiler is skipped, saying so, when it is not installed (.ci/run installs clang and
// g++-mingw-w64-x86-64). Runs once in CI (the runs with RNNKIT_NATIVE_ISA compile the same files).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const NODE_HEADERS = [resolve(dirname(process.execPath), '..', 'include', 'node')].find((d) => existsSync(join(d, 'node_api.h')));
const NAPI = (createRequire(import.meta.url)('node-addon-api') as { include_dir: string }).include_dir.replace(/^"|"$/g, '');
const SOURCES = readdirSync(join(ROOT, 'native')).filter((f) => f.endsWith('.cpp')).sort();
const OUT = mkdtempSync(join(tmpdir(), 'rnnkit-cc-'));
afterAll(() => rmSync(OUT, { recursive: true, force: true }));

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v "${cmd}"`]).status === 0;
}

/** Compiles one file; resolves to the compiler's diagnostics (empty on success) */
function compile(cxx: string, flags: string[], file: string): Promise<{ code: number | null; text: string }> {
  return new Promise((done) => {
    const args = [
      ...flags, '-std=gnu++17', '-O0', '-Wall', '-Wno-unknown-pragmas', '-DNAPI_VERSION=8', '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DNAPI_CPP_EXCEPTIONS',
      `-I${NODE_HEADERS}`, `-I${resolve(ROOT, NAPI)}`, '-c', join(ROOT, 'native', file), '-o', join(OUT, `${cxx.replace(/\W/g, '_')}-${file}.o`),
    ];
    const p = spawn(cxx, args, { cwd: ROOT });
    let text = '';
    p.stdout.on('data', (d) => { text += d; });
    p.stderr.on('data', (d) => { text += d; });
    p.on('close', (code) => done({ code, text }));
  });
}

const COMPILERS: Array<{ name: string; cxx: string; flags: string[]; install: string }> = [
  { name: 'clang, x86-64 Linux', cxx: 'clang++', flags: [], install: 'apt-get install clang' },
  { name: 'clang, arm64 (as on Apple silicon and arm64 Linux)', cxx: 'clang++', flags: ['--target=aarch64-linux-gnu'], install: 'apt-get install clang g++-aarch64-linux-gnu' },
  { name: 'MinGW-w64, x86-64 Windows', cxx: 'x86_64-w64-mingw32-g++-posix', flags: ['-D_WIN32_WINNT=0x0A00'], install: 'apt-get install g++-mingw-w64-x86-64' },
];

describe('native/ compiles with other compilers', () => {
  it('finds Node\'s headers next to this Node', () => {
    expect(NODE_HEADERS, `no include/node/node_api.h next to ${process.execPath}`).toBeTruthy();
  });
  for (const c of COMPILERS) {
    const aarch64Headers = !c.flags.some((f) => f.includes('aarch64')) || existsSync('/usr/aarch64-linux-gnu/include');
    const missing = process.env.RNNKIT_NATIVE_ISA ? 'runs once, in the run without RNNKIT_NATIVE_ISA' : !has(c.cxx) ? `${c.cxx} is missing (${c.install})` : !aarch64Headers ? `arm64 C++ headers missing (${c.install})` : '';
    it.skipIf(!!missing || !NODE_HEADERS)(`${c.name}: every native/*.cpp compiles without errors${missing ? ` (skipped: ${missing})` : ''}`, async () => {
      // two at a time (the machine's cores)
      const results: Array<{ file: string; code: number | null; text: string }> = [];
      for (let i = 0; i < SOURCES.length; i += 2) {
        const batch = SOURCES.slice(i, i + 2);
        results.push(...(await Promise.all(batch.map(async (file) => ({ file, ...(await compile(c.cxx, c.flags, file)) })))));
      }
      const failed = results.filter((r) => r.code !== 0).map((r) => `${r.file}:\n${r.text.split('\n').filter((l) => /error/.test(l)).slice(0, 5).join('\n')}`);
      expect(failed.join('\n')).toBe('');
      expect(results.length).toBe(SOURCES.length);
    }, 900_000);
  }
});
