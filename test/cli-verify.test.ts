// `rnnkit verify-torch` and `rnnkit doctor`.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { doctor, main, verifyTorch } from '../src/cli/index.js';
import { GOLDEN_DIR, TESTED_BACKENDS } from './helpers.js';

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

  it('usage errors exit 2 with one line', async () => {
    expect(await main(['verify-torch'])).toBe(2);
    expect(await main(['verify-torch', GOLDEN_DIR, '--backend', 'gpu'])).toBe(2);
    expect(await main(['verify-torch', '/nonexistent/dir'])).toBe(2);
  });

  it('the installed bin runs (dist build)', () => {
    const out = execFileSync(process.execPath, ['bin/rnnkit.js', 'verify-torch', GOLDEN_DIR, '--backend', 'reference'], { encoding: 'utf8' });
    expect(out.trim().split('\n').at(-1)).toMatch(/^(\d+)\/\1 cases pass$/);
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
