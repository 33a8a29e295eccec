// Recurrent cells and sequence helpers (native/seq.cpp and the fused gate rows of
// native/kernels.inc: the cells' row kernels, lstm_fwd ... grurb_bwd_early), with the activations of ./math.
import { at, get, ld, ldi, madd, put, st, vs } from './common';
import { gemmPackedRanges } from './gemm';
import { dgatev, dtanhv, gatev, reluv, tanhv } from './math';

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

// The LSTM and GRU step kernels take their gate activation as (hard, alpha, beta): sigmoid when
// hard is 0, else the hard sigmoid clamp(alpha x + beta, 0, 1) (math.ts gatev / dgatev).
//
// Each step kernel runs one body per element group: 4 lanes at a time over a row, then the same
// body on one lane (a splat) for the row's tail, as native's row kernels (template <bool F>),
// so an element gets the same arithmetic wherever it sits.

// LSTM gates of elements [j, j+4) (full) or j alone (see lstmStepForward)
// @ts-ignore: decorator
@inline function lstmForwardAt(
  j: i32, H: i32, xr: usize, hr: usize, gr: usize, cr: usize, cs: usize, ho: usize, hs: usize, full: bool,
  hard: i32, alpha: f32, beta: f32,
): void {
  const ig = gatev(f32x4.add(get(at(xr, j), full), get(at(hr, j), full)), hard, alpha, beta);
  const fg = gatev(f32x4.add(get(at(xr, H + j), full), get(at(hr, H + j), full)), hard, alpha, beta);
  const gg = tanhv(f32x4.add(get(at(xr, 2 * H + j), full), get(at(hr, 2 * H + j), full)));
  const og = gatev(f32x4.add(get(at(xr, 3 * H + j), full), get(at(hr, 3 * H + j), full)), hard, alpha, beta);
  // c = f c + i g, h = o tanh(c)
  const cv = madd(fg, get(at(cr, j), full), f32x4.mul(ig, gg));
  put(at(cr, j), cv, full);
  if (gr) {
    put(at(gr, j), ig, full);
    put(at(gr, H + j), fg, full);
    put(at(gr, 2 * H + j), gg, full);
    put(at(gr, 3 * H + j), og, full);
    put(at(cs, j), cv, full);
  }
  const h = f32x4.mul(og, tanhv(cv));
  put(at(ho, j), h, full);
  if (hs) put(at(hs, j), h, full);
}

// LSTM step forward. xp [TB,4H] (row t*B+b), hp [B,4H], c [B,H] in/out,
// hOut [B,H] (h = o*tanh(c), leading dim ldh), hSave [TB,H] or 0 (row t*B+b),
// gates / cells saved at row (saveFull ? t*B+b : b): gates [*,4H] (i,f,g,o), cells [*,H]
// (both 0: not saved, for inference).
export function lstmStepForward(
  B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, c: usize, hOut: usize, ldh: i32,
  hSave: usize, gates: usize, cells: usize, saveFull: i32, hard: i32, alpha: f32, beta: f32,
): void {
  lstmForwardRange(0, H, 0, B, B, H, tIdx, xp, hp, c, hOut, ldh, hSave, gates, cells, saveFull, hard, alpha, beta, 0);
}

/**
 * lstmStepForward on the hidden units [j0, j1) of the rows [b0, b1). hCarry (or 0): the state h_{t-1}
 * [B,H] when hOut is another buffer; finished rows copy their units of it to hOut.
 */
function lstmForwardRange(
  j0: i32, j1: i32, b0: i32, b1: i32, B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, c: usize, hOut: usize, ldh: i32,
  hSave: usize, gates: usize, cells: usize, saveFull: i32, hard: i32, alpha: f32, beta: f32, hCarry: usize,
): void {
  const G = 4 * H;
  for (let b = b0; b < b1; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) {
      if (hCarry) memory.copy(at(hOut, b * ldh + j0), at(hCarry, b * H + j0), <usize>(j1 - j0) << 2);
      continue;
    }
    const row = t * B + b;
    const sr = saveFull ? row : b;
    const xr = at(xp, row * G);
    const hr = at(hp, b * G);
    const gr: usize = gates ? at(gates, sr * G) : 0;
    const cr = at(c, b * H);
    const cs: usize = gates ? at(cells, sr * H) : 0;
    const ho = at(hOut, b * ldh);
    const hs: usize = hSave ? at(hSave, row * H) : 0;
    let j = j0;
    for (; j + 4 <= j1; j += 4) lstmForwardAt(j, H, xr, hr, gr, cr, cs, ho, hs, true, hard, alpha, beta);
    for (; j < j1; j++) lstmForwardAt(j, H, xr, hr, gr, cr, cs, ho, hs, false, hard, alpha, beta);
  }
}

