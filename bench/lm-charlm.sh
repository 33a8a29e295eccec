#!/usr/bin/env bash
# rnnkit against PyTorch on a character LM: `rnnkit train --dataset moby-dick` (2-layer LSTM, hidden 256, embedding 64,
# seq 100, batch 32, clip 1) for MINUTES, then the PyTorch baseline with the same model, data, split
# and learning-rate recipe for the same time, one after the other (run it on an idle machine).
#   bash bench/lm-charlm.sh [MINUTES] [extra rnnkit train flags, e.g. --threads 2]
# RECIPE (default: Adam with a constant 2e-3) is given to both; e.g.
#   RECIPE="--lr 1e-2 --schedule cosine --warmup 100" bash bench/lm-charlm.sh 10 --threads 2
# The run directory is runs/charlm-bench (checkpoint, curves.svg, report.html); the printed results
# and the pictures are copied to bench/lm-results/ (OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-10}
shift || true
RUN=${RUN:-runs/charlm-bench}
OUT=${OUT:-bench/lm-results}
RECIPE=${RECIPE:---lr 2e-3}
mkdir -p "$OUT"
rm -rf "$RUN"
ARGS="--dataset moby-dick --cell lstm --layers 2 --hidden 256 --embed 64 --seq 100 --batch 32 --clip 1 $RECIPE --minutes $MIN"
{
  echo "rnnkit: node bin/rnnkit.js train $ARGS $*"
  echo "node $(node -p 'process.version'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/rnnkit.txt"
# shellcheck disable=SC2086
node bin/rnnkit.js train $ARGS --val-every 200 --val-tokens 20000 --checkpoint-every 1000 \
  --out "$RUN" --samples 3 "$@" | tee -a "$OUT/rnnkit.txt"
# the held-out figure again with fp32 products (what the saved weights give under PyTorch's numerics)
echo "fp32 re-evaluation: node bin/rnnkit.js eval $RUN --dataset moby-dick --held-out --matmul-precision highest" | tee -a "$OUT/rnnkit.txt"
node bin/rnnkit.js eval "$RUN" --dataset moby-dick --held-out --matmul-precision highest | tee -a "$OUT/rnnkit.txt"
cp "$RUN/curves.svg" "$OUT/curves.svg"
cp "$RUN/report.html" "$OUT/report.html"
{
  echo "pytorch: OPENBLAS_CORETYPE=Cooperlake OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/pytorch_charlm_baseline.py $RECIPE --minutes $MIN"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/pytorch.txt"
# shellcheck disable=SC2086
OPENBLAS_CORETYPE=Cooperlake OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
  /usr/bin/python3 bench/pytorch_charlm_baseline.py $RECIPE --minutes "$MIN" --val-every 500 --json | tee -a "$OUT/pytorch.txt"
