"""Where the keyframe path gains and loses against the keyframes reprojected with no network: PSNR in
display space (rf-eval's) on the frames that are not keyframes, split into the pixels a keyframe's
reprojection covers (valid), the geometry it does not (disoccluded) and the background; for the
model with keyframes every GAP frames, its network's change kept everywhere or dropped where the
reprojection is valid (`pipeline.exact_reprojection`), and for the no-network row (reprojection,
physics-prior fill, under the model's pixel filter as rf-eval's row is). The figures quoted in
docs/DECISIONS.md (2026-12-05) were made before the bundled model had a pixel filter.

    .venv/bin/python bench/keyframe_regions.py --data data/ood64 --checkpoint core/weights/renderflow-cpu

Prints a table, writes bench/results/keyframe_regions.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from renderflow.core.io.clips import load_clip
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shading.reprojection import reproject_keyframes
from renderflow.training import metrics
from renderflow.training.datasets import find_clips
from renderflow.training.evaluate import (
    EVAL_ENV_HEIGHT,
    model_renderer,
    prior_pixel_filter,
    reprojection_renderer,
)

RESULTS = Path(__file__).parent / "results"
REGIONS = ("valid", "disoccluded", "background")
ROWS = (
    "RenderFlow + keyframes, network everywhere",
    "RenderFlow + keyframes, exact reprojection",
    "no network",
)


def region_masks(clip, gap: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """The pixels `[F, H, W, 1]` of each region, on the frames that are not keyframes."""
    keyframes = {frame: clip.beauty[frame] for frame in range(0, len(clip.beauty), gap)}
    reprojected = reproject_keyframes(
        clip.gbuffers.depth, clip.camera_to_world, clip.vertical_fov_degrees, keyframes
    )
    valid = reprojected[..., 3:] > 0
    geometry = clip.mask > 0.5
    non_key = np.ones(len(clip.beauty), bool)
    non_key[list(keyframes)] = False
    non_key = non_key[:, None, None, None]
    return {
        "valid": valid & geometry & non_key,
        "disoccluded": ~valid & geometry & non_key,
        "background": ~geometry & non_key,
    }


def squared_errors(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """The sum of squared display-space errors over the mask's pixels, and their count (× channels)."""
    error = (metrics.display(prediction).astype(np.float64) - metrics.display(reference)) ** 2
    weights = np.broadcast_to(mask, error.shape)
    return float((error * weights).sum()), float(weights.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Dataset folder (clip folders).")
    parser.add_argument("--checkpoint", type=Path, required=True, help="The model's folder.")
    parser.add_argument("--gap", type=int, default=4, help="Keyframes every GAP frames from the first.")
    parser.add_argument("--split", default="test", help="Sub-folder of DATA.")
    parser.add_argument("--out", type=Path, default=RESULTS / "keyframe_regions.json", help="Results file.")
    args = parser.parse_args()
    renderers = {}
    for row, exact in zip(ROWS[:2], (False, True), strict=True):
        pipeline = RenderFlowPipeline.from_pretrained(args.checkpoint)
        pipeline.config = dataclasses.replace(pipeline.config, exact_reprojection=exact)
        renderers[row] = model_renderer(pipeline, 1, args.gap)
    renderers[ROWS[2]] = reprojection_renderer(args.gap, prior_pixel_filter(pipeline))
    sums = {row: {region: [0.0, 0.0] for region in REGIONS} for row in ROWS}
    for folder in find_clips(args.data, args.split):
        clip = load_clip(folder, env_height=EVAL_ENV_HEIGHT)
        masks = region_masks(clip, args.gap)
        for row, render in renderers.items():
            image = render(clip)
            for region, mask in masks.items():
                error, count = squared_errors(image, clip.beauty, mask)
                sums[row][region][0] += error
                sums[row][region][1] += count
    total = sum(sums[ROWS[2]][region][1] for region in REGIONS)
    table = {
        row: {region: 10 * np.log10(count / error) for region, (error, count) in values.items()}
        for row, values in sums.items()
    }
    shares = {region: sums[ROWS[2]][region][1] / total for region in REGIONS}
    print(f"PSNR on the non-key frames (gap {args.gap}), {args.data} split {args.split}")
    print("| rows | " + " | ".join(f"{region} ({shares[region]:.0%})" for region in REGIONS) + " |")
    print("|---|" + "---|" * len(REGIONS))
    for row in ROWS:
        print(f"| {row} | " + " | ".join(f"{table[row][region]:.2f}" for region in REGIONS) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"psnr": table, "pixel_share": shares, "gap": args.gap}, indent=1))


if __name__ == "__main__":
    main()
