// Whole-sequence recurrent kernels (one direction of one layer): forward and BPTT backward.
#pragma once
#include <stdint.h>

#include <vector>

#include "gemm.h"
#include "kernels.h"

namespace rk {

struct SeqDims {
  int cell;  // CellId
  int T, B, I, H, P, R, G;  // G = gate count * H
  bool reverse;
  GateAct act;  // the gate activation (cells with gateAct)
};

struct SeqFwdIn {
  const float *x, *wIh, *wHh, *bIh, *bHh, *wHr, *h0, *c0;
  const int32_t* lengths;
  float* y;
  int64_t yStride, yOffset;
  float* hN;
  float* cN;
  bool training;
  // The packed forms of wIh, wHh, wHr where the weight is immutable (a weight copy of the addon:
  // each layout made once, shared by every inference call), else null (the call packs the weight).
  WeightPacks *wIhPacks = nullptr, *wHhPacks = nullptr, *wHrPacks = nullptr;
  // The most threads each step's own work (its products, its row loops) splits over: 0 the pool's,
  // 1 the calling thread alone (the steps of a small batch, whose threads would meet after every
  // step, see seq_step_split_threads). The same bits for any value; the all-steps products still
  // use the pool.
  int stepThreads = 0;
};

// Saved state of a training forward call. Rows are in "processing order": row i of step s is
// batch element perm[i] (sorted by decreasing length, stable) at time step t = reverse ?
// len-1-s : s, so the rows still running at step s are the prefix [0, active[s]).
struct SeqCtx {
  SeqDims d;
  std::vector<int> perm, lens, active;
  bool identity;  // row (s, i) is batch row (t, b) for every step (no reordering)
  FBuf Hall;      // [T+1, B, R]  slot 0 = h0, slot s+1 = state after step s
  FBuf Call;      // [T+1, B, H]  LSTM cell states, slot 0 = c0
  FBuf gates;     // [T, B, G]    activated gates (RNN: the new state)
  FBuf cells;     // [T, B, H]    the cell's saved vector (CellInfo::saves): LSTM tanh(c), GRU W_hn h + b_hn, reset-before GRU r * h
  FBuf hraw;      // [T, B, H]    LSTM with projection: o * tanh(c) before W_hr
  size_t bytes = 0;
  bool consumed = false;  // set by seq_backward, which frees the saved activations
  void release() {
    Hall.release();
    Call.release();
    gates.release();
    cells.release();
    hraw.release();
    consumed = true;
  }
};

struct SeqBwdIn {
  const float *x, *wIh, *wHh, *wHr;
  const float* dy;
  int64_t dyStride, dyOffset;
  const float *dhN, *dcN;
  float *dx, *dh0, *dc0, *dWIh, *dWHh, *dBIh, *dBHh, *dWHr;
  int stepThreads = 0;  // as SeqFwdIn::stepThreads
};

// The threads each step of a call with dims d (backward: its backward) splits over when the steps
// are a small batch's (batch 1 through an LSTM without projection, else the products with at most
// k.gemv_rows rows), so the threads meet after every step: 1 when they do not split so (one pool
// thread, a step too small to split, a batch that splits otherwise). Where this is above 1,
// stepThreads 1 runs the steps on the calling thread instead, with the same bits.
int seq_step_split_threads(const IsaKernels& k, const SeqDims& d, bool backward);

// Runs the forward pass; fills ctx (which must be freshly constructed) when in.training.
void seq_forward(const IsaKernels& k, const SeqDims& d, const SeqFwdIn& in, SeqCtx& ctx);
void seq_backward(const IsaKernels& k, const SeqCtx& ctx, const SeqBwdIn& in);

// Two sequence calls (the two directions of a bidirectional layer): the results of the first
// call then the second, bit for bit. With concurrent (the caller checked that neither call writes
// what the other reads or writes, a shared dx aside) and 2 or 3 pool threads, each call runs on
// a thread of its own; backward then adds the calls' input gradients to dx in turn.
void seq_forward_pair(const IsaKernels& k, const SeqDims& d0, const SeqFwdIn& in0, SeqCtx& ctx0, const SeqDims& d1,
                      const SeqFwdIn& in1, SeqCtx& ctx1, bool concurrent);
void seq_backward_pair(const IsaKernels& k, const SeqCtx& ctx0, const SeqBwdIn& in0, const SeqCtx& ctx1,
                       const SeqBwdIn& in1, bool concurrent);

}  // namespace rk
