// Sequence kernels, organised like cuDNN / oneDNN RNN primitives:
//   forward:  Gx[T*B, G] = x[T*B, I] @ W_ih^T                      (one GEMM for all steps)
//             per step s: Gh[nA, G] = h_{s-1}[nA, R] @ W_hh^T       (one GEMM for all gates)
//                         fused gate math (both biases folded in), LSTM projection GEMM
//   backward: per step s: dh = dh_next + dy; (projection: dhRaw = dh @ W_hr)
//                         fused gate gradients -> dG; dh_next = dG @ W_hh (one GEMM)
// Each cell is a row of the tables of kernels.h (CellInfo facts, CellKernels row kernels). A cell
// with late gates (reset-before GRU) splits the step's W_hh product: the early gates' rows take
// h_{s-1}, the row kernel's fwd_early forms save = r * h_{s-1}, the late rows take save, then fwd;
// backward runs bwd, save's gradient dG[late] @ W_h{late}, then bwd_early, then the early rows'
// dG @ W_h{early}.
//             after the loop: dW_ih += dGx^T @ x, dx += dGx @ W_ih, dW_hh += dG^T @ h_prev,
//                             dW_hr += dh^T @ hRaw (one GEMM each); bias grads: each row sums its
//             dG over the steps inside the loop, then the rows add up in order.
// Variable lengths: rows sorted by decreasing length (stable) so the rows still running at a step
// are a prefix; each row reads its own time index (reverse: len-1-s) — no per-step copies.
// Threads: a batch of a dozen rows and more with weights that stay in cache splits into even parts,
// one per pool thread, each running every step alone (row_parts); otherwise each step's products
// and row loops split over the pool.
#include "seq.h"

#include <algorithm>
#include <exception>
#include <numeric>

#include "losses.h"
#include "pool.h"

namespace rk {

namespace {

// Runs f(i) for rows [0, n), split over the pool by parallel_range when the work is large enough.
// At most maxThreads threads when it is > 0.
template <class F>
void rows_parallel(int n, int64_t work_per_row, int maxThreads, F&& f) {
  parallel_range(n, work_per_row, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) f((int)i);
  }, maxThreads);
}

// Whether each step of a forward call is one pass over W_hh that also forms the gates (lstm_step):
// batch 1 through an LSTM without projection.
bool lstm_step_path(const IsaKernels& k, const SeqDims& d) {
  return d.cell == CELL_LSTM && d.B == 1 && d.P == 0 && LstmStepWeights::usable(k);
}

// a[n] += x[n] (distinct arrays)
void add_into(float* __restrict a, const float* __restrict x, int n) {
  for (int j = 0; j < n; j++) a[j] += x[j];
}

// Rows [*i0, *i1) of part t of row_parts' n parts: B / n rows each (the later parts one more
// where n does not divide B).
void part_rows(int B, int n, int t, int* i0, int* i1) {
  *i0 = (int)((int64_t)B * t / n);
  *i1 = (int)((int64_t)B * (t + 1) / n);
}

// The rows of a batch run through every step independently of each other (a row's step reads
// only that row's previous state), so a sequence can split its batch into parts, one per pool
// thread, each running all steps alone. A row's sums do not depend on the tile that computes it
// (the micro-kernel sums over k in order for any tile height), so the parts are even in rows
// (B 32: 16 and 16) with the bits of the whole batch's products. Each part holds at least
// kMinPartRows rows (at least k.gemv_rows: a step with that few running rows, variable lengths,
// falls to the first part whole). Returns the number of parts, 1 where the batch does not split
// well: then each step splits its own products over the pool.
// Each part reads all of the step's weights (stepWeights floats) at every step, where a step split
// by columns has each thread read its share: the parts are for weights that stay in cache (a few
// MiB; larger ones would be read from memory by every thread, each step).
int row_parts(const IsaKernels& k, int T, int B, int64_t stepWeights) {
  constexpr int64_t kMaxStepWeights = (int64_t)1 << 20;  // 4 MiB of floats
  constexpr int kMinPartRows = 6;
  const int n = std::min(pool_threads(), B / std::max(kMinPartRows, k.gemv_rows));
  if (n < 2 || stepWeights > kMaxStepWeights || (int64_t)T * B * stepWeights < 4 * kParallelMinWork ||
      !pool_available())
    return 1;
  return n;
}

