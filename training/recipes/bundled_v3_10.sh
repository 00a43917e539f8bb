#!/usr/bin/env bash
# Model v3.10: v3.8's recipe (v3 fine-tuned on the diverse set: stage 1 for 1200 steps, stage 2 for
# 200) with each training clip's exact copies beside it (training/augment.py): mirrored left-right
# and lit in another colour, so the network sees three times the scenes' layouts and light colours
# without a path tracer. v3's weights are the bundled model's of commit 679d78c, as v3.8 started
# from them. CPU only, 2 cores; each step resumes when rerun with the same RUNS.
# Log: logs/bundled_v3_10.log (31 minutes on 2026-12-07, 21 of them shading the 640 copies).
# Not bundled: level with v3.8 on both selection splits (docs/DECISIONS.md).
set -euo pipefail
DATA=${DATA:-data/diverse64}
V3=${V3:-runs/v3_base}
RUNS=${RUNS:-runs/v3_10}
RF=${RF:-.venv/bin/rf-train}

if [ ! -f "$V3/config.json" ]; then
    mkdir -p "$V3"
    git archive 679d78c core/weights/renderflow-cpu | tar -x --strip-components=3 -C "$V3"
fi
[ -f "$DATA/synth.json" ] || \
    $RF synth --preset diverse --clips 400 --frames 9 --res 64 --spp 64 --seed 2 --workers 2 --out "$DATA"
$RF stage1 --data "$DATA" --init "$V3" --out "$RUNS/stage1" --augment mirror --augment tint \
    --schedule 1000@full,200@full --phase-lr-factors 1,0.3 --batch-size 8 --lr 1e-4 --warmup 50 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 200
$RF stage2 --data "$DATA" --init "$RUNS/stage1" --out "$RUNS/stage2" \
    --steps 200 --batch-size 4 --lr 2e-4 --warmup 50 --keyframe-gap 4 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 200
