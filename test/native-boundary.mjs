// Random bad arguments at the native boundary, run in a child process by
// test/native-boundary.test.ts (a crash or heap corruption shows as the process dying, or as a
// sanitizer report with RNNKIT_NATIVE_ADDON=build/asan/rnnkit.node). Each call starts from valid
// arguments of random small shapes and changes one to three of them: numbers to NaN, Inf, -1, 2^31,
// 2^53, fractions; arrays to other typed-array kinds, shorter ones, null, plain arrays, detached
// buffers (structuredClone transfer), SharedArrayBuffer-backed and offset views, the addon's
// weight copies (too short) and contexts in their place; objects with a
// field removed or made a getter that throws or detaches another buffer. Every call must return or
// throw an Error; the public backend (getBackend()) gets the same treatment. Prints one JSON line:
// { calls, returned, threw, nonErrors, byFunction }.
//   RNNKIT_BOUNDARY_CALLS  calls per function (default 400)   RNNKIT_BOUNDARY_SEED  (default 1)
import { getBackend, setBackend } from '../dist/index.js';
import { loadNativeAddon } from '../dist/backends/native.js';
import fc from 'fast-check';

const CALLS = Number(process.env.RNNKIT_BOUNDARY_CALLS ?? 400);
const SEED = Number(process.env.RNNKIT_BOUNDARY_SEED ?? 1);
const addon = loadNativeAddon();
setBackend('native');
const backend = getBackend();

const detached = (n) => { const a = new Float32Array(n); structuredClone(a.buffer, { transfer: [a.buffer] }); return a; };
const shared = (n) => new Float32Array(new SharedArrayBuffer(4 * n));
const offsetView = (n) => new Float32Array(new ArrayBuffer(4 * n + 12), 12, n);
const NUMBERS = [NaN, Infinity, -Infinity, -1, 0, -0, 0.5, 1.5, 2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 53, -(2 ** 53), 1e300];
const THINGS = [null, undefined, true, 'x', '', {}, [], [1, 2, 3], 10n, Symbol('s'), () => 1, new Date(0), new Map()];
/** A replacement for an argument: a nasty number, another kind of value, or an odd typed array. */
function replacement(r, original) {
  const n = original && typeof original === 'object' && 'length' in original ? original.length : 4;
  const kinds = [
    () => NUMBERS[r(NUMBERS.length)], () => THINGS[r(THINGS.length)],
    () => new Float64Array(n), () => new Int32Array(n), () => new Uint8Array(n), () => new Float32Array(Math.max(0, n - 1 - r(3))),
    () => new Float32Array(0), () => detached(n), () => shared(n), () => offsetView(n), () => new DataView(new ArrayBuffer(4 * n)),
    () => Array.from({ length: n }, () => 0), () => new Float32Array(n).fill(NaN), () => new Float32Array(n).fill(Infinity),
    () => new Int32Array(n).fill(-5), () => new Int32Array(n).fill(2 ** 31 - 1),
    // native handles: a weight copy too short or of the right length, a context in place of a weight copy
    () => addon.copyWeight(new Float32Array(Math.max(0, n - 1 - r(3)))), () => addon.copyWeight(new Float32Array(n)), () => CONTEXT,
  ];
  return kinds[r(kinds.length)]();
}

const CONTEXT = addon.seqForward({ cell: 'rnn_tanh', T: 1, B: 1, I: 1, H: 1, P: 0, reverse: false, x: new Float32Array(1), wIh: new Float32Array(1),
  wHh: new Float32Array(1), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null, y: new Float32Array(1), yStride: 1, yOffset: 0,
  hN: new Float32Array(1), cN: null, training: true });
