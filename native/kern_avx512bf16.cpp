// bf16 GEMMs (matmul precision 'medium'): kernels.inc with RK_BF16, on CPUs with avx512_bf16.
// MR 8: the LM's batch 32 (and 1024 / 3200 rows) split into full tiles; 16 accumulators are
// plenty for VDPBF16PS's latency. KC 512 k = 256 pairs: a B panel takes the bytes of the fp32 one.
#include "platform.h"
#if defined(RK_X86)
#include "kernels.h"
RK_TARGET_BEGIN("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,avx512bf16")
#define RK_NS k_avx512bf16
#define RK_NAME "avx512bf16"
#define RK_BF16 1
#define RK_VW 16
#define RK_MR 8
#define RK_KC 512
#define RK_MCP 24
#include "kernels.inc"
RK_TARGET_END
const rk::IsaKernels rk::kernels_avx512bf16 = RK_TABLE;
#endif
