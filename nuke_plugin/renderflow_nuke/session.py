"""The RenderFlow node's logic in plain Python: it never imports nuke, so it is tested for real.

From Nuke's channel names and the panel's knob values it builds the daemon request, runs it
with progress and cancel, writes the results atomically into a versioned cache folder and says
where the internal Read should point. Errors come back as sentences for a compositor.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from renderflow.core.io.buffer_names import BUFFER_CHANNELS as CANONICAL_CHANNELS
from renderflow.core.io.buffer_names import PICKABLE_BUFFERS
from renderflow.daemon import protocol as wire
from renderflow.daemon import requests
from renderflow.daemon.client import (
    DaemonClient,
    DaemonError,
    DaemonUnavailable,
    decompose_payloads,
    render_payloads,
    write_atomically,
)

MODE_RENDER = "render"
MODE_DECOMPOSE = "decompose"
LAYER_FROM_PROFILE = "none"  # a layer picker left at none: the AOV profile finds the buffer
WORKING_SPACE = "working space"  # the colour-space knob's default: the script's OCIO working space
# Nuke's own config calls its working space "linear": linear Rec.709 primaries.
NUKE_DEFAULT_SPACES = {"linear": "lin_rec709", "Linear": "lin_rec709"}
# albedo is the base colour; renderers' albedo AOVs are diffuse albedos (docs/AOV_PROFILES.md).
BUFFER_CHANNELS = {buffer: CANONICAL_CHANNELS[buffer] for buffer in PICKABLE_BUFFERS}
NUKE_SUFFIX_TO_EXR = {"red": "R", "green": "G", "blue": "B", "alpha": "A"}  # what Nuke's Write writes
VERSION_PATTERN = re.compile(r"^v(\d{3,})$")
ProgressFn = Callable[[float, str], None]  # (fraction done, message)


class NodeError(Exception):
    """Something the compositor can fix, said in their words (shown on the node)."""


def exr_channel(nuke_channel: str) -> str:
    """The EXR channel name Nuke's Write gives a Nuke channel: rgba.red -> R, diffuse.red -> diffuse.R."""
    layer, _, suffix = nuke_channel.partition(".")
    suffix = NUKE_SUFFIX_TO_EXR.get(suffix, suffix)
    return suffix if layer == "rgba" else f"{layer}.{suffix}"


def layers_of(nuke_channels: Sequence[str]) -> dict[str, list[str]]:
    """Nuke layer -> its channels, in Nuke's order."""
    layers: dict[str, list[str]] = {}
    for channel in nuke_channels:
        layers.setdefault(channel.partition(".")[0], []).append(channel)
    return layers


def guess_layers(
    nuke_channels: Sequence[str], profile_channels: dict[str, list[list[str]]]
) -> dict[str, str]:
    """Each buffer's layer as the profile's first complete alias names it, else LAYER_FROM_PROFILE.

    `profile_channels` is one entry of hello's `capabilities.profile_channels`.
    """
    written = {exr_channel(channel): channel.partition(".")[0] for channel in nuke_channels}
    guesses = {}
    for buffer in BUFFER_CHANNELS:
        guesses[buffer] = LAYER_FROM_PROFILE
        for alias in profile_channels.get(buffer, []):
            if alias and all(name in written for name in alias):
                guesses[buffer] = written[alias[0]]
                break
    return guesses


def layer_mapping(choices: dict[str, str], nuke_channels: Sequence[str]) -> dict[str, list[str]]:
    """`params.aov` for the layers picked by hand: each buffer's channels as the written EXR names them."""
    layers = layers_of(nuke_channels)
    mapping = {}
    for buffer, layer in choices.items():
        if layer == LAYER_FROM_PROFILE:
            continue
        if layer not in layers:
            raise NodeError(
                f"{buffer}: the input has no layer '{layer}' (it has {', '.join(sorted(layers))})"
            )
        needed = BUFFER_CHANNELS[buffer]
        if len(layers[layer]) < needed:
            raise NodeError(f"{buffer} needs {needed} channels; layer '{layer}' has {len(layers[layer])}")
        mapping[buffer] = [exr_channel(channel) for channel in layers[layer][:needed]]
    return mapping


