"""rf-render's shot commands: demo, import-wan, inspect, preview, render. Heavy imports stay inside
the commands, so that `inspect` and `--help` never import torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from renderflow.core.cli_options import (
    checkpoint_option,
    device_option,
    env_options,
    frames_option,
    out_pattern_option,
    read_options,
    runner_options,
    steps_option,
)
from renderflow.daemon.rf_render.common import echo_path, frames_to_do, pop_reading, runner, user_errors

PREVIEW_METHODS = ["deferred", "visibility", "ibl"]
METHOD_HELP = (
    "deferred: diffuse + GGX split-sum specular; visibility: the same with shadows of the env map's "
    "lights, occlusion and one screen-space bounce (what model v3 starts from); ibl: SH diffuse only."
)
AOV_CHOICES = ["albedo", "normal", "depth", "roughness", "metallic", "specular"]


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_out"),
    show_default=True,
    help="Folder for beauty.####.exr and contact_sheet.png.",
)
@checkpoint_option
@click.option("--frames", type=click.IntRange(1), help="Render only the first N frames of the clip (17).")
@steps_option
@device_option
def demo(out: Path, checkpoint: Path | None, frames: int | None, steps: int, device: str) -> None:
    """Render the bundled demo clip (a held-out path-traced clip) with the bundled model.

    Writes scene-linear beauty EXRs and a contact sheet: inputs, render, path-traced reference, error.
    """
    from renderflow.core.shot.demo import BUNDLED_MODEL, render_demo

    with tqdm(total=1, desc="chunks", unit="chunk", disable=None) as bar, user_errors():

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        written = render_demo(out, checkpoint or BUNDLED_MODEL, frames, steps, device, progress)
    for path in written:
        echo_path(path)


@click.command("import-wan")
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

    with user_errors():
        pipeline = import_wan(wan_folder, spec=MODEL_CONFIGS["cpu-v2"] if v2 else None)
    pipeline.save_pretrained(out)
    click.echo(f"wrote {out}")


@click.command()
@click.argument("file")
@click.option(
    "--frame", type=int, help="Frame to inspect when FILE is a sequence pattern (default: the first)."
)
@read_options
def inspect(file: str, frame: int | None, **reading: Any) -> None:
    """Show an EXR's layers, the AOV profile and mapping RenderFlow would use, and value ranges.

    FILE is an EXR or a sequence pattern (shot.####.exr, shot.%04d.exr, shot.$F4.exr). Any damaged,
    deep or unusable file ends with a one-line error (exit code 1).
    """
    from renderflow.core.shot.inspect_report import inspect_lines
    from renderflow.daemon.shot_requests import read_options as options_of

    with user_errors():
        for line in inspect_lines(file, frame, options_of(pop_reading(reading))):
            click.echo(line)


@click.command()
@click.argument("gbuffers")
@env_options
@out_pattern_option("preview/beauty.####.exr")
@frames_option
@click.option(
    "--method", type=click.Choice(PREVIEW_METHODS), default="deferred", show_default=True, help=METHOD_HELP
)
@read_options
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
    """Fast preview without the network: the physics prior or a baseline from the same inputs.

    GBUFFERS is a sequence pattern (shot.####.exr); the beauty is written per frame to OUT like a
    render (docs/OUTPUTS.md), scene-linear HDR. A look-dev check, not a render: screen-space
    shadows at best (--method visibility), no light from off screen.
    """
    from renderflow.core.io.envmap import EnvTransform
    from renderflow.core.io.outputs import check_output_pattern
    from renderflow.core.shot.reading import read_shot
    from renderflow.core.shot.rendering import preview_shot
    from renderflow.daemon.shot_jobs import write_outputs
    from renderflow.daemon.shot_requests import read_options as options_of

    with user_errors():
        options = options_of(pop_reading(reading))
        shot = read_shot(gbuffers, frames, options)
        check_output_pattern(out, len(shot.frames))
        transform = EnvTransform(env_rotate, env_flip, exposure)
        write_outputs(
            out, preview_shot(shot, envmap_path, method, transform, options.colour_space), echo_path
        )


@click.command()
@click.argument("gbuffers")
@env_options
@out_pattern_option("render/beauty.####.exr (OpenEXR)")
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
    type=click.Choice(AOV_CHOICES),
    help="G-buffer layers to write beside the beauty.",
)
@read_options
@runner_options
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
    **options: Any,
) -> None:
    """Render G-buffer EXRs (any AOV profile) under an env map to scene-linear beauty EXRs.

    GBUFFERS is a sequence pattern (shot.####.exr). Writes premultiplied RGBA (A = the geometry)
    and the --aovs layers per frame (docs/OUTPUTS.md). Runs in process, or on one or more
    rf-daemons with --daemon. Exit code 1 if any frame failed; the frames that rendered are kept.
    """
    from renderflow.core.io.sequences import sequence_files
    from renderflow.core.shot.segments import segment_files
    from renderflow.daemon.requests import RenderParams
    from renderflow.daemon.shot_jobs import ShotRender, render_shot_job

    reading = pop_reading(options)
    with user_errors():
        files = sequence_files(gbuffers, options["frames"])
        if segment is not None:
            files = segment_files(files, keyframes, segment, segment_length)
        frames = frames_to_do(files, out, options["skip_existing"])
        if frames:
            asked = RenderParams(options["steps"], aovs, env_rotate, env_flip, exposure)
            job = ShotRender(gbuffers, files, reading, envmap_path, keyframes, asked)
            render_shot_job(job, frames, runner(options), out, echo_path)


COMMANDS = [demo, import_wan_command, inspect, preview, render]
