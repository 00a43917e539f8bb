"""rf-render: render G-buffers with RenderFlow from a shell or a farm job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
from tqdm import tqdm

from renderflow.core import colour

if TYPE_CHECKING:
    from renderflow.core.aov_profiles import AovProfile
    from renderflow.core.exr import Layer
    from renderflow.core.pipeline import RenderFlowPipeline
    from renderflow.daemon.farm import Runner
    from renderflow.daemon.protocol import Payload

logger = logging.getLogger("renderflow.render")


def _default_device() -> str:
    """cuda where a GPU is, else cpu; a callable default, so that commands without --device (inspect)
    never import torch."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@click.group(
    epilog=(
        "Examples:\n\n  rf-render demo --out demo_out\n\n"
        "  rf-render import-wan ~/models/Wan2.1-T2V-1.3B-Diffusers ckpt/\n\n"
        "  rf-render inspect shot/gbuffers.1001.exr --profile auto\n\n"
        "  rf-render preview shot/gbuffers.####.exr --env sky.exr --out preview/beauty.####.exr\n\n"
        "  rf-render render shot/gb.####.exr --env sky.exr --frames 1001-1100 --out out/beauty.####.exr\n\n"
        "  rf-render render shot/gb.####.exr --env sky.exr --daemon tcp://gpu1:5557 --daemon tcp://gpu2:5557 "
        "--curve-server-key server.key --curve-client-key client.key_secret --out beauty.####.exr\n\n"
        "  rf-render decompose plate.####.exr --out intrinsics/plate.####.exr"
    ),
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Render G-buffers to scene-linear HDR beauty with RenderFlow."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_out"),
    show_default=True,
    help="Folder for beauty.####.exr and contact_sheet.png.",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="RenderFlow checkpoint folder (default: the bundled CPU model).",
)
@click.option("--frames", type=click.IntRange(1), help="Render only the first N frames of the clip (17).")
@click.option(
    "--steps",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Sampler steps (1 is the method; more is the diffusion-style baseline).",
)
@click.option(
    "--device",
    default=_default_device,
    show_default=True,
    help="Torch device.",
)
def demo(out: Path, checkpoint: Path | None, frames: int | None, steps: int, device: str) -> None:
    """Render the bundled demo clip (a held-out path-traced clip) with the bundled model.

    Writes scene-linear beauty EXRs and a contact sheet: inputs, render, path-traced reference, error.
    """
    from renderflow.core.demo import BUNDLED_MODEL, render_demo

    with tqdm(total=1, desc="chunks", unit="chunk", disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            written = render_demo(out, checkpoint or BUNDLED_MODEL, frames, steps, device, progress)
        except (OSError, ValueError) as error:
            raise click.ClickException(str(error)) from error
    for path in written:
        click.echo(str(path))


@main.command("import-wan")
@click.argument("wan_folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--v2/--paper",
    default=False,
    show_default=True,
    help="--v2: the choices of the bundled model v2 (exposure-normalised lighting, env brackets 0/-8 "
    "stops, the Deferred shading as bridge source, reprojected keyframes; docs/MODEL.md); --paper: "
    "the paper's model.",
)
def import_wan_command(wan_folder: Path, out: Path, v2: bool) -> None:
    """Turn a local Wan2.1-T2V diffusers folder (transformer/, vae/) into a RenderFlow checkpoint."""
    from renderflow.core.configs import MODEL_CONFIGS
    from renderflow.core.wan_import import import_wan

    try:
        pipeline = import_wan(wan_folder, spec=MODEL_CONFIGS["cpu-v2"] if v2 else None)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    pipeline.save_pretrained(out)
    click.echo(f"wrote {out}")


def _profile_options(function: Callable[..., None]) -> Callable[..., None]:
    """--profile, --aov, --aov-file, --colour-space, --camera, --fov: how to read G-buffer EXRs."""
    options = [
        click.option(
            "--profile",
            default="auto",
            show_default=True,
            help="AOV profile: auto, canonical, arnold, renderman, vray, cycles, karma, unreal or nuke.",
        ),
        click.option(
            "--aov",
            "aov_mappings",
            multiple=True,
            metavar="BUFFER=CHANNELS",
            help="Map a buffer to your channels, e.g. --aov normal=myN.X,myN.Y,myN.Z (repeatable).",
        ),
        click.option(
            "--aov-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="A studio profile in TOML (base, [channels], conventions); see docs/AOV_PROFILES.md.",
        ),
        click.option(
            "--colour-space",
            default="lin_rec709",
            show_default=True,
            help="Scene-linear space of the colour buffers (ACEScg, lin_rec709, ...; OCIO names).",
        ),
        click.option(
            "--camera",
            "camera_json",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="camera.json with per-frame camera-to-world matrices, for world-space normals without one "
            "in the header.",
        ),
        click.option("--fov", type=float, help="Vertical field of view in degrees, for ray-distance depth."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _env_options(function: Callable[..., None]) -> Callable[..., None]:
    """--env, --env-rotate, --env-flip, --exposure: the env map and how to orient and expose it."""
    options = [
        click.option(
            "--env",
            "envmap_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            required=True,
            help="Lat-long HDR env map (.exr; .hdr too without --daemon), world space, +Y up.",
        ),
        click.option(
            "--env-rotate", type=float, default=0.0, show_default=True, help="Env map yaw in degrees."
        ),
        click.option("--env-flip", is_flag=True, help="Mirror the env map left-right."),
        click.option(
            "--exposure", type=float, default=0.0, show_default=True, help="Env map exposure in stops."
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _build_profile(profile: str, aov_mappings: tuple[str, ...], aov_file: Path | None) -> AovProfile | str:
    from renderflow.core.aov_profiles import get_profile, load_profile_file, parse_aov_option, with_mapping

    base: AovProfile | str = load_profile_file(aov_file) if aov_file is not None else profile
    if not aov_mappings:
        return base
    if isinstance(base, str):
        if base == "auto":
            raise click.UsageError("--aov needs an explicit --profile (the base the mapping extends)")
        base = get_profile(base)
    return with_mapping(base, dict(parse_aov_option(text) for text in aov_mappings))


@main.command()
@click.argument("file")
@click.option(
    "--frame", type=int, help="Frame to inspect when FILE is a sequence pattern (default: the first)."
)
@_profile_options
def inspect(
    file: str,
    frame: int | None,
    profile: str,
    aov_mappings: tuple[str, ...],
    aov_file: Path | None,
    colour_space: str,
    camera_json: Path | None,
    fov: float | None,
) -> None:
    """Show an EXR's layers, the AOV profile and mapping RenderFlow would use, and value ranges.

    FILE is an EXR or a sequence pattern (shot.####.exr, shot.%04d.exr, shot.$F4.exr).
    """
    import numpy as np

    from renderflow.core.cameras import read_camera_json
    from renderflow.core.exr import read_exr
    from renderflow.core.gbuffer_io import convert_frame
    from renderflow.core.inspect_report import describe_file, describe_frame, describe_profile
    from renderflow.core.sequences import frame_path, sequence_files

    try:
        if frame is not None:
            number, path = frame, frame_path(file, frame)
        else:
            number, path = sequence_files(file)[0]
        image = read_exr(path)
        for line in describe_file(image):
            click.echo(line)
        chosen, lines = describe_profile(image, _build_profile(profile, aov_mappings, aov_file))
        for line in lines:
            click.echo(line)
        world_to_camera, camera_source = None, "from the header"
        if camera_json is not None:
            track = read_camera_json(camera_json)
            index = track.frames.index(number) if number in track.frames else 0
            world_to_camera, camera_source = track.world_to_camera_rotation(index), f"from {camera_json}"
        canonical = convert_frame(image, chosen, colour_space, world_to_camera, fov)
        with np.errstate(invalid="ignore"):
            for line in describe_frame(canonical, camera_source):
                click.echo(line)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.argument("gbuffers")
@_env_options
@click.option("--out", required=True, help="Output pattern, e.g. preview/beauty.####.exr.")
@click.option("--frames", help="Frame range in fileseq syntax, e.g. 1001-1100 or 1001-1100x2.")
@click.option(
    "--method",
    type=click.Choice(["deferred", "ibl"]),
    default="deferred",
    show_default=True,
    help="deferred: diffuse + GGX split-sum specular; ibl: SH diffuse only.",
)
@_profile_options
def preview(
    gbuffers: str,
    envmap_path: Path,
    out: str,
    frames: str | None,
    method: str,
    env_rotate: float,
    env_flip: bool,
    exposure: float,
    profile: str,
    aov_mappings: tuple[str, ...],
    aov_file: Path | None,
    colour_space: str,
    camera_json: Path | None,
    fov: float | None,
) -> None:
    """Fast preview without the network: the Deferred or IBL baseline from the same inputs.

    GBUFFERS is a sequence pattern (shot.####.exr); the beauty is written per frame to OUT, in the
    G-buffers' colour space, scene-linear HDR. No shadows: a look-dev check, not a render.
    """
    from renderflow.core import colour
    from renderflow.core.baselines import render_baseline
    from renderflow.core.envmap import EnvTransform
    from renderflow.core.exr import write_exr
    from renderflow.core.sequences import frame_path, has_frame_token
    from renderflow.core.shot import read_shot, shot_envmaps

    try:
        shot = read_shot(
            gbuffers, frames, _build_profile(profile, aov_mappings, aov_file), colour_space, camera_json, fov
        )
        envmap_cam = shot_envmaps(
            shot, envmap_path, colour_space, EnvTransform(env_rotate, env_flip, exposure)
        )
        if len(shot.sequence.frames) > 1 and not has_frame_token(out):
            raise click.UsageError(f"--out {out!r} needs a frame token (####) for a sequence")
        beauty = render_baseline(method, shot.sequence.gbuffers, envmap_cam, shot.vertical_fov_degrees)
        for number, image in tqdm(
            list(zip(shot.sequence.frames, beauty, strict=True)), desc="frames", disable=None
        ):
            path = Path(frame_path(out, number) if number is not None else out)
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = colour.from_model(image, colour_space)
            write_exr(path, pixels, ["R", "G", "B"], attributes={"renderflow/preview": method})
            click.echo(str(path))
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def _runner_options(function: Callable[..., None]) -> Callable[..., None]:
    """Where the work runs: --daemon (repeatable), its keys, or in process with --checkpoint/--device."""
    options = [
        click.option(
            "--daemon",
            "daemons",
            multiple=True,
            metavar="ADDRESS",
            help="Render on rf-daemon at ADDRESS (tcp://host:5557); repeat to share the frames between "
            "several daemons. Without it, rf-render loads the model itself.",
        ),
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
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=15.0,
            show_default=True,
            help="Seconds of silence after which a daemon counts as gone (it sends keep-alives each second).",
        ),
        click.option(
            "--checkpoint",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="RenderFlow checkpoint folder for in-process rendering (default: the bundled CPU model).",
        ),
        click.option(
            "--device",
            default=_default_device,
            show_default=True,
            help="Torch device for in-process rendering.",
        ),
        click.option("--frames", help="Frame range in fileseq syntax, e.g. 1001-1100 or 1001-1100x2."),
        click.option("--skip-existing", is_flag=True, help="Leave frames whose output file exists alone."),
        click.option(
            "--batch-frames",
            type=click.IntRange(1),
            help="Frames per job (default: the range split evenly between the daemons, all in process).",
        ),
        click.option(
            "--steps",
            type=click.IntRange(1, 100),
            default=1,
            show_default=True,
            help="Sampler steps (1 is the method).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _runners(
    daemons: tuple[str, ...],
    curve_server_key: Path | None,
    curve_client_key: Path | None,
    timeout: float,
    checkpoint: Path | None,
    device: str,
) -> list[Runner]:
    from renderflow.daemon.client import CurveKeys, DaemonClient

    if not daemons:
        from renderflow.core.demo import BUNDLED_MODEL
        from renderflow.daemon.farm import LocalRunner

        return [LocalRunner(checkpoint or BUNDLED_MODEL, device)]
    if (curve_server_key is None) != (curve_client_key is None):
        raise click.UsageError("--curve-server-key and --curve-client-key go together")
    curve = None
    if curve_server_key is not None and curve_client_key is not None:
        curve = CurveKeys.from_files(curve_server_key, curve_client_key)
    return [DaemonClient(address, timeout_s=timeout, curve=curve) for address in daemons]


def _run_frames(
    op: str,
    params: dict[str, object],
    files: list[tuple[int, Path]],
    out: str,
    runners: list[Runner],
    payloads_for: Callable[[list[int]], list[Payload]],
    skip_existing: bool,
    batch_frames: int | None,
) -> None:
    """Batch the frames, run them, report; a ClickException (exit 1) if any frame failed."""
    from renderflow.core.sequences import frame_path, has_frame_token
    from renderflow.daemon.farm import plan_batches, run_batches
    from renderflow.daemon.protocol import Limits

    if len(files) > 1 and not has_frame_token(out):
        raise click.UsageError(f"--out {out!r} needs a frame token (####) for a sequence")

    def output_for(frame: int) -> Path:
        return frame_path(out, frame) if has_frame_token(out) else Path(out)

    frames = [frame for frame, _ in files if not (skip_existing and output_for(frame).exists())]
    if len(frames) < len(files):
        click.echo(f"skipping {len(files) - len(frames)} frame(s) whose output exists")
    if not frames:
        return
    per_job = batch_frames or min(-(-len(frames) // len(runners)), Limits().max_frames)
    with tqdm(total=len(frames), desc=op, unit="frame", disable=None) as bar:
        outcome = run_batches(
            runners, op, params, plan_batches(frames, per_job), payloads_for, output_for, bar.update
        )
    for path in sorted(outcome.written):
        click.echo(str(path))
    if outcome.failed:
        reasons = sorted(set(outcome.failed.values()))
        raise click.ClickException(
            f"{len(outcome.failed)} of {len(frames)} frame(s) failed "
            f"({min(outcome.failed)}-{max(outcome.failed)}): {'; '.join(reasons)}"
        )


def _numbered(files: list[tuple[int | None, Path]]) -> list[tuple[int, Path]]:
    """Frame numbers of a sequence; a single file without a frame token is frame 1."""
    return [(1 if frame is None else frame, path) for frame, path in files]


@main.command()
@click.argument("gbuffers")
@_env_options
@click.option("--out", required=True, help="Output pattern, e.g. render/beauty.####.exr.")
@click.option("--keyframes", help="Path-traced beauty EXRs (pattern) to guide the render where they exist.")
@click.option(
    "--aovs",
    multiple=True,
    type=click.Choice(["alpha", "albedo", "normal", "depth", "roughness", "metallic", "specular"]),
    help="G-buffer layers to write beside the beauty (repeatable).",
)
@_profile_options
@_runner_options
def render(
    gbuffers: str,
    envmap_path: Path,
    out: str,
    keyframes: str | None,
    aovs: tuple[str, ...],
    env_rotate: float,
    env_flip: bool,
    exposure: float,
    profile: str,
    aov_mappings: tuple[str, ...],
    aov_file: Path | None,
    colour_space: str,
    camera_json: Path | None,
    fov: float | None,
    **runner: Any,
) -> None:
    """Render G-buffer EXRs (any AOV profile) under an env map to scene-linear beauty EXRs.

    GBUFFERS is a sequence pattern (shot.####.exr). Runs in process, or on one or more rf-daemons
    with --daemon. Exit code 1 if any frame failed; the frames that rendered are kept.
    """
    import json

    from renderflow.core.aov_profiles import parse_aov_option
    from renderflow.core.sequences import frame_path, has_frame_token, sequence_files
    from renderflow.daemon.client import render_payloads

    params: dict[str, object] = {
        "profile": profile,
        "colour_space": colour_space,
        "env_rotate": env_rotate,
        "env_flip": env_flip,
        "exposure": exposure,
        "steps": runner["steps"],
        "aovs": list(aovs),
    }
    if aov_mappings:
        params["aov"] = {buffer: list(names) for buffer, names in map(parse_aov_option, aov_mappings)}
    if aov_file is not None:
        params["aov_profile_toml"] = aov_file.read_text()
    if camera_json is not None:
        params["camera"] = json.loads(camera_json.read_text())
    if fov is not None:
        params["fov"] = fov
    try:
        files = _numbered(sequence_files(gbuffers, runner["frames"]))
        by_frame = dict(files)

        def payloads_for(batch: list[int]) -> list[Payload]:
            keys = []
            if keyframes is not None and has_frame_token(keyframes):
                keys = [(frame, frame_path(keyframes, frame)) for frame in batch]
                keys = [(frame, path) for frame, path in keys if path.is_file()]
            return render_payloads([(frame, by_frame[frame]) for frame in batch], envmap_path, keys)

        runners = _runners(*(runner[key] for key in _RUNNER_KEYS))
        _run_frames(
            "render",
            params,
            files,
            out,
            runners,
            payloads_for,
            runner["skip_existing"],
            runner["batch_frames"],
        )
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.argument("plate")
@click.option(
    "--out", required=True, help="Output pattern, e.g. intrinsics/plate.####.exr (one EXR per frame)."
)
@click.option(
    "--targets",
    multiple=True,
    type=click.Choice(["albedo", "normal", "depth", "roughness", "metallic"]),
    help="Intrinsics to write (repeatable; default all five).",
)
@click.option("--layer", default="", help="The plate's layer in the EXR (default: the unprefixed R, G, B).")
@click.option(
    "--colour-space",
    default="lin_rec709",
    show_default=True,
    help="Scene-linear space of the plate and of the albedo written (OCIO names).",
)
@_runner_options
def decompose(
    plate: str, out: str, targets: tuple[str, ...], layer: str, colour_space: str, **runner: Any
) -> None:
    """Decompose a plate (scene-linear EXRs) into albedo, normal, depth, roughness and metallic layers.

    Writes one EXR per frame with canonical layers (albedo, N, depth, roughness, metallic); depth is
    relative (nearest 1). Runs in process or on rf-daemons (--daemon). Exit code 1 if any frame failed.
    """
    from renderflow.core.sequences import sequence_files
    from renderflow.daemon.client import decompose_payloads

    params: dict[str, object] = {"colour_space": colour_space, "layer": layer, "steps": runner["steps"]}
    if targets:
        params["targets"] = list(targets)
    try:
        files = _numbered(sequence_files(plate, runner["frames"]))
        by_frame = dict(files)
        runners = _runners(*(runner[key] for key in _RUNNER_KEYS))
        _run_frames(
            "decompose",
            params,
            files,
            out,
            runners,
            lambda batch: decompose_payloads([(frame, by_frame[frame]) for frame in batch]),
            runner["skip_existing"],
            runner["batch_frames"],
        )
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


_RUNNER_KEYS = ("daemons", "curve_server_key", "curve_client_key", "timeout", "checkpoint", "device")


# -- workflows (issue #9): in process, on the model given by --checkpoint ------------------------------
def _workflow_options(function: Callable[..., None]) -> Callable[..., None]:
    """--checkpoint, --device, --frames, --steps, --colour-space for the workflow commands."""
    options = [
        click.option(
            "--checkpoint",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="RenderFlow checkpoint folder (default: the bundled CPU model).",
        ),
        click.option("--device", default=_default_device, show_default=True),
        click.option("--frames", help="Frame range in fileseq syntax, e.g. 1001-1100."),
        click.option(
            "--steps", type=click.IntRange(1, 100), default=1, show_default=True, help="Sampler steps."
        ),
        click.option(
            "--colour-space",
            default="lin_rec709",
            show_default=True,
            help="Scene-linear space of plates and outputs.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _pipeline(checkpoint: Path | None, device: str) -> RenderFlowPipeline:
    from renderflow.core.demo import BUNDLED_MODEL
    from renderflow.core.pipeline import RenderFlowPipeline

    return RenderFlowPipeline.from_pretrained(checkpoint or BUNDLED_MODEL, device=device)


def _write_frames(
    out: str, numbers: list[int | None], layers_per_frame: list[list[Layer]], colour_space: str
) -> None:
    from renderflow.core.exr import write_layers
    from renderflow.core.sequences import frame_path, has_frame_token

    if len(numbers) > 1 and not has_frame_token(out):
        raise click.UsageError(f"--out {out!r} needs a frame token (####) for a sequence")
    for number, layers in zip(numbers, layers_per_frame, strict=True):
        path = frame_path(out, number) if number is not None else Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_layers(path, layers, {"renderflow/colour_space": colour_space})
        click.echo(str(path))


@main.command()
@click.argument("plate")
@click.option(
    "--env",
    "envmaps",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A new lat-long HDR env map (repeatable: the plate is decomposed once for all of them).",
)
@click.option(
    "--out", required=True, help="Output pattern; with several --env it needs {env}: relit/{env}.####.exr."
)
@click.option("--layer", default="", help="The plate's layer (default: the unprefixed R, G, B).")
@click.option("--env-rotate", type=float, default=0.0, show_default=True, help="Env map yaw in degrees.")
@click.option("--exposure", type=float, default=0.0, show_default=True, help="Env map exposure in stops.")
@_workflow_options
def relight(
    plate: str,
    envmaps: tuple[Path, ...],
    out: str,
    layer: str,
    env_rotate: float,
    exposure: float,
    **options: Any,
) -> None:
    """Relight a plate: decompose it into G-buffers once, render them under each new env map."""
    from renderflow.core.envmap import EnvTransform
    from renderflow.core.exr import Layer
    from renderflow.core.shot import plate_envmaps, read_plate
    from renderflow.core.workflows import relight as relight_plate

    if len(envmaps) > 1 and "{env}" not in out:
        raise click.UsageError("several --env maps need {env} in --out, e.g. relit/{env}.####.exr")
    try:
        numbers, plate_linear = read_plate(plate, options["frames"], layer, options["colour_space"])
        transform = EnvTransform(env_rotate, False, exposure)
        height = plate_linear.shape[1]
        envs = [
            plate_envmaps(path, len(numbers), height, options["colour_space"], transform) for path in envmaps
        ]
        pipeline = _pipeline(options["checkpoint"], options["device"])
        _, renders = relight_plate(pipeline, plate_linear, envs, options["steps"])
        for path, beauty in zip(envmaps, renders, strict=True):
            layers = [
                [Layer("", colour.from_model(frame, options["colour_space"]), "RGB")] for frame in beauty
            ]
            _write_frames(out.replace("{env}", path.stem), numbers, layers, options["colour_space"])
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.argument("plate")
@click.option(
    "--object",
    "object_gbuffers",
    required=True,
    help="The object's G-buffer EXRs (any AOV profile, with alpha).",
)
@click.option(
    "--env", "envmap_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--plate-gbuffers", help="The plate's own G-buffers (a CG plate): depth-tested merge, no decomposition."
)
@click.option("--alpha-channel", default="A", show_default=True, help="The object's coverage channel.")
@click.option("--out", required=True, help="Output pattern: comp RGBA, and layers render and ratio.")
@click.option("--profile", default="auto", show_default=True, help="AOV profile of the G-buffer EXRs.")
@click.option("--env-rotate", type=float, default=0.0, show_default=True, help="Env map yaw in degrees.")
@_workflow_options
def insert(
    plate: str,
    object_gbuffers: str,
    envmap_path: Path,
    plate_gbuffers: str | None,
    alpha_channel: str,
    out: str,
    profile: str,
    env_rotate: float,
    **options: Any,
) -> None:
    """Insert a CG object into a plate: re-render with and without it, and the ratio for the comp.

    Writes per frame: R, G, B = plate × ratio with the rendered object over it, A = the object's
    coverage, layer `render` = the re-rendered frame with the object, layer `ratio` = with / without
    (multiply it onto your plate: untouched pixels stay exactly the plate's).
    """
    from renderflow.core.envmap import EnvTransform
    from renderflow.core.exr import Layer
    from renderflow.core.gbuffer_io import read_sequence
    from renderflow.core.shot import plate_envmaps, read_channel, read_plate
    from renderflow.core.workflows import gbuffers_from_intrinsics, insert_object

    space = options["colour_space"]
    try:
        numbers, plate_linear = read_plate(plate, options["frames"], "", space)
        obj = read_sequence(object_gbuffers, options["frames"], profile, space).gbuffers
        alpha = read_channel(object_gbuffers, options["frames"], alpha_channel)
        pipeline = _pipeline(options["checkpoint"], options["device"])
        if plate_gbuffers is not None:
            under = read_sequence(plate_gbuffers, options["frames"], profile, space).gbuffers
        else:
            logger.info(
                "no --plate-gbuffers: decomposing the plate; the object goes in front wherever it covers"
            )
            under = gbuffers_from_intrinsics(pipeline.decompose(plate_linear, steps=options["steps"]))
        env = plate_envmaps(envmap_path, len(numbers), plate_linear.shape[1], space, EnvTransform(env_rotate))
        result = insert_object(
            pipeline, plate_linear, under, obj, alpha, env, options["steps"], plate_gbuffers is not None
        )
        layers = [
            [
                Layer("", np.concatenate([colour.from_model(comp, space), coverage], axis=-1), "RGBA"),
                Layer("render", colour.from_model(render, space), "RGB"),
                Layer("ratio", ratio, "RGB", half=False),
            ]
            for comp, coverage, render, ratio in zip(
                result.comp, result.coverage, result.with_object, result.ratio, strict=True
            )
        ]
        _write_frames(out, numbers, layers, space)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def _value_or_sweep(text: str | None, channels: int) -> Any:
    """ "0.2" -> 0.2; "1:0" -> (1.0, 0.0); "0.1,0.2,0.8" and "0,0,1:0,1,0" for colours."""
    if text is None:
        return None
    try:
        parts = [tuple(float(v) for v in part.split(",")) for part in text.split(":")]
    except ValueError as error:
        raise click.BadParameter(f"{text!r}: expected numbers, e.g. 0.2, 1:0 or 0.1,0.2,0.8") from error
    if any(len(part) != channels for part in parts) or len(parts) > 2:
        raise click.BadParameter(f"{text!r}: expected {channels} value(s), or start:end")
    values = [part[0] if channels == 1 else part for part in parts]
    return values[0] if len(values) == 1 else tuple(values)


@main.command()
@click.argument("gbuffers")
@_env_options
@click.option("--mask", "mask_pattern", required=True, help="EXRs with the object's mask (or ids).")
@click.option(
    "--mask-channel", default="A", show_default=True, help="The mask's channel (or an object-id channel)."
)
@click.option("--mask-id", type=float, help="With an object-id channel: the id of the object to edit.")
@click.option("--roughness", help="New roughness inside the mask: 0.2, or a sweep over the frames 1:0.")
@click.option("--metallic", help="New metallic: 1, or a sweep 0:1.")
@click.option("--specular", help="New specular: 0.5, or a sweep.")
@click.option("--albedo", help="New linear albedo: 0.1,0.2,0.8, or a sweep 0,0,1:0,1,0.")
@click.option("--out", required=True, help="Output pattern, e.g. edit/beauty.####.exr.")
@click.option("--profile", default="auto", show_default=True, help="AOV profile of the G-buffer EXRs.")
@click.option(
    "--camera",
    "camera_json",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="camera.json.",
)
@_workflow_options
def edit(
    gbuffers: str,
    envmap_path: Path,
    env_rotate: float,
    env_flip: bool,
    exposure: float,
    mask_pattern: str,
    mask_channel: str,
    mask_id: float | None,
    roughness: str | None,
    metallic: str | None,
    specular: str | None,
    albedo: str | None,
    out: str,
    profile: str,
    camera_json: Path | None,
    **options: Any,
) -> None:
    """Edit materials inside a mask and re-render: constant values or sweeps over the frames (appendix C)."""
    from renderflow.core.envmap import EnvTransform
    from renderflow.core.exr import Layer
    from renderflow.core.shot import read_channel, read_shot, shot_envmaps
    from renderflow.core.workflows import MaterialEdit, edit_materials

    change = MaterialEdit(
        _value_or_sweep(roughness, 1),
        _value_or_sweep(metallic, 1),
        _value_or_sweep(specular, 1),
        _value_or_sweep(albedo, 3),
    )
    if change == MaterialEdit():
        raise click.UsageError("nothing to edit: give --roughness, --metallic, --specular or --albedo")
    space = options["colour_space"]
    try:
        shot = read_shot(gbuffers, options["frames"], profile, space, camera_json)
        mask = read_channel(mask_pattern, options["frames"], mask_channel)
        if mask_id is not None:
            mask = (mask == mask_id).astype(np.float32)
        edited = edit_materials(shot.sequence.gbuffers, mask, change)
        env = shot_envmaps(shot, envmap_path, space, EnvTransform(env_rotate, env_flip, exposure))
        beauty = _pipeline(options["checkpoint"], options["device"]).render(
            edited, env, steps=options["steps"], vertical_fov_degrees=shot.vertical_fov_degrees
        )
        layers = [[Layer("", colour.from_model(frame, space), "RGB")] for frame in beauty]
        _write_frames(out, list(shot.sequence.frames), layers, space)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