@dataclass
class NodeSettings:
    """The panel's knob values (node.py reads them; tests build them directly)."""

    node_name: str
    address: str = wire.DEFAULT_ADDRESS
    mode: str = MODE_RENDER
    profile: str = "auto"
    layers: dict[str, str] = field(default_factory=dict)  # buffer -> Nuke layer or LAYER_FROM_PROFILE
    envmap: str = ""
    env_rotate: float = 0.0
    env_flip: bool = False
    exposure: float = 0.0
    use_keyframes: bool = False
    keyframe_gap: int = 16
    first: int = 1
    last: int = 1
    output_root: str = ""
    camera_file: str = ""  # camera.json or a Nuke .chan
    camera: dict[str, Any] | None = None  # from the Camera input: a camera.json object
    colour_space: str = "lin_rec709"  # OCIO name of the script's scene-linear space
    steps: int = 1
    timeout_s: float = 15.0


def check_before_writing(settings: NodeSettings) -> None:
    """What can be found wrong before any input is written (seconds of work for a long range)."""
    if settings.last < settings.first:
        raise NodeError(f"frame range {settings.first}-{settings.last} is empty")
    if settings.mode == MODE_RENDER and (not settings.envmap or not Path(settings.envmap).is_file()):
        raise NodeError(f"env map: no file at '{settings.envmap}'; pick a lat-long HDR EXR or connect a Read")
    if settings.camera_file and not Path(settings.camera_file).is_file():
        raise NodeError(f"camera file: no file at '{settings.camera_file}'")


def keyframe_frames(first: int, last: int, gap: int) -> list[int]:
    """The frames that get a path-traced keyframe: every `gap` frames from the first."""
    if gap < 1:
        raise NodeError(f"keyframe gap must be at least 1, got {gap}")
    return list(range(first, last + 1, gap))


def render_params(settings: NodeSettings, nuke_channels: Sequence[str]) -> dict[str, Any]:
    """The render request's params from the panel (layers picked by hand need an explicit profile)."""
    camera = settings.camera or (camera_file_object(settings.camera_file) if settings.camera_file else None)
    mapping = layer_mapping(settings.layers, nuke_channels)
    try:
        shot = requests.ShotParams(
            settings.profile, mapping, colour_space=settings.colour_space, camera=camera
        )
    except requests.RequestError:
        raise NodeError(
            "layers picked by hand need an AOV profile other than auto: the renderer that wrote them, or "
            "canonical; or set the layer pickers back to none"
        ) from None
    render = requests.RenderParams(
        settings.steps, (), settings.env_rotate, settings.env_flip, settings.exposure
    )  # no extra AOVs: A (the geometry's coverage) is always in the result
    return requests.render_params(shot, render)


def camera_file_object(path: str) -> dict[str, Any]:
    """A camera.json's object, or a Nuke .chan turned into one (frame, camera-to-world, vertical fov)."""
    import json

    try:
        if Path(path).suffix.lower() == ".chan":
            from renderflow.core.io.camera_files import read_chan, track_to_json

            return track_to_json(read_chan(Path(path)))
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise NodeError(f"camera file {path}: cannot read it ({error})") from error
    if not isinstance(data, dict):
        raise NodeError(f"camera file {path}: expected a camera.json object")
    return data


def camera_from_nuke(
    world_matrices: dict[int, Sequence[float]], focal: dict[int, float], haperture: dict[int, float]
) -> dict[str, Any]:
    """A Nuke Camera's per-frame `world_matrix` (16 values, rows, translation in the last column),
    `focal` and `haperture` (mm) as a camera.json object; the daemon fits the fov to the frame width."""
    frames = []
    for frame in sorted(world_matrices):
        values = [float(value) for value in world_matrices[frame]]
        if len(values) != 16:
            raise NodeError(f"camera input: world_matrix at frame {frame} has {len(values)} values, not 16")
        rows = [values[row * 4 : row * 4 + 4] for row in range(4)]
        frames.append(
            {
                "frame": frame,
                "camera_to_world": rows,
                "focal_length": float(focal[frame]),
                "horizontal_aperture": float(haperture[frame]),
            }
        )
    return {"frames": frames}


