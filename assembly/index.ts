// rnnkit WebAssembly kernels (AssemblyScript, --enable simd [,relaxed-simd], --runtime stub).
//
// Memory model: JavaScript owns the layout of linear memory (src/backends/wasm-core.ts keeps a
// growing arena above heapBase()) and passes byte offsets. Every buffer is float32 row-major
// unless it says i32. Nothing here allocates.
//
// Shapes use the letters of src/backends/backend.ts: T steps, B batch, I input, H hidden,
// P projection, R = P > 0 ? P : H, G = gates * H. "TB" = T * B rows (time-major).
// An i32 "tIdx" array [B] gives, for one processing step, the real time index t of every batch
// row (or -1 when that sequence is already finished); "prevT" [B] gives the time index of the
// step processed before (or -1 = the initial state h0/c0).

// ---------------------------------------------------------------------------------------------
// helpers

/** Static 4x8 float tile used to write partial micro-tiles. */
const TILE: usize = memory.data(128, 16);

/** First byte JS may use for its arena. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~(<usize>15);
}

/** 1 when built with relaxed SIMD (f32x4.relaxed_madd), else 0. */
export function isRelaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

// @ts-ignore: decorator
@inline function ld(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}
// @ts-ignore: decorator
@inline function st(p: usize, i: i32, v: f32): void {
  store<f32>(p + (<usize>i << 2), v);
}
// @ts-ignore: decorator
@inline function ldi(p: usize, i: i32): i32 {
  return load<i32>(p + (<usize>i << 2));
}
// @ts-ignore: decorator
@inline function at(p: usize, i: i32): usize {
  return p + (<usize>i << 2);
}
// @ts-ignore: decorator
@inline function madd(a: v128, b: v128, c: v128): v128 {
  // c + a * b
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(c, f32x4.mul(a, b));
  }
}
// @ts-ignore: decorator
@inline function sigmoidf(v: f32): f32 {
  return <f32>1 / (<f32>1 + Mathf.exp(-v));
}
// @ts-ignore: decorator
@inline function tanhf(v: f32): f32 {
  return Mathf.tanh(v);
}

