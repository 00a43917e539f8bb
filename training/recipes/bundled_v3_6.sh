#!/usr/bin/env bash
# Model v3.6: v3.3's recipe (bundled_v3_3.sh: the diverse set alone, stage 1 for 1200 steps from the
# bundled v3, stage 2 for 200) run again on the denoised physics prior of 2026-12-06 (the bounce, the
# lights' shadows and the reflection averaged over pixels of similar depth;
# core/shading/visibility.py, docs/DECISIONS.md); v3.4 and v3.5 added the `hard` preset and lost on
# the OOD test split. The clips' model-space cache is made again first (training/datasets.py
# STACK_CACHE_VERSION). Log: logs/bundled_v3_6.log.
# Not bundled: 21.64 dB on ood64_select (change weight 0.6) against the unchanged v3's 21.67 on the same
# prior (before the GGX glints; docs/DECISIONS.md).
set -euo pipefail
export RUNS=${RUNS:-runs/v3_6}
exec bash "$(dirname "$0")/bundled_v3_3.sh"
