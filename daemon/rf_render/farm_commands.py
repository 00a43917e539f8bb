"""rf-render's farm commands: segments, openjd-template, opencue (docs/FARM.md)."""

from __future__ import annotations

import os
from pathlib import Path

import click

KEYFRAMES_HELP = "Path-traced keyframe EXRs (pattern): segments start at them."
SEGMENT_LENGTH_HELP = "The longest segment, in frames."


def _segment_starts(
    gbuffers: str, frames: str | None, keyframes: str | None, segment_length: int
) -> list[int]:
    from renderflow.core.io.sequences import sequence_files
    from renderflow.core.shot.segments import shot_segment_starts

    numbers = [1 if frame is None else frame for frame, _ in sequence_files(gbuffers, frames)]
    return shot_segment_starts(numbers, keyframes, segment_length)


@click.command()
@click.argument("gbuffers")
@click.option("--frames", help="Frame range in fileseq syntax, e.g. 1001-1100.")
@click.option("--keyframes", help=KEYFRAMES_HELP)
@click.option(
    "--segment-length", type=click.IntRange(1), default=48, show_default=True, help=SEGMENT_LENGTH_HELP
)
def segments(gbuffers: str, frames: str | None, keyframes: str | None, segment_length: int) -> None:
    """Print the first frame of each farm segment, comma-separated (e.g. 1001,1017,1033).

    A segment starts at a keyframe (or the range's start) and ends before the next one, so segments
    render in parallel and join at keyframes without seams. Give each start to a farm task as
    `rf-render render ... --frames RANGE --keyframes KF --segment START` (docs/FARM.md).
    """
    from renderflow.daemon.rf_render.common import user_errors

    with user_errors():
        click.echo(",".join(map(str, _segment_starts(gbuffers, frames, keyframes, segment_length))))


@click.command("openjd-template")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def openjd_template(out: Path) -> None:
    """Write the Open Job Description template for shot renders (AWS Deadline Cloud; docs/FARM.md)."""
    from importlib.resources import files

    template = files("renderflow.daemon").joinpath("farm_templates/rf-render.openjd.yaml").read_text()
    out.write_text(template)
    click.echo(str(out))


@click.command()
@click.argument("gbuffers")
@click.option(
    "--env",
    "envmap_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The env map as the render nodes see it.",
)
@click.option("--out", required=True, help="Output pattern as the render nodes see it.")
@click.option("--frames", required=True, help="The shot's frame range, e.g. 1001-1100.")
@click.option("--keyframes", help=KEYFRAMES_HELP)
@click.option(
    "--segment-length", type=click.IntRange(1), default=48, show_default=True, help=SEGMENT_LENGTH_HELP
)
@click.option(
    "--checkpoint",
    type=click.Path(file_okay=False, path_type=Path),
    help="Checkpoint folder as the render nodes see it (default: the bundled CPU model).",
)
@click.option("--show", required=True, help="The OpenCue show.")
@click.option("--shot", required=True, help="The OpenCue shot.")
@click.option(
    "--user",
    default=lambda: os.environ.get("USER", "renderflow"),
    show_default="$USER",
    help="The job's owner.",
)
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
    from renderflow.daemon.opencue_job import ShotJob, build_outline, job_spec
    from renderflow.daemon.rf_render.common import user_errors

    with user_errors():
        starts = _segment_starts(gbuffers, frames, keyframes, segment_length)
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
        if not launch:
            click.echo(job_spec(job))
            return
        from outline.cuerun import launch as cue_launch

        cue_launch(build_outline(job), use_pycuerun=False)
        click.echo(f"launched {job.name}: {len(starts)} segment(s)")


COMMANDS = [segments, openjd_template, opencue]
