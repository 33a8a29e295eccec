// Bias gradients: the native backend's column sums (addColumnSums) against the linear op's own
// loop, bit for bit, at 1-3 threads; the Linear layer's gradients on native against the reference
// backend; bad arguments named in the error, on both sides of the boundary.
import { afterAll, describe, expect, it } from 'vitest';
import { type NativeBackend, loadNativeAddon, loadNativeBackend } from '../src/backends/native.js';
import { Linear, Rng, Tensor, mul, sum, withBackend } from '../src/index.js';
import { expectClose, randArray, rng } from './native-helpers.js';

const native: NativeBackend = loadNativeBackend();
const addon = loadNativeAddon();
const threadsBefore = native.info().threads;
afterAll(() => native.setThreads(threadsBefore));

/** The linear op's loop (backends without addColumnSums): each column summed from 0 in row order, then added. */
function columnSums(M: number, N: number, x: Float32Array, dst: Float32Array): Float32Array {
  const out = dst.slice(), sums = new Float32Array(N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) sums[n] += x[m * N + n];
  for (let n = 0; n < N; n++) out[n] += sums[n];
  return out;
}

describe('native addColumnSums', () => {
  // small (one thread), the char-LM output layer [3200, 65] and a wide one (split over the pool)
  const shapes: Array<[number, number]> = [[0, 5], [3, 1], [7, 17], [3200, 65], [600, 1024], [1, 4096]];
  for (const threads of [1, 2, 3]) {
    it(`equals the linear op's loop bit for bit at ${threads} thread(s)`, () => {
      native.setThreads(threads);
      const r = rng(5 + threads);
      for (const [M, N] of shapes) {
        const x = randArray(r, M * N), dst = randArray(r, N);
        const want = columnSums(M, N, x, dst);
        native.addColumnSums(M, N, x, dst);
        expect(Array.from(dst), `[${M}, ${N}]`).toEqual(Array.from(want));
      }
    });
  }

  it('N = 0 changes nothing', () => {
    const dst = Float32Array.of(1, 2);
    native.addColumnSums(4, 0, new Float32Array(0), dst);
    expect(Array.from(dst)).toEqual([1, 2]);
  });

  it('bad arguments name the argument, the expected and the received value', () => {
    expect(() => native.addColumnSums(2, 3, new Float32Array(5), new Float32Array(3)))
      .toThrow('native.addColumnSums: x has 5 elements, expected 6 for shape [2, 3]');
    expect(() => native.addColumnSums(2, 3, new Float32Array(6), new Float32Array(2)))
      .toThrow('native.addColumnSums: dst has 2 elements, expected 3 for shape [3]');
    expect(() => native.addColumnSums(-1, 3, new Float32Array(6), new Float32Array(3)))
      .toThrow('native.addColumnSums: M must be a non-negative integer (rows of x), received -1');
    expect(() => native.addColumnSums(2, 1.5, new Float32Array(6), new Float32Array(3)))
      .toThrow('native.addColumnSums: N must be a non-negative integer (columns of x), received 1.5');
    // the addon checks again on its side
    expect(() => addon.addColumnSums(2, 3, new Float32Array(5), new Float32Array(3))).toThrow(/native\.addColumnSums: x/);
    expect(() => addon.addColumnSums(2, 3, new Float32Array(6), null as unknown as Float32Array)).toThrow(/native\.addColumnSums: dst is required/);
    expect(() => addon.addColumnSums(2, -3, new Float32Array(6), new Float32Array(3))).toThrow(/native\.addColumnSums: N must be an integer/);
  });
});

describe('Linear gradients on native', () => {
  it('equal the reference backend (bias bit for bit) for a char-LM output layer', () => {
    // loss = sum(y * G): the output's gradient is G exactly on every backend
    const run = (backend: 'native' | 'reference') => withBackend(backend, () => {
      const fc = new Linear(256, 65, { rng: new Rng(3) });
      const r = rng(9);
      const x = new Tensor(randArray(r, 100 * 32 * 256), [100, 32, 256], true);
      const G = new Tensor(randArray(r, 100 * 32 * 65), [100, 32, 65]);
      sum(mul(fc.forward(x), G)).backward();
      return { db: fc.bias!.grad!, dw: fc.weight.grad!, dx: x.grad!, G: G.data };
    });
    native.setThreads(2);
    const a = run('native'), b = run('reference');
    expect(Array.from(a.db)).toEqual(Array.from(b.db));
    expect(Array.from(a.db)).toEqual(Array.from(columnSums(3200, 65, a.G, new Float32Array(65))));
    expectClose('dW', a.dw, b.dw, 1e-5);
    expectClose('dx', a.dx, b.dx, 1e-5);
  });
});
