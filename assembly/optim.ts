// Optimizer update kernels (native/optim.cpp): PyTorch's update rules element by element in
// float64 with the state tensors (param, m, v, momentum buffer) kept in float32: each is rounded
// when stored and the stored value is what later terms use, as in PyTorch where they are float32
// tensors.
import { ld, st } from './common';

// Adam / AdamW (torch.optim.Adam / AdamW, amsgrad off), param, grad, m, v [n], step t >= 1:
//   decoupled (AdamW): p = p * (1 - lr * wd); else g = g + wd * p
//   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
//   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
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

/** adamUpdate on the elements [j0, j1): the share of one thread (Ap unused). */
export function adamUpdateRange(
  j0: i32, j1: i32, Ap: usize, param: usize, grad: usize, m: usize, v: usize, decoupled: i32, lr: f64, beta1: f64,
  beta2: f64, eps: f64, weightDecay: f64, step: f64,
): void {
  const o = <usize>j0 << 2;
  adamUpdate(j1 - j0, param + o, grad + o, m + o, v + o, lr, beta1, beta2, eps, weightDecay, decoupled, step);
}

// SGD (torch.optim.SGD), param, grad, buf [n] (buf unused when momentum = 0):
//   g = grad + wd * p
//   momentum != 0: buf = first ? g : momentum * buf + (1 - dampening) * g  (float32)
//                  g = nesterov ? g + momentum * buf : buf
//   p = p - lr * g
export function sgdUpdate(
  n: i32, param: usize, grad: usize, buf: usize, lr: f64, momentum: f64, dampening: f64,
  weightDecay: f64, nesterov: i32, firstStep: i32,
): void {
  for (let i = 0; i < n; i++) {
    const p = <f64>ld(param, i);
    let g = <f64>ld(grad, i) + weightDecay * p;
    if (momentum != 0) {
      const b = <f64><f32>(firstStep ? g : momentum * <f64>ld(buf, i) + (1 - dampening) * g);
      st(buf, i, <f32>b);
      g = nesterov ? g + momentum * b : b;
    }
    st(param, i, <f32>(p - lr * g));
  }
}
