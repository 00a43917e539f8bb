"""The classic baselines of the paper's Table 1, in torch, from the same G-buffers and env map.

- IBL: diffuse irradiance from the env map's order-2 spherical harmonics (Ramamoorthi and
  Hanrahan 2001) times albedo/π.
- Deferred: the same diffuse term times the principled diffuse lobe's albedo, plus GGX specular
  by the split sum (Karis 2013): a GGX-prefiltered env map looked up along the reflection, times
  the specular lobe's albedo. Both albedos are the principled BSDF's own per view angle, measured
  from Mitsuba (principled_albedo.py). No shadows, no interreflection.

Both work in camera space on the camera-view env map (ARCHITECTURE §2), so they take exactly
the model's inputs, plus the vertical field of view for the per-pixel view direction. Under a
uniform env map the Deferred shading sends back what the path tracer does (the principled BSDF is
not energy-conserving: a white rough dielectric returns up to 1.5 L at grazing angles).
Background pixels (infinite depth) show the env map along the view ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from renderflow.core.io.buffers import GBuffers
from renderflow.core.model import encodings as enc
from renderflow.core.shading import rays
from renderflow.core.shading.principled_albedo import surface_albedo

BASELINES = ("ibl", "deferred")
DIELECTRIC_F0_AT_SPECULAR_1 = 0.08  # Disney: F0 = 0.08·specular, 0.04 at the default 0.5
PREFILTER_ROUGHNESS = (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)  # levels of the prefiltered env map
PREFILTER_HEIGHT = 32  # rough levels are convolved at this lat-long height (the lobes are wide)


# -- directions -----------------------------------------------------------------------------------
def view_rays(height: int, width: int, vertical_fov_degrees: float) -> torch.Tensor:
    """Camera-space unit directions from the eye through each pixel centre, `[H, W, 3]` (-Z forward)."""
    return torch.from_numpy(rays.view_rays(height, width, vertical_fov_degrees))


def camera_view_directions(height: int, width: int) -> torch.Tensor:
    """Camera-space directions of the camera-view map's pixel centres, `[He, We, 3]` (ARCHITECTURE §2)."""
    u = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    v = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    phi, theta = 2 * math.pi * (0.5 - u)[None, :], math.pi * (0.5 - v)[:, None]
    return torch.stack(
        torch.broadcast_tensors(
            -torch.cos(theta) * torch.sin(phi), torch.sin(theta), -torch.cos(theta) * torch.cos(phi)
        ),
        dim=-1,
    )


