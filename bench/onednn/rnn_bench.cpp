// oneDNN peer of `npm run bench` (built and run by bench/run.js when oneDNN's headers exist).
// Times the same step as rnnkit's kernel-level rows with oneDNN's RNN primitives (f32, CPU):
//   infer: forward (prop_kind forward_inference) of every layer and direction;
//   train: forward (forward_training, keeping the workspace) then backward of every layer with
//          diff_dst_layer = a fixed random G: the gradients of every weight, bias and of the input.
// One primitive per layer (both directions in it, outputs concatenated), time-major tnc
// activations, initial states zero (no src_iter), no final states asked for. User weights are in
// ldigo; the primitives pick their own weight layouts: inference reorders them once before timing
// (weights that do not change), training reorders them inside the timed step and the diff weights
// back to ldigo (weights change every training step), and zeroes the diff weights (oneDNN adds to them).
// Cells: lstm (gates i, f, c~, o), gru = lbr_gru (PyTorch's GRU), rnn_tanh = vanilla_rnn tanh.
// Threads: oneDNN's OpenMP runtime, OMP_NUM_THREADS.
//
//   rnn_bench ID CELL MODE T B I H LAYERS BIDIR WARMUP REPS
// prints one JSON line: {"workload", "impl": "onednn", "median_ms", "min_ms", "max_ms", "samples_ms"}.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#if __has_include(<oneapi/dnnl/dnnl.hpp>)
#include <oneapi/dnnl/dnnl.hpp>
#else
#include <dnnl.hpp>
#endif

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

std::mt19937 rng(12345);

memory filled(const memory::desc& d, const engine& eng, float scale) {
  memory m(d, eng);
  float* p = static_cast<float*>(m.get_data_handle());
  std::uniform_real_distribution<float> u(-scale, scale);
  for (size_t i = 0; i < d.get_size() / sizeof(float); i++) p[i] = u(rng);
  return m;
}

void zero(memory& m) { std::memset(m.get_data_handle(), 0, m.get_desc().get_size()); }

// One layer (all its directions) of one cell kind.
struct Layer {
  primitive fwd, bwd;
  memory src, dst, wl, wi, bias, ws;            // user layouts (ldigo weights)
  memory wlF, wiF, wlB, wiB;                    // primitive layouts (forward / backward)
  memory dSrc, dDst, dWl, dWi, dBias, dWlB, dWiB;  // diff memories (ldigo / primitive layouts)
  bool train;
};

