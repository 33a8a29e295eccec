// The wasm build outside Node's default flags: the same golden LSTM forward through the public
// model API (weights from lstm.safetensors, compared with PyTorch's output) and a few training steps in Deno, Bun, a Cloudflare worker under
// miniflare/workerd and headless Chromium, all through dist/wasm-entry.js (no Node APIs); and the
// whole wasm cross-check suite on the relaxed-SIMD build (Node with its flag).
// Needs `npm run build` (dist/) and, for Chromium, Debian's chromium at /usr/bin/chromium
// (RNNKIT_CHROMIUM overrides the path). A runtime that is missing fails its test.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GOLDEN_DIR } from './helpers.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name);
const TOL = 1e-5;

interface EdgeResult {
  runtime: string; error: number; isa: string; trained: boolean; message?: string;
  threaded: { threads: number; isa?: string; why?: string; split?: number; equal?: boolean };
  threadedRelaxed?: { threads: number; isa?: string; split?: number; equal?: boolean };
}

function parseLast(out: string): EdgeResult {
  const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`no result line in output:\n${out}`);
  return JSON.parse(line) as EdgeResult;
}

function expectGood(r: EdgeResult, runtime: string): void {
  expect(r.runtime).toBe(runtime);
  expect(r.message).toBeUndefined();
  expect(r.error).toBeLessThan(TOL);
  expect(r.trained).toBe(true);
  expect(r.isa).toMatch(/^simd128/);
}

