// Loss and reduction kernels (ISA-independent scalar code): cross-entropy over class logits, the
// sum of squares used by gradient-norm clipping, and the column sums of bias gradients. Callers check shapes and target ids first (addon.cpp).
// Mirrors assembly/losses.ts and the reference backend (src/backends/reference.ts).
#pragma once
#include <stdint.h>

namespace rk {

// logits [N, C], targets [N] (each in [0, C) or == ignoreIndex) -> probs [N, C], losses [N]:
//   probs[n, c] = exp(logits[n, c] - lse_n), lse_n = max_n + log(sum_c exp(logits[n, c] - max_n)),
//   losses[n] = lse_n - logits[n, target] (0 for an ignored row); in float64, rounded on store.
void cross_entropy_forward(int64_t N, int64_t C, const float* logits, const int32_t* targets, int64_t ignoreIndex,
                           float* probs, float* losses);

// dLogits [N, C] += dLosses[n] * (probs[n, c] - onehot(target)[c]), ignored rows unchanged;
// in float64 (the sum included), rounded on store.
void cross_entropy_backward(int64_t N, int64_t C, const float* probs, const int32_t* targets, int64_t ignoreIndex,
                            const float* dLosses, float* dLogits);

// sum_i x[i]^2 in float64 (four partial sums, so it differs from a sequential float64 sum by
// rounding only: a relative 1e-15 or so).
double sum_squares(int64_t n, const float* x);

// dst[N] += column sums of src[M, N] (row-major): each column's sum starts
// at 0 and adds the rows in order in float32, then is added to dst (bias gradients: dB += sum_m dY).
// Each pool thread takes a block of whole cache lines of columns, so the bits never depend on the
// thread count.
void colsum_add(const float* src, int64_t M, int N, float* dst);

}  // namespace rk