// Runs step(s, i0, i1, split) for s = 0..T-1 (reverse: T-1..0): with parts 1 the whole batch
// (split false), each step between the async jobs' yields (pool_job_step); else each part of the
// batch (row_parts) on a thread of its own through every step, with no joins between steps.
template <class F>
void run_steps(int T, int B, int parts, bool reverse, F&& step) {
  auto each_step = [&](int i0, int i1, bool split) {
    for (int n = 0; n < T; n++) {
      pool_job_step();
      step(reverse ? T - 1 - n : n, i0, i1, split);
    }
  };
  if (parts <= 1) {
    each_step(0, B, false);
    return;
  }
  parallel_for(parts, [&](int t) {
    int i0, i1;
    part_rows(B, parts, t, &i0, &i1);
    each_step(i0, i1, true);
  });
}

}  // namespace

int seq_step_split_threads(const IsaKernels& k, const SeqDims& d, bool backward) {
  if (pool_threads() < 2) return 1;
  if (!backward && lstm_step_path(k, d)) return LstmStepWeights::split_threads(k, d.H);
  if (!use_gemv(k, d.B)) return 1;  // larger batches: GEMM steps, or parts of the batch (row_parts)
  // the step's products on the GEMV path: forward op(B) = W^T [K = in, N = out], backward op(B) = W
  const int GL = kCellInfo[d.cell].lateGates * d.H, GE = d.G - GL;
  auto threads = [&](int out, int in) { return out > 0 ? (backward ? gemv_threads(k, out, in) : gemv_threads(k, in, out)) : 1; };
  return std::max({threads(GE, d.R), threads(GL, d.R), threads(d.P, d.H)});
}

