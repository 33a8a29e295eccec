// N-API binding of the native backend. Every value crossing the boundary is checked here
// (types, integer ranges, that each buffer holds what the shapes need) and a bad call throws a
// JS TypeError / RangeError; the kernels behind it never see an unchecked pointer.
// A job that settles while its thread's environment shuts down (a worker_thread terminated while
// its jobs run) cannot reach JavaScript any more: node-addon-api then drops the error instead of
// aborting the process.
#define NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "gemm.h"
#include "kernels.h"
#include "losses.h"
#include "optim.h"
#include "platform.h"
#include "pool.h"
#include "seq.h"

namespace rk {
namespace {

class QueuedJob;

// Admission of one JS thread's async jobs (seqForwardAsync, seqBackwardAsync): at most `limit`
// are on libuv's threadpool at once, the others wait here in call order and are queued there as
// earlier ones settle. See asyncJobsDefault().
struct AsyncJobs {
  int limit = 0;     // 0: the default, asyncJobsDefault()
  int admitted = 0;  // on libuv's threadpool (queued there or running)
  std::deque<QueuedJob*> waiting;
  int peakWaiting = 0;
  double copiedBytes = 0;  // copied on this JS thread into its jobs when they were called (JobArrays)
  double sharedBytes = 0;  // weight copies (copyWeight) its jobs shared instead
};

struct AddonData {
  const IsaKernels* k = nullptr;  // the fp32 kernels of the chosen ISA
  bool medium = false;            // matmul precision 'medium': bf16 products allowed
  std::string cpuIsas;
  // shared with each job: a job that settles while the environment shuts down may outlive this
  std::shared_ptr<AsyncJobs> jobs = std::make_shared<AsyncJobs>();
};

const napi_type_tag kCtxTag = {0x7a1c5e0b2f3d4e11ULL, 0x9b8a7c6d5e4f3a21ULL};

// The kernels every call uses: the ISA's fp32 table, or under matmul precision 'medium' its bf16
// variant when the CPU has one (avx512 with avx512_bf16; 'medium' permits bf16, it does not
// require it, as torch.set_float32_matmul_precision). Taken once per call (async workers keep it).
const IsaKernels& K(const Napi::Env& env) {
  const AddonData* d = env.GetInstanceData<AddonData>();
  const IsaKernels* b = d->medium ? bf16_kernels_for(d->k) : nullptr;
  return b ? *b : *d->k;
}

// ---------------------------------------------------------------- argument checking
[[noreturn]] void rangeError(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }
[[noreturn]] void typeError(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

int64_t mul(Napi::Env env, const std::string& kern, std::initializer_list<int64_t> xs) {
  long long r = 1;
  for (int64_t x : xs)
    if (mul_overflow(r, x, &r)) rangeError(env, kern + ": shape too large");
  return (int64_t)r;
}

struct F32 {
  float* p = nullptr;
  int64_t n = 0;
};

F32 asF32(Napi::Env env, const Napi::Value& v, const std::string& kern, const char* name, int64_t need,
          bool optional) {
  if (v.IsNull() || v.IsUndefined()) {
    if (optional) return {};
    typeError(env, kern + ": " + name + " is required, expected a Float32Array");
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    typeError(env, kern + ": " + name + " must be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  F32 r{a.Data(), (int64_t)a.ElementLength()};
  if (r.n < need)
    rangeError(env, kern + ": " + name + " has " + std::to_string(r.n) + " elements, expected at least " +
                        std::to_string(need));
  return r;
}

const int32_t* asI32(Napi::Env env, const Napi::Value& v, const std::string& kern, const char* name, int64_t need,
                     bool optional) {
  if (v.IsNull() || v.IsUndefined()) {
    if (optional) return nullptr;
    typeError(env, kern + ": " + name + " is required, expected an Int32Array");
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    typeError(env, kern + ": " + name + " must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  if ((int64_t)a.ElementLength() < need)
    rangeError(env, kern + ": " + name + " has " + std::to_string(a.ElementLength()) +
                        " elements, expected at least " + std::to_string(need));
  return a.Data();
}

int64_t asInt(Napi::Env env, const Napi::Value& v, const std::string& kern, const char* name, int64_t lo,
              int64_t hi) {
  if (!v.IsNumber()) typeError(env, kern + ": " + name + " must be a number");
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!(x == std::floor(x)) || x < (double)lo || x > (double)hi)
    rangeError(env, kern + ": " + name + " must be an integer in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "], received " + v.ToString().Utf8Value());
  return (int64_t)x;
}

double asNum(Napi::Env env, const Napi::Value& v, const std::string& kern, const char* name) {
  if (!v.IsNumber()) typeError(env, kern + ": " + name + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool asBool(Napi::Env env, const Napi::Value& v, const std::string& kern, const char* name) {
  if (!v.IsBoolean()) typeError(env, kern + ": " + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Napi::Object asObj(Napi::Env env, const Napi::Value& v, const std::string& kern, const char* name) {
  if (!v.IsObject()) typeError(env, kern + ": " + name + " must be an object");
  return v.As<Napi::Object>();
}

constexpr int64_t kMaxDim = 0x7fffffff;

void checkArgc(const Napi::CallbackInfo& info, size_t n, const char* kern) {
  if (info.Length() < n)
    typeError(info.Env(), std::string(kern) + ": expected " + std::to_string(n) + " arguments, received " +
                              std::to_string(info.Length()));
}

// ---------------------------------------------------------------- info / threads / isa
#if defined(RK_ARM64)
const char* const kBf16GemmText = "bf16 (BFDOT) gemm";
#else
const char* const kBf16GemmText = "bf16 (VDPBF16PS) gemm";
#endif
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const IsaKernels& k = K(env);
  Napi::Object o = Napi::Object::New(env);
  const AddonData* d = env.GetInstanceData<AddonData>();
  const bool bf16 = &k != d->k;
  o.Set("isa", d->k->name);
  o.Set("threads", pool_threads());
  o.Set("matmul", bf16 ? "bf16" : "fp32");
  o.Set("matmulPrecision", d->medium ? "medium" : "highest");
  o.Set("gemvRows", k.gemv_compute ? k.gemv_rows : 0);  // products with 1..gemvRows rows take the GEMV path
  o.Set("detail", std::string("C++ N-API kernels, ") + (bf16 ? kBf16GemmText : "sgemm") + " register tile " +
                      std::to_string(k.MR) + "x" + std::to_string(k.NR) + " (kc " + std::to_string(k.KC) +
                      "), cpu supports: " + d->cpuIsas);
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  checkArgc(info, 1, "native.setThreads");
  pool_set_threads((int)asInt(info.Env(), info[0], "native.setThreads", "n", 1, 256));
  return info.Env().Undefined();
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgc(info, 1, "native.setIsa");
  if (!info[0].IsString()) typeError(env, "native.setIsa: isa must be a string");
  std::string isa = info[0].As<Napi::String>().Utf8Value();
  const IsaKernels* k = kernels_for(isa.c_str());
  if (!k) rangeError(env, std::string("native.setIsa: isa must be ") + isa_choices() + ", received " + isa);
  if (!cpu_has(isa.c_str())) rangeError(env, "native.setIsa: this CPU does not support " + isa);
  env.GetInstanceData<AddonData>()->k = k;
  return env.Undefined();
}

Napi::Value SetMatmulPrecision(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* kern = "native.setMatmulPrecision";
  checkArgc(info, 1, kern);
  if (!info[0].IsString())
    typeError(env, std::string(kern) + ": precision must be a string ('highest' or 'medium'), received " +
                       info[0].ToString().Utf8Value());
  const std::string p = info[0].As<Napi::String>().Utf8Value();
  if (p != "highest" && p != "medium")
    rangeError(env, std::string(kern) + ": precision must be 'highest' or 'medium', received '" + p + "'");
  env.GetInstanceData<AddonData>()->medium = p == "medium";
  return env.Undefined();
}

Napi::Value GetMatmulPrecision(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), info.Env().GetInstanceData<AddonData>()->medium ? "medium" : "highest");
}

// memoryStats() -> { cacheBytes, cacheBlocks, weightPackBytes, weightPacksMade, mallocArenaBytes,
// mallocInUseBytes, mallocFreeBytes, mallocMmapBytes } (the malloc figures where the C library
// reports them, glibc mallinfo2)
Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  size_t bytes = 0, blocks = 0;
  cache_stats(&bytes, &blocks);
  o.Set("cacheBytes", (double)bytes);
  o.Set("cacheBlocks", (double)blocks);
  size_t packBytes = 0, packsMade = 0;
  weight_packs_stats(&packBytes, &packsMade);
  o.Set("weightPackBytes", (double)packBytes);
  o.Set("weightPacksMade", (double)packsMade);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 mi = mallinfo2();
  o.Set("mallocArenaBytes", (double)mi.arena);
  o.Set("mallocInUseBytes", (double)(mi.uordblks + mi.hblkhd));
  o.Set("mallocFreeBytes", (double)mi.fordblks);
  o.Set("mallocMmapBytes", (double)mi.hblkhd);
#endif
  return o;
}

// trimMemory(): frees the recycled blocks and gives the C library's free memory back to the
// system (glibc malloc_trim); for a long-lived process after a phase of large work.
Napi::Value TrimMemory(const Napi::CallbackInfo& info) {
  cache_clear();
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  return info.Env().Undefined();
}

Napi::Value CpuSupports(const Napi::CallbackInfo& info) {
  checkArgc(info, 1, "native.cpuSupports");
  if (!info[0].IsString()) typeError(info.Env(), "native.cpuSupports: isa must be a string");
  return Napi::Boolean::New(info.Env(), cpu_has(info[0].As<Napi::String>().Utf8Value().c_str()));
}

// ---------------------------------------------------------------- gemm
struct GemmArgs {
  bool tA, tB;
  int M, N, K;
  float alpha, beta;
  const float *A, *B;
  float* C;
  int64_t lda, ldb, ldc;
};

GemmArgs parseGemm(const Napi::CallbackInfo& info, const char* kern) {
  Napi::Env env = info.Env();
  checkArgc(info, 13, kern);
  GemmArgs g;
  g.tA = asBool(env, info[0], kern, "transA");
  g.tB = asBool(env, info[1], kern, "transB");
  g.M = (int)asInt(env, info[2], kern, "M", 0, kMaxDim);
  g.N = (int)asInt(env, info[3], kern, "N", 0, kMaxDim);
  g.K = (int)asInt(env, info[4], kern, "K", 0, kMaxDim);
  g.alpha = (float)asNum(env, info[5], kern, "alpha");
  g.lda = asInt(env, info[7], kern, "lda", 1, kMaxDim);
  g.ldb = asInt(env, info[9], kern, "ldb", 1, kMaxDim);
  g.beta = (float)asNum(env, info[10], kern, "beta");
  g.ldc = asInt(env, info[12], kern, "ldc", 1, kMaxDim);
  const int64_t aRows = g.tA ? g.K : g.M, aCols = g.tA ? g.M : g.K;
  const int64_t bRows = g.tB ? g.N : g.K, bCols = g.tB ? g.K : g.N;
  if (g.lda < aCols) rangeError(env, std::string(kern) + ": lda is smaller than the columns of A");
  if (g.ldb < bCols) rangeError(env, std::string(kern) + ": ldb is smaller than the columns of B");
  if (g.ldc < g.N) rangeError(env, std::string(kern) + ": ldc is smaller than the columns of C");
  auto span = [&](int64_t rows, int64_t cols, int64_t ld) {
    return rows == 0 || cols == 0 ? 0 : mul(env, kern, {rows - 1, ld}) + cols;
  };
  const bool useAB = g.M > 0 && g.N > 0 && g.K > 0;
  g.A = asF32(env, info[6], kern, "A", useAB ? span(aRows, aCols, g.lda) : 0, false).p;
  g.B = asF32(env, info[8], kern, "B", useAB ? span(bRows, bCols, g.ldb) : 0, false).p;
  g.C = asF32(env, info[11], kern, "C", span(g.M, g.N, g.ldc), false).p;
  return g;
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  GemmArgs g = parseGemm(info, "native.gemm");
  gemm(K(info.Env()), g.tA, g.tB, g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc);
  return info.Env().Undefined();
}

Napi::Value GemmNaive(const Napi::CallbackInfo& info) {
  GemmArgs g = parseGemm(info, "native.gemmNaive");
  gemm_naive(g.tA, g.tB, g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc);
  return info.Env().Undefined();
}

Napi::Value GemmNaiveBf16(const Napi::CallbackInfo& info) {
  GemmArgs g = parseGemm(info, "native.gemmNaiveBf16");
  gemm_naive_bf16(g.tA, g.tB, g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- weight copies
// copyWeight(values) -> a handle of an immutable copy of the values in the addon's memory. The
// sequence calls take it in place of a weight array (wIh, wHh, bIh, bHh, wHr); an async job then
// shares the copy instead of copying the weight on the main thread, so serving a model that does
// not change copies its weights once (src/nn/recurrent.ts keeps one per weight and change
// counter). What the kernels make of the copy (packs: the layouts the sequence kernels read it in)
// is made on first use and kept with it. The copy lives while its handle or a job that reads it does.
struct WeightCopy {
  FBuf buf;
  int64_t n = 0;
  mutable WeightPacks packs;
  mutable int64_t reportedPacks = 0;  // bytes of packs reported to V8 (on the JS thread of the handle)
  const float* data() const { return buf.p; }
};
using WeightRef = std::shared_ptr<const WeightCopy>;
const napi_type_tag kWeightTag = {0x3e5d7c1b9a2f4e60ULL, 0x8c7b6a5d4e3f2a19ULL};

Napi::Value CopyWeight(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgc(info, 1, "native.copyWeight");
  const F32 w = asF32(env, info[0], "native.copyWeight", "values", 0, false);
  auto copy = std::make_shared<WeightCopy>();
  copy->n = w.n;
  float* p = copy->buf.ensure((size_t)std::max<int64_t>(w.n, 1));
  if (w.n > 0) memcpy(p, w.p, sizeof(float) * (size_t)w.n);
  const int64_t bytes = (int64_t)copy->buf.bytes;
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  auto ext = Napi::External<WeightRef>::New(env, new WeightRef(std::move(copy)), [bytes](Napi::Env e, WeightRef* r) {
    Napi::MemoryManagement::AdjustExternalMemory(e, -bytes - (*r)->reportedPacks);
    delete r;
  });
  ext.TypeTag(&kWeightTag);
  return ext;
}

// Tells V8 about the packs made of w since the last call that read it (on the handle's JS thread).
void reportPacks(Napi::Env env, const WeightCopy& w) {
  const int64_t more = w.packs.bytes() - w.reportedPacks;
  if (more <= 0) return;
  Napi::MemoryManagement::AdjustExternalMemory(env, more);
  w.reportedPacks += more;
}

// ---------------------------------------------------------------- sequence kernels
// An async job's own copy of every array it reads or writes. JavaScript may change, detach or
// transfer the caller's buffers while the job runs on another thread, so the kernels touch only
// this memory: inputs (and the gradients the kernels add to) are copied when the job is queued,
// results are copied back when it settles, both on the main thread; a weight given as a weight
// copy (copyWeight), which nothing can change, is shared instead of copied. The arithmetic is that
// of the synchronous call on the values the arrays held when the job was queued.
class JobArrays {
 public:
  // A copy of rows x cols floats of p read at [r * stride + offset]; returns the copy (stride cols).
  const float* input(const float* p, int64_t rows, int64_t cols, int64_t stride = -1, int64_t offset = 0) {
    if (!p) return nullptr;
    if (stride < 0) stride = cols;
    float* q = buffer(rows * cols);
    copiedBytes += sizeof(float) * (double)(rows * cols);
    if (stride == cols) memcpy(q, p + offset, sizeof(float) * (size_t)(rows * cols));
    else
      for (int64_t r = 0; r < rows; r++) memcpy(q + r * cols, p + r * stride + offset, sizeof(float) * (size_t)cols);
    return q;
  }
  // A weight copy (copyWeight) the job reads as it is: shared, kept alive while the job lives.
  const float* share(const std::shared_ptr<const WeightCopy>& w) {
    shared_.push_back(w);
    sharedBytes += sizeof(float) * (double)w->n;
    return w->data();
  }
  const int32_t* input(const int32_t* p, int64_t n) {
    if (!p) return nullptr;
    copiedBytes += sizeof(int32_t) * (double)n;
    ints_.emplace_back(p, p + n);
    return ints_.back().data();
  }
  // The job's buffer for rows x cols results that go to array (a Float32Array, p its data) at
  // [r * stride + offset] when the job settles; accumulate: the kernel adds to the current values.
  float* output(const Napi::Value& array, const float* p, int64_t rows, int64_t cols, bool accumulate,
                int64_t stride = -1, int64_t offset = 0) {
    if (!p) return nullptr;
    if (stride < 0) stride = cols;
    float* q = accumulate ? const_cast<float*>(input(p, rows, cols, stride, offset)) : buffer(rows * cols);
    outputs_.push_back({Napi::Persistent(array.As<Napi::Object>()), q, rows, cols, stride, offset});
    return q;
  }
  // A buffer of n floats the job keeps (a layer output the next layer of a stack reads); zeroed on
  // the job's thread (zeroKept), not copied from or back to an array on the main thread.
  float* kept(int64_t n) {
    float* q = buffer(n);
    kept_.push_back({q, n});
    return q;
  }
  void zeroKept() {
    for (const auto& k : kept_) memset(k.first, 0, sizeof(float) * (size_t)k.second);
  }
  // Copies the results into the caller's arrays; throws (naming the kernel) if one was detached.
  void settle(Napi::Env env, const std::string& kern) {
    for (Out& o : outputs_) {
      auto a = o.array.Value().As<Napi::Float32Array>();
      if ((int64_t)a.ElementLength() < (o.rows - 1) * o.stride + o.offset + o.cols)
        throw Napi::Error::New(env, kern + ": an output array was detached or transferred while the job ran");
      float* dst = a.Data();
      if (o.stride == o.cols) memcpy(dst + o.offset, o.data, sizeof(float) * (size_t)(o.rows * o.cols));
      else
        for (int64_t r = 0; r < o.rows; r++)
          memcpy(dst + r * o.stride + o.offset, o.data + r * o.cols, sizeof(float) * (size_t)o.cols);
    }
  }
  // settle(), or when it throws, rejects d with its error: whether the results were copied (the
  // caller then resolves d).
  bool settleOrReject(Napi::Env env, const std::string& kern, Napi::Promise::Deferred& d) {
    try {
      settle(env, kern);
      return true;
    } catch (const Napi::Error& e) {
      d.Reject(e.Value());
      return false;
    }
  }

 private:
  // An uninitialised buffer of n floats owned by the job (from the recycled-block cache when large).
  float* buffer(int64_t n) {
    bufs_.emplace_back();
    return bufs_.back().ensure((size_t)n);
  }
  struct Out {
    Napi::ObjectReference array;
    float* data;  // in bufs_
    int64_t rows, cols, stride, offset;
  };
  std::deque<FBuf> bufs_;  // a deque never moves its elements
  std::vector<std::vector<int32_t>> ints_;
  std::vector<std::shared_ptr<const WeightCopy>> shared_;
  std::vector<Out> outputs_;
  std::vector<std::pair<float*, int64_t>> kept_;

 public:
  double copiedBytes = 0;  // copied by input() (and output() with accumulate) when the job was called
  double sharedBytes = 0;  // weight copies shared by share()
};

// A weight of a sequence call (wIh, wHh, bIh, bHh, wHr): a Float32Array, or a weight copy made by
// copyWeight. With job, the kernels read the job's own copy of an array, or share the weight copy
// (no copy at all: it never changes).
// packs: receives the weight copy's packed forms (null for an array).
const float* asWeight(Napi::Env env, const Napi::Value& v, const std::string& kern, const char* name, int64_t rows,
                      int64_t cols, bool optional, JobArrays* job, WeightPacks** packs = nullptr) {
  if (packs) *packs = nullptr;
  const int64_t need = rows * cols;
  if (v.IsExternal()) {
    auto ext = v.As<Napi::External<WeightRef>>();
    if (!ext.CheckTypeTag(&kWeightTag))
      typeError(env, kern + ": " + name + " must be a Float32Array or a weight copy of native.copyWeight, received " +
                         "another native handle (a context of native.seqForward?)");
    const WeightRef& w = *ext.Data();
    if (w->n < need)
      rangeError(env, kern + ": " + name + " is a weight copy of " + std::to_string(w->n) + " elements, expected at least " +
                          std::to_string(need));
    reportPacks(env, *w);
    if (packs) *packs = &w->packs;
    return job ? job->share(w) : w->data();
  }
  const float* p = asF32(env, v, kern, name, need, optional).p;
  return job ? job->input(p, rows, cols) : p;
}

struct FwdParsed {
  SeqDims d;
  SeqFwdIn in;
};

// The cell kinds are the table of kernels.h (kCellInfo, indexed by CellId): the table of
// src/backends/cells.ts (CELLS), in the order of the ids. test/native.test.ts checks it against
// that table through cellKinds().
const CellInfo& cellInfo(int id) { return kCellInfo[id]; }

const char* cellName(int id) { return cellInfo(id).name; }

int parseCell(Napi::Env env, const Napi::Value& v, const std::string& kern) {
  std::string kinds;
  for (const CellInfo& c : kCellInfo) kinds += std::string(kinds.empty() ? "" : ", ") + c.name;
  if (!v.IsString()) typeError(env, kern + ": cell must be a string, one of " + kinds);
  const std::string name = v.As<Napi::String>().Utf8Value();
  for (int id = 0; id < CELL_COUNT; id++)
    if (name == kCellInfo[id].name) return id;
  rangeError(env, kern + ": cell must be one of " + kinds + ", received " + name);
}

// cellKinds() -> [{ name, id, gates, cState, projection, gateActivation, lateGates }]: kCellInfo.
Napi::Value CellKinds(const Napi::CallbackInfo& info) {
  checkArgc(info, 0, "native.cellKinds");
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (int id = 0; id < CELL_COUNT; id++) {
    const CellInfo& c = kCellInfo[id];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", c.name);
    o.Set("id", id);
    o.Set("gates", c.gates);
    o.Set("cState", c.cState);
    o.Set("projection", c.projection);
    o.Set("gateActivation", c.gateAct);
    o.Set("lateGates", c.lateGates);
    out.Set(n++, o);
  }
  return out;
}

// recurrentActivation: null / undefined / { kind: 'sigmoid' } -> sigmoid; { kind: 'hardSigmoid',
// alpha, beta } (finite, alpha > 0) -> the hard sigmoid, for cells with sigmoid gates only.
GateAct parseGateAct(Napi::Env env, const Napi::Value& v, int cell, const std::string& kern) {
  GateAct act{0, 0.0f, 0.0f};
  if (v.IsNull() || v.IsUndefined()) return act;
  const std::string expected = "recurrentActivation must be { kind: 'sigmoid' } or { kind: 'hardSigmoid', alpha, beta }";
  if (!v.IsObject()) typeError(env, kern + ": " + expected);
  const Napi::Object o = v.As<Napi::Object>();
  const Napi::Value kind = o.Get("kind");
  const std::string name = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : std::string();
  if (name == "sigmoid") return act;
  if (name != "hardSigmoid") rangeError(env, kern + ": " + expected + ", received kind " + (kind.IsString() ? "'" + name + "'" : "of another type"));
  if (!kCellInfo[cell].gateAct)
    rangeError(env, kern + ": recurrentActivation 'hardSigmoid' is only for cells with sigmoid gates (LSTM, GRU)");
  const Napi::Value alpha = o.Get("alpha"), beta = o.Get("beta");
  if (!alpha.IsNumber() || !std::isfinite(alpha.As<Napi::Number>().DoubleValue()) || alpha.As<Napi::Number>().DoubleValue() <= 0)
    rangeError(env, kern + ": hardSigmoid alpha must be a positive finite number");
  if (!beta.IsNumber() || !std::isfinite(beta.As<Napi::Number>().DoubleValue()))
    rangeError(env, kern + ": hardSigmoid beta must be a finite number");
  act.hard = 1;
  act.alpha = alpha.As<Napi::Number>().FloatValue();
  act.beta = beta.As<Napi::Number>().FloatValue();
  return act;
}

// The fields of an args object, each read once and all before any buffer pointer is taken (a
// getter that detaches or frees an earlier buffer cannot leave a dangling pointer). The values
// live in the calling scope's handles; no object is made.
class Fields {
 public:
  Fields() = default;
  Fields(const Napi::Object& a, const std::vector<const char*>& names) : names_(names) {
    values_.reserve(names.size());
    for (const char* n : names) values_.push_back(a.Get(n));
  }
  bool IsEmpty() const { return names_.empty(); }
  // The value read for name (one of the names given); undefined for another name.
  Napi::Value Get(const char* name) const {
    for (size_t i = 0; i < names_.size(); i++)
      if (std::strcmp(names_[i], name) == 0) return values_[i];
    return values_.empty() ? Napi::Value() : values_[0].Env().Undefined();
  }

 private:
  std::vector<const char*> names_;
  std::vector<Napi::Value> values_;
};

// Reads the dimensions (and weights, which backward needs again) of a forward args object.
SeqDims parseDims(Napi::Env env, const Fields& a, const std::string& kern0) {
  SeqDims d;
  d.cell = parseCell(env, a.Get("cell"), kern0);
  const std::string kern = kern0 + "(" + cellName(d.cell) + ")";
  d.T = (int)asInt(env, a.Get("T"), kern, "T", 1, kMaxDim);
  d.B = (int)asInt(env, a.Get("B"), kern, "B", 1, kMaxDim);
  d.I = (int)asInt(env, a.Get("I"), kern, "I", 1, kMaxDim);
  d.H = (int)asInt(env, a.Get("H"), kern, "H", 1, kMaxDim);
  d.P = (int)asInt(env, a.Get("P"), kern, "P", 0, kMaxDim);
  if (d.P > 0 && !cellInfo(d.cell).projection) rangeError(env, kern + ": a projection exists only for LSTM");
  if (d.P > 0 && d.P >= d.H) rangeError(env, kern + ": projection size P must be smaller than H");
  d.R = d.P > 0 ? d.P : d.H;
  d.G = (int)mul(env, kern, {cellInfo(d.cell).gates, d.H});
  if (d.G > kMaxDim) rangeError(env, kern + ": shape too large");
  d.reverse = asBool(env, a.Get("reverse"), kern, "reverse");
  d.act = parseGateAct(env, a.Get("recurrentActivation"), d.cell, kern);
  // every index computed inside the kernels must fit in int64 comfortably
  mul(env, kern, {d.T + 1, d.B, std::max(d.G, std::max(d.I, d.R)), 4});
  if ((int64_t)d.T * d.B > kMaxDim) rangeError(env, kern + ": T * B too large");
  return d;
}

const std::vector<const char*> kFwdFields = {
    "cell", "T", "B", "I", "H", "P", "reverse", "x", "wIh", "wHh", "bIh", "bHh", "wHr", "h0",
    "c0", "cN", "hN", "yStride", "yOffset", "y", "lengths", "training", "recurrentActivation", "stepThreads"};
const std::vector<const char*> kBwdFields = {
    "dy", "dyStride", "dyOffset", "dhN", "dcN", "dx", "dh0", "dc0", "dWIh", "dWHh", "dBIh", "dBHh", "dWHr", "stepThreads"};

// stepThreads of a call's args (SeqFwdIn::stepThreads): absent (undefined or null) for 0, the
// pool's threads; else an integer in [0, 256], the most threads each step splits over.
int parseStepThreads(Napi::Env env, const Napi::Value& v, const std::string& kern) {
  if (v.IsUndefined() || v.IsNull()) return 0;
  return (int)asInt(env, v, kern, "stepThreads", 0, 256);
}

// Checks a forward args object; with job, the kernels' pointers are the job's own copies.
// With job, xFrom / yTo (seqForwardStackAsync): x is read from, y written to, a layer output the
// job keeps (the earlier call's y that this x is) rather than a copy of / into the caller's array.
FwdParsed parseForward(Napi::Env env, const Fields& a, JobArrays* job, const float* xFrom = nullptr, float* yTo = nullptr) {
  FwdParsed f;
  SeqDims& d = f.d = parseDims(env, a, "native.seqForward");
  const std::string kern = std::string("native.seqForward(") + cellName(d.cell) + ")";
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, P = d.P, R = d.R, G = d.G;
  SeqFwdIn& in = f.in;
  in.x = asF32(env, a.Get("x"), kern, "x", mul(env, kern, {T, B, I}), false).p;
  in.wIh = asWeight(env, a.Get("wIh"), kern, "wIh", G, I, false, job, &in.wIhPacks);
  in.wHh = asWeight(env, a.Get("wHh"), kern, "wHh", G, R, false, job, &in.wHhPacks);
  in.bIh = asWeight(env, a.Get("bIh"), kern, "bIh", 1, G, true, job);
  in.bHh = asWeight(env, a.Get("bHh"), kern, "bHh", 1, G, true, job);
  in.wHr = P > 0 ? asWeight(env, a.Get("wHr"), kern, "wHr", P, H, false, job, &in.wHrPacks) : nullptr;
  in.h0 = asF32(env, a.Get("h0"), kern, "h0", B * R, true).p;
  const bool cState = cellInfo(d.cell).cState;
  in.c0 = cState ? asF32(env, a.Get("c0"), kern, "c0", B * H, true).p : nullptr;
  in.cN = cState ? asF32(env, a.Get("cN"), kern, "cN", B * H, true).p : nullptr;
  in.hN = asF32(env, a.Get("hN"), kern, "hN", B * R, false).p;
  in.yStride = asInt(env, a.Get("yStride"), kern, "yStride", 1, kMaxDim);
  in.yOffset = asInt(env, a.Get("yOffset"), kern, "yOffset", 0, kMaxDim);
  if (in.yOffset + R > in.yStride) rangeError(env, kern + ": y columns do not fit in yStride");
  in.y = asF32(env, a.Get("y"), kern, "y", mul(env, kern, {T, B, in.yStride}), false).p;
  in.lengths = asI32(env, a.Get("lengths"), kern, "lengths", B, true);
  if (in.lengths) {
    for (int64_t b = 0; b < B; b++)
      if (in.lengths[b] < 1 || in.lengths[b] > T)
        rangeError(env, kern + ": lengths[" + std::to_string(b) + "] = " + std::to_string(in.lengths[b]) +
                            " is out of range, expected 1.." + std::to_string(T));
  }
  in.training = asBool(env, a.Get("training"), kern, "training");
  in.stepThreads = parseStepThreads(env, a.Get("stepThreads"), kern);
  if (job) {
    in.x = xFrom ? xFrom : job->input(in.x, T * B, I);
    in.h0 = job->input(in.h0, B, R);
    in.c0 = job->input(in.c0, B, H);
    in.lengths = job->input(in.lengths, B);
    if (yTo) {
      in.y = yTo;
    } else {
      in.y = job->output(a.Get("y"), in.y, T * B, R, false, in.yStride, in.yOffset);
      in.yStride = R;
      in.yOffset = 0;
    }
    in.hN = job->output(a.Get("hN"), in.hN, B, R, false);
    in.cN = job->output(a.Get("cN"), in.cN, B, H, false);
  }
  return f;
}

struct CtxBox {
  SeqCtx ctx;
  int64_t reported = 0;
  bool busy = false;  // an async backward is running on it
};

// Frees the saved activations once backward has used them (no waiting for the GC).
void consume(Napi::Env env, CtxBox* box) {
  box->ctx.release();
  box->busy = false;
  if (box->reported) Napi::MemoryManagement::AdjustExternalMemory(env, -box->reported);
  box->reported = 0;
}

Napi::Value wrapCtx(Napi::Env env, std::unique_ptr<CtxBox> box) {
  box->reported = (int64_t)box->ctx.bytes;
  Napi::MemoryManagement::AdjustExternalMemory(env, box->reported);
  auto ext = Napi::External<CtxBox>::New(env, box.release(), [](Napi::Env e, CtxBox* b) {
    Napi::MemoryManagement::AdjustExternalMemory(e, -b->reported);
    delete b;
  });
  ext.TypeTag(&kCtxTag);
  return ext;
}

struct BwdParsed {
  CtxBox* box;
  SeqBwdIn in;
};

// Checks the backward args against the context; with job, the kernels' pointers are the job's copies.
BwdParsed parseBackward(Napi::Env env, const Napi::Value& ctxv, const Fields& fa, const Fields& a, JobArrays* job) {
  const std::string kern0 = "native.seqBackward";
  if (!ctxv.IsExternal() || !ctxv.As<Napi::External<CtxBox>>().CheckTypeTag(&kCtxTag))
    typeError(env, kern0 + ": ctx is not a context of native.seqForward");
  BwdParsed r;
  r.box = ctxv.As<Napi::External<CtxBox>>().Data();
  const SeqDims& d = r.box->ctx.d;
  const std::string kern = kern0 + "(" + cellName(d.cell) + ")";
  if (r.box->ctx.consumed || r.box->busy)
    throw Napi::Error::New(env, kern + ": this context was already used by a backward pass (its saved activations "
                                       "are freed after backward, like PyTorch without retain_graph)");
  SeqDims fd = parseDims(env, fa, kern0);
  if (fd.cell != d.cell || fd.T != d.T || fd.B != d.B || fd.I != d.I || fd.H != d.H || fd.P != d.P ||
      fd.reverse != d.reverse || fd.act.hard != d.act.hard || fd.act.alpha != d.act.alpha || fd.act.beta != d.act.beta)
    rangeError(env, kern + ": the forward arguments do not match the context's shapes");
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, P = d.P, R = d.R, G = d.G;
  SeqBwdIn& in = r.in;
  in.x = asF32(env, fa.Get("x"), kern, "x", T * B * I, false).p;
  in.wIh = asWeight(env, fa.Get("wIh"), kern, "wIh", G, I, false, job);
  in.wHh = asWeight(env, fa.Get("wHh"), kern, "wHh", G, R, false, job);
  in.wHr = P > 0 ? asWeight(env, fa.Get("wHr"), kern, "wHr", P, H, false, job) : nullptr;
  Napi::Value dyv = a.Get("dy");
  in.dy = nullptr;
  in.dyStride = in.dyOffset = 0;
  if (!dyv.IsNull() && !dyv.IsUndefined()) {
    in.dyStride = asInt(env, a.Get("dyStride"), kern, "dyStride", 1, kMaxDim);
    in.dyOffset = asInt(env, a.Get("dyOffset"), kern, "dyOffset", 0, kMaxDim);
    if (in.dyOffset + R > in.dyStride) rangeError(env, kern + ": dy columns do not fit in dyStride");
    in.dy = asF32(env, dyv, kern, "dy", mul(env, kern, {T, B, in.dyStride}), false).p;
  }
  const bool cState = cellInfo(d.cell).cState;
  in.dhN = asF32(env, a.Get("dhN"), kern, "dhN", B * R, true).p;
  in.dcN = cState ? asF32(env, a.Get("dcN"), kern, "dcN", B * H, true).p : nullptr;
  in.dx = asF32(env, a.Get("dx"), kern, "dx", T * B * I, true).p;
  in.dh0 = asF32(env, a.Get("dh0"), kern, "dh0", B * R, true).p;
  in.dc0 = cState ? asF32(env, a.Get("dc0"), kern, "dc0", B * H, true).p : nullptr;
  in.dWIh = asF32(env, a.Get("dWIh"), kern, "dWIh", G * I, true).p;
  in.dWHh = asF32(env, a.Get("dWHh"), kern, "dWHh", G * R, true).p;
  in.dBIh = asF32(env, a.Get("dBIh"), kern, "dBIh", G, true).p;
  in.dBHh = asF32(env, a.Get("dBHh"), kern, "dBHh", G, true).p;
  in.dWHr = P > 0 ? asF32(env, a.Get("dWHr"), kern, "dWHr", P * H, true).p : nullptr;
  in.stepThreads = parseStepThreads(env, a.Get("stepThreads"), kern);
  if (job) {
    in.x = job->input(in.x, T * B, I);
    in.dy = job->input(in.dy, T * B, R, in.dyStride, in.dyOffset);
    in.dyStride = in.dy ? R : 0;
    in.dyOffset = 0;
    in.dhN = job->input(in.dhN, B, R);
    in.dcN = job->input(in.dcN, B, H);
    in.dx = job->output(a.Get("dx"), in.dx, T * B, I, true);
    in.dh0 = job->output(a.Get("dh0"), in.dh0, B, R, true);
    in.dc0 = job->output(a.Get("dc0"), in.dc0, B, H, true);
    in.dWIh = job->output(a.Get("dWIh"), in.dWIh, G, I, true);
    in.dWHh = job->output(a.Get("dWHh"), in.dWHh, G, R, true);
    in.dBIh = job->output(a.Get("dBIh"), in.dBIh, 1, G, true);
    in.dBHh = job->output(a.Get("dBHh"), in.dBHh, 1, G, true);
    in.dWHr = job->output(a.Get("dWHr"), in.dWHr, P, H, true);
  }
  return r;
}

// ---- a pair of calls (args.paired: the other direction of a bidirectional layer)
// One buffer range a call reads or writes, in floats: rows [0, rows) of `width` floats at
// p + offset + row * stride.
struct Span {
  const float* p;
  int64_t rows, width, stride, offset;
  bool written;
  bool sharedSum;  // dx: both calls add into the same array, one after the other
};

bool conflict(const Span& a, const Span& b) {
  if (!a.p || !b.p || (!a.written && !b.written)) return false;
  const float* a0 = a.p + a.offset;
  const float* a1 = a.p + a.offset + (a.rows - 1) * a.stride + a.width;
  const float* b0 = b.p + b.offset;
  const float* b1 = b.p + b.offset + (b.rows - 1) * b.stride + b.width;
  if (a1 <= b0 || b1 <= a0) return false;
  // one array shared out by columns (y of a bidirectional layer): the same rows, disjoint columns
  if (a.p == b.p && a.stride == b.stride && a.rows == b.rows && a.offset < a.stride && b.offset < b.stride &&
      (a.offset + a.width <= b.offset || b.offset + b.width <= a.offset))
    return false;
  if (a.sharedSum && b.sharedSum && a.p == b.p && a.rows == b.rows && a.width == b.width && a.stride == b.stride &&
      a.offset == b.offset)
    return false;
  return true;
}

// Whether two calls may run at the same time with the results of running them in turn: neither
// writes what the other reads or writes (a y shared out by columns and a dx both add to aside).
bool independent(const std::vector<Span>& s0, const std::vector<Span>& s1) {
  for (const Span& a : s0)
    for (const Span& b : s1)
      if (conflict(a, b)) return false;
  return true;
}

std::vector<Span> forwardSpans(const SeqDims& d, const SeqFwdIn& in) {
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, P = d.P, R = d.R, G = d.G;
  auto flat = [](const float* p, int64_t n, bool w) { return Span{p, 1, n, n, 0, w, false}; };
  return {flat(in.x, T * B * I, false), flat(in.wIh, G * I, false), flat(in.wHh, G * R, false),
          flat(in.bIh, G, false), flat(in.bHh, G, false), flat(P > 0 ? in.wHr : nullptr, P * H, false),
          flat(in.h0, B * R, false), flat(in.c0, B * H, false), flat(in.hN, B * R, true), flat(in.cN, B * H, true),
          Span{in.y, T * B, R, in.yStride, in.yOffset, true, false},
          Span{reinterpret_cast<const float*>(in.lengths), 1, in.lengths ? B : 0, B, 0, false, false}};
}

std::vector<Span> backwardSpans(const SeqDims& d, const SeqBwdIn& in) {
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, P = d.P, R = d.R, G = d.G;
  auto flat = [](const float* p, int64_t n, bool w) { return Span{p, 1, n, n, 0, w, false}; };
  return {flat(in.x, T * B * I, false), flat(in.wIh, G * I, false), flat(in.wHh, G * R, false),
          flat(P > 0 ? in.wHr : nullptr, P * H, false), Span{in.dy, T * B, R, in.dyStride, in.dyOffset, false, false},
          flat(in.dhN, B * R, false), flat(in.dcN, B * H, false), Span{in.dx, 1, T * B * I, T * B * I, 0, true, true},
          flat(in.dh0, B * R, true), flat(in.dc0, B * H, true), flat(in.dWIh, G * I, true), flat(in.dWHh, G * R, true),
          flat(in.dBIh, G, true), flat(in.dBHh, G, true), flat(P > 0 ? in.dWHr : nullptr, P * H, true)};
}

// The fields of args into *first, and those of args.paired (all getters of both run before any
// pointer is taken), or empty Fields.
Fields pairedOf(Napi::Env env, const Napi::Object& a, const std::vector<const char*>& fields,
                const std::string& kern, Fields* first) {
  std::vector<const char*> all = fields;
  all.push_back("paired");
  *first = Fields(a, all);
  const Napi::Value pv = first->Get("paired");
  if (pv.IsNull() || pv.IsUndefined()) return Fields();
  Fields second(asObj(env, pv, kern, "paired"), all);
  const Napi::Value nested = second.Get("paired");
  if (!nested.IsNull() && !nested.IsUndefined()) typeError(env, kern + ": paired.paired must be null (a pair has two calls)");
  return second;
}

// The async entries take one call each (a pair's two calls are queued one after the other).
void rejectPaired(Napi::Env env, const Napi::Object& a, const std::string& kern) {
  const Napi::Value pv = a.Get("paired");
  if (!pv.IsNull() && !pv.IsUndefined()) typeError(env, kern + ": args.paired is not taken here; queue each call of a pair on its own");
}

// stepSplitThreads(cell, B, H, P, backward) -> the threads each step of such a sequence call (or
// its backward) splits over, the threads meeting after every step (seq_step_split_threads); 1
// when its steps do not split so. At the kernel table, matmul precision and threads in use now.
Napi::Value StepSplitThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kern = "native.stepSplitThreads";
  checkArgc(info, 5, kern.c_str());
  SeqDims d{};
  d.cell = parseCell(env, info[0], kern);
  d.B = (int)asInt(env, info[1], kern, "B", 1, kMaxDim);
  d.H = (int)asInt(env, info[2], kern, "H", 1, kMaxDim);
  d.P = (int)asInt(env, info[3], kern, "P", 0, kMaxDim);
  if (d.P > 0 && (!cellInfo(d.cell).projection || d.P >= d.H))
    rangeError(env, kern + ": projection size P must be 0, or smaller than H for LSTM, received " + std::to_string(d.P));
  d.R = d.P > 0 ? d.P : d.H;
  d.G = (int)mul(env, kern, {cellInfo(d.cell).gates, d.H});
  if (d.G > kMaxDim) rangeError(env, kern + ": shape too large");
  return Napi::Number::New(env, seq_step_split_threads(K(env), d, asBool(env, info[4], kern, "backward")));
}

Napi::Value SeqForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgc(info, 1, "native.seqForward");
  Fields a0;
  const Fields a1 = pairedOf(env, asObj(env, info[0], "native.seqForward", "args"), kFwdFields,
                             "native.seqForward", &a0);
  if (a1.IsEmpty()) {
    FwdParsed f = parseForward(env, a0, nullptr);
    auto box = std::make_unique<CtxBox>();
    seq_forward(K(env), f.d, f.in, box->ctx);
    if (!f.in.training) return env.Null();
    return wrapCtx(env, std::move(box));
  }
  FwdParsed f0 = parseForward(env, a0, nullptr);
  FwdParsed f1 = parseForward(env, a1, nullptr);
  if (f0.in.training != f1.in.training)
    rangeError(env, "native.seqForward: paired.training must equal training (one context holds both calls)");
  auto b0 = std::make_unique<CtxBox>(), b1 = std::make_unique<CtxBox>();
  seq_forward_pair(K(env), f0.d, f0.in, b0->ctx, f1.d, f1.in, b1->ctx,
                   independent(forwardSpans(f0.d, f0.in), forwardSpans(f1.d, f1.in)));
  if (!f0.in.training) return env.Null();
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, wrapCtx(env, std::move(b0)));
  pair.Set(1u, wrapCtx(env, std::move(b1)));
  return pair;
}

Napi::Value SeqBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgc(info, 3, "native.seqBackward");
  const std::string kern = "native.seqBackward";
  Fields f0, a0;
  const Fields f1 = pairedOf(env, asObj(env, info[1], kern, "forward args"), kFwdFields, kern, &f0);
  const Fields a1 = pairedOf(env, asObj(env, info[2], kern, "args"), kBwdFields, kern, &a0);
  if (f1.IsEmpty() != a1.IsEmpty() || f1.IsEmpty() != !info[0].IsArray())
    typeError(env, kern + ": a paired forward call takes a paired backward call (args.paired), and only it");
  if (f1.IsEmpty()) {
    BwdParsed b = parseBackward(env, info[0], f0, a0, nullptr);
    seq_backward(K(env), b.box->ctx, b.in);
    consume(env, b.box);
    return env.Undefined();
  }
  const Napi::Array ctx = info[0].As<Napi::Array>();
  if (ctx.Length() != 2) typeError(env, kern + ": ctx is not a context of native.seqForward");
  BwdParsed b0 = parseBackward(env, ctx.Get(0u), f0, a0, nullptr);
  BwdParsed b1 = parseBackward(env, ctx.Get(1u), f1, a1, nullptr);
  if (b0.box == b1.box) typeError(env, kern + ": ctx is not a context of native.seqForward");
  seq_backward_pair(K(env), b0.box->ctx, b0.in, b1.box->ctx, b1.in,
                    independent(backwardSpans(b0.box->ctx.d, b0.in), backwardSpans(b1.box->ctx.d, b1.in)));
  consume(env, b0.box);
  consume(env, b1.box);
  return env.Undefined();
}

// ---------------------------------------------------------------- async jobs
// Each async job runs on a thread of libuv's threadpool, and uses the kernel pool when no other
// job holds it and the other running jobs leave the pool's threads cores of their own (pool.h:
// pool_job_enter). Jobs beyond what the cores can run at once would only take turns on them, and the
// event loop's thread would wait its turn too (a timer or an I/O callback fires late); they would
// also fill libuv's threadpool (4 threads by default), which fs, dns and zlib work of the same
// process needs. So each JS thread admits a few jobs to the threadpool at a time and keeps the
// rest waiting, in call order. Admission changes when a job runs, never what it computes: a job
// copies what it reads when it is called, or shares a weight copy (JobArrays), waiting or not.

// The default number of jobs admitted at once: one per core, and one libuv thread fewer than its
// threadpool has (UV_THREADPOOL_SIZE, else 4), so the process's file, DNS and zlib work keeps a
// thread; at least 1. A job that cannot use the whole pool (a small request's per-step work) leaves
// cores for another; with one job per core the event loop's thread still gets a core soon.
// Computed once, as libuv reads UV_THREADPOOL_SIZE once (it is asked on every job's admission).
int asyncJobsDefault() {
  static const int n = [] {
    const int cores = (int)std::max(1u, std::thread::hardware_concurrency());
    const char* uv = std::getenv("UV_THREADPOOL_SIZE");
    const int uvThreads = std::min(1024, std::max(1, uv && *uv ? std::atoi(uv) : 4));  // libuv's own bounds
    return std::max(1, std::min(cores, uvThreads - 1));
  }();
  return n;
}

int asyncJobsLimit(const AsyncJobs& q) { return q.limit > 0 ? q.limit : asyncJobsDefault(); }

// How many async jobs run their kernels at this moment, in the whole process, and the most at once
// since the last asyncJobStats(true).
std::atomic<int> gExecuting{0};
std::atomic<int> gPeakExecuting{0};

// RNNKIT_JOB_NICE=n (1..19, Linux): an async job's thread runs at n steps lower scheduling
// priority (nice + n) while the job runs, so the event loop's thread, when a timer or I/O wakes
// it, gets a core before the job's threads; the jobs also yield to every other process of the
// machine. Only where the priority can be put back afterwards (raising nice is always allowed,
// lowering it again needs root, CAP_SYS_NICE or RLIMIT_NICE), as libuv's threads serve other work
// too: checked once, on a scratch thread. Off by default; other systems: unchanged.
#if defined(__linux__)
int jobNice() {
  static const int nice = [] {
    const char* e = std::getenv("RNNKIT_JOB_NICE");
    const int n = e && *e ? std::atoi(e) : 0;
    if (n < 1 || n > 19) return 0;
    bool ok = false;
    std::thread t([&ok, n] {
      const id_t tid = (id_t)syscall(SYS_gettid);
      errno = 0;
      const int base = getpriority(PRIO_PROCESS, tid);
      if (errno != 0 || base + n > 19) return;
      ok = setpriority(PRIO_PROCESS, tid, base + n) == 0 && setpriority(PRIO_PROCESS, tid, base) == 0;
    });
    t.join();
    return ok ? n : 0;
  }();
  return nice;
}
class LowerPriority {
 public:
  LowerPriority() {
    const int n = jobNice();
    if (n == 0) return;
    (void)pool_threads();  // the kernel pool starts first if it has not: its threads must not inherit the lowered priority
    tid_ = (id_t)syscall(SYS_gettid);
    errno = 0;
    base_ = getpriority(PRIO_PROCESS, tid_);
    lowered_ = errno == 0 && base_ + n <= 19 && setpriority(PRIO_PROCESS, tid_, base_ + n) == 0;
  }
  ~LowerPriority() {
    if (lowered_) setpriority(PRIO_PROCESS, tid_, base_);
  }

 private:
  id_t tid_ = 0;
  int base_ = 0;
  bool lowered_ = false;
};
#else
struct LowerPriority {
  LowerPriority() {}  // other systems: the job runs at its thread's priority
};
#endif

// An async job under admission: submit() queues it on libuv's threadpool or keeps it waiting;
// when it settles, the next waiting jobs of its thread are queued.
class QueuedJob : public Napi::AsyncWorker {
 public:
  explicit QueuedJob(Napi::Env env) : Napi::AsyncWorker(env), jobs_(env.GetInstanceData<AddonData>()->jobs) {}
  void submit() {
    AsyncJobs& q = *jobs_;
    if (q.waiting.empty() && q.admitted < asyncJobsLimit(q)) {
      q.admitted++;
      Queue();
    } else {
      q.waiting.push_back(this);
      q.peakWaiting = std::max(q.peakWaiting, (int)q.waiting.size());
    }
  }
  // Admits waiting jobs while there is room (after a job settles or the limit grows).
  static void admit(napi_env env, AsyncJobs& q) {
    while (!q.waiting.empty() && q.admitted < asyncJobsLimit(q)) {
      QueuedJob* next = q.waiting.front();
      q.waiting.pop_front();
      // fails only while the thread's environment shuts down (its jobs are never settled then)
      if (napi_queue_async_work(env, *next) == napi_ok) q.admitted++;
    }
  }

 protected:
  void Execute() final {
    const int now = gExecuting.fetch_add(1) + 1;
    int peak = gPeakExecuting.load();
    while (now > peak && !gPeakExecuting.compare_exchange_weak(peak, now)) {
    }
    {
      LowerPriority lower;
      pool_job_enter();
      Run();
      pool_job_leave();
    }
    gExecuting.fetch_sub(1);
  }
  virtual void Run() = 0;
  // After OnOK / OnError (or a cancellation): the slot goes to the next waiting job.
  void Destroy() override {
    const napi_env env = Env();
    std::shared_ptr<AsyncJobs> q = jobs_;
    q->admitted--;
    delete this;
    admit(env, *q);
  }

 private:
  std::shared_ptr<AsyncJobs> jobs_;
};

class ForwardWorker : public QueuedJob {
 public:
  ForwardWorker(Napi::Env env, const IsaKernels& k, FwdParsed f, std::unique_ptr<JobArrays> job)
      : QueuedJob(env), k_(k), f_(f), job_(std::move(job)), box_(new CtxBox()),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Run() override {
    try {
      seq_forward(k_, f_.d, f_.in, box_->ctx);
    } catch (const std::exception& e) {
      SetError(std::string("native.seqForwardAsync: ") + e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (!job_->settleOrReject(env, "native.seqForwardAsync", deferred_)) return;
    if (!f_.in.training) deferred_.Resolve(env.Null());
    else deferred_.Resolve(wrapCtx(env, std::move(box_)));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  const IsaKernels& k_;
  FwdParsed f_;
  std::unique_ptr<JobArrays> job_;
  std::unique_ptr<CtxBox> box_;
  Napi::Promise::Deferred deferred_;
};

// Inference calls run one after another as one job (seqForwardStackAsync): the layers of a stacked,
// possibly bidirectional model, one completion per request.
class StackWorker : public QueuedJob {
 public:
  StackWorker(Napi::Env env, const IsaKernels& k, std::vector<FwdParsed> calls, std::unique_ptr<JobArrays> job)
      : QueuedJob(env), k_(k), calls_(std::move(calls)), job_(std::move(job)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Run() override {
    try {
      job_->zeroKept();
      for (const FwdParsed& f : calls_) {
        SeqCtx ctx;
        seq_forward(k_, f.d, f.in, ctx);
      }
    } catch (const std::exception& e) {
      SetError(std::string("native.seqForwardStackAsync: ") + e.what());
    }
  }
  void OnOK() override {
    if (job_->settleOrReject(Env(), "native.seqForwardStackAsync", deferred_)) deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  const IsaKernels& k_;
  std::vector<FwdParsed> calls_;
  std::unique_ptr<JobArrays> job_;
  Napi::Promise::Deferred deferred_;
};

class BackwardWorker : public QueuedJob {
 public:
  BackwardWorker(Napi::Env env, const IsaKernels& k, BwdParsed b, std::unique_ptr<JobArrays> job, Napi::Value ctx)
      : QueuedJob(env), k_(k), b_(b), job_(std::move(job)), deferred_(Napi::Promise::Deferred::New(env)) {
    ctxRef_ = Napi::Persistent(ctx.As<Napi::Object>());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Run() override {
    try {
      seq_backward(k_, b_.box->ctx, b_.in);
    } catch (const std::exception& e) {
      SetError(std::string("native.seqBackwardAsync: ") + e.what());
    }
  }
  void OnOK() override {
    consume(Env(), b_.box);
    if (job_->settleOrReject(Env(), "native.seqBackwardAsync", deferred_)) deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    consume(Env(), b_.box);
    deferred_.Reject(e.Value());
  }

 private:
  const IsaKernels& k_;
  BwdParsed b_;
  std::unique_ptr<JobArrays> job_;
  Napi::ObjectReference ctxRef_;  // the context stays alive while the job uses it
  Napi::Promise::Deferred deferred_;
};

// setAsyncJobs(n): at most n async jobs of this JS thread on libuv's threadpool at once; 0: the
// default (asyncJobsDefault).
Napi::Value SetAsyncJobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgc(info, 1, "native.setAsyncJobs");
  AsyncJobs& q = *env.GetInstanceData<AddonData>()->jobs;
  q.limit = (int)asInt(env, info[0], "native.setAsyncJobs", "n", 0, 1024);
  QueuedJob::admit(env, q);
  return env.Undefined();
}

// asyncJobStats(reset) -> { limit, admitted, waiting, peakWaiting, copiedBytes, sharedBytes } of
// this JS thread, and { executing, peakExecuting }: jobs running their kernels in the whole process
// now and at most at once. reset: the peaks start again from the current counts, the byte counts
// from 0.
Napi::Value AsyncJobStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgc(info, 1, "native.asyncJobStats");
  const bool reset = asBool(env, info[0], "native.asyncJobStats", "reset");
  AsyncJobs& q = *env.GetInstanceData<AddonData>()->jobs;
  Napi::Object o = Napi::Object::New(env);
  o.Set("limit", asyncJobsLimit(q));
  o.Set("admitted", q.admitted);
  o.Set("waiting", (double)q.waiting.size());
  o.Set("peakWaiting", q.peakWaiting);
  o.Set("executing", gExecuting.load());
  o.Set("peakExecuting", gPeakExecuting.load());
  o.Set("copiedBytes", q.copiedBytes);
  o.Set("sharedBytes", q.sharedBytes);
  o.Set("yields", pool_job_yields(reset));
  if (reset) {
    q.copiedBytes = q.sharedBytes = 0;
    q.peakWaiting = (int)q.waiting.size();
    gPeakExecuting.store(gExecuting.load());
  }
  return o;
}

// Adds a called job's copies to its JS thread's counters (asyncJobStats: copiedBytes, sharedBytes).
void countCopies(Napi::Env env, const JobArrays& job) {
  AsyncJobs& q = *env.GetInstanceData<AddonData>()->jobs;
  q.copiedBytes += job.copiedBytes;
  q.sharedBytes += job.sharedBytes;
}

Napi::Value SeqForwardAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgc(info, 1, "native.seqForwardAsync");
  auto job = std::make_unique<JobArrays>();
  rejectPaired(env, asObj(env, info[0], "native.seqForwardAsync", "args"), "native.seqForwardAsync");
  FwdParsed f = parseForward(env, Fields(asObj(env, info[0], "native.seqForwardAsync", "args"), kFwdFields), job.get());
  countCopies(env, *job);
  auto* w = new ForwardWorker(env, K(env), f, std::move(job));
  Napi::Promise p = w->Promise();
  w->submit();
  return p;
}

// seqForwardStackAsync(calls) -> Promise<undefined>: inference calls (training false) as ONE async
// job, run in order. A call whose x is the very array an earlier call's y is (a layer's input is the
// layer below's output) reads what that call wrote, which the job keeps: for such a y the job has
// its own buffer, zeros at the start, and the array is neither read nor written (only results no
// later call reads go back to their arrays, when the job settles).
Napi::Value SeqForwardStackAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kern = "native.seqForwardStackAsync";
  checkArgc(info, 1, "native.seqForwardStackAsync");
  if (!info[0].IsArray()) typeError(env, kern + ": calls must be an array of sequence call args");
  const Napi::Array list = info[0].As<Napi::Array>();
  const uint32_t n = list.Length();
  if (n < 1 || n > 4096) rangeError(env, kern + ": calls must hold 1..4096 calls, received " + std::to_string(n));
  // every field of every call is read before any buffer pointer is taken
  std::vector<Fields> fields;
  fields.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    const std::string name = "calls[" + std::to_string(i) + "]";
    const Napi::Object a = asObj(env, list.Get(i), kern, name.c_str());
    rejectPaired(env, a, kern);
    fields.emplace_back(a, kFwdFields);
  }
  auto job = std::make_unique<JobArrays>();
  std::vector<FwdParsed> calls;
  std::vector<std::pair<Napi::Value, float*>> keptY;  // y arrays a later call reads as x, and the job's copy
  for (uint32_t i = 0; i < n; i++) {
    const Fields& a = fields[i];
    const Napi::Value x = a.Get("x"), y = a.Get("y");
    const float* xFrom = nullptr;
    for (const auto& k : keptY)
      if (k.first.StrictEquals(x)) xFrom = k.second;
    // a y that a later call reads, or that the job keeps already, is written in the job's copy
    float* yTo = nullptr;
    for (const auto& k : keptY)
      if (k.first.StrictEquals(y)) yTo = k.second;
    bool readLater = false;
    for (uint32_t j = i + 1; j < n && !yTo && !readLater; j++) readLater = fields[j].Get("x").StrictEquals(y);
    if (readLater) {
      const F32 ya = asF32(env, y, kern, "y", 1, false);
      yTo = job->kept(ya.n);  // the array's whole length: parseForward checks x and y against it
      keptY.emplace_back(y, yTo);
    }
    FwdParsed f = parseForward(env, a, job.get(), xFrom, yTo);
    if (f.in.training) rangeError(env, kern + ": calls[" + std::to_string(i) + "].training must be false (a recorded forward runs call by call)");
    calls.push_back(f);
  }
  countCopies(env, *job);
  auto* w = new StackWorker(env, K(env), std::move(calls), std::move(job));
  Napi::Promise p = w->Promise();
  w->submit();
  return p;
}

Napi::Value SeqBackwardAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgc(info, 3, "native.seqBackwardAsync");
  auto job = std::make_unique<JobArrays>();
  rejectPaired(env, asObj(env, info[2], "native.seqBackwardAsync", "args"), "native.seqBackwardAsync");
  BwdParsed b = parseBackward(env, info[0], Fields(asObj(env, info[1], "native.seqBackwardAsync", "forward args"), kFwdFields),
                              Fields(asObj(env, info[2], "native.seqBackwardAsync", "args"), kBwdFields), job.get());
  countCopies(env, *job);
  b.box->busy = true;
  auto* w = new BackwardWorker(env, K(env), b, std::move(job), info[0]);
  Napi::Promise p = w->Promise();
  w->submit();
  return p;
}

// ---------------------------------------------------------------- elementwise ops
int parseUnary(Napi::Env env, const Napi::Value& v, const std::string& kern) {
  if (!v.IsString()) typeError(env, kern + ": op must be a string");
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "tanh") return OP_TANH;
  if (s == "sigmoid") return OP_SIGMOID;
  if (s == "relu") return OP_RELU;
  rangeError(env, kern + ": op must be tanh, sigmoid or relu, received " + s);
}

// y[n] = op(x[n])
Napi::Value UnaryForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kern = "native.unaryForward";
  checkArgc(info, 3, kern.c_str());
  const int op = parseUnary(env, info[0], kern);
  F32 x = asF32(env, info[1], kern, "x", 0, false);
  F32 y = asF32(env, info[2], kern, "y", x.n, false);
  K(env).unary_fwd(op, x.n, x.p, y.p);
  return env.Undefined();
}

// dx[n] += dy[n] * op'(x or y)
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kern = "native.unaryBackward";
  checkArgc(info, 5, kern.c_str());
  const int op = parseUnary(env, info[0], kern);
  F32 dy = asF32(env, info[3], kern, "dy", 0, false);
  const int64_t n = dy.n;
  F32 x = asF32(env, info[1], kern, "x", op == OP_RELU ? n : 0, false);
  F32 y = asF32(env, info[2], kern, "y", op == OP_RELU ? 0 : n, false);
  F32 dx = asF32(env, info[4], kern, "dx", n, false);
  K(env).unary_bwd(op, n, x.p, y.p, dy.p, dx.p);
  return env.Undefined();
}

// logits [N, C], targets [N] -> probs [N, C], losses [N] (losses.h)
Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kern = "native.crossEntropyForward";
  checkArgc(info, 7, kern.c_str());
  const int64_t N = asInt(env, info[0], kern, "N", 0, kMaxDim), C = asInt(env, info[1], kern, "C", 1, kMaxDim);
  const int64_t NC = mul(env, kern, {N, C});
  const float* logits = asF32(env, info[2], kern, "logits", NC, false).p;
  const int32_t* targets = asI32(env, info[3], kern, "targets", N, false);
  const int64_t ignore = (int64_t)asNum(env, info[4], kern, "ignoreIndex");
  float* probs = asF32(env, info[5], kern, "probs", NC, false).p;
  float* losses = asF32(env, info[6], kern, "losses", N, false).p;
  for (int64_t n = 0; n < N; n++)
    if (targets[n] != ignore && (targets[n] < 0 || targets[n] >= C))
      rangeError(env, kern + ": targets[" + std::to_string(n) + "] = " + std::to_string(targets[n]) +
                          " is not a class id in [0, " + std::to_string(C) + ")");
  cross_entropy_forward(N, C, logits, targets, ignore, probs, losses);
  return env.Undefined();
}