const f32 = (n, rnd) => Float32Array.from({ length: n }, () => rnd() * 2 - 1);
/** Valid arguments of every addon function for random small shapes. */
function validCalls(r, rnd) {
  const M = 1 + r(5), N = 1 + r(5), K = 1 + r(5);
  const cells = ['lstm', 'gru', 'rnn_tanh', 'rnn_relu'];
  const cell = cells[r(4)];
  const T = 1 + r(4), B = 1 + r(3), I = 1 + r(4), H = 2 + r(4);
  const P = cell === 'lstm' && r(2) ? 1 : 0;
  const G = (cell === 'lstm' ? 4 : cell === 'gru' ? 3 : 1) * H, R = P || H;
  const fwd = () => ({
    cell, T, B, I, H, P, reverse: r(2) === 1, x: f32(T * B * I, rnd), wIh: f32(G * I, rnd), wHh: f32(G * R, rnd), bIh: f32(G, rnd), bHh: null,
    wHr: P ? f32(P * H, rnd) : null, h0: null, c0: null, lengths: r(2) ? Int32Array.from({ length: B }, () => 1 + r(T)) : null,
    y: new Float32Array(T * B * R), yStride: R, yOffset: 0, hN: new Float32Array(B * R), cN: cell === 'lstm' ? new Float32Array(B * H) : null, training: true,
  });
  const bwd = () => ({ dy: f32(T * B * R, rnd), dyStride: R, dyOffset: 0, dhN: null, dcN: null, dx: new Float32Array(T * B * I), dh0: null, dc0: null,
    dWIh: new Float32Array(G * I), dWHh: new Float32Array(G * R), dBIh: new Float32Array(G), dBHh: null, dWHr: P ? new Float32Array(P * H) : null });
  const C = 2 + r(4), Nr = 1 + r(4);
  const n = 1 + r(9);
  return {
    gemm: () => [r(2) === 1, r(2) === 1, M, N, K, 1, f32(M * K, rnd), 0, f32(K * N, rnd), 0, 0.5, f32(M * N, rnd), N],
    seqForward: () => [fwd()],
    // the weights as the addon's copies (copyWeight), as forwardAsync gives them
    seqForwardAsync: () => { const a = fwd(); for (const k of ['wIh', 'wHh', 'bIh']) if (r(2)) a[k] = addon.copyWeight(a[k]); return [a]; },
    // inference calls as one job; a second layer reads the first's y where the widths allow
    seqForwardStackAsync: () => { const a = { ...fwd(), training: false }; return [I === R ? [a, { ...fwd(), training: false, x: a.y }] : [a]]; },
    seqBackward: () => { const f = fwd(); return [addon.seqForward(f), f, bwd()]; },
    seqBackwardAsync: () => { const f = fwd(); return [addon.seqForward(f), f, bwd()]; },
    unaryForward: () => [['tanh', 'sigmoid', 'relu'][r(3)], f32(n, rnd), new Float32Array(n)],
    unaryBackward: () => [['tanh', 'sigmoid', 'relu'][r(3)], f32(n, rnd), f32(n, rnd), f32(n, rnd), new Float32Array(n)],
    crossEntropyForward: () => [Nr, C, f32(Nr * C, rnd), Int32Array.from({ length: Nr }, () => r(C)), -100, new Float32Array(Nr * C), new Float32Array(Nr)],
    crossEntropyBackward: () => [Nr, C, f32(Nr * C, rnd).map(Math.abs), Int32Array.from({ length: Nr }, () => r(C)), -100, f32(Nr, rnd), new Float32Array(Nr * C)],
    sumSquares: () => [f32(n, rnd)],
    copyWeight: () => [f32(n, rnd)],
    adamUpdate: () => [f32(n, rnd), f32(n, rnd), new Float32Array(n), new Float32Array(n), 1e-3, 0.9, 0.999, 1e-8, 0, false, 1],
    sgdUpdate: () => [f32(n, rnd), f32(n, rnd), new Float32Array(n), 0.1, 0.9, 0, 0, false, true],
    setThreads: () => [1 + r(2)],
    setIsa: () => [addon.info().isa],
    cpuSupports: () => ['avx2'],
    setMatmulPrecision: () => ['highest'],
    setAsyncJobs: () => [r(4)],
    asyncJobStats: () => [r(2) === 1],
  };
}
// gemm leading dimensions: 0 above means "the natural one"
function fixGemm(args) {
  const [tA, tB, M, N, K] = args;
  if (args[7] === 0) args[7] = tA ? M : K;
  if (args[9] === 0) args[9] = tB ? K : N;
  return args;
}

