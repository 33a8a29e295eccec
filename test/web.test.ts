// The browser example (examples/web) end to end in headless Chromium: the static site built by
// `npm run build:web`, served with the cross-origin isolation headers on 127.0.0.1. Trains in the
// Web Worker (the loss shown falls, the page keeps answering), streams a sample, saves the model;
// then loads a run of `rnnkit train` (and the model saved by the page) and generates exactly the
// text `rnnkit sample` prints with the same seed, prime, length, temperature and top-p.
// Needs `npm run build` (dist/) and Debian's chromium at /usr/bin/chromium (RNNKIT_CHROMIUM
// overrides the path). RNNKIT_UPDATE_SCREENSHOT=1 rewrites examples/web/screenshot.png.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const TMP = mkdtempSync(join(tmpdir(), 'rnnkit-web-'));
const SITE = join(TMP, 'site');
const CHROMIUM = process.env.RNNKIT_CHROMIUM ?? '/usr/bin/chromium';
const TYPES: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.png': 'image/png',
};

let server: Server;
let base = '';
let browser: Browser;

/** A static server for the built site with the headers the page needs (COOP/COEP). */
function serve(dir: string): Promise<Server> {
  const s = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const file = join(dir, path.endsWith('/') ? `${path}index.html` : path);
    if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) { res.writeHead(404).end(); return; }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    }).end(readFileSync(file));
  });
  return new Promise((ok) => s.listen(0, '127.0.0.1', () => ok(s)));
}