// Vector exp / sigmoid / tanh (Cephes expf and tanhf polynomials, about 1-2 ulp in float32).
// @ts-ignore: decorator
@inline function vs(v: f32): v128 {
  return f32x4.splat(v);
}
// @ts-ignore: decorator
@inline function expv(x0: v128): v128 {
  // exp(x) = 2^n exp(r), n = round(x / ln2) by the 1.5 * 2^23 trick (no floor / float->int
  // conversion), r = x - n ln2 in two parts (Cody-Waite), exp(r) by Cephes' expf polynomial.
  const x = f32x4.min(f32x4.max(x0, vs(-87.33654475)), vs(88.3762626647949));
  const t = madd(x, vs(1.44269504088896341), vs(12582912.0));
  const fx = f32x4.sub(t, vs(12582912.0));
  let r = f32x4.sub(x, f32x4.mul(fx, vs(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(fx, vs(-2.12194440e-4)));
  const z = f32x4.mul(r, r);
  let y = vs(1.9875691500e-4);
  y = madd(y, r, vs(1.3981999507e-3));
  y = madd(y, r, vs(8.3334519073e-3));
  y = madd(y, r, vs(4.1665795894e-2));
  y = madd(y, r, vs(1.6666665459e-1));
  y = madd(y, r, vs(5.0000001201e-1));
  y = madd(y, z, f32x4.add(r, vs(1)));
  // bits(t) = 0x4B400000 + n; 2^n = (n + 127) << 23
  const pow2n = i32x4.shl(i32x4.add(t, i32x4.splat(127 - 0x4B400000)), 23);
  return f32x4.mul(y, pow2n);
}
// @ts-ignore: decorator
@inline function sigmoidv(x: v128): v128 {
  return f32x4.div(vs(1), f32x4.add(vs(1), expv(f32x4.neg(x))));
}
// @ts-ignore: decorator
@inline function tanhv(x: v128): v128 {
  const ax = f32x4.abs(x);
  // |x| >= 0.625: 1 - 2 / (exp(2|x|) + 1), sign restored
  const big = f32x4.sub(vs(1), f32x4.div(vs(2), f32x4.add(expv(f32x4.add(ax, ax)), vs(1))));
  const bigSigned = v128.or(big, v128.and(x, i32x4.splat(0x80000000)));
  // |x| < 0.625: x + x^3 P(x^2)
  const z = f32x4.mul(x, x);
  let p = vs(-5.70498872745e-3);
  p = madd(p, z, vs(2.06390887954e-2));
  p = madd(p, z, vs(-5.37397155531e-2));
  p = madd(p, z, vs(1.33314422036e-1));
  p = madd(p, z, vs(-3.33332819422e-1));
  const small = madd(f32x4.mul(p, z), x, x);
  return v128.bitselect(small, bigSigned, f32x4.lt(ax, vs(0.625)));
}
/** Test hook: y[n] = exp / sigmoid / tanh (op 0, 1, 2) of x[n] with the vector code, n % 4 == 0. */
export function vecMath(op: i32, n: i32, x: usize, y: usize): void {
  for (let i = 0; i < n; i += 4) {
    const v = v128.load(at(x, i));
    v128.store(at(y, i), op == 0 ? expv(v) : op == 1 ? sigmoidv(v) : tanhv(v));
  }
}

// ---------------------------------------------------------------------------------------------
// GEMM: C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C (row-major, leading dimensions)
//
// Goto-style: op(B) is packed once into 8-column panels per K block of KC (packB, so a weight
// used at every time step is packed once per sequence); a block of MC rows of op(A) is packed
// into 4-row panels; a 4x8 register tile of f32x4 accumulators (8 vectors) does the work.

const KC: i32 = 256;
const MC: i32 = 128;

/** Floats of scratch packB needs for op(B) [K, N]. */
export function packedBSize(K: i32, N: i32): i32 {
  return K * ((N + 7) & ~7);
}
/** Floats of scratch gemmPacked needs for its packed block of A. */
export function packedASize(): i32 {
  return MC * KC;
}

/**
 * Packs op(B) [K, N] (B is [K, ldb] or, when transB, [N, ldb]) into dst [K * Np] (Np = N rounded
 * up to 8): K blocks of KC rows, each a run of 8-column panels [kc, 8], zero padded.
 */
export function packB(transB: i32, K: i32, N: i32, B: usize, ldb: i32, dst: usize): void {
  const Np = (N + 7) & ~7;
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = min(KC, K - k0);
    const base = dst + ((<usize>k0 * <usize>Np) << 2);
    for (let j0 = 0; j0 < Np; j0 += 8) {
      const panel = base + ((<usize>j0 * <usize>kc) << 2);
      if (!transB) {
        if (j0 + 8 <= N) {
          for (let k = 0; k < kc; k++) {
            const src = B + ((<usize>(k0 + k) * <usize>ldb + <usize>j0) << 2);
            const row = panel + (<usize>k << 5);
            v128.store(row, v128.load(src));
            v128.store(row, v128.load(src, 16), 16);
          }
        } else {
          for (let k = 0; k < kc; k++) {
            const src = B + ((<usize>(k0 + k) * <usize>ldb + <usize>j0) << 2);
            const row = panel + (<usize>k << 5);
            for (let c = 0; c < 8; c++) st(row, c, j0 + c < N ? ld(src, c) : 0);
          }
        }
      } else if (j0 + 8 <= N) {
        // op(B)[k][j] = B[j * ldb + k]: two 4x4 transposes per 4 values of k
        const ldbb = <usize>ldb << 2;
        const s0 = B + ((<usize>j0 * <usize>ldb + <usize>k0) << 2);
        let k = 0;
        for (; k + 4 <= kc; k += 4) {
          const s = s0 + (<usize>k << 2);
          const r0 = v128.load(s);
          const r1 = v128.load(s + ldbb);
          const r2 = v128.load(s + 2 * ldbb);
          const r3 = v128.load(s + 3 * ldbb);
          const r4 = v128.load(s + 4 * ldbb);
          const r5 = v128.load(s + 5 * ldbb);
          const r6 = v128.load(s + 6 * ldbb);
          const r7 = v128.load(s + 7 * ldbb);
          const t0 = f32x4.shuffle(r0, r1, 0, 4, 1, 5);
          const t1 = f32x4.shuffle(r0, r1, 2, 6, 3, 7);
          const t2 = f32x4.shuffle(r2, r3, 0, 4, 1, 5);
          const t3 = f32x4.shuffle(r2, r3, 2, 6, 3, 7);
          const u0 = f32x4.shuffle(r4, r5, 0, 4, 1, 5);
          const u1 = f32x4.shuffle(r4, r5, 2, 6, 3, 7);
          const u2 = f32x4.shuffle(r6, r7, 0, 4, 1, 5);
          const u3 = f32x4.shuffle(r6, r7, 2, 6, 3, 7);
          const row = panel + (<usize>k << 5);
          v128.store(row, f32x4.shuffle(t0, t2, 0, 1, 4, 5));
          v128.store(row, f32x4.shuffle(u0, u2, 0, 1, 4, 5), 16);
          v128.store(row, f32x4.shuffle(t0, t2, 2, 3, 6, 7), 32);
          v128.store(row, f32x4.shuffle(u0, u2, 2, 3, 6, 7), 48);
          v128.store(row, f32x4.shuffle(t1, t3, 0, 1, 4, 5), 64);
          v128.store(row, f32x4.shuffle(u1, u3, 0, 1, 4, 5), 80);
          v128.store(row, f32x4.shuffle(t1, t3, 2, 3, 6, 7), 96);
          v128.store(row, f32x4.shuffle(u1, u3, 2, 3, 6, 7), 112);
        }
        for (; k < kc; k++) {
          for (let c = 0; c < 8; c++) st(panel, k * 8 + c, load<f32>(s0 + <usize>c * ldbb + (<usize>k << 2)));
        }
      } else {
        // op(B)[k][j] = B[j * ldb + k], last partial panel
        for (let c = 0; c < 8; c++) {
          const j = j0 + c;
          if (j < N) {
            const src = B + ((<usize>j * <usize>ldb + <usize>k0) << 2);
            for (let k = 0; k < kc; k++) st(panel, k * 8 + c, ld(src, k));
          } else {
            for (let k = 0; k < kc; k++) st(panel, k * 8 + c, 0);
          }
        }
      }
    }
  }
}

/** Packs rows [i0, i0+mc) x cols [k0, k0+kc) of op(A) into 4-row panels [kc, 4], zero padded. */
function packA(transA: i32, A: usize, lda: i32, i0: i32, mc: i32, k0: i32, kc: i32, dst: usize): void {
  for (let ir = 0; ir < mc; ir += 4) {
    const panel = dst + ((<usize>ir * <usize>kc) << 2);
    const mr = min(4, mc - ir);
    if (!transA) {
      for (let r = 0; r < 4; r++) {
        if (r < mr) {
          const src = A + ((<usize>(i0 + ir + r) * <usize>lda + <usize>k0) << 2);
          for (let k = 0; k < kc; k++) st(panel, k * 4 + r, ld(src, k));
        } else {
          for (let k = 0; k < kc; k++) st(panel, k * 4 + r, 0);
        }
      }
    } else {
      // op(A)[i][k] = A[k * lda + i]
      if (mr == 4) {
        for (let k = 0; k < kc; k++) {
          const src = A + ((<usize>(k0 + k) * <usize>lda + <usize>(i0 + ir)) << 2);
          v128.store(panel + (<usize>k << 4), v128.load(src));
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const src = A + ((<usize>(k0 + k) * <usize>lda + <usize>(i0 + ir)) << 2);
          for (let r = 0; r < 4; r++) st(panel, k * 4 + r, r < mr ? ld(src, r) : 0);
        }
      }
    }
  }
}

/** C[mr<=4, nr<=8] += alpha * Apanel[kc,4]^T-ish @ Bpanel[kc,8]: the 4x8 register tile. */
function kernel4x8(kc: i32, ap: usize, bp: usize, c: usize, ldc: i32, alpha: f32, mr: i32, nr: i32): void {
  let c0a = f32x4.splat(0);
  let c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a, c3a = c0a, c3b = c0a;
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c0a = madd(a, b0, c0a);
    c0b = madd(a, b1, c0b);
    a = v128.load32_splat(ap, 4);
    c1a = madd(a, b0, c1a);
    c1b = madd(a, b1, c1b);
    a = v128.load32_splat(ap, 8);
    c2a = madd(a, b0, c2a);
    c2b = madd(a, b1, c2b);
    a = v128.load32_splat(ap, 12);
    c3a = madd(a, b0, c3a);
    c3b = madd(a, b1, c3b);
    ap += 16;
    bp += 32;
  }
  const ldcb = <usize>ldc << 2;
  if (mr == 4 && nr == 8) {
    const av = f32x4.splat(alpha);
    let p = c;
    v128.store(p, madd(av, c0a, v128.load(p)));
    v128.store(p, madd(av, c0b, v128.load(p, 16)), 16);
    p += ldcb;
    v128.store(p, madd(av, c1a, v128.load(p)));
    v128.store(p, madd(av, c1b, v128.load(p, 16)), 16);
    p += ldcb;
    v128.store(p, madd(av, c2a, v128.load(p)));
    v128.store(p, madd(av, c2b, v128.load(p, 16)), 16);
    p += ldcb;
    v128.store(p, madd(av, c3a, v128.load(p)));
    v128.store(p, madd(av, c3b, v128.load(p, 16)), 16);
  } else {
    v128.store(TILE, c0a);
    v128.store(TILE, c0b, 16);
    v128.store(TILE, c1a, 32);
    v128.store(TILE, c1b, 48);
    v128.store(TILE, c2a, 64);
    v128.store(TILE, c2b, 80);
    v128.store(TILE, c3a, 96);
    v128.store(TILE, c3b, 112);
    for (let r = 0; r < mr; r++) {
      const row = c + <usize>r * ldcb;
      for (let j = 0; j < nr; j++) st(row, j, ld(row, j) + alpha * ld(TILE, r * 8 + j));
    }
  }
}

