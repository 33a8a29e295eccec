// Optimizer update kernels (ISA-independent scalar code), PyTorch's update rules element by
// element in float64 with the state tensors (param, m, v, momentum buffer) kept in float32: each
// is rounded when stored and the stored value is what later terms use, as in PyTorch where they
// are float32 tensors. Mirrors assembly/optim.ts and the reference backend.
#pragma once
#include <stdint.h>

namespace rk {

// Adam / AdamW (torch.optim.Adam / AdamW, amsgrad off), param, grad, m, v [n], step t >= 1:
//   decoupled (AdamW): p = p * (1 - lr * wd); else g = g + wd * p
//   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
//   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
void adam_update(int64_t n, float* param, const float* grad, float* m, float* v, double lr, double beta1,
                 double beta2, double eps, double weightDecay, bool decoupled, double step);

// SGD (torch.optim.SGD), param, grad, buf [n] (buf unused when momentum = 0):
//   g = grad + wd * p
//   momentum != 0: buf = first ? g : momentum * buf + (1 - dampening) * g  (float32)
//                  g = nesterov ? g + momentum * buf : buf
//   p = p - lr * g
void sgd_update(int64_t n, float* param, const float* grad, float* buf, double lr, double momentum,
                double dampening, double weightDecay, bool nesterov, bool firstStep);

}  // namespace rk