function rnnkit(args: string[]): string {
  return execFileSync(process.execPath, [join(ROOT, 'bin/rnnkit.js'), ...args], { cwd: TMP, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Opens the page and waits for the wasm backend in the worker. */
async function openPage(query = ''): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 880 }, acceptDownloads: true });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${base}/${query}`);
  await page.getByTestId('train').waitFor({ state: 'visible' });
  await page.waitForFunction(() => !(document.querySelector('[data-testid=train]') as HTMLButtonElement).disabled, null, { timeout: 30_000 });
  expect(errors).toEqual([]);
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  // isolated, the worker runs the threaded build, relaxed SIMD in Chromium (unless a build was forced with ?wasm=)
  if (!query.includes('wasm=')) await expect.poll(() => page.locator('#backend').textContent()).toMatch(/WebAssembly simd128\+relaxed, \d+ threads?, in a Web Worker/);
  return page;
}

async function setValue(page: Page, testId: string, value: string): Promise<void> {
  await page.getByTestId(testId).fill(value);
}

/** Clicks Sample with the given settings and returns the whole text once it is done. */
async function sampleText(page: Page, s: { prime: string; length: number; temperature: number; topP: number; seed: number }): Promise<string> {
  await setValue(page, 'prime', s.prime);
  await setValue(page, 'length', String(s.length));
  await setValue(page, 'temperature', String(s.temperature));
  await setValue(page, 'top-p', String(s.topP));
  await setValue(page, 'sample-seed', String(s.seed));
  await page.getByTestId('sample-button').click();
  await page.waitForFunction(() => (document.querySelector('[data-testid=sample]') as HTMLElement).dataset.done === 'true', null, { timeout: 30_000 });
  return (await page.getByTestId('sample').textContent()) ?? '';
}

const cliSample = (dir: string, s: { prime: string; length: number; temperature: number; topP: number; seed: number }) => rnnkit([
  'sample', dir, '--prime', s.prime, '--length', String(s.length), '--temperature', String(s.temperature),
  '--top-p', String(s.topP), '--seed', String(s.seed), '--backend', 'wasm',
]).replace(/\n$/, '');

beforeAll(async () => {
  expect(existsSync(join(ROOT, 'dist/wasm-entry.js')), 'dist/ (run npm run build)').toBe(true);
  expect(existsSync(CHROMIUM), `${CHROMIUM} (apt-get install -y chromium)`).toBe(true);
  // the same command as `npm run build:web`, into a temporary directory
  execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'examples/web', '--outDir', SITE, '--emptyOutDir', '--logLevel', 'warn'], { cwd: ROOT });
  server = await serve(SITE);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  server?.close();
});

describe('examples/web in headless Chromium', () => {
  const saved = join(TMP, 'saved-from-page');

  it('trains in the Web Worker (the loss falls, the page stays responsive), streams a sample and saves the model', async () => {
    const page = await openPage();
    expect(await page.getByTestId('text').inputValue()).toMatch(/^CHAPTER 1\. Loomings\.\s+Call me Ishmael\./);
    await setValue(page, 'steps', '5000');
    // the page's own thread must stay free while the worker trains: Chromium reports every task
    // of 50 ms or more on it as a long task (a page training on its own thread makes one per step)
    await page.evaluate(() => {
      const w = window as unknown as { longTasks: number[] };
      w.longTasks = [];
      new PerformanceObserver((list) => { for (const e of list.getEntries()) w.longTasks.push(e.duration); }).observe({ type: 'longtask' });
    });
    await page.getByTestId('train').click();
    const step = async () => Number(await page.getByTestId('step').textContent());
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=step]')!.textContent) >= 1, null, { timeout: 30_000 });
    const firstLoss = Number(await page.getByTestId('loss').textContent());
    expect(firstLoss).toBeGreaterThan(3); // about ln(vocabulary size) before training



    // (a longer run for the picture in the README)
    const target = process.env.RNNKIT_UPDATE_SCREENSHOT === '1' ? 600 : 60;
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid=step]')!.textContent) >= n, target, { timeout: target * 1500 });
    const longTasks = await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks);
    await page.getByTestId('stop').click();
    await page.waitForFunction(() => /^Stopped after \d+ steps/.test(document.querySelector('[data-testid=status]')!.textContent ?? ''), null, { timeout: 30_000 });
    const steps = await step();
    const lastLoss = Number(await page.getByTestId('loss').textContent());
    const tps = Number((await page.getByTestId('tokens-per-second').textContent())!.replace(/,/g, ''));
    console.log(`browser training: ${steps} steps, loss ${firstLoss.toFixed(3)} -> ${lastLoss.toFixed(3)}, ${Math.round(tps)} chars/s; long tasks on the page's thread meanwhile: ${longTasks.length} (${longTasks.map((d) => d.toFixed(0)).join(', ') || 'none'} ms)`);
    expect(steps).toBeGreaterThanOrEqual(target);
    // (a page training on its own thread makes one long task per step wherever a step of the default
    // model, 768 characters, takes over 50 ms; on a busy machine the OS may hold the page's thread
    // back now and then, hence the margin)
    expect(longTasks.length).toBeLessThan(steps / 2);
    // the page's worker, and the thread workers the threaded build starts from blob: URLs
    const workers = page.workers().map((w) => w.url());
    expect(workers.filter((u) => !u.startsWith('blob:')).map((u) => new URL(u).pathname)).toEqual([expect.stringMatching(/^\/assets\/worker-[\w-]+\.js$/)]);
    const threads = Number(/(\d+) threads?/.exec((await page.locator('#backend').textContent()) ?? '')?.[1]);
    expect(workers.filter((u) => u.startsWith('blob:')).length).toBe(threads - 1);
    expect(lastLoss).toBeLessThan(firstLoss - 0.5);
    expect(tps).toBeGreaterThan(0);
    expect(Number(await page.getByTestId('progress').getAttribute('value'))).toBeCloseTo(steps / 5000, 3);
    expect(await page.locator('[data-testid=loss-chart] polyline').count()).toBe(2);

    // the sample streams in: the text grows piece by piece as the worker generates it
    await page.evaluate(() => {
      const w = window as unknown as { sampleUpdates: number };
      w.sampleUpdates = 0;
      new MutationObserver(() => { w.sampleUpdates++; }).observe(document.querySelector('[data-testid=sample]')!, { childList: true, characterData: true, subtree: true });
    });
    const text = await sampleText(page, { prime: 'Call me ', length: 300, temperature: 0.8, topP: 0.95, seed: 1 });
    expect(await page.evaluate(() => (window as unknown as { sampleUpdates: number }).sampleUpdates)).toBeGreaterThan(10);
    expect(text.startsWith('Call me ')).toBe(true);
    expect(Array.from(text).length).toBe('Call me '.length + 300);
    expect(await page.getByTestId('model-info').textContent()).toMatch(/^LSTM 1×128, embedding 32, \d+ tokens, [\d,]+ parameters, \d+ steps/);

    const shot = await page.screenshot({ fullPage: true });
    expect(shot.subarray(1, 4).toString()).toBe('PNG');
    writeFileSync(join(TMP, 'screenshot.png'), shot);
    if (process.env.RNNKIT_UPDATE_SCREENSHOT === '1') writeFileSync(join(ROOT, 'examples/web/screenshot.png'), shot);

    // Save: three downloads, the files of a checkpoint directory
    mkdirSync(saved, { recursive: true });
    const downloads: Promise<void>[] = [];
    page.on('download', (d) => { downloads.push(d.saveAs(join(saved, d.suggestedFilename()))); });
    await page.getByTestId('save').click();
    await expect.poll(() => downloads.length, { timeout: 15_000 }).toBe(3);
    await Promise.all(downloads);
    for (const f of ['weights.safetensors', 'vocab.json', 'config.json']) expect(existsSync(join(saved, f)), f).toBe(true);
    const config = JSON.parse(readFileSync(join(saved, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ level: 'char', cell: 'lstm', layers: 1, hidden: 128, embed: 32 });
    await page.close();
  });

  it('generates from a run of rnnkit train exactly the text of rnnkit sample (same seed, prime, length, temperature, top-p)', async () => {
    const data = join(TMP, 'book.txt');
    writeFileSync(data, 'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. '.repeat(8));
    const run = join(TMP, 'run');
    rnnkit(['train', '--data', data, '--layers', '1', '--hidden', '16', '--embed', '8', '--seq', '10', '--batch', '2',
      '--steps', '8', '--samples', '0', '--no-progress', '--out', run]);
    const ckpt = join(run, JSON.parse(readFileSync(join(run, 'latest'), 'utf8')).checkpoint);

    // the plain SIMD build in the page, as in Node: the same kernels, so the same bits
    const page = await openPage('?wasm=plain');
    await page.getByTestId('model-files').setInputFiles(['weights.safetensors', 'vocab.json', 'config.json', 'trainer.json'].map((f) => join(ckpt, f)));
    await page.waitForFunction(() => /^LSTM 1×16/.test(document.querySelector('[data-testid=model-info]')!.textContent ?? ''), null, { timeout: 15_000 });
    expect(await page.getByTestId('model-info').textContent()).toMatch(/embedding 8, \d+ tokens, [\d,]+ parameters, 8 steps/);
    for (const s of [
      { prime: 'It was', length: 200, temperature: 0.8, topP: 0.9, seed: 7 },
      { prime: 'the age ', length: 120, temperature: 1.3, topP: 1, seed: 3 },
    ]) {
      const inPage = await sampleText(page, s);
      expect(inPage.length).toBeGreaterThan(s.prime.length);
      expect(inPage).toBe(cliSample(run, s));
    }

    // and the model saved by the page in the first test, read back by rnnkit sample
    if (existsSync(join(saved, 'weights.safetensors'))) {
      await page.getByTestId('model-files').setInputFiles(['weights.safetensors', 'vocab.json', 'config.json'].map((f) => join(saved, f)));
      await page.waitForFunction(() => /^LSTM 1×128/.test(document.querySelector('[data-testid=model-info]')!.textContent ?? ''), null, { timeout: 15_000 });
      const s = { prime: 'Call me ', length: 150, temperature: 0.7, topP: 0.95, seed: 11 };
      expect(await sampleText(page, s)).toBe(cliSample(saved, s));
    }

    // another shape: a two-layer GRU (the shape is read from the weights)
    const gru = join(TMP, 'run-gru');
    rnnkit(['train', '--data', data, '--cell', 'gru', '--layers', '2', '--hidden', '12', '--embed', '6', '--seq', '10', '--batch', '2',
      '--steps', '3', '--samples', '0', '--no-progress', '--out', gru]);
    const gruCkpt = join(gru, JSON.parse(readFileSync(join(gru, 'latest'), 'utf8')).checkpoint);
    await page.getByTestId('model-files').setInputFiles(['weights.safetensors', 'vocab.json', 'config.json'].map((f) => join(gruCkpt, f)));
    await page.waitForFunction(() => /^GRU 2×12, embedding 6/.test(document.querySelector('[data-testid=model-info]')!.textContent ?? ''), null, { timeout: 15_000 });
    const g = { prime: 'it was', length: 100, temperature: 1, topP: 0.8, seed: 2 };
    expect(await sampleText(page, g)).toBe(cliSample(gru, g));

    // files that are not a run: one clear line in the page, and the page goes on working
    await page.getByTestId('model-files').setInputFiles([join(ckpt, 'config.json')]);
    await expect.poll(() => page.getByTestId('status').textContent()).toMatch(/^pick weights\.safetensors and vocab\.json .*received config\.json$/);
    await page.close();
  });
});