void seq_forward(const IsaKernels& k, const SeqDims& d, const SeqFwdIn& in, SeqCtx& ctx) {
  const int T = d.T, B = d.B, I = d.I, H = d.H, P = d.P, R = d.R, G = d.G;
  const CellInfo& cell = kCellInfo[d.cell];
  const CellKernels& ck = k.cells[d.cell];
  const bool cState = cell.cState;
  const int GL = cell.lateGates * H, GE = G - GL;  // late gates' columns [GE, G)
  const bool train = in.training;
  ctx.d = d;

  // ---- order rows by decreasing length ----
  std::vector<int>& lens = ctx.lens;
  std::vector<int>& perm = ctx.perm;
  lens.resize(B);
  for (int b = 0; b < B; b++) lens[b] = in.lengths ? in.lengths[b] : T;
  perm.resize(B);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return lens[a] > lens[b]; });
  bool permId = true;
  for (int i = 0; i < B; i++) permId = permId && perm[i] == i;
  ctx.identity = permId && !d.reverse;  // reverse: t = len-1-s differs from s
  ctx.active.assign(T, 0);
  for (int s = 0; s < T; s++) {
    int n = 0;
    while (n < B && lens[perm[n]] > s) n++;
    ctx.active[s] = n;
  }
  auto timeOf = [&](int i, int s) { return d.reverse ? lens[perm[i]] - 1 - s : s; };

  // ---- buffers ----
  const int64_t TB = (int64_t)T * B;
  const int hslots = train ? T + 1 : 2;
  float* Hall = ctx.Hall.ensure((size_t)hslots * B * R);
  float* Call = cState ? ctx.Call.ensure((size_t)hslots * B * H) : nullptr;
  float* gates = ctx.gates.ensure((size_t)(train ? TB : B) * G);
  // LSTM keeps tanh(c_t) for backward only (its row kernel skips a null save)
  const bool saves = cell.saves && (train || d.cell != CELL_LSTM);
  float* cells = saves ? ctx.cells.ensure((size_t)(train ? TB : B) * H) : nullptr;
  float* hraw = P > 0 ? ctx.hraw.ensure((size_t)(train ? TB : B) * H) : nullptr;
  ctx.bytes = sizeof(float) * (ctx.Hall.n + ctx.Call.n + ctx.gates.n + ctx.cells.n + ctx.hraw.n);
  auto Hs = [&](int s) { return Hall + (int64_t)(train ? s : (s & 1)) * B * R; };
  auto Cs = [&](int s) { return Call + (int64_t)(train ? s : (s & 1)) * B * H; };
  auto stepRow = [&](int s, int i) { return (train ? (int64_t)s * B : 0) + i; };

  // scratch owned by this call (large blocks come from the shared cache, under its lock), so any
  // number of calls may run at once on different threads
  FBuf tGx, tGh, tBias;
  StepWeights wHe, wHl, wHr;  // W_h{early}, W_h{late}, W_hr packed for the step products
  float* Gx = tGx.ensure((size_t)TB * G);
  float* Gh = tGh.ensure((size_t)B * G);
  float* bias = tBias.zeros((size_t)G + H);  // [G] folded biases, then [H] b_hh of the last gate (lastBiasInside)
  float* bhhLast = bias + G;
  for (int g = 0; g < G; g++) {
    float v = in.bIh ? in.bIh[g] : 0.0f;
    if (in.bHh && !(cell.lastBiasInside && g >= G - H)) v += in.bHh[g];
    bias[g] = v;
  }
  if (cell.lastBiasInside && in.bHh)
    for (int j = 0; j < H; j++) bhhLast[j] = in.bHh[G - H + j];

  // Weight copies keep their packed layouts for inference, which reads the same weights call after
  // call; a training forward (its weights change at the next optimizer step) packs its own.
  WeightPacks* const wIhPacks = train ? nullptr : in.wIhPacks;
  WeightPacks* const wHhPacks = train ? nullptr : in.wHhPacks;
  WeightPacks* const wHrPacks = train ? nullptr : in.wHrPacks;

  // ---- input projection for all time steps: Gx[T*B, G] = x[T*B, I] @ W_ih^T ----
  // (W_ih^T packed once per weight copy: the bits of gemm, which packs it in whole panels)
  if (wIhPacks && !use_gemv(k, (int)TB))
    gemm_packed(k, (int)TB, G, I, 1.0f, in.x, I, false, packed_b_of(k, *wIhPacks, in.wIh, 0, I, true, I, G), 0.0f, Gx, G);
  else
    gemm(k, false, true, (int)TB, G, I, 1.0f, in.x, I, in.wIh, I, 0.0f, Gx, G);
  // ---- weights packed once for all steps (the layouts their row counts need) ----
  // batch 1 through an LSTM without projection: each step is one pass over W_hh that also forms
  // the gates (lstm_step), the same bits as the product and the row kernel in turn
  LstmStepWeights wLstm;
  const bool lstmStep = lstm_step_path(k, d);
  wLstm.threads = wHe.threads = wHl.threads = wHr.threads = in.stepThreads;
  if (lstmStep && wHhPacks) wLstm.use(k, *wHhPacks, in.wHh, H);  // packed once per weight copy
  else if (lstmStep) wLstm.pack(k, in.wHh, H);
  else wHe.pack(k, in.wHh, R, true, R, GE, ctx.active, wHhPacks);  // op(B) = W_h{early}^T [R, GE]
  // cells with late gates have no projection: save [H] and the rows of W_h{late} [GL, R = H]
  if (GL > 0)  // op(B) = W_h{late}^T [R, GL]
    wHl.pack(k, in.wHh + (int64_t)GE * R, R, true, R, GL, ctx.active, wHhPacks, (int64_t)GE * R);
  if (P > 0) wHr.pack(k, in.wHr, H, true, H, P, ctx.active, wHrPacks);  // op(B) = W_hr^T [H, P]

  // ---- initial state (slot 0), padding rows of y ----
  for (int i = 0; i < B; i++) {
    const int b = perm[i];
    float* h = Hs(0) + (int64_t)i * R;
    if (in.h0) memcpy(h, in.h0 + (int64_t)b * R, sizeof(float) * R);
    else memset(h, 0, sizeof(float) * R);
    if (cState) {
      float* c = Cs(0) + (int64_t)i * H;
      if (in.c0) memcpy(c, in.c0 + (int64_t)b * H, sizeof(float) * H);
      else memset(c, 0, sizeof(float) * H);
    }
  }
  for (int b = 0; b < B; b++)
    for (int t = lens[b]; t < T; t++) memset(in.y + ((int64_t)t * B + b) * in.yStride + in.yOffset, 0, sizeof(float) * R);

  // Step s for the rows [i0, i1) (processing order). Whole batch (split false): the step's products
  // and row loops split over the pool. A part of the batch (split true, see row_parts): only these
  // rows, on the calling thread; each row's arithmetic is the same either way.
  auto step = [&](int s, int i0, int i1, bool split) {
    const int nA = ctx.active[s];
    const int hi = std::min(i1, nA);  // the rows still running
    float* hPrev = Hs(s);
    float* hNext = Hs(s + 1);
    const int f0 = std::max(nA, i0);
    if (train && f0 < i1) {  // finished rows: keep finite zeros for the weight-gradient GEMMs
      memset(hNext + (int64_t)f0 * R, 0, sizeof(float) * (size_t)(i1 - f0) * R);
      if (cState) memset(Cs(s + 1) + (int64_t)f0 * H, 0, sizeof(float) * (size_t)(i1 - f0) * H);
      if (hraw) memset(hraw + stepRow(s, f0) * H, 0, sizeof(float) * (size_t)(i1 - f0) * H);
      if (cells) memset(cells + stepRow(s, f0) * H, 0, sizeof(float) * (size_t)(i1 - f0) * H);
    }
    // the row kernels' arguments of row i
    auto row = [&](int i) {
      const int b = perm[i];
      const int t = timeOf(i, s);
      CellRowFwd r;
      r.H = H;
      r.act = d.act;
      r.gx = Gx + ((int64_t)t * B + b) * G;
      r.gh = Gh + (int64_t)i * G;
      r.bias = bias;
      r.bhh_last = bhhLast;
      r.hprev = hPrev + (int64_t)i * R;
      r.cprev = cState ? Cs(s) + (int64_t)i * H : nullptr;
      r.gates = gates + stepRow(s, i) * G;
      r.c = cState ? Cs(s + 1) + (int64_t)i * H : nullptr;
      r.save = cells ? cells + stepRow(s, i) * H : nullptr;
      r.h = P > 0 ? hraw + stepRow(s, i) * H : hNext + (int64_t)i * R;
      return r;
    };
    // row i's outputs: y at its time step, hN / cN at its last step
    auto store = [&](int i) {
      const int b = perm[i];
      const int t = timeOf(i, s);
      const float* h = hNext + (int64_t)i * R;
      memcpy(in.y + ((int64_t)t * B + b) * in.yStride + in.yOffset, h, sizeof(float) * R);
      if (s == lens[b] - 1) {
        memcpy(in.hN + (int64_t)b * R, h, sizeof(float) * R);
        if (cState && in.cN) memcpy(in.cN + (int64_t)b * H, Cs(s + 1) + (int64_t)i * H, sizeof(float) * H);
      }
    };
    if (lstmStep) {
      if (nA == 1) {
        lstm_step(k, wLstm, row(0));
        store(0);
      }
      return;
    }
    // C[rows, :] = A[rows, :] @ op(W) of the step's running rows
    auto product = [&](const float* A, int64_t lda, StepWeights& w, float* C, int64_t ldc) {
      if (split) gemm_step_rows(k, nA, i0, hi, 1.0f, A, lda, w, 0.0f, C, ldc);
      else gemm_step(k, nA, 1.0f, A, lda, w, 0.0f, C, ldc);
    };
    auto rows = [&](auto&& f) {
      if (split) {
        for (int i = i0; i < hi; i++) f(i);
      } else {
        rows_parallel(nA, (int64_t)G * 4, in.stepThreads, f);
      }
    };
    // Gh[nA, GE] = h_prev[nA, R] @ W_h{early}^T
    product(hPrev, R, wHe, Gh, G);
    if (GL > 0) {  // the late gates: Gh[nA, GE:G] = save[nA, H] @ W_h{late}^T after fwd_early
      rows([&](int i) { ck.fwd_early(row(i)); });
      product(cells + stepRow(s, 0) * H, H, wHl, Gh + GE, G);
    }
    if (P > 0) {  // h[nA, P] = hRaw[nA, H] @ W_hr^T, after every row's gates
      rows([&](int i) { ck.fwd(row(i)); });
      product(hraw + stepRow(s, 0) * H, H, wHr, hNext, R);
      for (int i = split ? i0 : 0; i < hi; i++) store(i);
    } else {  // each row stores its outputs in the same loop
      rows([&](int i) {
        ck.fwd(row(i));
        store(i);
      });
    }
  };
  run_steps(T, B, lstmStep ? 1 : row_parts(k, T, B, (int64_t)GE * R + (int64_t)GL * H + (int64_t)P * H), false, step);
}

