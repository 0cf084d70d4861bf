#!/usr/bin/env bash
# Rebuild the packaged re-id model `reid-synth` (mvd_edge/assets/reid-synth.*, issue #33) from nothing:
# synthetic data -> MVD teacher -> one-pass student -> FP32 ONNX -> INT8 (ORT cpu flavour) -> operating
# point on fresh identities -> matcher check on held-out video pairs -> copy into the package with
# provenance (scripts/package_reid.py). Every step resumes: rerun the script after an interruption.
#
#   scripts/build_reid_synth.sh [RUN_DIR]      (default runs/reid-synth; hours on a 2-core CPU)
#
# Environment: TEACHER_EPOCHS (30), STUDENT_EPOCHS (10), IDS (1000), DATA_SEED (0), THREADS (2).
# The data seed must differ from the demo's (mvd_edge/deploy/demo.py: DEMO_DATA_SEED) and from the
# calibration identities' (1000): the packaged weights must not have seen the people they are tested on.
set -euo pipefail
R=${1:-runs/reid-synth}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-30}; STUDENT_EPOCHS=${STUDENT_EPOCHS:-10}
IDS=${IDS:-1000}; DATA_SEED=${DATA_SEED:-0}; THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
mkdir -p "$R"
LOG="$R/commands.log"
run() { echo "$(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?') $*" >> "$LOG"; "$@"; }
resume_flag() { [ -f "$1/last.pt" ] && echo --resume || true; }

# 1. the teacher: three-branch MVD, tiny backbone, VCD/VML off (docs/matcher_eval: the setting that matched best)
[ -f "$R/teacher/test_results.json" ] || run mvd-edge train --out "$R/teacher" $(resume_flag "$R/teacher") \
  --set data.root="$R/data" --set synth.n_ids="$IDS" --set synth.seed="$DATA_SEED" \
  --set optim.epochs="$TEACHER_EPOCHS" --set loss.vcd=0 --set loss.vml=0 --set device=cpu
# 2. the one-pass student (recipe `shared`), from the teacher's shared branch
[ -f "$R/student/test_results.json" ] || run mvd-edge distill "$R/teacher/best.pt" --out "$R/student" \
  $(resume_flag "$R/student") --epochs "$STUDENT_EPOCHS" --device cpu
# 3. FP32 ONNX, INT8 Q/DQ calibrated on the teacher's training crops, ONNX Runtime engine
E="$R/engine"
[ -f "$E/reid-synth.onnx" ] || run mvd-edge export "$R/student/best.pt" --out "$E/reid-synth.onnx"
[ -f "$E/reid-synth.int8-cpu.onnx" ] || run mvd-edge int8 "$E/reid-synth.onnx" --flavours cpu --dataset sysu --root "$R/data"
[ -f "$E/reid-synth.int8-cpu.ort.onnx" ] || run mvd-edge build-engine "$E/reid-synth.int8-cpu.onnx" --backend ort
# 4. operating point (threshold, margin) on 40 identities nobody trained on, in synthetic scenes
[ -d "$R/calib-ids" ] || run mvd-edge synth --out "$R/calib-ids" --ids 40 --seed 1000 --render scenes
run mvd-edge calibrate-threshold "$E/reid-synth.int8-cpu.ort.onnx" --root "$R/calib-ids" --split all --precision 0.9 --seed 0
# 5. the matcher on the 12 held-out pairs of docs/matcher_eval (seeds 0-3, 8-15), thresholds from the sidecar
for k in 0 1 2 3 8 9 10 11 12 13 14 15; do
  [ -f "$R/videos/mvid$k/gt.json" ] || run mvd-edge synth-video --out "$R/videos/mvid$k" --seed "$k"
done
[ -f "$R/matcher_eval/matcher_eval.json" ] || run python scripts/matcher_eval.py --engine "$E/reid-synth.int8-cpu.ort.onnx" \
  $(for k in 0 1 2 3 8 9 10 11 12 13 14 15; do echo --video "$R/videos/mvid$k"; done) --thresholds sidecar \
  --out "$R/matcher_eval"
# 6. into the package, with provenance
run python scripts/package_reid.py "$R"