/**
 * One LSTM step (no projection) on the hidden units [j0, j1), the share of one thread: the
 * recurrent product of those units' columns of every gate, hp[B, g*H + j] = hIn[B,H] @ Whh
 * (packB of wHh^T [H, 4H]; Ap: packedASize() floats of this thread's scratch), then their gates
 * as lstmStepForward, h written to hOut [B,H] (not hIn, which other threads still read; finished
 * rows carry hIn over). j0 is a multiple of 8, j1 one or H, H a multiple of 8: every element is
 * computed exactly as by the whole-step kernels, for any split. backward: the product runs through
 * the weights from the last column (gemmPackedRanges), so the next step starts where this one ended.
 */
function lstmForwardUnits(
  j0: i32, j1: i32, Ap: usize, B: i32, H: i32, hIn: usize, Whh: usize, hp: usize, tIdx: usize, xp: usize,
  c: usize, hOut: usize, hSave: usize, gates: usize, cells: usize, saveFull: i32, hard: i32, alpha: f32, beta: f32,
  backward: bool,
): void {
  gemmPackedRanges(0, B, 4 * H, H, 1, hIn, H, Whh, 0, hp, 4 * H, Ap, j0, j1, H, 4, backward);
  lstmForwardRange(j0, j1, 0, B, B, H, tIdx, xp, hp, c, hOut, H, hSave, gates, cells, saveFull, hard, alpha, beta, hIn);
}

// The thread control block (src/backends/wasm-core.ts CTL), in i32 words: the job's thread
// count, the failure flag a thread sets when its share threw, and the step barrier (arrivals,
// then the number of barriers passed in this job; both zero when a job starts).
const CTL_FAILED = 2;
const CTL_THREADS = 4;
const CTL_BARRIER = 64;
/**
 * Polls of the barrier before a thread gives up its core: about as long as giving it up costs
 * (on an x86-64 server core, 2^16 polls take 65-85 us, and a wake-up from Atomics.wait 50-150 us
 * in a VM), so a thread that arrives early never waits more than about twice what it must. With
 * fewer polls a batch-1 step (15-30 us a thread) often ends in a sleep and a wake-up, and its
 * steps run slower split than on one thread.
 */
const BARRIER_SPIN = 1 << 16;

/**
 * Arrives at the barrier after step s of a job over the threads of the control block ctl and
 * polls until every thread has arrived: 1 when they have, 0 when the poll ran out (the caller
 * returns to JavaScript, which sleeps until the barrier count reaches s + 1: a wait inside wasm
 * is avoided), -1 when a thread failed. The last to arrive resets the arrivals and publishes
 * s + 1 as the count of barriers passed.
 */
function stepBarrier(ctl: usize, s: i32): i32 {
  if (!ASC_FEATURE_THREADS) return 1;
  const arrived = ctl + (<usize>CTL_BARRIER << 2);
  const passed = arrived + 4;
  if (atomic.add<i32>(arrived, 1) == ldi(ctl, CTL_THREADS) - 1) {
    atomic.store<i32>(arrived, 0);
    atomic.store<i32>(passed, s + 1);
    atomic.notify(passed);
    return 1;
  }
  for (let spin = 0; spin < BARRIER_SPIN; spin++) {
    if (atomic.load<i32>(passed) > s) return 1;
    if (atomic.load<i32>(ctl + (<usize>CTL_FAILED << 2)) != 0) return -1;
  }
  return 0;
}

/**
 * lstmForwardUnits over steps [from, steps) of a sequence: this thread's hidden units [j0, j1)
 * of every step, h alternating between hA (the input of step 0) and hB; tIdx [steps, B] the step
 * table. With ctl (a job over several threads) the threads meet at the control block's barrier
 * after every step but the last, so each step reads the whole h of the step before; ctl = 0:
 * one thread. Returns -1 when done (or a thread failed), else the step to resume from once the
 * barrier count reaches it (see stepBarrier). The final h is in hA when steps is even, else hB.
 */
export function lstmForwardSteps(
  j0: i32, j1: i32, Ap: usize, from: i32, B: i32, H: i32, steps: i32, hA: usize, hB: usize, Whh: usize, hp: usize,
  tIdx: usize, xp: usize, c: usize, hSave: usize, gates: usize, cells: usize, saveFull: i32, ctl: usize, hard: i32,
  alpha: f32, beta: f32,
): i32 {
  for (let s = from; s < steps; s++) {
    const hIn = s & 1 ? hB : hA;
    const hOut = s & 1 ? hA : hB;
    // odd steps through the weights backwards: each step starts on those the step before read last
    lstmForwardUnits(j0, j1, Ap, B, H, hIn, Whh, hp, tIdx + (<usize>(s * B) << 2), xp, c, hOut, hSave, gates, cells,
      saveFull, hard, alpha, beta, (s & 1) != 0);
    if (!ctl || s + 1 == steps) continue;
    const met = stepBarrier(ctl, s);
    if (met < 0) return -1;
    if (met == 0) return s + 1;
  }
  return -1;
}

