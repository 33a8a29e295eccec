// SGEMM (native/gemm.cpp and the GEMM part of native/kernels.inc):
// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C (row-major, leading dimensions).
import { ld, madd, st } from './common';

/**
 * The float tile (up to 6x8) partial micro-tiles are written through: static in a single-threaded build;
 * in a threaded build every thread (instance) sets its own with setTile, as the static data is
 * shared by all of them.
 */
let tile: usize = memory.data(192, 16);

/** Sets this instance's tile (48 floats: up to 6x8, 16-byte aligned). */
export function setTile(p: usize): void {
  tile = p;
}

// Goto-style: op(B) is packed once into 8-column panels per K block of KC (packB, so a weight
// used at every time step is packed once per sequence); a block of MC rows of op(A) is packed
// into MR-row panels; an MRx8 register tile of f32x4 accumulators does the work.
// Registers (x64 has 16 xmm, V8 keeps one as scratch: 15): the 4x8 tile holds 8 accumulators,
// 2 vectors of B, the broadcast of A and, without fused multiply-add, the product before its add
// (12); with relaxed SIMD's fused multiply-add the 6x8 tile fits (12 accumulators + 2 + 1 = 15)
// and issues 12 multiply-adds per 8 loads instead of 8 per 6. (Unrolling k instead makes V8 load
// ahead and spill accumulators.)
const MR: i32 = ASC_FEATURE_RELAXED_SIMD ? 6 : 4;
const KC: i32 = 256;
const MC: i32 = ASC_FEATURE_RELAXED_SIMD ? 120 : 128; // a multiple of MR

/** Rows of the register tile (MR): a batch split into parts at multiples of it computes each row as the whole batch does. */
export function tileRows(): i32 {
  return MR;
}

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

/** Packs rows [i0, i0+mc) x cols [k0, k0+kc) of op(A) into MR-row panels [kc, MR], zero padded. */
function packA(transA: i32, A: usize, lda: i32, i0: i32, mc: i32, k0: i32, kc: i32, dst: usize): void {
  for (let ir = 0; ir < mc; ir += MR) {
    const panel = dst + ((<usize>ir * <usize>kc) << 2);
    const mr = min(MR, mc - ir);
    if (!transA) {
      for (let r = 0; r < MR; r++) {
        if (r < mr) {
          const src = A + ((<usize>(i0 + ir + r) * <usize>lda + <usize>k0) << 2);
          for (let k = 0; k < kc; k++) st(panel, k * MR + r, ld(src, k));
        } else {
          for (let k = 0; k < kc; k++) st(panel, k * MR + r, 0);
        }
      }
    } else {
      // op(A)[i][k] = A[k * lda + i]
      if (mr == MR) {
        for (let k = 0; k < kc; k++) {
          const src = A + ((<usize>(k0 + k) * <usize>lda + <usize>(i0 + ir)) << 2);
          const row = panel + ((<usize>k * <usize>MR) << 2);
          v128.store(row, v128.load(src));
          if (MR == 6) store<u64>(row, load<u64>(src, 16), 16);
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const src = A + ((<usize>(k0 + k) * <usize>lda + <usize>(i0 + ir)) << 2);
          for (let r = 0; r < MR; r++) st(panel, k * MR + r, r < mr ? ld(src, r) : 0);
        }
      }
    }
  }
}

/**
 * C[mr<=4, nr<=8] += alpha * rows 0-3 of an MR-row A panel [kc, MR] @ Bpanel[kc,8]: the 4x8
 * register tile (on the 6-row build, the tile of 3 or 4 rows: two thirds of the 6x8 tile's work).
 */
function kernel4x8(kc: i32, ap: usize, bp: usize, c: usize, ldc: i32, alpha: f32, mr: i32, nr: i32): void {
  let c0a = f32x4.splat(0);
  let c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a, c3a = c0a, c3b = c0a;
  // the loop runs on the B pointer (no counter: one instruction less per k, about 10% in V8)
  const bEnd = bp + ((<usize>kc) << 5);
  for (; bp < bEnd; bp += 32) {
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
    ap += <usize>MR << 2;
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
    v128.store(tile, c0a);
    v128.store(tile, c0b, 16);
    v128.store(tile, c1a, 32);
    v128.store(tile, c1b, 48);
    v128.store(tile, c2a, 64);
    v128.store(tile, c2b, 80);
    v128.store(tile, c3a, 96);
    v128.store(tile, c3b, 112);
    addTileRows(c, ldcb, alpha, mr, nr);
  }
}

