"""Training losses (paper eqs. 5, 7, 9-12): pure tensor functions on `[B, C, F, H, W]` videos.

`mask` arguments are `[B, 1, F, H, W]` weights (1 = geometry); None means every pixel.
"""

from __future__ import annotations

import torch


def bridge_loss(velocity: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the predicted velocity against (z1 - z_t)/(1 - t) (paper eq. 5)."""
    return torch.mean((velocity.float() - target.float()) ** 2)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `values` `[B, C, F, H, W]` over the pixels where `mask` is set."""
    if mask is None:
        return values.mean()
    weights = mask.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def gradient_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the images' horizontal and vertical finite differences (paper eq. 7).

    Zero whenever prediction and target differ by a constant: it looks at edges and contact
    shadows, not at the overall level.
    """
    error = prediction.float() - target.float()
    dx = error[..., :, 1:] - error[..., :, :-1]
    dy = error[..., 1:, :] - error[..., :-1, :]
    return dx.abs().mean() + dy.abs().mean()


def l1_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error (paper eqs. 9 and 12)."""
    return _masked_mean((prediction.float() - target.float()).abs(), mask)


def cosine_loss(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """1 - mean cosine between normals along C (paper eq. 10); zero for any positive rescaling."""
    cosine = torch.nn.functional.cosine_similarity(prediction.float(), target.float(), dim=1, eps=1e-6)
    return 1.0 - _masked_mean(cosine[:, None], mask)


def ssi_log_depth_loss(
    log_depth_prediction: torch.Tensor, log_depth_target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Scale-and-shift-invariant loss on log depth `[B, 1, F, H, W]` (paper eq. 11, after [23]).

    Per sample, the prediction is first aligned to the target by the least-squares scale s and
    shift b (s·x + b ≈ y over the masked pixels); the loss is the mean squared residual. A depth
    off by any factor (a shift in log depth), or a log depth scaled and shifted, scores zero.
    """
    x = log_depth_prediction.float().flatten(1)
    y = log_depth_target.float().flatten(1)
    w = mask.float().expand_as(log_depth_prediction).flatten(1)
    count = w.sum(dim=1).clamp_min(1.0)
    mean_x = (w * x).sum(dim=1) / count
    mean_y = (w * y).sum(dim=1) / count
    dx, dy = x - mean_x[:, None], y - mean_y[:, None]
    variance = (w * dx * dx).sum(dim=1)
    scale = (w * dx * dy).sum(dim=1) / variance.clamp_min(1e-12)
    residual = scale[:, None] * dx - dy
    return ((w * residual**2).sum(dim=1) / count).mean()
