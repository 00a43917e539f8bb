"""rf-render: render G-buffers with RenderFlow from a shell or a farm job."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
from tqdm import tqdm

from renderflow.core.io import colour

if TYPE_CHECKING:
    from collections.abc import Mapping

    from renderflow.core.io.aov_profiles import AovProfile, PassFile
    from renderflow.core.io.exr import Layer
    from renderflow.core.model.pipeline import RenderFlowPipeline
    from renderflow.core.shot.reading import ReadOptions
    from renderflow.core.shot.rendering import OutputFrame
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
    from renderflow.core.shot.demo import BUNDLED_MODEL, render_demo

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
    from renderflow.core.model.configs import MODEL_CONFIGS
    from renderflow.core.model.wan_import import import_wan

    try:
        pipeline = import_wan(wan_folder, spec=MODEL_CONFIGS["cpu-v2"] if v2 else None)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    pipeline.save_pretrained(out)
    click.echo(f"wrote {out}")


def _profile_options(function: Callable[..., None]) -> Callable[..., None]:
    """--profile, --aov, --aov-file, --colour-space, --camera, --camera-prim, --fov: how to read
    G-buffer EXRs (gathered into ReadOptions by `_read_options`)."""
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
            help="Map a buffer to your channels, e.g. --aov normal=myN.X,myN.Y,myN.Z, or to its own files, "
            "--aov normal=passes/Normal.####.exr (repeatable; needs --profile).",
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
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="The shot's cameras: camera.json, a Nuke .chan or a USD file (docs/CAMERAS.md); default: "
            "the EXR headers.",
        ),
        click.option("--camera-prim", help="The USD camera's prim path, when the stage has several."),
        click.option("--fov", type=float, help="Vertical field of view in degrees (overrides the camera's)."),
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


READ_OPTION_KEYS = ("profile", "aov_mappings", "aov_file", "colour_space", "camera", "camera_prim", "fov")


def _read_options(
    profile: str,
    aov_mappings: tuple[str, ...],
    aov_file: Path | None,
    colour_space: str,
    camera: Path | None,
    camera_prim: str | None,
    fov: float | None,
) -> ReadOptions:
    """The profile options as core's ReadOptions: a built-in or studio profile, channel mappings and
    per-pass files, colour space, camera file, fov."""
    from renderflow.core.io.aov_profiles import (
        PassFile,
        get_profile,
        load_profile_file,
        parse_aov_option,
        with_mapping,
    )
    from renderflow.core.shot.reading import ReadOptions

    base: AovProfile | str = load_profile_file(aov_file) if aov_file is not None else profile
    mapping, pass_files = {}, {}
    for buffer, target in map(parse_aov_option, aov_mappings):
        if isinstance(target, PassFile):
            pass_files[buffer] = target
        else:
            mapping[buffer] = target
    if aov_mappings and base == "auto":
        raise click.UsageError("--aov needs an explicit --profile (the base the mapping extends)")
    if mapping:
        base = with_mapping(get_profile(base) if isinstance(base, str) else base, mapping)
    return ReadOptions(base, pass_files, colour_space, camera, camera_prim, fov)


@main.command()
@click.argument("file")
@click.option(
    "--frame", type=int, help="Frame to inspect when FILE is a sequence pattern (default: the first)."
)
@_profile_options
def inspect(file: str, frame: int | None, **reading: Any) -> None:
    """Show an EXR's layers, the AOV profile and mapping RenderFlow would use, and value ranges.

    FILE is an EXR or a sequence pattern (shot.####.exr, shot.%04d.exr, shot.$F4.exr). Any damaged,
    deep or unusable file ends with a one-line error (exit code 1).
    """
    import numpy as np

    from renderflow.core.io.aov_profiles import with_mapping
    from renderflow.core.io.camera_files import read_camera
    from renderflow.core.io.exr import read_exr
    from renderflow.core.io.gbuffer_io import convert_frame, with_pass_files
    from renderflow.core.io.sequences import frame_path, sequence_files
    from renderflow.core.shot.inspect_report import describe_file, describe_frame, describe_profile

    try:
        options = _read_options(**reading)
        if frame is not None:
            number, path = frame, frame_path(file, frame)
        else:
            number, path = sequence_files(file)[0]
        image = read_exr(path)
        for line in describe_file(image):
            click.echo(line)
        chosen, lines = describe_profile(image, options.profile)
        for line in lines:
            click.echo(line)
        world_to_camera, camera_source = None, "from the header"
        if options.pass_files:
            image, mapping = with_pass_files(image, options.pass_files, number)
            chosen = with_mapping(chosen, mapping)
        if options.camera is not None:
            height, width = image.pixels.shape[:2]
            numbers = [1 if number is None else number]
            track = read_camera(options.camera, numbers, width / height, options.camera_prim)
            index = track.frames.index(numbers[0]) if numbers[0] in track.frames else 0
            world_to_camera, camera_source = track.world_to_camera_rotation(index), f"from {options.camera}"
        canonical = convert_frame(
            image, chosen, options.colour_space, world_to_camera, options.vertical_fov_degrees
        )
        with np.errstate(invalid="ignore"):
            for line in describe_frame(canonical, camera_source):
                click.echo(line)
    except (OSError, ValueError) as error:
        raise click.ClickException(_one_line(error)) from error


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


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
    **reading: Any,
) -> None:
    """Fast preview without the network: the Deferred or IBL baseline from the same inputs.

    GBUFFERS is a sequence pattern (shot.####.exr); the beauty is written per frame to OUT like a
    render (docs/OUTPUTS.md), scene-linear HDR. No shadows: a look-dev check, not a render.
    """
    from renderflow.core.io.envmap import EnvTransform
    from renderflow.core.io.outputs import check_output_pattern
    from renderflow.core.shading.deferred import render_baseline
    from renderflow.core.shot.reading import read_shot, shot_envmaps
    from renderflow.core.shot.rendering import RenderSettings, render_frames

    try:
        options = _read_options(**reading)
        shot = read_shot(gbuffers, frames, options)
        check_output_pattern(out, len(shot.frames))
        settings = RenderSettings(env_transform=EnvTransform(env_rotate, env_flip, exposure))
        envmap_cam = shot_envmaps(shot, envmap_path, options.colour_space, settings.env_transform)
        beauty = render_baseline(method, shot.sequence.gbuffers, envmap_cam, shot.vertical_fov_degrees)
        outputs = render_frames(shot, beauty, settings, options.colour_space)
        for frame in outputs:
            frame.attributes["renderflow/preview"] = method
        _write_outputs(out, outputs)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def _write_outputs(out: str, frames: list[OutputFrame], done: int = 0, total: int | None = None) -> None:
    """Write each frame atomically and say so, one line per frame (what farm logs show)."""
    from renderflow.core.io.outputs import output_path, write_frame

    total = total or len(frames)
    for count, frame in enumerate(frames, done + 1):
        path = write_frame(output_path(out, frame.frame), frame.layers, frame.attributes)
        logger.info("frame %d written: %s (%d/%d)", frame.frame, path, count, total)
        click.echo(str(path))


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


def _daemon_runners(
    daemons: tuple[str, ...], curve_server_key: Path | None, curve_client_key: Path | None, timeout: float
) -> list[Runner]:
    from renderflow.daemon.client import CurveKeys, DaemonClient

    if (curve_server_key is None) != (curve_client_key is None):
        raise click.UsageError("--curve-server-key and --curve-client-key go together")
    curve = None
    if curve_server_key is not None and curve_client_key is not None:
        curve = CurveKeys.from_files(curve_server_key, curve_client_key)
    return [DaemonClient(address, timeout_s=timeout, curve=curve) for address in daemons]


def _run_on_daemons(
    op: str,
    params: dict[str, object],
    frames: list[int],
    out: str,
    runner: dict[str, Any],
    payloads_for: Callable[[list[int]], list[Payload]],
) -> None:
    """Batch the frames over the daemons, write what comes back; a ClickException (exit 1) if any failed."""
    from renderflow.core.io.outputs import output_path
    from renderflow.daemon.farm import plan_batches, run_batches
    from renderflow.daemon.protocol import Limits

    daemons = _daemon_runners(
        *(runner[key] for key in ("daemons", "curve_server_key", "curve_client_key", "timeout"))
    )
    per_job = runner["batch_frames"] or min(-(-len(frames) // len(daemons)), Limits().max_frames)
    done = [0]

    def frames_done(count: int) -> None:
        done[0] += count
        bar.update(count)
        logger.info("%d/%d frames done", done[0], len(frames))

    with tqdm(total=len(frames), desc=op, unit="frame", disable=None) as bar:
        outcome = run_batches(
            daemons,
            op,
            params,
            plan_batches(frames, per_job),
            payloads_for,
            lambda f: output_path(out, f),
            frames_done,
        )
    for path in sorted(outcome.written):
        click.echo(str(path))
    _fail_if(outcome.failed, len(frames))


def _fail_if(failed: dict[int, str], total: int) -> None:
    if failed:
        reasons = sorted(set(failed.values()))
        raise click.ClickException(
            f"{len(failed)} of {total} frame(s) failed ({min(failed)}-{max(failed)}): {'; '.join(reasons)}"
        )


def _frames_to_do(files: list[tuple[int | None, Path]], out: str, skip_existing: bool) -> list[int]:
    """The frames to render (a file without a frame number is frame 1), less those already written."""
    from renderflow.core.io.outputs import check_output_pattern, output_path

    numbers = [1 if frame is None else frame for frame, _ in files]
    check_output_pattern(out, len(numbers))
    todo = [frame for frame in numbers if not (skip_existing and output_path(out, frame).exists())]
    if len(todo) < len(numbers):
        click.echo(f"skipping {len(numbers) - len(todo)} frame(s) whose output exists")
    return todo


def _in_process(
    op: str,
    frames: list[int],
    runner: dict[str, Any],
    out: str,
    work: Callable[[RenderFlowPipeline, list[int]], list[OutputFrame]],
) -> None:
    """Run `work(pipeline, frame list)` batch by batch (bounded memory) and write each batch's frames.

    A batch that fails is reported and the others go on; exit code 1 if any failed.
    """
    pipeline = _pipeline(runner["checkpoint"], runner["device"])
    per_batch = runner["batch_frames"] or len(frames)
    failed: dict[int, str] = {}
    with tqdm(total=len(frames), desc=op, unit="frame", disable=None) as bar:
        for start in range(0, len(frames), per_batch):
            batch = frames[start : start + per_batch]
            try:
                outputs = work(pipeline, batch)
                _write_outputs(out, outputs, start, len(frames))
            except (OSError, ValueError) as error:
                logger.error("frames %d-%d failed: %s", batch[0], batch[-1], error)
                failed |= {frame: str(error) for frame in batch}
            bar.update(len(batch))
    _fail_if(failed, len(frames))


@main.command()
@click.argument("gbuffers")
@_env_options
@click.option("--out", required=True, help="Output pattern, e.g. render/beauty.####.exr (OpenEXR).")
@click.option("--keyframes", help="Path-traced beauty EXRs (pattern) to guide the render where they exist.")
@click.option(
    "--segment",
    type=int,
    metavar="FRAME",
    help="Render only the segment of --frames that starts at FRAME (see `rf-render segments`): farm "
    "tasks that run in parallel and join at keyframes.",
)
@click.option(
    "--segment-length",
    type=click.IntRange(1),
    default=48,
    show_default=True,
    help="With --segment: the longest segment (as given to `rf-render segments`).",
)
@click.option(
    "--aovs",
    multiple=True,
    type=click.Choice(["albedo", "normal", "depth", "roughness", "metallic", "specular"]),
    help="G-buffer layers to write beside the beauty (repeatable).",
)
@_profile_options
@_runner_options
def render(
    gbuffers: str,
    envmap_path: Path,
    out: str,
    keyframes: str | None,
    segment: int | None,
    segment_length: int,
    aovs: tuple[str, ...],
    env_rotate: float,
    env_flip: bool,
    exposure: float,
    **runner: Any,
) -> None:
    """Render G-buffer EXRs (any AOV profile) under an env map to scene-linear beauty EXRs.

    GBUFFERS is a sequence pattern (shot.####.exr). Writes premultiplied RGBA (A = the geometry)
    and the --aovs layers per frame (docs/OUTPUTS.md). Runs in process, or on one or more
    rf-daemons with --daemon. Exit code 1 if any frame failed; the frames that rendered are kept.
    """
    from renderflow.core.io.envmap import EnvTransform
    from renderflow.core.io.sequences import frame_path, has_frame_token, sequence_files
    from renderflow.core.shot.reading import read_shot
    from renderflow.core.shot.rendering import RenderSettings, read_keyframes, render_shot

    reading = {key: runner.pop(key) for key in READ_OPTION_KEYS}
    passes_folder: tempfile.TemporaryDirectory[str] | None = None
    try:
        options = _read_options(**reading)
        files = sequence_files(gbuffers, runner["frames"])
        if segment is not None:
            files = _segment_files(files, keyframes, segment, segment_length)
        frames = _frames_to_do(files, out, runner["skip_existing"])
        if not frames:
            return
        if not runner["daemons"]:
            settings = RenderSettings(runner["steps"], aovs, EnvTransform(env_rotate, env_flip, exposure))

            def work(pipeline: RenderFlowPipeline, batch: list[int]) -> list[OutputFrame]:
                shot = read_shot(gbuffers, batch if has_frame_token(gbuffers) else None, options)
                keys = read_keyframes(shot, keyframes, options.colour_space)
                return render_shot(pipeline, shot, envmap_path, settings, options.colour_space, keys)

            _in_process("render", frames, runner, out, work)
            return
        import json

        from renderflow.daemon.client import render_payloads

        params: dict[str, object] = {
            "profile": reading["profile"],
            "colour_space": options.colour_space,
            "env_rotate": env_rotate,
            "env_flip": env_flip,
            "exposure": exposure,
            "steps": runner["steps"],
            "aovs": list(aovs),
        }
        mapping = {
            buffer: list(names) for buffer, names in _channel_mappings(reading["aov_mappings"]).items()
        }
        if mapping:
            params["aov"] = mapping
        if reading["aov_file"] is not None:
            params["aov_profile_toml"] = reading["aov_file"].read_text()
        camera = options.camera
        numbers = [1 if frame is None else frame for frame, _ in files]
        if isinstance(camera, Path) and camera.suffix.lower() == ".json":
            params["camera"] = json.loads(camera.read_text())
        elif isinstance(camera, Path):  # .chan or USD: read here, sent as a camera.json object
            from renderflow.core.io.camera_files import read_camera, track_to_json
            from renderflow.core.io.exr import image_size

            width, height = image_size(files[0][1])
            params["camera"] = track_to_json(
                read_camera(camera, numbers, width / height, options.camera_prim)
            )
        if options.vertical_fov_degrees is not None:
            params["fov"] = options.vertical_fov_degrees
        by_frame = {1 if frame is None else frame: path for frame, path in files}
        if options.pass_files:  # one EXR per frame with the passes' channels, and the mapping to them
            passes_folder = tempfile.TemporaryDirectory(prefix="rf-passes-")
            by_frame, pass_mapping = _combine_passes(by_frame, options.pass_files, Path(passes_folder.name))
            params["aov"] = {**mapping, **pass_mapping}

        def payloads_for(batch: list[int]) -> list[Payload]:
            keys = []
            if keyframes is not None and has_frame_token(keyframes):
                keys = [(frame, frame_path(keyframes, frame)) for frame in batch]
                keys = [(frame, path) for frame, path in keys if path.is_file()]
            return render_payloads([(frame, by_frame[frame]) for frame in batch], envmap_path, keys)

        _run_on_daemons("render", params, frames, out, runner, payloads_for)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    finally:
        if passes_folder is not None:
            passes_folder.cleanup()


def _keyframe_numbers(keyframes: str | None, frames: list[int]) -> list[int]:
    from renderflow.core.io.sequences import frame_path, has_frame_token

    if keyframes is None:
        return []
    if not has_frame_token(keyframes):
        raise click.UsageError(f"--keyframes {keyframes!r}: needs a frame token (####)")
    return [frame for frame in frames if frame_path(keyframes, frame).is_file()]


def _segment_files(
    files: list[tuple[int | None, Path]], keyframes: str | None, start: int, length: int
) -> list[tuple[int | None, Path]]:
    from renderflow.core.shot.segments import segment_frames, segment_starts

    numbers = [1 if frame is None else frame for frame, _ in files]
    starts = segment_starts(numbers, _keyframe_numbers(keyframes, numbers), length)
    chosen = set(segment_frames(numbers, starts, start))
    return [(frame, path) for frame, path in files if (1 if frame is None else frame) in chosen]


@main.command()
@click.argument("gbuffers")
@click.option("--frames", help="Frame range in fileseq syntax, e.g. 1001-1100.")
@click.option("--keyframes", help="Path-traced keyframe EXRs (pattern): segments start at them.")
@click.option(
    "--segment-length", type=click.IntRange(1), default=48, show_default=True, help="The longest segment."
)
def segments(gbuffers: str, frames: str | None, keyframes: str | None, segment_length: int) -> None:
    """Print the first frame of each farm segment, comma-separated (e.g. 1001,1017,1033).

    A segment starts at a keyframe (or the range's start) and ends before the next one, so segments
    render in parallel and join at keyframes without seams. Give each start to a farm task as
    `rf-render render ... --frames RANGE --keyframes KF --segment START` (docs/FARM.md).
    """
    from renderflow.core.io.sequences import sequence_files
    from renderflow.core.shot.segments import segment_starts

    try:
        numbers = [1 if frame is None else frame for frame, _ in sequence_files(gbuffers, frames)]
        starts = segment_starts(numbers, _keyframe_numbers(keyframes, numbers), segment_length)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(",".join(map(str, starts)))


@main.command("openjd-template")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def openjd_template(out: Path) -> None:
    """Write the Open Job Description template for shot renders (AWS Deadline Cloud; docs/FARM.md)."""
    from importlib.resources import files

    template = files("renderflow.daemon").joinpath("farm_templates/rf-render.openjd.yaml").read_text()
    out.write_text(template)
    click.echo(str(out))


@main.command()
@click.argument("gbuffers")
@click.option("--env", "envmap_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--out", required=True, help="Output pattern as the render nodes see it.")
@click.option("--frames", required=True, help="The shot's frame range, e.g. 1001-1100.")
@click.option("--keyframes", help="Path-traced keyframe EXRs (pattern): segments start at them.")
@click.option("--segment-length", type=click.IntRange(1), default=48, show_default=True)
@click.option("--checkpoint", type=click.Path(file_okay=False, path_type=Path))
@click.option("--show", required=True)
@click.option("--shot", required=True)
@click.option("--user", default=lambda: os.environ.get("USER", "renderflow"), show_default="$USER")
@click.option("--name", help="Job name (default: SHOW-SHOT-renderflow).")
@click.option(
    "--launch", is_flag=True, help="Submit to the Cuebot ($CUEBOT_HOSTS) instead of printing the spec."
)
def opencue(
    gbuffers: str,
    envmap_path: Path,
    out: str,
    frames: str,
    keyframes: str | None,
    segment_length: int,
    checkpoint: Path | None,
    show: str,
    shot: str,
    user: str,
    name: str | None,
    launch: bool,
) -> None:
    """Build an OpenCue job for a shot: one frame per segment (printed as OpenCue's job spec, or
    launched with --launch)."""
    from renderflow.core.io.sequences import sequence_files
    from renderflow.core.shot.segments import segment_starts
    from renderflow.daemon.opencue_job import ShotJob, build_outline, job_spec

    try:
        numbers = [1 if frame is None else frame for frame, _ in sequence_files(gbuffers, frames)]
        starts = segment_starts(numbers, _keyframe_numbers(keyframes, numbers), segment_length)
        job = ShotJob(
            name or f"{show}-{shot}-renderflow",
            show,
            shot,
            user,
            gbuffers,
            envmap_path,
            out,
            frames,
            starts,
            segment_length,
            keyframes,
            checkpoint,
        )
        if launch:
            from outline.cuerun import launch as cue_launch

            cue_launch(build_outline(job), use_pycuerun=False)
            click.echo(f"launched {job.name}: {len(starts)} segment(s)")
        else:
            click.echo(job_spec(job))
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def _combine_passes(
    by_frame: dict[int, Path], pass_files: Mapping[str, PassFile], folder: Path
) -> tuple[dict[int, Path], dict[str, list[str]]]:
    """Each frame's G-buffer EXR with its passes' channels added (what a daemon reads as one file),
    written to `folder`, and the mapping of each buffer to its channels there."""
    from renderflow.core.io.exr import Layer, read_exr, write_layers
    from renderflow.core.io.gbuffer_io import with_pass_files

    combined, mapping = {}, {}
    for frame, path in by_frame.items():
        image, frame_mapping = with_pass_files(read_exr(path), pass_files, frame)
        combined[frame] = folder / f"gbuffers.{frame}.exr"
        write_layers(
            combined[frame],
            [Layer("", image.pixels, image.channels, half=False)],
            _kept_header(image.attributes),
        )
        mapping = {buffer: list(names) for buffer, names in frame_mapping.items()}
    return combined, mapping


def _kept_header(attributes: dict[str, object]) -> dict[str, object]:
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


def _channel_mappings(aov_mappings: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    from renderflow.core.io.aov_profiles import PassFile, parse_aov_option

    return {
        buffer: target
        for buffer, target in map(parse_aov_option, aov_mappings)
        if not isinstance(target, PassFile)
    }


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
    from renderflow.core.io.sequences import has_frame_token, sequence_files
    from renderflow.core.shot.reading import read_plate
    from renderflow.core.shot.rendering import decompose_plate
    from renderflow.daemon.client import decompose_payloads

    chosen = list(targets) or ["albedo", "normal", "depth", "roughness", "metallic"]
    try:
        files = sequence_files(plate, runner["frames"])
        frames = _frames_to_do(files, out, runner["skip_existing"])
        if not frames:
            return
        if not runner["daemons"]:
            single = not has_frame_token(plate)  # one file, numbered by its name or frame 1

            def work(pipeline: RenderFlowPipeline, batch: list[int]) -> list[OutputFrame]:
                numbers, images = read_plate(plate, None if single else batch, layer, colour_space)
                numbers = [1 if number is None else number for number in numbers]
                return decompose_plate(pipeline, numbers, images, chosen, runner["steps"], colour_space)

            _in_process("decompose", frames, runner, out, work)
            return
        params: dict[str, object] = {
            "colour_space": colour_space,
            "layer": layer,
            "steps": runner["steps"],
            "targets": chosen,
        }
        by_frame = {1 if frame is None else frame: path for frame, path in files}
        _run_on_daemons(
            "decompose",
            params,
            frames,
            out,
            runner,
            lambda batch: decompose_payloads([(frame, by_frame[frame]) for frame in batch]),
        )
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


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
    from renderflow.core.model.pipeline import RenderFlowPipeline
    from renderflow.core.shot.demo import BUNDLED_MODEL

    return RenderFlowPipeline.from_pretrained(checkpoint or BUNDLED_MODEL, device=device)


def _plate_frames(
    numbers: list[int | None], layers_per_frame: list[list[Layer]], colour_space: str
) -> list[OutputFrame]:
    """Plate-sized results (relight, insert, edit) as output frames with the colour-space header."""
    from renderflow.core.io.outputs import colour_attributes
    from renderflow.core.shot.rendering import OutputFrame

    attributes = colour_attributes(colour_space)
    return [
        OutputFrame(1 if number is None else number, layers, dict(attributes))
        for number, layers in zip(numbers, layers_per_frame, strict=True)
    ]


def env_names(envmaps: tuple[Path, ...]) -> list[str]:
    """What {env} becomes for each env map: its file name, with its folder where names collide."""
    names = [path.stem for path in envmaps]
    if len(set(names)) < len(names):
        names = [f"{path.parent.name}_{path.stem}" for path in envmaps]
    if len(set(names)) < len(names):
        raise click.UsageError(
            f"--env maps {', '.join(map(str, envmaps))}: {{env}} cannot tell them apart (same folder and "
            "file names); rename them"
        )
    return names


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
    from renderflow.core.io.envmap import EnvTransform
    from renderflow.core.io.exr import Layer
    from renderflow.core.io.outputs import check_output_pattern
    from renderflow.core.shot.reading import plate_envmaps, read_plate
    from renderflow.core.shot.workflows import relight as relight_plate

    if len(envmaps) > 1 and "{env}" not in out:
        raise click.UsageError("several --env maps need {env} in --out, e.g. relit/{env}.####.exr")
    names = env_names(envmaps)
    try:
        numbers, plate_linear = read_plate(plate, options["frames"], layer, options["colour_space"])
        for name in names:
            check_output_pattern(out.replace("{env}", name), len(numbers))
        transform = EnvTransform(env_rotate, False, exposure)
        height = plate_linear.shape[1]
        envs = [
            plate_envmaps(path, len(numbers), height, options["colour_space"], transform) for path in envmaps
        ]
        pipeline = _pipeline(options["checkpoint"], options["device"])
        _, renders = relight_plate(pipeline, plate_linear, envs, options["steps"])
        for name, beauty in zip(names, renders, strict=True):
            layers = [
                [Layer("", colour.from_model(frame, options["colour_space"]), "RGB", half=False)]
                for frame in beauty
            ]
            _write_outputs(
                out.replace("{env}", name), _plate_frames(numbers, layers, options["colour_space"])
            )
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
    from renderflow.core.io.envmap import EnvTransform
    from renderflow.core.io.exr import Layer
    from renderflow.core.io.gbuffer_io import read_sequence
    from renderflow.core.io.outputs import check_output_pattern
    from renderflow.core.shot.reading import plate_envmaps, read_channel, read_plate
    from renderflow.core.shot.workflows import gbuffers_from_intrinsics, insert_object

    space = options["colour_space"]
    try:
        numbers, plate_linear = read_plate(plate, options["frames"], "", space)
        check_output_pattern(out, len(numbers))
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
                Layer("", colour.from_model(comp, space), "RGB", half=False),
                Layer("mask", coverage, "Y", half=False),
                Layer("render", colour.from_model(render, space), "RGB", half=False),
                Layer("ratio", ratio, "RGB", half=False),
            ]
            for comp, coverage, render, ratio in zip(
                result.comp, result.coverage, result.with_object, result.ratio, strict=True
            )
        ]
        _write_outputs(out, _plate_frames(numbers, layers, space))
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
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The shot's cameras: camera.json, .chan or USD (default: the EXR headers).",
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
    camera: Path | None,
    **options: Any,
) -> None:
    """Edit materials inside a mask and re-render: constant values or sweeps over the frames (appendix C)."""
    from renderflow.core.io.envmap import EnvTransform
    from renderflow.core.shot.reading import read_channel, read_shot, shot_envmaps
    from renderflow.core.shot.workflows import MaterialEdit, edit_materials

    change = MaterialEdit(
        _value_or_sweep(roughness, 1),
        _value_or_sweep(metallic, 1),
        _value_or_sweep(specular, 1),
        _value_or_sweep(albedo, 3),
    )
    if change == MaterialEdit():
        raise click.UsageError("nothing to edit: give --roughness, --metallic, --specular or --albedo")
    from renderflow.core.io.outputs import check_output_pattern
    from renderflow.core.shot.reading import ReadOptions
    from renderflow.core.shot.rendering import RenderSettings, render_frames

    space = options["colour_space"]
    try:
        shot = read_shot(gbuffers, options["frames"], ReadOptions(profile, colour_space=space, camera=camera))
        check_output_pattern(out, len(shot.frames))
        mask = read_channel(mask_pattern, options["frames"], mask_channel)
        if mask_id is not None:
            mask = (mask == mask_id).astype(np.float32)
        edited = edit_materials(shot.sequence.gbuffers, mask, change)
        settings = RenderSettings(options["steps"], (), EnvTransform(env_rotate, env_flip, exposure))
        env = shot_envmaps(shot, envmap_path, space, settings.env_transform)
        beauty = _pipeline(options["checkpoint"], options["device"]).render(
            edited, env, steps=options["steps"], vertical_fov_degrees=shot.vertical_fov_degrees
        )
        _write_outputs(out, render_frames(shot, beauty, settings, space))
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