/** C[mr<=6, nr<=8] += alpha * Apanel[kc,6] @ Bpanel[kc,8]: the 6x8 register tile (fused multiply-add builds). */
function kernel6x8(kc: i32, ap: usize, bp: usize, c: usize, ldc: i32, alpha: f32, mr: i32, nr: i32): void {
  let c0a = f32x4.splat(0);
  let c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a, c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a;
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
    a = v128.load32_splat(ap, 16);
    c4a = madd(a, b0, c4a);
    c4b = madd(a, b1, c4b);
    a = v128.load32_splat(ap, 20);
    c5a = madd(a, b0, c5a);
    c5b = madd(a, b1, c5b);
    ap += 24;
    bp += 32;
  }
  const ldcb = <usize>ldc << 2;
  if (mr == 6 && nr == 8) {
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
    p += ldcb;
    v128.store(p, madd(av, c4a, v128.load(p)));
    v128.store(p, madd(av, c4b, v128.load(p, 16)), 16);
    p += ldcb;
    v128.store(p, madd(av, c5a, v128.load(p)));
    v128.store(p, madd(av, c5b, v128.load(p, 16)), 16);
  } else {
    v128.store(tile, c0a);
    v128.store(tile, c0b, 16);
    v128.store(tile, c1a, 32);
    v128.store(tile, c1b, 48);
    v128.store(tile, c2a, 64);
    v128.store(tile, c2b, 80);
    v128.store(tile, c3a, 96);
    v128.store(tile, c3b, 112);
    v128.store(tile, c4a, 128);
    v128.store(tile, c4b, 144);
    v128.store(tile, c5a, 160);
    v128.store(tile, c5b, 176);
    addTileRows(c, ldcb, alpha, mr, nr);
  }
}

/** c[0, nr) += alpha * (a0 | a1): the store of a 1x8 tile (nr < 8 goes through TILE). */
@inline function addTile1x8(c: usize, a0: v128, a1: v128, alpha: f32, nr: i32): void {
  if (nr == 8) {
    const av = f32x4.splat(alpha);
    v128.store(c, madd(av, a0, v128.load(c)));
    v128.store(c, madd(av, a1, v128.load(c, 16)), 16);
  } else {
    v128.store(tile, a0);
    v128.store(tile, a1, 16);
    for (let j = 0; j < nr; j++) st(c, j, ld(c, j) + alpha * ld(tile, j));
  }
}

/**
 * C[r, 0:nr) += alpha * TILE row r for r < mr: the store of a partial tile. A full row of 8
 * columns takes the same fused multiply-add as a full tile's store, so a row's result does not
 * depend on the height of the tile it falls in.
 */
// @ts-ignore: decorator
@inline function addTileRows(c: usize, ldcb: usize, alpha: f32, mr: i32, nr: i32): void {
  const av = f32x4.splat(alpha);
  for (let r = 0; r < mr; r++) {
    const row = c + <usize>r * ldcb;
    const t = tile + (<usize>r << 5);
    if (nr == 8) {
      v128.store(row, madd(av, v128.load(t), v128.load(row)));
      v128.store(row, madd(av, v128.load(t, 16), v128.load(row, 16)), 16);
    } else {
      for (let j = 0; j < nr; j++) st(row, j, ld(row, j) + alpha * ld(t, j));
    }
  }
}

/**
 * C[mr<=2, nr<=8] += alpha * rows 0 and 1 of an MR-row A panel @ Bpanel[kc,8]: the tile of a
 * block's last 1 or 2 rows. Each row sums over k in order with one accumulator per 4 columns,
 * exactly as the 4x8 and 6x8 tiles and the GEMV path do (row 1 of a 1-row tile is the panel's
 * zero padding and is not stored): a row gets the same bits in any tile, so a batch may be cut
 * into parts anywhere. Four independent accumulators hide the multiply-add latency.
 */
function kernel2x8(kc: i32, ap: usize, bp: usize, c: usize, ldc: i32, alpha: f32, mr: i32, nr: i32): void {
  let c0a = f32x4.splat(0);
  let c0b = c0a, c1a = c0a, c1b = c0a;
  const step = <usize>MR << 2; // bytes from one k to the next in the panel
  const bEnd = bp + ((<usize>kc) << 5);
  for (; bp < bEnd; bp += 32) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c0a = madd(a, b0, c0a);
    c0b = madd(a, b1, c0b);
    a = v128.load32_splat(ap, 4);
    c1a = madd(a, b0, c1a);
    c1b = madd(a, b1, c1b);
    ap += step;
  }
  v128.store(tile, c0a);
  v128.store(tile, c0b, 16);
  v128.store(tile, c1a, 32);
  v128.store(tile, c1b, 48);
  addTileRows(c, <usize>ldc << 2, alpha, mr, nr);
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

