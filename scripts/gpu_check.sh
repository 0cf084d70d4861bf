#!/usr/bin/env bash
# One prepared GPU check of mvd-edge, under 8 minutes on one H100/H200.
#
#   bash scripts/gpu_check.sh [--dry-run] [OUT_DIR]
#
# OUT_DIR defaults to $OUT/gpu_check (or ./gpu_check without $OUT). Every step runs under
# `timeout`, writes its log to OUT_DIR/<step>.log, and a failure never stops the next step;
# OUT_DIR/summary.txt (and summary.tsv) list each step's exit code, expected code and seconds.
# The script exits 0 when every step gave its expected code, 1 otherwise.
#
# Made for an image with torch, Triton, onnxruntime(-gpu maybe), OpenCV, typer and cuda-python
# but NO TensorRT and NO network: the project is installed with `pip install --no-deps
# --no-build-isolation -e .` (nothing is downloaded; if that fails the steps still run from the
# checkout through PYTHONPATH). Steps:
#
#   install, nvidia-smi, doctor (--json), pytest -m gpu (the files with gpu marks),
#   the fused-head benchmark (benchmarks/fused_head.py, no torch.compile baseline: time),
#   training throughput AMP vs FP32 (benchmarks/train_throughput.py, ResNet-50),
#   ONNX Runtime's CUDA provider (build-engine --device cuda fp32 and fp16 + profile, and the
#   CPU profile beside it) when onnxruntime lists CUDAExecutionProvider,
#   build-engine --backend trt without TensorRT (expected: exit 2 and the one-line install hint),
#   in the order: install, nvidia-smi, doctor, trt-hint, pytest-gpu, fused-head, train-throughput, ort.
#
# The steps' own timeouts are cut so that all of them end within GPU_CHECK_BUDGET seconds
# (default 450, leaving a minute for the start); a step with under 10 s left is skipped (a failure).
#
# --dry-run prints each step as `RUN <name> <timeout_s> <expected_rc> :: <command>` and runs
# nothing (tests/test_gpu_check_script.py checks every printed command parses here on CPU).

set -u
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-${OUT:-.}/gpu_check}"
PY="${PYTHON:-python}"
MVD=("$PY" -m mvd_edge.cli)
MODEL="tests/data/edge/tiny.onnx"   # committed FP32 test model (64x32)
cd "$REPO" || exit 1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export MVD_EDGE_DEBUG=""            # one-line errors, as users see them

BUDGET="${GPU_CHECK_BUDGET:-450}"  # seconds for all steps: each step's timeout is cut to what is left
FAILED=0
START=$(date +%s)
DEADLINE=$(( START + BUDGET ))
if [ "$DRY" = 0 ]; then
    mkdir -p "$DIR"
    printf 'step\trc\texpected\tseconds\tlog\n' > "$DIR/summary.tsv"
fi

# step NAME TIMEOUT_S EXPECTED_RC CMD...
step() {
    local name="$1" limit="$2" expect="$3"
    shift 3
    if [ "$DRY" = 1 ]; then
        printf 'RUN %s %s %s ::' "$name" "$limit" "$expect"
        printf ' %q' "$@"
        printf '\n'
        return 0
    fi
    local log="$DIR/$name.log" t0 rc secs left
    t0=$(date +%s)
    left=$(( DEADLINE - t0 ))
    if [ "$left" -lt 10 ]; then
        echo "== $name: skipped (the ${BUDGET}s budget is spent)"
        printf '%s\tskipped\t%s\t0\t-\n' "$name" "$expect" >> "$DIR/summary.tsv"
        FAILED=$((FAILED + 1))
        return 0
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    echo "== $name (timeout ${limit}s): $*"
    { echo "\$ $*"; echo; } > "$log"
    timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$expect" "$secs" "$name.log" >> "$DIR/summary.tsv"
    if [ "$rc" != "$expect" ]; then
        FAILED=$((FAILED + 1))
        echo "   FAILED: exit $rc (expected $expect$([ "$rc" = 124 ] && echo ', timed out')), ${secs}s; tail of $log:"
        tail -n 5 "$log" | sed 's/^/   | /'
    else
        echo "   ok (${secs}s)"
    fi
}

# 1. install without the network (build backend from the image: no isolation)
step install 60 0 "$PY" -m pip install --no-deps --no-build-isolation --no-index -e .

