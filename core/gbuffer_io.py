"""Multi-layer EXRs in any AOV profile -> the canonical G-buffers of ARCHITECTURE §2, and back.

`read_frame` applies a profile to one file: it finds each buffer's channels, unpacks and rotates
normals into our camera frame, turns any depth kind into planar depth with an inf background,
derives roughness from glossiness, converts colour buffers to the model's linear Rec.709, and
checks everything a compositor could get wrong, naming the file and layer. `read_sequence` does
that for a frame range and stacks the frames into `GBuffers`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderflow.core import colour
from renderflow.core.aov_profiles import (
    BUFFER_CHANNELS,
    DEFAULT_MATERIAL,
    REQUIRED_BUFFERS,
    AovProfile,
    detect_profile,
    get_profile,
)
from renderflow.core.buffers import GBuffers
from renderflow.core.cameras import CAMERA_AXES, from_imath, ray_length_factor, unreal_world_to_camera
from renderflow.core.exr import ExrImage, Layer, read_exr, write_layers
from renderflow.core.sequences import sequence_files

logger = logging.getLogger(__name__)

COLOUR_BUFFERS = ("beauty", "albedo")
UNIT_RANGE_BUFFERS = ("roughness", "metallic", "specular", "glossiness")
UNIT_RANGE_TOLERANCE = 1e-3  # half-float rounding; values beyond this are an error


class GBufferError(ValueError):
    """A G-buffer file that cannot be used as is; the message names the file, layer and expectation."""


@dataclass
class CanonicalFrame:
    """One frame's canonical buffers `[H, W, C]` and where each came from (channels or a default)."""

    buffers: dict[str, np.ndarray]
    sources: dict[str, str]
    profile: AovProfile
    world_to_camera: np.ndarray | None  # [3, 3], world -> our camera frame, when the file has one

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.buffers["depth"].shape[:2]
        return height, width


def resolve_profile(image: ExrImage, profile: AovProfile | str) -> tuple[AovProfile, str]:
    """The profile to use and why: an explicit one, or auto-detection from the header."""
    if isinstance(profile, AovProfile):
        return profile, "given"
    if profile == "auto":
        detection = detect_profile(image)
        return detection.profile, f"auto-detected: {detection.reason}"
    return get_profile(profile), "given"


def read_frame(
    path: Path,
    profile: AovProfile | str = "auto",
    colour_space: str = colour.MODEL_COLOUR_SPACE,
    world_to_camera: np.ndarray | None = None,
    vertical_fov_degrees: float | None = None,
) -> CanonicalFrame:
    """Read one G-buffer EXR; `world_to_camera` `[3, 3]` overrides the header's camera."""
    return convert_frame(read_exr(path), profile, colour_space, world_to_camera, vertical_fov_degrees)


def convert_frame(
    image: ExrImage,
    profile: AovProfile | str = "auto",
    colour_space: str = colour.MODEL_COLOUR_SPACE,
    world_to_camera: np.ndarray | None = None,
    vertical_fov_degrees: float | None = None,
) -> CanonicalFrame:
    chosen, _ = resolve_profile(image, profile)
    raw: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for buffer in BUFFER_CHANNELS:
        channels = chosen.resolve(image, buffer)
        if channels is not None:
            raw[buffer] = image.select(channels)
            sources[buffer] = ",".join(channels)
    missing = [buffer for buffer in REQUIRED_BUFFERS if buffer not in raw]
    if missing:
        tried = {buffer: [",".join(alias) for alias in chosen.channels.get(buffer, ())] for buffer in missing}
        raise GBufferError(
            f"{image.path}: no layer for {', '.join(missing)} in profile {chosen.name!r} "
            f"(tried {tried}); the file has layers {_layer_list(image)}. Map them with "
            "--aov BUFFER=CHANNELS or choose another --profile."
        )
    _check_values(image, raw, sources)

    if world_to_camera is None:
        world_to_camera = header_world_to_camera(image, chosen)
    depth = planar_depth(image, chosen, raw["depth"], sources["depth"], vertical_fov_degrees)
    mask = (raw["mask"] > 0.5).astype(np.float32) if "mask" in raw else np.isfinite(depth).astype(np.float32)
    buffers: dict[str, np.ndarray] = {
        "albedo": colour.to_model(raw["albedo"], colour_space) * mask,
        "normal": camera_normals(image, chosen, raw["normal"], world_to_camera) * mask,
        "depth": np.where(mask > 0, depth, np.inf).astype(np.float32),
        "mask": mask,
    }
    for name, default in DEFAULT_MATERIAL.items():
        if name in raw:
            buffers[name] = np.clip(raw[name], 0.0, 1.0)
        elif name == "roughness" and "glossiness" in raw:
            buffers[name] = 1.0 - np.clip(raw["glossiness"], 0.0, 1.0)
            sources[name] = f"1 - {sources['glossiness']}"
        else:
            buffers[name] = np.full_like(depth, default)
            sources[name] = f"default {default} (no layer)"
            logger.debug("%s: no %s layer in profile %r; using %s", image.path, name, chosen.name, default)
    if "beauty" in raw:
        buffers["beauty"] = colour.to_model(raw["beauty"], colour_space)
    if "alpha" in raw:
        buffers["alpha"] = raw["alpha"]
    return CanonicalFrame(buffers, sources, chosen, world_to_camera)