/**
 * C[1, jBegin..jEnd) += alpha * a[K] @ Bp (packed, N columns), straight from a: the streaming
 * (batch 1) step. jBegin is a multiple of 8, jEnd one or N: every column gets the same
 * arithmetic as in the whole range (the tiles of 24, 16 and 8 columns differ only in how many
 * columns run side by side). backward: the tiles run from the last to the first (each still
 * sums over k in order, so the results are the same): a recurrent step that alternates its
 * direction starts on the weights the step before read last, still in the core's cache when
 * the weights are more than it holds (an LSTM's wHh at H 256 is 1 MiB).
 */
function gemvPacked(jBegin: i32, jEnd: i32, N: i32, K: i32, alpha: f32, a: usize, Bp: usize, C: usize, backward: bool): void {
  const Np = (N + 7) & ~7;
  // tiles of 24 columns from jBegin, then at most one of 16, then tiles of 8 (the last may be partial)
  const j16 = jBegin + (jEnd - jBegin) / 24 * 24;
  const jTail = jEnd - j16 >= 16 ? j16 + 16 : j16;
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = min(KC, K - k0);
    const bBase = Bp + ((<usize>k0 * <usize>Np) << 2);
    const ak = a + (<usize>k0 << 2);
    if (backward) {
      for (let j0 = jTail + ((jEnd - jTail - 1) & ~7); j0 >= jTail; j0 -= 8) {
        kernel1x8NoPack(kc, ak, bBase + ((<usize>j0 * <usize>kc) << 2), C + (<usize>j0 << 2), alpha, min(8, jEnd - j0));
      }
      if (jTail > j16) gemvTile16(kc, ak, bBase + ((<usize>j16 * <usize>kc) << 2), C + (<usize>j16 << 2), alpha);
      for (let j0 = j16 - 24; j0 >= jBegin; j0 -= 24) gemvTile24(kc, ak, bBase + ((<usize>j0 * <usize>kc) << 2), C + (<usize>j0 << 2), alpha);
    } else {
      for (let j0 = jBegin; j0 < j16; j0 += 24) gemvTile24(kc, ak, bBase + ((<usize>j0 * <usize>kc) << 2), C + (<usize>j0 << 2), alpha);
      if (jTail > j16) gemvTile16(kc, ak, bBase + ((<usize>j16 * <usize>kc) << 2), C + (<usize>j16 << 2), alpha);
      for (let j0 = jTail; j0 < jEnd; j0 += 8) {
        kernel1x8NoPack(kc, ak, bBase + ((<usize>j0 * <usize>kc) << 2), C + (<usize>j0 << 2), alpha, min(8, jEnd - j0));
      }
    }
  }
}

/**
 * c[0, 16) += alpha * a[kc] @ two packed panels [kc, 8] from bp: 4 independent accumulators
 * (8 make V8 spill), k two at a time with the pointers stepped once (fewer instructions per
 * multiply-add: the loop is bound by issuing them, not by the weights' stream); each column
 * still sums over k in order.
 */
// @ts-ignore: decorator
@inline function gemvTile16(kc: i32, a: usize, bp: usize, c: usize, alpha: f32): void {
  let bq = bp + ((<usize>kc) << 5);
  let s0 = f32x4.splat(0);
  let s1 = s0, s2 = s0, s3 = s0;
  let ap = a;
  const aPairs = a + ((<usize>(kc & ~1)) << 2);
  for (; ap < aPairs; ap += 8) {
    let av = v128.load32_splat(ap);
    s0 = madd(av, v128.load(bp), s0);
    s1 = madd(av, v128.load(bp, 16), s1);
    s2 = madd(av, v128.load(bq), s2);
    s3 = madd(av, v128.load(bq, 16), s3);
    av = v128.load32_splat(ap, 4);
    s0 = madd(av, v128.load(bp, 32), s0);
    s1 = madd(av, v128.load(bp, 48), s1);
    s2 = madd(av, v128.load(bq, 32), s2);
    s3 = madd(av, v128.load(bq, 48), s3);
    bp += 64;
    bq += 64;
  }
  if (kc & 1) {
    const av = v128.load32_splat(ap);
    s0 = madd(av, v128.load(bp), s0);
    s1 = madd(av, v128.load(bp, 16), s1);
    s2 = madd(av, v128.load(bq), s2);
    s3 = madd(av, v128.load(bq, 16), s3);
  }
  const al = f32x4.splat(alpha);
  addScaled(c, al, s0);
  addScaled(c + 16, al, s1);
  addScaled(c + 32, al, s2);
  addScaled(c + 48, al, s3);
}

