// Portability layer of the native addon: which CPU family this build targets, what the running
// CPU supports, aligned allocation, the spin-wait hint, and per-function target attributes.
// Supported compilers: GCC and Clang (Linux, macOS, MinGW) and clang-cl (Windows, the MSVC
// toolchain with the ClangCL toolset). The kernels are written with GCC vector extensions, which
// cl.exe does not implement; everything outside the kernels also compiles with cl.exe.
#pragma once
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define RK_X86 1
#elif defined(__aarch64__) || defined(_M_ARM64)
#define RK_ARM64 1
#else
#define RK_GENERIC 1  // any other CPU: the portable kernels only
#endif

#if defined(_WIN32)
#include <malloc.h>
#endif
#if defined(RK_X86)
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#include <immintrin.h>
#endif
#endif
#if defined(RK_ARM64) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(RK_ARM64) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

// Compiles the functions between RK_TARGET_BEGIN(...) and RK_TARGET_END for extra instructions
// ("avx2,fma" etc. on x86-64, "+bf16" on arm64). GCC: #pragma GCC target; Clang: #pragma clang attribute.
#define RK_PRAGMA_(x) _Pragma(#x)
#if defined(__clang__)
#define RK_TARGET_BEGIN(t) RK_PRAGMA_(clang attribute push(__attribute__((target(t))), apply_to = function))
#define RK_TARGET_END RK_PRAGMA_(clang attribute pop)
#elif defined(__GNUC__)
#define RK_TARGET_BEGIN(t) RK_PRAGMA_(GCC push_options) RK_PRAGMA_(GCC target(t))
#define RK_TARGET_END RK_PRAGMA_(GCC pop_options)
#else
#define RK_TARGET_BEGIN(t)
#define RK_TARGET_END
#endif

namespace rk {

// 64-byte (or any power of two) aligned allocation; release with aligned_free. nullptr on failure.
// On Linux a block of kHugeFrom bytes or more starts on a 2 MiB boundary and asks for transparent
// huge pages: the kernels stream large packed weights (an LSTM's W_hh of 16 MiB every step) and
// saved activations, and with 4 KiB pages every 4 KiB of such a stream costs a TLB miss.
constexpr size_t kHugeFrom = (size_t)4 << 20;
inline void* aligned_alloc64(size_t bytes, size_t align = 64) {
#if defined(_WIN32)
  return _aligned_malloc(bytes, align);
#else
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const size_t huge = (size_t)2 << 20;
  if (bytes >= kHugeFrom && align < huge) {
    void* p = nullptr;
    if (posix_memalign(&p, huge, bytes) != 0) return nullptr;
    madvise(p, bytes, MADV_HUGEPAGE);  // a hint: where the kernel has no huge page, 4 KiB pages serve
    return p;
  }
#endif
  void* p = nullptr;
  return posix_memalign(&p, align, bytes) == 0 ? p : nullptr;
#endif
}
inline void aligned_free(void* p) {
#if defined(_WIN32)
  _aligned_free(p);
#else
  free(p);
#endif
}

// Spin-wait hint inside a busy loop (frees the core's resources for its sibling thread).
inline void cpu_pause() {
#if defined(RK_X86)
  _mm_pause();
#elif defined(RK_ARM64) && defined(_MSC_VER) && !defined(__clang__)
  __yield();
#elif defined(RK_ARM64)
  __asm__ __volatile__("yield" ::: "memory");
#endif
}

// r = a * b; true when it overflows.
inline bool mul_overflow(long long a, long long b, long long* r) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_mul_overflow(a, b, r);
#else
  if (a != 0 && b != 0) {
    const unsigned long long ua = a < 0 ? 0ULL - (unsigned long long)a : (unsigned long long)a;
    const unsigned long long ub = b < 0 ? 0ULL - (unsigned long long)b : (unsigned long long)b;
    const unsigned long long lim = (a < 0) != (b < 0) ? (1ULL << 63) : (1ULL << 63) - 1;
    if (ua > lim / ub) return true;
  }
  *r = a * b;
  return false;
#endif
}

// ---------------------------------------------------------------- CPU features
struct CpuFeatures {
  bool avx2 = false, fma = false, avx512 = false, avx512bf16 = false;  // x86-64 (avx512: f, vl, bw, dq)
  bool neon = false, bf16 = false;                                      // aarch64 (bf16: BFDOT / BFMMLA)
};

#if defined(RK_X86)
inline void cpuid_(int leaf, int sub, unsigned r[4]) {
#if defined(_MSC_VER)
  int x[4];
  __cpuidex(x, leaf, sub);
  for (int i = 0; i < 4; i++) r[i] = (unsigned)x[i];
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}
// XCR0: which register states the OS saves (YMM: bits 1-2, ZMM: bits 5-7).
inline unsigned long long xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned lo, hi;
  __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
#endif
}
#endif

// The running CPU's features (and whether the OS enabled their registers), read once.
inline const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(RK_X86)
    unsigned r[4];
    cpuid_(0, 0, r);
    const unsigned maxLeaf = r[0];
    cpuid_(1, 0, r);
    const bool osxsave = (r[2] >> 27) & 1, fma = (r[2] >> 12) & 1, avx = (r[2] >> 28) & 1;
    const unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
    if (maxLeaf >= 7) {
      cpuid_(7, 0, r);
      const unsigned b = r[1], maxSub = r[0];
      c.avx2 = avx && ymm && ((b >> 5) & 1);
      c.fma = avx && ymm && fma;
      c.avx512 = c.avx2 && c.fma && zmm && ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);
      if (maxSub >= 1) {
        cpuid_(7, 1, r);
        c.avx512bf16 = c.avx512 && ((r[0] >> 5) & 1);
      }
    }
#elif defined(RK_ARM64)
    c.neon = true;  // Advanced SIMD is part of every AArch64 CPU
#if defined(__linux__)
    c.bf16 = (getauxval(AT_HWCAP2) & (1UL << 14)) != 0;  // HWCAP2_BF16
#elif defined(__APPLE__)
    int v = 0;
    size_t n = sizeof v;
    c.bf16 = sysctlbyname("hw.optional.arm.FEAT_BF16", &v, &n, nullptr, 0) == 0 && v != 0;
#elif defined(_WIN32)
    c.bf16 = false;  // no documented query yet
#endif
#endif
    return c;
  }();
  return f;
}

}  // namespace rk
