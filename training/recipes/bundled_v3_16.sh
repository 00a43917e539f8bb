#!/usr/bin/env bash
# Model v3.16: v3.15's fine-tune at 128² (bundled_v3_15.sh) with golden-hour skies beside `diverse` and
# `closeup`. By env family the bundled model did harm under the OOD split's sunsets (−0.47 dB against
# its prior at 64²; docs/DECISIONS.md, 2026-12-07 fourth) and v3.15 lost the test splits on two sunset
# clips: no training preset had a sun below 6°. The `golden` preset (docs/DATA.md) is ours, not the OOD
# generator: a sun 0.5-10° high, red to amber, a horizon glowing towards it.
# 1. v3.15's two sets (its commands: skipped where already made) and 48 clips of the golden preset,
#    9 frames of 128², joined by symlinks.
# 2. Stage 1 continues from the bundled model for 600 steps on whole 128² frames at LR 5e-5.
# CPU only, 2 cores; each step resumes when rerun with the same RUNS. Log: logs/bundled_v3_16.log.
# Not bundled (docs/DECISIONS.md, 2026-12-07 fifth): synthesis 7 min, stage 1 17 min. Against the
# bundled model at 0.45 of its change (bench/change_weight.py --blurs 4): ood64_select +0.16 dB
# (90 % interval -0.00 to +0.33), ood128_select +0.08 (-0.10 to +0.27); sunsets +0.01 / -0.14.
set -euo pipefail
DIVERSE=${DIVERSE:-data/diverse128}
CLOSEUP=${CLOSEUP:-data/closeup128}
GOLDEN=${GOLDEN:-data/golden128}
DATA=${DATA:-data/mix_golden128}
BUNDLED=${BUNDLED:-core/weights/renderflow-cpu}
RUNS=${RUNS:-runs/v3_16}
RF=${RF:-.venv/bin/rf-train}

$RF synth --preset diverse --clips 72 --frames 9 --res 128 --spp 64 --seed 12 --workers 2 --out "$DIVERSE"
$RF synth --preset closeup --clips 48 --frames 9 --res 128 --spp 64 --seed 14 --workers 2 --out "$CLOSEUP"
$RF synth --preset golden --clips 48 --frames 9 --res 128 --spp 64 --seed 16 --workers 2 --out "$GOLDEN"
for split in train val; do
    mkdir -p "$DATA/$split"
    ln -sfn "$(realpath "$DIVERSE/$split")" "$DATA/$split/diverse"
    ln -sfn "$(realpath "$CLOSEUP/$split")" "$DATA/$split/closeup"
    ln -sfn "$(realpath "$GOLDEN/$split")" "$DATA/$split/golden"
done
$RF stage1 --data "$DATA" --init "$BUNDLED" --out "$RUNS/stage1" \
    --schedule 600@full --batch-size 4 --lr 5e-5 --warmup 50 \
    --cache-latents --no-gradient-checkpointing --device cpu --checkpoint-every 100