# 2. the machine
step nvidia-smi 15 0 nvidia-smi
step doctor 45 0 "${MVD[@]}" doctor --json
[ "$DRY" = 0 ] && sed '1,2d' "$DIR/doctor.log" > "$DIR/doctor.json"   # the log less its command header

# 3. TensorRT is absent here: build-engine must say how to install it, in one line, exit 2
step trt-hint 30 2 "${MVD[@]}" build-engine "$MODEL" --backend trt --out "$DIR/trt/tiny.engine" --overwrite

# 4. the GPU tests (every file with a gpu mark)
GPU_TESTS=$(grep -lE '^\s*(@pytest\.mark\.gpu|pytestmark.*mark\.gpu)' tests/test_*.py | tr '\n' ' ')
# shellcheck disable=SC2086
step pytest-gpu 150 0 "$PY" -m pytest -v -m gpu -p no:cacheprovider -o addopts="" --junitxml="$DIR/pytest-gpu.xml" $GPU_TESTS

# 5. the fused-head benchmark (Triton kernels vs eager torch)
step fused-head 75 0 "$PY" benchmarks/fused_head.py --out-dir "$DIR/fused_head" --batch 1 32 256 1024 \
    --iters 50 --warmup 10 --no-compile

# 6. training throughput, AMP vs FP32
step train-throughput 60 0 "$PY" benchmarks/train_throughput.py --backbone resnet50 --batch 32 --size 256x128 \
    --device cuda --steps 10 --warmup 3 --out "$DIR/train_throughput"

# 7. ONNX Runtime's CUDA provider (where onnxruntime-gpu is installed)
HAS_ORT_CUDA=$("$PY" -c "import onnxruntime as o; print(int('CUDAExecutionProvider' in o.get_available_providers()))" 2>/dev/null || echo 0)
if [ "$HAS_ORT_CUDA" = 1 ] || [ "$DRY" = 1 ]; then
    step ort-cuda-build 40 0 "${MVD[@]}" build-engine "$MODEL" --backend ort --device cuda \
        --out "$DIR/ort_cuda/tiny.ort.onnx" --overwrite
    step ort-cuda-profile 40 0 "${MVD[@]}" profile "$DIR/ort_cuda/tiny.ort.onnx" --device cuda --batch 1,8,32 \
        --iters 50 --out "$DIR/ort_cuda/profile_fp32" --overwrite
    if "$PY" -c "import onnx" 2>/dev/null || [ "$DRY" = 1 ]; then  # fp16 graphs need the onnx package
        step ort-cuda-fp16-build 40 0 "${MVD[@]}" build-engine "$MODEL" --backend ort --device cuda --precision fp16 \
            --out "$DIR/ort_cuda/tiny.fp16.ort.onnx" --overwrite
        step ort-cuda-fp16-profile 40 0 "${MVD[@]}" profile "$DIR/ort_cuda/tiny.fp16.ort.onnx" --device cuda \
            --batch 1,8,32 --iters 50 --out "$DIR/ort_cuda/profile_fp16" --overwrite
    else
        echo "== ort-cuda-fp16: skipped (no onnx package to make the FP16 graph)"
        printf 'ort-cuda-fp16\tskipped\t-\t0\t-\n' >> "$DIR/summary.tsv"
    fi
    step ort-cpu-profile 40 0 "${MVD[@]}" profile "$MODEL" --device cpu --batch 1,8,32 --iters 20 \
        --out "$DIR/ort_cpu/profile_fp32" --overwrite
else
    echo "== ort-cuda: skipped (onnxruntime lists no CUDAExecutionProvider; see doctor.json)"
    [ "$DRY" = 0 ] && printf 'ort-cuda\tskipped\t-\t0\t-\n' >> "$DIR/summary.tsv"
fi


if [ "$DRY" = 0 ]; then
    {
        echo "mvd-edge GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(( $(date +%s) - START ))s in all"
        echo "commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
        nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
        echo "failed steps: $FAILED"
        echo
        column -t -s "$(printf '\t')" "$DIR/summary.tsv" 2>/dev/null || cat "$DIR/summary.tsv"
    } > "$DIR/summary.txt"
    cat "$DIR/summary.txt"
fi
[ "$FAILED" = 0 ]