/** Changes one to three arguments (or fields of an args object). */
function mutate(r, args, others) {
  const out = [...args];
  const count = 1 + r(3);
  for (let k = 0; k < count; k++) {
    const i = r(out.length + 1);
    if (i === out.length) { if (r(2)) out.pop(); else out.push(THINGS[r(THINGS.length)]); continue; } // arity
    const v = out[i];
    if (v && typeof v === 'object' && !ArrayBuffer.isView(v) && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype) {
      const o = Object.defineProperties({}, Object.getOwnPropertyDescriptors(v)); // keeps getters added before
      const keys = Object.keys(o);
      if (keys.length === 0) { out[i] = replacement(r, v); continue; }
      const key = keys[r(keys.length)];
      const how = r(4);
      const current = Object.getOwnPropertyDescriptor(o, key).value; // undefined for a getter added before
      const define = (d) => Object.defineProperty(o, key, { enumerable: true, configurable: true, ...d });
      if (how === 0) delete o[key];
      else if (how === 1) define({ value: replacement(r, current), writable: true });
      else if (how === 2) define({ get() { throw new Error(`getter ${key}`); } });
      else {
        // a getter that detaches another buffer of the call (after the addon may have looked at it)
        const victims = [...keys.map((k2) => Object.getOwnPropertyDescriptor(o, k2).value), ...others].filter((x) => ArrayBuffer.isView(x) && x.buffer.byteLength > 0 && !(x.buffer instanceof SharedArrayBuffer));
        const victim = victims[r(Math.max(1, victims.length))];
        define({ get() { if (victim && victim.buffer.byteLength > 0) structuredClone(victim.buffer, { transfer: [victim.buffer] }); globalThis.gc?.(); return current; } });
      }
      out[i] = o;
    } else {
      out[i] = replacement(r, v);
    }
  }
  return out;
}

const stats = { calls: 0, returned: 0, threw: 0, nonErrors: [], byFunction: {} };
const record = (name, outcome, detail) => {
  const s = (stats.byFunction[name] ??= { returned: 0, threw: 0 });
  stats.calls++;
  if (outcome === 'returned') { stats.returned++; s.returned++; } else if (outcome === 'threw') { stats.threw++; s.threw++; } else stats.nonErrors.push(`${name}: ${detail}`);
};
async function attempt(name, fn) {
  try {
    const v = fn();
    if (v && typeof v.then === 'function') await v;
    record(name, 'returned');
  } catch (e) {
    if (e instanceof Error && e.message) record(name, 'threw');
    else record(name, 'non-error', String(e));
  }
}

const gen = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const seeds = fc.sample(gen, { seed: SEED, numRuns: CALLS });
const defaultIsa = addon.info().isa;
for (const s of seeds) {
  let state = s >>> 0;
  const rnd = () => { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; return state / 2 ** 32; };
  const r = (n) => Math.floor(rnd() * n);
  const calls = validCalls(r, rnd);
  for (const [name, make] of Object.entries(calls)) {
    let args = make();
    if (name === 'gemm') args = fixGemm(args);
    const others = args.filter((a) => ArrayBuffer.isView(a));
    const bad = mutate(r, args, others);
    await attempt(name, () => addon[name](...bad));
    // the public backend: the same shapes through the validation layer and the addon
    if (name in backend && !['setThreads', 'setIsa', 'cpuSupports', 'setMatmulPrecision', 'seqBackward', 'seqBackwardAsync', 'adamUpdate', 'sgdUpdate'].includes(name)) {
      await attempt(`backend.${name}`, () => backend[name](...bad));
    }
  }
  addon.setIsa(defaultIsa);
  addon.setMatmulPrecision('highest');
  addon.setAsyncJobs(0);
}
// public backend calls whose argument is an object (Adam / SGD / seqBackward)
for (const s of seeds.slice(0, Math.ceil(CALLS / 2))) {
  let state = s >>> 0;
  const rnd = () => { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; return state / 2 ** 32; };
  const r = (n) => Math.floor(rnd() * n);
  const n = 1 + r(6);
  const adam = { param: f32(n, rnd), grad: f32(n, rnd), m: new Float32Array(n), v: new Float32Array(n), lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, step: 1 };
  await attempt('backend.adamUpdate', () => backend.adamUpdate(mutate(r, [adam], [])[0]));
  const sgd = { param: f32(n, rnd), grad: f32(n, rnd), momentumBuffer: new Float32Array(n), lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, firstStep: true };
  await attempt('backend.sgdUpdate', () => backend.sgdUpdate(mutate(r, [sgd], [])[0]));
}
addon.setThreads(Number(process.env.RNNKIT_THREADS ?? 2));
console.log(JSON.stringify(stats));
