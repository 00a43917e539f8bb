"""The README's main job: the demo clip -> beauty EXRs and a contact sheet."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from renderflow.core.configs import CPU_DEFAULT_AUTOENCODER, CPU_DEFAULT_TRANSFORMER, build_tiny_pipeline
from renderflow.core.contact_sheet import display_colour, display_depth, display_normal, write_contact_sheet
from renderflow.core.demo_scene import demo_clip
from renderflow.core.exr import write_exr
from renderflow.core.pipeline import ProgressFn, RenderFlowPipeline

logger = logging.getLogger(__name__)


def load_or_build(checkpoint: Path | None, device: str, seed: int) -> RenderFlowPipeline:
    """The checkpoint's pipeline, or the untrained CPU default seeded with `seed`."""
    if checkpoint is not None:
        return RenderFlowPipeline.from_pretrained(checkpoint, device=device)
    torch.manual_seed(seed)
    return build_tiny_pipeline(CPU_DEFAULT_TRANSFORMER, CPU_DEFAULT_AUTOENCODER).to(device)


def render_demo(
    out: Path,
    checkpoint: Path | None,
    frames: int,
    size: int,
    steps: int,
    device: str,
    seed: int,
    progress: ProgressFn | None = None,
) -> list[Path]:
    """Render the demo clip into `out`; return the files written."""
    pipeline = load_or_build(checkpoint, device, seed)
    gbuffers, envmap_cam = demo_clip(frames, size)
    beauty = pipeline.render(gbuffers, envmap_cam, steps=steps, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    model_name = str(checkpoint) if checkpoint else f"untrained-cpu-default-seed{seed}"
    written = []
    for frame, image in enumerate(beauty):
        path = out / f"beauty.{frame + 1:04d}.exr"
        write_exr(
            path,
            image,
            ["R", "G", "B"],
            attributes={"renderflow/model": model_name, "renderflow/steps": steps},
        )
        written.append(path)
    sheet = out / "contact_sheet.png"
    write_contact_sheet(
        sheet,
        {
            "albedo": display_colour(gbuffers.albedo),
            "normal": display_normal(gbuffers.normal),
            "depth": display_depth(gbuffers.depth),
            "env (cam)": display_colour(np.repeat(envmap_cam, 2, axis=1)[:, :size, :size]),
            "beauty": display_colour(beauty),
        },
    )
    written.append(sheet)
    logger.info("demo: %d frames of %dx%d with %s", frames, size, size, model_name)
    return written
