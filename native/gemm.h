// SGEMM driver over the per-ISA kernels: packing, threading, the naive reference.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels.h"
#include "platform.h"

namespace rk {

// Recycles large aligned blocks between calls (the saved activations of one training step are
// freed after backward and needed again by the next forward): avoids returning them to the OS and
// page-faulting fresh zero pages every step. Bounded (at most 64 blocks and 256 MiB); thread-safe.
void* cache_take(size_t bytes, size_t* got);
void cache_give(void* p, size_t bytes);
// The bytes and blocks the cache holds now; cache_clear frees them all.
void cache_stats(size_t* bytes, size_t* blocks);
void cache_clear();

// 64-byte aligned float buffer (grow-only, contents not initialised unless asked).
struct FBuf {
  float* p = nullptr;
  size_t n = 0;      // floats usable
  size_t bytes = 0;  // bytes allocated
  FBuf() = default;
  FBuf(const FBuf&) = delete;
  FBuf& operator=(const FBuf&) = delete;
  ~FBuf() { release(); }
  float* ensure(size_t count) {
    if (count > n) {
      release();
      size_t want = (count * sizeof(float) + 63) & ~(size_t)63;
      if (want == 0) want = 64;
      size_t got = 0;
      void* q = cache_take(want, &got);
      if (!q) {
        q = aligned_alloc64(want);
        if (!q) throw_oom();
        got = want;
      }
      p = static_cast<float*>(q);
      bytes = got;
      n = got / sizeof(float);
    }
    return p;
  }
  float* zeros(size_t count) {
    ensure(count);
    if (count) memset(p, 0, count * sizeof(float));
    return p;
  }
  void release() {
    if (p) cache_give(p, bytes);
    p = nullptr;
    n = 0;
    bytes = 0;
  }
  static void throw_oom();
};

// Floats needed by pack_b for op(B) [K, N].
size_t packed_b_size(const IsaKernels& k, int K, int N);
// Packs op(B) [K, N] (all panels, in parallel).
void pack_b_all(const IsaKernels& k, const float* B, int64_t ldb, bool transB, int K, int N, float* out);
// C[M, N] = alpha * op(A) @ packedB + beta * C, split over the thread pool (at most maxThreads
// threads when it is > 0).
void gemm_packed(const IsaKernels& k, int M, int N, int K, float alpha, const float* A, int64_t lda,
                 bool transA, const float* packedB, float beta, float* C, int64_t ldc, int maxThreads = 0);
// Products with few rows (1..k.gemv_rows, batch-1 streaming) read op(B) from the GEMV layout
// (kernels.h): floats needed, packing (in parallel), and C = alpha * op(A) @ packed + beta * C
// split over the thread pool by column blocks (each column's sums in the same order for any split);
// backwards: each thread takes its blocks last to first; maxThreads > 0: at most that many threads.
size_t gemv_packed_size(const IsaKernels& k, int K, int N);
void pack_gemv_all(const IsaKernels& k, const float* B, int64_t ldb, bool transB, int K, int N, float* out);
void gemv_packed(const IsaKernels& k, int M, int N, int K, float alpha, const float* A, int64_t lda, bool transA,
                 const float* packed, float beta, float* C, int64_t ldc, bool backwards = false, int maxThreads = 0);
// The threads gemv_packed splits op(B) [K, N] over (1: the calling thread alone).
int gemv_threads(const IsaKernels& k, int K, int N, int maxThreads = 0);
// Whether products with M rows take the GEMV path of k.
inline bool use_gemv(const IsaKernels& k, int M) { return k.gemv_compute && M >= 1 && M <= k.gemv_rows; }

class WeightPacks;

// op(B) [K, N] of a sequence's per-step products C[M, N] = alpha * op(A)[M, K] @ op(B) + beta * C,
// packed once for all steps: the GEMM layout when some step has more than gemv_rows rows, the
// GEMV layout when some step has 1..gemv_rows (rows shrink over the steps with variable lengths).
struct StepWeights {
  FBuf gemmBuf, gemvBuf;
  const float* packedGemm = nullptr;
  const float* packedGemv = nullptr;
  int K = 0, N = 0;
  // Direction of the next GEMV pass over the blocks: it alternates, so each step first reads the
  // blocks the previous step read last (still in cache when the weights do not all fit).
  bool backwards = false;
  // The most threads a step's product splits over (0: the pool's; 1: the calling thread alone).
  int threads = 0;
  // rows: the row count of each step's product; packs: the forms of the immutable weight B is
  // part of (from float offset of it), which keeps the layouts made once, or null (packed here)
  void pack(const IsaKernels& k, const float* B, int64_t ldb, bool transB, int K_, int N_, const std::vector<int>& rows,
            WeightPacks* packs = nullptr, int64_t offset = 0);
};
void gemm_step(const IsaKernels& k, int M, float alpha, const float* A, int64_t lda, StepWeights& w, float beta,
               float* C, int64_t ldc);

// Rows [m0, m1) of gemm_step's product with M rows, on the calling thread, the same bits as
// gemm_step gives those rows (a row's sums do not depend on its register tile). Steps that
// take the GEMV path (M <= k.gemv_rows) run whole: the caller passes m0 = 0, m1 = M for them.
void gemm_step_rows(const IsaKernels& k, int M, int m0, int m1, float alpha, const float* A, int64_t lda,
                    StepWeights& w, float beta, float* C, int64_t ldc);

// Forms the kernels make of an immutable weight (a weight copy of the addon), each made on first
// use and then shared by every call that reads the weight: the layouts the sequence kernels pack
// a weight into (the GEMM and GEMV layouts of op(B), W_hh of a batch-1 LSTM), one per kernel table
// (ISA), part of the weight and shape. Thread-safe: calls that race to make the same form each
// pack it and the first one stored serves all (the packed values are the same).
class WeightPacks {
 public:
  WeightPacks() = default;
  WeightPacks(const WeightPacks&) = delete;
  WeightPacks& operator=(const WeightPacks&) = delete;
  ~WeightPacks();
  // What identifies a form: the packing function (of a kernel table: it fixes the layout), and
  // the part of the weight it packs: from float `offset`, op(B) [K, N] with row stride ld.
  struct Key {
    const void* pack;
    int64_t offset, ld;
    int K, N;
    bool trans;
    bool operator==(const Key& o) const {
      return pack == o.pack && offset == o.offset && ld == o.ld && K == o.K && N == o.N && trans == o.trans;
    }
  };
  // The form of key: floats of it, made by make(out) on first use.
  const float* get(const Key& key, size_t floats, const std::function<void(float*)>& make);
  // bytes of the forms made so far
  int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  struct Form {
    Key key;
    FBuf buf;
  };
  const float* find(const Key& key) const;
  mutable std::mutex m_;
  std::vector<std::unique_ptr<Form>> forms_;
  std::atomic<int64_t> bytes_{0};
};
// op(B) [K, N] in the GEMM layout (pack_b_all) for gemm_packed, B read from float offset of the
// immutable weight w whose forms packs keeps: packed on first use.
const float* packed_b_of(const IsaKernels& k, WeightPacks& packs, const float* w, int64_t offset, int64_t ldb,
                         bool transB, int K, int N);
// The same op(B) in the GEMV layout (pack_gemv_all) for gemv_packed.
const float* packed_gemv_of(const IsaKernels& k, WeightPacks& packs, const float* w, int64_t offset, int64_t ldb,
                            bool transB, int K, int N);
// Bytes of the packed forms every live WeightPacks holds, and how many forms were made so far.
void weight_packs_stats(size_t* bytes, size_t* made);

// W_hh of a batch-1 LSTM (no projection) in the layout of k.lstm_gemv_fwd, for all steps of a
// call, and the step over it: one pass over the weights that leaves h_t, c_t and the gates of r
// (r.gh: [4H] scratch). Split over the thread pool by blocks of units, each pool thread keeping
// the blocks it had in the previous step (they stay in its core's cache); the bits do not depend
// on the split. The layout is packed by the call (pack), or a weight copy's, made once (use).
struct LstmStepWeights {
  FBuf buf;                       // the layout packed by this call
  const float* packed = nullptr;  // the layout the steps read: buf, or a weight copy's
  int H = 0, blocks = 0;
  bool backwards = false;  // alternates as in StepWeights
  int threads = 0;         // the most threads a step splits over (0: the pool's), as in StepWeights
  static bool usable(const IsaKernels& k) { return k.lstm_gemv_fwd != nullptr && k.gemv_rows >= 1; }
  // The threads a step of hidden size H splits over, at most maxThreads when it is > 0 (1: none).
  static int split_threads(const IsaKernels& k, int H, int maxThreads = 0);
  void pack(const IsaKernels& k, const float* wHh, int H_);  // wHh [4H, H]
  void use(const IsaKernels& k, WeightPacks& packs, const float* wHh, int H_);  // wHh immutable, packs its forms