// GRU gates of elements [j, j+4) (full) or j alone (see gruStepForward)
// @ts-ignore: decorator
@inline function gruForwardAt(
  j: i32, H: i32, xr: usize, hr: usize, bHhN: usize, gr: usize, cs: usize, hb: usize, so: usize, full: bool,
  hard: i32, alpha: f32, beta: f32,
): void {
  const rg = gatev(f32x4.add(get(at(xr, j), full), get(at(hr, j), full)), hard, alpha, beta);
  const zg = gatev(f32x4.add(get(at(xr, H + j), full), get(at(hr, H + j), full)), hard, alpha, beta);
  let hn = get(at(hr, 2 * H + j), full);
  if (bHhN) hn = f32x4.add(hn, get(at(bHhN, j), full));
  const ng = tanhv(madd(rg, hn, get(at(xr, 2 * H + j), full)));
  put(at(gr, j), rg, full);
  put(at(gr, H + j), zg, full);
  put(at(gr, 2 * H + j), ng, full);
  put(at(cs, j), hn, full);
  // h = (1 - z) n + z h
  const hv = madd(zg, get(at(hb, j), full), f32x4.mul(f32x4.sub(vs(1), zg), ng));
  put(at(hb, j), hv, full);
  put(at(so, j), hv, full);
}

// GRU step forward (PyTorch reset-after): xp [TB,3H] (includes b_ir+b_hr, b_iz+b_hz, b_in),
// hp [B,3H] = W_hh h, bHhN = b_hh + 2H or 0, h [B,H] in/out, states [TB,H] (row t*B+b),
// gates [*,3H] r,z,n and cells [*,H] = W_hn h + b_hn at row (saveFull ? t*B+b : b).
export function gruStepForward(
  B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, bHhN: usize, h: usize, states: usize,
  gates: usize, cells: usize, saveFull: i32, hard: i32, alpha: f32, beta: f32,
): void {
  gruForwardRange(0, B, B, H, tIdx, xp, hp, bHhN, h, states, gates, cells, saveFull, hard, alpha, beta);
}

/** gruStepForward on the rows [b0, b1). */
function gruForwardRange(
  b0: i32, b1: i32, B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, bHhN: usize, h: usize, states: usize,
  gates: usize, cells: usize, saveFull: i32, hard: i32, alpha: f32, beta: f32,
): void {
  const G = 3 * H;
  for (let b = b0; b < b1; b++) {
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
    for (; j + 4 <= H; j += 4) gruForwardAt(j, H, xr, hr, bHhN, gr, cs, hb, so, true, hard, alpha, beta);
    for (; j < H; j++) gruForwardAt(j, H, xr, hr, bHhN, gr, cs, hb, so, false, hard, alpha, beta);
  }
}

// ---- reset-before GRU (src/backends/cells.ts): the step runs in two phases around the n gate's
// product hp_n = W_hn (r * h) that the driver computes between them ----

// @ts-ignore: decorator
@inline function gruResetBeforeGatesAt(
  j: i32, H: i32, xr: usize, hr: usize, hb: usize, gr: usize, rhb: usize, rhs: usize, full: bool,
  hard: i32, alpha: f32, beta: f32,
): void {
  const rg = gatev(f32x4.add(get(at(xr, j), full), get(at(hr, j), full)), hard, alpha, beta);
  const zg = gatev(f32x4.add(get(at(xr, H + j), full), get(at(hr, H + j), full)), hard, alpha, beta);
  put(at(gr, j), rg, full);
  put(at(gr, H + j), zg, full);
  const rh = f32x4.mul(rg, get(at(hb, j), full));
  put(at(rhb, j), rh, full);
  if (rhs) put(at(rhs, j), rh, full);
}

// Reset-before GRU, phase 1: r, z = act(xp + hp) (xp [TB,3H] holds every bias, hp [B,3H] the
// r, z part of W_hh h), rh [B,H] = r * h, rhSave [TB,H] (row t*B+b) or 0; gates at row
// (saveFull ? t*B+b : b).
export function gruResetBeforeStepGates(
  B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, h: usize, gates: usize, rh: usize, rhSave: usize,
  saveFull: i32, hard: i32, alpha: f32, beta: f32,
): void {
  const G = 3 * H;
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) continue;
    const row = t * B + b;
    const sr = saveFull ? row : b;
    const xr = at(xp, row * G);
    const hr = at(hp, b * G);
    const hb = at(h, b * H);
    const gr = at(gates, sr * G);
    const rhb = at(rh, b * H);
    const rhs: usize = rhSave ? at(rhSave, row * H) : 0;
    let j = 0;
    for (; j + 4 <= H; j += 4) gruResetBeforeGatesAt(j, H, xr, hr, hb, gr, rhb, rhs, true, hard, alpha, beta);
    for (; j < H; j++) gruResetBeforeGatesAt(j, H, xr, hr, hb, gr, rhb, rhs, false, hard, alpha, beta);
  }
}