// dLogits [N, C] += dLosses[n] * (probs - onehot(target)) (losses.h)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kern = "native.crossEntropyBackward";
  checkArgc(info, 7, kern.c_str());
  const int64_t N = asInt(env, info[0], kern, "N", 0, kMaxDim), C = asInt(env, info[1], kern, "C", 1, kMaxDim);
  const int64_t NC = mul(env, kern, {N, C});
  const float* probs = asF32(env, info[2], kern, "probs", NC, false).p;
  const int32_t* targets = asI32(env, info[3], kern, "targets", N, false);
  const int64_t ignore = (int64_t)asNum(env, info[4], kern, "ignoreIndex");
  const float* dLosses = asF32(env, info[5], kern, "dLosses", N, false).p;
  float* dLogits = asF32(env, info[6], kern, "dLogits", NC, false).p;
  for (int64_t n = 0; n < N; n++)
    if (targets[n] != ignore && (targets[n] < 0 || targets[n] >= C))
      rangeError(env, kern + ": targets[" + std::to_string(n) + "] = " + std::to_string(targets[n]) +
                          " is not a class id in [0, " + std::to_string(C) + ")");
  cross_entropy_backward(N, C, probs, targets, ignore, dLosses, dLogits);
  return env.Undefined();
}

// sum x^2 in float64 (losses.h)
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkArgc(info, 1, "native.sumSquares");
  F32 x = asF32(env, info[0], "native.sumSquares", "x", 0, false);
  return Napi::Number::New(env, sum_squares(x.n, x.p));
}