 private:
  void start(const IsaKernels& k, int H_);  // H, blocks and the first step's direction
};
// Floats of W_hh [4H, H] in the batch-1 LSTM layout of k, and the packing (over the pool).
size_t lstm_step_packed_size(const IsaKernels& k, int H);
void pack_lstm_step(const IsaKernels& k, const float* wHh, int H, float* out);
void lstm_step(const IsaKernels& k, LstmStepWeights& w, const CellRowFwd& r);

// Full GEMM (the Backend.gemm semantics), packs B into a thread-local buffer.
void gemm(const IsaKernels& k, bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// The weight gradients of two inputs from one output gradient, as one product when the first part's
// columns fill whole panels (op(A) packed once for both):
//   C1[M, N1] += A^T @ B1[K, N1],  C2[M, N2] += A^T @ B2[K, N2],  A [K, M] (row stride lda)
// i.e. [C1 | C2] += A^T @ [B1 | B2]. Each element gets the sums of gemm(true, false, ...) with
// beta 1 on a zero C (the product is formed in scratch, then added).
void gemm_tn_pair(const IsaKernels& k, int M, int K, const float* A, int64_t lda, const float* B1, int64_t ldb1,
                  int N1, float* C1, int64_t ldc1, const float* B2, int64_t ldb2, int N2, float* C2, int64_t ldc2);
// gemm_naive: the same contract, triple loop, the reference the tiled kernel is tested against.
void gemm_naive(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// gemm_naive_bf16: op(A) and op(B) rounded to bf16 (bf16_round) first, then the triple loop with
// products and sums in double: the reference of the bf16 kernels (matmul precision 'medium').
void gemm_naive_bf16(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
float bf16_round(float x);

}  // namespace rk
