#include "platform.h"
#if defined(RK_X86)
#include "kernels.h"
RK_TARGET_BEGIN("avx2,fma")
#define RK_NS k_avx2
#define RK_NAME "avx2"
#define RK_VW 8
#define RK_MR 6
#define RK_KC 1024  // k-block: a product with K up to 1024 (most recurrent steps) stores each C tile once
#define RK_MCP 24
#include "kernels.inc"
RK_TARGET_END
const rk::IsaKernels rk::kernels_avx2 = RK_TABLE;
#endif