/** c[0, nr) += alpha * (a0 | a1): the store of a 1x8 tile (nr < 8 goes through TILE). */
@inline function addTile1x8(c: usize, a0: v128, a1: v128, alpha: f32, nr: i32): void {
  if (nr == 8) {
    const av = f32x4.splat(alpha);
    v128.store(c, madd(av, a0, v128.load(c)));
    v128.store(c, madd(av, a1, v128.load(c, 16)), 16);
  } else {
    v128.store(TILE, a0);
    v128.store(TILE, a1, 16);
    for (let j = 0; j < nr; j++) st(c, j, ld(c, j) + alpha * ld(TILE, j));
  }
}

/** One row of a 4-row A panel (ap already offset to the row) times a B panel: 1x8 tile. */
function kernel1x8(kc: i32, ap: usize, bp: usize, c: usize, alpha: f32, nr: i32): void {
  let a0 = f32x4.splat(0);
  let a1 = a0, e0 = a0, e1 = a0;
  let k = 0;
  for (; k + 1 < kc; k += 2) {
    let a = v128.load32_splat(ap);
    a0 = madd(a, v128.load(bp), a0);
    a1 = madd(a, v128.load(bp, 16), a1);
    a = v128.load32_splat(ap, 16);
    e0 = madd(a, v128.load(bp, 32), e0);
    e1 = madd(a, v128.load(bp, 48), e1);
    ap += 32;
    bp += 64;
  }
  if (k < kc) {
    const a = v128.load32_splat(ap);
    a0 = madd(a, v128.load(bp), a0);
    a1 = madd(a, v128.load(bp, 16), a1);
  }
  a0 = f32x4.add(a0, e0);
  a1 = f32x4.add(a1, e1);
  addTile1x8(c, a0, a1, alpha, nr);
}

/** C = beta * C over [M, N] with leading dimension ldc; beta = 0 ignores C's contents. */
function scaleC(M: i32, N: i32, beta: f32, C: usize, ldc: i32): void {
  if (beta == 1) return;
  for (let i = 0; i < M; i++) {
    const row = C + ((<usize>i * <usize>ldc) << 2);
    if (beta == 0) memory.fill(row, 0, <usize>N << 2);
    else for (let j = 0; j < N; j++) st(row, j, beta * ld(row, j));
  }
}

/** C[1, N] += alpha * a[K] @ Bp (packed), straight from a: the streaming (batch 1) step. */
function gemvPacked(N: i32, K: i32, alpha: f32, a: usize, Bp: usize, C: usize): void {
  const Np = (N + 7) & ~7;
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = min(KC, K - k0);
    const bBase = Bp + ((<usize>k0 * <usize>Np) << 2);
    const ak = a + (<usize>k0 << 2);
    let j0 = 0;
    // two panels (16 columns) at a time: 4 independent accumulators
    for (; j0 + 16 <= N; j0 += 16) {
      let bp = bBase + ((<usize>j0 * <usize>kc) << 2);
      let bq = bp + ((<usize>kc) << 5);
      let s0 = f32x4.splat(0);
      let s1 = s0, s2 = s0, s3 = s0;
      for (let k = 0; k < kc; k++) {
        const av = v128.load32_splat(ak + (<usize>k << 2));
        s0 = madd(av, v128.load(bp), s0);
        s1 = madd(av, v128.load(bp, 16), s1);
        s2 = madd(av, v128.load(bq), s2);
        s3 = madd(av, v128.load(bq, 16), s3);
        bp += 32;
        bq += 32;
      }
      const c = C + (<usize>j0 << 2);
      const al = f32x4.splat(alpha);
      v128.store(c, madd(al, s0, v128.load(c)));
      v128.store(c, madd(al, s1, v128.load(c, 16)), 16);
      v128.store(c, madd(al, s2, v128.load(c, 32)), 32);
      v128.store(c, madd(al, s3, v128.load(c, 48)), 48);
    }
    for (; j0 < N; j0 += 8) {
      const nr = min(8, N - j0);
      kernel1x8NoPack(kc, ak, bBase + ((<usize>j0 * <usize>kc) << 2), C + (<usize>j0 << 2), alpha, nr);
    }
  }
}

/** kernel1x8 with A read contiguously (stride 4 bytes) instead of from a 4-row panel. */
function kernel1x8NoPack(kc: i32, ap: usize, bp: usize, c: usize, alpha: f32, nr: i32): void {
  let a0 = f32x4.splat(0);
  let a1 = a0;
  for (let k = 0; k < kc; k++) {
    const a = v128.load32_splat(ap + (<usize>k << 2));
    a0 = madd(a, v128.load(bp), a0);
    a1 = madd(a, v128.load(bp, 16), a1);
    bp += 32;
  }
  addTile1x8(c, a0, a1, alpha, nr);
}

/**
 * C[M,N] = alpha * op(A)[M,K] @ Bp + beta * C, with Bp = packB(op(B) [K,N]).
 * Ap: scratch of packedASize() floats.
 */
