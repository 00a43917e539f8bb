#!/usr/bin/env bash
# Model v3.5: v3.4's recipe (bundled_v3_4.sh: the diverse and `hard` sets, stage 1 for 1200 steps
# from the bundled v3, stage 2 for 200) run again on the denoised physics prior of 2026-12-06 (the
# bounce, the lights' shadows and the reflection averaged over pixels of similar depth;
# core/shading/visibility.py, docs/DECISIONS.md). The network learns a correction relative to its
# prior, so a changed prior may need a fine-tune before it ships; the clips' model-space cache is
# made again first (training/datasets.py STACK_CACHE_VERSION). Log: logs/bundled_v3_5.log.
# Not bundled: 21.72 dB on ood64_select (change weight 0.6) against the unchanged v3's 21.67 on the same
# prior (before the GGX glints), but 19.27 on the OOD test split against 19.51 (docs/DECISIONS.md).
set -euo pipefail
export RUNS=${RUNS:-runs/v3_5}
exec bash "$(dirname "$0")/bundled_v3_4.sh"
