"""The text `rf-render inspect` prints: layers, detected profile, the mapping used and value ranges."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from renderflow.core.io.aov_profiles import AovProfile, with_mapping
from renderflow.core.io.buffers import DEFAULT_VERTICAL_FOV_DEGREES
from renderflow.core.io.camera_files import read_camera
from renderflow.core.io.exr import ExrImage, read_exr
from renderflow.core.io.gbuffer_io import CanonicalFrame, convert_frame, resolve_profile, with_pass_files
from renderflow.core.io.sequences import frame_path, sequence_files
from renderflow.core.shot.reading import ReadOptions

HEADER_KEYS_SHOWN = 12


def describe_file(image: ExrImage) -> list[str]:
    height, width = image.pixels.shape[:2]
    lines = [f"file:    {image.path} ({width}x{height}, {len(image.channels)} channels)", "layers:"]
    for layer, suffixes in sorted(image.layers().items()):
        lines.append(f"  {layer or '(no prefix)':<28} {' '.join(suffixes)}")
    keys = sorted(image.attributes)
    shown = ", ".join(keys[:HEADER_KEYS_SHOWN]) + (
        f", ... ({len(keys)} in all)" if len(keys) > HEADER_KEYS_SHOWN else ""
    )
    lines.append(f"header:  {shown}")
    return lines


def describe_profile(image: ExrImage, profile: AovProfile | str) -> tuple[AovProfile, list[str]]:
    chosen, reason = resolve_profile(image, profile)
    lines = [
        f"profile: {chosen.name} ({reason})",
        f"         normals {chosen.normal_space} space, {chosen.normal_encoding}, "
        f"{chosen.camera_axes} camera axes; depth {chosen.depth_kind} x{chosen.depth_scale:g}, "
        f"background >= {chosen.background_depth:g}",
    ]
    return chosen, lines


def describe_frame(frame: CanonicalFrame, camera_source: str) -> list[str]:
    lines = ["mapping (canonical buffer <- channels: range after conversion):"]
    mask = frame.buffers["mask"][..., 0] > 0
    for name in ("beauty", "alpha", "albedo", "normal", "depth", "roughness", "metallic", "specular", "mask"):
        if name not in frame.buffers:
            continue
        values = frame.buffers[name]
        shown = (
            values[mask]
            if name not in ("mask", "beauty", "alpha") and mask.any()
            else values.reshape(-1, values.shape[-1])
        )
        finite = shown[np.isfinite(shown)]
        value_range = f"[{finite.min():.4g}, {finite.max():.4g}]" if finite.size else "(no finite values)"
        source = frame.sources.get(name, "derived from depth" if name == "mask" else "")
        lines.append(f"  {name:<10} <- {source:<46} {value_range}")
    coverage = float(mask.mean())
    lines.append(f"  geometry covers {coverage:.1%} of the frame; background depth is inf")
    lines.append(f"camera:  {camera_source if frame.world_to_camera is not None else 'none'}")
    return lines


def inspect_lines(file: str, frame: int | None, options: ReadOptions) -> Iterator[str]:
    """The report on one EXR (of a sequence pattern: `frame`, or the first), line by line as it is
    found: a file that turns out unusable half-way has shown what was read of it."""
    if frame is not None:
        number, path = frame, frame_path(file, frame)
    else:
        number, path = sequence_files(file)[0]
    image = read_exr(path, options.view)
    yield from describe_file(image)
    chosen, lines = describe_profile(image, options.profile)
    yield from lines
    world_to_camera, camera_source = None, "from the header"
    fov, fov_source = options.vertical_fov_degrees, "--fov"
    if options.pass_files:
        image, mapping = with_pass_files(image, options.pass_files, number)
        chosen = with_mapping(chosen, mapping)
    if options.camera is not None:
        height, width = image.pixels.shape[:2]
        numbers = [1 if number is None else number]
        track = read_camera(options.camera, numbers, width / height, options.camera_prim)
        index = track.frames.index(numbers[0]) if numbers[0] in track.frames else 0
        world_to_camera, camera_source = track.world_to_camera_rotation(index), f"from {options.camera}"
        if fov is None and math.isfinite(track.vertical_fov_degrees[index]):
            fov, fov_source = track.vertical_fov_degrees[index], f"from {options.camera}"
    if fov is None:  # as render and preview assume it; the depth-kind check needs one
        fov, fov_source = DEFAULT_VERTICAL_FOV_DEGREES, "assumed (no --fov, no camera file)"
    yield f"fov:     {fov:g}° vertical, {fov_source}"
    canonical = convert_frame(image, chosen, options.colour_space, world_to_camera, fov)
    with np.errstate(invalid="ignore"):
        lines = describe_frame(canonical, camera_source)
    yield from lines
