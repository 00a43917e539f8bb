"""Multi-layer EXRs in any AOV profile -> the canonical G-buffers of ARCHITECTURE §2, and back.

`read_frame` applies a profile to one file: it finds each buffer's channels, unpacks and rotates
normals into our camera frame, turns any depth kind into planar depth with an inf background,
derives roughness from glossiness, converts colour buffers to the model's linear Rec.709, and
checks everything a compositor could get wrong, naming the file and layer. `read_sequence` does
that for a frame range and stacks the frames into `GBuffers`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderflow.core.io import colour
from renderflow.core.io.aov_profiles import (
    BUFFER_CHANNELS,
    REQUIRED_BUFFERS,
    AovProfile,
    PassFile,
    detect_profile,
    get_profile,
    with_mapping,
)
from renderflow.core.io.buffer_conventions import (
    UNIT_RANGE_TOLERANCE,
    GBufferError,
    base_colour,
    camera_normals,
    check_depth_kind,
    geometry_mask,
    header_camera_position,
    header_world_to_camera,
    layer_list,
    material_buffers,
    planar_depth,
)
from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.exr import ExrImage, Layer, read_exr, write_layers
from renderflow.core.io.sequences import frame_path, sequence_files

logger = logging.getLogger(__name__)

COLOUR_BUFFERS = ("albedo", "diffuse_albedo", "specular_colour")  # the beauty is only warned about
UNIT_RANGE_BUFFERS = ("roughness", "metallic", "specular", "glossiness")


@dataclass
class CanonicalFrame:
    """One frame's canonical buffers `[H, W, C]` and where each came from (channels or a default)."""

    buffers: dict[str, np.ndarray]
    sources: dict[str, str]
    profile: AovProfile
    world_to_camera: np.ndarray | None  # [3, 3], world -> our camera frame, when the file has one
    camera_position: np.ndarray | None = None  # [3], in world units, when the header's matrix has it

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
    if image.integer:
        raise GBufferError(
            f"{image.path}: an 8/16-bit image cannot hold G-buffers (signed normals, depth beyond 1, "
            "linear albedo); write them as float EXRs"
        )
    chosen, _ = resolve_profile(image, profile)
    raw: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for buffer in BUFFER_CHANNELS:
        channels = chosen.resolve(image, buffer)
        if channels is not None:
            raw[buffer] = image.select(channels)
            sources[buffer] = ",".join(channels)
    missing = [buffer for buffer in REQUIRED_BUFFERS if not chosen.finds(image, buffer)]
    if missing:
        tried = {buffer: [",".join(alias) for alias in chosen.channels.get(buffer, ())] for buffer in missing}
        raise GBufferError(
            f"{image.path}: no layer for {', '.join(missing)} in profile {chosen.name!r} "
            f"(tried {tried}); the file has layers {layer_list(image)}. Map them with "
            "--aov BUFFER=CHANNELS or choose another --profile."
        )
    _check_values(image, raw, sources)

    camera_position = None
    if world_to_camera is None:
        world_to_camera = header_world_to_camera(image, chosen)
        camera_position = header_camera_position(image, chosen)
    depth = planar_depth(image, chosen, raw["depth"], sources["depth"], vertical_fov_degrees)
    mask = geometry_mask(image, chosen, raw, sources, depth)
    materials = material_buffers(image, chosen, raw, sources, depth)
    buffers: dict[str, np.ndarray] = {
        "albedo": colour.to_model(base_colour(image, raw, sources, materials, mask), colour_space) * mask,
        "normal": camera_normals(image, chosen, raw["normal"], world_to_camera, sources["normal"]) * mask,
        "depth": np.where(mask > 0, depth, np.inf).astype(np.float32),
        "mask": mask,
        **materials,
    }
    if vertical_fov_degrees is not None and chosen.depth_kind in ("planar", "ray"):
        check_depth_kind(image, chosen, buffers, sources["depth"], vertical_fov_degrees)
    if "beauty" in raw:
        beauty = raw["beauty"]
        bad = int((~np.isfinite(beauty)).any(axis=-1).sum())
        if bad:  # the beauty only serves evaluation and keyframes: a NaN there never fails a render
            logger.warning("%s: layer %s (beauty) has %d NaN/inf pixels", image.path, sources["beauty"], bad)
        buffers["beauty"] = colour.to_model(beauty, colour_space)
    if "alpha" in raw:
        buffers["alpha"] = raw["alpha"]
    return CanonicalFrame(buffers, sources, chosen, world_to_camera, camera_position)


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


