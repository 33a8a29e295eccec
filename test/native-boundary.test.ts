// Random bad arguments at the native boundary (test/native-boundary.mjs), straight into the addon
// and through the public backend, in a child process so that a crash is seen as one: every call
// returns or throws an Error. Also with the AddressSanitizer + UBSan build when it exists (a
// use-after-free or overflow that does not crash shows there as a report).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { SeqForwardArgs, WeightCopy } from '../src/backends/backend.js';
import { loadNativeAddon, loadNativeBackend } from '../src/backends/native.js';
import { backendStatus } from '../src/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const nativeLoads = backendStatus().find((s) => s.name === 'native')?.available ?? false;
const ASAN_ADDON = `${ROOT}build/asan/rnnkit.node`;
const ASAN_RUNTIME = spawnSync('g++', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout?.trim() ?? '';

interface Stats { calls: number; returned: number; threw: number; nonErrors: string[]; byFunction: Record<string, { returned: number; threw: number }> }

function runBoundary(env: Record<string, string>): { stats: Stats | null; status: number | null; signal: string | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--expose-gc', 'test/native-boundary.mjs'], {
    cwd: ROOT, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20, env: { ...process.env, ...env },
  });
  let stats: Stats | null = null;
  try { stats = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Stats; } catch { /* reported below */ }
  return { stats, status: r.status, signal: r.signal, stderr: r.stderr };
}

function expectNoCrash(r: ReturnType<typeof runBoundary>, calls: number): void {
  expect(r.stderr).not.toMatch(/ERROR: AddressSanitizer|runtime error:|corruption|free\(\)|Segmentation/);
  expect(r.signal, r.stderr.slice(-3000)).toBeNull();
  expect(r.status, r.stderr.slice(-3000)).toBe(0);
  expect(r.stats, 'the child printed no summary').not.toBeNull();
  expect(r.stats!.nonErrors).toEqual([]);
  expect(r.stats!.calls).toBeGreaterThanOrEqual(calls * 20);
  // most changed calls are refused, and some (a NaN value, a SharedArrayBuffer, an offset view) run
  expect(r.stats!.threw).toBeGreaterThan(r.stats!.calls / 2);
  expect(r.stats!.returned).toBeGreaterThan(0);
}

describe.skipIf(!nativeLoads)('the native boundary under random bad arguments', () => {
  it('addon functions and the public backend: 200 changed calls each, every one returns or throws an Error', () => {
    expectNoCrash(runBoundary({ RNNKIT_BOUNDARY_CALLS: '200', RNNKIT_BOUNDARY_SEED: '7' }), 200);
  }, 600_000);

  const reason = !existsSync(ASAN_ADDON) ? 'no asan build (npm run build:asan)' : !existsSync(ASAN_RUNTIME) ? 'no libasan.so' : '';
  it.skipIf(reason !== '')(`the same under AddressSanitizer + UBSan: no report (getters that detach and free a buffer included)${reason ? ` (skipped: ${reason})` : ''}`, () => {
    expectNoCrash(runBoundary({
      RNNKIT_BOUNDARY_CALLS: '150', RNNKIT_BOUNDARY_SEED: '8', LD_PRELOAD: ASAN_RUNTIME, RNNKIT_NATIVE_ADDON: ASAN_ADDON,
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    }), 150);
  }, 600_000);
});

