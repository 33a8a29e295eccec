// Optimizers, losses, clipping and single-step cells against PyTorch's own results
// (test/fixtures/torch_ops.json, made by test/fixtures/make_torch_fixtures.py).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  Adam, AdamW, GRUCell, LSTMCell, RNNCell, SGD, Tensor, add, bceWithLogits, clipGradNorm, clipGradValue,
  crossEntropy, mseLoss, mul, sum, withBackend,
} from '../src/index.js';
import { relativeError } from '../src/io/golden.js';
import { TESTED_BACKENDS } from './helpers.js';

interface J { shape: number[]; data: number[] }
const fx = JSON.parse(readFileSync(new URL('./fixtures/torch_ops.json', import.meta.url), 'utf8'));
const tensor = (j: J, grad = false) => new Tensor(Float32Array.from(j.data), j.shape, grad);

for (const backend of TESTED_BACKENDS) {
  describe(`PyTorch parity on ${backend}`, () => {
    const run = <T>(fn: () => T) => withBackend(backend, fn);

    for (const [name, c] of Object.entries(fx.optimizers.cases) as Array<[string, { class: string; options: Record<string, unknown>; after: J[] }]>) {
      it(`optimizer ${name} (${c.class}), three steps`, () => run(() => {
        const p = tensor(fx.optimizers.param, true);
        const o = c.options as { lr: number; momentum?: number; dampening?: number; weight_decay?: number; nesterov?: boolean; betas?: [number, number]; eps?: number };
        const opt = c.class === 'SGD'
          ? new SGD([p], { lr: o.lr, momentum: o.momentum, dampening: o.dampening, weightDecay: o.weight_decay, nesterov: o.nesterov })
          : new (c.class === 'AdamW' ? AdamW : Adam)([p], { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weight_decay ?? (c.class === 'AdamW' ? 0.01 : 0) });
        (fx.optimizers.grads as J[]).forEach((g, step) => {
          p.grad = Float32Array.from(g.data);
          opt.step();
          expect(relativeError(p.data, c.after[step].data)).toBeLessThan(1e-6);
        });
      }));
    }

    it('cross-entropy with ignore index: mean over real rows, and sum', () => run(() => {
      const c = fx.cross_entropy;
      const logits = tensor(c.logits, true);
      const loss = crossEntropy(logits, c.targets);
      expect(loss.item()).toBeCloseTo(c.loss, 6);
      loss.backward();
      expect(relativeError(logits.grad!, c.grad.data)).toBeLessThan(1e-5);
      const logits2 = tensor(c.logits, true);
      const s = crossEntropy(logits2, c.targets, { reduction: 'sum' });
      expect(s.item()).toBeCloseTo(fx.cross_entropy_sum.loss, 5);
      s.backward();
      expect(relativeError(logits2.grad!, fx.cross_entropy_sum.grad.data)).toBeLessThan(1e-5);
      // a mask is the same as an ignore index
      const logits3 = tensor(c.logits, true);
      const masked = crossEntropy(logits3, c.targets.map((t: number) => (t < 0 ? 0 : t)), { mask: c.targets.map((t: number) => (t < 0 ? 0 : 1)) });
      expect(masked.item()).toBeCloseTo(c.loss, 6);
    }));

    it('binary cross-entropy with logits', () => run(() => {
      const c = fx.bce_with_logits;
      const x = tensor(c.logits, true);
      const loss = bceWithLogits(x, tensor(c.targets));
      expect(loss.item()).toBeCloseTo(c.loss, 6);
      loss.backward();
      expect(relativeError(x.grad!, c.grad.data)).toBeLessThan(1e-5);
    }));

    it('mean squared error', () => run(() => {
      const c = fx.mse;
      const a = tensor(c.pred, true);
      const loss = mseLoss(a, tensor(c.target));
      expect(loss.item()).toBeCloseTo(c.loss, 6);
      loss.backward();
      expect(relativeError(a.grad!, c.grad.data)).toBeLessThan(1e-5);
    }));

    it('clip_grad_norm_ returns the total norm and scales; clip_grad_value_ clamps', () => run(() => {
      const c = fx.clip_norm;
      const ps = (c.grads as J[]).map((g) => { const p = Tensor.zeros(g.shape, true); p.grad = Float32Array.from(g.data); return p; });
      expect(clipGradNorm(ps, c.max_norm)).toBeCloseTo(c.total_norm, 5);
      ps.forEach((p, i) => expect(relativeError(p.grad!, c.clipped[i].data)).toBeLessThan(1e-6));
      ps.forEach((p, i) => { p.grad = Float32Array.from(c.grads[i].data); });
      clipGradValue(ps, fx.clip_value.clip);
      ps.forEach((p, i) => expect(relativeError(p.grad!, fx.clip_value.clipped[i].data)).toBeLessThan(1e-7));
    }));

    for (const name of ['LSTMCell', 'GRUCell', 'RNNCell'] as const) {
      it(`${name}: two steps, values and gradients, PyTorch parameter names`, () => run(() => {
        const c = fx.cells[name];
        const cell = name === 'LSTMCell' ? new LSTMCell(3, 4) : name === 'GRUCell' ? new GRUCell(3, 4) : new RNNCell(3, 4);
        const sd = Object.fromEntries(Object.entries(c.state_dict as Record<string, J>).map(([k, v]) => [k, { shape: v.shape, data: Float32Array.from(v.data) }]));
        cell.loadStateDict(sd);
        const x1 = tensor(c.x1, true);
        const x2 = tensor(c.x2, true);
        const h0 = tensor(c.h0, true);
        const c0 = c.c0 ? tensor(c.c0, true) : null;
        const s1 = cell.step(x1, { h: h0, c: c0 });
        const s2 = cell.step(x2, s1);
        let loss = sum(mul(s2.h, tensor(c.u)));
        if (s2.c) loss = add(loss, sum(mul(s2.c, tensor(c.v))));
        loss.backward();
        expect(relativeError(s2.h.data, c.h2.data)).toBeLessThan(1e-5);
        if (c.c2) expect(relativeError(s2.c!.data, c.c2.data)).toBeLessThan(1e-5);
        const params = new Map(cell.namedParameters());
        const actual: Record<string, Float32Array | null> = { x1: x1.grad, x2: x2.grad, h0: h0.grad, c0: c0?.grad ?? null };
        for (const [k, g] of Object.entries(c.grad as Record<string, J>)) {
          const a = actual[k] !== undefined ? actual[k] : params.get(k)!.grad;
          expect(relativeError(a!, g.data), k).toBeLessThan(1e-4);
        }
      }));
    }
  });
}