// @ts-ignore: decorator
@inline function gruResetBeforeForwardAt(j: i32, H: i32, xr: usize, hr: usize, gr: usize, hb: usize, so: usize, full: bool): void {
  const ng = tanhv(f32x4.add(get(at(xr, 2 * H + j), full), get(at(hr, 2 * H + j), full)));
  const zg = get(at(gr, H + j), full);
  put(at(gr, 2 * H + j), ng, full);
  // h = (1 - z) n + z h
  const hv = madd(zg, get(at(hb, j), full), f32x4.mul(f32x4.sub(vs(1), zg), ng));
  put(at(hb, j), hv, full);
  put(at(so, j), hv, full);
}

// Reset-before GRU, phase 2: n = tanh(xp_n + hp_n) (hp_n = W_hn rh in hp's n columns),
// h [B,H] in/out = (1 - z) n + z h, states [TB,H] row t*B+b.
export function gruResetBeforeStepForward(
  B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, h: usize, states: usize, gates: usize, saveFull: i32,
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
    const hb = at(h, b * H);
    const so = at(states, row * H);
    let j = 0;
    for (; j + 4 <= H; j += 4) gruResetBeforeForwardAt(j, H, xr, hr, gr, hb, so, true);
    for (; j < H; j++) gruResetBeforeForwardAt(j, H, xr, hr, gr, hb, so, false);
  }
}

// @ts-ignore: decorator
@inline function gruResetBeforeBackwardAt(
  j: i32, H: i32, gr: usize, hp: usize, dhb: usize, dgs: usize, dga: usize, full: bool, hard: i32, alpha: f32,
): void {
  const zg = get(at(gr, H + j), full);
  const ng = get(at(gr, 2 * H + j), full);
  const hPrev = hp ? get(at(hp, j), full) : vs(0);
  const d = get(at(dhb, j), full);
  const dn = f32x4.mul(f32x4.mul(d, f32x4.sub(vs(1), zg)), dtanhv(ng));
  const dz = f32x4.mul(f32x4.mul(d, f32x4.sub(hPrev, ng)), dgatev(zg, hard, alpha));
  put(at(dgs, H + j), dz, full);
  put(at(dgs, 2 * H + j), dn, full);
  put(at(dga, H + j), dz, full);
  put(at(dga, 2 * H + j), dn, full);
  put(at(dhb, j), f32x4.mul(d, zg), full);
}

// Reset-before GRU backward, phase 1: dh [B,H] in/out (becomes the direct path dh * z),
// gates [TB,3H], states [TB,H], h0 [B,H] or 0; out the z and n columns of dG [B,3H] (the whole
// row zero on inactive rows) and of dGall [TB,3H] at row t*B+b.
export function gruResetBeforeStepBackward(
  B: i32, H: i32, tIdx: usize, prevT: usize, dh: usize, gates: usize, states: usize, h0: usize,
  dG: usize, dGall: usize, hard: i32, alpha: f32,
): void {
  const G = 3 * H;
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
    const hp: usize = pt >= 0 ? at(states, (pt * B + b) * H) : (h0 ? at(h0, b * H) : 0);
    const dga = at(dGall, row * G);
    const dhb = at(dh, b * H);
    let j = 0;
    for (; j + 4 <= H; j += 4) gruResetBeforeBackwardAt(j, H, gr, hp, dhb, dgs, dga, true, hard, alpha);
    for (; j < H; j++) gruResetBeforeBackwardAt(j, H, gr, hp, dhb, dgs, dga, false, hard, alpha);
  }
}

// @ts-ignore: decorator
@inline function gruResetBeforeResetAt(
  j: i32, gr: usize, hp: usize, drb: usize, dhb: usize, dgs: usize, dga: usize, full: bool, hard: i32, alpha: f32,
): void {
  const rg = get(at(gr, j), full);
  const hPrev = hp ? get(at(hp, j), full) : vs(0);
  const drh = get(at(drb, j), full);
  const dr = f32x4.mul(f32x4.mul(drh, hPrev), dgatev(rg, hard, alpha));
  put(at(dgs, j), dr, full);
  put(at(dga, j), dr, full);
  put(at(dhb, j), madd(drh, rg, get(at(dhb, j), full)), full);
}

