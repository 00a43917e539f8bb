"""The directional albedo of the principled BSDF, measured with Mitsuba: the shading tables of the
Deferred shader and the physics prior (core/shading/principled_albedo.py).

Under light of radiance 1 from every direction, a principled surface seen at n·v sends back
`scale · base_colour + bias`, separately for a dielectric (metallic 0) and a metal (metallic 1):
the BSDF is linear in the base colour and in metallic. The tables hold scale and bias over
(specular, roughness, n·v) for the dielectric and (roughness, n·v) for the metal, each value the
mean of stratified importance samples of Mitsuba's own `principled` plugin, so the shading matches
the material model the G-buffers' roughness, metallic and specular describe, retro-reflection and
all (a GGX split-sum table with (1 - F) on the diffuse was up to 1.9x too dark at silhouettes).

    .venv/bin/python -m renderflow.training.principled_albedo   # rewrites the table (about 15 s on 2 cores)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from renderflow.core.shading.principled_albedo import (
    ALBEDO_TABLE_PATH,
    SPECULAR_LEVELS,
    TABLE_SIZE,
    table_axis,
    write_albedo_table,
)
from renderflow.training.mitsuba_render import mitsuba_module

logger = logging.getLogger(__name__)

SAMPLES_PER_SIDE = 32  # stratified samples: SAMPLES_PER_SIDE² directions per table cell


def directional_albedo(
    mi: Any, base_colour: float, roughness: float, metallic: float, specular: float, n_dot_v: float
) -> float:
    """Mean reflected radiance of a principled surface under a white furnace (radiance 1), seen at
    `n_dot_v`: stratified importance sampling of Mitsuba's own BSDF."""
    bsdf = mi.load_dict(
        {
            "type": "principled",
            "base_color": {"type": "rgb", "value": [base_colour] * 3},
            "roughness": roughness,
            "metallic": metallic,
            "specular": specular,
        }
    )
    interaction = mi.SurfaceInteraction3f()
    interaction.sh_frame = mi.Frame3f(mi.Vector3f(0, 0, 1))
    interaction.wi = mi.Vector3f(math.sqrt(max(0.0, 1 - n_dot_v**2)), 0.0, n_dot_v)
    context = mi.BSDFContext()
    side = SAMPLES_PER_SIDE
    strata = (np.arange(side) + 0.5) / side
    lobe = (np.arange(side * side) * 0.6180339887) % 1.0  # lobe choice spread over the strata
    total = 0.0
    for index, (u, v) in enumerate((u, v) for u in strata for v in strata):
        _, weight = bsdf.sample(context, interaction, float(lobe[index]), mi.Point2f(float(u), float(v)))
        total += float(weight[0])  # f·cos/pdf: grey, so one channel says it
    return total / (side * side)


def measure_tables() -> dict[str, torch.Tensor]:
    """scale and bias `[S, R, V]` (dielectric, over SPECULAR_LEVELS) and `[R, V]` (metal)."""
    mi = mitsuba_module("scalar_rgb")
    axis = table_axis()
    tables: dict[str, np.ndarray] = {
        "dielectric_scale": np.zeros((len(SPECULAR_LEVELS), TABLE_SIZE, TABLE_SIZE)),
        "dielectric_bias": np.zeros((len(SPECULAR_LEVELS), TABLE_SIZE, TABLE_SIZE)),
        "metal_scale": np.zeros((TABLE_SIZE, TABLE_SIZE)),
        "metal_bias": np.zeros((TABLE_SIZE, TABLE_SIZE)),
    }
    for r, roughness in enumerate(axis):
        for v, n_dot_v in enumerate(axis):
            for s, specular in enumerate(SPECULAR_LEVELS):
                black = directional_albedo(mi, 0.0, roughness, 0.0, specular, n_dot_v)
                white = directional_albedo(mi, 1.0, roughness, 0.0, specular, n_dot_v)
                tables["dielectric_scale"][s, r, v], tables["dielectric_bias"][s, r, v] = white - black, black
            black = directional_albedo(mi, 0.0, roughness, 1.0, 0.5, n_dot_v)
            white = directional_albedo(mi, 1.0, roughness, 1.0, 0.5, n_dot_v)
            tables["metal_scale"][r, v], tables["metal_bias"][r, v] = white - black, black
        logger.info("roughness %.3f done", roughness)
    return {name: torch.from_numpy(table).float() for name, table in tables.items()}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mi = mitsuba_module("scalar_rgb")
    write_albedo_table(measure_tables(), Path(ALBEDO_TABLE_PATH), f"mitsuba {mi.__version__} principled")


if __name__ == "__main__":
    main()
