"""How much light a principled surface sends back, per view angle: the shading's energy tables.

Under light of radiance 1 from every direction, a surface of the principled (Disney) BSDF seen at
n·v sends back `scale · base_colour + bias`: for a dielectric, scale is its diffuse lobe (Fresnel-
weighted, with the retro-reflection of rough surfaces, which brightens silhouettes) and bias its
specular reflection; for a metal, the specular reflection tinted by the base colour and its white
grazing Fresnel. The BSDF is linear in metallic, so a part-metal blends the two. The tables were
measured from Mitsuba's `principled` plugin (training/principled_albedo.py), the material model the
G-buffers' roughness, metallic and specular describe; `principled_albedo.safetensors` holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

TABLE_SIZE = 32  # roughness and n·v samples, at (i + 0.5) / TABLE_SIZE
SPECULAR_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the dielectric's `specular` (F0 = 0.08·specular)
ALBEDO_TABLE_PATH = Path(__file__).with_name("principled_albedo.safetensors")
TABLE_NAMES = ("dielectric_scale", "dielectric_bias", "metal_scale", "metal_bias")


def table_axis() -> list[float]:
    """Roughness and n·v at the table's samples."""
    return [(index + 0.5) / TABLE_SIZE for index in range(TABLE_SIZE)]


@dataclass(frozen=True)
class SurfaceAlbedo:
    """Per pixel `[...]`: the dielectric's scale and bias, the metal's scale and bias."""

    dielectric_scale: torch.Tensor
    dielectric_bias: torch.Tensor
    metal_scale: torch.Tensor
    metal_bias: torch.Tensor


def write_albedo_table(tables: dict[str, torch.Tensor], path: Path, source: str) -> None:
    """Write the tables (TABLE_NAMES) as safetensors, to a temporary name and renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(
        {name: tables[name].contiguous() for name in TABLE_NAMES}, str(tmp), metadata={"source": source}
    )
    tmp.replace(path)


@cache
def albedo_tables() -> dict[str, torch.Tensor]:
    """The measured tables: dielectric `[S, R, V]`, metal `[R, V]`."""
    tables = load_file(str(ALBEDO_TABLE_PATH))
    missing = set(TABLE_NAMES) - set(tables)
    if missing:
        raise ValueError(f"{ALBEDO_TABLE_PATH}: tables {sorted(missing)} are missing")
    return tables


def surface_albedo(roughness: torch.Tensor, n_dot_v: torch.Tensor, specular: torch.Tensor) -> SurfaceAlbedo:
    """Look the tables up (linear in each axis, clamped at the ends) for per-pixel roughness, n·v and
    specular, all of one shape `[...]`."""
    tables = albedo_tables()
    shape = roughness.shape
    # grid_sample's coordinates: x along n·v, y along roughness, z along specular, each in [-1, 1]
    x = n_dot_v.reshape(-1).float() * 2 - 1
    y = roughness.reshape(-1).float() * 2 - 1
    z = specular.reshape(-1).float().clamp(0, 1) * 2 - 1
    dielectric = torch.stack([tables["dielectric_scale"], tables["dielectric_bias"]])[None]  # [1, 2, S, R, V]
    # the specular axis has its samples at the ends (align_corners), roughness and n·v at cell centres
    specular_coordinate = z * (len(SPECULAR_LEVELS) - 1) / len(SPECULAR_LEVELS)
    grid = torch.stack([x, y, specular_coordinate], dim=-1).reshape(1, -1, 1, 1, 3)
    values = F.grid_sample(dielectric, grid, mode="bilinear", padding_mode="border", align_corners=False)
    dielectric_scale, dielectric_bias = values[0, :, :, 0, 0]
    metal = torch.stack([tables["metal_scale"], tables["metal_bias"]])[None]  # [1, 2, R, V]
    values = F.grid_sample(
        metal,
        torch.stack([x, y], dim=-1).reshape(1, -1, 1, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    metal_scale, metal_bias = values[0, :, :, 0]
    looked_up = (dielectric_scale, dielectric_bias, metal_scale, metal_bias)
    return SurfaceAlbedo(*(value.reshape(shape).double() for value in looked_up))
