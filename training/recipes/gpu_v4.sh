#!/usr/bin/env bash
# Model v4 on the GPU in one device call (issue #28; docs/PERFORMANCE.md, "Training on the GPU").
# A call carries 64 MiB, which holds ~20 clips of 128² training data, so the data is made on the
# device itself: the training presets path traced by Mitsuba (cuda_ad_rgb where the driver's OptiX
# runs it, else the CPU variant on all 16 cores) for SYNTH_S seconds, then stage 1 at 128² from INIT
# (the bundled model, or a checkpoint an earlier device session brought back) for TRAIN_S seconds,
# bf16 autocast, a checkpoint every CHECKPOINT_EVERY steps. What comes back is one archive,
# $OUT/gpu_v4.tar.gz (the checkpoint without its optimizer state, metrics.csv with seconds and peak
# GPU memory per logged step, the logs), remade after each step: a call cut short returns what it did.
#
#   here, once:   bash training/recipes/gpu_pack.sh        (.gpu/: wheels and a slim Mitsuba, ~37 MB)
#   device run:   carry [".gpu"], timeout_s 480 (about 420 s: wheels, a 60 s probe, SYNTH_S, TRAIN_S)
#                 bash .gpu/run.sh bash training/recipes/gpu_v4.sh
#   here first, every step on the CPU at a tiny size (about 3 minutes):
#                 OUT=/tmp/gpu_v4_out DEVICE=cpu RES=32 FRAMES=5 SPP=4 SYNTH_S=30 TRAIN_S=150 \
#                 BATCH=2 CHECKPOINT_EVERY=5 PYTHON=.venv/bin/python bash training/recipes/gpu_v4.sh
#   afterwards:   mkdir -p runs/gpu_v4 && tar -xzf <files_at>/gpu_v4.tar.gz -C runs/gpu_v4; the
#                 checkpoint is runs/gpu_v4/run: calibrate and judge it on the selection splits
#                 (bench/change_weight.py, docs/MODEL.md `pipeline.change_weight`) before any test split.
# A later device session continues from it: copy the bundled model to .gpu/init, put the returned
# transformer.safetensors and config.json over it, and run with INIT=.gpu/init SEED=<a new one>.
set -u
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
OUT=${OUT:?set OUT to the folder that receives the archive}
RES=${RES:-128}
FRAMES=${FRAMES:-9}
SPP=${SPP:-64}
SYNTH_S=${SYNTH_S:-150}
TRAIN_S=${TRAIN_S:-210}
INIT=${INIT:-core/weights/renderflow-cpu}
SEED=${SEED:-40}  # each device session its own: the clips of earlier ones are not made again
BATCH=${BATCH:-16}
LR=${LR:-5e-5}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-100}
WORK=${WORK:-/tmp/gpu_v4}
PRESETS="diverse closeup golden hard"
mkdir -p "$OUT" "$WORK/logs"
RF=("$PYTHON" -c "from renderflow.training.cli import main; main()")  # rf-train, where it is not installed
archive() {
    local files=(logs)
    [ -f "$WORK/run/config.json" ] && files+=(run/config.json run/logs/metrics.csv)
    for weights in "$WORK"/run/*.safetensors; do [ -f "$weights" ] && files+=("run/$(basename "$weights")"); done
    tar -czf "$OUT/.gpu_v4.tar.gz" -C "$WORK" "${files[@]}" && mv "$OUT/.gpu_v4.tar.gz" "$OUT/gpu_v4.tar.gz"
}
say() { echo "== $(date +%T) $*" | tee -a "$WORK/logs/summary.txt"; }

# 1. Mitsuba from .gpu (the device has none), then the fastest variant that renders here
if ! "$PYTHON" -c "import mitsuba" 2>/dev/null; then
    tar -xJf .gpu/mitsuba.tar.xz -C /tmp/site || { say "no Mitsuba: run gpu_pack.sh here first"; exit 1; }
fi
variant=auto
workers=$(($(nproc) / 4 > 1 ? $(nproc) / 4 : 1))
if [ "$DEVICE" = cuda ] && timeout 60 "${RF[@]}" synth --variant cuda_ad_rgb --clips 1 --frames 1 --res 16 \
    --spp 4 --out "$WORK/probe" >"$WORK/logs/probe.log" 2>&1; then
    variant=cuda_ad_rgb
    workers=2
fi
say "synth: variant $variant, $workers processes per preset, ${SYNTH_S} s"

# 2. Data: the four training presets at once, each for SYNTH_S seconds (clips beyond the time are not made)
index=0
for preset in $PRESETS; do
    timeout "$SYNTH_S" "${RF[@]}" synth --preset "$preset" --clips 2000 --frames "$FRAMES" --res "$RES" \
        --spp "$SPP" --seed $((SEED * 10 + index)) --workers "$workers" --variant "$variant" \
        --out "$WORK/data/$preset" >"$WORK/logs/synth_$preset.log" 2>&1 &
    index=$((index + 1))
done
wait
for preset in $PRESETS; do
    # a clip cut off by the time limit has no done file; the joined split below cannot tell, so it goes
    find "$WORK/data/$preset" -mindepth 2 -maxdepth 2 -type d -name 'clip_*' ! -exec test -e '{}/done' ';' \
        -exec rm -rf '{}' +
    mkdir -p "$WORK/data/mix/train"
    ln -sfn "$WORK/data/$preset/train" "$WORK/data/mix/train/$preset"
    say "$preset: $(find "$WORK/data/$preset" -name done | wc -l) clips"
done
archive

# 3. Stage 1 for TRAIN_S seconds (shading the clips into model space included); the last checkpoint stays
timeout "$TRAIN_S" "${RF[@]}" stage1 --data "$WORK/data/mix" --init "$INIT" --out "$WORK/run" \
    --schedule 1000000@full --batch-size "$BATCH" --lr "$LR" --warmup 100 --cache-latents \
    --no-gradient-checkpointing --device "$DEVICE" --checkpoint-every "$CHECKPOINT_EVERY" --log-every 10 \
    >"$WORK/logs/stage1.log" 2>&1
say "stage 1: $(grep -c 'checkpoint written' "$WORK/logs/stage1.log") checkpoints; last: $(grep 'checkpoint written' \
    "$WORK/logs/stage1.log" | tail -n 1)"
{ head -n 1 "$WORK/run/logs/metrics.csv"; tail -n 3 "$WORK/run/logs/metrics.csv"; } 2>/dev/null | tee -a "$WORK/logs/summary.txt"
archive
cat "$WORK/logs/summary.txt"
