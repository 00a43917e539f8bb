"""The command-line options RenderFlow's CLIs share, each defined once (rf-render, rf-daemon,
rf-train, rf-eval stack them by name). click only: importing this never imports torch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

Command = TypeVar("Command", bound=Callable[..., Any])

PROFILE_NAMES = "auto, canonical, arnold, renderman, vray, cycles, karma, unreal or nuke"


def default_device() -> str:
    """cuda where a GPU is, else cpu; a callable default, so that commands without --device never
    import torch."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def stacked(*options: Callable[[Command], Command]) -> Callable[[Command], Command]:
    """Several options as one decorator, in the order given (the order --help lists them)."""

    def decorate(function: Command) -> Command:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def folder_option(
    name: str, what: str, exists: bool = True, required: bool = False
) -> Callable[[Command], Command]:
    """An option naming a folder (that must exist unless `exists` is False)."""
    return click.option(
        name, type=click.Path(exists=exists, file_okay=False, path_type=Path), required=required, help=what
    )


def seconds_option(name: str, default: float, minimum: float, what: str) -> Callable[[Command], Command]:
    """An option counting seconds, with a floor."""
    return click.option(
        name, type=click.FloatRange(min=minimum), default=default, show_default=True, help=what
    )


verbose_option = click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
CHECKPOINT_HELP = "RenderFlow checkpoint folder (default: the bundled CPU model)."
checkpoint_option = folder_option("--checkpoint", CHECKPOINT_HELP)
device_option = click.option(
    "--device",
    default=default_device,
    show_default="cuda if available, else cpu",
    help="Torch device: cpu, cuda, cuda:1, ...",
)
frames_option = click.option("--frames", help="Frame range in fileseq syntax, e.g. 1001-1100 or 1001-1100x2.")
steps_option = click.option(
    "--steps",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Sampler steps (1 is the method; more is the diffusion-style baseline).",
)
colour_space_option = click.option(
    "--colour-space",
    default="lin_rec709",
    show_default=True,
    help="Scene-linear space of the colour buffers, plates and outputs (OCIO names: ACEScg, "
    "lin_rec709, ...).",
)
profile_option = click.option(
    "--profile", default="auto", show_default=True, help=f"AOV profile of the EXRs: {PROFILE_NAMES}."
)
fov_option = click.option(
    "--fov", type=float, help="Vertical field of view in degrees (overrides the camera's)."
)
view_option = click.option(
    "--view",
    help="The view to read from multi-view (stereo) EXRs: left, right, ... (files without views serve "
    "every view).",
)
camera_option = click.option(
    "--camera",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The shot's cameras: camera.json, a Nuke .chan or a USD file (docs/CAMERAS.md); default: the EXR "
    "headers.",
)
env_rotate_option = click.option(
    "--env-rotate", type=float, default=0.0, show_default=True, help="Env map yaw in degrees."
)
exposure_option = click.option(
    "--exposure", type=float, default=0.0, show_default=True, help="Env map exposure in stops."
)


def data_option(what: str) -> Callable[[Command], Command]:
    """--data: a dataset folder (clip folders; rf-train synth writes them)."""
    return folder_option("--data", what, required=True)


def out_pattern_option(example: str) -> Callable[[Command], Command]:
    """--out: where a command writes its frames (an EXR pattern with a frame token)."""
    return click.option("--out", required=True, help=f"Output pattern, e.g. {example}.")


def env_option(**extra: Any) -> Callable[[Command], Command]:
    """--env: a lat-long HDR env map (world space, +Y up)."""
    settings: dict[str, Any] = {
        "help": "Lat-long HDR env map (.exr; .hdr too without --daemon), world space, +Y up.",
        **extra,
    }
    return click.option(
        "--env",
        "envmap_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        **settings,
    )


env_options = stacked(
    env_option(),
    env_rotate_option,
    click.option("--env-flip", is_flag=True, help="Mirror the env map left-right."),
    exposure_option,
)

# How to read G-buffer EXRs (rf-render gathers them into core's ReadOptions).
read_options = stacked(
    profile_option,
    click.option(
        "--aov",
        "aov_mappings",
        multiple=True,
        metavar="BUFFER=CHANNELS",
        help="Map a buffer to your channels, e.g. --aov normal=myN.X,myN.Y,myN.Z, or to its own files, "
        "--aov normal=passes/Normal.####.exr (repeatable; needs --profile).",
    ),
    click.option(
        "--aov-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A studio profile in TOML (base, [channels], conventions); see docs/AOV_PROFILES.md.",
    ),
    colour_space_option,
    camera_option,
    click.option("--camera-prim", help="The USD camera's prim path, when the stage has several."),
    fov_option,
    view_option,
)
READ_OPTION_KEYS = (
    "profile",
    "aov_mappings",
    "aov_file",
    "colour_space",
    "camera",
    "camera_prim",
    "fov",
    "view",
)

# A client's CurveZMQ keys, for daemons beyond 127.0.0.1 (rf-daemon keys makes them).
curve_client_options = stacked(
    click.option(
        "--curve-server-key",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The daemon's public key (server.key from rf-daemon keys), for daemons beyond 127.0.0.1.",
    ),
    click.option(
        "--curve-client-key",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="This client's secret key (client.key_secret from rf-daemon keys).",
    ),
)

# Where rf-render's work runs: on daemons, or in process.
runner_options = stacked(
    click.option(
        "--daemon",
        "daemons",
        multiple=True,
        metavar="ADDRESS",
        help="Render on rf-daemon at ADDRESS (tcp://host:5557); repeat to share the frames between "
        "several daemons. Without it, rf-render loads the model itself.",
    ),
    curve_client_options,
    seconds_option(
        "--timeout",
        15.0,
        0.1,
        "Seconds of silence after which a daemon counts as gone (it sends keep-alives each second).",
    ),
    checkpoint_option,
    device_option,
    frames_option,
    click.option("--skip-existing", is_flag=True, help="Leave frames whose output file exists alone."),
    click.option(
        "--batch-frames",
        type=click.IntRange(1),
        help="Frames per job (default: the range split evenly between the daemons, all in process).",
    ),
    steps_option,
)

# The workflow commands (relight, insert, edit): in process, on plates.
workflow_options = stacked(checkpoint_option, device_option, frames_option, steps_option, colour_space_option)