describe.skipIf(!nativeLoads)('the addon\'s weight copies (copyWeight) at the boundary', () => {
  const T = 3, B = 2, I = 4, H = 5, G = 4 * H;
  const f32 = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i));
  const args = (): SeqForwardArgs => ({
    cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: f32(T * B * I, 1), wIh: f32(G * I, 2), wHh: f32(G * H, 3), bIh: f32(G, 4), bHh: f32(G, 5),
    wHr: null, h0: null, c0: null, lengths: null, training: false, y: new Float32Array(T * B * H), yStride: H, yOffset: 0,
    hN: new Float32Array(B * H), cN: new Float32Array(B * H),
  });
  const withHandles = (a: SeqForwardArgs, handles: Record<string, unknown>) => ({ ...a, ...handles }) as unknown as SeqForwardArgs;

  it('a weight copy in place of each weight gives the results of the arrays bit for bit, in the synchronous and the async call', async () => {
    const addon = loadNativeAddon();
    const expected = args();
    addon.seqForward(expected);
    for (const async of [false, true]) {
      const a = args();
      const h = withHandles(a, { wIh: addon.copyWeight(a.wIh), wHh: addon.copyWeight(a.wHh), bIh: addon.copyWeight(a.bIh!), bHh: addon.copyWeight(a.bHh!) });
      if (async) await addon.seqForwardAsync(h); else addon.seqForward(h);
      expect(Buffer.compare(Buffer.from(a.y.buffer), Buffer.from(expected.y.buffer)), async ? 'async' : 'sync').toBe(0);
      expect(Buffer.compare(Buffer.from(a.cN!.buffer), Buffer.from(expected.cN!.buffer))).toBe(0);
    }
  });

  it('the addon refuses a weight copy too short, a context in place of a copy, and copyWeight of anything but a Float32Array, naming the argument, expected and received', () => {
    const addon = loadNativeAddon();
    const a = args();
    const short = addon.copyWeight(new Float32Array(G * I - 1));
    expect(() => addon.seqForward(withHandles(a, { wIh: short }))).toThrow(`native.seqForward(lstm): wIh is a weight copy of ${G * I - 1} elements, expected at least ${G * I}`);
    expect(() => addon.seqForwardAsync(withHandles(a, { bHh: addon.copyWeight(new Float32Array(3)) }))).toThrow(`native.seqForward(lstm): bHh is a weight copy of 3 elements, expected at least ${G}`);
    const ctx = addon.seqForward({ ...args(), training: true });
    expect(() => addon.seqForwardAsync(withHandles(a, { wHh: ctx }))).toThrow(/native\.seqForward\(lstm\): wHh must be a Float32Array or a weight copy of native\.copyWeight, received another native handle/);
    const copy = addon.copyWeight(a.wIh);
    expect(() => addon.seqBackward(copy, args(), { dy: null } as never)).toThrow(/ctx is not a context of native\.seqForward/);
    for (const [label, bad] of [['null', null], ['an array', [1, 2]], ['a Float64Array', new Float64Array(3)], ['a weight copy', copy]] as const) {
      expect(() => addon.copyWeight(bad as unknown as Float32Array), label).toThrow(/native\.copyWeight: values (is required, expected|must be) a Float32Array/);
    }
  });

  it('the validation layer checks weightCopies: 5 entries, each null or a copy of this backend as long as its weight', async () => {
    const native = loadNativeBackend();
    const a = args();
    const copies = [a.wIh, a.wHh, a.bIh!, a.bHh!].map((w) => native.copyWeight(w));
    const call = (weightCopies: unknown) => native.seqForwardAsync({ ...args(), weightCopies } as SeqForwardArgs);
    await expect(call([...copies, null])).resolves.toBeNull();
    await expect(call(copies)).rejects.toThrow(/weightCopies must be 5 entries \(wIh, wHh, bIh, bHh, wHr\), each a weight copy or null, received 4 entries/);
    await expect(call([copies[1], copies[1], null, null, null])).rejects.toThrow(`weightCopies[0] (wIh) has ${G * H} elements, expected ${G * I} (the length of wIh)`);
    await expect(call([null, null, null, null, copies[2]])).rejects.toThrow('weightCopies[4] (wHr) is given, but wHr is null');
    const wasm: WeightCopy = { backend: 'wasm', length: G * I };
    await expect(call([wasm, null, null, null, null])).rejects.toThrow("weightCopies[0] (wIh) must be a weight copy of this backend ('native'), received one of 'wasm'");
    await expect(call([5, null, null, null, null])).rejects.toThrow('weightCopies[0] (wIh) must be a weight copy (native.copyWeight) or null, received number 5');
    const forged: WeightCopy = { backend: 'native', length: G * I };
    await expect(call([forged, null, null, null, null])).rejects.toThrow('native.seqForwardAsync: weightCopies[0] (wIh) is not a weight copy of native.copyWeight');
    expect(() => native.copyWeight(null as unknown as Float32Array)).toThrow(/native\.copyWeight: values is required/);
  });
});
