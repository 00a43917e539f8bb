"""A shot's files and reading settings, as core's ReadOptions and as a daemon request.

rf-render reads its options into ReadOptions here (in process) or turns them into a request's
params and payloads (with --daemon); the daemon's jobs turn a request's params back into
ReadOptions here. The params themselves are written and read by daemon/requests.py alone.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from renderflow.core.io.aov_profiles import (
    AovProfile,
    PassFile,
    get_profile,
    load_profile_file,
    parse_aov_option,
    profile_from_toml,
    with_mapping,
)
from renderflow.core.io.camera_files import read_camera, track_to_json
from renderflow.core.io.envmap import EnvTransform
from renderflow.core.io.exr import Layer, image_size, read_exr, write_layers
from renderflow.core.io.gbuffer_io import with_pass_files
from renderflow.core.shot.reading import ReadOptions
from renderflow.core.shot.settings import RenderSettings
from renderflow.daemon import requests


@dataclass(frozen=True)
class CliReading:
    """rf-render's reading options as given (see core/cli_options.py `read_options`)."""

    profile: str = requests.AUTO_PROFILE
    aov_mappings: tuple[str, ...] = ()  # BUFFER=CHANNELS or BUFFER=passes.####.exr[:channels]
    aov_file: Path | None = None
    colour_space: str = requests.DEFAULT_COLOUR_SPACE
    camera: Path | None = None
    camera_prim: str | None = None
    fov: float | None = None
    view: str | None = None
    channel_mappings: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict)
    pass_files: dict[str, PassFile] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for buffer, target in map(parse_aov_option, self.aov_mappings):
            if isinstance(target, PassFile):
                self.pass_files[buffer] = target
            else:
                self.channel_mappings[buffer] = target
        base = self.profile if self.aov_file is None else "studio"
        requests.check_mapping_profile(base, bool(self.aov_mappings), "--aov", "--profile")


def read_options(reading: CliReading) -> ReadOptions:
    """The options as core's ReadOptions: a built-in or studio profile, channel mappings and
    per-pass files, colour space, camera file, fov."""
    base: AovProfile | str = load_profile_file(reading.aov_file) if reading.aov_file else reading.profile
    if reading.channel_mappings:
        base = with_mapping(get_profile(base) if isinstance(base, str) else base, reading.channel_mappings)
    return ReadOptions(
        base,
        reading.pass_files,
        reading.colour_space,
        reading.camera,
        reading.camera_prim,
        reading.fov,
        reading.view,
    )


def request_read_options(shot: requests.ShotParams) -> ReadOptions:
    """A request's reading settings as core's ReadOptions."""
    base: AovProfile | str = shot.profile
    if shot.aov_profile_toml is not None:
        base = profile_from_toml(shot.aov_profile_toml, "params.aov_profile_toml", "request")
    if shot.aov:
        base = with_mapping(get_profile(base) if isinstance(base, str) else base, dict(shot.aov))
    return ReadOptions(
        base,
        colour_space=shot.colour_space,
        camera=shot.camera,
        vertical_fov_degrees=shot.fov,
        view=shot.view,
    )


def render_settings(render: requests.RenderParams) -> RenderSettings:
    """Render settings (of a request, or of rf-render's options) as core's RenderSettings."""
    return RenderSettings(
        render.steps, list(render.aovs), EnvTransform(render.env_rotate, render.env_flip, render.exposure)
    )


@dataclass
class ShotRequest:
    """What rf-render sends daemons for a shot: the params and each frame's G-buffer file."""

    params: dict[str, object]
    files: dict[int, Path]  # frame -> the EXR to send (passes combined into one file when given)
    folder: tempfile.TemporaryDirectory[str] | None = None  # the combined files; cleaned by `close`

    def close(self) -> None:
        if self.folder is not None:
            self.folder.cleanup()


def shot_request(
    reading: CliReading, files: list[tuple[int | None, Path]], render: requests.RenderParams
) -> ShotRequest:
    """The request for a shot's files: .chan/USD cameras read here and sent as a camera.json object,
    per-pass files combined into one EXR per frame with the mapping to their channels."""
    numbers = [1 if frame is None else frame for frame, _ in files]
    camera: Mapping[str, object] | None = None
    if reading.camera is not None and reading.camera.suffix.lower() == ".json":
        camera = json.loads(reading.camera.read_text())
    elif reading.camera is not None:
        width, height = image_size(files[0][1])
        camera = track_to_json(read_camera(reading.camera, numbers, width / height, reading.camera_prim))
    mapping = dict(reading.channel_mappings)
    by_frame = dict(zip(numbers, (path for _, path in files), strict=True))
    folder = None
    if reading.pass_files:
        folder = tempfile.TemporaryDirectory(prefix="rf-passes-")
        by_frame, pass_mapping = combine_passes(by_frame, reading.pass_files, Path(folder.name))
        mapping |= pass_mapping
    shot = requests.ShotParams(
        reading.profile,
        mapping,
        reading.aov_file.read_text() if reading.aov_file else None,
        reading.colour_space,
        camera,
        reading.fov,
        reading.view,
    )
    return ShotRequest(requests.render_params(shot, render), by_frame, folder)


def combine_passes(
    by_frame: dict[int, Path], pass_files: Mapping[str, PassFile], folder: Path
) -> tuple[dict[int, Path], dict[str, tuple[str, ...]]]:
    """Each frame's G-buffer EXR with its passes' channels added (what a daemon reads as one file),
    written to `folder`, and the mapping of each buffer to its channels there."""
    combined: dict[int, Path] = {}
    mapping: dict[str, tuple[str, ...]] = {}
    for frame, path in by_frame.items():
        image, frame_mapping = with_pass_files(read_exr(path), pass_files, frame)
        combined[frame] = folder / f"gbuffers.{frame}.exr"
        write_layers(
            combined[frame],
            [Layer("", image.pixels, image.channels, half=False)],
            kept_header(image.attributes),
        )
        mapping = {buffer: tuple(names) for buffer, names in frame_mapping.items()}
    return combined, mapping


def kept_header(attributes: dict[str, object]) -> dict[str, object]:
    """The header attributes a G-buffer file carries to the daemon: cameras (4x4 matrices) and the
    renderer's own strings and numbers, not the file's layout (OpenImageIO's, compression)."""
    kept: dict[str, object] = {}
    for key, value in attributes.items():
        if key.startswith(("oiio:", "openexr:")) or key in ("compression", "DateTime"):
            continue
        if isinstance(value, tuple) and len(value) == 16:
            kept[key] = np.asarray(value, np.float64).reshape(4, 4)
        elif isinstance(value, str | int | float):
            kept[key] = value
    return kept
