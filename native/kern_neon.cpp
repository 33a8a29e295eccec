// AArch64 Advanced SIMD (NEON, part of every arm64 CPU): 4-wide vectors, an 8 x 12 register tile
// (24 accumulators of the 32 q registers) with FMLA by lane, and the same gate math as the x86
// paths (kernels.inc).
#include "platform.h"
#if defined(RK_ARM64)
#include <arm_neon.h>

#include "kernels.h"
#define RK_NS k_neon
#define RK_NAME "neon"
#define RK_NEON 1
#define RK_VW 4
#define RK_NV 3
#define RK_MR 8
#define RK_KC 256
#define RK_MCP 24
#include "kernels.inc"
const rk::IsaKernels rk::kernels_neon = RK_TABLE;
#endif
