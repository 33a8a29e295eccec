// The same kernel means the same thing on every backend: each element-wise kernel gets edge
// inputs (0, -0, +-1e-6, +-1e-3, +-20, +-88, +-100, subnormals, the branch points of the math,
// +-inf, NaN) on the reference backend, on native with every ISA this CPU has, and on wasm, and
// every result must lie within a stated ulp bound of the float64 result (the reference backend
// run on Float64Array, rounded once to float32). Bounds (ulp = float32 units in the last place,
// +0 and -0 the same float; NaN only matches NaN):
//   tanh 2, sigmoid 2, relu 0 (NaN stays NaN), exp (wasm test hook) 1; tanh(x) = x exactly for
//   |x| < 2^-12; tanh' = (1 - y)(1 + y) and sigmoid' = y(1 - y) times dy: 2;
//   fused gate rows (seqForward, one step): one activation 2, an activation of an activation 4;
//   cross-entropy forward 1, backward 0 (float64 arithmetic on every backend);
//   Adam m and v 0, param 1 (the backends' pow may differ in the last bit of a double);
//   SGD 0 (PyTorch's float32 momentum buffer: its rounded value feeds the update);
//   sumSquares: relative 1e-15 (float64 sums in a different order).
// tanh and sigmoid also keep their bound over a sweep of 2 million float32 inputs; native SSE2 and
// plain wasm SIMD (neither fuses multiply-adds) give the same bits there, as the mirrored
// sources promise. An element gets the same bits whether it sits in a full vector or a row's tail.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { AdamArgs, Backend, CellKind, RecurrentActivation, SeqForwardArgs, SgdArgs, UnaryOp } from '../src/backends/backend.js';
import { type NativeIsa, loadNativeAddon, loadNativeBackend } from '../src/backends/native.js';
import { ReferenceBackend } from '../src/backends/reference.js';
import { createWasmBackend } from '../src/backends/wasm-core.js';

const reference = new ReferenceBackend();
const native = loadNativeBackend();
const ISAS = (['avx512', 'avx2', 'sse2'] as NativeIsa[]).filter((isa) => loadNativeAddon().cpuSupports(isa));
const defaultIsa = native.info().isa as NativeIsa;
afterAll(() => native.setIsa(defaultIsa));

// both wasm builds; the relaxed-SIMD one where the runtime validates it (Node 20 only with
// --experimental-wasm-relaxed-simd, under which test/wasm-edge.test.ts runs this file)
const wasmBytes = (file: string) => readFileSync(fileURLToPath(new URL(`../dist/${file}`, import.meta.url)));
const wasm = createWasmBackend(wasmBytes('rnnkit.wasm'));
const relaxedBytes = wasmBytes('rnnkit-relaxed.wasm');
const relaxed = WebAssembly.validate(relaxedBytes) ? createWasmBackend(relaxedBytes) : null;

interface Subject {
  name: string;
  backend: Backend;
  /** Selects this subject's kernels (the native ISA is process-wide). */
  use(): void;
}
const SUBJECTS: Subject[] = [
  { name: 'reference', backend: reference, use() {} },
  ...ISAS.map((isa) => ({ name: `native ${isa}`, backend: native, use: () => native.setIsa(isa) })),
  { name: `wasm ${wasm.info().isa}`, backend: wasm, use() {} },
  ...(relaxed ? [{ name: `wasm ${relaxed.info().isa}`, backend: relaxed, use() {} }] : []),
];

