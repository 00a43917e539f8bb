"""How much of the network's change a checkpoint's output should take (`pipeline.change_weight`)
and how far to smooth it (`pipeline.change_blur`): the 1-step render's display-space PSNR
(rf-eval's) for each weight and blur, beside the physics prior alone under the model's pixel filter
(weight 0 but for the HDR bound). Calibrate on a split that neither
the training generator nor the headline made (docs/RESULTS.md: `data/ood64_select`, another seed of
the OOD preset), then check the chosen weight on the headline split.

    .venv/bin/python bench/change_weight.py --data data/ood64_select --weights 0.4 0.5 0.6 0.7 1.0
    .venv/bin/python bench/change_weight.py --data data/ood64_select --weights 0.5 0.6 --blurs 0 2 3 4 6

Prints a line per clip and the table of means, writes bench/results/change_weight_DATANAME_cpu.json
(change_blur_DATANAME_cpu.json with --blurs).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from report import print_table, write_record

from renderflow.core.io.clips import load_clip
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shot.demo import BUNDLED_MODEL
from renderflow.training import metrics
from renderflow.training.datasets import find_clips
from renderflow.training.evaluate import (
    EVAL_ENV_HEIGHT,
    baseline_renderer,
    model_renderer,
    prior_pixel_filter,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="a dataset folder (its test split)")
    parser.add_argument("--checkpoint", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.4, 0.5, 0.6, 0.7, 1.0])
    parser.add_argument("--blurs", type=float, nargs="+", default=[0.0], help="change_blur σ (pixels)")
    parser.add_argument("--max-clips", type=int, default=None)
    args = parser.parse_args()

    pipeline = RenderFlowPipeline.from_pretrained(args.checkpoint)
    calibrated = pipeline.config
    prior_renderer = baseline_renderer("visibility", prior_pixel_filter(pipeline))
    settings = [(weight, blur) for blur in args.blurs for weight in args.weights]
    columns = [
        "prior",
        *(f"weight {weight:g}" + (f" blur {blur:g}" if blur else "") for weight, blur in settings),
    ]
    per_clip: dict[str, dict[str, float]] = {}
    for folder in find_clips(args.data, "test")[: args.max_clips]:
        clip = load_clip(folder, env_height=EVAL_ENV_HEIGHT)  # the env maps as rf-eval shows them
        reference = metrics.display(clip.beauty)
        scores = {"prior": metrics.psnr(metrics.display(prior_renderer(clip)), reference)}
        for (weight, blur), column in zip(settings, columns[1:], strict=True):
            pipeline.config = dataclasses.replace(calibrated, change_weight=weight, change_blur=blur)
            scores[column] = metrics.psnr(metrics.display(model_renderer(pipeline, 1)(clip)), reference)
        per_clip[folder.name] = scores
        print(folder.name, " ".join(f"{name} {value:.2f}" for name, value in scores.items()), flush=True)

    means = {column: float(np.mean([scores[column] for scores in per_clip.values()])) for column in columns}
    title = f"{args.data}, {len(per_clip)} clips: mean PSNR (dB)"
    rounded = {column: f"{value:.2f}" for column, value in means.items()}
    checkpoint = f"the checkpoint's weight {calibrated.change_weight:g}, blur {calibrated.change_blur:g}"
    print_table(f"{title}; {checkpoint}", [rounded])
    args.device = "cpu"
    stem = "change_weight" if args.blurs == [0.0] else "change_blur"
    write_record(f"{stem}_{args.data.name}", args, mean_psnr=means, per_clip=per_clip)


if __name__ == "__main__":
    main()
