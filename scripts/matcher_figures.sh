#!/usr/bin/env bash
# Matcher figures for the #32 before/after check: benchmarks/tracking.py (oracle + the committed tiny
# engine, held-out synth-video seeds 1,2, every box kind and variant) and scripts/site_eval.py (tiny
# engine, site seed 10, 12 s). Usage: scripts/matcher_figures.sh CODE_DIR OUT_DIR (CODE_DIR: a checkout of the commit to measure)
set -eu
CODE=$1; OUT=$2
mkdir -p "$OUT"
cd "$CODE"
export PYTHONPATH=$CODE OMP_NUM_THREADS=1
python benchmarks/tracking.py --seeds 1,2 --engine tests/data/edge/tiny.onnx --jobs 1 \
  --work "$OUT/work-tracking" --out-dir "$OUT/tracking" > "$OUT/tracking.log" 2>&1
python scripts/site_eval.py --engine tests/data/edge/tiny.onnx --seeds 10 --seconds 12 \
  --out "$OUT/site" > "$OUT/site.log" 2>&1
echo done > "$OUT/DONE"
