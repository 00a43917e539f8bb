#!/usr/bin/env bash
# Inverse adapter v3.21: the bundled adapter's normals fine-tuned on 128² frames, every other
# intrinsic bit-identical. Fine-tuning the whole adapter (inverse_v3_9.sh, bundled_v3_12.sh, and 250
# steps of this data on 2026-12-08) moved its shared LoRA towards the training generator: normals
# improved out of distribution and albedo lost 1-1.5 dB each time. `rf-train inverse --intrinsic
# normal` trains only the normal's prompt embedding and head (docs/DECISIONS.md, 2026-12-08).
# Data: the diverse, closeup and golden sets at 128² joined as data/mix_golden128 (bundled_v3_16.sh's
# synth and ln lines). The decompose of a 64² plate reads it at 128² (pipeline.inverse_min_size),
# so the adapter now learns at the size it reads.
# CPU only, 2 cores: 1500 steps, 1.3 s a step once the latent cache is made (35 minutes); resumes
# when rerun with the same RUNS. Loss curve: logs/inverse_normals_v3_21.csv (rf-train's metrics.csv).
# Not bundled (docs/DECISIONS.md, 2026-12-08): normals against the bundled adapter, mean per clip and
# 90 % interval, ood64_select -1.9 deg (-2.9 to -1.0, better on 38 of 48), ood128_select -0.9 deg
# (-2.2 to +0.6, better on 19 of 24; one clip whose wall faces the camera 13 deg worse, read as
# ground). The same run on the closeup set alone (DATA=data/closeup128, 1000 steps): -1.2 / +0.9;
# with 32 clips of the hard preset joined (seed 18, 9 frames of 128², 1000 steps): -1.6 / -0.3.
set -euo pipefail
DATA=${DATA:-data/mix_golden128}
BUNDLED=${BUNDLED:-core/weights/renderflow-cpu}
RUNS=${RUNS:-runs/inverse_normals_v3_21}
RF=${RF:-.venv/bin/rf-train}

$RF inverse --data "$DATA" --init "$BUNDLED" --out "$RUNS" --intrinsic normal \
    --steps 1500 --batch-size 4 --crop 128 --lr 1e-4 --warmup 50 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 250 --log-every 25
