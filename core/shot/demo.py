"""The README's main job: the bundled demo clip -> beauty EXRs and a contact sheet, on the bundled model.

The clip (core/demo_clip) is a path-traced clip of `rf-train synth` at 128² from a seed no training
used; the model (core/weights/renderflow-cpu) is the bundled CPU default. The contact sheet shows
the inputs, the physics prior the model starts from (no network), RenderFlow's render, the
path-traced reference and the error between the render and the reference.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.clips import load_clip
from renderflow.core.io.exr import write_exr
from renderflow.core.model import encodings as enc
from renderflow.core.model.pipeline import ProgressFn, RenderFlowPipeline
from renderflow.core.shot.contact_sheet import (
    display_colour,
    display_depth,
    display_error,
    display_normal,
    write_contact_sheet,
)

logger = logging.getLogger(__name__)

BUNDLED_MODEL = Path(__file__).parents[1] / "weights" / "renderflow-cpu"
DEMO_CLIP = Path(__file__).parents[1] / "demo_clip"
FIRST_FRAME = 1001
SHEET_PANEL = 256  # the contact sheet's panels are at least this wide (the demo clip is 128²)


def render_demo(
    out: Path,
    checkpoint: Path = BUNDLED_MODEL,
    frames: int | None = None,
    steps: int = 1,
    device: str = "cpu",
    progress: ProgressFn | None = None,
) -> list[Path]:
    """Render the first `frames` frames of the demo clip into `out`; return the files written."""
    pipeline = RenderFlowPipeline.from_pretrained(checkpoint, device=device)
    clip = load_clip(DEMO_CLIP)
    count = len(clip.beauty) if frames is None else min(frames, len(clip.beauty))
    full = clip.gbuffers
    gbuffers = GBuffers(full.albedo[:count], full.normal[:count], full.depth[:count], full.material[:count])
    beauty = pipeline.render(
        gbuffers,
        clip.envmap_cam[:count],
        steps=steps,
        progress=progress,
        vertical_fov_degrees=clip.vertical_fov_degrees,
    )
    # the same pipeline taking none of the network's change: the physics it starts from
    pipeline.config = dataclasses.replace(pipeline.config, change_weight=0.0)
    prior = pipeline.render(gbuffers, clip.envmap_cam[:count], vertical_fov_degrees=clip.vertical_fov_degrees)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for frame, image in enumerate(beauty):
        path = out / f"beauty.{FIRST_FRAME + frame:04d}.exr"
        attributes = {"renderflow/model": str(checkpoint), "renderflow/steps": steps}
        write_exr(path, image, ["R", "G", "B"], attributes=attributes)
        written.append(path)
    reference = clip.beauty[:count]
    sheet = out / "contact_sheet.png"
    columns = {
        "albedo": enc.srgb_oetf(gbuffers.albedo),
        "normal": display_normal(gbuffers.normal),
        "depth": display_depth(gbuffers.depth),
        "physics prior (no network)": display_colour(prior),
        "RenderFlow": display_colour(beauty),
        "path traced": display_colour(reference),
        "error": display_error(display_colour(beauty), display_colour(reference)),
    }
    shown = sorted({0, count // 2, count - 1})  # first, middle and last frame
    factor = -(-SHEET_PANEL // beauty.shape[2])  # whole pixels, no resampling
    write_contact_sheet(sheet, {name: _enlarged(tile[shown], factor) for name, tile in columns.items()})
    written.append(sheet)
    logger.info("demo: %d frames of %s rendered with %s", count, DEMO_CLIP, checkpoint)
    return written


def _enlarged(frames: np.ndarray, factor: int) -> np.ndarray:
    """`[F, H, W, 3]` with every pixel repeated `factor` × `factor` times (nearest, no blur)."""
    return frames.repeat(factor, axis=1).repeat(factor, axis=2)
