#!/usr/bin/env bash
# Runs every rf-render command on the bundled demo clip and prints one SHA-256 per output file, so
# that a refactor can show its outputs are byte-identical: run it before and after, then diff.
#   bash bench/cli_fingerprint.sh > before.txt   (after the change: > after.txt; diff before.txt after.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
clip=core/demo_clip
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
frames=1001-1005
{
$bin/rf-render demo --out "$work/demo" --frames 5
$bin/rf-render inspect "$clip/frame.####.exr"
$bin/rf-render preview "$clip/frame.####.exr" --env "$clip/envmap.exr" --camera "$clip/camera.json" \
    --frames $frames --out "$work/preview/beauty.####.exr"
$bin/rf-render render "$clip/frame.####.exr" --env "$clip/envmap.exr" --camera "$clip/camera.json" \
    --frames $frames --aovs depth --out "$work/render/beauty.####.exr"
$bin/rf-render render "$clip/frame.####.exr" --env "$clip/envmap.exr" --camera "$clip/camera.json" \
    --frames $frames --keyframes "$clip/frame.####.exr" --out "$work/render_kf/beauty.####.exr"
$bin/rf-render segments "$clip/frame.####.exr" --frames 1001-1017 --keyframes "$clip/frame.####.exr" \
    --segment-length 8
$bin/rf-render openjd-template "$work/template.yaml"
$bin/rf-render opencue "$clip/frame.####.exr" --env "$clip/envmap.exr" --out /r/beauty.####.exr \
    --frames 1001-1017 --show s --shot t --user u
$bin/rf-render decompose "$clip/frame.####.exr" --frames $frames --out "$work/decompose/i.####.exr"
$bin/rf-render relight "$clip/frame.####.exr" --env "$clip/envmap.exr" --frames $frames \
    --out "$work/relight/r.####.exr"
$bin/rf-render insert "$clip/frame.####.exr" --object "$clip/frame.####.exr" --alpha-channel mask.Y \
    --env "$clip/envmap.exr" --frames $frames --out "$work/insert/c.####.exr"
$bin/rf-render edit "$clip/frame.####.exr" --env "$clip/envmap.exr" --mask "$clip/frame.####.exr" \
    --mask-channel mask.Y --roughness 1:0 --frames $frames --out "$work/edit/e.####.exr"
} 2>/dev/null | sed "s#$work#WORK#g"
cd "$work" && find . -type f ! -name '*.log' | sort | xargs sha256sum
