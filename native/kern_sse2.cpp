// Baseline x86-64 (SSE2, no FMA): runs on any x86-64 CPU.
#include "platform.h"
#if defined(RK_X86)
#include "kernels.h"
#define RK_NS k_sse2
#define RK_NAME "sse2"
#define RK_VW 4
#define RK_MR 6
#define RK_KC 256
#define RK_MCP 24
#include "kernels.inc"
const rk::IsaKernels rk::kernels_sse2 = RK_TABLE;
#endif
