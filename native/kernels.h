// ISA-independent view of the per-ISA kernels (kernels.inc compiled three times).
// Only plain C types cross this boundary so that no inline/COMDAT function compiled for a
// wider ISA can be picked by the linker for the baseline path.
#pragma once
#include <stdint.h>

#include <utility>  // std::index_sequence (kernels.inc, included after the ISA target is set)

namespace rk {

// The recurrent cells, in the order of src/backends/cells.ts (CELLS ids).
enum CellId { CELL_LSTM = 0, CELL_GRU = 1, CELL_RNN_TANH = 2, CELL_RNN_RELU = 3, CELL_GRU_RESET_BEFORE = 4, CELL_COUNT = 5 };
enum UnaryId { OP_TANH = 0, OP_SIGMOID = 1, OP_RELU = 2 };

// The gate activation of LSTM and GRU: sigmoid (hard 0), or the hard sigmoid
// clamp(alpha * v + beta, 0, 1) (hard 1) with derivative alpha where 0 < y < 1, else 0.
struct GateAct {
  int hard;
  float alpha, beta;
};

// What seq.cpp needs to know about a cell: the facts of src/backends/cells.ts (CELLS) and how the
// time loop feeds the cell's row kernels (CellKernels below).
struct CellInfo {
  const char* name;  // the cell kind of cells.ts
  int gates;         // G = gates * H rows of W_ih / W_hh
  bool cState;       // has the state c (c0, cN, dc0, dcN)
  bool projection;   // proj_size (W_hr) allowed
  bool gateAct;      // has sigmoid gates a hard sigmoid may replace
  // Trailing gates whose recurrent product takes the vector `save` the cell forms from the early
  // gates (reset-before GRU: W_hn (r * h_{t-1})); 0 = one W_hh product of h_{t-1} for all gates.
  int lateGates;
  // b_hh of the last gate stays out of the folded bias and reaches the row kernel as bhh_last
  // (PyTorch's GRU: r * (W_hn h + b_hn)).
  bool lastBiasInside;
  bool saves;       // keeps one [H] vector per row and step (`save`) for backward (LSTM: training only)
  bool directPath;  // the row backward writes a path to h_{t-1} besides W_hh (GRU: dh * z)
  bool splitGrad;   // the input-side gradient differs from the recurrent side in the last gate only
                    // (GRU: dn vs dn * r; the row kernel writes dgx itself)
};
inline constexpr CellInfo kCellInfo[CELL_COUNT] = {
    // name,             gates cState proj  gateAct late lastBiasInside saves directPath splitGrad
    {"lstm", 4, true, true, true, 0, false, true, false, false},
    {"gru", 3, false, false, true, 0, true, true, true, true},
    {"rnn_tanh", 1, false, false, false, 0, false, false, false, false},
    {"rnn_relu", 1, false, false, false, 0, false, false, false, false},
    {"gru_reset_before", 3, false, false, true, 1, false, true, true, false},
};

// One batch row of one step as seq.cpp hands it to a cell's forward row kernels (H units,
// G = gates * H, R = the state size); pointers a cell does not use may be null.
struct CellRowFwd {
  int H;
  GateAct act;
  const float* gx;        // [G] W_ih x_t (no bias)
  const float* gh;        // [G] W_hh h_{t-1} (no bias); the late gates' part: W_h{late} save
  const float* bias;      // [G] b_ih + b_hh folded (lastBiasInside: b_ih only for the last gate)
  const float* bhh_last;  // [H] lastBiasInside: b_hh of the last gate
  const float* hprev;     // [R] h_{t-1}
  const float* cprev;     // [H] c_{t-1} (cState)
  float* gates;           // [G] out: the activated gates
  float* c;               // [H] out: c_t (cState)
  float* save;            // [H] out (saves): LSTM tanh(c_t) (null: not kept); GRU W_hn h + b_hn;
                          // reset-before GRU r * h_{t-1}
  float* h;               // [H] out: h_t (before a projection)
};

// One batch row of one step backward.
struct CellRowBwd {
  int H;
  GateAct act;
  const float* dh;     // [H] dL/dh_t (before a projection)
  const float* gates;  // [G] as forward wrote them
  const float* cprev;  // [H] c_{t-1} (cState)
  const float* save;   // [H] (saves) as forward wrote it (LSTM: tanh(c_t))
  const float* hprev;  // [R] h_{t-1}
  const float* dsave;  // [H] lateGates, bwd_early only: dL/dsave = W_h{late}^T dg[late]
  float* dc;           // [H] in: dL/dc_t from the later steps; out: dL/dc_{t-1} (cState)
  float* dg;           // [G] out: dL/d(recurrent pre-activations) (the late cells: per phase)
  float* dgx;          // [G] out or null: dL/d(input pre-activations) (a copy of dg unless splitGrad)
  float* dgxLast;      // [H] out (splitGrad, when dgx is null): dgx's last gate alone (its other gates
                       // equal dg's there)
  float* dhprev;       // [R] out (directPath): the direct path to h_{t-1} (bwd_early adds to it)
};

// A cell's row kernels. Forward per step: [fwd_early, the late gates' product,] fwd. Backward per
// step: bwd, [the late gates' product W_h{late}^T, bwd_early]. fwd_early / bwd_early only for
// cells with lateGates.
struct CellKernels {
  void (*fwd)(const CellRowFwd&);
  void (*bwd)(const CellRowBwd&);
  void (*fwd_early)(const CellRowFwd&);
  void (*bwd_early)(const CellRowBwd&);
};

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
  // packA: scratch of MC * KC + 64 floats, 64-byte aligned.
  void (*gemm_compute)(int M, int N, int K, float alpha, const float* A, int64_t lda, int transA,
                       const float* packedB, float beta, float* C, int64_t ldc, int m0, int m1,
                       int p0, int p1, float* packA);

  // ---- fused pointwise gate math, one batch row each (kernels.inc), indexed by CellId ----
  CellKernels cells[CELL_COUNT];

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
  // ---- batch-1 LSTM step, the W_hh product and the gate math in one pass (null in the bf16 table) ----
  // pack_gemv_lstm: W_hh [4H, K] (row stride ldw) -> ceil(H / (GV / 4)) blocks of K x GV floats
  // (gemv_packed_floats(K, 4 * H)), block p = units [p * GV / 4, (p + 1) * GV / 4) of the gates
  // i, f, g, o, k-major; packs blocks [p0, p1).
  void (*pack_gemv_lstm)(const float* W, int64_t ldw, int K, int H, float* out, int p0, int p1);
  // lstm_fwd of one batch row (r.H = K) for the units of blocks [p0, p1) (backwards: last block
  // first), with r.gh [4H] scratch that receives W_hh h_{t-1} of those units: the same bits as
  // gemv_compute then fwd of cells[CELL_LSTM].
  void (*lstm_gemv_fwd)(const float* packed, const CellRowFwd& r, int p0, int p1, int backwards);
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
// NEON kernels whose GEMMs round both operands to bf16 and accumulate the exact products in fp32
// with BFDOT (matmul precision 'medium', CPUs with FEAT_BF16); pointwise kernels as neon.
extern const IsaKernels kernels_neon_bf16;
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
