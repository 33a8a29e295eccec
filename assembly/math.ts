// Activations and element-wise ops (native/kernels.inc: vexp, vsigmoid, vtanh, unary_fwd/bwd).
//
// The same operations in the same order as the native kernels (Cephes expf / tanhf
// polynomials), so the backends differ only where one fuses a multiply-add. Error bounds against
// float64 (test/kernel-edges.test.ts): exp 1 ulp, sigmoid 2 ulp, tanh 2 ulp; tanh(x) = x for
// |x| < 2^-12 (and subnormals), sigmoid and exp reach the subnormals.
// A row's tail goes through the same vector code as its body (one element splat into every lane),
// so an element gets the same result wherever it sits in a row.
import { at, get, madd, put, vs } from './common';

// The constants of the vector math, four lanes each, read from memory: V8 builds a v128.const
// from general registers at every use inside a loop (four instructions), a load is one.
const KF: usize = memory.data<f32>([
  -104, -104, -104, -104, 89, 89, 89, 89,
  1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341,
  12582912.0, 12582912.0, 12582912.0, 12582912.0,
  0.693359375, 0.693359375, 0.693359375, 0.693359375,
  -2.12194440e-4, -2.12194440e-4, -2.12194440e-4, -2.12194440e-4,
  1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4,
  1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3,
  8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3,
  4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2,
  1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1,
  5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1,
  1, 1, 1, 1, 2, 2, 2, 2,
  -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3,
  2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2,
  -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2,
  1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1,
  -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1,
  0.625, 0.625, 0.625, 0.625,
], 16);
const KI: usize = memory.data<i32>([
  0x4B400000, 0x4B400000, 0x4B400000, 0x4B400000, 127, 127, 127, 127,
  0x80000000, 0x80000000, 0x80000000, 0x80000000,
], 16);
// indices into KF
const EXP_LO = 0, EXP_HI = 1, LOG2E = 2, ROUND = 3, LN2_HI = 4, LN2_LO = 5, EP0 = 6, EP1 = 7, EP2 = 8, EP3 = 9, EP4 = 10,
  EP5 = 11, ONE = 12, TWO = 13, TP0 = 14, TP1 = 15, TP2 = 16, TP3 = 17, TP4 = 18, TANH_SMALL = 19;
// indices into KI: the bits of ROUND, the exponent bias, the sign bit
const ROUND_BITS = 0, BIAS = 1, SIGN = 2;
// @ts-ignore: decorator
@inline function kf(i: i32): v128 {
  return v128.load(KF + (<usize>i << 4));
}
// @ts-ignore: decorator
@inline function ki(i: i32): v128 {
  return v128.load(KI + (<usize>i << 4));
}

/**
 * exp(x) with the IEEE range of expf: +inf above ln(FLT_MAX) ~ 88.72, gradual underflow to
 * subnormals below -87.34 and 0 below -103.97. The clamp to [-104, 89] only keeps n an integer
 * in range (it changes no result); NaN passes through.
 */
