#!/usr/bin/env bash
# The bundled model v2 (core/weights/renderflow-cpu): the exact commands that made it, on the data of
# training/recipes/v2_data.sh. CPU only, 2 cores; each step resumes when rerun with the same --out.
# The model: exposure-normalised lighting, env brackets 0/-8 stops, the Deferred shading as the bridge
# source, keyframes reprojected by depth (`--model cpu-v2`, docs/MODEL.md). See docs/RESULTS.md.
set -euo pipefail
DATA=${DATA:-data/diverse64}
RUNS=${RUNS:-runs/v2}
RF=${RF:-.venv/bin/rf-train}

$RF autoencoder --data "$DATA" --out "$RUNS/autoencoder" --model cpu-v2 \
    --steps 1500 --batch-size 8 --crop 32 --lr 1e-3 --device cpu
$RF stage1 --data "$DATA" --init "$RUNS/autoencoder" --out "$RUNS/stage1" \
    --schedule 1000@32,3000@full --phase-lr-factors 1,1 --batch-size 8 --lr 3e-4 --warmup 100 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 250
$RF stage2 --data "$DATA" --init "$RUNS/stage1" --out "$RUNS/stage2" \
    --steps 1500 --batch-size 4 --lr 5e-4 --warmup 100 --keyframe-gap 4 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 250
# 1500 steps first, then resumed to 4500: each intrinsic gets ~900 of them (docs/RESULTS.md)
$RF inverse --data "$DATA" --init "$RUNS/stage2" --out "$RUNS/inverse" \
    --steps 4500 --batch-size 8 --crop 32 --lr 3e-4 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 500
# The bundled keyframe adapter: retrained fresh on the same stage-1 base once the bridge could start
# from the reprojected keyframes (docs/RESULTS.md). The inverse adapter is unaffected (the keyframe
# adapter is off while decomposing): the bundle is runs/v2/inverse with this keyframe adapter
# (keyframe_adapter.safetensors and the config's keyframe_adapter entry).
$RF stage2 --data "$DATA" --init "$RUNS/stage1" --out "$RUNS/stage2_reprojected_source" \
    --fresh-adapter --reprojected-source --steps 1500 --batch-size 4 --lr 5e-4 --warmup 100 \
    --keyframe-gap 4 --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 250