Layer make_layer(const std::string& cell, bool train, int T, int B, int I, int H, int D, const engine& eng,
                 const memory* input) {
  Layer L;
  L.train = train;
  const int gates = cell == "lstm" ? 4 : cell == "gru" ? 3 : 1;
  const int biasGates = cell == "gru" ? 4 : gates;  // lbr_gru: b_hn apart
  const rnn_direction dir = D == 2 ? rnn_direction::bidirectional_concat : rnn_direction::unidirectional_left2right;
  const memory::desc src_d({T, B, I}, dt::f32, tag::tnc);
  const memory::desc dst_d({T, B, D * H}, dt::f32, tag::tnc);
  const memory::desc wl_u({1, D, I, gates, H}, dt::f32, tag::ldigo);
  const memory::desc wi_u({1, D, H, gates, H}, dt::f32, tag::ldigo);
  const memory::desc wl_any({1, D, I, gates, H}, dt::f32, tag::any);
  const memory::desc wi_any({1, D, H, gates, H}, dt::f32, tag::any);
  const memory::desc bias_d({1, D, biasGates, H}, dt::f32, tag::ldgo);
  const memory::desc none;
  const prop_kind pk = train ? prop_kind::forward_training : prop_kind::forward_inference;
  const float s = 1.0f / std::sqrt((float)H);

  L.src = input ? *input : filled(src_d, eng, 1.0f);
  L.dst = memory(dst_d, eng);
  L.wl = filled(wl_u, eng, s);
  L.wi = filled(wi_u, eng, s);
  L.bias = filled(bias_d, eng, s);

  memory::desc wlF, wiF, wsD, wlB, wiB, dWlB, dWiB;
  if (cell == "lstm") {
    auto pd = lstm_forward::primitive_desc(
        lstm_forward::desc(pk, dir, src_d, none, none, wl_any, wi_any, bias_d, dst_d, none, none), eng);
    L.fwd = lstm_forward(pd);
    wlF = pd.weights_layer_desc(), wiF = pd.weights_iter_desc(), wsD = pd.workspace_desc();
    if (train) {
      auto bpd = lstm_backward::primitive_desc(
          lstm_backward::desc(prop_kind::backward, dir, src_d, none, none, wl_any, wi_any, bias_d, dst_d, none, none,
                              src_d, none, none, wl_any, wi_any, bias_d, dst_d, none, none),
          eng, pd);
      L.bwd = lstm_backward(bpd);
      wlB = bpd.weights_layer_desc(), wiB = bpd.weights_iter_desc();
      dWlB = bpd.diff_weights_layer_desc(), dWiB = bpd.diff_weights_iter_desc();
    }
  } else if (cell == "gru") {
    auto pd = lbr_gru_forward::primitive_desc(
        lbr_gru_forward::desc(pk, dir, src_d, none, wl_any, wi_any, bias_d, dst_d, none), eng);
    L.fwd = lbr_gru_forward(pd);
    wlF = pd.weights_layer_desc(), wiF = pd.weights_iter_desc(), wsD = pd.workspace_desc();
    if (train) {
      auto bpd = lbr_gru_backward::primitive_desc(
          lbr_gru_backward::desc(prop_kind::backward, dir, src_d, none, wl_any, wi_any, bias_d, dst_d, none, src_d,
                                 none, wl_any, wi_any, bias_d, dst_d, none),
          eng, pd);
      L.bwd = lbr_gru_backward(bpd);
      wlB = bpd.weights_layer_desc(), wiB = bpd.weights_iter_desc();
      dWlB = bpd.diff_weights_layer_desc(), dWiB = bpd.diff_weights_iter_desc();
    }
  } else {
    auto pd = vanilla_rnn_forward::primitive_desc(
        vanilla_rnn_forward::desc(pk, algorithm::eltwise_tanh, dir, src_d, none, wl_any, wi_any, bias_d, dst_d, none),
        eng);
    L.fwd = vanilla_rnn_forward(pd);
    wlF = pd.weights_layer_desc(), wiF = pd.weights_iter_desc(), wsD = pd.workspace_desc();
    if (train) {
      auto bpd = vanilla_rnn_backward::primitive_desc(
          vanilla_rnn_backward::desc(prop_kind::backward, algorithm::eltwise_tanh, dir, src_d, none, wl_any, wi_any,
                                     bias_d, dst_d, none, src_d, none, wl_any, wi_any, bias_d, dst_d, none),
          eng, pd);
      L.bwd = vanilla_rnn_backward(bpd);
      wlB = bpd.weights_layer_desc(), wiB = bpd.weights_iter_desc();
      dWlB = bpd.diff_weights_layer_desc(), dWiB = bpd.diff_weights_iter_desc();
    }
  }
  L.wlF = memory(wlF, eng);
  L.wiF = memory(wiF, eng);
  if (train) {
    L.ws = memory(wsD, eng);
    L.wlB = memory(wlB, eng);
    L.wiB = memory(wiB, eng);
    L.dSrc = memory(src_d, eng);
    L.dDst = filled(dst_d, eng, 1.0f);  // the top layer's G; lower layers get the next one's dSrc
    L.dWl = memory(wl_u, eng);
    L.dWi = memory(wi_u, eng);
    L.dBias = memory(bias_d, eng);
    L.dWlB = memory(dWlB, eng);
    L.dWiB = memory(dWiB, eng);
  }
  return L;
}

