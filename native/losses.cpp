#include "losses.h"

#include <algorithm>
#include <cmath>

#include "gemm.h"
#include "pool.h"

// Plain float64 arithmetic, never fused into FMA (arm64 has FMA in its baseline), so every
// platform rounds as the wasm and reference backends do.
#ifdef __clang__
#pragma clang fp contract(off)
#else
#pragma GCC optimize("fp-contract=off")
#endif

namespace rk {

void cross_entropy_forward(int64_t N, int64_t C, const float* logits, const int32_t* targets, int64_t ignoreIndex,
                           float* probs, float* losses) {
  parallel_range(N, C, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* l = logits + n * C;
      float* p = probs + n * C;
      double mx = -INFINITY;
      for (int64_t c = 0; c < C; c++) mx = l[c] > mx ? l[c] : mx;
      double sum = 0;
      for (int64_t c = 0; c < C; c++) sum += std::exp((double)l[c] - mx);
      const double logSum = mx + std::log(sum);
      for (int64_t c = 0; c < C; c++) p[c] = (float)std::exp((double)l[c] - logSum);
      losses[n] = targets[n] == ignoreIndex ? 0.0f : (float)(logSum - (double)l[targets[n]]);
    }
  });
}

void cross_entropy_backward(int64_t N, int64_t C, const float* probs, const int32_t* targets, int64_t ignoreIndex,
                            const float* dLosses, float* dLogits) {
  parallel_range(N, C, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      if (targets[n] == ignoreIndex) continue;
      const double g = dLosses[n];
      const float* p = probs + n * C;
      float* d = dLogits + n * C;
      for (int64_t c = 0; c < C; c++) d[c] = (float)((double)d[c] + g * ((double)p[c] - (c == targets[n] ? 1.0 : 0.0)));
    }
  });
}

double sum_squares(int64_t n, const float* x) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; j++) acc[j] += (double)x[i + j] * x[i + j];
  for (; i < n; i++) acc[0] += (double)x[i] * x[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// Each thread takes one block of columns and streams the rows through it (losses.h).
void colsum_add(const float* src, int64_t M, int N, float* dst) {
  if (N <= 0) return;
  const int nt = M * N < 65536 ? 1 : std::min(pool_threads(), (N + 15) / 16);
  const int chunk = (N / nt + 15) / 16 * 16;  // columns per thread, whole cache lines
  const int nchunks = (N + chunk - 1) / chunk;
  FBuf tAcc;
  float* accs = tAcc.ensure((size_t)nchunks * chunk);  // [nchunks, chunk] the sums of each block
  parallel_for(nchunks, [&](int c) {
    float* acc = accs + (int64_t)c * chunk;
    const int n0 = c * chunk, nn = std::min(chunk, N - n0);
    for (int n = 0; n < nn; n++) acc[n] = 0.0f;
    for (int64_t m = 0; m < M; m++) {
      const float* row = src + m * N + n0;
      for (int n = 0; n < nn; n++) acc[n] += row[n];
    }
    for (int n = 0; n < nn; n++) dst[n0 + n] += acc[n];
  });
}

}  // namespace rk