def _layer_list(image: ExrImage) -> str:
    return ", ".join(
        f"{layer or '(no prefix)'} [{' '.join(suffixes)}]"
        for layer, suffixes in sorted(image.layers().items())
    )


def _check_values(image: ExrImage, raw: dict[str, np.ndarray], sources: dict[str, str]) -> None:
    for buffer in COLOUR_BUFFERS:
        if buffer in raw:
            bad = int((~np.isfinite(raw[buffer])).any(axis=-1).sum())
            if bad:
                raise GBufferError(
                    f"{image.path}: layer {sources[buffer]} ({buffer}) has {bad} pixels with NaN or inf; "
                    "colour buffers must be finite"
                )
    for buffer in UNIT_RANGE_BUFFERS:
        if buffer in raw:
            values = raw[buffer]
            in_range = values.min() >= -UNIT_RANGE_TOLERANCE and values.max() <= 1 + UNIT_RANGE_TOLERANCE
            if not np.isfinite(values).all() or not in_range:
                raise GBufferError(
                    f"{image.path}: layer {sources[buffer]} ({buffer}) ranges over "
                    f"[{np.nanmin(values):.4g}, {np.nanmax(values):.4g}]; expected values in [0, 1]"
                )
    if not np.isfinite(raw["normal"]).all():
        raise GBufferError(f"{image.path}: layer {sources['normal']} (normal) has NaN or inf")


def header_world_to_camera(image: ExrImage, profile: AovProfile) -> np.ndarray | None:
    """World -> our camera rotation `[3, 3]` from the header, as the profile says it is stored."""
    if profile.camera_metadata == "unreal":
        keys = [f"unreal/camera/curRot/{axis}" for axis in ("pitch", "yaw", "roll")]
        if not all(key in image.attributes for key in keys):
            return None
        try:
            pitch, yaw, roll = (float(str(image.attributes[key])) for key in keys)
        except ValueError as error:
            raise GBufferError(f"{image.path}: unreadable Unreal camera rotation ({error})") from error
        return unreal_world_to_camera(pitch, yaw, roll)
    if profile.camera_metadata == "imath":
        axes = CAMERA_AXES[profile.camera_axes]
        for key in profile.camera_keys:
            stored = image.matrix(key)
            if stored is not None:
                matrix = from_imath(stored)
                rotation = matrix[:3, :3] if key == "worldToCamera" else np.linalg.inv(matrix)[:3, :3]
                return np.asarray(axes @ _orthonormal(rotation), dtype=np.float64)
    return None


def _orthonormal(rotation: np.ndarray) -> np.ndarray:
    """Drop scale from a camera matrix (some hosts bake it in) without changing handedness."""
    u, _, vt = np.linalg.svd(rotation)
    return np.asarray(u @ vt)


def camera_normals(
    image: ExrImage, profile: AovProfile, normal: np.ndarray, world_to_camera: np.ndarray | None
) -> np.ndarray:
    """Unit normals in our camera frame (zero where the file has none)."""
    vectors = normal * 2.0 - 1.0 if profile.normal_encoding == "packed" else normal.astype(np.float64)
    if profile.normal_space == "world":
        if world_to_camera is None:
            raise GBufferError(
                f"{image.path}: profile {profile.name!r} stores world-space normals but the header has no "
                f"camera ({', '.join(profile.camera_keys) or 'unreal/camera/curRot/*'}); give the camera "
                "with --camera camera.json"
            )
        vectors = vectors @ np.asarray(world_to_camera).T
    else:
        vectors = vectors @ CAMERA_AXES[profile.camera_axes].T
    length = np.linalg.norm(vectors, axis=-1, keepdims=True)
    valid = length > 0.5  # background and packed zero vectors (0.5 grey) have no direction
    return np.where(valid, vectors / np.maximum(length, 1e-12), 0.0).astype(np.float32)