def scene_linear_space(knob_value: str, working_space: str) -> str:
    """The OCIO name to send: the knob's, or the script's working space (Nuke's 'linear' is Rec.709)."""
    space = working_space if knob_value == WORKING_SPACE else knob_value
    return NUKE_DEFAULT_SPACES.get(space, space)


def next_version_folder(output_root: Path, node_name: str) -> Path:
    """`output_root/node_name/v###`, one above the highest existing version (never overwrites)."""
    parent = Path(output_root) / node_name
    versions = [int(m.group(1)) for p in parent.glob("v*") if (m := VERSION_PATTERN.match(p.name))]
    return parent / f"v{max(versions, default=0) + 1:03d}"


@dataclass(frozen=True)
class JobResult:
    """Where the internal Read should point: a `####` pattern and its frame range."""

    pattern: str
    first: int
    last: int
    folder: Path


def run_job(
    settings: NodeSettings,
    input_files: Sequence[tuple[int, Path]],
    nuke_channels: Sequence[str],
    keyframe_files: Sequence[tuple[int, Path]] = (),
    progress: ProgressFn = lambda fraction, message: None,
    cancel_event: threading.Event | None = None,
    client: DaemonClient | None = None,
) -> JobResult:
    """Send the written EXRs to the daemon, write the answer into a new version folder.

    `input_files` are the G-buffer EXRs (render) or the plate EXRs (decompose) as the node's Write
    wrote them; `nuke_channels` are the input's channels, for hand-picked layers.
    """
    if not input_files:
        raise NodeError("nothing to render: the frame range is empty")
    own_client = client is None
    client = client or DaemonClient(settings.address, timeout_s=settings.timeout_s)

    def on_progress(done: int, total: int, message: str) -> None:
        progress(done / total if total else 0.0, message)

    try:
        if settings.mode == MODE_RENDER:
            if not settings.envmap or not Path(settings.envmap).is_file():
                raise NodeError(f"env map: no file at '{settings.envmap}'; pick a lat-long HDR EXR")
            params = render_params(settings, nuke_channels)
            payloads = render_payloads(input_files, Path(settings.envmap), keyframe_files)
            reply = client.render(params, payloads, on_progress, cancel_event)
            name = "beauty"
        elif settings.mode == MODE_DECOMPOSE:
            params = requests.decompose_params(
                requests.DecomposeParams(settings.steps, colour_space=settings.colour_space)
            )
            reply = client.decompose(params, decompose_payloads(input_files), on_progress, cancel_event)
            name = "intrinsics"
        else:
            raise NodeError(f"unknown mode '{settings.mode}': choose render or decompose")
    except (DaemonError, DaemonUnavailable) as error:
        raise NodeError(compositor_message(error, settings.address)) from error
    finally:
        if own_client:
            client.close()
    folder = next_version_folder(Path(settings.output_root), settings.node_name)
    folder.mkdir(parents=True)
    frames = []
    for payload in reply.payloads:
        frame = int(payload.frame or 0)
        write_atomically(folder / f"{name}.{frame:04d}.exr", payload.data)
        frames.append(frame)
    return JobResult(str(folder / f"{name}.####.exr"), min(frames), max(frames), folder)


def compositor_message(error: DaemonError | DaemonUnavailable, address: str) -> str:
    """A daemon failure as a compositor reads it, with what to do next."""
    if isinstance(error, DaemonUnavailable):
        return (
            f"No RenderFlow daemon answers at {address}. Start one on the GPU machine with "
            "'rf-daemon start', or fix the address on the node."
        )
    advice = {
        wire.E_OUT_OF_MEMORY: "The GPU ran out of memory: render fewer frames at once, a smaller format, "
        "or press 'free GPU'.",
        wire.E_BAD_INPUT: "The daemon cannot use these images: ",
        wire.E_TOO_LARGE: "Too much for the daemon in one go: ",
        wire.E_CANCELLED: "Cancelled.",
        wire.E_MODEL_UNAVAILABLE: "The daemon has no usable model: ",
        wire.E_SHUTTING_DOWN: "The daemon is shutting down; render again once it is back.",
    }
    prefix = advice.get(error.code, "RenderFlow failed: ")
    return prefix + (error.message if prefix.endswith(": ") else "")
