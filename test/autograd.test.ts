// The tape autograd: diamonds, accumulation, noGrad, detach, multi-output ops, graph release.
import { describe, expect, it } from 'vitest';
import { Adam, Embedding, LSTM, Linear, Rng, Tensor, add, crossEntropy, concatLast, matmul, mul, noGrad, reshape, select, stack, sum, transpose01 } from '../src/index.js';

describe('autograd', () => {
  it('a tensor used twice gets both gradients (diamond)', () => {
    const x = new Tensor([1, 2, 3], [3], true);
    const y = sum(add(mul(x, x), x)); // sum(x^2 + x)
    y.backward();
    expect(Array.from(x.grad!)).toEqual([3, 5, 7]);
  });

  it('leaf gradients accumulate across backward calls until zeroGrad', () => {
    const x = new Tensor([1, 2], [2], true);
    sum(mul(x, x)).backward();
    sum(mul(x, x)).backward();
    expect(Array.from(x.grad!)).toEqual([4, 8]);
    x.zeroGrad();
    expect(x.grad).toBeNull();
  });

  it('noGrad records nothing; detach cuts the graph', () => {
    const x = new Tensor([1, 2], [2], true);
    const y = noGrad(() => mul(x, x));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeNull();
    const z = mul(x, x).detach();
    expect(z.requiresGrad).toBe(false);
    expect(() => sum(z).backward()).toThrow(/does not require a gradient/);
  });

  it('matmul, reshape, transpose, concat, select and stack have correct gradients', () => {
    const a = new Tensor([1, 2, 3, 4, 5, 6], [2, 3], true);
    const b = new Tensor([1, 0, 2, 1, 0, 3], [3, 2], true);
    const c = matmul(a, b); // [2, 2]
    const d = transpose01(reshape(concatLast([c, c]), [2, 2, 2]));
    const e = stack([select(d, 0), select(d, 1)]);
    const w = new Tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
    sum(mul(e, w)).backward();
    // gradient of c: dC[i][j] = w-derived weights summed over both copies
    // d[p][q][r] = cat[q][p*2 + r] ; cat[q] = [c[q][0], c[q][1], c[q][0], c[q][1]]
    const dCat = [[0, 0, 0, 0], [0, 0, 0, 0]];
    for (let p = 0; p < 2; p++) for (let q = 0; q < 2; q++) for (let r = 0; r < 2; r++) dCat[q][p * 2 + r] += w.data[(p * 2 + q) * 2 + r];
    const dC = dCat.map((row) => [row[0] + row[2], row[1] + row[3]]);
    // dA = dC @ B^T
    const expectA = [0, 1].flatMap((i) => [0, 1, 2].map((k) => dC[i][0] * b.data[k * 2] + dC[i][1] * b.data[k * 2 + 1]));
    expect(Array.from(a.grad!)).toEqual(expectA);
  });

  it('a fused recurrent op with several outputs runs its backward once', () => {
    const lstm = new LSTM({ inputSize: 2, hiddenSize: 3, rng: new Rng(1) });
    const x = new Tensor(Float32Array.from({ length: 12 }, (_, i) => Math.cos(i)), [3, 2, 2], true);
    const { output, hN, cN } = lstm.forward(x);
    add(add(sum(output), sum(hN)), sum(cN!)).backward();
    const once = Array.from(x.grad!);
    x.zeroGrad();
    lstm.zeroGrad();
    const r2 = lstm.forward(x);
    sum(r2.output).backward();
    const partial = Array.from(x.grad!);
    expect(once).not.toEqual(partial);
    // the graph is released after backward: a second backward through it is refused
    expect(output.node).toBeNull();
  });

  it('backward of a non-scalar needs its gradient', () => {
    const x = new Tensor([1, 2], [2], true);
    const y = mul(x, x);
    expect(() => y.backward()).toThrow('backward(): a gradient is needed for a tensor of shape [2]; only a one-element tensor defaults to 1');
    y.backward([1, 1]);
    expect(Array.from(x.grad!)).toEqual([2, 4]);
  });

  describe('gradient arrays across zeroGrad', () => {
    // A small char-LM step: Embedding -> LSTM -> Linear -> cross-entropy -> Adam.
    function lmTrainer() {
      const rng = new Rng(7);
      const emb = new Embedding(5, 3, { rng });
      const lstm = new LSTM({ inputSize: 3, hiddenSize: 4, rng });
      const fc = new Linear(4, 5, { rng });
      const params = [...emb.parameters(), ...lstm.parameters(), ...fc.parameters()];
      const opt = new Adam(params, { lr: 0.05 });
      const ids = [0, 3, 1, 4, 2, 2], targets = [3, 1, 4, 2, 2, 0];
      const step = () => {
        opt.zeroGrad();
        const { output } = lstm.forward(emb.forward(ids, [3, 2]));
        crossEntropy(reshape(fc.forward(output), [6, 5]), targets).backward();
        opt.step();
      };
      return { params, step };
    }

    it('zeroGrad leaves grad null, and the next backward reuses the unread array as zeros', () => {
      const x = new Tensor([1, 2], [2], true);
      sum(mul(x, x)).backward();
      const buffer = x.ensureGrad(); // rnnkit's buffer, not handed out through grad
      x.zeroGrad();
      expect(x.grad).toBeNull();
      sum(mul(x, x)).backward();
      expect(x.ensureGrad()).toBe(buffer);
      expect(Array.from(x.grad!)).toEqual([2, 4]); // refilled with zeros first: no accumulation
    });

    it('an array read through grad is never written again after zeroGrad', () => {
      const x = new Tensor([1, 2], [2], true);
      sum(mul(x, x)).backward();
      const kept = x.grad!;
      x.zeroGrad();
      sum(mul(mul(x, x), x)).backward();
      expect(Array.from(kept)).toEqual([2, 4]);
      expect(x.grad).not.toBe(kept);
      expect(Array.from(x.grad!)).toEqual([3, 12]);
    });

    it('a parameter no backward reaches keeps grad null and the optimizer skips it', () => {
      const used = new Tensor([1, 2], [2], true), unused = new Tensor([5, 6], [2], true);
      const opt = new Adam([used, unused], { lr: 0.1 });
      for (let i = 0; i < 3; i++) {
        opt.zeroGrad();
        sum(mul(used, used)).backward();
        if (i === 0) sum(mul(unused, unused)).backward(); // only the first step reaches it
        opt.step();
      }
      expect(unused.grad).toBeNull();
      expect(Array.from(unused.data)).toEqual(Array.from(Float32Array.of(4.9, 5.9)));
    });

    it('training with reused arrays gives the same parameters, bit for bit, as with fresh arrays each step', () => {
      const reused = lmTrainer(), fresh = lmTrainer();
      reused.step();
      const buffers = reused.params.map((p) => p.ensureGrad()); // not handed out: reused by later steps
      const handedOut: Array<{ array: Float32Array; copy: Float32Array }> = [];
      fresh.step();
      for (let i = 1; i < 4; i++) {
        // reading grad hands the arrays out: the fresh trainer's next backward allocates new ones
        for (const p of fresh.params) handedOut.push({ array: p.grad!, copy: p.grad!.slice() });
        reused.step();
        fresh.step();
      }
      reused.params.forEach((p, k) => expect(p.ensureGrad()).toBe(buffers[k]));
      reused.params.forEach((p, k) => expect(Array.from(p.data)).toEqual(Array.from(fresh.params[k].data)));
      reused.params.forEach((p, k) => expect(Array.from(p.grad!)).toEqual(Array.from(fresh.params[k].grad!)));
      for (const { array, copy } of handedOut) expect(Array.from(array)).toEqual(Array.from(copy));
      expect(new Set(fresh.params.map((p) => p.grad)).size).toBe(fresh.params.length);
      expect(handedOut.some(({ array }) => fresh.params.some((p) => p.grad === array))).toBe(false);
    });
  });
});
