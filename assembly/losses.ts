// Loss kernels (native/losses.cpp): cross-entropy over class logits, sum of squares. The
// callers (src/backends/wasm-core.ts, after src/backends/validate.ts) check target ids.
import { at, ld, ldi, st } from './common';

// logits [N,C], targets i32 [N] (each in [0, C) or == ignoreIndex) -> probs [N,C], losses [N]:
//   probs[n,c] = exp(logits[n,c] - lse_n), lse_n = max_n + log(sum_c exp(logits[n,c] - max_n)),
//   losses[n] = lse_n - logits[n,target] (0 for an ignored row); in f64, rounded on store.
export function crossEntropyForward(N: i32, C: i32, logits: usize, targets: usize, ignoreIndex: i32, probs: usize, losses: usize): void {
  for (let n = 0; n < N; n++) {
    const lr = at(logits, n * C);
    const pr = at(probs, n * C);
    let mx: f64 = -Infinity;
    for (let c = 0; c < C; c++) {
      const v = <f64>ld(lr, c);
      mx = v > mx ? v : mx;
    }
    let sum: f64 = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(<f64>ld(lr, c) - mx);
    const logSum = mx + Math.log(sum);
    for (let c = 0; c < C; c++) st(pr, c, <f32>Math.exp(<f64>ld(lr, c) - logSum));
    const target = ldi(targets, n);
    st(losses, n, target == ignoreIndex ? <f32>0 : <f32>(logSum - <f64>ld(lr, target)));
  }
}

/** crossEntropyForward on the rows [j0, j1): the share of one thread (Ap unused). */
export function crossEntropyForwardRows(
  j0: i32, j1: i32, Ap: usize, C: i32, logits: usize, targets: usize, ignoreIndex: i32, probs: usize, losses: usize,
): void {
  const o = <usize>j0 << 2;
  const oc = <usize>j0 * <usize>C << 2;
  crossEntropyForward(j1 - j0, C, logits + oc, targets + o, ignoreIndex, probs + oc, losses + o);
}

// dLogits [N,C] += dLosses[n] * (probs[n,c] - onehot(target)[c]), ignored rows unchanged; in f64
// (the sum included), rounded on store.
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

// sum_i x[i]^2 in f64 (sequentially; native keeps four partial sums, a relative 1e-15 apart).
export function sumSquares(n: i32, x: usize): f64 {
  let acc: f64 = 0;
  for (let i = 0; i < n; i++) {
    const v = <f64>ld(x, i);
    acc += v * v;
  }
  return acc;
}

