// Which kernel table runs: the CPU's features (platform.h) against the paths this build has.
#include <string.h>

#include "kernels.h"
#include "platform.h"

namespace rk {

bool cpu_has(const char* isa) {
  const CpuFeatures& f = cpu_features();
#if defined(RK_X86)
  if (!strcmp(isa, "avx512")) return f.avx512;
  if (!strcmp(isa, "avx2")) return f.avx2 && f.fma;
  if (!strcmp(isa, "avx512bf16")) return f.avx512bf16;
  return !strcmp(isa, "sse2");
#elif defined(RK_ARM64)
  if (!strcmp(isa, "bf16")) return f.bf16;
  return !strcmp(isa, "neon") && f.neon;
#else
  (void)f;
  (void)isa;
  return false;
#endif
}

const IsaKernels* kernels_for(const char* isa) {
#if defined(RK_X86)
  if (!strcmp(isa, "avx512")) return &kernels_avx512;
  if (!strcmp(isa, "avx2")) return &kernels_avx2;
  if (!strcmp(isa, "sse2")) return &kernels_sse2;
#elif defined(RK_ARM64)
  if (!strcmp(isa, "neon")) return &kernels_neon;
#endif
  (void)isa;
  return nullptr;
}

const IsaKernels* best_kernels() {
#if defined(RK_X86)
  return cpu_has("avx512") ? &kernels_avx512 : cpu_has("avx2") ? &kernels_avx2 : &kernels_sse2;
#elif defined(RK_ARM64)
  return &kernels_neon;
#else
#error "native/ has kernels for x86-64 and arm64 only; use the wasm backend on this CPU"
#endif
}

const char* isa_choices() {
#if defined(RK_X86)
  return "avx512, avx2 or sse2";
#else
  return "neon";
#endif
}

const IsaKernels* bf16_kernels_for(const IsaKernels* k) {
#if defined(RK_X86)
  static const bool bf16 = cpu_has("avx512bf16");
  if (bf16 && k == &kernels_avx512) return &kernels_avx512bf16;
#elif defined(RK_ARM64)
  static const bool bf16 = cpu_has("bf16");
  if (bf16 && k == &kernels_neon) return &kernels_neon_bf16;
#endif
  (void)k;
  return nullptr;
}

}  // namespace rk
