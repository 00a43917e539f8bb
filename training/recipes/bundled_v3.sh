#!/usr/bin/env bash
# The bundled model v3 (core/weights/renderflow-cpu; docs/MODEL.md "Model v3", docs/RESULTS.md): v2's
# weights converted to the v3 design (the shading with visibility as the bridge source, albedo as an
# input, pixel-space residual output, bounded HDR), then fine-tuned on the data of
# training/recipes/v2_data.sh. CPU only, 2 cores, about 35 minutes; each step resumes when rerun with
# the same --out. Log: training/recipes/logs/bundled_v3.log. The bundle is runs/v3/stage2 as written.
# The inverse adapter is v2's, carried over by `convert` on the new base: retraining it for 1500 steps
# at LR 3e-4 on the v3 base scored worse on the OOD split (albedo 11.5 dB against 14.9; docs/RESULTS.md).
set -euo pipefail
DATA=${DATA:-data/diverse64}
RUNS=${RUNS:-runs/v3}
RF=${RF:-.venv/bin/rf-train}

V2=f3c436b  # the last commit whose core/weights/renderflow-cpu is the bundled model v2
if [ ! -f "$RUNS/init/config.json" ]; then
    mkdir -p "$RUNS/v2" && git archive "$V2" core/weights/renderflow-cpu | tar -x -C "$RUNS/v2"
    $RF convert --init "$RUNS/v2/core/weights/renderflow-cpu" --model cpu-v3 --out "$RUNS/init"
fi
$RF stage1 --data "$DATA" --init "$RUNS/init" --out "$RUNS/stage1" \
    --schedule 1200@full --phase-lr-factors 1 --batch-size 8 --lr 1e-4 --warmup 50 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 200
$RF stage2 --data "$DATA" --init "$RUNS/stage1" --out "$RUNS/stage2" \
    --steps 200 --batch-size 4 --lr 2e-4 --warmup 50 --keyframe-gap 4 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 200