// @ts-ignore: decorator
@inline export function expv(x0: v128): v128 {
  // (pmin / pmax: one instruction each; they pass NaN on as min / max do, and the bounds are not zeros)
  const x = f32x4.pmin(f32x4.pmax(x0, kf(EXP_LO)), kf(EXP_HI));
  // n = round(x / ln2) by the 1.5 * 2^23 trick, r = x - n ln2 in two parts (Cody-Waite)
  const t = madd(x, kf(LOG2E), kf(ROUND));
  const n = f32x4.sub(t, kf(ROUND));
  let r = f32x4.sub(x, f32x4.mul(n, kf(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(n, kf(LN2_LO)));
  const z = f32x4.mul(r, r);
  let p = kf(EP0);
  p = madd(p, r, kf(EP1));
  p = madd(p, r, kf(EP2));
  p = madd(p, r, kf(EP3));
  p = madd(p, r, kf(EP4));
  p = madd(p, r, kf(EP5));
  const y = madd(p, z, f32x4.add(r, kf(ONE)));
  // y * 2^n as y * 2^n1 * 2^n2 (n1 = n >> 1, n2 = n - n1, both in [-75, 65]): the first
  // product is exact, the second rounds once, into the subnormals or to inf where exp does.
  // n as an integer: t = 1.5 * 2^23 + n exactly, so its bits are those of 1.5 * 2^23 plus n.
  const ni = i32x4.sub(t, ki(ROUND_BITS));
  const n1 = i32x4.shr_s(ni, 1);
  const n2 = i32x4.sub(ni, n1);
  const bias = ki(BIAS);
  return f32x4.mul(f32x4.mul(y, i32x4.shl(i32x4.add(n1, bias), 23)), i32x4.shl(i32x4.add(n2, bias), 23));
}

/**
 * sigmoid(x) = 1 / (1 + e^-x); for x < 0 as e^x / (1 + e^x), which keeps relative accuracy down
 * to the subnormals instead of reaching 0 at x = -88.7.
 */
// @ts-ignore: decorator
@inline export function sigmoidv(x: v128): v128 {
  const e = expv(f32x4.neg(f32x4.abs(x)));
  return f32x4.div(v128.bitselect(kf(ONE), e, f32x4.ge(x, vs(0))), f32x4.add(kf(ONE), e));
}

/**
 * tanh(x): |x| < 0.625: x + x^3 P(x^2) (relative accuracy near 0, tanh(x) = x for tiny x);
 * else 1 - 2 / (e^2|x| + 1) with the sign of x (1 for |x| > 9.1, also +-inf). NaN stays NaN.
 */
// @ts-ignore: decorator
@inline export function tanhv(x: v128): v128 {
  const ax = f32x4.abs(x);
  const big = f32x4.sub(kf(ONE), f32x4.div(kf(TWO), f32x4.add(expv(f32x4.add(ax, ax)), kf(ONE))));
  const z = f32x4.mul(ax, ax);
  let p = kf(TP0);
  p = madd(p, z, kf(TP1));
  p = madd(p, z, kf(TP2));
  p = madd(p, z, kf(TP3));
  p = madd(p, z, kf(TP4));
  const small = madd(f32x4.mul(p, z), ax, ax);
  // tanh is odd: computed for |x|, then the sign of x (which also keeps tanh(-0) = -0)
  return v128.or(v128.bitselect(small, big, f32x4.lt(ax, kf(TANH_SMALL))), v128.and(x, ki(SIGN)));
}

/** relu as PyTorch: x > 0 ? x : 0, NaN stays NaN. */
// @ts-ignore: decorator
@inline export function reluv(x: v128): v128 {
  return v128.bitselect(x, vs(0), v128.or(f32x4.gt(x, vs(0)), f32x4.ne(x, x)));
}

/**
 * The derivatives from the activated value y: tanh' = 1 - y^2 as (1 - y)(1 + y), accurate to
 * ~1 ulp also near |y| = 1 where 1 - y*y would lose up to ~10 bits; sigmoid' = y(1 - y).
 */
// @ts-ignore: decorator
@inline export function dtanhv(y: v128): v128 {
  return f32x4.mul(f32x4.sub(kf(ONE), y), f32x4.add(kf(ONE), y));
}
// @ts-ignore: decorator
@inline export function dsigmoidv(y: v128): v128 {
  return f32x4.mul(y, f32x4.sub(kf(ONE), y));
}

/**
 * The gate activation of LSTM and GRU: sigmoid (hard 0), or the hard sigmoid
 * clamp(alpha x + beta, 0, 1) (hard 1; NaN stays NaN: wasm's min / max propagate it).
 */
// @ts-ignore: decorator
@inline export function gatev(x: v128, hard: i32, alpha: f32, beta: f32): v128 {
  if (hard) return f32x4.min(f32x4.max(madd(x, vs(alpha), vs(beta)), vs(0)), vs(1));
  return sigmoidv(x);
}
/** The gate activation's derivative from the activated value y: hard sigmoid alpha where 0 < y < 1, else 0. */
// @ts-ignore: decorator
@inline export function dgatev(y: v128, hard: i32, alpha: f32): v128 {
  if (hard) return v128.and(vs(alpha), v128.and(f32x4.gt(y, vs(0)), f32x4.lt(y, vs(1))));
  return dsigmoidv(y);
}

/** Test hook: y[n] = exp / sigmoid / tanh (op 0, 1, 2) of x[n] with the vector code, n % 4 == 0. */
export function vecMath(op: i32, n: i32, x: usize, y: usize): void {
  for (let i = 0; i < n; i += 4) {
    const v = v128.load(at(x, i));
    v128.store(at(y, i), op == 0 ? expv(v) : op == 1 ? sigmoidv(v) : tanhv(v));
  }
}

// @ts-ignore: decorator
@inline function unaryv(op: i32, v: v128): v128 {
  return op == 0 ? tanhv(v) : op == 1 ? sigmoidv(v) : reluv(v);
}

// op: 0 tanh, 1 sigmoid, 2 relu. y[n] = op(x[n])
export function unaryForward(op: i32, n: i32, x: usize, y: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) put(at(y, i), unaryv(op, get(at(x, i), true)), true);
  for (; i < n; i++) put(at(y, i), unaryv(op, get(at(x, i), false)), false);
}

// dx + dy * op'(x or y): tanh (1 - y)(1 + y), sigmoid y(1 - y), relu x > 0 ? dy : 0
// @ts-ignore: decorator
@inline function unaryBackwardv(op: i32, x: v128, y: v128, dy: v128, dx: v128): v128 {
  if (op == 2) return f32x4.add(dx, v128.and(dy, f32x4.gt(x, vs(0))));
  return madd(dy, op == 0 ? dtanhv(y) : dsigmoidv(y), dx);
}

// @ts-ignore: decorator
@inline function unaryBackwardAt(op: i32, i: i32, x: usize, y: usize, dy: usize, dx: usize, full: bool): void {
  const r = unaryBackwardv(op, get(at(x, i), full), get(at(y, i), full), get(at(dy, i), full), get(at(dx, i), full));
  put(at(dx, i), r, full);
}

// dx[n] += dy[n] * op'(x or y)
export function unaryBackward(op: i32, n: i32, x: usize, y: usize, dy: usize, dx: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) unaryBackwardAt(op, i, x, y, dy, dx, true);
  for (; i < n; i++) unaryBackwardAt(op, i, x, y, dy, dx, false);
}
