// The tape autograd: diamonds, accumulation, noGrad, detach, multi-output ops, graph release.
import { describe, expect, it } from 'vitest';
import { LSTM, Rng, Tensor, add, concatLast, matmul, mul, noGrad, reshape, select, stack, sum, transpose01 } from '../src/index.js';

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
});
