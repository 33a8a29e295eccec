// The native backend's memory: the recycled-block cache stays within its bounds (64 blocks,
// 256 MiB) whatever sizes the calls ask for, holds the same blocks from one training step to the
// next once warm, and trimMemory() empties it. The long-run figures come from `npm run soak`.
import { describe, expect, it } from 'vitest';
import { LSTM, Rng, Tensor, backendStatus, mul, sum, withBackend, getBackend } from '../src/index.js';

const nativeLoads = backendStatus().find((s) => s.name === 'native')?.available ?? false;
const MiB = 2 ** 20;

describe.skipIf(!nativeLoads)('native memory', () => {
  it('the block cache stays within 64 blocks and 256 MiB, is steady from step to step, and trimMemory empties it', () => {
    withBackend('native', () => {
      const native = getBackend();
      expect(native.memoryStats).toBeTypeOf('function');
      const stats = () => native.memoryStats!();
      const rng = new Rng(1);
      const step = (layer: LSTM, x: Tensor) => {
        const out = layer.forward(x).output;
        sum(mul(out, out)).backward();
        layer.zeroGrad();
      };
      // many sizes, from below the cache's 64 KiB floor to blocks of over 10 MiB
      for (const [T, B, H] of [[4, 2, 8], [16, 8, 64], [32, 16, 128], [100, 32, 256], [20, 8, 512], [8, 4, 32]]) {
        const layer = new LSTM({ inputSize: 16, hiddenSize: H, rng });
        step(layer, new Tensor(Float32Array.from({ length: T * B * 16 }, () => rng.normal()), [T, B, 16]));
        const s = stats();
        expect(s.cacheBlocks).toBeLessThanOrEqual(64);
        expect(s.cacheBytes).toBeLessThanOrEqual(256 * MiB);
      }
      // once warm, a training step takes its blocks from the cache and gives them back
      const layer = new LSTM({ inputSize: 16, hiddenSize: 128, rng });
      const x = new Tensor(Float32Array.from({ length: 50 * 16 * 16 }, () => rng.normal()), [50, 16, 16]);
      for (let i = 0; i < 3; i++) step(layer, x);
      const warm = stats();
      for (let i = 0; i < 20; i++) step(layer, x);
      const later = stats();
      expect(later.cacheBytes).toBe(warm.cacheBytes);
      expect(later.cacheBlocks).toBe(warm.cacheBlocks);
      expect(warm.cacheBlocks).toBeGreaterThan(0);
      native.trimMemory!();
      expect(stats()).toMatchObject({ cacheBytes: 0, cacheBlocks: 0 });
      if (process.platform === 'linux' && later.mallocInUseBytes !== undefined) {
        expect(later.mallocInUseBytes).toBeGreaterThan(0);
        expect(later.mallocArenaBytes).toBeGreaterThan(0);
      }
    });
  }, 120_000);
});