// ---------------------------------------------------------------- ulps
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);
function ordered(v: number): number {
  f32[0] = v;
  const b = i32[0];
  return b < 0 ? -(b & 0x7fffffff) : b;
}
/** Distance in float32 ulps: 0 for the same float (+0 and -0 alike) or two NaNs, Infinity for NaN vs a number. */
function ulps(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity;
  return Math.abs(ordered(a) - ordered(b));
}
/** The spacing of float32 at |v| (a normal number), for bounds relative to a term's size. */
function ulpAt(v: number): number {
  const a = Math.max(Math.abs(v), 2 ** -126);
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

/** Fails listing every element whose distance to want exceeds bound. */
function expectUlps(what: string, got: ArrayLike<number>, want: ArrayLike<number>, bound: number, inputs?: ArrayLike<number>): void {
  expect(got.length, what).toBe(want.length);
  const bad: string[] = [];
  for (let i = 0; i < want.length; i++) {
    const d = ulps(got[i], want[i]);
    if (!(d <= bound)) bad.push(`[${i}]${inputs ? ` x=${inputs[i]}` : ''}: ${got[i]} vs ${want[i]} (${d} ulp)`);
  }
  if (bad.length) throw new Error(`${what}: ${bad.length} element(s) beyond ${bound} ulp: ${bad.slice(0, 6).join('; ')}`);
}

function bits(a: Float32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
}
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

// ---------------------------------------------------------------- inputs
const SUB = 2 ** -149; // smallest subnormal
const EDGES = Float32Array.from([
  0, -0, 1e-6, -1e-6, 1e-3, -1e-3, 20, -20, 88, -88, 100, -100,
  1e-40, -1e-40, SUB, -SUB, 2 ** -126 - SUB, -(2 ** -126 - SUB), 2 ** -126, -(2 ** -126), // subnormals, FLT_MIN
  2 ** -13, -(2 ** -13), 0.5, -0.5, 0.625, -0.625, 0.6249999, -0.6249999, 1, -1, 4.5, -4.5, 9.02, -9.02,
  88.72, -88.72, 89.5, -89.5, 103.9, -103.9, 110, -110, 3e38, -3e38, Infinity, -Infinity, NaN,
]);
/** Every 4099th float32 bit pattern, both signs (about 2 million values, all binades). */
const SWEEP = (() => {
  const bitsOf = new Int32Array(2 * Math.ceil(0x7f800000 / 4099));
  let n = 0;
  for (let b = 0; b < 0x7f800000; b += 4099) {
    bitsOf[n++] = b;
    bitsOf[n++] = b | 0x80000000;
  }
  return new Float32Array(bitsOf.buffer, 0, n);
})();
const OPS: UnaryOp[] = ['tanh', 'sigmoid', 'relu'];
const FWD_BOUND: Record<UnaryOp, number> = { tanh: 2, sigmoid: 2, relu: 0 };

/** float64 results of the reference backend, rounded once to float32. */
function f64Unary(op: UnaryOp, x: Float32Array): Float32Array {
  const y = new Float64Array(x.length);
  reference.unaryForward(op, Float64Array.from(x) as unknown as Float32Array, y as unknown as Float32Array);
  return Float32Array.from(y);
}

/** Runs f on x and on x shifted by one element (other vector lanes, other tail): both must agree bitwise. */
function positionIndependent(what: string, x: Float32Array, f: (x: Float32Array) => Float32Array): Float32Array {
  const a = f(x);
  const shifted = new Float32Array(x.length + 1);
  shifted.set(x, 1);
  const b = f(shifted).subarray(1);
  expect(bits(b), `${what}: same bits in another vector position`).toBe(bits(a));
  return a;
}

describe.each(SUBJECTS)('kernel edges on $name', (s) => {
  it.each(OPS)('%s forward: within the ulp bound of float64 (tanh 2, sigmoid 2, relu 0), tanh(x) = x for |x| < 2^-12, signed zeros kept', (op) => {
    s.use();
    const y = positionIndependent(op, EDGES, (x) => {
      const out = new Float32Array(x.length);
      s.backend.unaryForward(op, x, out);
      return out;
    });
    expectUlps(`${s.name} ${op}`, y, f64Unary(op, EDGES), FWD_BOUND[op], EDGES);
    for (let i = 0; i < EDGES.length; i++) {
      const x = EDGES[i];
      if (op === 'tanh' && Math.abs(x) < 2 ** -12) expect(Object.is(y[i], x), `tanh(${Object.is(x, -0) ? '-0' : x})`).toBe(true);
      if (op === 'relu' && x <= 0) expect(Object.is(y[i], 0), `relu(${x}) is +0`).toBe(true);
    }
  });

  it.each(['tanh', 'sigmoid'] as UnaryOp[])('%s forward over a sweep of float32 inputs: within the same ulp bound (2)', (op) => {
    s.use();
    const y = new Float32Array(SWEEP.length);
    s.backend.unaryForward(op, SWEEP, y);
    expectUlps(`${s.name} ${op} sweep`, y, f64Unary(op, SWEEP), FWD_BOUND[op], SWEEP);
  });

  it.each(OPS)('%s backward: dy * op\' within 2 ulp of float64 from dx = 0, and within 2 ulp of the larger term when accumulating', (op) => {
    s.use();
    // y: the float32 forward values of the edges plus values near the ends of the range
    const x = Float32Array.from([...EDGES, 0.75, -0.75, 0.99, -0.99]);
    const y = Float32Array.from([...f64Unary(op, EDGES), 0.99999994, -0.99999994, 0.9997, op === 'sigmoid' ? 5.9e-39 : -0.9997]);
    const dyCycle = [1, -2.5, 1e-3, -7e5, 3, op === 'relu' ? Infinity : 0.25];
    const dy = Float32Array.from(x, (_, i) => dyCycle[i % dyCycle.length]);
    const run = (dx0: Float32Array) => positionIndependent(`${op} backward`, dy, (dyv) => {
      const off = dyv.length - dy.length; // 0 or 1 (shifted copy)
      const pad = (a: Float32Array) => {
        const r = new Float32Array(dyv.length);
        r.set(a, off);
        return r;
      };
      const dx = pad(dx0);
      s.backend.unaryBackward(op, pad(x), pad(y), dyv, dx);
      return dx;
    });
    // float64 dy * op' (relu selects dy where x > 0, so an inf dy elsewhere gives 0)
    const product = (i: number) => (op === 'relu' ? (x[i] > 0 ? dy[i] : 0) : dy[i] * (op === 'tanh' ? 1 - y[i] * y[i] : y[i] * (1 - y[i])));
    // from zero: the product alone
    const fromZero = run(new Float32Array(x.length));
    expectUlps(`${s.name} ${op}' * dy`, fromZero, Float32Array.from(x, (_, i) => product(i)), op === 'relu' ? 0 : 2, x);
    // accumulating: error relative to the larger of the two terms
    const dx0 = Float32Array.from(x, (_, i) => [0.5, -3, 1e-4, 2e5][i % 4]);
    const acc = run(dx0);
    for (let i = 0; i < x.length; i++) {
      const term = product(i);
      const want = dx0[i] + term;
      if (!Number.isFinite(want)) {
        expect(acc[i], `${op} accumulate at x=${x[i]} y=${y[i]}`).toBe(want); // inf or NaN exactly
        continue;
      }
      const err = Math.abs(acc[i] - want) / ulpAt(Math.max(Math.abs(dx0[i]), Math.abs(term)));
      expect(err, `${op} accumulate at y=${y[i]}: ${acc[i]} vs ${want}`).toBeLessThanOrEqual(2);
    }
  });

  it('fused gate rows (one-step seqForward): one activation within 2 ulp of float64, an activation of an activation within 4', () => {
    s.use();
    const H = EDGES.length;
    const BIG = 200; // sigmoid(200) = 1 and sigmoid(-200) = 0 exactly in float32
    // pre-activations per gate (one column per hidden unit), with x = [1] and W_hh = 0
    const run = (be: Backend, cell: CellKind, gatePre: (number | Float32Array)[], opts: { h0?: number; c0?: number; bHh?: number[]; act?: RecurrentActivation } = {}, f64 = false) => {
      const G = gatePre.length * H;
      const F = (n: number) => (f64 ? new Float64Array(n) : new Float32Array(n)) as Float32Array;
      const wIh = F(G);
      gatePre.forEach((g, k) => { for (let j = 0; j < H; j++) wIh[k * H + j] = typeof g === 'number' ? g : g[j]; });
      const full = (v: number | undefined, n: number) => (v === undefined ? null : F(n).fill(v));
      let bHh: Float32Array | null = null;
      if (opts.bHh) {
        bHh = F(G);
        opts.bHh.forEach((v, k) => bHh!.fill(v, k * H, k * H + H));
      }
      const args: SeqForwardArgs = {
        cell, T: 1, B: 1, I: 1, H, P: 0, reverse: false, x: F(1).fill(1), wIh, wHh: F(G * H), bIh: null, bHh, wHr: null,
        h0: full(opts.h0, H), c0: cell === 'lstm' ? full(opts.c0, H) : null, lengths: null,
        y: F(H), yStride: H, yOffset: 0, hN: F(H), cN: cell === 'lstm' ? F(H) : null, training: false,
        recurrentActivation: opts.act ?? null,
      };
      be.seqForward(args);
      return { h: Float32Array.from(args.hN), c: args.cN ? Float32Array.from(args.cN) : null };
    };
    const check = (what: string, cell: CellKind, gatePre: (number | Float32Array)[], bound: { h: number; c?: number }, opts = {}) => {
      const got = run(s.backend, cell, gatePre, opts);
      const want = run(reference, cell, gatePre, opts, true);
      expectUlps(`${s.name} ${what} h`, got.h, want.h, bound.h, EDGES);
      if (bound.c !== undefined) expectUlps(`${s.name} ${what} c`, got.c!, want.c!, bound.c, EDGES);
    };
    const v = EDGES;
    check('rnn_tanh h = tanh(v)', 'rnn_tanh', [v], { h: 2 });
    check('rnn_relu h = relu(v)', 'rnn_relu', [v], { h: 0 });
    // GRU gates r, z, n: h = (1 - z) n + z h0, n = tanh(v_n + r (W_hn h0 + b_hn))
    check('gru n gate: h = tanh(v)', 'gru', [0, -BIG, v], { h: 2 });
    check('gru z gate: h = sigmoid(v) h0', 'gru', [0, v, 0], { h: 2 }, { h0: 1 });
    check('gru r gate: h = tanh(sigmoid(v) b_hn)', 'gru', [v, -BIG, 0], { h: 4 }, { bHh: [0, 0, 1] });
    // LSTM gates i, f, g, o: c = f c0 + i g, h = o tanh(c)
    check('lstm g gate: c = tanh(v), h = tanh(c)', 'lstm', [BIG, -BIG, v, BIG], { c: 2, h: 4 });
    check('lstm i gate: c = sigmoid(v), h = tanh(c)', 'lstm', [v, -BIG, BIG, BIG], { c: 2, h: 4 });
    check('lstm f gate: c = sigmoid(v) c0', 'lstm', [-BIG, v, 0, BIG], { c: 2, h: 4 }, { c0: 1 });
    check('lstm o gate: h = sigmoid(v) tanh(100)', 'lstm', [-BIG, BIG, 0, v], { h: 2 }, { c0: 100 });
    // the reset-before GRU: with W_hh = 0, h = (1 - z) tanh(v_n + b_hn) + z h0
    check('gru_reset_before n gate: h = tanh(v)', 'gru_reset_before', [0, -BIG, v], { h: 2 });
    check('gru_reset_before z gate: h = sigmoid(v) h0', 'gru_reset_before', [0, v, 0], { h: 2 }, { h0: 1 });
    check('gru_reset_before b_hn outside r: h = tanh(1)', 'gru_reset_before', [-BIG, -BIG, 0], { h: 2 }, { bHh: [0, 0, 1] });
    // the hard sigmoid clamp(alpha v + beta, 0, 1): within 2^-23 of float64 (alpha v + beta may
    // round once more without a fused multiply-add), exactly 0 and 1 past the kinks, NaN kept
    for (const act of [{ kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 }, { kind: 'hardSigmoid', alpha: 1 / 6, beta: 0.5 }] as const) {
      for (const [what, cell, pre, opts, out] of [
        ['lstm i gate: c = hardSigmoid(v)', 'lstm', [v, -BIG, BIG, BIG], {}, 'c'],
        ['lstm f gate: c = hardSigmoid(v) c0', 'lstm', [-BIG, v, 0, BIG], { c0: 1 }, 'c'],
        ['gru z gate: h = hardSigmoid(v) h0', 'gru', [0, v, 0], { h0: 1 }, 'h'],
        ['gru_reset_before z gate: h = hardSigmoid(v) h0', 'gru_reset_before', [0, v, 0], { h0: 1 }, 'h'],
      ] as const) {
        const got = run(s.backend, cell, [...pre], { ...opts, act })[out]!;
        const want = run(reference, cell, [...pre], { ...opts, act }, true)[out]!;
        for (let j = 0; j < H; j++) {
          const tag = `${s.name} ${what} alpha ${act.alpha.toFixed(3)} at v=${v[j]}`;
          if (Number.isNaN(want[j])) expect(got[j], tag).toBeNaN();
          else expect(Math.abs(got[j] - want[j]), `${tag}: ${got[j]} vs ${want[j]}`).toBeLessThanOrEqual(2 ** -23);
          const u = act.alpha * v[j] + act.beta;
          if (u <= -1e-6 || u >= 1 + 1e-6) expect(got[j], tag).toBe(u < 0 ? 0 : 1);
        }
      }
    }
  });

  it('cross-entropy: forward within 1 ulp of float64, backward identical to float64 rounded once (0 ulp)', () => {
    s.use();
    const rows = [
      [0, 1e-6, -1e-6, 1e-3, -1e-3],
      [20, -20, 88, -88, 0],
      [100, -100, 1e-40, -1e-40, SUB],
      [3e38, -3e38, 0, 1, 2],
      [-100, -100, -100, -100, -100],
      [0.5, 0.625, -0.625, 4.5, -4.5],
    ];
    const N = rows.length, C = 5;
    const logits = Float32Array.from(rows.flat());
    const targets = Int32Array.from([1, 3, 4, 1, -100, 0]);
    const probs = new Float32Array(N * C), losses = new Float32Array(N);
    s.backend.crossEntropyForward(N, C, logits, targets, -100, probs, losses);
    const p64 = new Float64Array(N * C), l64 = new Float64Array(N);
    const as32 = (a: Float64Array) => a as unknown as Float32Array;
    reference.crossEntropyForward(N, C, as32(Float64Array.from(logits)), targets, -100, as32(p64), as32(l64));
    expectUlps(`${s.name} probs`, probs, Float32Array.from(p64), 1);
    expectUlps(`${s.name} losses`, losses, Float32Array.from(l64), 1);
    expect(losses[4]).toBe(0);
    const dLosses = Float32Array.from([1, -1e-6, 3.5, 1e-40, 7, -20]);
    const dLogits0 = Float32Array.from(logits, (_, i) => [0, 1e-3, -0.25, 1e-40, 3][i % 5]);
    const pIn = Float32Array.from(p64);
    const dLogits = dLogits0.slice();
    s.backend.crossEntropyBackward(N, C, pIn, targets, -100, dLosses, dLogits);
    const d64 = Float64Array.from(dLogits0);
    reference.crossEntropyBackward(N, C, as32(Float64Array.from(pIn)), targets, -100, as32(Float64Array.from(dLosses)), as32(d64));
    expectUlps(`${s.name} dLogits`, dLogits, Float32Array.from(d64), 0);
    // values using all 24 bits, where float32 arithmetic would round differently
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    const N2 = 64, C2 = 7;
    const p2 = Float32Array.from({ length: N2 * C2 }, () => Math.abs(rand()));
    const t2 = Int32Array.from({ length: N2 }, (_, i) => i % C2);
    const g2 = Float32Array.from({ length: N2 }, () => rand() * 3);
    const d2 = Float32Array.from({ length: N2 * C2 }, () => rand());
    const got2 = d2.slice();
    s.backend.crossEntropyBackward(N2, C2, p2, t2, -100, g2, got2);
    const want2 = Float64Array.from(d2);
    reference.crossEntropyBackward(N2, C2, as32(Float64Array.from(p2)), t2, -100, as32(Float64Array.from(g2)), as32(want2));
    expectUlps(`${s.name} dLogits (random)`, got2, Float32Array.from(want2), 0);
  });

  it('sumSquares: within a relative 1e-15 of the float64 sum; inf and NaN propagate', () => {
    s.use();
    const finite = EDGES.filter((x) => Number.isFinite(x));
    let want = 0;
    for (const x of finite) want += x * x;
    expect(Math.abs(s.backend.sumSquares(finite) - want)).toBeLessThanOrEqual(1e-15 * want);
    expect(s.backend.sumSquares(Float32Array.from([1, Infinity, 2]))).toBe(Infinity);
    expect(s.backend.sumSquares(Float32Array.from([1, NaN, 2]))).toBeNaN();
    expect(s.backend.sumSquares(Float32Array.from([SUB, -SUB]))).toBe(2 * SUB * SUB);
  });

  it('Adam / AdamW: m and v identical to the float64 update with float32 state, param within 1 ulp', () => {
    s.use();
    const finite = EDGES.filter((x) => Number.isFinite(x) && Math.abs(x) < 1e30);
    const n = finite.length;
    for (const decoupled of [false, true]) {
      for (const [weightDecay, step] of [[0, 1], [0.01, 7]]) {
        const base = {
          param: Float32Array.from(finite), grad: Float32Array.from(finite, (_, i) => finite[(i * 7 + 3) % n]),
          m: Float32Array.from(finite, (x) => x * 1e-3), v: Float32Array.from(finite, (x) => Math.abs(x) * 1e-2),
          lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, decoupled, step,
        };
        const clone = (a: AdamArgs): AdamArgs => ({ ...a, param: a.param.slice(), m: a.m.slice(), v: a.v.slice() });
        const got = clone(base), want = clone(base);
        s.backend.adamUpdate(got);
        reference.adamUpdate(want);
        const what = `${s.name} ${decoupled ? 'AdamW' : 'Adam'} wd=${weightDecay} step=${step}`;
        expectUlps(`${what} m`, got.m, want.m, 0);
        expectUlps(`${what} v`, got.v, want.v, 0);
        expectUlps(`${what} param`, got.param, want.param, 1);
      }
    }
  });

  it('SGD (momentum, dampening, nesterov, weight decay): identical everywhere, the update uses the float32 momentum buffer', () => {
    s.use();
    const finite = EDGES.filter((x) => Number.isFinite(x) && Math.abs(x) < 1e30);
    const n = finite.length;
    const configs = [
      { momentum: 0, dampening: 0, nesterov: false, firstStep: false, weightDecay: 0 },
      { momentum: 0.9, dampening: 0, nesterov: false, firstStep: true, weightDecay: 0.01 },
      { momentum: 0.9, dampening: 0.1, nesterov: false, firstStep: false, weightDecay: 0 },
      { momentum: 0.9, dampening: 0, nesterov: true, firstStep: false, weightDecay: 0.01 },
      { momentum: 0.3, dampening: 0, nesterov: true, firstStep: true, weightDecay: 0 },
    ];
    for (const c of configs) {
      const param = Float32Array.from(finite), grad = Float32Array.from(finite, (_, i) => finite[(i * 5 + 1) % n]);
      const buf = Float32Array.from(finite, (_, i) => finite[(i * 3 + 2) % n] / 3);
      const a: SgdArgs = { param: param.slice(), grad, momentumBuffer: buf.slice(), lr: 0.1, ...c };
      s.backend.sgdUpdate(a);
      // PyTorch: buf is a float32 tensor, so the nesterov / momentum step reads its rounded value
      const wantP = new Float32Array(n), wantB = buf.slice(), unrounded = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let g = grad[i] + c.weightDecay * param[i];
        let gRaw = g;
        if (c.momentum !== 0) {
          const b64 = c.firstStep ? g : c.momentum * buf[i] + (1 - c.dampening) * g;
          wantB[i] = b64;
          g = c.nesterov ? g + c.momentum * wantB[i] : wantB[i];
          gRaw = c.nesterov ? gRaw + c.momentum * b64 : b64;
        }
        wantP[i] = param[i] - 0.1 * g;
        unrounded[i] = param[i] - 0.1 * gRaw;
      }
      const what = `${s.name} sgd ${JSON.stringify(c)}`;
      expectUlps(`${what} param`, a.param, wantP, 0);
      if (c.momentum !== 0) expectUlps(`${what} buffer`, a.momentumBuffer, wantB, 0);
      // the inputs are such that the rounding of the buffer shows in some parameter
      if (c.momentum !== 0 && !c.firstStep) expect(bits(wantP), 'the buffer rounding is visible').not.toBe(bits(unrounded));
    }
  });
});

