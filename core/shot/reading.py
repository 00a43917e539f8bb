"""A shot as rf-render reads it: G-buffer EXRs and their cameras, and any env map seen from each frame."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from renderflow.core.io import colour
from renderflow.core.io.aov_profiles import AovProfile, PassFile
from renderflow.core.io.buffers import DEFAULT_VERTICAL_FOV_DEGREES
from renderflow.core.io.camera_files import camera_json_track, read_camera
from renderflow.core.io.envmap import EnvTransform, camera_view_envmaps, read_envmap
from renderflow.core.io.exr import image_size, read_exr
from renderflow.core.io.gbuffer_io import GBufferError, GBufferSequence, read_sequence
from renderflow.core.io.outputs import plate_camera_attributes
from renderflow.core.io.sequences import sequence_files

logger = logging.getLogger(__name__)

SHOT_ENV_HEIGHT = 64  # camera-view env maps of 64x128 (the model resizes them to the frame)


@dataclass(frozen=True)
class ReadOptions:
    """How to read a shot's G-buffer EXRs: rf-render's profile options, the daemon's params."""

    profile: AovProfile | str = "auto"
    pass_files: Mapping[str, PassFile] = field(default_factory=dict)
    colour_space: str = colour.MODEL_COLOUR_SPACE
    camera: Path | Mapping[str, Any] | None = None  # camera.json, .chan or USD; or a camera.json object
    camera_prim: str | None = None  # which USD camera, when the stage has several
    vertical_fov_degrees: float | None = None
    view: str | None = None  # of multi-view (stereo) EXRs


@dataclass
class Shot:
    sequence: GBufferSequence
    camera_to_world: np.ndarray  # [F, 3, 3] rotations, for re-projecting any env map into each frame
    vertical_fov_degrees: float
    cameras: np.ndarray | None = None  # [F, 4, 4] camera-to-world with positions, when known

    @property
    def frames(self) -> list[int]:
        """Frame numbers; a single file without a frame number in its name is frame 1."""
        return [1 if number is None else number for number in self.sequence.frames]


def read_shot(
    pattern: str, frames: str | Sequence[int] | None = None, options: ReadOptions | None = None
) -> Shot:
    """Read G-buffers over `frames` with each frame's camera; the env map is left to `shot_envmaps`.

    Cameras come from `options.camera` (matched by frame number) or else from the EXR headers; the
    field of view from `options.vertical_fov_degrees`, else the camera file, else
    DEFAULT_VERTICAL_FOV_DEGREES (logged).
    """
    options = options or ReadOptions()
    fov = options.vertical_fov_degrees
    cameras_world_to_camera = None
    cameras = None
    if options.camera is not None:
        files = sequence_files(pattern, frames)
        numbers = [1 if number is None else number for number, _ in files]
        width, height = image_size(files[0][1])
        if isinstance(options.camera, Path):
            track = read_camera(options.camera, numbers, width / height, options.camera_prim)
        else:
            track = camera_json_track(options.camera, "params.camera", numbers, width / height)
        missing = [number for number in numbers if number not in track.frames]
        if missing:
            where = options.camera if isinstance(options.camera, Path) else "params.camera"
            raise GBufferError(f"{where}: no camera for frames {missing[:5]} of {pattern}")
        indices = [track.frames.index(number) for number in numbers]
        cameras_world_to_camera = [track.world_to_camera_rotation(index) for index in indices]
        cameras = np.stack([track.camera_to_world[index] for index in indices])
        if fov is None and math.isfinite(track.vertical_fov_degrees[indices[0]]):
            fov = track.vertical_fov_degrees[indices[0]]
    if fov is None:  # before reading: the depth-kind check needs a fov
        logger.warning(
            "%s: no field of view given; assuming %.0f degrees (--fov)", pattern, DEFAULT_VERTICAL_FOV_DEGREES
        )
        fov = DEFAULT_VERTICAL_FOV_DEGREES
    sequence = read_sequence(
        pattern,
        frames,
        options.profile,
        options.colour_space,
        cameras_world_to_camera,
        fov,
        options.pass_files,
        options.view,
    )
    rotations = []
    for number, world_to_camera in zip(sequence.frames, sequence.world_to_camera, strict=True):
        if world_to_camera is None:
            raise GBufferError(
                f"{pattern}: frame {number} has no camera in its header; the env map cannot be turned into "
                "the camera's view: give --camera (camera.json, .chan or USD)"
            )
        rotations.append(np.asarray(world_to_camera).T)  # camera-to-world rotation
    if cameras is None and all(position is not None for position in sequence.camera_positions):
        cameras = np.tile(np.eye(4), (len(rotations), 1, 1))
        cameras[:, :3, :3] = rotations
        cameras[:, :3, 3] = np.stack([np.asarray(position) for position in sequence.camera_positions])
    return Shot(sequence, np.stack(rotations), fov, cameras)


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


