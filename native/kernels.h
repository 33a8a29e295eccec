// ISA-independent view of the per-ISA kernels (kernels.inc compiled three times).
// Only plain C types cross this boundary so that no inline/COMDAT function compiled for a
// wider ISA can be picked by the linker for the baseline path.
#pragma once
#include <stdint.h>

namespace rk {

enum CellId { CELL_LSTM = 0, CELL_GRU = 1, CELL_RNN_TANH = 2, CELL_RNN_RELU = 3 };
enum UnaryId { OP_TANH = 0, OP_SIGMOID = 1, OP_RELU = 2 };

struct IsaKernels {
  const char* name;
  int MR, NR, KC, MC;
  // Floats (32-bit slots) pack_b writes for op(B) [K, N]: the fp32 layout below, or for the bf16
  // table ceil(K / 2) * Npad slots each holding a pair of bf16 (see kernels.inc, RK_BF16).
  int64_t (*packed_b_floats)(int K, int N);
  // Packed B layout (whole matrix, op(B) is [K, N]): for each k-block k0 (KC rows, the last one
  // shorter) and each panel p of NR columns: kc x NR floats at out + k0 * Npad + p * kc * NR,
  // Npad = ceil(N / NR) * NR, zero-padded. Packs panels [p0, p1).
  void (*pack_b)(const float* B, int64_t ldb, int transB, int K, int N, float* out, int p0, int p1);
  // C[m0:m1, panels p0:p1] = alpha * op(A) @ packedB + beta * C, op(A) is [M, K].
  // packA: scratch of MC * KC floats, 64-byte aligned.
  void (*gemm_compute)(int M, int N, int K, float alpha, const float* A, int64_t lda, int transA,
                       const float* packedB, float beta, float* C, int64_t ldc, int m0, int m1,
                       int p0, int p1, float* packA);

  // ---- fused pointwise gate math, one batch row of H units each ----
  // lstm_fwd_row: gx,gh,bias [4H] (i,f,g,o pre-activations: input part, recurrent part, b_ih+b_hh)
  //   cprev [H] -> gates [4H] activated, c [H], h [H] = o * tanh(c)
  void (*lstm_fwd_row)(int H, const float* gx, const float* gh, const float* bias, const float* cprev,
                       float* gates, float* c, float* h);
  // lstm_bwd_row: dh [H] gradient at o*tanh(c); dc [H] in: gradient from step+1, out: dc * f;
  //   -> dg [4H] gradient of the pre-activations (and a copy in dg2 when not null)
  void (*lstm_bwd_row)(int H, const float* dh, const float* gates, const float* c, const float* cprev,
                       float* dc, float* dg, float* dg2);
  // gru_fwd_row: gx [3H], gh [3H] = W_hh h (no bias), bias [3H] (r,z: b_ih+b_hh; n: b_ih), bhn [H]
  //   hprev [H] -> gates [3H] (r,z,n), hn [H] = W_hn h + b_hn, h [H]
  void (*gru_fwd_row)(int H, const float* gx, const float* gh, const float* bias, const float* bhn,
                      const float* hprev, float* gates, float* hn, float* h);
  // gru_bwd_row: dh [H] -> dgx [3H] (input side), dgh [3H] (recurrent side), dhprev [H] = dh * z
  void (*gru_bwd_row)(int H, const float* dh, const float* gates, const float* hn, const float* hprev,
                      float* dgx, float* dgh, float* dhprev);
  // rnn_fwd_row: h = act(gx + gh + bias), written to gates and hout
  void (*rnn_fwd_row)(int H, int relu, const float* gx, const float* gh, const float* bias, float* gates,
                      float* hout);
  // rnn_bwd_row: dg = dh * act'(h) (and a copy in dg2 when not null)
  void (*rnn_bwd_row)(int H, int relu, const float* dh, const float* h, float* dg, float* dg2);

  void (*unary_fwd)(int op, int64_t n, const float* x, float* y);
  void (*unary_bwd)(int op, int64_t n, const float* x, const float* y, const float* dy, float* dx);

  // ---- GEMV: products with 1..gemv_rows rows of op(A) (batch-1 streaming); null in the bf16 table ----
  // GEMV layout of op(B) [K, N]: blocks of GV columns, each the whole K, k-major (block p: K x GV
  // floats at out + p * K * GV, zero-padded). pack_gemv packs blocks [p0, p1).
  int GV, gemv_rows;
  int64_t (*gemv_packed_floats)(int K, int N);
  void (*pack_gemv)(const float* B, int64_t ldb, int transB, int K, int N, float* out, int p0, int p1);
  // C[0:M, blocks p0:p1] = alpha * op(A)[M, K] @ packed + beta * C (beta 0: C not read)
  void (*gemv_compute)(int M, int N, int K, float alpha, const float* A, int64_t lda, int transA,
                       const float* packed, float beta, float* C, int64_t ldc, int p0, int p1);
};

#if defined(__x86_64__) || defined(_M_X64)
extern const IsaKernels kernels_avx512;
extern const IsaKernels kernels_avx2;
extern const IsaKernels kernels_sse2;
// AVX-512 kernels whose GEMMs round both operands to bf16 (round-to-nearest-even) and accumulate
// the exact products in fp32 with VDPBF16PS (matmul precision 'medium'); pointwise kernels as avx512.
extern const IsaKernels kernels_avx512bf16;
#elif defined(__aarch64__) || defined(_M_ARM64)
extern const IsaKernels kernels_neon;
#endif

// ---- dispatch (dispatch.cpp) ----
// Whether the running CPU can run the named path ("avx512", "avx2", "sse2", "avx512bf16" on
// x86-64; "neon", "bf16" on arm64). False for names of another architecture.
bool cpu_has(const char* isa);
// The fp32 kernels of a path this build has, or nullptr.
const IsaKernels* kernels_for(const char* isa);
// The best fp32 path of this CPU.
const IsaKernels* best_kernels();
// The paths a user may pick, for messages: "avx512, avx2 or sse2" / "neon".
const char* isa_choices();
// The bf16 GEMM variant of a path when the CPU has it (matmul precision 'medium'), else nullptr.
const IsaKernels* bf16_kernels_for(const IsaKernels* k);

}  // namespace rk