export function gemmPacked(
  transA: i32, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32, Bp: usize,
  beta: f32, C: usize, ldc: i32, Ap: usize,
): void {
  scaleC(M, N, beta, C, ldc);
  if (M == 0 || N == 0 || K == 0 || alpha == 0) return;
  if (M == 1 && !transA) {
    gemvPacked(N, K, alpha, A, Bp, C);
    return;
  }
  const Np = (N + 7) & ~7;
  const ldcb = <usize>ldc << 2;
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = min(KC, K - k0);
    const bBase = Bp + ((<usize>k0 * <usize>Np) << 2);
    for (let i0 = 0; i0 < M; i0 += MC) {
      const mc = min(MC, M - i0);
      packA(transA, A, lda, i0, mc, k0, kc, Ap);
      for (let j0 = 0; j0 < N; j0 += 8) {
        const nr = min(8, N - j0);
        const bPanel = bBase + ((<usize>j0 * <usize>kc) << 2);
        for (let ir = 0; ir < mc; ir += 4) {
          const mr = min(4, mc - ir);
          const aPanel = Ap + ((<usize>ir * <usize>kc) << 2);
          const cp = C + <usize>(i0 + ir) * ldcb + (<usize>j0 << 2);
          if (mr >= 3) {
            kernel4x8(kc, aPanel, bPanel, cp, ldc, alpha, mr, nr);
          } else {
            for (let r = 0; r < mr; r++) {
              kernel1x8(kc, aPanel + (<usize>r << 2), bPanel, cp + <usize>r * ldcb, alpha, nr);
            }
          }
        }
      }
    }
  }
}

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * C[M,N] = alpha * A[M,K] @ op(B)[K,N] + beta * C without packing, for a few rows (M <= 4:
 * streaming, batch 1): transB = dot products of A's rows with B's rows; else rows of 32 columns
 * of C held in registers while k runs.
 */
export function gemmSmallM(
  transB: i32, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32, B: usize, ldb: i32,
  beta: f32, C: usize, ldc: i32,
): void {
  scaleC(M, N, beta, C, ldc);
  if (M == 0 || N == 0 || K == 0 || alpha == 0) return;
  const ldab = <usize>lda << 2;
  const ldbb = <usize>ldb << 2;
  const ldcb = <usize>ldc << 2;
  if (transB) {
    let n = 0;
    for (; n + 4 <= N; n += 4) {
      const b0 = B + <usize>n * ldbb;
      const b1 = b0 + ldbb;
      const b2 = b1 + ldbb;
      const b3 = b2 + ldbb;
      for (let m = 0; m < M; m++) {
        const a = A + <usize>m * ldab;
        let s0 = f32x4.splat(0);
        let s1 = s0, s2 = s0, s3 = s0;
        let k = 0;
        for (; k + 4 <= K; k += 4) {
          const o = <usize>k << 2;
          const av = v128.load(a + o);
          s0 = madd(av, v128.load(b0 + o), s0);
          s1 = madd(av, v128.load(b1 + o), s1);
          s2 = madd(av, v128.load(b2 + o), s2);
          s3 = madd(av, v128.load(b3 + o), s3);
        }
        let e0 = hsum(s0), e1 = hsum(s1), e2 = hsum(s2), e3 = hsum(s3);
        for (; k < K; k++) {
          const av = ld(a, k);
          e0 += av * ld(b0, k);
          e1 += av * ld(b1, k);
          e2 += av * ld(b2, k);
          e3 += av * ld(b3, k);
        }
        const c = C + <usize>m * ldcb + (<usize>n << 2);
        st(c, 0, ld(c, 0) + alpha * e0);
        st(c, 1, ld(c, 1) + alpha * e1);
        st(c, 2, ld(c, 2) + alpha * e2);
        st(c, 3, ld(c, 3) + alpha * e3);
      }
    }
    for (; n < N; n++) {
      const b0 = B + <usize>n * ldbb;
      for (let m = 0; m < M; m++) {
        const a = A + <usize>m * ldab;
        let s0 = f32x4.splat(0);
        let k = 0;
        for (; k + 4 <= K; k += 4) s0 = madd(v128.load(a + (<usize>k << 2)), v128.load(b0 + (<usize>k << 2)), s0);
        let e0 = hsum(s0);
        for (; k < K; k++) e0 += ld(a, k) * ld(b0, k);
        const c = C + <usize>m * ldcb + (<usize>n << 2);
        st(c, 0, ld(c, 0) + alpha * e0);
      }
    }
  } else {
    let n = 0;
    if (M >= 3) {
      // 4x8 register tiles read straight from B's rows (rows of A in groups of up to 4)
      for (; n + 8 <= N; n += 8) {
        for (let m0 = 0; m0 < M; m0 += 4) {
          const mr = min(4, M - m0);
          const a0 = A + <usize>m0 * ldab;
          const a1 = mr > 1 ? a0 + ldab : a0;
          const a2 = mr > 2 ? a1 + ldab : a1;
          const a3 = mr > 3 ? a2 + ldab : a2;
          let c0a = f32x4.splat(0);
          let c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a, c3a = c0a, c3b = c0a;
          let b = B + (<usize>n << 2);
          for (let k = 0; k < K; k++) {
            const o = <usize>k << 2;
            const b0 = v128.load(b);
            const b1 = v128.load(b, 16);
            let av = v128.load32_splat(a0 + o);
            c0a = madd(av, b0, c0a);
            c0b = madd(av, b1, c0b);
            av = v128.load32_splat(a1 + o);
            c1a = madd(av, b0, c1a);
            c1b = madd(av, b1, c1b);
            av = v128.load32_splat(a2 + o);
            c2a = madd(av, b0, c2a);
            c2b = madd(av, b1, c2b);
            av = v128.load32_splat(a3 + o);
            c3a = madd(av, b0, c3a);
            c3b = madd(av, b1, c3b);
            b += ldbb;
          }
          const al = f32x4.splat(alpha);
          let c = C + <usize>m0 * ldcb + (<usize>n << 2);
          v128.store(c, madd(al, c0a, v128.load(c)));
          v128.store(c, madd(al, c0b, v128.load(c, 16)), 16);
          if (mr > 1) {
            c += ldcb;
            v128.store(c, madd(al, c1a, v128.load(c)));
            v128.store(c, madd(al, c1b, v128.load(c, 16)), 16);
          }
          if (mr > 2) {
            c += ldcb;
            v128.store(c, madd(al, c2a, v128.load(c)));
            v128.store(c, madd(al, c2b, v128.load(c, 16)), 16);
          }
          if (mr > 3) {
            c += ldcb;
            v128.store(c, madd(al, c3a, v128.load(c)));
            v128.store(c, madd(al, c3b, v128.load(c, 16)), 16);
          }
        }
      }
    }
    for (; n + 32 <= N; n += 32) {
      for (let m = 0; m < M; m++) {
        const a = A + <usize>m * ldab;
        let c0 = f32x4.splat(0);
        let c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
        let b = B + (<usize>n << 2);
        for (let k = 0; k < K; k++) {
          const av = v128.load32_splat(a + (<usize>k << 2));
          c0 = madd(av, v128.load(b), c0);
          c1 = madd(av, v128.load(b, 16), c1);
          c2 = madd(av, v128.load(b, 32), c2);
          c3 = madd(av, v128.load(b, 48), c3);
          c4 = madd(av, v128.load(b, 64), c4);
          c5 = madd(av, v128.load(b, 80), c5);
          c6 = madd(av, v128.load(b, 96), c6);
          c7 = madd(av, v128.load(b, 112), c7);
          b += ldbb;
        }
        const c = C + <usize>m * ldcb + (<usize>n << 2);
        const al = f32x4.splat(alpha);
        v128.store(c, madd(al, c0, v128.load(c)));
        v128.store(c, madd(al, c1, v128.load(c, 16)), 16);
        v128.store(c, madd(al, c2, v128.load(c, 32)), 32);
        v128.store(c, madd(al, c3, v128.load(c, 48)), 48);
        v128.store(c, madd(al, c4, v128.load(c, 64)), 64);
        v128.store(c, madd(al, c5, v128.load(c, 80)), 80);
        v128.store(c, madd(al, c6, v128.load(c, 96)), 96);
        v128.store(c, madd(al, c7, v128.load(c, 112)), 112);
      }
    }
    for (; n + 4 <= N; n += 4) {
      for (let m = 0; m < M; m++) {
        const a = A + <usize>m * ldab;
        let c0 = f32x4.splat(0);
        let b = B + (<usize>n << 2);
        for (let k = 0; k < K; k++) {
          c0 = madd(v128.load32_splat(a + (<usize>k << 2)), v128.load(b), c0);
          b += ldbb;
        }
        const c = C + <usize>m * ldcb + (<usize>n << 2);
        v128.store(c, madd(f32x4.splat(alpha), c0, v128.load(c)));
      }
    }
    for (; n < N; n++) {
      for (let m = 0; m < M; m++) {
        const a = A + <usize>m * ldab;
        let e: f32 = 0;
        for (let k = 0; k < K; k++) e += ld(a, k) * ld(B, k * ldb + n);
        const c = C + <usize>m * ldcb + (<usize>n << 2);
        st(c, 0, ld(c, 0) + alpha * e);
      }
    }
  }
}