// dst[N] += column sums of x[M, N] (losses.h): a bias gradient
Napi::Value AddColumnSums(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kern = "native.addColumnSums";
  checkArgc(info, 4, kern.c_str());
  const int64_t M = asInt(env, info[0], kern, "M", 0, kMaxDim), N = asInt(env, info[1], kern, "N", 0, kMaxDim);
  const float* x = asF32(env, info[2], kern, "x", mul(env, kern, {M, N}), false).p;
  float* dst = asF32(env, info[3], kern, "dst", N, false).p;
  colsum_add(x, M, (int)N, dst);
  return env.Undefined();
}

// Adam / AdamW (PyTorch, non-amsgrad): param, grad, m, v [n] (optim.h)
Napi::Value AdamUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kern = "native.adamUpdate";
  checkArgc(info, 11, kern.c_str());
  F32 param = asF32(env, info[0], kern, "param", 0, false);
  const int64_t n = param.n;
  const float* grad = asF32(env, info[1], kern, "grad", n, false).p;
  float* m = asF32(env, info[2], kern, "m", n, false).p;
  float* v = asF32(env, info[3], kern, "v", n, false).p;
  const double lr = asNum(env, info[4], kern, "lr"), beta1 = asNum(env, info[5], kern, "beta1"),
               beta2 = asNum(env, info[6], kern, "beta2"), eps = asNum(env, info[7], kern, "eps"),
               wd = asNum(env, info[8], kern, "weightDecay");
  const bool decoupled = asBool(env, info[9], kern, "decoupled");
  const double step = asNum(env, info[10], kern, "step");
  adam_update(n, param.p, grad, m, v, lr, beta1, beta2, eps, wd, decoupled, step);
  return env.Undefined();
}