def camera_view_uv(direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-view map coordinates (u, v) in [0, 1] of camera directions `[..., 3]`."""
    x, y, z = direction.unbind(-1)
    phi = torch.atan2(-x, -z)  # inverse of camera_view_directions
    theta = torch.asin((y / direction.norm(dim=-1).clamp_min(1e-12)).clamp(-1, 1))
    return 0.5 - phi / (2 * math.pi), 0.5 - theta / math.pi


def sample_camera_view(envmap_cam: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of camera-view maps `[N, He, We, 3]` along camera directions `[N, ..., 3]`."""
    u, v = camera_view_uv(direction)
    return sample_camera_view_uv(envmap_cam, u, v)


def sample_camera_view_uv(envmap_cam: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of camera-view maps `[N, He, We, 3]` at map coordinates `[N, ...]`."""
    num_maps, _, width, _ = envmap_cam.shape
    # wrap in u: one extra column on each side, then grid_sample with clamped borders
    padded = torch.cat([envmap_cam[:, :, -1:], envmap_cam, envmap_cam[:, :, :1]], dim=2)
    grid_x = (u * width + 1) / (width + 2) * 2 - 1
    grid_y = v * 2 - 1
    grid = torch.stack([grid_x, grid_y], dim=-1).reshape(num_maps, -1, 1, 2).float()
    # [N, He, We+2, 3] -> [N, 3, He, We+2]
    sampled = F.grid_sample(
        padded.permute(0, 3, 1, 2).float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled[..., 0].permute(0, 2, 1).reshape(*u.shape, 3)


def solid_angles(height: int, width: int) -> torch.Tensor:
    """Solid angle of each lat-long pixel `[He, 1]`; they sum to exactly 4π over the map."""
    edges = math.pi * (0.5 - torch.arange(height + 1, dtype=torch.float64) / height)
    band = torch.sin(edges[:-1]) - torch.sin(edges[1:])  # ∫cos θ dθ over the row
    return (band * 2 * math.pi / width)[:, None]


# -- spherical harmonics (IBL) --------------------------------------------------------------------
def sh_basis(direction: torch.Tensor) -> torch.Tensor:
    """The nine real SH functions of order ≤ 2 at unit directions `[..., 3]` -> `[..., 9]`."""
    x, y, z = direction.unbind(-1)
    return torch.stack(
        [
            0.282095 * torch.ones_like(x),
            0.488603 * y,
            0.488603 * z,
            0.488603 * x,
            1.092548 * x * y,
            1.092548 * y * z,
            0.315392 * (3 * z * z - 1),
            1.092548 * x * z,
            0.546274 * (x * x - y * y),
        ],
        dim=-1,
    )


SH_IRRADIANCE_BAND = (math.pi, *(2 * math.pi / 3,) * 3, *(math.pi / 4,) * 5)  # Â_l per coefficient


def sh_irradiance(envmap_cam: torch.Tensor, normal_cam: torch.Tensor) -> torch.Tensor:
    """E(n) = ∫ L(ω) max(0, n·ω) dω from order-2 SH; maps `[N, He, We, 3]`, normals `[N, ..., 3]`."""
    return sh_irradiance_of(sh_coefficients(envmap_cam), normal_cam)


def sh_coefficients(envmap_cam: torch.Tensor) -> torch.Tensor:
    """The order-2 SH projection `[N, 9, 3]` of maps `[N, He, We, 3]`."""
    _, height, width, _ = envmap_cam.shape
    directions = camera_view_directions(height, width)
    weights = solid_angles(height, width).expand(height, width)
    basis = sh_basis(directions) * weights[..., None]  # [He, We, 9]
    return torch.einsum("hwk,nhwc->nkc", basis, envmap_cam.double())


def sh_irradiance_of(coefficients: torch.Tensor, normal_cam: torch.Tensor) -> torch.Tensor:
    """Irradiance `[N, ..., 3]` at normals `[N, ..., 3]` from SH coefficients `[N, 9, 3]`."""
    num_maps = coefficients.shape[0]
    band = torch.tensor(SH_IRRADIANCE_BAND, dtype=torch.float64)
    normal_basis = sh_basis(F.normalize(normal_cam.double(), dim=-1))  # [N, ..., 9]
    flat = normal_basis.reshape(num_maps, -1, 9)
    irradiance = torch.einsum("npk,nkc->npc", flat * band, coefficients)
    return irradiance.reshape(*normal_cam.shape[:-1], 3).clamp_min(0.0)


# -- split-sum GGX (Deferred) ---------------------------------------------------------------------
def _area_downsample(envmap_cam: torch.Tensor, height: int) -> torch.Tensor:
    if envmap_cam.shape[1] <= height:
        return envmap_cam
    resized = F.interpolate(envmap_cam.permute(0, 3, 1, 2), size=(height, 2 * height), mode="area")
    return resized.permute(0, 2, 3, 1)


def prefiltered_envmaps(envmap_cam: torch.Tensor) -> list[torch.Tensor]:
    """The env map convolved with the GGX lobe (n = v = r) at each PREFILTER_ROUGHNESS level.

    Level 0 is the map itself (a mirror); the others are computed on a PREFILTER_HEIGHT map by
    brute force over every texel, weighted by D(h)·(r·l)·solid angle.
    """
    small = _area_downsample(envmap_cam.double(), PREFILTER_HEIGHT).float()
    _, height, width, _ = small.shape
    levels = [envmap_cam.float()]
    for weights in _prefilter_weights(height, width):
        convolved = torch.einsum("pq,nqc->npc", weights, small.reshape(small.shape[0], -1, 3))
        levels.append(convolved.reshape(small.shape))
    return levels


@cache
def _prefilter_weights(height: int, width: int) -> tuple[torch.Tensor, ...]:
    """The convolution matrix `[P_out, P_in]` of each rough level for a `height` x `width` map: the
    same for every env map, so made once (float32, 16 MB per level at 32×64)."""
    directions = camera_view_directions(height, width).reshape(-1, 3)  # [P, 3]
    texel_weights = solid_angles(height, width).expand(height, width).reshape(-1)
    cosine = directions @ directions.T  # [P_out, P_in]: r·l
    matrices = []
    for roughness in PREFILTER_ROUGHNESS[1:]:
        alpha2 = roughness**4
        cos_h2 = ((1 + cosine) / 2).clamp_min(0)  # cos² of the half angle between r and l
        distribution = alpha2 / (math.pi * (cos_h2 * (alpha2 - 1) + 1) ** 2)
        weights = distribution * cosine.clamp_min(0) * texel_weights[None, :]
        matrices.append((weights / weights.sum(dim=1, keepdim=True)).float())
    return tuple(matrices)


def sample_prefiltered(
    levels: list[torch.Tensor], direction: torch.Tensor, roughness: torch.Tensor
) -> torch.Tensor:
    """Radiance along `direction` `[N, ..., 3]` from the levels, linear in roughness `[N, ...]`."""
    u, v = camera_view_uv(direction)  # once for every level
    samples = torch.stack([sample_camera_view_uv(level, u, v) for level in levels])  # [Lv, N, ..., 3]
    grid = torch.tensor(PREFILTER_ROUGHNESS)
    position = torch.bucketize(roughness.clamp(0, 1).float().contiguous(), grid).clamp(1, len(grid) - 1)
    low, high = grid[position - 1], grid[position]
    blend = ((roughness - low) / (high - low))[..., None].float()
    lower = torch.gather(samples, 0, (position - 1)[None, ..., None].expand(1, *samples.shape[1:]))[0]
    upper = torch.gather(samples, 0, position[None, ..., None].expand(1, *samples.shape[1:]))[0]
    return lower * (1 - blend) + upper * blend


# -- the baselines --------------------------------------------------------------------------------
def render_baseline(
    method: str, gbuffers: GBuffers, envmap_cam: np.ndarray, vertical_fov_degrees: float
) -> np.ndarray:
    """Scene-linear beauty `[F, H, W, 3]` by `method` (ibl or deferred).

    Args:
        method: "ibl" or "deferred".
        gbuffers: canonical G-buffers `[F, H, W, C]`.
        envmap_cam: camera-view HDR env map `[He, We, 3]` or one per frame `[F, He, We, 3]`.
        vertical_fov_degrees: the camera's vertical field of view (for the view rays).
    """
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; expected one of {BASELINES}")
    num_frames, height, width = gbuffers.validate()
    env = torch.from_numpy(np.ascontiguousarray(envmap_cam, dtype=np.float32))
    if env.ndim == 3:
        env = env[None].expand(num_frames, *env.shape).contiguous()
    if env.ndim != 4 or env.shape[0] != num_frames or env.shape[-1] != 3:
        raise ValueError(
            f"env map: expected [He, We, 3] or [{num_frames}, He, We, 3], got {list(envmap_cam.shape)}"
        )
    view = view_rays(height, width, vertical_fov_degrees).expand(num_frames, height, width, 3)
    prefiltered_levels = prefiltered_envmaps(env) if method == "deferred" else []
    coefficients = sh_coefficients(env)
    out = np.empty((num_frames, height, width, 3), np.float32)
    for top in range(0, height, BLOCK_ROWS):  # row blocks: the double-precision temporaries stay small
        rows = slice(top, top + BLOCK_ROWS)
        out[:, rows] = _shade(method, gbuffers, env, coefficients, view[:, rows], prefiltered_levels, rows)
    return out


BLOCK_ROWS = 128  # rows shaded at once: 2K frames cost per pixel what small ones do


@dataclass
class Surface:
    """What a shader needs of the G-buffer rows, in camera space (double precision)."""

    albedo: torch.Tensor  # [F, h, W, 3]
    normal: torch.Tensor  # [F, h, W, 3], unit
    reflected: torch.Tensor  # [F, h, W, 3]: the view ray mirrored about the normal
    roughness: torch.Tensor  # [F, h, W]
    diffuse_colour: torch.Tensor  # [F, h, W, 3]: (1 - metallic)·the diffuse lobe's albedo·albedo
    specular_albedo: torch.Tensor  # [F, h, W, 3]: E_spec, the specular lobe's albedo (principled_albedo)
    specular_colour: torch.Tensor  # [F, h, W, 3]: F0, the reflectance at normal incidence
    to_eye: torch.Tensor  # [F, h, W, 3]: unit, from the surface towards the camera
    background: torch.Tensor  # [F, h, W] bool: no geometry


def surface(gbuffers: GBuffers, view: torch.Tensor, rows: slice) -> Surface:
    """The rows `rows` of every frame as a Surface; `view` `[F, h, W, 3]` are their view rays."""
    albedo = torch.from_numpy(gbuffers.albedo[:, rows]).double()
    normal = F.normalize(torch.from_numpy(gbuffers.normal[:, rows]).double(), dim=-1)
    material = torch.from_numpy(gbuffers.material[:, rows]).double()
    background = ~torch.isfinite(torch.from_numpy(gbuffers.depth[:, rows]))[..., 0]
    roughness, metallic, specular = material.unbind(-1)
    to_eye = -view
    n_dot_v = (normal * to_eye).sum(-1).clamp(1e-4, 1.0)
    reflected = 2 * n_dot_v[..., None] * normal - to_eye
    dielectric_f0 = (DIELECTRIC_F0_AT_SPECULAR_1 * specular)[..., None].expand_as(albedo)
    metal = metallic[..., None]
    f0 = dielectric_f0 * (1 - metal) + albedo * metal
    energy = surface_albedo(roughness, n_dot_v, specular)  # the principled BSDF's, per view angle
    metal_specular = energy.metal_scale[..., None] * albedo + energy.metal_bias[..., None]
    specular_albedo = (1 - metal) * energy.dielectric_bias[..., None] + metal * metal_specular
    diffuse_colour = (1 - metal) * energy.dielectric_scale[..., None] * albedo
    return Surface(
        albedo, normal, reflected, roughness, diffuse_colour, specular_albedo, f0, to_eye, background
    )


def _shade(
    method: str,
    gbuffers: GBuffers,
    env: torch.Tensor,
    coefficients: torch.Tensor,
    view: torch.Tensor,
    prefiltered_levels: list[torch.Tensor],
    rows: slice,
) -> np.ndarray:
    """The baseline for the rows `rows` of every frame: `[F, h, W, 3]`."""
    shading = surface(gbuffers, view, rows)
    diffuse_light = sh_irradiance_of(coefficients, shading.normal) / math.pi  # a white Lambertian's radiance
    if method == "ibl":
        beauty = shading.albedo * diffuse_light
    else:
        prefiltered = sample_prefiltered(prefiltered_levels, shading.reflected, shading.roughness).double()
        beauty = shading.diffuse_colour * diffuse_light + shading.specular_albedo * prefiltered
    sky = sample_camera_view(env, view).double()
    beauty = torch.where(shading.background[..., None], sky, beauty)
    return beauty.float().numpy()


def shaded_source_model(
    gbuffers: GBuffers, envmap_cam: np.ndarray, vertical_fov_degrees: float
) -> np.ndarray:
    """The bridge's `shaded` source (core/model/bridge.py): Deferred shading in model space `[F, H, W, 3]`.

    Diffuse SH irradiance plus split-sum GGX, background from the env map along the view ray: what
    a deferred shader computes exactly, so the network learns only what it misses (shadows,
    inter-reflection, occlusion).
    """
    return enc.beauty_to_model(render_baseline("deferred", gbuffers, envmap_cam, vertical_fov_degrees))
