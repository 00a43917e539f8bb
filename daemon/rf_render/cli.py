"""rf-render's command group: logging set up once, the commands of each family added by name."""

from __future__ import annotations

import logging

import click

from renderflow.core.cli_options import verbose_option
from renderflow.daemon.rf_render import farm_commands, shot_commands, workflow_commands

EPILOG = (
    "Examples:\n\n  rf-render demo --out demo_out\n\n"
    "  rf-render import-wan ~/models/Wan2.1-T2V-1.3B-Diffusers ckpt/\n\n"
    "  rf-render inspect shot/gbuffers.1001.exr --profile auto\n\n"
    "  rf-render preview shot/gbuffers.####.exr --env sky.exr --out preview/beauty.####.exr\n\n"
    "  rf-render render shot/gb.####.exr --env sky.exr --frames 1001-1100 --out out/beauty.####.exr\n\n"
    "  rf-render render shot/gb.####.exr --env sky.exr --daemon tcp://gpu1:5557 --daemon tcp://gpu2:5557 "
    "--curve-server-key server.key --curve-client-key client.key_secret --out beauty.####.exr\n\n"
    "  rf-render decompose plate.####.exr --out intrinsics/plate.####.exr"
)


@click.group(epilog=EPILOG)
@verbose_option
def main(verbose: bool) -> None:
    """Render G-buffers to scene-linear HDR beauty with RenderFlow."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


for family in (shot_commands, workflow_commands, farm_commands):
    for command in family.COMMANDS:
        main.add_command(command)