@dataclass
class GBufferSequence:
    """A frame range read through a profile: the model's inputs plus what else the files held."""

    frames: list[int | None]
    gbuffers: GBuffers
    mask: np.ndarray  # [F, H, W, 1]
    beauty: np.ndarray | None  # [F, H, W, 3] when every frame has one
    world_to_camera: list[np.ndarray | None]
    profile: AovProfile
    camera_positions: list[np.ndarray | None]


def read_sequence(
    pattern: str,
    frames: str | Sequence[int] | None = None,
    profile: AovProfile | str = "auto",
    colour_space: str = colour.MODEL_COLOUR_SPACE,
    world_to_camera: Sequence[np.ndarray] | None = None,
    vertical_fov_degrees: float | None = None,
    pass_files: Mapping[str, PassFile] | None = None,
    view: str | None = None,
) -> GBufferSequence:
    """Read `pattern` (`shot.####.exr`) over `frames` (`1001-1100x2`) into canonical G-buffers.

    The profile is detected once, on the first frame, and kept for the whole range; every
    frame must have the first frame's size. `pass_files` adds buffers kept in their own sequences;
    `view` picks one view of multi-view (stereo) files.
    """
    files = sequence_files(pattern, frames)
    if world_to_camera is not None and len(world_to_camera) != len(files):
        raise GBufferError(f"{pattern}: {len(world_to_camera)} cameras given for {len(files)} frames")
    if pass_files and isinstance(profile, str) and profile == "auto":
        raise GBufferError(f"{pattern}: buffers in their own files need an explicit --profile (their base)")
    read: list[CanonicalFrame] = []
    base: AovProfile | str = profile
    for index, (number, path) in enumerate(files):
        image = read_exr(path, view)
        chosen, _ = resolve_profile(image, base)
        base = chosen
        if pass_files:
            image, mapping = with_pass_files(image, pass_files, number)
            chosen = with_mapping(chosen, mapping)
        frame = convert_frame(
            image,
            chosen,
            colour_space,
            None if world_to_camera is None else world_to_camera[index],
            vertical_fov_degrees,
        )
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
        [frame.camera_position for frame in read],
    )


PASS_CHANNEL_CHOICES = {
    3: (("R", "G", "B"), ("X", "Y", "Z"), ("r", "g", "b"), ("x", "y", "z")),
    1: (("Z",), ("Y",), ("R",), ("V",), ("z",), ("r",)),
}


def with_pass_files(
    image: ExrImage, pass_files: Mapping[str, PassFile], frame: int | None
) -> tuple[ExrImage, dict[str, tuple[str, ...]]]:
    """`image` with each pass file's channels added as `FILE:CHANNEL`, and the mapping to them."""
    pixels, names = [image.pixels], list(image.channels)
    mapping = {}
    for buffer, pass_file in pass_files.items():
        path = frame_path(pass_file.pattern, frame) if frame is not None else Path(pass_file.pattern)
        extra = read_exr(path)
        channels = pass_file.channels or _pass_channels(extra, buffer)
        if extra.pixels.shape[:2] != image.pixels.shape[:2]:
            raise GBufferError(
                f"{path}: {extra.pixels.shape[1]}x{extra.pixels.shape[0]} differs from {image.path} "
                f"({image.pixels.shape[1]}x{image.pixels.shape[0]})"
            )
        try:
            pixels.append(extra.select(channels))
        except KeyError as error:
            raise GBufferError(str(error.args[0])) from error
        mapping[buffer] = tuple(f"{Path(pass_file.pattern).name}:{name}" for name in channels)
        names += mapping[buffer]
    return ExrImage(np.concatenate(pixels, axis=-1), names, image.attributes, image.path), mapping


def _pass_channels(image: ExrImage, buffer: str) -> tuple[str, ...]:
    """The channels of a one-pass file that hold `buffer`: R, G, B or X, Y, Z (any one layer), Z, Y, ..."""
    count = BUFFER_CHANNELS[buffer]
    if len(image.channels) == count:
        return tuple(image.channels)
    for layer in sorted(image.layers()):
        for suffixes in PASS_CHANNEL_CHOICES.get(count, ()):
            names = tuple(f"{layer}.{suffix}" if layer else suffix for suffix in suffixes)
            if all(name in image.channels for name in names):
                return names
    raise GBufferError(
        f"{image.path}: which channels hold {buffer}? the file has {image.channels}; "
        f"name them: --aov {buffer}=FILE.####.exr:CHANNEL[,CHANNEL...]"
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
