#include "optim.h"

#include <algorithm>
#include <cmath>

#include "pool.h"

// Plain float64 arithmetic, never fused into FMA (arm64 has FMA in its baseline), so every
// platform rounds as the wasm and reference backends do.
#ifdef __clang__
#pragma clang fp contract(off)
#else
#pragma GCC optimize("fp-contract=off")
#endif

namespace rk {

void adam_update(int64_t n, float* p, const float* grad, float* m, float* v, double lr, double beta1, double beta2,
                 double eps, double wd, bool decoupled, double step) {
  const double bc1 = 1 - std::pow(beta1, step), bc2 = 1 - std::pow(beta2, step);
  const double stepSize = lr / bc1, bc2Sqrt = std::sqrt(bc2);
  parallel_range(n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      double g = grad[i];
      if (decoupled) p[i] = (float)(p[i] * (1 - lr * wd));
      else if (wd != 0) g += wd * p[i];
      m[i] = (float)(beta1 * m[i] + (1 - beta1) * g);
      v[i] = (float)(beta2 * v[i] + (1 - beta2) * g * g);
      p[i] = (float)(p[i] - stepSize * m[i] / (std::sqrt((double)v[i]) / bc2Sqrt + eps));
    }
  });
}

void sgd_update(int64_t n, float* p, const float* grad, float* buf, double lr, double momentum, double dampening,
                double wd, bool nesterov, bool firstStep) {
  parallel_range(n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      double g = grad[i] + wd * p[i];
      if (momentum != 0) {
        buf[i] = (float)(firstStep ? g : momentum * buf[i] + (1 - dampening) * g);
        g = nesterov ? g + momentum * buf[i] : buf[i];
      }
      p[i] = (float)(p[i] - lr * g);
    }
  });
}

}  // namespace rk
