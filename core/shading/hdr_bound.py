"""The brightest a rendered pixel may be (beyond the paper; docs/MODEL.md, "Model v3").

A surface that emits nothing cannot send more radiance than the brightest radiance that reaches it,
so no pixel may exceed the env map's peak; and what the network adds to the physics prior (shadows
take light away; inter-reflections add a fraction) stays within HDR_MARGIN of the prior's own
radiance there, or of the env map's mean where the prior is dark. The bound holds per channel (a
bound on luminance alone let blue "sequins" of 10× the prior's blue through, blue weighing 7 % of
luminance). Above HDR_KNEE of the bound each channel is compressed smoothly onto it: a saturated
latent can no longer turn into a 1000× firefly, nor into a coloured one. Everything is relative to
the env map, so scaling the env map by k scales the bound by k.
"""

from __future__ import annotations

import numpy as np

from renderflow.core.shading.lighting import light_scale

HDR_MARGIN = 2.0  # the prior's radiance times this: inter-reflection rarely doubles what the prior has
HDR_KNEE = 0.8  # luminance below this share of the bound is untouched


def hdr_bound(envmap_cam: np.ndarray, prior_linear: np.ndarray | None) -> np.ndarray:
    """Per-pixel, per-channel bound `[F, H, W, 3]` (or `[F, 1, 1, 3]` without a prior) from camera-view
    env maps `[F, He, We, 3]` and the physics prior's scene-linear image `[F, H, W, 3]`."""
    peak = np.asarray(envmap_cam, np.float64).max(axis=(1, 2))[:, None, None, :]  # each channel's
    if prior_linear is None:
        return peak
    mean = np.array([light_scale(frame[None]) for frame in envmap_cam])[:, None, None, None]
    return np.minimum(peak, HDR_MARGIN * np.maximum(np.asarray(prior_linear, np.float64), mean))


def bounded(beauty_linear: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """`beauty_linear` `[F, H, W, 3]` with each channel compressed above HDR_KNEE × `bound` (`[..., 3]`)
    so that it never exceeds it; C¹-continuous, untouched below the knee."""
    values = np.asarray(beauty_linear, np.float64)
    knee = HDR_KNEE * bound
    room = np.maximum(bound - knee, 1e-30)
    compressed = np.where(values > knee, knee + room * np.tanh(np.maximum(values - knee, 0.0) / room), values)
    return compressed.astype(np.float32)
