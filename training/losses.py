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
    """Paper eq. 11 on log depth `[B, 1, F, H, W]`, per sample over its N masked pixels, then averaged:

        L = (1/N)·Σ Δ_i² − (1/(2N²))·(Σ Δ_i)²,   Δ_i = log d̂_i − log d_i

    (the scale-invariant log loss of Eigen et al. with λ = ½, which the paper calls scale-and-shift
    invariant after [23]). A global depth factor k makes every Δ_i = log k, which costs ½·(log k)²
    instead of (log k)²: half-invariant to scale, as eq. 11 is.
    """
    delta = (log_depth_prediction.float() - log_depth_target.float()).flatten(1)
    w = mask.float().expand_as(log_depth_prediction).flatten(1)
    count = w.sum(dim=1).clamp_min(1.0)
    squares = (w * delta**2).sum(dim=1) / count
    mean = (w * delta).sum(dim=1) / count
    return (squares - 0.5 * mean**2).mean()
