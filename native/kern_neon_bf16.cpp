// bf16 GEMMs (matmul precision 'medium') on arm64 CPUs with FEAT_BF16 (Linux: HWCAP2_BF16; e.g.
// Neoverse V1/N2, Graviton 3, Apple M2): kernels.inc with RK_NEON and RK_BF16, BFDOT by element
// on the 8 x 12 tile of the fp32 NEON kernels. KC 512 k = 256 pairs: a B panel takes the bytes
// of the fp32 one. Pointwise kernels as kern_neon.cpp.
#include "platform.h"
#if defined(RK_ARM64)
#include <arm_neon.h>

#include "kernels.h"
#if defined(__clang__)
RK_TARGET_BEGIN("bf16")
#else
RK_TARGET_BEGIN("+bf16")
#endif
#define RK_NS k_neon_bf16
#define RK_NAME "neon_bf16"
#define RK_NEON 1
#define RK_BF16 1
#define RK_VW 4
#define RK_NV 3
#define RK_MR 8
#define RK_KC 512
#define RK_MCP 24
#include "kernels.inc"
RK_TARGET_END
const rk::IsaKernels rk::kernels_neon_bf16 = RK_TABLE;
#endif
