#include "platform.h"
#if defined(RK_X86)
#include "kernels.h"
RK_TARGET_BEGIN("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define RK_NS k_avx512
#define RK_NAME "avx512"
#define RK_VW 16
#define RK_MR 12
#define RK_KC 256
#define RK_MCP 16
#include "kernels.inc"
RK_TARGET_END
const rk::IsaKernels rk::kernels_avx512 = RK_TABLE;
#endif