/** Full GEMM; scratch holds packedBSize(K, N) + packedASize() floats. */
export function gemm(
  transA: i32, transB: i32, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32,
  B: usize, ldb: i32, beta: f32, C: usize, ldc: i32, scratch: usize,
): void {
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0) {
    scaleC(M, N, beta, C, ldc);
    return;
  }
  if (!transA && M <= 4) {
    gemmSmallM(transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  packB(transB, K, N, B, ldb, scratch);
  gemmPacked(transA, M, N, K, alpha, A, lda, scratch, beta, C, ldc, scratch + (<usize>packedBSize(K, N) << 2));
}

/** The plain triple loop, kept beside the fast GEMM for testing and as the readable form. */
export function gemmNaive(
  transA: i32, transB: i32, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32,
  B: usize, ldb: i32, beta: f32, C: usize, ldc: i32,
): void {
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc: f32 = 0;
      for (let k = 0; k < K; k++) {
        const av = transA ? ld(A, k * lda + m) : ld(A, m * lda + k);
        const bv = transB ? ld(B, n * ldb + k) : ld(B, k * ldb + n);
        acc += av * bv;
      }
      const ci = m * ldc + n;
      st(C, ci, alpha * acc + (beta == 0 ? <f32>0 : beta * ld(C, ci)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sequence kernels: helpers of one direction of one layer. The driver (wasm-core.ts) runs
//   forward:  XP[TB,G] = bias rows (fillBias) + x[TB,I] @ wIh^T  (one GEMM for all steps)
//             per step: HP[B,G] = h[B,R] @ wHh^T (one GEMM, all gates), *StepForward (fused
//             pointwise), LSTM P>0: proj[B,P] = hRaw[B,H] @ wHr^T, scatterRows
//   backward: per step (last to first): addDy, LSTM P>0: saveRows(dh), dhRaw = dh @ wHr,
//             *StepBackward (pointwise grads), dh[B,R] += dGh[B,G] @ wHh (one GEMM)
//             after the loop: dx += dGi @ wIh, dWIh += dGi^T @ x, dWHh += dGh^T @ Hprev,
//             dB* += column sums, dWHr += dhAll^T @ hRaw (one GEMM each, all steps).

/**
 * XP[rows, G] = bIh + bHh, except that the GRU's n gate (columns >= 2H) gets bIh only (its
 * b_hn is applied inside r * (W_hn h + b_hn)). Null biases are 0.
 */
export function fillBias(rows: i32, G: i32, bIh: usize, bHh: usize, gruH: i32, XP: usize): void {
  const row0 = XP;
  for (let g = 0; g < G; g++) {
    let v: f32 = bIh ? ld(bIh, g) : 0;
    if (bHh && (gruH == 0 || g < 2 * gruH)) v += ld(bHh, g);
    st(row0, g, v);
  }
  const bytes = <usize>G << 2;
  for (let r = 1; r < rows; r++) memory.copy(XP + <usize>r * bytes, row0, bytes);
}

// LSTM step forward. xp [TB,4H] (row t*B+b), hp [B,4H], c [B,H] in/out,
// hOut [B,H] (h = o*tanh(c), leading dim ldh), hSave [TB,H] or 0 (row t*B+b),
// gates / cells saved at row (saveFull ? t*B+b : b): gates [*,4H] (i,f,g,o), cells [*,H].
export function lstmStepForward(
  B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, c: usize, hOut: usize, ldh: i32,
  hSave: usize, gates: usize, cells: usize, saveFull: i32,
): void {
  const G = 4 * H;
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) continue;
    const row = t * B + b;
    const sr = saveFull ? row : b;
    const xr = at(xp, row * G);
    const hr = at(hp, b * G);
    const gr = at(gates, sr * G);
    const cr = at(c, b * H);
    const cs = at(cells, sr * H);
    const ho = at(hOut, b * ldh);
    const hs: usize = hSave ? at(hSave, row * H) : 0;
    let j = 0;
    for (; j + 4 <= H; j += 4) {
      const ig = sigmoidv(f32x4.add(v128.load(at(xr, j)), v128.load(at(hr, j))));
      const fg = sigmoidv(f32x4.add(v128.load(at(xr, H + j)), v128.load(at(hr, H + j))));
      const gg = tanhv(f32x4.add(v128.load(at(xr, 2 * H + j)), v128.load(at(hr, 2 * H + j))));
      const og = sigmoidv(f32x4.add(v128.load(at(xr, 3 * H + j)), v128.load(at(hr, 3 * H + j))));
      v128.store(at(gr, j), ig);
      v128.store(at(gr, H + j), fg);
      v128.store(at(gr, 2 * H + j), gg);
      v128.store(at(gr, 3 * H + j), og);
      const cv = madd(fg, v128.load(at(cr, j)), f32x4.mul(ig, gg));
      v128.store(at(cr, j), cv);
      v128.store(at(cs, j), cv);
      const h = f32x4.mul(og, tanhv(cv));
      v128.store(at(ho, j), h);
      if (hs) v128.store(at(hs, j), h);
    }
    for (; j < H; j++) {
      const ig = sigmoidf(ld(xr, j) + ld(hr, j));
      const fg = sigmoidf(ld(xr, H + j) + ld(hr, H + j));
      const gg = tanhf(ld(xr, 2 * H + j) + ld(hr, 2 * H + j));
      const og = sigmoidf(ld(xr, 3 * H + j) + ld(hr, 3 * H + j));
      st(gr, j, ig);
      st(gr, H + j, fg);
      st(gr, 2 * H + j, gg);
      st(gr, 3 * H + j, og);
      const cv = fg * ld(cr, j) + ig * gg;
      st(cr, j, cv);
      st(cs, j, cv);
      const h = og * tanhf(cv);
      st(ho, j, h);
      if (hs) st(hs, j, h);
    }
  }
}

// GRU step forward (PyTorch reset-after): xp [TB,3H] (includes b_ir+b_hr, b_iz+b_hz, b_in),
// hp [B,3H] = W_hh h, bHhN = b_hh + 2H or 0, h [B,H] in/out, states [TB,H] (row t*B+b),
// gates [*,3H] r,z,n and cells [*,H] = W_hn h + b_hn at row (saveFull ? t*B+b : b).
export function gruStepForward(
  B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, bHhN: usize, h: usize, states: usize,
  gates: usize, cells: usize, saveFull: i32,
): void {
  const G = 3 * H;
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) continue;
    const row = t * B + b;
    const sr = saveFull ? row : b;
    const xr = at(xp, row * G);
    const hr = at(hp, b * G);
    const gr = at(gates, sr * G);
    const cs = at(cells, sr * H);
    const hb = at(h, b * H);
    const so = at(states, row * H);
    let j = 0;
    for (; j + 4 <= H; j += 4) {
      const rg = sigmoidv(f32x4.add(v128.load(at(xr, j)), v128.load(at(hr, j))));
      const zg = sigmoidv(f32x4.add(v128.load(at(xr, H + j)), v128.load(at(hr, H + j))));
      let hn = v128.load(at(hr, 2 * H + j));
      if (bHhN) hn = f32x4.add(hn, v128.load(at(bHhN, j)));
      const ng = tanhv(madd(rg, hn, v128.load(at(xr, 2 * H + j))));
      v128.store(at(gr, j), rg);
      v128.store(at(gr, H + j), zg);
      v128.store(at(gr, 2 * H + j), ng);
      v128.store(at(cs, j), hn);
      // (1 - z) n + z h = n + z (h - n)
      const hv = madd(zg, f32x4.sub(v128.load(at(hb, j)), ng), ng);
      v128.store(at(hb, j), hv);
      v128.store(at(so, j), hv);
    }
    for (; j < H; j++) {
      const rg = sigmoidf(ld(xr, j) + ld(hr, j));
      const zg = sigmoidf(ld(xr, H + j) + ld(hr, H + j));
      const hn: f32 = ld(hr, 2 * H + j) + (bHhN ? ld(bHhN, j) : <f32>0);
      const ng = tanhf(ld(xr, 2 * H + j) + rg * hn);
      st(gr, j, rg);
      st(gr, H + j, zg);
      st(gr, 2 * H + j, ng);
      st(cs, j, hn);
      const hv = (<f32>1 - zg) * ng + zg * ld(hb, j);
      st(hb, j, hv);
      st(so, j, hv);
    }
  }
}

