"""A shot as rf-render reads it: G-buffer EXRs and their cameras, and any env map seen from each frame."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderflow.core import colour
from renderflow.core.aov_profiles import AovProfile
from renderflow.core.cameras import read_camera_json
from renderflow.core.envmap import EnvTransform, camera_view_envmaps, read_envmap
from renderflow.core.gbuffer_io import GBufferError, GBufferSequence, read_sequence
from renderflow.core.sequences import sequence_files

logger = logging.getLogger(__name__)

DEFAULT_FOV_DEGREES = 40.0
SHOT_ENV_HEIGHT = 64  # camera-view env maps of 64x128 (the model resizes them to the frame)


@dataclass
class Shot:
    sequence: GBufferSequence
    camera_to_world: np.ndarray  # [F, 3, 3] rotations, for re-projecting any env map into each frame
    vertical_fov_degrees: float


def read_shot(
    pattern: str,
    frames: str | None = None,
    profile: AovProfile | str = "auto",
    colour_space: str = colour.MODEL_COLOUR_SPACE,
    camera_json: Path | None = None,
    vertical_fov_degrees: float | None = None,
) -> Shot:
    """Read G-buffers over `frames` with each frame's camera; the env map is left to `shot_envmaps`.

    Cameras come from `camera_json` (matched by frame number) or else from the EXR headers; the
    field of view from the argument, else camera.json, else DEFAULT_FOV_DEGREES (logged).
    """
    track = read_camera_json(camera_json) if camera_json is not None else None
    cameras_world_to_camera = None
    if track is not None:
        numbers = [number for number, _ in sequence_files(pattern, frames)]
        missing = [number for number in numbers if number not in track.frames]
        if missing:
            raise GBufferError(f"{camera_json}: no camera for frames {missing[:5]} of {pattern}")
        cameras_world_to_camera = [track.world_to_camera_rotation(track.frames.index(n)) for n in numbers]
        if vertical_fov_degrees is None:
            vertical_fov_degrees = track.vertical_fov_degrees[track.frames.index(numbers[0])]
    sequence = read_sequence(
        pattern, frames, profile, colour_space, cameras_world_to_camera, vertical_fov_degrees
    )
    rotations = []
    for number, world_to_camera in zip(sequence.frames, sequence.world_to_camera, strict=True):
        if world_to_camera is None:
            raise GBufferError(
                f"{pattern}: frame {number} has no camera in its header; the env map cannot be turned into "
                "the camera's view: give --camera camera.json"
            )
        rotations.append(np.asarray(world_to_camera).T)  # camera-to-world rotation
    if vertical_fov_degrees is None:
        logger.warning(
            "%s: no field of view given; assuming %.0f degrees (--fov)", pattern, DEFAULT_FOV_DEGREES
        )
        vertical_fov_degrees = DEFAULT_FOV_DEGREES
    return Shot(sequence, np.stack(rotations), vertical_fov_degrees)


def shot_envmaps(
    shot: Shot,
    envmap_path: Path,
    colour_space: str = colour.MODEL_COLOUR_SPACE,
    env_transform: EnvTransform | None = None,
) -> np.ndarray:
    """The env map at `envmap_path` seen from each of the shot's cameras: `[F, He, We, 3]`."""
    envmap_world = colour.to_model(read_envmap(envmap_path), colour_space)
    height = max(SHOT_ENV_HEIGHT, shot.sequence.gbuffers.albedo.shape[1] // 2)
    return camera_view_envmaps(
        envmap_world, shot.camera_to_world, height, 2 * height, env_transform or EnvTransform()
    )
