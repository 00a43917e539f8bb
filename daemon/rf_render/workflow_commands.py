"""rf-render's workflow commands on plates and shots: decompose, relight, insert, edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from renderflow.core.cli_options import (
    camera_option,
    colour_space_option,
    env_option,
    env_options,
    env_rotate_option,
    exposure_option,
    profile_option,
    runner_options,
    view_option,
    workflow_options,
)
from renderflow.daemon.rf_render.common import echo_path, frames_to_do, runner, user_errors

INTRINSICS = ["albedo", "normal", "depth", "roughness", "metallic"]
LAYER_HELP = "The plate's layer in the EXR (default: the unprefixed R, G, B)."


@click.command()
@click.argument("plate")
@click.option(
    "--out", required=True, help="Output pattern, e.g. intrinsics/plate.####.exr (one EXR per frame)."
)
@click.option(
    "--targets",
    multiple=True,
    type=click.Choice(INTRINSICS),
    help="Intrinsics to write (repeatable; default all five).",
)
@click.option("--layer", default="", help=LAYER_HELP)
@view_option
@colour_space_option
@runner_options
def decompose(
    plate: str,
    out: str,
    targets: tuple[str, ...],
    layer: str,
    view: str | None,
    colour_space: str,
    **options: Any,
) -> None:
    """Decompose a plate (scene-linear EXRs) into albedo, normal, depth, roughness and metallic layers.

    Writes one EXR per frame with canonical layers (albedo, N, depth, roughness, metallic); depth is
    relative (nearest 1). Runs in process or on rf-daemons (--daemon). Exit code 1 if any frame failed.
    """
    from renderflow.core.io.sequences import sequence_files
    from renderflow.daemon.requests import DecomposeParams
    from renderflow.daemon.shot_jobs import decompose_plate_job

    asked = DecomposeParams(options["steps"], tuple(targets or INTRINSICS), colour_space, layer, view)
    with user_errors():
        files = sequence_files(plate, options["frames"])
        frames = frames_to_do(files, out, options["skip_existing"])
        if frames:
            decompose_plate_job(plate, files, asked, frames, runner(options), out, echo_path)


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


def _plate_job(options: dict[str, Any]) -> Any:
    from renderflow.core.shot.workflow_jobs import PlateJob

    return PlateJob(options["frames"], options["steps"], options["colour_space"])


def _loader(options: dict[str, Any]) -> Any:
    from renderflow.daemon.shot_jobs import load_pipeline

    return lambda: load_pipeline(options["checkpoint"], options["device"])


@click.command()
@click.argument("plate")
@env_option(
    multiple=True,
    help="A new lat-long HDR env map (repeatable: the plate is decomposed once for all of them).",
)
@click.option(
    "--out", required=True, help="Output pattern; with several --env it needs {env}: relit/{env}.####.exr."
)
@click.option("--layer", default="", help=LAYER_HELP)
@env_rotate_option
@exposure_option
@workflow_options
def relight(
    plate: str,
    envmap_path: tuple[Path, ...],
    out: str,
    layer: str,
    env_rotate: float,
    exposure: float,
    **options: Any,
) -> None:
    """Relight a plate: decompose it into G-buffers once, render them under each new env map."""
    from renderflow.core.io.envmap import EnvTransform
    from renderflow.core.shot.workflow_jobs import relight_plate
    from renderflow.daemon.shot_jobs import write_outputs

    if len(envmap_path) > 1 and "{env}" not in out:
        raise click.UsageError("several --env maps need {env} in --out, e.g. relit/{env}.####.exr")
    outs = [out.replace("{env}", name) for name in env_names(envmap_path)]
    with user_errors():
        transform = EnvTransform(env_rotate, False, exposure)
        relit = relight_plate(
            _loader(options), _plate_job(options), plate, layer, envmap_path, outs, transform
        )
        for env_out, frames in zip(outs, relit, strict=True):
            write_outputs(env_out, frames, echo_path)


@click.command()
@click.argument("plate")
@click.option(
    "--object",
    "object_gbuffers",
    required=True,
    help="The object's G-buffer EXRs (any AOV profile, with alpha).",
)
@env_option()
@click.option(
    "--plate-gbuffers", help="The plate's own G-buffers (a CG plate): depth-tested merge, no decomposition."
)
@click.option("--alpha-channel", default="A", show_default=True, help="The object's coverage channel.")
@click.option("--out", required=True, help="Output pattern: comp RGBA, and layers render and ratio.")
@profile_option
@env_rotate_option
@workflow_options
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
    from renderflow.core.shot.workflow_jobs import InsertInputs, insert_into_plate
    from renderflow.daemon.shot_jobs import write_outputs

    inserted = InsertInputs(object_gbuffers, alpha_channel, profile, envmap_path, env_rotate, plate_gbuffers)
    with user_errors():
        frames = insert_into_plate(_loader(options), _plate_job(options), plate, inserted, out)
        write_outputs(out, frames, echo_path)


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


@click.command()
@click.argument("gbuffers")
@env_options
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
@profile_option
@camera_option
@workflow_options
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
    from renderflow.core.shot.reading import ReadOptions
    from renderflow.core.shot.workflow_jobs import MaskSource, edit_shot
    from renderflow.core.shot.workflows import MaterialEdit
    from renderflow.daemon.shot_jobs import write_outputs

    change = MaterialEdit(
        _value_or_sweep(roughness, 1),
        _value_or_sweep(metallic, 1),
        _value_or_sweep(specular, 1),
        _value_or_sweep(albedo, 3),
    )
    if change == MaterialEdit():
        raise click.UsageError("nothing to edit: give --roughness, --metallic, --specular or --albedo")
    reading = ReadOptions(profile, colour_space=options["colour_space"], camera=camera)
    mask = MaskSource(mask_pattern, mask_channel, mask_id)
    transform = EnvTransform(env_rotate, env_flip, exposure)
    with user_errors():
        frames = edit_shot(
            _loader(options),
            _plate_job(options),
            gbuffers,
            reading,
            mask,
            change,
            envmap_path,
            transform,
            out,
        )
        write_outputs(out, frames, echo_path)


COMMANDS = [decompose, relight, insert, edit]
