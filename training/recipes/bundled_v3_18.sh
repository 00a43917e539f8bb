#!/usr/bin/env bash
# Model v3.18: v3.17 (bundled_v3_17.sh) continued for another 600 steps on the same data, as v3.17
# continued v3.16: 1800 steps at 128² from the bundled model in all (docs/DECISIONS.md, 2026-12-07 fifth).
# CPU only, 2 cores; resumes when rerun with the same RUNS. Log: logs/bundled_v3_18.log (its
# "ta: command not found" after step 600 came from bundled_v3_17.sh's comment being edited while
# this run read it; training had finished and the checkpoint was written).
# Not bundled (docs/DECISIONS.md, 2026-12-07 fifth): 12 min. Against the bundled model at 0.45:
# ood64_select +0.19 dB (-0.01 to +0.39), ood128_select -0.06 (-0.38 to +0.22); sunsets -0.08 / -0.50.
set -euo pipefail
export INIT=${INIT:-runs/v3_17/stage1} RUNS=${RUNS:-runs/v3_18}
exec bash "$(dirname "$0")/bundled_v3_17.sh"
