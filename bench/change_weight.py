"""How much of the network's change a checkpoint's output should take (`pipeline.change_weight`)
and how far to smooth it (`pipeline.change_blur`): the 1-step render's display-space PSNR
(rf-eval's) for each weight and blur, beside the physics prior alone under the model's pixel filter
(weight 0 but for the HDR bound). Calibrate on a split that neither
the training generator nor the headline made (docs/RESULTS.md: `data/ood64_select`, another seed of
the OOD preset), then check the chosen weight on the headline split.

    .venv/bin/python bench/change_weight.py --data data/ood64_select --weights 0.4 0.5 0.6 0.7 1.0
    .venv/bin/python bench/change_weight.py --data data/ood64_select --weights 0.5 0.6 --blurs 0 2 3 4 6

Prints a line per clip and the table of means, writes bench/results/change_weight_DATANAME_cpu.json
(change_blur_DATANAME_cpu.json with --blurs). To compare a candidate with the bundled model, pass
the bundled model's record as --against (a copy: this run writes its own under the same name): each
setting both scored gets the mean per-clip difference with its 90 % bootstrap interval and the
clips it is better on. A candidate whose interval holds 0, or that is better on half the clips or
fewer, has not shown that it is better (docs/DECISIONS.md: candidates better on the selection splits
lost on the test split, one of them better on 22 of 48 clips, its mean carried by one clip).

    cp bench/results/change_blur_ood64_select_cpu.json /tmp/bundled.json
    .venv/bin/python bench/change_weight.py --data data/ood64_select --checkpoint runs/NEW/stage2 \
        --weights 0.3 0.45 0.6 --blurs 4 --against /tmp/bundled.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
    parser.add_argument(
        "--against", type=Path, default=None, help="another checkpoint's record of this benchmark, same split"
    )
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
    if args.against is not None:  # read before write_record, which may overwrite that very file
        print_comparison(per_clip, json.loads(args.against.read_text())["per_clip"], args.against)
    write_record(f"{stem}_{args.data.name}", args, mean_psnr=means, per_clip=per_clip)


def print_comparison(
    per_clip: dict[str, dict[str, float]], other: dict[str, dict[str, float]], other_name: Path
) -> None:
    """This run minus `other`, clip by clip, for every setting both scored."""
    clips = sorted(set(per_clip) & set(other))
    if len(clips) < 2:
        raise SystemExit(f"{other_name}: fewer than two clips in common with this run ({len(clips)})")
    rows = []
    for column in per_clip[clips[0]]:
        if column == "prior" or column not in other[clips[0]]:
            continue
        differences = np.array([per_clip[clip][column] - other[clip][column] for clip in clips])
        low, high = metrics.paired_difference_interval(differences)
        rows.append(
            {
                "setting": column,
                "mean difference (dB)": f"{differences.mean():+.2f}",
                "90 % interval": f"{low:+.2f} to {high:+.2f}",
                "clips better": f"{int((differences > 0).sum())} / {len(clips)}",
            }
        )
    if not rows:
        raise SystemExit(f"{other_name}: no setting in common with this run")
    print_table(f"against {other_name}, {len(clips)} clips (this run − that one)", rows)


if __name__ == "__main__":
    main()
