"""Relighting a plate under its own light: each clip's path-traced beauty decomposed by the inverse
adapter, its G-buffers rendered again under the clip's env map, scored against the plate (rf-eval's
display-space PSNR), for each blur of the physics prior's visibility (`visibility_blur`, the
relight workflow's DECOMPOSED_VISIBILITY_BLUR). Beside it the detail ratio: the render's
high-frequency energy (display values less their Gaussian of 2 px, mean absolute) over the plate's;
the dots the prior's rays make on a decomposed depth raise it above what the plate has.

    .venv/bin/python bench/relight_round_trip.py --data data/ood64_select --blurs 0 2 4 6

Prints a line per clip and the table of means, writes bench/results/relight_round_trip_DATANAME_cpu.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from report import print_table, write_record

from renderflow.core.io.clips import load_clip
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shading.pixel_filter import gaussian_blur
from renderflow.core.shot.demo import BUNDLED_MODEL
from renderflow.core.shot.workflows import RERENDER_INVERSE_MIN_SIZE, gbuffers_from_intrinsics
from renderflow.training import metrics
from renderflow.training.datasets import find_clips
from renderflow.training.evaluate import EVAL_ENV_HEIGHT

DETAIL_SIGMA = 2.0  # pixels: what the detail ratio counts as high frequency lies below this


def high_frequency(display: np.ndarray) -> float:
    """Mean absolute difference of display frames `[F, H, W, 3]` from their Gaussian blur."""
    frames = torch.from_numpy(np.ascontiguousarray(display, dtype=np.float32)).permute(0, 3, 1, 2)
    return float((frames - gaussian_blur(frames, DETAIL_SIGMA)).abs().mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="a dataset folder (its test split)")
    parser.add_argument("--checkpoint", type=Path, default=BUNDLED_MODEL)
    parser.add_argument(
        "--blurs", type=float, nargs="+", default=[0.0, 4.0], help="visibility_blur σ (pixels)"
    )
    parser.add_argument("--max-clips", type=int, default=None)
    args = parser.parse_args()

    pipeline = RenderFlowPipeline.from_pretrained(args.checkpoint)
    per_clip: dict[str, dict[str, float]] = {}
    for folder in find_clips(args.data, "test")[: args.max_clips]:
        clip = load_clip(folder, env_height=EVAL_ENV_HEIGHT)
        plate = metrics.display(clip.beauty)
        intrinsics = pipeline.decompose(
            clip.beauty, min_size=RERENDER_INVERSE_MIN_SIZE
        )  # as relight reads it
        latents = pipeline.encode_gbuffers(gbuffers_from_intrinsics(intrinsics))
        scores: dict[str, float] = {}
        for blur in args.blurs:
            render = pipeline.render(
                latents, clip.envmap_cam, vertical_fov_degrees=clip.vertical_fov_degrees, visibility_blur=blur
            )
            display = metrics.display(render)
            scores[f"PSNR blur {blur:g}"] = metrics.psnr(display, plate)
            scores[f"detail blur {blur:g}"] = high_frequency(display) / high_frequency(plate)
        per_clip[folder.name] = scores
        print(folder.name, " ".join(f"{name} {value:.2f}" for name, value in scores.items()), flush=True)

    columns = list(next(iter(per_clip.values())))
    means = {column: float(np.mean([scores[column] for scores in per_clip.values()])) for column in columns}
    rounded = {column: f"{value:.2f}" for column, value in means.items()}
    title = f"{args.data}, {len(per_clip)} clips: the plate decomposed and rendered again, means"
    print_table(title, [rounded])
    args.device = "cpu"
    write_record(f"relight_round_trip_{args.data.name}", args, means=means, per_clip=per_clip)


if __name__ == "__main__":
    main()
