#include "kernels.h"
#include <string.h>
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,avx512bf16")
#include <immintrin.h>
#define RK_NS k_avx512bf16
#define RK_NAME "avx512bf16"
#define RK_BF16 1
#define RK_VW 16
#define RK_MR 12
#define RK_KC 512
#define RK_MCP 16
#include "kernels.inc"
const rk::IsaKernels rk::kernels_avx512bf16 = RK_TABLE;
