#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <new>
#include <type_traits>
#include <vector>

#include "pool.h"

namespace rk {

void FBuf::throw_oom() { throw std::bad_alloc(); }

namespace {
struct Block {
  void* p;
  size_t bytes;
};
// The recycled blocks, shared by every thread under one lock. Never destroyed: threads that end
// after main() has returned (libuv's pool, worker_threads, the kernel pool) still give their
// thread-local buffers back here from their thread_local destructors.
struct BlockCache {
  std::mutex m;
  std::vector<Block> blocks;  // oldest first
  size_t bytes = 0;
};
BlockCache& block_cache() {
  static BlockCache* c = new BlockCache();
  return *c;
}
// Blocks from 64 KiB up are recycled (the saved activations and the per-call scratch of the
// sequence kernels), smaller ones go straight to malloc / free. The cache holds at most
// kCacheCount blocks and kCacheMax bytes (a larger block is freed at once); the oldest go first.
constexpr size_t kCacheMin = (size_t)64 << 10;
constexpr size_t kCacheMax = (size_t)256 << 20;
constexpr size_t kCacheCount = 64;
}  // namespace

// Best fit among cached blocks of [bytes, 2 * bytes].
void* cache_take(size_t bytes, size_t* got) {
  if (bytes < kCacheMin) return nullptr;
  BlockCache& c = block_cache();
  std::lock_guard<std::mutex> lk(c.m);
  size_t best = c.blocks.size();
  for (size_t i = 0; i < c.blocks.size(); i++) {
    const size_t b = c.blocks[i].bytes;
    if (b >= bytes && b <= 2 * bytes && (best == c.blocks.size() || b < c.blocks[best].bytes)) best = i;
  }
  if (best == c.blocks.size()) return nullptr;
  Block blk = c.blocks[best];
  c.blocks.erase(c.blocks.begin() + (ptrdiff_t)best);
  c.bytes -= blk.bytes;
  *got = blk.bytes;
  return blk.p;
}

void cache_clear() {
  BlockCache& c = block_cache();
  std::lock_guard<std::mutex> lk(c.m);
  for (const Block& b : c.blocks) aligned_free(b.p);
  c.blocks.clear();
  c.bytes = 0;
}

void cache_stats(size_t* bytes, size_t* blocks) {
  BlockCache& c = block_cache();
  std::lock_guard<std::mutex> lk(c.m);
  *bytes = c.bytes;
  *blocks = c.blocks.size();
}

void cache_give(void* p, size_t bytes) {
  if (bytes >= kCacheMin && bytes <= kCacheMax) {
    BlockCache& c = block_cache();
    std::lock_guard<std::mutex> lk(c.m);
    // make room: drop the oldest blocks
    while (!c.blocks.empty() && (c.bytes + bytes > kCacheMax || c.blocks.size() >= kCacheCount)) {
      aligned_free(c.blocks.front().p);
      c.bytes -= c.blocks.front().bytes;
      c.blocks.erase(c.blocks.begin());
    }
    c.blocks.push_back({p, bytes});
    c.bytes += bytes;
    return;
  }
  aligned_free(p);
}

size_t packed_b_size(const IsaKernels& k, int K, int N) { return (size_t)k.packed_b_floats(K, N); }

// Packs the panels (width columns each) of op(B) [K, N] with pack, split over the threads when large.
using PackPanels = void (*)(const float* B, int64_t ldb, int transB, int K, int N, float* out, int p0, int p1);
static void pack_all_panels(PackPanels pack, int width, const float* B, int64_t ldb, bool transB, int K, int N,
                            float* out) {
  const int np = (N + width - 1) / width;
  const int nt = (int64_t)K * N < 32768 ? 1 : std::min(pool_threads(), np);
  parallel_for(nt, [&](int t) {
    const int p0 = (int)((int64_t)np * t / nt), p1 = (int)((int64_t)np * (t + 1) / nt);
    if (p1 > p0) pack(B, ldb, transB ? 1 : 0, K, N, out, p0, p1);
  });
}

void pack_b_all(const IsaKernels& k, const float* B, int64_t ldb, bool transB, int K, int N, float* out) {
  pack_all_panels(k.pack_b, k.NR, B, ldb, transB, K, N, out);
}

// Per-thread packing buffers: a thread runs one GEMM task at a time, so its own buffer is never
// shared (the pool's workers, libuv's threads and the main thread each have theirs).
static thread_local FBuf tl_packA;
static thread_local FBuf tl_packB;

void gemm_packed(const IsaKernels& k, int M, int N, int K, float alpha, const float* A, int64_t lda,
                 bool transA, const float* packedB, float beta, float* C, int64_t ldc, int maxThreads) {
  if (M <= 0 || N <= 0) return;
  const int np = (N + k.NR - 1) / k.NR;
  const int nm = (M + k.MR - 1) / k.MR;
  const double flops = 2.0 * M * N * (double)K;
  // below ~1 MFLOP (about 10 us on one core) waking a second thread costs more than it saves,
  // and on a machine whose other core is busy it can stall the call
  int nt = flops < 1e6 ? 1 : pool_threads_capped(maxThreads);
  // split the larger dimension (in register tiles) over the threads; with more rows than columns
  // the rows, even when the columns would do: each thread then packs (or reads) only its own rows
  // of op(A), where a column split has every thread pack all of op(A)
  const bool splitN = np >= nm || (np >= 2 * nt && N >= M);
  const int units = splitN ? np : nm;
  if (nt > units) nt = units;
  // A large row split goes as whole row blocks (MC rows), several per thread, claimed as threads
  // come free: a thread slowed down (another process on its core) takes fewer of them
  const int mcTiles = k.MC / k.MR, blocks = (nm + mcTiles - 1) / mcTiles;
  const bool byBlocks = !splitN && nt > 1 && flops >= 3e7 && blocks >= 2 * nt;
  const int ntasks = byBlocks ? std::min(blocks, 4 * nt) : nt;
  parallel_for(ntasks, [&](int t) {
    int u0 = (int)((int64_t)units * t / nt), u1 = (int)((int64_t)units * (t + 1) / nt);
    if (byBlocks) {
      u0 = (int)((int64_t)blocks * t / ntasks) * mcTiles;
      u1 = std::min(nm, (int)((int64_t)blocks * (t + 1) / ntasks) * mcTiles);
    }
    if (u1 <= u0) return;
    float* pa = tl_packA.ensure((size_t)k.MC * k.KC + 64);  // + slack for pack_a's vector copies
    if (splitN) {
      k.gemm_compute(M, N, K, alpha, A, lda, transA ? 1 : 0, packedB, beta, C, ldc, 0, M, u0, u1, pa);
    } else {
      k.gemm_compute(M, N, K, alpha, A, lda, transA ? 1 : 0, packedB, beta, C, ldc, u0 * k.MR,
                     std::min(M, u1 * k.MR), 0, np, pa);
    }
  });
}

// Runs f(part) for the parts 0..n-1 over the pool. A pool thread takes the part it ran in the
// previous call when that part is still free (the pool hands tasks to whichever thread claims them
// first), so at a fixed thread count each thread keeps working on the same part of the weights.
static thread_local int tl_part = -1;
template <class F>
static void parallel_sticky(int n, F&& f) {
  if (n > 64) {
    parallel_for(n, f);
    return;
  }
  std::atomic<uint64_t> taken{0};
  parallel_for(n, [&](int t) {
    int part = tl_part >= 0 && tl_part < n ? tl_part : t;
    uint64_t was = taken.fetch_or((uint64_t)1 << part);
    while (was & ((uint64_t)1 << part)) {  // taken: the lowest free part (one exists: n tasks, n parts)
      part = __builtin_ctzll(~was);
      was = taken.fetch_or((uint64_t)1 << part);
    }
    tl_part = part;
    f(part);
  });
}

size_t gemv_packed_size(const IsaKernels& k, int K, int N) { return (size_t)k.gemv_packed_floats(K, N); }

void pack_gemv_all(const IsaKernels& k, const float* B, int64_t ldb, bool transB, int K, int N, float* out) {
  pack_all_panels(k.pack_gemv, k.GV, B, ldb, transB, K, N, out);
}

int gemv_threads(const IsaKernels& k, int K, int N, int maxThreads) {
  // the product streams K * N weights: a second thread pays off from about 64K of them (each
  // core then reads its half from its own cache)
  return (int64_t)K * N < 65536 ? 1 : std::min(pool_threads_capped(maxThreads), (N + k.GV - 1) / k.GV);
}

void gemv_packed(const IsaKernels& k, int M, int N, int K, float alpha, const float* A, int64_t lda, bool transA,
                 const float* packed, float beta, float* C, int64_t ldc, bool backwards, int maxThreads) {
  if (M <= 0 || N <= 0) return;
  const int np = (N + k.GV - 1) / k.GV;
  const int nt = gemv_threads(k, K, N, maxThreads);
  parallel_sticky(nt, [&](int t) {
    const int p0 = (int)((int64_t)np * t / nt), p1 = (int)((int64_t)np * (t + 1) / nt);
    if (!backwards) {
      if (p1 > p0) k.gemv_compute(M, N, K, alpha, A, lda, transA ? 1 : 0, packed, beta, C, ldc, p0, p1);
    } else {
      for (int p = p1 - 1; p >= p0; p--) k.gemv_compute(M, N, K, alpha, A, lda, transA ? 1 : 0, packed, beta, C, ldc, p, p + 1);
    }
  });
}

void StepWeights::pack(const IsaKernels& k, const float* B, int64_t ldb, bool transB, int K_, int N_,
                       const std::vector<int>& rows, WeightPacks* packs, int64_t offset) {
  K = K_;
  N = N_;
  packedGemm = packedGemv = nullptr;
  backwards = false;
  if (K <= 0 || N <= 0) return;
  bool anyGemm = false, anyGemv = false;
  for (int m : rows) {
    anyGemv = anyGemv || use_gemv(k, m);
    anyGemm = anyGemm || (m > 0 && !use_gemv(k, m));
  }
  if (anyGemm && packs) {
    packedGemm = packed_b_of(k, *packs, B - offset, offset, ldb, transB, K, N);
  } else if (anyGemm) {
    float* p = gemmBuf.ensure(packed_b_size(k, K, N));
    pack_b_all(k, B, ldb, transB, K, N, p);
    packedGemm = p;
  }
  if (anyGemv && packs) {
    packedGemv = packed_gemv_of(k, *packs, B - offset, offset, ldb, transB, K, N);
  } else if (anyGemv) {
    float* p = gemvBuf.ensure(gemv_packed_size(k, K, N));
    pack_gemv_all(k, B, ldb, transB, K, N, p);
    packedGemv = p;
  }
}

void gemm_step(const IsaKernels& k, int M, float alpha, const float* A, int64_t lda, StepWeights& w, float beta,
               float* C, int64_t ldc) {
  if (M <= 0 || w.N <= 0) return;
  if (w.K <= 0) {  // C = beta * C
    for (int m = 0; m < M; m++) {
      float* c = C + (int64_t)m * ldc;
      if (beta == 0.0f) memset(c, 0, sizeof(float) * (size_t)w.N);
      else if (beta != 1.0f) for (int n = 0; n < w.N; n++) c[n] *= beta;
    }
    return;
  }
  if (use_gemv(k, M)) {
    gemv_packed(k, M, w.N, w.K, alpha, A, lda, false, w.packedGemv, beta, C, ldc, w.backwards, w.threads);
    w.backwards = !w.backwards;
    return;
  }
  gemm_packed(k, M, w.N, w.K, alpha, A, lda, false, w.packedGemm, beta, C, ldc, w.threads);
}

void gemm_step_rows(const IsaKernels& k, int M, int m0, int m1, float alpha, const float* A, int64_t lda,
                    StepWeights& w, float beta, float* C, int64_t ldc) {
  if (m1 <= m0 || w.N <= 0) return;
  if (w.K <= 0) {  // C = beta * C on these rows
    gemm_step(k, m1 - m0, alpha, A + (int64_t)m0 * lda, lda, w, beta, C + (int64_t)m0 * ldc, ldc);
    return;
  }
  if (use_gemv(k, M)) {  // the whole product (the split leaves such steps to one part)
    gemm_step(k, M, alpha, A, lda, w, beta, C, ldc);
    return;
  }
  float* pa = tl_packA.ensure((size_t)k.MC * k.KC + 64);  // + slack for pack_a's vector copies
  k.gemm_compute(M, w.N, w.K, alpha, A, lda, 0, w.packedGemm, beta, C, ldc, m0, m1, 0, (w.N + k.NR - 1) / k.NR, pa);
}

// Blocks of GV / 4 whole units in the batch-1 LSTM layout of k (pack_gemv_lstm).
static int lstm_step_blocks(const IsaKernels& k, int H) { return (H + k.GV / 4 - 1) / (k.GV / 4); }

size_t lstm_step_packed_size(const IsaKernels& k, int H) { return gemv_packed_size(k, H, 4 * H); }

void pack_lstm_step(const IsaKernels& k, const float* wHh, int H, float* out) {
  const int blocks = lstm_step_blocks(k, H);
  const int nt = (int64_t)H * H < 8192 ? 1 : std::min(pool_threads(), blocks);
  parallel_for(nt, [&](int t) {
    const int p0 = (int)((int64_t)blocks * t / nt), p1 = (int)((int64_t)blocks * (t + 1) / nt);
    if (p1 > p0) k.pack_gemv_lstm(wHh, H, H, H, out, p0, p1);
  });
}

void LstmStepWeights::start(const IsaKernels& k, int H_) {
  H = H_;
  blocks = lstm_step_blocks(k, H);
  backwards = false;
}

void LstmStepWeights::pack(const IsaKernels& k, const float* wHh, int H_) {
  start(k, H_);
  packed = buf.ensure(lstm_step_packed_size(k, H));
  pack_lstm_step(k, wHh, H, buf.p);
}

void LstmStepWeights::use(const IsaKernels& k, WeightPacks& packs, const float* wHh, int H_) {
  start(k, H_);
  const WeightPacks::Key key{reinterpret_cast<const void*>(k.pack_gemv_lstm), 0, H, H, 4 * H, false};
  packed = packs.get(key, lstm_step_packed_size(k, H), [&](float* out) { pack_lstm_step(k, wHh, H, out); });
}

static std::atomic<int64_t> g_packBytes{0};
static std::atomic<int64_t> g_packsMade{0};

void weight_packs_stats(size_t* bytes, size_t* made) {
  *bytes = (size_t)g_packBytes.load(std::memory_order_relaxed);
  *made = (size_t)g_packsMade.load(std::memory_order_relaxed);
}

WeightPacks::~WeightPacks() { g_packBytes.fetch_sub(bytes(), std::memory_order_relaxed); }

const float* WeightPacks::find(const Key& key) const {
  std::lock_guard<std::mutex> lk(m_);
  for (const auto& f : forms_)
    if (f->key == key) return f->buf.p;
  return nullptr;
}

const float* WeightPacks::get(const Key& key, size_t floats, const std::function<void(float*)>& make) {
  if (const float* p = find(key)) return p;
  // packed outside the lock (a call that needs another form does not wait for this one)
  auto form = std::make_unique<Form>();
  form->key = key;
  make(form->buf.ensure(floats));
  std::lock_guard<std::mutex> lk(m_);
  for (const auto& f : forms_)
    if (f->key == key) return f->buf.p;  // another call stored it first
  const int64_t b = (int64_t)form->buf.bytes;
  bytes_.fetch_add(b, std::memory_order_relaxed);
  g_packBytes.fetch_add(b, std::memory_order_relaxed);
  g_packsMade.fetch_add(1, std::memory_order_relaxed);
  forms_.push_back(std::move(form));
  return forms_.back()->buf.p;
}

const float* packed_b_of(const IsaKernels& k, WeightPacks& packs, const float* w, int64_t offset, int64_t ldb,
                         bool transB, int K, int N) {
  const WeightPacks::Key key{reinterpret_cast<const void*>(k.pack_b), offset, ldb, K, N, transB};
  return packs.get(key, packed_b_size(k, K, N), [&](float* out) { pack_b_all(k, w + offset, ldb, transB, K, N, out); });
}

const float* packed_gemv_of(const IsaKernels& k, WeightPacks& packs, const float* w, int64_t offset, int64_t ldb,
                            bool transB, int K, int N) {
  const WeightPacks::Key key{reinterpret_cast<const void*>(k.pack_gemv), offset, ldb, K, N, transB};
  return packs.get(key, gemv_packed_size(k, K, N), [&](float* out) { pack_gemv_all(k, w + offset, ldb, transB, K, N, out); });
}

int LstmStepWeights::split_threads(const IsaKernels& k, int H, int maxThreads) {
  // as gemv_packed over W_hh^T [H, 4H]: its column blocks are the step's blocks of units
  return gemv_threads(k, H, 4 * H, maxThreads);
}

void lstm_step(const IsaKernels& k, LstmStepWeights& w, const CellRowFwd& r) {
  const int nt = LstmStepWeights::split_threads(k, w.H, w.threads);
  const int back = w.backwards ? 1 : 0;
  if (nt <= 1) {
    k.lstm_gemv_fwd(w.packed, r, 0, w.blocks, back);
  } else {
    parallel_sticky(nt, [&](int t) {
      const int p0 = (int)((int64_t)w.blocks * t / nt), p1 = (int)((int64_t)w.blocks * (t + 1) / nt);
      if (p1 > p0) k.lstm_gemv_fwd(w.packed, r, p0, p1, back);
    });
  }
  w.backwards = !w.backwards;
}

void gemm(const IsaKernels& k, bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    // C = beta * C (beta 0: zeros, whatever C held)
    for (int m = 0; m < M; m++) {
      float* c = C + (int64_t)m * ldc;
      if (beta == 0.0f) memset(c, 0, sizeof(float) * (size_t)N);
      else if (beta != 1.0f) for (int n = 0; n < N; n++) c[n] *= beta;
    }
    return;
  }
  if (use_gemv(k, M)) {
    float* pv = tl_packB.ensure(gemv_packed_size(k, K, N));
    pack_gemv_all(k, B, ldb, transB, K, N, pv);
    gemv_packed(k, M, N, K, alpha, A, lda, transA, pv, beta, C, ldc);
    return;
  }
  // Few rows (op(A) at most kChunkFloats): packing all of op(B) first would write it out to memory
  // and read it back for little arithmetic per element, so op(B) is packed and used in column
  // chunks of about kChunkFloats that stay in cache. Each element of C gets the same sums either
  // way (the chunks are whole panels, the k blocks the same).
  constexpr int64_t kChunkFloats = (int64_t)1 << 16;  // 256 KiB
  int nc = N;
  if ((int64_t)M * K <= kChunkFloats && (int64_t)K * N > 2 * kChunkFloats)
    nc = (int)std::max<int64_t>(64 / k.NR * k.NR, kChunkFloats / K / k.NR * k.NR);
  float* pb = tl_packB.ensure(packed_b_size(k, K, nc));
  for (int n0 = 0; n0 < N; n0 += nc) {
    const int n = std::min(nc, N - n0);
    pack_b_all(k, transB ? B + (int64_t)n0 * ldb : B + n0, ldb, transB, K, n, pb);
    gemm_packed(k, M, n, K, alpha, A, lda, transA, pb, beta, C + n0, ldc);
  }
}

