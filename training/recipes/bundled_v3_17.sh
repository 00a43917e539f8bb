#!/usr/bin/env bash
# Model v3.17: v3.16 (bundled_v3_16.sh) continued for another 600 steps on the same data (diverse,
# closeup and golden sets at 128², LR 5e-5, warm-up 50). v3.16 gained over the bundled model on both
# selection splits, by less than the DECISIONS rule asks (docs/DECISIONS.md, 2026-12-07 fifth).
# The latent cache of v3.16's run is copied first (the clips and the autoencoder are the same).
# CPU only, 2 cores; resumes when rerun with the same RUNS. Log: logs/bundled_v3_17.log.
# Not bundled (docs/DECISIONS.md, 2026-12-07 fifth): 15 min. Against the bundled model at 0.45:
# ood64_select +0.25 dB (+0.11 to +0.41), ood128_select +0.12 (-0.07 to +0.31): the second holds 0.
set -euo pipefail
DATA=${DATA:-data/mix_golden128}
INIT=${INIT:-runs/v3_16/stage1}
RUNS=${RUNS:-runs/v3_17}
RF=${RF:-.venv/bin/rf-train}

mkdir -p "$RUNS/stage1"
[ -d "$RUNS/stage1/latent_cache" ] || cp -r "$INIT/latent_cache" "$RUNS/stage1/latent_cache"
$RF stage1 --data "$DATA" --init "$INIT" --out "$RUNS/stage1" \
    --schedule 600@full --batch-size 4 --lr 5e-5 --warmup 50 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 100