// RNN step forward: h = act(xp + hp); h [B,H] in/out, states [TB,H] row t*B+b.
export function rnnStepForward(B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, relu: i32, h: usize, states: usize): void {
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) continue;
    const row = t * B + b;
    const xr = at(xp, row * H);
    const hr = at(hp, b * H);
    const hb = at(h, b * H);
    const so = at(states, row * H);
    let j = 0;
    for (; j + 4 <= H; j += 4) {
      const v = f32x4.add(v128.load(at(xr, j)), v128.load(at(hr, j)));
      const hv = relu ? f32x4.max(v, vs(0)) : tanhv(v);
      v128.store(at(hb, j), hv);
      v128.store(at(so, j), hv);
    }
    for (; j < H; j++) {
      const v = ld(xr, j) + ld(hr, j);
      const hv: f32 = relu ? (v > 0 ? v : <f32>0) : tanhf(v);
      st(hb, j, hv);
      st(so, j, hv);
    }
  }
}

/** For active rows b: dst[b] (dst [B,n], leading n) and all[t*B+b] (or 0) = src[b] ([B,n]). */
export function scatterRows(B: i32, n: i32, tIdx: usize, src: usize, dst: usize, all: usize): void {
  const bytes = <usize>n << 2;
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) continue;
    if (dst) memory.copy(dst + <usize>b * bytes, src + <usize>b * bytes, bytes);
    if (all) memory.copy(all + <usize>(t * B + b) * bytes, src + <usize>b * bytes, bytes);
  }
}

/** dh[b, :R] += dy[(t*B+b)*dyStride + dyOffset + :R] for active rows. */
export function addDy(B: i32, R: i32, tIdx: usize, dh: usize, dy: usize, dyStride: i32, dyOffset: i32): void {
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) continue;
    const src = at(dy, (t * B + b) * dyStride + dyOffset);
    const d = at(dh, b * R);
    for (let r = 0; r < R; r++) st(d, r, ld(d, r) + ld(src, r));
  }
}