// One layout -> another (a copy when they are the same), the reorder primitive made once.
struct Convert {
  reorder r;
  memory from, to;
  Convert(const memory& f, const memory& t) : r(f, t), from(f), to(t) {}
  void operator()(stream& st) { r.execute(st, from, to); }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 12) {
    std::fprintf(stderr, "usage: rnn_bench ID CELL MODE T B I H LAYERS BIDIR WARMUP REPS\n");
    return 2;
  }
  const std::string id = argv[1], cell = argv[2], mode = argv[3];
  const int T = std::atoi(argv[4]), B = std::atoi(argv[5]), I = std::atoi(argv[6]), H = std::atoi(argv[7]);
  const int layers = std::atoi(argv[8]), D = std::atoi(argv[9]) ? 2 : 1;
  const int warmup = std::atoi(argv[10]), reps = std::atoi(argv[11]);
  if (cell != "lstm" && cell != "gru" && cell != "rnn_tanh") {
    std::fprintf(stderr, "rnn_bench: unknown cell '%s'; expected lstm, gru or rnn_tanh\n", cell.c_str());
    return 2;
  }
  if (mode != "train" && mode != "infer") {
    std::fprintf(stderr, "rnn_bench: unknown mode '%s'; expected train or infer\n", mode.c_str());
    return 2;
  }
  if (T < 1 || B < 1 || I < 1 || H < 1 || layers < 1 || reps < 1 || warmup < 0) {
    std::fprintf(stderr, "rnn_bench: T, B, I, H, LAYERS and REPS must be >= 1, WARMUP >= 0\n");
    return 2;
  }
  const bool train = mode == "train";
  try {
    engine eng(engine::kind::cpu, 0);
    stream st(eng);
    std::vector<Layer> net;
    net.reserve(layers);
    for (int l = 0; l < layers; l++)
      net.push_back(make_layer(cell, train, T, B, l == 0 ? I : D * H, H, D, eng, l == 0 ? nullptr : &net[l - 1].dst));
    // layer l's output gradient is layer l+1's input gradient
    for (int l = 0; l + 1 < layers && train; l++) net[l].dDst = net[l + 1].dSrc;
    // weights to the primitives' layouts (forward; backward), diff weights back to ldigo
    std::vector<Convert> toFwd, toBwd, fromBwd;
    for (Layer& L : net) {
      toFwd.emplace_back(L.wl, L.wlF), toFwd.emplace_back(L.wi, L.wiF);
      if (train) {
        toBwd.emplace_back(L.wl, L.wlB), toBwd.emplace_back(L.wi, L.wiB);
        fromBwd.emplace_back(L.dWlB, L.dWl), fromBwd.emplace_back(L.dWiB, L.dWi);
      }
    }
    if (!train)
      for (Convert& c : toFwd) c(st);

    auto step = [&]() {
      for (int l = 0; l < layers; l++) {
        Layer& L = net[l];
        if (train) toFwd[2 * l](st), toFwd[2 * l + 1](st);
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC_LAYER, L.src},   {DNNL_ARG_WEIGHTS_LAYER, L.wlF},
                                             {DNNL_ARG_WEIGHTS_ITER, L.wiF}, {DNNL_ARG_BIAS, L.bias},
                                             {DNNL_ARG_DST_LAYER, L.dst}};
        if (train) args.insert({DNNL_ARG_WORKSPACE, L.ws});
        L.fwd.execute(st, args);
      }
      if (!train) return;
      for (int l = layers - 1; l >= 0; l--) {
        Layer& L = net[l];
        toBwd[2 * l](st), toBwd[2 * l + 1](st);
        zero(L.dWlB), zero(L.dWiB), zero(L.dBias);
        L.bwd.execute(st, {{DNNL_ARG_SRC_LAYER, L.src},
                           {DNNL_ARG_WEIGHTS_LAYER, L.wlB},
                           {DNNL_ARG_WEIGHTS_ITER, L.wiB},
                           {DNNL_ARG_BIAS, L.bias},
                           {DNNL_ARG_DST_LAYER, L.dst},
                           {DNNL_ARG_WORKSPACE, L.ws},
                           {DNNL_ARG_DIFF_SRC_LAYER, L.dSrc},
                           {DNNL_ARG_DIFF_WEIGHTS_LAYER, L.dWlB},
                           {DNNL_ARG_DIFF_WEIGHTS_ITER, L.dWiB},
                           {DNNL_ARG_DIFF_BIAS, L.dBias},
                           {DNNL_ARG_DIFF_DST_LAYER, L.dDst}});
        fromBwd[2 * l](st), fromBwd[2 * l + 1](st);
      }
    };

    for (int i = 0; i < warmup; i++) step(), st.wait();
    std::vector<double> ts;
    std::string samples;
    for (int i = 0; i < reps; i++) {
      const auto t0 = std::chrono::steady_clock::now();
      step();
      st.wait();
      ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      samples += (i ? "," : "") + std::to_string(ts.back());
    }
    std::sort(ts.begin(), ts.end());
    const size_t mid = ts.size() / 2;
    const double median = ts.size() % 2 ? ts[mid] : (ts[mid - 1] + ts[mid]) / 2;
    std::printf("{\"workload\":\"%s\",\"impl\":\"onednn\",\"median_ms\":%.6f,\"min_ms\":%.6f,\"max_ms\":%.6f,\"samples_ms\":[%s]}\n",
                id.c_str(), median, ts.front(), ts.back(), samples.c_str());
  } catch (const dnnl::error& e) {
    std::fprintf(stderr, "rnn_bench: oneDNN error %d: %s\n", (int)e.status, e.what());
    return 1;
  }
  return 0;
}