/**
 * c[0, 24) += alpha * a[kc] @ three packed panels [kc, 8] from bp (contiguous: 24 columns):
 * 6 independent accumulators. Each column sums over k in order, a chain of dependent adds (or
 * fused multiply-adds, whose latency is longer); 6 chains keep both of the core's pipes busy
 * where gemvTile16's 4 wait on their latency (the relaxed-SIMD build's multiply-add). With 8, V8
 * loads every operand of a k ahead of its arithmetic and spills an accumulator.
 */
// @ts-ignore: decorator
@inline function gemvTile24(kc: i32, a: usize, bp: usize, c: usize, alpha: f32): void {
  const ps = (<usize>kc) << 5; // bytes from one panel to the next
  let p1 = bp + ps;
  let p2 = p1 + ps;
  let s0 = f32x4.splat(0);
  let s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0;
  const aEnd = a + ((<usize>kc) << 2);
  for (let ap = a; ap < aEnd; ap += 4) {
    const av = v128.load32_splat(ap);
    s0 = madd(av, v128.load(bp), s0);
    s1 = madd(av, v128.load(bp, 16), s1);
    s2 = madd(av, v128.load(p1), s2);
    s3 = madd(av, v128.load(p1, 16), s3);
    s4 = madd(av, v128.load(p2), s4);
    s5 = madd(av, v128.load(p2, 16), s5);
    bp += 32;
    p1 += 32;
    p2 += 32;
  }
  const al = f32x4.splat(alpha);
  addScaled(c, al, s0);
  addScaled(c + 16, al, s1);
  addScaled(c + 32, al, s2);
  addScaled(c + 48, al, s3);
  addScaled(c + 64, al, s4);
  addScaled(c + 80, al, s5);
}

/** p[0, 4) += al * s, one multiply-add (as every tile's store). */
// @ts-ignore: decorator
@inline function addScaled(p: usize, al: v128, s: v128): void {
  v128.store(p, madd(al, s, v128.load(p)));
}

/** One row of A, read contiguously, times a B panel [kc, 8]: the 1x8 tile of the GEMV path (k in order, as every tile). */
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
  gemmPackedCols(transA, M, N, K, alpha, A, lda, Bp, beta, C, ldc, Ap, 0, N);
}

/**
 * gemmPacked on the columns [jBegin, jEnd) of C only: the share of one thread. jBegin is a
 * multiple of 8 and jEnd one or N, so each element of C is computed exactly as by gemmPacked
 * (the sum over K is never split): results are bitwise the same for any split.
 */
export function gemmPackedCols(
  transA: i32, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32, Bp: usize,
  beta: f32, C: usize, ldc: i32, Ap: usize, jBegin: i32, jEnd: i32,
): void {
  gemmPackedRanges(transA, M, N, K, alpha, A, lda, Bp, beta, C, ldc, Ap, jBegin, jEnd, 0, 1);
}

/**
 * gemmPackedCols on `count` column ranges [jBegin + q * stride, jEnd + q * stride), q < count,
 * with one packing of A for all of them: the recurrent product of some hidden units of every
 * gate (stride H). Each range starts at a multiple of 8 and ends at one or at N. backward (one
 * row of A): the ranges and their tiles from the last to the first (gemvPacked), same results.
 */
export function gemmPackedRanges(
  transA: i32, M: i32, N: i32, K: i32, alpha: f32, A: usize, lda: i32, Bp: usize,
  beta: f32, C: usize, ldc: i32, Ap: usize, jBegin: i32, jEnd: i32, stride: i32, count: i32, backward: bool = false,
): void {
  for (let q = 0; q < count; q++) scaleC(M, jEnd - jBegin, beta, C + (<usize>(jBegin + q * stride) << 2), ldc);
  if (M == 0 || jEnd <= jBegin || K == 0 || alpha == 0) return;
  if (M == 1 && !transA) {
    for (let i = 0; i < count; i++) {
      const q = backward ? count - 1 - i : i;
      gemvPacked(jBegin + q * stride, jEnd + q * stride, N, K, alpha, A, Bp, C, backward);
    }
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
      for (let q = 0; q < count; q++) {
        const qEnd = jEnd + q * stride;
        for (let j0 = jBegin + q * stride; j0 < qEnd; j0 += 8) {
          const nr = min(8, qEnd - j0);
          const bPanel = bBase + ((<usize>j0 * <usize>kc) << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const aPanel = Ap + ((<usize>ir * <usize>kc) << 2);
            const cp = C + <usize>(i0 + ir) * ldcb + (<usize>j0 << 2);
            if (MR == 6 && mr >= 5) {
              kernel6x8(kc, aPanel, bPanel, cp, ldc, alpha, mr, nr);
            } else if (mr >= 3) {
              kernel4x8(kc, aPanel, bPanel, cp, ldc, alpha, mr, nr);
            } else {
              kernel2x8(kc, aPanel, bPanel, cp, ldc, alpha, mr, nr);
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

