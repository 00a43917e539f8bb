"""Lighting normalisation and the HDR env encoding (beyond the paper; docs/MODEL.md, docs/DECISIONS.md).

Light transport is linear in the illumination: scaling the env map by k scales the beauty by k.
With `LightingConfig.normalise`, the model renders under the env map divided by a scalar light
scale computed from it (the solid-angle-weighted mean luminance, `light_scale`) and the result is
multiplied back, so that this holds exactly by construction whatever the training data's range.
Keyframes are divided by the same scale.

Reinhard alone flattens every light above ~10 to white: the model would see how large the sun is
but not how bright. `env_brackets` stacks the camera-view env map encoded at several exposures
(stops; `(0.0,)` is the paper's single Reinhard LDR), so that the sun's radiance relative to the
sky stays readable in the darker brackets. Each bracket is encoded by the autoencoder like the
paper's env map, and the transformer's env embedder takes one latent per bracket.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from renderflow.core.model import encodings as enc
from renderflow.core.shading.deferred import solid_angles

# Rec.709 luminance weights: the env maps are linear Rec.709 (ARCHITECTURE §2).
LUMINANCE_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)
# Below this mean luminance an env map gives no light to normalise by.
MIN_LIGHT_SCALE = 1e-8
# `decompose` sees a plate at this mean luminance (mid-grey), whatever its exposure.
PLATE_MEAN_LUMINANCE = 0.18


@dataclass(frozen=True)
class LightingConfig:
    """How the env map reaches the model; saved in the checkpoint's config.json."""

    normalise: bool = False  # render under env / light_scale(env), multiply the beauty back
    env_brackets: tuple[float, ...] = (0.0,)  # exposures (stops) of the stacked env encodings


def light_scale(envmap_cam: np.ndarray) -> float:
    """Mean luminance over the sphere of camera-view (or world) lat-long maps `[..., He, We, 3]`.

    Linear in the map (light_scale(k·L) = k·light_scale(L)) and the same for every view of one
    environment, so the frames of a shot share it. Raises ValueError for a black map.
    """
    if envmap_cam.ndim < 3 or envmap_cam.shape[-1] != 3:
        raise ValueError(f"env map: expected [..., He, We, 3], got {list(envmap_cam.shape)}")
    height, width = envmap_cam.shape[-3:-1]
    weights = solid_angles(height, width).numpy()  # [He, 1]
    luminance = np.asarray(envmap_cam, np.float64) @ LUMINANCE_WEIGHTS  # [..., He, We]
    per_map = (luminance * weights).sum(axis=(-2, -1)) / (4 * np.pi)
    scale = float(np.mean(per_map))
    if not scale > MIN_LIGHT_SCALE:
        raise ValueError(
            f"env map is black (mean luminance {scale:.3g}): there is no light to render with; "
            "check its exposure or colour space"
        )
    return scale


def image_exposure_scale(image_linear: np.ndarray) -> float:
    """What a scene-linear image sequence `[..., H, W, 3]` is divided by to have mean luminance 0.18:
    a plate has no env map to normalise by, so `decompose` normalises by the image itself."""
    mean = float(np.mean(np.asarray(image_linear, np.float64) @ LUMINANCE_WEIGHTS))
    return max(mean, MIN_LIGHT_SCALE) / PLATE_MEAN_LUMINANCE


def normalised_envmap(
    envmap_cam: np.ndarray, lighting: LightingConfig, exposure_stops: float = 0.0
) -> tuple[np.ndarray, float]:
    """The env map after exposure, divided by its light scale when `lighting.normalise`: (map, scale).

    The beauty rendered under the returned map, times the scale, is the beauty under the input.
    """
    exposed = np.asarray(envmap_cam, np.float32) * np.float32(2.0**exposure_stops)
    scale = light_scale(exposed) if lighting.normalise else 1.0
    return (exposed / np.float32(scale)).astype(np.float32), scale


def envmap_to_model_frames(
    envmap_cam: np.ndarray, exposure_stops: float, num_frames: int, height: int, width: int
) -> np.ndarray:
    """Camera-view HDR env map(s) -> model space at `exposure_stops`, resized to the frame: `[F, H, W, 3]`."""
    if envmap_cam.ndim == 3:
        envmap_cam = envmap_cam[None]
    env_model = torch.from_numpy(enc.envmap_to_model(envmap_cam, exposure_stops)).permute(0, 3, 1, 2)
    resized = F.interpolate(
        env_model, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    ).permute(0, 2, 3, 1)  # [F, 3, H, W] -> [F, H, W, 3]
    return np.broadcast_to(resized.numpy(), (num_frames, height, width, 3)).copy()  # writable for torch


def env_brackets_to_model(
    envmap_cam: np.ndarray, brackets: tuple[float, ...], num_frames: int, height: int, width: int
) -> np.ndarray:
    """Every exposure bracket of the env map in model space: `[len(brackets), F, H, W, 3]`."""
    return np.stack(
        [envmap_to_model_frames(envmap_cam, stops, num_frames, height, width) for stops in brackets]
    )