// SGD (PyTorch): param, grad, momentumBuffer [n] (optim.h)
Napi::Value SgdUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kern = "native.sgdUpdate";
  checkArgc(info, 9, kern.c_str());
  F32 param = asF32(env, info[0], kern, "param", 0, false);
  const int64_t n = param.n;
  const float* grad = asF32(env, info[1], kern, "grad", n, false).p;
  const double lr = asNum(env, info[3], kern, "lr"), momentum = asNum(env, info[4], kern, "momentum"),
               dampening = asNum(env, info[5], kern, "dampening"), wd = asNum(env, info[6], kern, "weightDecay");
  const bool nesterov = asBool(env, info[7], kern, "nesterov"), first = asBool(env, info[8], kern, "firstStep");
  float* buf = asF32(env, info[2], kern, "momentumBuffer", momentum != 0 ? n : 0, false).p;
  sgd_update(n, param.p, grad, buf, lr, momentum, dampening, wd, nesterov, first);
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  for (const char* isa : {"avx512", "avx512bf16", "avx2", "sse2", "neon", "bf16"}) {
    if (cpu_has(isa)) data->cpuIsas += (data->cpuIsas.empty() ? "" : ",") + std::string(isa);
  }
  const char* forced = std::getenv("RNNKIT_NATIVE_ISA");
  if (forced && *forced) {
    const IsaKernels* k = kernels_for(forced);
    if (!k) throw Napi::RangeError::New(env, std::string("RNNKIT_NATIVE_ISA must be ") + isa_choices() + ", received " + forced);
    if (!cpu_has(forced)) throw Napi::RangeError::New(env, std::string("RNNKIT_NATIVE_ISA=") + forced + " but this CPU does not support it");
    data->k = k;
  } else {
    data->k = best_kernels();
  }
  static std::once_flag threadsSet;  // the pool is process-wide; worker_threads load the addon too
  std::call_once(threadsSet, [] {
    const char* t = std::getenv("RNNKIT_THREADS");
    if (t && *t) {
      const int n = std::atoi(t);
      if (n >= 1) pool_set_threads(n);
    }
  });
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("cellKinds", Napi::Function::New(env, CellKinds));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("cpuSupports", Napi::Function::New(env, CpuSupports));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
  exports.Set("trimMemory", Napi::Function::New(env, TrimMemory));
  exports.Set("gemm", Napi::Function::New(env, Gemm));
  exports.Set("gemmNaive", Napi::Function::New(env, GemmNaive));
  exports.Set("gemmNaiveBf16", Napi::Function::New(env, GemmNaiveBf16));
  exports.Set("setMatmulPrecision", Napi::Function::New(env, SetMatmulPrecision));
  exports.Set("getMatmulPrecision", Napi::Function::New(env, GetMatmulPrecision));
  exports.Set("stepSplitThreads", Napi::Function::New(env, StepSplitThreads));
  exports.Set("seqForward", Napi::Function::New(env, SeqForward));
  exports.Set("seqBackward", Napi::Function::New(env, SeqBackward));
  exports.Set("copyWeight", Napi::Function::New(env, CopyWeight));
  exports.Set("seqForwardAsync", Napi::Function::New(env, SeqForwardAsync));
  exports.Set("seqBackwardAsync", Napi::Function::New(env, SeqBackwardAsync));
  exports.Set("seqForwardStackAsync", Napi::Function::New(env, SeqForwardStackAsync));
  exports.Set("setAsyncJobs", Napi::Function::New(env, SetAsyncJobs));
  exports.Set("asyncJobStats", Napi::Function::New(env, AsyncJobStats));
  exports.Set("unaryForward", Napi::Function::New(env, UnaryForward));
  exports.Set("unaryBackward", Napi::Function::New(env, UnaryBackward));
  exports.Set("crossEntropyForward", Napi::Function::New(env, CrossEntropyForward));
  exports.Set("crossEntropyBackward", Napi::Function::New(env, CrossEntropyBackward));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("addColumnSums", Napi::Function::New(env, AddColumnSums));
  exports.Set("adamUpdate", Napi::Function::New(env, AdamUpdate));
  exports.Set("sgdUpdate", Napi::Function::New(env, SgdUpdate));
  return exports;
}

}  // namespace
}  // namespace rk

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return rk::Init(env, exports); }
NODE_API_MODULE(rnnkit, InitAll)
