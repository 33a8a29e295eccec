#!/usr/bin/env bash
# The issue-5 comparison: `rnnkit train --dataset moby-dick` (2-layer LSTM, hidden 256, embedding 64,
# seq 100, batch 32, Adam 2e-3, clip 1) for MINUTES, then the PyTorch baseline with the same model,
# data and split for the same time, one after the other (run it on an idle machine).
#   bash bench/lm-charlm.sh [MINUTES] [extra rnnkit train flags...]
# Writes bench/lm-results/{rnnkit.txt,pytorch.txt} and the run directory bench/lm-results/run
# (checkpoint, curves.svg, report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-10}
shift || true
OUT=${OUT:-bench/lm-results}
mkdir -p "$OUT"
rm -rf "$OUT/run"
echo "== rnnkit ($(node -p 'process.version'), load: $(cut -d' ' -f1-3 /proc/loadavg))"
node bin/rnnkit.js train --dataset moby-dick --cell lstm --layers 2 --hidden 256 --embed 64 --seq 100 --batch 32 \
  --lr 2e-3 --clip 1 --minutes "$MIN" --val-every 200 --val-tokens 20000 --checkpoint-every 1000 \
  --out "$OUT/run" --samples 3 "$@" | tee "$OUT/rnnkit.txt"
echo "== pytorch (load: $(cut -d' ' -f1-3 /proc/loadavg))"
OPENBLAS_CORETYPE=Cooperlake OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
  /usr/bin/python3 bench/pytorch_charlm_baseline.py --minutes "$MIN" --json | tee "$OUT/pytorch.txt"
