"""The renderer's pixel filter (beyond the paper; docs/MODEL.md, "Model v3").

A path tracer does not return the radiance at each pixel's centre: every pixel is a weighted mean
of samples spread over about two pixels (Mitsuba: a Gaussian of σ = 0.5 px; Arnold: a Gaussian of
width 2; Cycles: Blackman-Harris 1.5 px wide), so silhouettes, texture edges and highlights are
softened. G-buffers are sampled at pixel centres (an unjittered sample, or a "closest" filter for
depth and normals), and so is a shading computed from them. The rendered beauty gets the same kind
of filter: a Gaussian of `sigma` pixels, applied in scene-linear light (what a pixel filter
averages), separable, the borders replicated. It is linear, so exposure equivariance holds.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

PIXEL_FILTER_SIGMA = 0.5  # pixels: Mitsuba's default Gaussian, within the range of Arnold's and Cycles'


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images `[N, C, H, W]` under a separable Gaussian of `sigma` pixels (> 0), the borders
    replicated, in their own dtype."""
    radius = max(1, math.ceil(4 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-(offsets**2) / (2 * sigma**2))
    taps = (taps / taps.sum()).to(images.dtype)
    channels = images.shape[1]
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    rows = F.conv2d(padded, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def filter_pixels(beauty: np.ndarray, sigma: float, keep: np.ndarray | None = None) -> np.ndarray:
    """Scene-linear beauty `[F, H, W, C]` under a Gaussian pixel filter of `sigma` pixels (0: as it
    is); `keep` `[F, H, W]` marks pixels to leave as they are (keyframe pixels: a renderer has
    filtered them already)."""
    if sigma <= 0:
        return beauty
    image = torch.from_numpy(np.ascontiguousarray(beauty, dtype=np.float32)).permute(0, 3, 1, 2)
    result = gaussian_blur(image, sigma).permute(0, 2, 3, 1).numpy()
    if keep is not None:
        result = np.where(keep[..., None], beauty, result)
    return result.astype(beauty.dtype, copy=False)