namespace {

// What the BPTT loop leaves for the input gradient: dGx [T, B, G] in (t, b) order (it may be
// dGh's block), owned by this object; or with dGxLastP, dGx's columns [0, G - H) in dGxP (dGh's
// block, row stride G) and its last gate's in dGxLastP [T, B, H].
struct BwdScratch {
  FBuf dGh, dGx;
  const float* dGxP = nullptr;
  const float* dGxLastP = nullptr;
};

// Backward through time and every gradient but dx (left in w.dGxP for input_grad).
void bptt(const IsaKernels& k, const SeqCtx& ctx, const SeqBwdIn& in, BwdScratch& w) {
  const SeqDims& d = ctx.d;
  const int T = d.T, B = d.B, I = d.I, H = d.H, P = d.P, R = d.R, G = d.G;
  const CellInfo& cell = kCellInfo[d.cell];
  const CellKernels& ck = k.cells[d.cell];
  const bool cState = cell.cState;
  const int GL = cell.lateGates * H, GE = G - GL;  // late gates' columns [GE, G)
  const int64_t TB = (int64_t)T * B;
  const std::vector<int>& perm = ctx.perm;
  const std::vector<int>& lens = ctx.lens;
  auto timeOf = [&](int i, int s) { return d.reverse ? lens[perm[i]] - 1 - s : s; };
  const float* Hall = ctx.Hall.p;
  const float* Call = ctx.Call.p;
  const float* gates = ctx.gates.p;
  const float* cells = ctx.cells.p;
  const float* hraw = ctx.hraw.p;

  FBuf tDh, tDc, tDhTot, tDhRaw, tWsDh, tDSave;  // scratch owned by this call
  StepWeights wHe, wHl, wHr;
  // dGh: [T, B, G] gradients of the recurrent pre-activations in processing order (s, i);
  // dGx: [T, B, G] gradients of the input pre-activations in (t, b) order, the layout of x.
  // A splitGrad cell in (t, b) = (s, i) order keeps dGx's last gate alone (dGxLast [T, B, H]): its
  // other gates' columns are dGh's.
  float* dGh = w.dGh.ensure((size_t)TB * G);
  const int GS = G - H;
  const bool lastOnly = cell.splitGrad && ctx.identity && GL == 0 && GS > 0;
  const bool separateDGx = (cell.splitGrad || !ctx.identity) && !lastOnly;
  float* dGx = separateDGx ? w.dGx.ensure((size_t)TB * G) : dGh;
  float* dGxLast = lastOnly ? w.dGx.ensure((size_t)TB * H) : nullptr;
  w.dGxP = dGx;
  w.dGxLastP = dGxLast;
  float* dh = tDh.ensure((size_t)B * R);   // gradient flowing into the state, processing order
  float* dc = cState ? tDc.ensure((size_t)B * H) : nullptr;
  float* dhTot = tDhTot.ensure((size_t)B * R);
  float* dhRaw = P > 0 ? tDhRaw.ensure((size_t)B * H) : nullptr;
  float* wsDh = P > 0 ? tWsDh.ensure((size_t)TB * P) : nullptr;  // [T, B, P] dh per step
  float* dSave = GL > 0 ? tDSave.ensure((size_t)B * H) : nullptr;  // [B, H] dL/dsave of the late gates

  // rows never processed keep zeros (they enter the all-steps GEMMs)
  for (int s = 0; s < T; s++) {
    const int nA = ctx.active[s];
    if (nA < B) {
      memset(dGh + ((int64_t)s * B + nA) * G, 0, sizeof(float) * (size_t)(B - nA) * G);
      if (wsDh) memset(wsDh + ((int64_t)s * B + nA) * P, 0, sizeof(float) * (size_t)(B - nA) * P);
    }
  }
  if (separateDGx) {
    for (int b = 0; b < B; b++)
      for (int t = lens[b]; t < T; t++) memset(dGx + ((int64_t)t * B + b) * G, 0, sizeof(float) * G);
  }
  if (lastOnly) {
    for (int b = 0; b < B; b++)
      for (int t = lens[b]; t < T; t++) memset(dGxLast + ((int64_t)t * B + b) * H, 0, sizeof(float) * H);
  }
  for (int i = 0; i < B; i++) {
    const int b = perm[i];
    if (in.dhN) memcpy(dh + (int64_t)i * R, in.dhN + (int64_t)b * R, sizeof(float) * R);
    else memset(dh + (int64_t)i * R, 0, sizeof(float) * R);
    if (cState) {
      if (in.dcN) memcpy(dc + (int64_t)i * H, in.dcN + (int64_t)b * H, sizeof(float) * H);
      else memset(dc + (int64_t)i * H, 0, sizeof(float) * H);
    }
  }
  // bias gradients: each row adds up its own dG over its steps in the loop, while they are in cache
  // (a splitGrad cell also dGx's last gate, the only columns where it differs: GS = G - H on);
  // the rows' sums then add up in row order, so no sum depends on the split over threads
  const int GA = G + (cell.splitGrad ? H : 0);  // [G] sums of dG, then [H] of dGx's last gate
  FBuf tBSum;
  float* bsum = in.dBIh || in.dBHh ? tBSum.zeros((size_t)B * GA) : nullptr;  // [B, GA]
  auto sum_bias = [&](int i, const CellRowBwd& r) {
    if (!bsum) return;
    float* a = bsum + (int64_t)i * GA;
    add_into(a, r.dg, G);
    if (cell.splitGrad) add_into(a + G, lastOnly ? r.dgxLast : r.dgx + GS, H);
  };
  wHe.threads = wHl.threads = wHr.threads = in.stepThreads;
  wHe.pack(k, in.wHh, R, false, GE, R, ctx.active);  // op(B) = W_h{early} [GE, R]
  if (GL > 0) wHl.pack(k, in.wHh + (int64_t)GE * R, R, false, GL, R, ctx.active);  // op(B) = W_h{late} [GL, R]
  if (P > 0) wHr.pack(k, in.wHr, H, false, P, H, ctx.active);  // op(B) = W_hr [P, H]

  // Step s for the rows [i0, i1), as in seq_forward: the whole batch (split false) or a part of it
  // on the calling thread (split true)
  auto step = [&](int s, int i0, int i1, bool split) {
    const int nA = ctx.active[s];
    const int lo = split ? i0 : 0, hi = std::min(i1, nA);  // the running rows of this call
    // total gradient at the state of step s, row i: carried + dy
    float* dhs = P > 0 ? wsDh + (int64_t)s * B * P : dhTot;
    auto total = [&](int i) {
      const int t = timeOf(i, s);
      const int b = perm[i];
      float* dst = dhs + (int64_t)i * R;
      const float* src = dh + (int64_t)i * R;
      if (in.dy) {
        const float* dyr = in.dy + ((int64_t)t * B + b) * in.dyStride + in.dyOffset;
        for (int r = 0; r < R; r++) dst[r] = src[r] + dyr[r];
      } else {
        memcpy(dst, src, sizeof(float) * R);
      }
    };
    // C[rows, :] = A[rows, :] @ op(W) + beta * C of the step's running rows
    auto product = [&](const float* A, int64_t lda, StepWeights& w, float beta, float* C, int64_t ldc) {
      if (split) gemm_step_rows(k, nA, i0, hi, 1.0f, A, lda, w, beta, C, ldc);
      else gemm_step(k, nA, 1.0f, A, lda, w, beta, C, ldc);
    };
    auto rows = [&](auto&& f) {
      if (split) {
        for (int i = i0; i < hi; i++) f(i);
      } else {
        rows_parallel(nA, (int64_t)G * 4, in.stepThreads, f);
      }
    };
    if (P > 0) {  // dhRaw = dh @ W_hr after every row's total
      for (int i = lo; i < hi; i++) total(i);
      product(dhs, P, wHr, 0.0f, dhRaw, H);
    }
    float* dGs = dGh + (int64_t)s * B * G;
    // the row kernels' arguments of row i
    auto row = [&](int i) {
      const int t = timeOf(i, s);
      const int b = perm[i];
      const int64_t sr = (int64_t)s * B + i;
      CellRowBwd r;
      r.H = H;
      r.act = d.act;
      r.dh = P > 0 ? dhRaw + (int64_t)i * H : dhTot + (int64_t)i * R;
      r.gates = gates + sr * G;
      r.cprev = cState ? Call + sr * H : nullptr;
      r.save = cells ? cells + sr * H : nullptr;
      r.hprev = Hall + sr * R;
      r.dsave = dSave ? dSave + (int64_t)i * H : nullptr;
      r.dc = cState ? dc + (int64_t)i * H : nullptr;
      r.dg = dGs + (int64_t)i * G;
      r.dgx = separateDGx ? dGx + ((int64_t)t * B + b) * G : nullptr;
      r.dgxLast = lastOnly ? dGxLast + ((int64_t)t * B + b) * H : nullptr;
      r.dhprev = cell.directPath ? dh + (int64_t)i * R : nullptr;
      return r;
    };
    rows([&](int i) {
      if (P == 0) total(i);  // each row forms its own total in the same loop
      const CellRowBwd r = row(i);
      ck.bwd(r);
      if (GL == 0) sum_bias(i, r);
    });
    if (GL > 0) {  // dsave[nA, H] = dG[nA, GE:G] @ W_h{late}, then the early gates' gradients
      product(dGs + GE, G, wHl, 0.0f, dSave, H);
      rows([&](int i) {
        const CellRowBwd r = row(i);
        ck.bwd_early(r);
        sum_bias(i, r);
      });
    }
    // dh_prev[nA, R] (+)= dG[nA, GE] @ W_h{early}  (a cell's direct path is already in dh)
    product(dGs, G, wHe, cell.directPath ? 1.0f : 0.0f, dh, R);
  };
  run_steps(T, B, row_parts(k, T, B, (int64_t)GE * R + (int64_t)GL * H + (int64_t)P * H), true, step);

  for (int i = 0; i < B; i++) {
    const int b = perm[i];
    if (in.dh0) add_into(in.dh0 + (int64_t)b * R, dh + (int64_t)i * R, R);
    if (cState && in.dc0) add_into(in.dc0 + (int64_t)b * H, dc + (int64_t)i * H, H);
  }
  const int TBi = (int)TB;
  // weight gradients for all steps, one GEMM each (the late rows of W_hh multiplied save)
  if (in.dWIh && in.dWHh && dGx == dGh && GL == 0 && !lastOnly) {  // both from one packing of dG^T
    gemm_tn_pair(k, G, TBi, dGh, G, in.x, I, I, in.dWIh, I, Hall, R, R, in.dWHh, R);
  } else if (lastOnly) {  // the rows [0, GS) of both from one packing of dG^T, then each last gate
    if (in.dWIh && in.dWHh) {
      gemm_tn_pair(k, GS, TBi, dGh, G, in.x, I, I, in.dWIh, I, Hall, R, R, in.dWHh, R);
    } else if (in.dWIh) {
      gemm(k, true, false, GS, I, TBi, 1.0f, dGh, G, in.x, I, 1.0f, in.dWIh, I);
    } else if (in.dWHh) {
      gemm(k, true, false, GS, R, TBi, 1.0f, dGh, G, Hall, R, 1.0f, in.dWHh, R);
    }
    if (in.dWIh) gemm(k, true, false, H, I, TBi, 1.0f, dGxLast, H, in.x, I, 1.0f, in.dWIh + (int64_t)GS * I, I);
    if (in.dWHh) gemm(k, true, false, H, R, TBi, 1.0f, dGh + GS, G, Hall, R, 1.0f, in.dWHh + (int64_t)GS * R, R);
  } else {
    if (in.dWIh) gemm(k, true, false, G, I, TBi, 1.0f, dGx, G, in.x, I, 1.0f, in.dWIh, I);
    if (in.dWHh) gemm(k, true, false, GE, R, TBi, 1.0f, dGh, G, Hall, R, 1.0f, in.dWHh, R);
  }
  if (in.dWHh && GL > 0)
    gemm(k, true, false, GL, R, TBi, 1.0f, dGh + GE, G, cells, H, 1.0f, in.dWHh + (int64_t)GE * R, R);
  if (P > 0 && in.dWHr) gemm(k, true, false, P, H, TBi, 1.0f, wsDh, P, hraw, H, 1.0f, in.dWHr, H);
  if (bsum) {
    FBuf tCol;
    float* col = tCol.zeros((size_t)GA);  // [GA] the rows' sums, added in row order
    colsum_add(bsum, B, GA, col);
    for (int g = 0; g < G; g++) {
      if (in.dBHh) in.dBHh[g] += col[g];
      if (in.dBIh) in.dBIh[g] += cell.splitGrad && g >= GS ? col[G + g - GS] : col[g];
    }
  }
}

// dx[T*B, I] += dGx @ W_ih (dGx's last gate apart: two products, over its other gates then that one)
void input_grad(const IsaKernels& k, const SeqCtx& ctx, const SeqBwdIn& in, const BwdScratch& w) {
  const SeqDims& d = ctx.d;
  if (!in.dx) return;
  const int TB = d.T * d.B, GS = d.G - d.H;
  if (w.dGxLastP) {
    gemm(k, false, false, TB, d.I, GS, 1.0f, w.dGxP, d.G, in.wIh, d.I, 1.0f, in.dx, d.I);
    gemm(k, false, false, TB, d.I, d.H, 1.0f, w.dGxLastP, d.H, in.wIh + (int64_t)GS * d.I, d.I, 1.0f, in.dx, d.I);
  } else {
    gemm(k, false, false, TB, d.I, d.G, 1.0f, w.dGxP, d.G, in.wIh, d.I, 1.0f, in.dx, d.I);
  }
}

// Whether two sequence calls take a thread each: from 2 threads on, up to 3 (with 4 and more,
// each call's own products split over the whole pool do better than one thread per call).
bool pair_concurrent() {
  const int n = pool_threads();
  return n >= 2 && n <= 3;
}

// Runs f(0) and f(1) on two threads of the pool (or in turn on this one if the pool is taken);
// an exception of either is rethrown here after both ended.
template <class F>
void run_two(F&& f) {
  std::exception_ptr err[2];
  parallel_for(2, [&](int i) {
    try {
      f(i);
    } catch (...) {
      err[i] = std::current_exception();
    }
  });
  for (auto& e : err)
    if (e) std::rethrow_exception(e);
}

}  // namespace

