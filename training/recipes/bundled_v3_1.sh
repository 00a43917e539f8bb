#!/usr/bin/env bash
# Model v3.1: the v3 run (training/recipes/bundled_v3.sh) trained longer. v3's stage-1 loss was still
# falling at its 1200 steps (0.118 -> 0.092 per 100-step mean), so stage 1 continues from v3's stage 1
# for 4000 steps (3000 at LR 1e-4, 1000 at 3e-5), then stage 2 as in v3. CPU only, 2 cores, about
# 45 minutes with the latent cache copied from v3's stage 1 (same clips and settings); each step
# resumes when rerun with the same --out. Log: training/recipes/logs/bundled_v3_1.log.
# Bundled only if it beats v3 on the OOD split (rf-eval, docs/RESULTS.md).
set -euo pipefail
DATA=${DATA:-data/diverse64}
V3=${V3:-runs/v3}
RUNS=${RUNS:-runs/v3_1}
RF=${RF:-.venv/bin/rf-train}

if [ ! -f "$V3/stage1/config.json" ]; then
    RUNS=$V3 DATA=$DATA bash training/recipes/bundled_v3.sh
fi
if [ -d "$V3/stage1/latent_cache" ] && [ ! -d "$RUNS/stage1/latent_cache" ]; then
    mkdir -p "$RUNS/stage1" && cp -r "$V3/stage1/latent_cache" "$RUNS/stage1/"
fi
$RF stage1 --data "$DATA" --init "$V3/stage1" --out "$RUNS/stage1" \
    --schedule 3000@full,1000@full --phase-lr-factors 1,0.3 --batch-size 8 --lr 1e-4 --warmup 50 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 500
$RF stage2 --data "$DATA" --init "$RUNS/stage1" --out "$RUNS/stage2" \
    --steps 200 --batch-size 4 --lr 2e-4 --warmup 50 --keyframe-gap 4 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 200
