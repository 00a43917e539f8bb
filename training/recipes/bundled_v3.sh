#!/usr/bin/env bash
# The bundled model v3 (docs/MODEL.md "Model v3", docs/RESULTS.md): v2's weights converted to the v3
# design (the shading with visibility as the bridge source, albedo as an input, pixel-space residual
# output, bounded HDR), then fine-tuned on the data of training/recipes/v2_data.sh. CPU only, 2 cores;
# each step resumes when rerun with the same --out. Log: training/recipes/logs/bundled_v3.log.
set -euo pipefail
DATA=${DATA:-data/diverse64}
RUNS=${RUNS:-runs/v3}
RF=${RF:-.venv/bin/rf-train}

[ -f "$RUNS/init/config.json" ] || $RF convert --init core/weights/renderflow-cpu --model cpu-v3 --out "$RUNS/init"
$RF stage1 --data "$DATA" --init "$RUNS/init" --out "$RUNS/stage1" \
    --schedule 1200@full --phase-lr-factors 1 --batch-size 8 --lr 1e-4 --warmup 50 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 200
$RF stage2 --data "$DATA" --init "$RUNS/stage1" --out "$RUNS/stage2" \
    --steps 600 --batch-size 4 --lr 2e-4 --warmup 50 --keyframe-gap 4 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 200
# The inverse adapter on the same stage-1 base (it runs beside stage 2: the two adapters train
# different LoRA targets on the same frozen base). The bundle is stage2 with this inverse adapter.
$RF inverse --data "$DATA" --init "$RUNS/stage1" --out "$RUNS/inverse" \
    --steps 1500 --batch-size 8 --crop 32 --lr 3e-4 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 500
mkdir -p "$RUNS/bundle"
cp "$RUNS/stage2/"*.safetensors "$RUNS/stage2/config.json" "$RUNS/bundle/"
cp "$RUNS/inverse/inverse_adapter.safetensors" "$RUNS/bundle/"