void gemm_tn_pair(const IsaKernels& k, int M, int K, const float* A, int64_t lda, const float* B1, int64_t ldb1,
                  int N1, float* C1, int64_t ldc1, const float* B2, int64_t ldb2, int N2, float* C2, int64_t ldc2) {
  const int N = N1 + N2;
  if (M <= 0 || K <= 0 || N1 <= 0 || N2 <= 0 || N1 % k.NR != 0 || use_gemv(k, M)) {
    gemm(k, true, false, M, N1, K, 1.0f, A, lda, B1, ldb1, 1.0f, C1, ldc1);
    gemm(k, true, false, M, N2, K, 1.0f, A, lda, B2, ldb2, 1.0f, C2, ldc2);
    return;
  }
  // op(B) = [B1 | B2] [K, N] packed k-block by k-block (kernels.h layout: a k-block's panels are
  // contiguous, kc x NR floats each), B1's panels first; the k-blocks split over the pool
  const int np1 = N1 / k.NR, np2 = (N2 + k.NR - 1) / k.NR;
  const int64_t Npad = (int64_t)(np1 + np2) * k.NR;
  float* pb = tl_packB.ensure(packed_b_size(k, K, N));
  const int kb = (K + k.KC - 1) / k.KC;
  parallel_range(kb, (int64_t)k.KC * N, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int k0 = (int)b * k.KC, kc = std::min(k.KC, K - k0);
      float* out = pb + (int64_t)k0 * Npad;
      k.pack_b(B1 + (int64_t)k0 * ldb1, ldb1, 0, kc, N1, out, 0, np1);
      k.pack_b(B2 + (int64_t)k0 * ldb2, ldb2, 0, kc, N2, out + (int64_t)np1 * kc * k.NR, 0, np2);
    }
  });
  FBuf tC;
  float* c = tC.ensure((size_t)M * N);
  gemm_packed(k, M, N, K, 1.0f, A, lda, true, pb, 0.0f, c, N);
  parallel_range(M, N, [&](int64_t m0, int64_t m1) {  // each element's sum does not depend on the split
    for (int64_t m = m0; m < m1; m++) {
      const float* cm = c + m * N;
      float* c1 = C1 + m * ldc1;
      float* c2 = C2 + m * ldc2;
      for (int n = 0; n < N1; n++) c1[n] += cm[n];
      for (int n = 0; n < N2; n++) c2[n] += cm[N1 + n];
    }
  });
}

