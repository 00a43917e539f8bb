"""How long does render() take: 1 step against the 30-step diffusion-style sampler, by size.

    python bench/bench_render.py                                   # CPU default model, 64/128/256
    python bench/bench_render.py --config production --device cuda --sizes 512 --steps 1

Prints a table and writes JSON to bench/results/. Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch

from renderflow.core.autoencoder import WanAutoencoder
from renderflow.core.configs import (
    CPU_DEFAULT_AUTOENCODER,
    CPU_DEFAULT_TRANSFORMER,
    PRODUCTION_TRANSFORMER,
    build_tiny_pipeline,
)
from renderflow.core.demo_scene import demo_clip
from renderflow.core.pipeline import PipelineConfig, RenderFlowPipeline
from renderflow.core.transformer import RenderFlowTransformer

RESULTS = Path(__file__).parent / "results"


def build(config: str, device: str) -> RenderFlowPipeline:
    torch.manual_seed(0)
    if config == "cpu-default":
        return build_tiny_pipeline(CPU_DEFAULT_TRANSFORMER, CPU_DEFAULT_AUTOENCODER, with_adapters=False).to(
            device
        )
    from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan

    transformer = RenderFlowTransformer(**PRODUCTION_TRANSFORMER)
    return RenderFlowPipeline(transformer, WanAutoencoder(AutoencoderKLWan()), config=PipelineConfig(5)).to(
        device
    )


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` runs, after one burn-in run."""
    fn()
    timings = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings))


def vae_seconds(pipeline: RenderFlowPipeline, frames: int, size: int, device: str, repeats: int) -> float:
    """One batched encode of the five buffers plus one decode: the autoencoder's part of a render."""
    ae = pipeline.autoencoder
    video = torch.rand(5, 3, frames, size, size, device=device) * 2 - 1
    with torch.no_grad():
        latent = ae.encode(video)[:1]
        return time_call(lambda: (ae.encode(video), ae.decode(latent)), device, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=["cpu-default", "production"], default="cpu-default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 30])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    pipeline = build(args.config, args.device)
    rows = []
    for size in args.sizes:
        gbuffers, envmap = demo_clip(args.frames, size)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        row: dict[str, float | int | str] = {"size": size, "frames": args.frames}
        for steps in args.steps:
            seconds = time_call(
                lambda g=gbuffers, e=envmap, s=steps: pipeline.render(g, e, steps=s),
                args.device,
                args.repeats,
            )
            row[f"ms_per_frame_{steps}_steps"] = 1000 * seconds / args.frames
        row["vae_ms_per_frame"] = (
            1000 * vae_seconds(pipeline, args.frames, size, args.device, args.repeats) / args.frames
        )
        row["vae_share_1_step"] = row["vae_ms_per_frame"] / row[f"ms_per_frame_{args.steps[0]}_steps"]  # type: ignore[operator]
        if args.device.startswith("cuda"):
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        rows.append(row)

    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(f"{row[k]:.2f}" if isinstance(row[k], float) else str(row[k]) for k in header))
    machine = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"render_{args.config}_{args.device.split(':')[0]}.json"
    record = {
        "date": str(date.today()),
        "machine": machine,
        "threads": torch.get_num_threads(),
        "args": vars(args),
        "rows": rows,
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
