// Recurrent cells and sequence helpers (native/seq.cpp and the fused gate rows of
// native/kernels.inc: lstm_fwd_row ... rnn_bwd_row), with the activations of ./math.
import { at, ld, ldi, madd, st, vs } from './common';
import {
  dsigmoids, dsigmoidv, dtanhs, dtanhv, relus, reluv, sigmoids, sigmoidv, tanhs, tanhv,
} from './math';

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
      const ig = sigmoids(ld(xr, j) + ld(hr, j));
      const fg = sigmoids(ld(xr, H + j) + ld(hr, H + j));
      const gg = tanhs(ld(xr, 2 * H + j) + ld(hr, 2 * H + j));
      const og = sigmoids(ld(xr, 3 * H + j) + ld(hr, 3 * H + j));
      st(gr, j, ig);
      st(gr, H + j, fg);
      st(gr, 2 * H + j, gg);
      st(gr, 3 * H + j, og);
      const cv = fg * ld(cr, j) + ig * gg;
      st(cr, j, cv);
      st(cs, j, cv);
      const h = og * tanhs(cv);
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
      // h = (1 - z) n + z h
      const hv = madd(zg, v128.load(at(hb, j)), f32x4.mul(f32x4.sub(vs(1), zg), ng));
      v128.store(at(hb, j), hv);
      v128.store(at(so, j), hv);
    }
    for (; j < H; j++) {
      const rg = sigmoids(ld(xr, j) + ld(hr, j));
      const zg = sigmoids(ld(xr, H + j) + ld(hr, H + j));
      const hn: f32 = ld(hr, 2 * H + j) + (bHhN ? ld(bHhN, j) : <f32>0);
      const ng = tanhs(ld(xr, 2 * H + j) + rg * hn);
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
      const hv = relu ? reluv(v) : tanhv(v);
      v128.store(at(hb, j), hv);
      v128.store(at(so, j), hv);
    }
    for (; j < H; j++) {
      const v = ld(xr, j) + ld(hr, j);
      const hv: f32 = relu ? relus(v) : tanhs(v);
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
    for (; j + 4 <= H; j += 4) {
      const ig = v128.load(at(gr, j));
      const fg = v128.load(at(gr, H + j));
      const gg = v128.load(at(gr, 2 * H + j));
      const og = v128.load(at(gr, 3 * H + j));
      const tc = tanhv(v128.load(at(cr, j)));
      const dh = v128.load(at(dhr, j));
      const cPrev = cp ? v128.load(at(cp, j)) : vs(0);
      const dcv = madd(f32x4.mul(dh, og), dtanhv(tc), v128.load(at(dcr, j)));
      const di = f32x4.mul(f32x4.mul(dcv, gg), dsigmoidv(ig));
      const df = f32x4.mul(f32x4.mul(dcv, cPrev), dsigmoidv(fg));
      const dg = f32x4.mul(f32x4.mul(dcv, ig), dtanhv(gg));
      const dO = f32x4.mul(f32x4.mul(dh, tc), dsigmoidv(og));
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
      const tc = tanhs(ld(cr, j));
      const dh = ld(dhr, j);
      const cPrev: f32 = cp ? ld(cp, j) : 0;
      const dcv = ld(dcr, j) + (dh * og) * dtanhs(tc);
      const di = (dcv * gg) * dsigmoids(ig);
      const df = (dcv * cPrev) * dsigmoids(fg);
      const dg = (dcv * ig) * dtanhs(gg);
      const dO = (dh * tc) * dsigmoids(og);
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
      const dn = (d * (<f32>1 - zg)) * dtanhs(ng);
      const dz = (d * (hPrev - ng)) * dsigmoids(zg);
      const dr = (dn * hn) * dsigmoids(rg);
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
      const v: f32 = relu ? (h > 0 ? d : <f32>0) : d * dtanhs(h);
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