@dataclass
class Plate:
    numbers: list[int | None]  # None: a single file without a frame number
    images: np.ndarray  # [F, H, W, 3] scene-linear, model colour space
    cameras: list[dict[str, object]]  # per frame, the header's camera attributes (plate_camera_attributes)


def read_plate(
    pattern: str,
    frames: str | Sequence[int] | None = None,
    layer: str = "",
    colour_space: str = colour.MODEL_COLOUR_SPACE,
    view: str | None = None,
) -> Plate:
    """A plate's frame numbers, scene-linear RGB (the layer's R, G, B) and header cameras."""
    names = [f"{layer}.{channel}" if layer else channel for channel in "RGB"]
    numbers, images, cameras = [], [], []
    for number, path in sequence_files(pattern, frames):
        image = read_exr(path, view)
        cameras.append(plate_camera_attributes(image))
        try:
            pixels = image.select(names)
            if image.integer:  # a JPEG/PNG plate: display-referred, decoded with a warning
                pixels = colour.display_referred_to_linear(pixels, path)
            images.append(colour.to_model(pixels, colour_space))
        except KeyError as error:
            raise GBufferError(
                f"{error.args[0]}: choose the image's layer (rf-render --layer, params.layer)"
            ) from error
        if not np.isfinite(images[-1]).all():
            bad = int((~np.isfinite(images[-1])).any(axis=-1).sum())
            raise GBufferError(
                f"{path}: {bad} pixel(s) of the plate hold NaN or infinite values; fix them upstream "
                "(a Nuke Expression or Clamp node) before decomposing"
            )
        if images[-1].shape != images[0].shape:
            raise GBufferError(
                f"{path}: {images[-1].shape[1]}x{images[-1].shape[0]} differs from the first frame"
            )
        numbers.append(number)
    return Plate(numbers, np.stack(images), cameras)


def read_channel(pattern: str, frames: str | Sequence[int] | None, channel: str, option: str) -> np.ndarray:
    """One channel of a sequence (a mask, an alpha, an object id) as `[F, H, W, 1]`; `option` is the
    command-line option that names it, suggested with the file's coverage-like channels when missing."""
    arrays = []
    for _, path in sequence_files(pattern, frames):
        image = read_exr(path)
        if channel not in image.channels:
            coverage = [
                name
                for name in image.channels
                if name.rsplit(".", 1)[-1] in ("A", "a")
                or name.lower().startswith(("mask", "alpha", "matte"))
            ]
            hint = f"; try {option} {coverage[0]} (coverage-like: {', '.join(coverage)})" if coverage else ""
            raise GBufferError(
                f"{path}: no channel {channel!r} ({option}); the file has {image.channels}{hint}"
            )
        arrays.append(image.select([channel]))
    return np.stack(arrays)


def plate_envmaps(
    envmap_path: Path, num_frames: int, height: int, colour_space: str, transform: EnvTransform
) -> np.ndarray:
    """An env map seen from a plate whose camera is unknown: a camera with no rotation (looking down -Z,
    the map's centre behind it); `transform` turns the environment around it."""
    envmap_world = colour.to_model(read_envmap(envmap_path), colour_space)
    env_height = max(SHOT_ENV_HEIGHT, height // 2)
    identity = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    return camera_view_envmaps(envmap_world, identity, env_height, 2 * env_height, transform)