// Reset-before GRU backward, phase 2: drh [B,H] = W_hn^T dn (the driver's product); out the r
// column of dG / dGall, dh [B,H] += drh * r on active rows.
export function gruResetBeforeStepResetBackward(
  B: i32, H: i32, tIdx: usize, prevT: usize, drh: usize, gates: usize, states: usize, h0: usize,
  dh: usize, dG: usize, dGall: usize, hard: i32, alpha: f32,
): void {
  const G = 3 * H;
  for (let b = 0; b < B; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) continue;
    const row = t * B + b;
    const pt = ldi(prevT, b);
    const gr = at(gates, row * G);
    const hp: usize = pt >= 0 ? at(states, (pt * B + b) * H) : (h0 ? at(h0, b * H) : 0);
    const drb = at(drh, b * H);
    const dhb = at(dh, b * H);
    const dgs = at(dG, b * G);
    const dga = at(dGall, row * G);
    let j = 0;
    for (; j + 4 <= H; j += 4) gruResetBeforeResetAt(j, gr, hp, drb, dhb, dgs, dga, true, hard, alpha);
    for (; j < H; j++) gruResetBeforeResetAt(j, gr, hp, drb, dhb, dgs, dga, false, hard, alpha);
  }
}

// @ts-ignore: decorator
@inline function rnnForwardAt(j: i32, relu: i32, xr: usize, hr: usize, hb: usize, so: usize, full: bool): void {
  const v = f32x4.add(get(at(xr, j), full), get(at(hr, j), full));
  const hv = relu ? reluv(v) : tanhv(v);
  put(at(hb, j), hv, full);
  put(at(so, j), hv, full);
}

// RNN step forward: h = act(xp + hp); h [B,H] in/out, states [TB,H] row t*B+b.
export function rnnStepForward(B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, relu: i32, h: usize, states: usize): void {
  rnnForwardRange(0, B, B, H, tIdx, xp, hp, relu, h, states);
}

/** rnnStepForward on the rows [b0, b1). */
function rnnForwardRange(b0: i32, b1: i32, B: i32, H: i32, tIdx: usize, xp: usize, hp: usize, relu: i32, h: usize, states: usize): void {
  for (let b = b0; b < b1; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) continue;
    const row = t * B + b;
    const xr = at(xp, row * H);
    const hr = at(hp, b * H);
    const hb = at(h, b * H);
    const so = at(states, row * H);
    let j = 0;
    for (; j + 4 <= H; j += 4) rnnForwardAt(j, relu, xr, hr, hb, so, true);
    for (; j < H; j++) rnnForwardAt(j, relu, xr, hr, hb, so, false);
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
  addDyRange(0, B, B, R, tIdx, dh, dy, dyStride, dyOffset);
}

/** addDy on the rows [b0, b1). */
function addDyRange(b0: i32, b1: i32, B: i32, R: i32, tIdx: usize, dh: usize, dy: usize, dyStride: i32, dyOffset: i32): void {
  for (let b = b0; b < b1; b++) {
    const t = ldi(tIdx, b);
    if (t < 0) continue;
    const src = at(dy, (t * B + b) * dyStride + dyOffset);
    const d = at(dh, b * R);
    for (let r = 0; r < R; r++) st(d, r, ld(d, r) + ld(src, r));
  }
}

// LSTM gate gradients of elements [j, j+4) (full) or j alone (see lstmStepBackward)
// @ts-ignore: decorator
@inline function lstmBackwardAt(
  j: i32, H: i32, gr: usize, cr: usize, cp: usize, dhr: usize, dcr: usize, dgs: usize, dga: usize, full: bool,
  hard: i32, alpha: f32,
): void {
  const ig = get(at(gr, j), full);
  const fg = get(at(gr, H + j), full);
  const gg = get(at(gr, 2 * H + j), full);
  const og = get(at(gr, 3 * H + j), full);
  const tc = tanhv(get(at(cr, j), full));
  const dh = get(at(dhr, j), full);
  const cPrev = cp ? get(at(cp, j), full) : vs(0);
  const dcv = madd(f32x4.mul(dh, og), dtanhv(tc), get(at(dcr, j), full));
  const di = f32x4.mul(f32x4.mul(dcv, gg), dgatev(ig, hard, alpha));
  const df = f32x4.mul(f32x4.mul(dcv, cPrev), dgatev(fg, hard, alpha));
  const dg = f32x4.mul(f32x4.mul(dcv, ig), dtanhv(gg));
  const dO = f32x4.mul(f32x4.mul(dh, tc), dgatev(og, hard, alpha));
  put(at(dgs, j), di, full);
  put(at(dgs, H + j), df, full);
  put(at(dgs, 2 * H + j), dg, full);
  put(at(dgs, 3 * H + j), dO, full);
  put(at(dga, j), di, full);
  put(at(dga, H + j), df, full);
  put(at(dga, 2 * H + j), dg, full);
  put(at(dga, 3 * H + j), dO, full);
  put(at(dcr, j), f32x4.mul(dcv, fg), full);
}

