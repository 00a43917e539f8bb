"""The image conventions of ARCHITECTURE.md §2: buffers at rest <-> the model's [-1, 1] inputs.

Arrays at rest are numpy float32 `[F, H, W, C]`; the model works on torch `[B, C, F, H, W]`.
`frames_to_tensor` / `tensor_to_frames` are the one pair of functions that converts layouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Clamp the model-space value below 1 before inverting Reinhard (ARCHITECTURE §2): y/(1-y) -> inf at 1.
REINHARD_MAX = 0.999


@dataclass(frozen=True)
class DisparityRange:
    """Min and max disparity (1/depth) over a whole sequence: never per chunk, which flickers."""

    min: float
    max: float


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """`[F, H, W, C]` numpy -> `[1, C, F, H, W]` float32 torch (a batch of one clip)."""
    if frames.ndim != 4:
        raise ValueError(f"expected frames of shape [F, H, W, C], got {frames.shape}")
    # [F, H, W, C] -> [C, F, H, W] -> [1, C, F, H, W]
    return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(3, 0, 1, 2)[None]


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """`[1, C, F, H, W]` torch -> `[F, H, W, C]` float32 numpy."""
    if video.ndim != 5 or video.shape[0] != 1:
        raise ValueError(f"expected a tensor of shape [1, C, F, H, W], got {tuple(video.shape)}")
    # [1, C, F, H, W] -> [F, H, W, C]
    return video[0].permute(1, 2, 3, 0).float().cpu().numpy()


def srgb_oetf(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded [0, 1] (IEC 61966-2-1 piecewise curve)."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def srgb_eotf(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded [0, 1] -> linear [0, 1]; the inverse of `srgb_oetf`."""
    y = np.clip(encoded, 0.0, 1.0)
    return np.where(y <= 0.04045, y / 12.92, np.power((y + 0.055) / 1.055, 2.4)).astype(np.float32)


def reinhard(linear_hdr: np.ndarray) -> np.ndarray:
    """Scene-linear HDR [0, inf) -> [0, 1): x / (1 + x)."""
    x = np.maximum(linear_hdr, 0.0)
    return (x / (1.0 + x)).astype(np.float32)


def inverse_reinhard(tonemapped: np.ndarray) -> np.ndarray:
    """[0, 1) -> scene-linear HDR; clamps at REINHARD_MAX so that highlights stay finite."""
    y = np.clip(tonemapped, 0.0, REINHARD_MAX)
    return (y / (1.0 - y)).astype(np.float32)


def albedo_to_model(albedo_linear: np.ndarray) -> np.ndarray:
    """Linear albedo [0, 1] -> sRGB OETF -> [-1, 1]."""
    return srgb_oetf(albedo_linear) * 2.0 - 1.0


def model_to_albedo(albedo_model: np.ndarray) -> np.ndarray:
    return srgb_eotf((albedo_model + 1.0) * 0.5)


def normal_to_model(normal_cam: np.ndarray) -> np.ndarray:
    """Camera-space unit normals are already in [-1, 1]; they pass as they are."""
    return np.clip(normal_cam, -1.0, 1.0).astype(np.float32)


def model_to_normal(normal_model: np.ndarray) -> np.ndarray:
    """Renormalise a predicted normal to unit length (zero vectors stay zero)."""
    length = np.linalg.norm(normal_model, axis=-1, keepdims=True)
    return (normal_model / np.maximum(length, 1e-6)).astype(np.float32)


def disparity_range(depth_planar: np.ndarray) -> DisparityRange:
    """Disparity range over every finite, positive depth of the whole sequence."""
    valid = np.isfinite(depth_planar) & (depth_planar > 0)
    if not valid.any():
        raise ValueError("depth has no finite positive value: every pixel is background")
    disparity = 1.0 / depth_planar[valid]
    return DisparityRange(float(disparity.min()), float(disparity.max()))


def depth_to_model(depth_planar: np.ndarray, rng: DisparityRange) -> np.ndarray:
    """Planar depth `[..., 1]` -> normalised disparity in [-1, 1], repeated to 3 channels.

    Background (inf, or anything beyond the farthest geometry) maps to -1.
    """
    if depth_planar.shape[-1] != 1:
        raise ValueError(f"expected depth with 1 channel, got shape {depth_planar.shape}")
    with np.errstate(divide="ignore"):
        disparity = np.where(depth_planar > 0, 1.0 / depth_planar, 0.0)
    span = max(rng.max - rng.min, 1e-12)
    normalised = np.clip((disparity - rng.min) / span, 0.0, 1.0)
    return np.repeat(normalised * 2.0 - 1.0, 3, axis=-1).astype(np.float32)


def model_to_depth(depth_model: np.ndarray, rng: DisparityRange) -> np.ndarray:
    """Inverse of `depth_to_model` (channel mean): disparity -> planar depth `[..., 1]`.

    A normalised disparity of 0 with `rng.min == 0` is infinitely far and returns inf.
    """
    normalised = np.clip((depth_model.mean(axis=-1, keepdims=True) + 1.0) * 0.5, 0.0, 1.0)
    disparity = rng.min + normalised * (rng.max - rng.min)
    with np.errstate(divide="ignore"):
        return np.where(disparity > 0, 1.0 / disparity, np.inf).astype(np.float32)


def material_to_model(material: np.ndarray) -> np.ndarray:
    """Roughness, metallic, specular in [0, 1] -> [-1, 1]."""
    return (np.clip(material, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def model_to_material(material_model: np.ndarray) -> np.ndarray:
    return np.clip((material_model + 1.0) * 0.5, 0.0, 1.0).astype(np.float32)


def beauty_to_model(beauty_linear: np.ndarray) -> np.ndarray:
    """Scene-linear HDR beauty -> Reinhard -> sRGB OETF -> [-1, 1] (the training target)."""
    return srgb_oetf(reinhard(beauty_linear)) * 2.0 - 1.0


def model_to_beauty(beauty_model: np.ndarray) -> np.ndarray:
    """The model's [-1, 1] output -> scene-linear HDR (inverse sRGB, inverse Reinhard)."""
    return inverse_reinhard(srgb_eotf((beauty_model + 1.0) * 0.5))


def envmap_to_model(envmap_cam_hdr: np.ndarray, exposure_stops: float = 0.0) -> np.ndarray:
    """Camera-view HDR env map -> exposure -> Reinhard -> sRGB -> [-1, 1] (resizing is the pipeline's)."""
    return beauty_to_model(envmap_cam_hdr * np.float32(2.0**exposure_stops))
