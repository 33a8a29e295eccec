// `rnnkit verify-torch` and `rnnkit doctor`.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { doctor, main, verifyTorch } from '../src/cli/index.js';
import { goldenCaseNames } from '../src/io/golden.js';
import { GOLDEN_DIR, TESTED_BACKENDS } from './helpers.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const CASES = goldenCaseNames(GOLDEN_DIR);

function capture(fn: (print: (s: string) => void) => number): { code: number; text: string } {
  let text = '';
  const code = fn((s) => { text += s; });
  return { code, text };
}

describe('rnnkit verify-torch', () => {
  it('passes every golden case on every tested backend and prints the summary line', () => {
    for (const backend of TESTED_BACKENDS) {
      const { code, text } = capture((p) => verifyTorch([GOLDEN_DIR, '--backend', backend], p));
      const lines = text.trim().split('\n');
      expect(lines[0]).toMatch(/^case\s+backend\s+forward\s+gradient\s+result$/);
      expect(lines.at(-1)).toMatch(/^(\d+)\/\1 cases pass$/);
      expect(code).toBe(0);
    }
  });

  it("sets bf16 products ('medium') aside while the cases run, says so, and restores the setting", async () => {
    const { getMatmulPrecision, setMatmulPrecision } = await import('../src/backends/index.js');
    setMatmulPrecision('medium');
    try {
      const { code, text } = capture((p) => verifyTorch([GOLDEN_DIR, '--backend', 'native'], p));
      expect(text.split('\n')[0]).toBe("note: matmul precision 'medium' set aside: the cases check fp32 parity with PyTorch");
      expect(text.trim().split('\n').at(-1)).toMatch(/^(\d+)\/\1 cases pass$/);
      expect(code).toBe(0);
      expect(getMatmulPrecision()).toBe('medium');
    } finally {
      setMatmulPrecision('highest');
    }
  });

  it('fails, names the case and exits non-zero when PyTorch disagrees', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rnnkit-golden-'));
    const c = JSON.parse(readFileSync(join(GOLDEN_DIR, 'gru.json'), 'utf8'));
    c.expected.grad.weight_hh_l0.data[3] += 0.01;
    writeFileSync(join(dir, 'gru.json'), JSON.stringify(c));
    copyFileSync(join(GOLDEN_DIR, 'gru.safetensors'), join(dir, 'gru.safetensors'));
    const { code, text } = capture((p) => verifyTorch([dir, '--backend', 'reference'], p));
    expect(text).toMatch(/gru\s+reference\s+\S+\s+\S+\s+FAIL\s+worst: grad weight_hh_l0/);
    expect(text.trim().split('\n').at(-1)).toBe('0/1 cases pass');
    expect(code).toBe(1);
  });

  it('reports a broken weight file as a failed case, not a crash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rnnkit-golden-'));
    copyFileSync(join(GOLDEN_DIR, 'lstm.json'), join(dir, 'lstm.json'));
    writeFileSync(join(dir, 'lstm.safetensors'), new Uint8Array([1, 2, 3]));
    const { code, text } = capture((p) => verifyTorch([dir, '--backend', 'reference'], p));
    expect(text).toMatch(/lstm\s+reference\s+error\s+error\s+FAIL\s+.*8 bytes/);
    expect(code).toBe(1);
  });

  it('with no directory runs the cases that ship with the package, on every backend that loads', async () => {
    const { code, text } = capture((p) => verifyTorch([], p));
    const rows = text.split('\n').filter((l) => /^\S+\s+(native|wasm|reference)\s/.test(l));
    const backends = [...new Set(rows.map((l) => l.split(/\s+/)[1]))];
    const { backendStatus } = await import('../src/backends/index.js');
    expect(backends.sort()).toEqual(backendStatus().filter((s) => s.available).map((s) => s.name).sort());
    for (const backend of backends) {
      expect(rows.filter((l) => l.split(/\s+/)[1] === backend).map((l) => l.split(/\s+/)[0])).toEqual(CASES);
    }
    expect(rows.length).toBe(CASES.length * backends.length);
    expect(text.trim().split('\n').at(-1)).toBe(`${rows.length}/${rows.length} cases pass`);
    expect(code).toBe(0);
  });

  it('DIR runs any folder in the format (a subset copied elsewhere)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rnnkit-golden-'));
    for (const name of ['lstm_proj', 'charlm_step']) {
      for (const ext of ['.json', '.safetensors']) copyFileSync(join(GOLDEN_DIR, name + ext), join(dir, name + ext));
    }
    writeFileSync(join(dir, 'notes.json'), '{}'); // a .json without its .safetensors is not a case
    const { code, text } = capture((p) => verifyTorch([dir, '--backend', 'reference'], p));
    expect(text).toMatch(/^charlm_step\s+reference\s.*pass$/m);
    expect(text).toMatch(/^lstm_proj\s+reference\s.*pass$/m);
    expect(text.trim().split('\n').at(-1)).toBe('2/2 cases pass');
    expect(code).toBe(0);
  });

  it('usage errors exit 2 with one clear line', async () => {
    const run = async (argv: string[]) => {
      let err = '';
      const code = await main(argv, { out: () => {}, err: (s) => { err += s; } });
      return { code, err };
    };
    const empty = mkdtempSync(join(tmpdir(), 'rnnkit-empty-'));
    writeFileSync(join(empty, 'lstm.json'), '{}'); // no lstm.safetensors beside it
    const file = join(empty, 'lstm.json');
    expect(await run(['verify-torch', GOLDEN_DIR, '--backend', 'gpu'])).toEqual({ code: 2, err: "rnnkit verify-torch: option '--backend <name>' argument 'gpu' is invalid. Allowed choices are native, wasm, reference, all. (see rnnkit verify-torch --help)\n" });
    expect(await run(['verify-torch', '/nonexistent/dir'])).toEqual({ code: 2, err: "rnnkit verify-torch: directory '/nonexistent/dir' does not exist\n" });
    expect(await run(['verify-torch', empty])).toEqual({ code: 2, err: `rnnkit verify-torch: '${empty}' holds no reference case (NAME.json with NAME.safetensors)\n` });
    expect(await run(['verify-torch', file])).toEqual({ code: 2, err: `rnnkit verify-torch: '${file}' is not a directory\n` });
    expect(await run(['verify-torch', GOLDEN_DIR, empty])).toEqual({ code: 2, err: "rnnkit verify-torch: too many arguments for 'verify-torch'. Expected 1 argument but got 2. (see rnnkit verify-torch --help)\n" });
  });

  it('the installed bin runs (dist build): the shipped cases from any working directory, and DIR', () => {
    const shipped = execFileSync(process.execPath, [join(ROOT, 'bin/rnnkit.js'), 'verify-torch', '--backend', 'reference'], { cwd: tmpdir(), encoding: 'utf8' });
    expect(shipped.trim().split('\n').at(-1)).toBe(`${CASES.length}/${CASES.length} cases pass`);
    const out = execFileSync(process.execPath, ['bin/rnnkit.js', 'verify-torch', GOLDEN_DIR, '--backend', 'reference'], { encoding: 'utf8' });
    expect(out.trim().split('\n').at(-1)).toBe(`${CASES.length}/${CASES.length} cases pass`);
    const missing = spawnSync(process.execPath, ['bin/rnnkit.js', 'verify-torch', 'no-such-dir'], { encoding: 'utf8' });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toBe("rnnkit verify-torch: directory 'no-such-dir' does not exist\n");
    const bad = spawnSync(process.execPath, ['bin/rnnkit.js', 'frobnicate'], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown command 'frobnicate'/);
  });
});

describe('rnnkit doctor', () => {
  it('lists every backend with its status and what auto resolves to', () => {
    const { code, text } = capture((p) => doctor(p));
    expect(text).toMatch(/reference\s+ok\s+isa=ts/);
    expect(text).toMatch(/native\s+(ok|missing)/);
    expect(text).toMatch(/wasm\s+(ok|missing)/);
    expect(text).toMatch(/auto resolves to: (native|wasm|reference)/);
    expect(code).toBe(0);
  });
});