// LSTM step backward. dhIn [B,H] = gradient of o*tanh(c) (dh itself when P = 0), dhState [B,R]
// (set to 0 on active rows: the recurrent GEMM adds into it next), dc [B,H] in/out,
// gates [TB,4H], cells [TB,H], c0 [B,H] or 0; out dG [B,4H] (zero on inactive rows) and
// dGall [TB,4H] at row t*B+b.
export function lstmStepBackward(
  B: i32, H: i32, R: i32, tIdx: usize, prevT: usize, dhIn: usize, dhState: usize, dc: usize,
  gates: usize, cells: usize, c0: usize, dG: usize, dGall: usize,
): void {
  const G = 4 * H;
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    const dgs = at(dG, b * G);
    if (t < 0) {
      memory.fill(dgs, 0, <usize>G << 2);
      continue;
    }
    const row = t * B + b;
    const pt = ldi(prevT, b);
    const gr = at(gates, row * G);
    const cr = at(cells, row * H);
    const cp: usize = pt >= 0 ? at(cells, (pt * B + b) * H) : (c0 ? at(c0, b * H) : 0);
    const dga = at(dGall, row * G);
    const dhr = at(dhIn, b * H);
    const dcr = at(dc, b * H);
    let j = 0;
    const one = vs(1);
    for (; j + 4 <= H; j += 4) {
      const ig = v128.load(at(gr, j));
      const fg = v128.load(at(gr, H + j));
      const gg = v128.load(at(gr, 2 * H + j));
      const og = v128.load(at(gr, 3 * H + j));
      const tc = tanhv(v128.load(at(cr, j)));
      const dh = v128.load(at(dhr, j));
      const cPrev = cp ? v128.load(at(cp, j)) : vs(0);
      const dcv = madd(f32x4.mul(dh, og), f32x4.sub(one, f32x4.mul(tc, tc)), v128.load(at(dcr, j)));
      const di = f32x4.mul(f32x4.mul(dcv, gg), f32x4.mul(ig, f32x4.sub(one, ig)));
      const df = f32x4.mul(f32x4.mul(dcv, cPrev), f32x4.mul(fg, f32x4.sub(one, fg)));
      const dg = f32x4.mul(f32x4.mul(dcv, ig), f32x4.sub(one, f32x4.mul(gg, gg)));
      const dO = f32x4.mul(f32x4.mul(dh, tc), f32x4.mul(og, f32x4.sub(one, og)));
      v128.store(at(dgs, j), di);
      v128.store(at(dgs, H + j), df);
      v128.store(at(dgs, 2 * H + j), dg);
      v128.store(at(dgs, 3 * H + j), dO);
      v128.store(at(dga, j), di);
      v128.store(at(dga, H + j), df);
      v128.store(at(dga, 2 * H + j), dg);
      v128.store(at(dga, 3 * H + j), dO);
      v128.store(at(dcr, j), f32x4.mul(dcv, fg));
    }
    for (; j < H; j++) {
      const ig = ld(gr, j);
      const fg = ld(gr, H + j);
      const gg = ld(gr, 2 * H + j);
      const og = ld(gr, 3 * H + j);
      const tc = tanhf(ld(cr, j));
      const dh = ld(dhr, j);
      const cPrev: f32 = cp ? ld(cp, j) : 0;
      const dcv = ld(dcr, j) + dh * og * (<f32>1 - tc * tc);
      const di = dcv * gg * ig * (<f32>1 - ig);
      const df = dcv * cPrev * fg * (<f32>1 - fg);
      const dg = dcv * ig * (<f32>1 - gg * gg);
      const dO = dh * tc * og * (<f32>1 - og);
      st(dgs, j, di);
      st(dgs, H + j, df);
      st(dgs, 2 * H + j, dg);
      st(dgs, 3 * H + j, dO);
      st(dga, j, di);
      st(dga, H + j, df);
      st(dga, 2 * H + j, dg);
      st(dga, 3 * H + j, dO);
      st(dcr, j, dcv * fg);
    }
    memory.fill(at(dhState, b * R), 0, <usize>R << 2);
  }
}

// GRU step backward. dh [B,H] in/out (becomes the direct path dh * z on active rows),
// gates [TB,3H], cells [TB,H] (W_hn h + b_hn), states [TB,H], h0 [B,H] or 0;
// out dGh [B,3H] step (zero on inactive rows), dGiAll / dGhAll [TB,3H] at row t*B+b.
export function gruStepBackward(
  B: i32, H: i32, tIdx: usize, prevT: usize, dh: usize, gates: usize, cells: usize,
  states: usize, h0: usize, dGh: usize, dGiAll: usize, dGhAll: usize,
): void {
  const G = 3 * H;
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    const dgs = at(dGh, b * G);
    if (t < 0) {
      memory.fill(dgs, 0, <usize>G << 2);
      continue;
    }
    const row = t * B + b;
    const pt = ldi(prevT, b);
    const gr = at(gates, row * G);
    const cr = at(cells, row * H);
    const hp: usize = pt >= 0 ? at(states, (pt * B + b) * H) : (h0 ? at(h0, b * H) : 0);
    const dgi = at(dGiAll, row * G);
    const dgh = at(dGhAll, row * G);
    const dhb = at(dh, b * H);
    for (let j = 0; j < H; j++) {
      const rg = ld(gr, j);
      const zg = ld(gr, H + j);
      const ng = ld(gr, 2 * H + j);
      const hn = ld(cr, j);
      const hPrev: f32 = hp ? ld(hp, j) : 0;
      const d = ld(dhb, j);
      const dn = d * (<f32>1 - zg) * (<f32>1 - ng * ng);
      const dz = d * (hPrev - ng) * zg * (<f32>1 - zg);
      const dr = dn * hn * rg * (<f32>1 - rg);
      st(dgi, j, dr);
      st(dgi, H + j, dz);
      st(dgi, 2 * H + j, dn);
      st(dgh, j, dr);
      st(dgh, H + j, dz);
      st(dgh, 2 * H + j, dn * rg);
      st(dgs, j, dr);
      st(dgs, H + j, dz);
      st(dgs, 2 * H + j, dn * rg);
      st(dhb, j, d * zg);
    }
  }
}

