"""rf-render: render G-buffers with RenderFlow from a shell or a farm job."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import torch
from tqdm import tqdm

logger = logging.getLogger("renderflow.render")

UNTRAINED_WARNING = (
    "UNTRAINED MODEL: no checkpoint given and no bundled model exists yet; the demo runs a randomly "
    "initialised CPU default model (seed {seed}) to show the pipeline end to end, not a real render."
)


@click.group(
    epilog=(
        "Examples:\n\n  rf-render demo --out demo_out\n\n"
        "  rf-render import-wan ~/models/Wan2.1-T2V-1.3B-Diffusers ckpt/"
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
    help="RenderFlow checkpoint folder; without it, an untrained default model (clearly labelled).",
)
@click.option(
    "--frames", type=click.IntRange(1, 200), default=5, show_default=True, help="Frames of the demo clip."
)
@click.option(
    "--size", type=click.IntRange(16, 1024), default=64, show_default=True, help="Frame width and height."
)
@click.option(
    "--steps",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Sampler steps (1 is the method; more is the diffusion-style baseline).",
)
@click.option(
    "--device",
    default="cuda" if torch.cuda.is_available() else "cpu",
    show_default=True,
    help="Torch device.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the untrained default model.")
def demo(
    out: Path, checkpoint: Path | None, frames: int, size: int, steps: int, device: str, seed: int
) -> None:
    """Render the bundled demo clip (a sphere on a checkered ground under a sunny sky)."""
    from renderflow.core.demo import render_demo

    if checkpoint is None:
        click.echo(UNTRAINED_WARNING.format(seed=seed), err=True)
    with tqdm(total=1, desc="chunks", unit="chunk", disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        written = render_demo(out, checkpoint, frames, size, steps, device, seed, progress)
    for path in written:
        click.echo(str(path))


@main.command("import-wan")
@click.argument("wan_folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def import_wan_command(wan_folder: Path, out: Path) -> None:
    """Turn a local Wan2.1-T2V diffusers folder (transformer/, vae/) into a RenderFlow checkpoint."""
    from renderflow.core.wan_import import import_wan

    try:
        pipeline = import_wan(wan_folder)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    pipeline.save_pretrained(out)
    click.echo(f"wrote {out}")