describe('native and wasm run the same operations', () => {
  // the SSE2 path and the plain SIMD wasm build both round every product and sum (no fused
  // multiply-add), so the mirrored kernels must give the same bits, not just agree within a bound
  it.skipIf(!ISAS.includes('sse2'))('native sse2 and plain wasm: tanh and sigmoid forward and backward bitwise equal over the sweep', () => {
    native.setIsa('sse2');
    for (const op of ['tanh', 'sigmoid'] as UnaryOp[]) {
      const yn = new Float32Array(SWEEP.length), yw = new Float32Array(SWEEP.length);
      native.unaryForward(op, SWEEP, yn);
      wasm.unaryForward(op, SWEEP, yw);
      expect(sameBits(yn, yw), `${op} forward`).toBe(true);
      const dy = Float32Array.from(SWEEP, (_, i) => [1, -2.5, 1e-3][i % 3]);
      const dxn = Float32Array.from(SWEEP, (_, i) => [0, 0.5, -3][i % 3]), dxw = dxn.slice();
      const yClamped = Float32Array.from(yn, (v) => (Number.isFinite(v) ? v : 0));
      native.unaryBackward(op, SWEEP, yClamped, dy, dxn);
      wasm.unaryBackward(op, SWEEP, yClamped, dy, dxw);
      expect(sameBits(dxn, dxw), `${op} backward`).toBe(true);
    }
  });
});

describe.each([wasm, ...(relaxed ? [relaxed] : [])])('wasm exp (test hook), relaxed SIMD $relaxed', (wasm) => {
  it('within 1 ulp of float64: +inf above ln(FLT_MAX), subnormals below -87.34, 0 below -103.97', () => {
    const k = wasm.kernels;
    const x = Float32Array.from([...EDGES, 88.7228, 88.7229, -87.3365, -103.97, -103.98, 0, 0].slice(0, (EDGES.length + 7) & ~3));
    wasm.arena.reset();
    const px = wasm.arena.alloc(x.length, 'x');
    const py = wasm.arena.alloc(x.length, 'y');
    new Float32Array(k.memory.buffer, px, x.length).set(x);
    k.vecMath(0, x.length, px, py);
    const y = new Float32Array(k.memory.buffer, py, x.length).slice();
    expectUlps('exp', y, Float32Array.from(x, Math.exp), 1, x);
  });
});
