"""rf-train: make training data and train RenderFlow's stages."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click
from tqdm import tqdm


@click.group(
    epilog="Example:\n\n  rf-train synth --clips 4 --frames 5 --res 64 --spp 64 --out data/synth",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Make path-traced training data and train RenderFlow."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.option("--clips", type=click.IntRange(1), default=4, show_default=True, help="Clips (one scene each).")
@click.option("--frames", type=click.IntRange(1), default=5, show_default=True, help="Frames per clip.")
@click.option(
    "--res", type=click.IntRange(8, 4096), default=64, show_default=True, help="Frame width and height."
)
@click.option(
    "--spp", type=click.IntRange(1), default=64, show_default=True, help="Path-tracing samples per pixel."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Dataset seed: same seed, same data.")
@click.option("--fov", type=float, default=40.0, show_default=True, help="Vertical field of view in degrees.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Parallel processes.")
@click.option(
    "--animate-material", is_flag=True, help="Animate the first object's material (paper appendix C)."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Dataset folder (resumable).",
)
def synth(
    clips: int,
    frames: int,
    res: int,
    spp: int,
    seed: int,
    fov: float,
    workers: int,
    animate_material: bool,
    out: Path,
) -> None:
    """Render procedural scenes with Mitsuba 3: beauty + exact G-buffers per frame.

    Clips already complete in OUT are skipped, so an interrupted run resumes where it stopped.
    """
    from renderflow.training.synth import SynthConfig, synthesise

    config = SynthConfig(clips, frames, res, spp, seed, fov, animate_material=animate_material)
    started = time.perf_counter()
    with tqdm(total=clips, desc="clips", unit="clip", disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            folders = synthesise(out, config, workers, progress)
        except (OSError, ValueError, RuntimeError) as error:
            raise click.ClickException(str(error)) from error
    seconds = time.perf_counter() - started
    click.echo(f"{len(folders)} clips in {out} ({seconds:.1f} s)")
