#!/usr/bin/env bash
# The bundled default model (core/weights/renderflow-cpu): the exact commands that made it.
# CPU only, 2 cores; each step resumes when rerun with the same --out. See docs/RESULTS.md.
set -euo pipefail
DATA=${DATA:-data/synth64}
DATA_STAGE2=${DATA_STAGE2:-data/synth64_stage2}
RUNS=${RUNS:-runs/bundled}
RF=${RF:-.venv/bin/rf-train}

$RF synth --clips 120 --frames 17 --res 64 --spp 128 --seed 0 --workers 2 --out "$DATA"
$RF autoencoder --data "$DATA" --out "$RUNS/autoencoder" --model cpu-default \
    --steps 1500 --batch-size 8 --crop 32 --lr 1e-3 --device cpu
$RF stage1 --data "$DATA" --init "$RUNS/autoencoder" --out "$RUNS/stage1" \
    --schedule 1500@32,4500@full --batch-size 8 --lr 3e-4 --warmup 100 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 250
# Stage 2 trains on a second set of scenes: on its own training clips the base model is already
# nearly right, so the keyframes would teach the adapter nothing there (docs/RESULTS.md).
$RF synth --clips 72 --frames 17 --res 64 --spp 128 --seed 1 --workers 2 --out "$DATA_STAGE2"
$RF stage2 --data "$DATA_STAGE2" --init "$RUNS/stage1" --out "$RUNS/stage2" \
    --steps 3000 --batch-size 4 --lr 5e-4 --warmup 100 --keyframe-gap 16 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 500
$RF inverse --data "$DATA" --init "$RUNS/stage2" --out "$RUNS/inverse" \
    --steps 1500 --batch-size 8 --crop 32 --lr 3e-4 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 250