def planar_depth(
    image: ExrImage,
    profile: AovProfile,
    depth: np.ndarray,
    source: str,
    vertical_fov_degrees: float | None,
) -> np.ndarray:
    """`[H, W, 1]` planar depth in scene units with inf for background."""
    values = depth.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if profile.depth_kind == "inverse":
            background = ~np.isfinite(values) | (values <= 0)
            values = 1.0 / values
        else:
            background = ~np.isfinite(values) | (values <= 0) | (values >= profile.background_depth)
    if profile.depth_kind == "ray":
        fov = vertical_fov_degrees if vertical_fov_degrees is not None else _header_fov(image, profile)
        if fov is None:
            raise GBufferError(
                f"{image.path}: layer {source} holds ray distance; converting it to planar depth needs the "
                "camera's field of view (none in the header): give --fov"
            )
        values = values / ray_length_factor(*values.shape[:2], fov)
    values = values * profile.depth_scale
    return np.where(background, np.inf, values).astype(np.float32)


def _header_fov(image: ExrImage, profile: AovProfile) -> float | None:
    """Vertical fov from a header's horizontal fov attribute, if the profile names one."""
    if not profile.fov_key or profile.fov_key not in image.attributes:
        return None
    height, width = image.pixels.shape[:2]
    horizontal = np.radians(float(str(image.attributes[profile.fov_key])))
    return float(np.degrees(2 * np.arctan(np.tan(horizontal / 2) * height / width)))


@dataclass
class GBufferSequence:
    """A frame range read through a profile: the model's inputs plus what else the files held."""

    frames: list[int | None]
    gbuffers: GBuffers
    mask: np.ndarray  # [F, H, W, 1]
    beauty: np.ndarray | None  # [F, H, W, 3] when every frame has one
    world_to_camera: list[np.ndarray | None]
    profile: AovProfile


def read_sequence(
    pattern: str,
    frames: str | None = None,
    profile: AovProfile | str = "auto",
    colour_space: str = colour.MODEL_COLOUR_SPACE,
    world_to_camera: Sequence[np.ndarray] | None = None,
    vertical_fov_degrees: float | None = None,
) -> GBufferSequence:
    """Read `pattern` (`shot.####.exr`) over `frames` (`1001-1100x2`) into canonical G-buffers.

    The profile is detected once, on the first frame, and kept for the whole range; every
    frame must have the first frame's size.
    """
    files = sequence_files(pattern, frames)
    if world_to_camera is not None and len(world_to_camera) != len(files):
        raise GBufferError(f"{pattern}: {len(world_to_camera)} cameras given for {len(files)} frames")
    read: list[CanonicalFrame] = []
    chosen: AovProfile | str = profile
    for index, (_, path) in enumerate(files):
        frame = read_frame(
            path,
            chosen,
            colour_space,
            None if world_to_camera is None else world_to_camera[index],
            vertical_fov_degrees,
        )
        chosen = frame.profile
        if read and frame.size != read[0].size:
            raise GBufferError(
                f"{path}: frame is {frame.size[1]}x{frame.size[0]}, but {files[0][1]} is "
                f"{read[0].size[1]}x{read[0].size[0]}; all frames must have one size"
            )
        read.append(frame)

    def stack(name: str) -> np.ndarray:
        return np.stack([frame.buffers[name] for frame in read])

    for name, source in read[0].sources.items():
        if source.startswith("default"):
            logger.warning(
                "%s: no %s layer in profile %r; using %s", pattern, name, read[0].profile.name, source
            )
    material = np.concatenate([stack("roughness"), stack("metallic"), stack("specular")], axis=-1)
    has_beauty = all("beauty" in frame.buffers for frame in read)
    return GBufferSequence(
        [frame for frame, _ in files],
        GBuffers(stack("albedo"), stack("normal"), stack("depth"), material),
        stack("mask"),
        stack("beauty") if has_beauty else None,
        [frame.world_to_camera for frame in read],
        read[0].profile,
    )


def write_canonical_frame(
    path: Path,
    buffers: dict[str, np.ndarray],
    attributes: dict[str, object] | None = None,
    compression: str = "zip",
) -> None:
    """One canonical EXR (ARCHITECTURE §2): float for the scene-linear beauty (a sun of 10⁵ overflows
    half's 65504) and the data layers, half for alpha and albedo.

    `buffers` holds any of beauty `[H, W, 3]`, alpha, albedo, normal, depth, roughness, metallic,
    specular, mask; depth background inf stays inf (EXR float keeps it).
    """
    layout = [
        ("beauty", "", "RGB", False),
        ("alpha", "", "A", True),
        ("albedo", "albedo", "RGB", True),
        ("normal", "N", "XYZ", False),
        ("depth", "depth", "Z", False),
        ("roughness", "roughness", "Y", False),
        ("metallic", "metallic", "Y", False),
        ("specular", "specular", "Y", False),
        ("mask", "mask", "Y", False),
    ]
    unknown = set(buffers) - {name for name, *_ in layout}
    if unknown:
        raise ValueError(f"{path}: unknown buffers {sorted(unknown)}")
    layers = [
        Layer(layer, buffers[name], tuple(suffixes), half)
        for name, layer, suffixes, half in layout
        if name in buffers
    ]
    write_layers(path, layers, attributes, compression)
