#!/usr/bin/env bash
# Issue #29's whole GPU table in one device call (docs/PERFORMANCE.md, "The GPU recipe"): the
# production path at 512² with the autoencoder in fp32 and in bf16, the autoencoder's precision
# table, and the request path (pipeline, rf-render, daemon) of the bundled model.
#
#   device run, carry [".gpu"] (../shared/gpu/README.md), timeout_s 540:
#       bash .gpu/run.sh bash bench/gpu_table.sh
#   here first, to check every step on the CPU at a tiny size (a minute):
#       OUT=/tmp/gpu_table DEVICE=cpu SIZE=64 FRAMES=5 PYTHON=.venv/bin/python bash bench/gpu_table.sh
#
# Each step runs under `timeout STEP_S`, so one failure does not eat the others; its log and the
# JSON record it wrote land in WORK as STEP.log / STEP.json, and WORK/steps.txt lists exit codes. A
# device call returns at most 8 files, so they come back as one archive, $OUT/gpu_table.tar.gz,
# remade after each step (a call cut short still returns the steps it finished).
set -u
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-512}
FRAMES=${FRAMES:-17}
STEP_S=${STEP_S:-120}
PYTHON=${PYTHON:-python3}
OUT=${OUT:?set OUT to the folder that receives the archive}
WORK=${WORK:-/tmp/gpu_table}
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)  # the archive is made from inside WORK

step() {
    local name=$1
    shift
    local stamp="$WORK/.$name.start"
    touch "$stamp"
    echo "== $name: $*"
    timeout "$STEP_S" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc" | tee -a "$WORK/steps.txt"
    tail -n 30 "$WORK/$name.log"
    local record
    record=$(find bench/results -name '*.json' -newer "$stamp" | head -n 1)
    if [ -n "$record" ]; then cp "$record" "$WORK/$name.json"; fi
    rm -f "$stamp"
    (cd "$WORK" && tar -czf "$OUT/.gpu_table.tar.gz" -- *) && mv "$OUT/.gpu_table.tar.gz" "$OUT/gpu_table.tar.gz"
}

production=(bench/suite.py --config production --device "$DEVICE" --size "$SIZE" --frames 5 --repeats 2)
step production_ae_fp32 "$PYTHON" "${production[@]}" --only split relight steps
step production_ae_bf16 "$PYTHON" "${production[@]}" --only split relight --autoencoder-dtype bfloat16
step production_frames "$PYTHON" "${production[@]}" --only frames --frame-counts 5 "$FRAMES" \
    --autoencoder-dtype bfloat16
step autoencoder_dtype "$PYTHON" bench/autoencoder_dtype.py --config production --device "$DEVICE" \
    --size "$SIZE" --frames "$FRAMES"
step bundled_autoencoder_dtype "$PYTHON" bench/autoencoder_dtype.py --device "$DEVICE" --size "$SIZE"
step request_path "$PYTHON" bench/bench_daemon.py --device "$DEVICE" --sizes 256 "$SIZE" --repeats 3
