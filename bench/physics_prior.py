"""How close the physics prior alone (no network) comes to path-traced clips: PSNR in display space
(rf-eval's) of the Deferred shading and of the shading with visibility (core/shading/visibility.py),
on every clip of a split, with the time per frame; and, with --sizes, the time per frame of both on
the demo scene at those sizes. Prints tables, writes bench/results/physics_prior*.json.

    .venv/bin/python bench/physics_prior.py --data data/ood64
    .venv/bin/python bench/physics_prior.py --sizes 64 256
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from renderflow.core.io.clips import load_clip
from renderflow.core.io.envmap import camera_view_envmaps
from renderflow.core.shading.deferred import render_baseline
from renderflow.core.shading.visibility import shade_with_visibility
from renderflow.training import metrics
from renderflow.training.datasets import find_clips
from renderflow.training.evaluate import EVAL_ENV_HEIGHT

RESULTS = Path(__file__).parent / "results"
SHADERS = {
    "Deferred": lambda clip: render_baseline(
        "deferred", clip.gbuffers, clip.envmap_cam, clip.vertical_fov_degrees
    ),
    "Deferred + visibility": lambda clip: shade_with_visibility(
        clip.gbuffers, clip.envmap_cam, clip.vertical_fov_degrees
    ),
}


def timing(sizes: list[int], out: Path) -> None:
    """ms per frame of each shader on 3 frames of the demo scene (after one warm-up run)."""
    from types import SimpleNamespace

    from renderflow.core.shot.demo_scene import demo_clip

    rows = {}
    print("| size | " + " | ".join(f"{name} (ms/frame)" for name in SHADERS) + " |")
    print("|---|" + "---|" * len(SHADERS))
    for size in sizes:
        gbuffers, env = demo_clip(frames=3, size=size)
        clip = SimpleNamespace(gbuffers=gbuffers, envmap_cam=env, vertical_fov_degrees=40.0)
        rows[size] = {}
        for name, shade in SHADERS.items():
            shade(clip)
            started = time.perf_counter()
            shade(clip)
            rows[size][name] = (time.perf_counter() - started) / 3 * 1000
        print(f"| {size}² | " + " | ".join(f"{rows[size][name]:.1f}" for name in SHADERS) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"ms_per_frame": rows}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Dataset folder (clip folders).")
    parser.add_argument(
        "--sizes", type=int, nargs="*", help="Time both shaders at these frame sizes instead."
    )
    parser.add_argument("--split", default="test", help="Sub-folder of DATA.")
    parser.add_argument("--out", type=Path, default=RESULTS / "physics_prior.json", help="Results file.")
    args = parser.parse_args()
    if args.sizes:
        timing(args.sizes, RESULTS / "physics_prior_timing.json")
        return
    if args.data is None:
        parser.error("--data or --sizes")
    rows: dict[str, list[float]] = {name: [] for name in SHADERS}
    seconds: dict[str, float] = dict.fromkeys(SHADERS, 0.0)
    frames = 0
    for folder in find_clips(args.data, args.split):
        clip = load_clip(folder)
        height = max(EVAL_ENV_HEIGHT, clip.beauty.shape[1])
        clip.envmap_cam = camera_view_envmaps(clip.envmap_world, clip.camera_to_world, height, 2 * height)
        reference = metrics.display(clip.beauty)
        frames += len(clip.beauty)
        for name, shade in SHADERS.items():
            started = time.perf_counter()
            image = shade(clip)
            seconds[name] += time.perf_counter() - started
            rows[name].append(metrics.psnr(metrics.display(image), reference))
        print(folder.name, "  ".join(f"{name} {rows[name][-1]:.2f}" for name in SHADERS), flush=True)
    print("\n| shading (no network) | PSNR ↑ | s/frame |\n|---|---|---|")
    for name in SHADERS:
        print(f"| {name} | {np.mean(rows[name]):.2f} | {seconds[name] / frames:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {name: {"psnr": float(np.mean(rows[name])), "per_clip": rows[name]} for name in SHADERS}
    args.out.write_text(
        json.dumps({"data": str(args.data), "split": args.split, "methods": summary}, indent=1)
    )


if __name__ == "__main__":
    main()
