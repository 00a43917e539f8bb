#!/usr/bin/env bash
# Data of the bundled model v2 (docs/DATA.md): the diverse training set and the OOD test split.
# 2 cores; each command resumes when rerun with the same --out. Logs: training/recipes/logs/.
set -euo pipefail
RF=${RF:-.venv/bin/rf-train}
$RF synth --preset diverse --clips 400 --frames 9 --res 64 --spp 64 --seed 2 --workers 2 --out data/diverse64
# The OOD split: another generator's env families, shapes, materials and cameras; never trained on.
$RF synth --preset ood --clips 24 --frames 17 --res 64 --spp 128 --seed 7 --workers 2 --out data/ood64
