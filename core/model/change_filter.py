"""The network's change smoothed within what its prior shows as one surface (`pipeline.change_blur`).

What the network changes at the scale of its 8-pixel tokens (blotches, the token grid) did not
carry to scenes its generator did not make, while its change over whole surfaces did (docs/MODEL.md,
"Model v3"). A cross-bilateral filter keeps the latter and averages out the former: each pixel
takes the Gaussian-weighted mean of the change around it, weighted again by how alike the prior is
there (its model-space luminance), so the change does not bleed across the edges the prior shows,
its shadows' among them. An isotropic blur of the same size lost shadow contrast below the prior's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from renderflow.core.shading.lighting import LUMINANCE_WEIGHTS

CHANGE_BLUR_RANGE = 0.06  # model-space luminance (of [-1, 1]): prior pixels this far apart weigh e^-1/2


def smoothed_change(change: torch.Tensor, prior: torch.Tensor, sigma: float) -> torch.Tensor:
    """`change` `[N, 3, H, W]` averaged over a Gaussian of `sigma` pixels (> 0) and over pixels whose
    `prior` `[N, 3, H, W]` (model space) is alike (CHANGE_BLUR_RANGE); the borders replicated."""
    radius = max(1, math.ceil(2.5 * sigma))
    weights = torch.from_numpy(LUMINANCE_WEIGHTS).to(prior).view(1, 3, 1, 1)
    guide = (prior * weights).sum(1, keepdim=True)  # [N, 1, H, W]
    height, width = change.shape[-2:]
    padded_change = F.pad(change, (radius,) * 4, mode="replicate")
    padded_guide = F.pad(guide, (radius,) * 4, mode="replicate")
    total = torch.zeros_like(change)
    norm = torch.zeros_like(guide)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            rows, cols = slice(radius + dy, radius + dy + height), slice(radius + dx, radius + dx + width)
            alike = (padded_guide[..., rows, cols] - guide) ** 2 / (2 * CHANGE_BLUR_RANGE**2)
            weight = torch.exp(-alike - (dy * dy + dx * dx) / (2 * sigma**2))
            total += weight * padded_change[..., rows, cols]
            norm += weight
    return total / norm
