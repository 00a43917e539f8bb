"""rf-eval: score RenderFlow and the baselines on a dataset split (docs/RESULTS.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from tqdm import tqdm

from renderflow.core.cli_options import data_option, folder_option, profile_option, verbose_option


def _int_list(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers, e.g. 4,8,16") from None


ENV_HEIGHT_HELP = "Height of the camera-view env maps (width twice that; never below the frame height)."
SAMPLER_HELP = "Steps of the diffusion-style baseline (0: leave it out)."


@click.command(
    epilog="Example:\n\n  rf-eval --data data/synth64 --checkpoint core/weights/renderflow-cpu --out results",
)
@data_option("Dataset folder (clip folders; rf-train synth output).")
@click.option("--split", default="test", show_default=True, help="Sub-folder of DATA to score.")
@folder_option(
    "--checkpoint", "RenderFlow checkpoint; without it only the IBL and Deferred baselines are scored."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for results.md, results.json and contact sheets.",
)
@profile_option
@click.option("--steps", default="1,4", show_default=True, help="RenderFlow step counts to score.")
@click.option("--env-height", type=click.IntRange(8), default=64, show_default=True, help=ENV_HEIGHT_HELP)
@click.option(
    "--fov",
    type=click.FloatRange(1, 179),
    help="Vertical field of view in degrees, for clips without camera.json (cameras from the EXR "
    "headers' cameraToWorld/worldToCamera); overrides camera.json's.",
)
@click.option("--sampler-steps", type=click.IntRange(0), default=30, show_default=True, help=SAMPLER_HELP)
@click.option(
    "--keyframe-gaps", default="4,8,16", show_default=True, help="Keyframe gaps to score (Table 6)."
)
@click.option(
    "--repeats", type=click.IntRange(1), default=2, show_default=True, help="Runs for the run-to-run spread."
)
@click.option(
    "--inverse/--no-inverse", default=True, show_default=True, help="Score decomposition (Table 2)."
)
@click.option("--max-clips", type=click.IntRange(1), help="Score only the first N clips.")
@click.option("--device", default="cpu", show_default=True, help="Torch device.")
@click.option(
    "--lpips-weights",
    type=click.Path(exists=True, dir_okay=False),
    help="LPIPS weights (rf-train lpips-weights).",
)
@verbose_option
def main(
    data: Path,
    split: str,
    checkpoint: Path | None,
    out: Path,
    profile: str,
    steps: str,
    env_height: int,
    fov: float | None,
    sampler_steps: int,
    keyframe_gaps: str,
    repeats: int,
    inverse: bool,
    max_clips: int | None,
    device: str,
    lpips_weights: str | None,
    verbose: bool,
) -> None:
    """Score RenderFlow (1 and 4 steps, keyframes, the 30-step sampler) and the IBL and Deferred
    baselines against path-traced frames: PSNR, SSIM, LPIPS, flicker, time; and decomposition.
    """
    from renderflow.training.evaluate import EvalConfig, evaluate

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    config = EvalConfig(
        data=str(data),
        out=str(out),
        checkpoint=str(checkpoint) if checkpoint else None,
        split=split,
        profile=profile,
        steps=_int_list(steps),
        sampler_steps=sampler_steps,
        keyframe_gaps=_int_list(keyframe_gaps),
        repeats=repeats,
        inverse=inverse,
        device=device,
        lpips_weights=lpips_weights,
        env_height=env_height,
        vertical_fov_degrees=fov,
        max_clips=max_clips,
    )
    with tqdm(desc="clips", unit="clip", disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            evaluate(config, progress)
        except (OSError, ValueError, RuntimeError) as error:
            raise click.ClickException(str(error)) from error
    click.echo((out / "results.md").read_text())
