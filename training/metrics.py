"""Image metrics for rf-eval: pure functions on float arrays `[F, H, W, C]` in display space [0, 1].

Beauty is compared after the model's own display encoding (Reinhard, then sRGB: ARCHITECTURE
§2), the space in which the paper's PSNR/SSIM/LPIPS are meaningful for HDR images. `mask`
arguments are `[F, H, W, 1]` (1 = geometry).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from renderflow.core.model import encodings as enc
from renderflow.training.lpips import PerceptualFn

SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al. 2004
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2


def display(beauty_linear: np.ndarray) -> np.ndarray:
    """Scene-linear HDR -> [0, 1] display values (Reinhard, sRGB), the space of the metrics."""
    return (enc.beauty_to_model(beauty_linear) + 1.0) * 0.5


def _masked(values: np.ndarray, mask: np.ndarray | None) -> float:
    if mask is None:
        return float(values.mean())
    weights = np.broadcast_to(mask, values.shape)
    return float((values * weights).sum() / max(weights.sum(), 1.0))


def psnr(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB for values in [0, 1] (over the mask's pixels when given)."""
    mse = _masked((prediction.astype(np.float64) - reference) ** 2, mask)
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim_map(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM `[F, H, W, C]` with an 11-pixel Gaussian window (reflect padding); the window is
    separable, so it runs as a row pass and a column pass (22 taps a pixel instead of 121)."""
    radius = SSIM_WINDOW // 2
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64) - radius
    kernel_1d = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    kernel_1d /= kernel_1d.sum()
    channels = prediction.shape[-1]
    rows = kernel_1d.reshape(1, 1, 1, SSIM_WINDOW).expand(channels, 1, 1, SSIM_WINDOW)
    columns = kernel_1d.reshape(1, 1, SSIM_WINDOW, 1).expand(channels, 1, SSIM_WINDOW, 1)

    def blur(image: torch.Tensor) -> torch.Tensor:
        padded = F.pad(image, (radius,) * 4, mode="reflect")
        return F.conv2d(F.conv2d(padded, rows, groups=channels), columns, groups=channels)

    # [F, H, W, C] -> [F, C, H, W]
    x = torch.from_numpy(np.ascontiguousarray(prediction, dtype=np.float64)).permute(0, 3, 1, 2)
    y = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float64)).permute(0, 3, 1, 2)
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    covariance = blur(x * y) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + SSIM_C1) * (2 * covariance + SSIM_C2)) / (
        (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    )
    return value.permute(0, 2, 3, 1).numpy()


def ssim(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    return _masked(ssim_map(prediction, reference), mask)


def lpips(
    perceptual: PerceptualFn, prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Mean LPIPS over frames; with a mask, pixels outside it are taken from the reference first."""
    if mask is not None:
        prediction = np.where(mask > 0.5, prediction, reference)
    # [F, H, W, 3] in [0, 1] -> [F, 3, H, W] in [-1, 1]
    a = torch.from_numpy(np.ascontiguousarray(prediction, dtype=np.float32)).permute(0, 3, 1, 2) * 2 - 1
    b = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)).permute(0, 3, 1, 2) * 2 - 1
    with torch.no_grad():
        return float(perceptual(a, b).mean())


def flicker(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Temporal flicker: mean absolute error of the frame-to-frame differences (0 for one frame)."""
    if prediction.shape[0] < 2:
        return 0.0
    return float(np.abs(np.diff(prediction, axis=0) - np.diff(reference, axis=0)).mean())


def angular_error_degrees(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """Mean angle between unit normals `[F, H, W, 3]` over the mask, in degrees."""
    a = prediction / np.maximum(np.linalg.norm(prediction, axis=-1, keepdims=True), 1e-6)
    b = reference / np.maximum(np.linalg.norm(reference, axis=-1, keepdims=True), 1e-6)
    angles = np.degrees(np.arccos(np.clip((a * b).sum(-1, keepdims=True), -1.0, 1.0)))
    return _masked(angles, mask)


def ssi_log_depth_rmse(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """RMSE of log depth after the least-squares scale and shift (depth is relative)."""
    valid = (mask[..., 0] > 0.5) & np.isfinite(prediction[..., 0]) & np.isfinite(reference[..., 0])
    if not valid.any():
        return math.nan
    x = np.log(np.maximum(prediction[..., 0][valid], 1e-6))
    y = np.log(np.maximum(reference[..., 0][valid], 1e-6))
    design = np.stack([x, np.ones_like(x)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(np.sqrt(np.mean((scale * x + shift - y) ** 2)))


def rmse(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    return math.sqrt(_masked((prediction.astype(np.float64) - reference) ** 2, mask))


def paired_difference_interval(
    differences: np.ndarray, confidence: float = 0.9, samples: int = 10000
) -> tuple[float, float]:
    """The bootstrap interval of the mean of per-clip paired differences (B − A on the same clips).

    With 8-24 clips a few scenes swing a split's mean by tenths of a dB either way; a candidate whose
    interval holds 0 has not shown that it is better. Resamples clips with a fixed seed, so reruns agree.
    """
    if differences.ndim != 1 or differences.size < 2:
        raise ValueError(f"paired differences: expected two or more per-clip values, got {differences.shape}")
    rng = np.random.default_rng(0)
    means = differences[rng.integers(0, differences.size, (samples, differences.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))
