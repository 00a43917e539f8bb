#!/usr/bin/env bash
# The bundled default model (core/weights/renderflow-cpu): the exact commands that made it.
# CPU only, 2 cores; each step resumes when rerun with the same --out. See docs/RESULTS.md.
set -euo pipefail
DATA=${DATA:-data/synth64}
RUNS=${RUNS:-runs/bundled}
RF=${RF:-.venv/bin/rf-train}

$RF synth --clips 120 --frames 17 --res 64 --spp 128 --seed 0 --workers 2 --out "$DATA"
$RF autoencoder --data "$DATA" --out "$RUNS/autoencoder" --model cpu-default \
    --steps 1500 --batch-size 8 --crop 32 --lr 1e-3 --device cpu
$RF stage1 --data "$DATA" --init "$RUNS/autoencoder" --out "$RUNS/stage1" \
    --schedule 1500@32,4500@full --batch-size 8 --lr 3e-4 --warmup 100 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 250
$RF stage2 --data "$DATA" --init "$RUNS/stage1" --out "$RUNS/stage2" \
    --steps 1000 --batch-size 4 --lr 3e-4 --keyframe-gap 16 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 250
$RF inverse --data "$DATA" --init "$RUNS/stage2" --out "$RUNS/inverse" \
    --steps 1500 --batch-size 8 --crop 32 --lr 3e-4 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 250