// LSTM step backward. dhIn [B,H] = gradient of o*tanh(c) (dh itself when P = 0), dhState [B,R]
// (set to 0 on active rows: the recurrent GEMM adds into it next), dc [B,H] in/out,
// gates [TB,4H], cells [TB,H], c0 [B,H] or 0; out dG [B,4H] (zero on inactive rows) and
// dGall [TB,4H] at row t*B+b.
export function lstmStepBackward(
  B: i32, H: i32, R: i32, tIdx: usize, prevT: usize, dhIn: usize, dhState: usize, dc: usize,
  gates: usize, cells: usize, c0: usize, dG: usize, dGall: usize, hard: i32, alpha: f32,
): void {
  lstmBackwardRange(0, H, 0, B, B, H, R, tIdx, prevT, dhIn, dhState, 0, R, dc, gates, cells, c0, dG, dGall, hard, alpha);
}

/** lstmStepBackward on the hidden units [j0, j1) of the rows [b0, b1); it zeroes dhState's columns [z0, z1) on active rows. */
function lstmBackwardRange(
  j0: i32, j1: i32, b0: i32, b1: i32, B: i32, H: i32, R: i32, tIdx: usize, prevT: usize, dhIn: usize, dhState: usize, z0: i32, z1: i32,
  dc: usize, gates: usize, cells: usize, c0: usize, dG: usize, dGall: usize, hard: i32, alpha: f32,
): void {
  const G = 4 * H;
  const n = <usize>(j1 - j0) << 2;
  for (let b = b0; b < b1; b++) {
    const t = ldi(tIdx, b);
    const dgs = at(dG, b * G);
    if (t < 0) {
      for (let g = 0; g < 4; g++) memory.fill(at(dgs, g * H + j0), 0, n);
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
    let j = j0;
    for (; j + 4 <= j1; j += 4) lstmBackwardAt(j, H, gr, cr, cp, dhr, dcr, dgs, dga, true, hard, alpha);
    for (; j < j1; j++) lstmBackwardAt(j, H, gr, cr, cp, dhr, dcr, dgs, dga, false, hard, alpha);
    memory.fill(at(dhState, b * R + z0), 0, <usize>(z1 - z0) << 2);
  }
}

/**
 * One LSTM backward step (no projection) on the hidden units [j0, j1), the share of one thread:
 * when gemm is set, first the recurrent delta of the step after it, dh[B, j0:j1] += dGNext[B,4H]
 * @ WhhN (packB of wHh [4H, H]), then dh += dy of this step (dy [TB, dyStride] at dyOffset, or 0)
 * and the gate gradients of these units as lstmStepBackward (dG [B,4H] must be another buffer
 * than dGNext, which other threads still read). Splits as lstmForwardUnits.
 */
export function lstmBackwardUnits(
  j0: i32, j1: i32, Ap: usize, B: i32, H: i32, gemm: i32, dGNext: usize, WhhN: usize, tIdx: usize, prevT: usize,
  dh: usize, dy: usize, dyStride: i32, dyOffset: i32, dc: usize, gates: usize, cells: usize, c0: usize, dG: usize,
  dGall: usize, hard: i32, alpha: f32,
): void {
  if (gemm) gemmPackedRanges(0, B, H, 4 * H, 1, dGNext, 4 * H, WhhN, 1, dh, H, Ap, j0, j1, 0, 1);
  if (dy) {
    for (let b = 0; b < B; b++) {
      const t = ldi(tIdx, b);
      if (t < 0) continue;
      const src = at(dy, (t * B + b) * dyStride + dyOffset);
      const d = at(dh, b * H);
      for (let r = j0; r < j1; r++) st(d, r, ld(d, r) + ld(src, r));
    }
  }
  lstmBackwardRange(j0, j1, 0, B, B, H, H, tIdx, prevT, dh, dh, j0, j1, dc, gates, cells, c0, dG, dGall, hard, alpha);
}

// GRU gate gradients of elements [j, j+4) (full) or j alone (see gruStepBackward)
// @ts-ignore: decorator
@inline function gruBackwardAt(
  j: i32, H: i32, gr: usize, cr: usize, hp: usize, dhb: usize, dgi: usize, dgh: usize, dgs: usize, full: bool,
  hard: i32, alpha: f32,
): void {
  const rg = get(at(gr, j), full);
  const zg = get(at(gr, H + j), full);
  const ng = get(at(gr, 2 * H + j), full);
  const hn = get(at(cr, j), full);
  const hPrev = hp ? get(at(hp, j), full) : vs(0);
  const d = get(at(dhb, j), full);
  const dn = f32x4.mul(f32x4.mul(d, f32x4.sub(vs(1), zg)), dtanhv(ng));
  const dz = f32x4.mul(f32x4.mul(d, f32x4.sub(hPrev, ng)), dgatev(zg, hard, alpha));
  const dr = f32x4.mul(f32x4.mul(dn, hn), dgatev(rg, hard, alpha));
  const dnr = f32x4.mul(dn, rg);
  put(at(dgi, j), dr, full);
  put(at(dgi, H + j), dz, full);
  put(at(dgi, 2 * H + j), dn, full);
  put(at(dgh, j), dr, full);
  put(at(dgh, H + j), dz, full);
  put(at(dgh, 2 * H + j), dnr, full);
  put(at(dgs, j), dr, full);
  put(at(dgs, H + j), dz, full);
  put(at(dgs, 2 * H + j), dnr, full);
  put(at(dhb, j), f32x4.mul(d, zg), full);
}

// GRU step backward. dh [B,H] in/out (becomes the direct path dh * z on active rows),
// gates [TB,3H], cells [TB,H] (W_hn h + b_hn), states [TB,H], h0 [B,H] or 0;
// out dGh [B,3H] step (zero on inactive rows), dGiAll / dGhAll [TB,3H] at row t*B+b.
export function gruStepBackward(
  B: i32, H: i32, tIdx: usize, prevT: usize, dh: usize, gates: usize, cells: usize,
  states: usize, h0: usize, dGh: usize, dGiAll: usize, dGhAll: usize, hard: i32, alpha: f32,
): void {
  gruBackwardRange(0, B, B, H, tIdx, prevT, dh, gates, cells, states, h0, dGh, dGiAll, dGhAll, hard, alpha);
}

/** gruStepBackward on the rows [b0, b1). */
function gruBackwardRange(
  b0: i32, b1: i32, B: i32, H: i32, tIdx: usize, prevT: usize, dh: usize, gates: usize, cells: usize,
  states: usize, h0: usize, dGh: usize, dGiAll: usize, dGhAll: usize, hard: i32, alpha: f32,
): void {
  const G = 3 * H;
  for (let b = b0; b < b1; b++) {
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
    let j = 0;
    for (; j + 4 <= H; j += 4) gruBackwardAt(j, H, gr, cr, hp, dhb, dgi, dgh, dgs, true, hard, alpha);
    for (; j < H; j++) gruBackwardAt(j, H, gr, cr, hp, dhb, dgi, dgh, dgs, false, hard, alpha);
  }
}

// @ts-ignore: decorator
@inline function rnnBackwardAt(j: i32, relu: i32, hr: usize, dhb: usize, dgs: usize, dga: usize, full: bool): void {
  const h = get(at(hr, j), full);
  const d = get(at(dhb, j), full);
  // relu: dh where h > 0 (a select), tanh: dh (1 - h)(1 + h)
  const v = relu ? v128.and(d, f32x4.gt(h, vs(0))) : f32x4.mul(d, dtanhv(h));
  put(at(dgs, j), v, full);
  put(at(dga, j), v, full);
  put(at(dhb, j), vs(0), full);
}

// RNN step backward: dh [B,H] in/out (0 on active rows), states [TB,H] (h = act(pre)),
// out dG [B,H] step (zero on inactive rows), dGall [TB,H].
export function rnnStepBackward(
  B: i32, H: i32, tIdx: usize, relu: i32, dh: usize, states: usize, dG: usize, dGall: usize,
): void {
  rnnBackwardRange(0, B, B, H, tIdx, relu, dh, states, dG, dGall);
}

/** rnnStepBackward on the rows [b0, b1). */
function rnnBackwardRange(
  b0: i32, b1: i32, B: i32, H: i32, tIdx: usize, relu: i32, dh: usize, states: usize, dG: usize, dGall: usize,
): void {
  for (let b = b0; b < b1; b++) {
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
    let j = 0;
    for (; j + 4 <= H; j += 4) rnnBackwardAt(j, relu, hr, dhb, dgs, dga, true);
    for (; j < H; j++) rnnBackwardAt(j, relu, hr, dhb, dgs, dga, false);
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

/** addColumnSums on the columns [j0, j1) of src [rows, n]: the share of one thread (Ap unused). */
export function addColumnSumsCols(j0: i32, j1: i32, Ap: usize, rows: i32, n: i32, src: usize, dst: usize): void {
  const o = <usize>j0 << 2;
  for (let r = 0; r < rows; r++) addInto(j1 - j0, src + ((<usize>r * <usize>n) << 2) + o, dst + o);
}

/** fillBias on the rows [j0, j1) of XP: the share of one thread (Ap unused). */
export function fillBiasRows(j0: i32, j1: i32, Ap: usize, G: i32, bIh: usize, bHh: usize, gruH: i32, XP: usize): void {
  fillBias(j1 - j0, G, bIh, bHh, gruH, XP + ((<usize>j0 * <usize>G) << 2));
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


// ---- a batch split into parts, one per thread: each part runs every step of the sequence on
// its own rows, with no barrier per step (the rows of h, c, dh and dc it owns are read by no
// other thread). The GEMM computes each row alike in a register tile of any height (and in the
// GEMV path), so the driver may cut the batch anywhere (evenly): every element gets the
// arithmetic of the whole-batch kernels, and results are bitwise those of one thread, for any
// number of parts. ----

/** The cells of seqForwardRows / seqBackwardRows (exported: src/backends/wasm-core.ts reads them). */
export const ROWS_LSTM: i32 = 0;
export const ROWS_GRU: i32 = 1; // reset-after (PyTorch)
export const ROWS_RNN_TANH: i32 = 2;
export const ROWS_RNN_RELU: i32 = 3;

/**
 * The forward of a whole sequence on the batch rows [b0, b1) (no projection): per step,
 * hp[b0:b1, G] = h[b0:b1, H] @ Whh (packB of wHh^T [H, G]; Ap: this thread's packedASize()
 * scratch), then the cell's step kernel on these rows, h [B,H] updated in place. kind: ROWS_*,
 * G its gates * H; c [B,H] (LSTM), bHhN (GRU: b_hh + 2H or 0), states [TB,H], gates / cells (saveFull: row
 * t*B+b, else b; LSTM inference: 0) as the cell's step kernel takes them.
 */
export function seqForwardRows(
  b0: i32, b1: i32, Ap: usize, kind: i32, B: i32, H: i32, G: i32, steps: i32, h: usize, c: usize, Whh: usize, hp: usize,
  tIdx: usize, xp: usize, bHhN: usize, states: usize, gates: usize, cells: usize, saveFull: i32, hard: i32,
  alpha: f32, beta: f32,
): void {
  const hRows = at(h, b0 * H);
  const hpRows = at(hp, b0 * G);
  for (let s = 0; s < steps; s++) {
    const ti = tIdx + (<usize>(s * B) << 2);
    gemmPackedRanges(0, b1 - b0, G, H, 1, hRows, H, Whh, 0, hpRows, G, Ap, 0, G, 0, 1);
    if (kind == ROWS_LSTM) {
      lstmForwardRange(0, H, b0, b1, B, H, ti, xp, hp, c, h, H, states, gates, cells, saveFull, hard, alpha, beta, 0);
    } else if (kind == ROWS_GRU) {
      gruForwardRange(b0, b1, B, H, ti, xp, hp, bHhN, h, states, gates, cells, saveFull, hard, alpha, beta);
    } else {
      rnnForwardRange(b0, b1, B, H, ti, xp, hp, kind == ROWS_RNN_RELU ? 1 : 0, h, states);
    }
  }
}

/**
 * The backward of a whole sequence (no projection) on the batch rows [b0, b1), last step first:
 * dh += dy of the step (dy [TB, dyStride] at dyOffset, or 0), the cell's gate gradients of these
 * rows (dG [B,G] this step's recurrent side; dGi / dGh [TB,G] at row t*B+b: the same buffer but
 * for GRU), then the recurrent delta dh[b0:b1, H] += dG[b0:b1, G] @ WhhN (packB of wHh [G, H]).
 * dh [B,H], dc [B,H] (LSTM) in/out; gates, cells, states, h0 / c0 (or 0) as the step kernels take them.
 */
export function seqBackwardRows(
  b0: i32, b1: i32, Ap: usize, kind: i32, B: i32, H: i32, G: i32, steps: i32, WhhN: usize, tIdx: usize, prevT: usize,
  dh: usize, dy: usize, dyStride: i32, dyOffset: i32, dc: usize, gates: usize, cells: usize, states: usize,
  h0: usize, c0: usize, dG: usize, dGi: usize, dGh: usize, hard: i32, alpha: f32,
): void {
  const dGRows = at(dG, b0 * G);
  const dhRows = at(dh, b0 * H);
  for (let s = steps - 1; s >= 0; s--) {
    const ti = tIdx + (<usize>(s * B) << 2);
    const pt = prevT + (<usize>(s * B) << 2);
    if (dy) addDyRange(b0, b1, B, H, ti, dh, dy, dyStride, dyOffset);
    if (kind == ROWS_LSTM) {
      lstmBackwardRange(0, H, b0, b1, B, H, H, ti, pt, dh, dh, 0, H, dc, gates, cells, c0, dG, dGi, hard, alpha);
    } else if (kind == ROWS_GRU) {
      gruBackwardRange(b0, b1, B, H, ti, pt, dh, gates, cells, states, h0, dG, dGi, dGh, hard, alpha);
    } else {
      rnnBackwardRange(b0, b1, B, H, ti, kind == ROWS_RNN_RELU ? 1 : 0, dh, states, dG, dGi);
    }
    gemmPackedRanges(0, b1 - b0, H, G, 1, dGRows, G, WhhN, 1, dhRows, H, Ap, 0, H, 0, 1);
  }
}