describe('wasm in other runtimes (golden lstm forward)', () => {
  it('dist/ is built', () => {
    for (const f of ['dist/rnnkit.wasm', 'dist/rnnkit-relaxed.wasm', 'dist/wasm-entry.js']) {
      expect(existsSync(join(ROOT, f)), `${f} (run npm run build)`).toBe(true);
    }
  });

  it('Deno', () => {
    const out = execFileSync(bin('deno'), ['run', '--allow-read', 'test/edge/runtime-forward.mjs', GOLDEN_DIR], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
    });
    const r = parseLast(out);
    expectGood(r, 'deno');
    expect(r.isa).toBe('simd128+relaxed');
    expect(r.threaded, 'the threaded build on 2 Web Workers').toMatchObject({ threads: 2, equal: true });
    expect(r.threaded.split).toBeGreaterThan(0);
    expect(r.threadedRelaxed, 'the relaxed-SIMD threaded build on 2 Web Workers').toMatchObject({ threads: 2, isa: 'simd128+relaxed', equal: true });
    expect(r.threadedRelaxed?.split).toBeGreaterThan(0);
  });

  it('Bun', () => {
    const out = execFileSync(bin('bun'), ['test/edge/runtime-forward.mjs', GOLDEN_DIR], { cwd: ROOT, encoding: 'utf8' });
    const r = parseLast(out);
    expectGood(r, 'bun');
    expect(r.isa).toBe('simd128+relaxed');
    expect(r.threaded, 'the threaded build on 2 workers').toMatchObject({ threads: 2, equal: true });
    expect(r.threaded.split).toBeGreaterThan(0);
    expect(r.threadedRelaxed, 'the relaxed-SIMD threaded build on 2 workers').toMatchObject({ threads: 2, isa: 'simd128+relaxed', equal: true });
    expect(r.threadedRelaxed?.split).toBeGreaterThan(0);
  });

  it('Cloudflare worker under miniflare (workerd), the .wasm imported as a module', async () => {
    const { Miniflare } = await import('miniflare');
    const mf = new Miniflare({
      modules: true,
      modulesRoot: ROOT,
      modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }, { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] }],
      scriptPath: join(ROOT, 'test/edge/worker.mjs'),
      compatibilityDate: '2024-09-23',
    });
    try {
      const golden = JSON.parse(readFileSync(join(GOLDEN_DIR, 'lstm.json'), 'utf8'));
      const st = readFileSync(join(GOLDEN_DIR, 'lstm.safetensors')).toString('base64');
      const res = await mf.dispatchFetch('http://localhost/', { method: 'POST', body: JSON.stringify({ golden, safetensors: st }) });
      const r = JSON.parse(await res.text()) as EdgeResult;
      expectGood(r, 'workerd');
      expect(r.threaded.why, 'workerd has no shared memory threads: one thread').toMatch(/SharedArrayBuffer|Atomics.wait|workers/);
    } finally {
      await mf.dispose();
    }
  });

  it('headless Chromium (playwright-core, /usr/bin/chromium)', async () => {
    const executablePath = process.env.RNNKIT_CHROMIUM ?? '/usr/bin/chromium';
    expect(existsSync(executablePath), `${executablePath} (apt-get install -y chromium)`).toBe(true);
    const types: Record<string, string> = {
      '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
      '.json': 'application/json', '.safetensors': 'application/octet-stream',
    };
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x').pathname;
      const file = url.startsWith('/golden/') ? join(GOLDEN_DIR, url.slice(8)) : join(ROOT, url);
      if (!file.startsWith(ROOT) && !file.startsWith(GOLDEN_DIR) || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const { port } = server.address() as AddressInfo;
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${port}/test/edge/browser.html`);
      await page.waitForFunction(() => (window as unknown as { __result?: unknown }).__result !== undefined, null, { timeout: 60_000 });
      const r = await page.evaluate(() => (window as unknown as { __result: EdgeResult }).__result);
      expectGood(r, 'chromium');
      // a page without cross-origin isolation (no COOP/COEP headers here): one thread, and why
      expect(r.threaded.why).toMatch(/SharedArrayBuffer is not available|not cross-origin isolated/);
    } finally {
      await browser.close();
      server.close();
    }
  });

  it('Node picks the relaxed-SIMD threaded build where it validates (with --experimental-wasm-relaxed-simd), bitwise the same on 1 and 2 threads', () => {
    const script = `
      const api = await import('./dist/wasm-entry.js');
      const { loadWasmBackend } = await import('./dist/backends/wasm.js');
      const { threadsCheck } = await import('./test/edge/golden-forward.mjs');
      const { readFileSync } = await import('node:fs');
      const b = loadWasmBackend();
      const info = b.info();
      b.close();
      const check = WebAssembly.validate(readFileSync('./dist/rnnkit-threads-relaxed.wasm'))
        ? await threadsCheck(api, readFileSync('./dist/rnnkit-threads-relaxed.wasm')) : null;
      console.log(JSON.stringify({ info, check }));
    `;
    // a module file rather than --input-type=module, which the worker threads would inherit
    const file = join(mkdtempSync(join(tmpdir(), 'rnnkit-relaxed-threads-')), 'check.mjs');
    writeFileSync(file, script.replaceAll("import('./", `import('${pathToFileURL(ROOT).href}/`));
    const run = (flags: string[]) => JSON.parse(execFileSync(process.execPath, [...flags, file], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, RNNKIT_WASM_BUILD: '', RNNKIT_THREADS: '2' },
    }).trim().split('\n').pop()!);
    const relaxed = run(['--experimental-wasm-relaxed-simd']);
    expect(relaxed.info).toMatchObject({ isa: 'simd128+relaxed', threads: 2, detail: expect.stringMatching(/relaxed SIMD kernels, threaded build .*rnnkit-threads-relaxed\.wasm/) });
    expect(relaxed.check).toMatchObject({ threads: 2, isa: 'simd128+relaxed', equal: true });
    expect(relaxed.check.split).toBeGreaterThan(0);
    const plain = run([]); // Node 20 without the flag: the relaxed build does not validate
    expect(plain.info).toMatchObject({ isa: 'simd128', threads: 2, detail: expect.stringMatching(/SIMD kernels, threaded build .*rnnkit-threads\.wasm/) });
    expect(plain.check).toBeNull();
  });

  it('the relaxed-SIMD build passes the wasm cross-check and kernel edge suites (Node with --experimental-wasm-relaxed-simd)', () => {
    const out = execFileSync(process.execPath, [
      '--experimental-wasm-relaxed-simd', join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', 'test/wasm.test.ts', 'test/kernel-edges.test.ts',
      '--pool=threads', '--reporter=dot',
    ], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, RNNKIT_WASM_BUILD: 'relaxed', NO_COLOR: '1', FORCE_COLOR: '0' } });
    expect(out).toMatch(/Tests\s+\d+ passed/);
    expect(out).not.toMatch(/failed/);
  });
});
