"""Clip folders (ARCHITECTURE §2): one EXR sequence of G-buffers with its beauty, `envmap.exr`, `camera.json`.

The project's datasets, the bundled demo clip and rf-eval all read clips through `load_clip`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import fileseq
import numpy as np

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.camera_files import read_camera_json
from renderflow.core.io.cameras import from_imath
from renderflow.core.io.envmap import camera_view_envmaps, read_envmap
from renderflow.core.io.exr import read_exr
from renderflow.core.io.gbuffer_io import read_sequence
from renderflow.core.io.sequences import sequence_files


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
    """The frame sequence of a clip folder (any name, `name.####.exr`) as a `####` pattern: the one
    sequence, or among several (textures beside the frames) `frame.####.exr`, else the longest."""
    sequences = [
        seq
        for seq in fileseq.findSequencesOnDisk(str(folder), pad_style=fileseq.PAD_STYLE_HASH1)
        if seq.extension() == ".exr" and seq.frameSet() is not None and seq.basename() != "envmap"
    ]
    named = [seq for seq in sequences if seq.basename() == "frame."]
    longest = sorted(sequences, key=len, reverse=True)
    if named:
        sequence = named[0]
    elif len(longest) == 1 or (len(longest) > 1 and len(longest[0]) > len(longest[1])):
        sequence = longest[0]
    else:
        found = [str(seq) for seq in sequences] or "none"
        raise ValueError(
            f"{folder}: expected one EXR frame sequence (or frame.####.exr among several), found {found}"
        )
    return str(Path(folder) / f"{sequence.basename()}{'#' * sequence.zfill()}.exr")


def load_clip(
    folder: Path,
    profile: str = "auto",
    env_height: int | None = None,
    vertical_fov_degrees: float | None = None,
) -> Clip:
    """Read a clip folder: frames in any AOV profile (with beauty), `envmap.exr`, and the cameras from
    `camera.json`, else from each frame's header (`cameraToWorld` or `worldToCamera`) with
    `vertical_fov_degrees` (which also overrides camera.json's). The camera-view env maps have
    `env_height` rows or the frame's height, whichever is more."""
    folder = Path(folder)
    pattern = frame_pattern(folder)
    sequence = read_sequence(pattern, profile=profile)
    if sequence.beauty is None:
        raise ValueError(f"{folder}: the frames hold no beauty (R, G, B): a clip needs its path-traced image")
    num_frames, height, width = sequence.gbuffers.validate()
    if (folder / "camera.json").exists():
        track = read_camera_json(folder / "camera.json", aspect=width / height)
        if len(track.frames) != num_frames:
            raise ValueError(f"{folder}/camera.json has {len(track.frames)} cameras for {num_frames} frames")
        camera_to_world = track.camera_to_world
        vertical_fov_degrees = vertical_fov_degrees or track.vertical_fov_degrees[0]
        if not math.isfinite(vertical_fov_degrees):  # a camera.json with matrices only
            raise ValueError(
                f"{folder}/camera.json gives no field of view; add vertical_fov_degrees (or fov_deg with "
                "fov_axis) to it, or give one (rf-eval --fov)"
            )
    else:
        if vertical_fov_degrees is None:
            raise ValueError(
                f"{folder}: no camera.json; the cameras can come from the EXR headers, but the field of view "
                "must be given (rf-eval --fov)"
            )
        camera_to_world = header_cameras(pattern)
    envmap_world = read_envmap(folder / "envmap.exr")
    env_height = max(env_height or 0, height)
    envmap_cam = camera_view_envmaps(envmap_world, camera_to_world, env_height, 2 * env_height)
    return Clip(
        folder.name,
        sequence.gbuffers,
        sequence.beauty,
        sequence.mask,
        envmap_cam,
        envmap_world,
        camera_to_world,
        vertical_fov_degrees,
    )


def header_cameras(pattern: str) -> np.ndarray:
    """Camera-to-world `[F, 4, 4]` from each frame's `cameraToWorld` (or inverted `worldToCamera`)
    attribute, in the EXR/Imath layout of ARCHITECTURE §2 (our camera axes: canonical files)."""
    cameras = []
    for _, path in sequence_files(pattern):
        image = read_exr(path)
        stored = image.matrix("cameraToWorld")
        if stored is not None:
            cameras.append(from_imath(stored))
            continue
        stored = image.matrix("worldToCamera")
        if stored is None:
            raise ValueError(
                f"{path}: no camera.json beside it and no cameraToWorld/worldToCamera in its header"
            )
        cameras.append(np.linalg.inv(from_imath(stored)))
    return np.stack(cameras)
