"""Clip folders (ARCHITECTURE §2): one EXR sequence of G-buffers with its beauty, `envmap.exr`, `camera.json`.

The project's datasets, the bundled demo clip and rf-eval all read clips through `load_clip`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import fileseq
import numpy as np

from renderflow.core.cameras import read_camera_json
from renderflow.core.envmap import camera_view_envmaps, read_envmap
from renderflow.core.gbuffer_io import read_sequence
from renderflow.core.pipeline import GBuffers


@dataclass
class Clip:
    """A clip at rest: canonical G-buffers, path-traced beauty, camera-view env maps."""

    name: str
    gbuffers: GBuffers
    beauty: np.ndarray  # scene-linear HDR [F, H, W, 3]
    mask: np.ndarray  # [F, H, W, 1]
    envmap_cam: np.ndarray  # camera-view env maps [F, H, 2H, 3]
    envmap_world: np.ndarray  # the clip's world-space lat-long map [He, We, 3]
    camera_to_world: np.ndarray  # [F, 4, 4]
    vertical_fov_degrees: float


def frame_pattern(folder: Path) -> str:
    """The one EXR sequence of a clip folder (any name, `name.####.exr`) as a `####` pattern."""
    sequences = [
        seq
        for seq in fileseq.findSequencesOnDisk(str(folder), pad_style=fileseq.PAD_STYLE_HASH1)
        if seq.extension() == ".exr" and seq.frameSet() is not None and seq.basename() != "envmap"
    ]
    if len(sequences) != 1:
        found = [str(seq) for seq in sequences] or "none"
        raise ValueError(f"{folder}: expected exactly one EXR frame sequence, found {found}")
    sequence = sequences[0]
    return str(Path(folder) / f"{sequence.basename()}{'#' * sequence.zfill()}.exr")


def load_clip(folder: Path, profile: str = "auto", env_height: int | None = None) -> Clip:
    """Read a clip folder: frames in any AOV profile (with beauty), `envmap.exr`, `camera.json`."""
    folder = Path(folder)
    sequence = read_sequence(frame_pattern(folder), profile=profile)
    if sequence.beauty is None:
        raise ValueError(f"{folder}: the frames hold no beauty (R, G, B): a clip needs its path-traced image")
    track = read_camera_json(folder / "camera.json")
    num_frames, height, _ = sequence.gbuffers.validate()
    if len(track.frames) != num_frames:
        raise ValueError(f"{folder}/camera.json has {len(track.frames)} cameras for {num_frames} frames")
    envmap_world = read_envmap(folder / "envmap.exr")
    env_height = env_height or height
    envmap_cam = camera_view_envmaps(envmap_world, track.camera_to_world, env_height, 2 * env_height)
    return Clip(
        folder.name,
        sequence.gbuffers,
        sequence.beauty,
        sequence.mask,
        envmap_cam,
        envmap_world,
        track.camera_to_world,
        track.vertical_fov_degrees[0],
    )
