// The benchmark workloads are one table (bench/workloads.mjs) that every benchmark script reads.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module of the bench/ scripts, without type declarations
import { WORKLOADS, flops, selectWorkloads } from '../bench/workloads.mjs';

type Workload = { id: string; cell: string; input: number; hidden: number; layers: number; bidir: boolean; batch: number; seq: number; mode: string; vocab?: number; emb?: number };
const rows = WORKLOADS as Workload[];

describe('bench/workloads.mjs', () => {
  it('bench/run.js and bench/wasm-bench.mjs read it and keep no table of their own', () => {
    for (const script of ['run.js', 'wasm-bench.mjs']) {
      const code = readFileSync(new URL(`../bench/${script}`, import.meta.url), 'utf8');
      expect(code, script).toMatch(/from '\.\/workloads\.mjs'/);
      expect(code, script).not.toMatch(/\{\s*id:\s*'lstm-m'/);
    }
  });

  it('every row is complete, with unique ids', () => {
    expect(new Set(rows.map((w) => w.id)).size).toBe(rows.length);
    for (const w of rows) {
      expect(['lstm', 'gru', 'rnn_tanh', 'charlm'], w.id).toContain(w.cell);
      expect(['train', 'infer'], w.id).toContain(w.mode);
      for (const k of ['input', 'hidden', 'layers', 'batch', 'seq'] as const) expect(Number.isInteger(w[k]) && w[k] > 0, `${w.id}.${k}`).toBe(true);
      if (w.cell === 'charlm') expect(w.emb, w.id).toBe(w.input);
    }
  });

  it('FLOPs: 2 per multiply-add, backward twice the forward', () => {
    const lstmM = rows.find((w) => w.id === 'lstm-m')!;
    // 4 gates x 256 rows x (64 + 256) columns, per token, x 2 FLOPs, x 3 for a train step
    expect(flops(lstmM)).toBe(3 * 2 * 32 * 64 * (64 + 256) * 4 * 256);
    expect(flops({ ...lstmM, mode: 'infer' })).toBe(flops(lstmM) / 3);
  });

  it('a subset by name; an unknown name is refused with the known ones', () => {
    expect(selectWorkloads('gru-m,lstm-s').map((w: Workload) => w.id)).toEqual(['lstm-s', 'gru-m']);
    expect(selectWorkloads(null)).toHaveLength(rows.length);
    expect(() => selectWorkloads('lstm-xl')).toThrow(/unknown workload 'lstm-xl'; expected a comma-separated list of: lstm-s, lstm-m/);
  });
});
