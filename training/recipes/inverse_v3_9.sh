#!/usr/bin/env bash
# The bundled inverse adapter fine-tuned on whole 64² frames (it was trained on 32-px crops, v2's
# recipe), three runs of 3000 steps of 4 frames from core/weights/renderflow-cpu: on the diverse set
# (training/recipes/v2_data.sh) at LR 1e-4 and 3e-5, and on the diverse and hard sets joined as
# bundled_v3_4.sh joins them, at 1e-4. The forward model is frozen, so its renders do not change.
# About 10 minutes each on the 2-core CPU (0.2 s a step once the latent cache is made); the loss
# curves are logs/inverse_v3_9_*.csv (rf-train's metrics.csv).
# Not bundled (2026-12-06, docs/DECISIONS.md): in distribution every intrinsic but roughness improved,
# on ood64_select normals and depth did but albedo lost 1 dB, and relighting a plate under its own
# env map (bench/relight_round_trip.py) lost 1 dB with it.
# Data: the diverse set of v2_data.sh (data/diverse64), and that set joined with the hard preset in
# data/mix64 by the synth and ln lines of bundled_v3_4.sh (run with DIVERSE=data/diverse64).
set -euo pipefail
DIVERSE=${DIVERSE:-data/diverse64}
MIX=${MIX:-data/mix64}
RUNS=${RUNS:-runs/inverse_v3_9}
RF=${RF:-.venv/bin/rf-train}

for run in "diverse 1e-4 $DIVERSE" "diverse_lr3e-5 3e-5 $DIVERSE" "mix 1e-4 $MIX"; do
    read -r name lr data <<<"$run"
    $RF inverse --data "$data" --init core/weights/renderflow-cpu --out "$RUNS/$name" \
        --steps 3000 --batch-size 4 --crop 64 --lr "$lr" --warmup 50 \
        --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 1000 --log-every 50
done
