"""PyTorch side of the rnnkit benchmark: the same workloads (bench/workloads.mjs), same timing.

Usage: python3 torch_bench.py THREADS '<json list of workloads>'  -> one JSON object per line.
Run with OPENBLAS_NUM_THREADS=THREADS set in the environment (bench/run.js does this), since
torch.set_num_threads does not limit OpenBLAS's own threads; bench/run.js also sets
OPENBLAS_CORETYPE=Cooperlake, but only on a CPU whose /proc/cpuinfo shows avx512_bf16.
"""
import json
import resource
import statistics
import sys
import time

import torch

threads = int(sys.argv[1])
workloads = json.loads(sys.argv[2])
warmup, reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3, int(sys.argv[4]) if len(sys.argv) > 4 else 10
torch.set_num_threads(threads)
torch.manual_seed(0)


def timeit(fn):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return ts


def emit(w, ts):
    print(json.dumps({"workload": w["id"], "impl": "pytorch", "backend": "torch-" + torch.__version__,
                      "threads": threads, "median_ms": statistics.median(ts), "min_ms": min(ts), "max_ms": max(ts),
                      "samples_ms": ts,
                      "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


for w in workloads:
    if w["id"] == "sgemm":
        n = w["n"]
        a, b = torch.randn(n, n), torch.randn(n, n)
        emit(w, timeit(lambda: torch.mm(a, b)))
        continue
    if w["cell"] == "charlm":
        V, E, H, L, B, T = w["vocab"], w["emb"], w["hidden"], w["layers"], w["batch"], w["seq"]

        class CharLM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = torch.nn.Embedding(V, E)
                self.lstm = torch.nn.LSTM(E, H, L)
                self.fc = torch.nn.Linear(H, V)

            def forward(self, tok):
                y, _ = self.lstm(self.embedding(tok))
                return self.fc(y)

        m = CharLM()
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        tok = torch.randint(0, V, (T, B))
        tgt = torch.randint(0, V, (T, B))

        def step():
            opt.zero_grad(set_to_none=True)
            logits = m(tok)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
            loss.backward()
            opt.step()

        emit(w, timeit(step))
        continue
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}[w["cell"]]
    m = cls(w["input"], w["hidden"], w["layers"], bidirectional=w["bidir"])
    x = torch.randn(w["seq"], w["batch"], w["input"])
    D = 2 if w["bidir"] else 1
    G = torch.randn(w["seq"], w["batch"], D * w["hidden"])
    if w["mode"] == "train":
        xg = x.clone().requires_grad_(True)

        def step():
            m.zero_grad(set_to_none=True)
            xg.grad = None
            y, _ = m(xg)
            (y * G).sum().backward()

        emit(w, timeit(step))
    else:
        def infer():
            with torch.inference_mode():
                m(x)

        emit(w, timeit(infer))