// bf16 nearest to x, ties to even (VCVTNE2PS2BF16 on normal numbers; NaN stays NaN), as a float
float bf16_round(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u;  // NaN: quiet, keep it NaN after truncation
  else u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  memcpy(&x, &u, 4);
  return x;
}

// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C. BF16: both operands rounded to bf16 first,
// products and sums in double (the bf16 kernel's products are exact too; only the order differs).
template <bool BF16>
static void gemm_naive_t(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int64_t lda,
                         const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  using Acc = std::conditional_t<BF16, double, float>;
  for (int m = 0; m < M; m++) {
    for (int n = 0; n < N; n++) {
      Acc acc = 0;
      for (int kk = 0; kk < K; kk++) {
        const float a = transA ? A[(int64_t)kk * lda + m] : A[(int64_t)m * lda + kk];
        const float b = transB ? B[(int64_t)n * ldb + kk] : B[(int64_t)kk * ldb + n];
        if constexpr (BF16) acc += (double)bf16_round(a) * bf16_round(b);
        else acc += a * b;
      }
      float* c = C + (int64_t)m * ldc + n;
      *c = alpha * (float)acc + (beta == 0.0f ? 0.0f : beta * *c);
    }
  }
}

void gemm_naive(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_naive_t<false>(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_naive_bf16(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_naive_t<true>(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace rk