// RNN step backward: dh [B,H] in/out (0 on active rows), states [TB,H] (h = act(pre)),
// out dG [B,H] step (zero on inactive rows), dGall [TB,H].
export function rnnStepBackward(
  B: i32, H: i32, tIdx: usize, relu: i32, dh: usize, states: usize, dG: usize, dGall: usize,
): void {
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    const dgs = at(dG, b * H);
    if (t < 0) {
      memory.fill(dgs, 0, <usize>H << 2);
      continue;
    }
    const row = t * B + b;
    const hr = at(states, row * H);
    const dga = at(dGall, row * H);
    const dhb = at(dh, b * H);
    for (let j = 0; j < H; j++) {
      const h = ld(hr, j);
      const d = ld(dhb, j);
      const v: f32 = relu ? (h > 0 ? d : <f32>0) : d * (<f32>1 - h * h);
      st(dgs, j, v);
      st(dga, j, v);
      st(dhb, j, 0);
    }
  }
}

/**
 * out[q, :n] for q < rows: src[idx[q]] when idx[q] >= 0, init[q % B] when idx[q] == -1 and
 * init != 0, else zeros. Builds the previous-state matrix Hprev [TB,R] for dWHh.
 */
export function gatherRows(rows: i32, n: i32, B: i32, idx: usize, src: usize, init: usize, out: usize): void {
  const bytes = <usize>n << 2;
  for (let q = 0; q < rows; q++) {
    const p = ldi(idx, q);
    const dst = out + <usize>q * bytes;
    if (p >= 0) memory.copy(dst, src + <usize>p * bytes, bytes);
    else if (p == -1 && init) memory.copy(dst, init + <usize>(q % B) * bytes, bytes);
    else memory.fill(dst, 0, bytes);
  }
}

/** dst[n] += column sums of src [rows, n] (row by row, so memory is read in order). */
export function addColumnSums(rows: i32, n: i32, src: usize, dst: usize): void {
  for (let r = 0; r < rows; r++) addInto(n, src + ((<usize>r * <usize>n) << 2), dst);
}

/** dst[n] += src[n]. */
export function addInto(n: i32, src: usize, dst: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = at(dst, i);
    v128.store(p, f32x4.add(v128.load(p), v128.load(at(src, i))));
  }
  for (; i < n; i++) st(dst, i, ld(dst, i) + ld(src, i));
}

// ---------------------------------------------------------------------------------------------
// Element-wise ops, cross-entropy, norms, optimizers.

// op: 0 tanh, 1 sigmoid, 2 relu. y[n] = op(x[n])
export function unaryForward(op: i32, n: i32, x: usize, y: usize): void {
  for (let i = 0; i < n; i++) {
    const v = ld(x, i);
    st(y, i, op == 0 ? tanhf(v) : op == 1 ? sigmoidf(v) : v > 0 ? v : <f32>0);
  }
}

// dx[n] += dy[n] * op'(x or y)
export function unaryBackward(op: i32, n: i32, x: usize, y: usize, dy: usize, dx: usize): void {
  for (let i = 0; i < n; i++) {
    let d: f32;
    if (op == 0) {
      const v = ld(y, i);
      d = <f32>1 - v * v;
    } else if (op == 1) {
      const v = ld(y, i);
      d = v * (<f32>1 - v);
    } else {
      d = ld(x, i) > 0 ? <f32>1 : <f32>0;
    }
    st(dx, i, ld(dx, i) + ld(dy, i) * d);
  }
}

// logits [N,C], targets i32 [N] -> probs [N,C], losses [N] (computed in f64 like the reference)
export function crossEntropyForward(N: i32, C: i32, logits: usize, targets: usize, ignoreIndex: i32, probs: usize, losses: usize): void {
  for (let n = 0; n < N; n++) {
    const lr = at(logits, n * C);
    const pr = at(probs, n * C);
    let mx: f64 = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, <f64>ld(lr, c));
    let sum: f64 = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(<f64>ld(lr, c) - mx);
    const logSum = mx + Math.log(sum);
    for (let c = 0; c < C; c++) st(pr, c, <f32>Math.exp(<f64>ld(lr, c) - logSum));
    const target = ldi(targets, n);
    st(losses, n, target == ignoreIndex ? <f32>0 : <f32>(logSum - <f64>ld(lr, target)));
  }
}

// dLogits [N,C] += dLosses[n] * (probs - onehot(target)); ignored rows get nothing
export function crossEntropyBackward(N: i32, C: i32, probs: usize, targets: usize, ignoreIndex: i32, dLosses: usize, dLogits: usize): void {
  for (let n = 0; n < N; n++) {
    const target = ldi(targets, n);
    if (target == ignoreIndex) continue;
    const g = <f64>ld(dLosses, n);
    const pr = at(probs, n * C);
    const dr = at(dLogits, n * C);
    for (let c = 0; c < C; c++) {
      const p = <f64>ld(pr, c) - (c == target ? 1.0 : 0.0);
      st(dr, c, <f32>(<f64>ld(dr, c) + g * p));
    }
  }
}

export function sumSquares(n: i32, x: usize): f64 {
  let acc: f64 = 0;
  for (let i = 0; i < n; i++) {
    const v = <f64>ld(x, i);
    acc += v * v;
  }
  return acc;
}

// Adam / AdamW (PyTorch, non-amsgrad), in f64 per element like the reference.
export function adamUpdate(
  n: i32, param: usize, grad: usize, m: usize, v: usize, lr: f64, beta1: f64, beta2: f64,
  eps: f64, weightDecay: f64, decoupled: i32, step: f64,
): void {
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  const stepSize = lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < n; i++) {
    let g = <f64>ld(grad, i);
    let p = <f64>ld(param, i);
    if (decoupled) {
      p = <f64><f32>(p * (1 - lr * weightDecay));
    } else if (weightDecay != 0) {
      g += weightDecay * p;
    }
    const mi = <f64><f32>(beta1 * <f64>ld(m, i) + (1 - beta1) * g);
    const vi = <f64><f32>(beta2 * <f64>ld(v, i) + (1 - beta2) * g * g);
    st(m, i, <f32>mi);
    st(v, i, <f32>vi);
    st(param, i, <f32>(p - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps)));
  }
}

// SGD (PyTorch): momentum, dampening, weight decay, nesterov; first step sets the buffer.
export function sgdUpdate(
  n: i32, param: usize, grad: usize, buf: usize, lr: f64, momentum: f64, dampening: f64,
  weightDecay: f64, nesterov: i32, firstStep: i32,
): void {
  for (let i = 0; i < n; i++) {
    const p = <f64>ld(param, i);
    let g = <f64>ld(grad, i) + weightDecay * p;
    if (momentum != 0) {
      const b: f64 = firstStep ? g : momentum * <f64>ld(buf, i) + (1 - dampening) * g;
      st(buf, i, <f32>b);
      g = nesterov ? g + momentum * b : b;
    }
    st(param, i, <f32>(p - lr * g));
  }
}