void seq_backward(const IsaKernels& k, const SeqCtx& ctx, const SeqBwdIn& in) {
  BwdScratch w;
  bptt(k, ctx, in, w);
  input_grad(k, ctx, in, w);
}

void seq_forward_pair(const IsaKernels& k, const SeqDims& d0, const SeqFwdIn& in0, SeqCtx& ctx0, const SeqDims& d1,
                      const SeqFwdIn& in1, SeqCtx& ctx1, bool concurrent) {
  if (!concurrent || !pair_concurrent()) {
    seq_forward(k, d0, in0, ctx0);
    seq_forward(k, d1, in1, ctx1);
    return;
  }
  // each call's inner parallel loops find the pool taken and run on the thread of their call
  run_two([&](int i) { i == 0 ? seq_forward(k, d0, in0, ctx0) : seq_forward(k, d1, in1, ctx1); });
}

void seq_backward_pair(const IsaKernels& k, const SeqCtx& ctx0, const SeqBwdIn& in0, const SeqCtx& ctx1,
                       const SeqBwdIn& in1, bool concurrent) {
  if (!concurrent || !pair_concurrent()) {
    seq_backward(k, ctx0, in0);
    seq_backward(k, ctx1, in1);
    return;
  }
  BwdScratch w0, w1;
  run_two([&](int i) { i == 0 ? bptt(k, ctx0, in0, w0) : bptt(k, ctx1, in1, w1); });
  // dx may be shared (a bidirectional layer's input gradient): accumulated first then second,
  // the order of two calls in turn
  input_grad(k, ctx0, in0, w0);
  input_grad(k, ctx1, in1, w1);
}

}  // namespace rk
