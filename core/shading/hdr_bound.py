"""The brightest a rendered pixel may be (beyond the paper; docs/MODEL.md, "Model v3").

A surface that emits nothing cannot send more radiance than the brightest radiance that reaches it,
so no pixel may exceed the env map's peak; and what the network adds to the physics prior (shadows
take light away; inter-reflections add a fraction) stays within HDR_MARGIN of the prior's own
radiance there, or of the env map's mean where the prior is dark. Above HDR_KNEE of that bound the
luminance is compressed smoothly onto it: a saturated latent can no longer turn into a 1000× firefly.
Everything is relative to the env map, so scaling the env map by k scales the bound by k.
"""

from __future__ import annotations

import numpy as np

from renderflow.core.shading.lighting import LUMINANCE_WEIGHTS, light_scale

HDR_MARGIN = 2.0  # the prior's radiance times this: inter-reflection rarely doubles what the prior has
HDR_KNEE = 0.8  # luminance below this share of the bound is untouched


def hdr_bound(envmap_cam: np.ndarray, prior_linear: np.ndarray | None) -> np.ndarray:
    """Per-pixel luminance bound `[F, H, W, 1]` (or `[F, 1, 1, 1]` without a prior) from camera-view
    env maps `[F, He, We, 3]` and the physics prior's scene-linear image `[F, H, W, 3]`."""
    luminance = np.asarray(envmap_cam, np.float64) @ LUMINANCE_WEIGHTS  # [F, He, We]
    peak = luminance.max(axis=(1, 2))[:, None, None, None]
    if prior_linear is None:
        return peak
    mean = np.array([light_scale(frame[None]) for frame in envmap_cam])[:, None, None, None]
    prior = (np.asarray(prior_linear, np.float64) @ LUMINANCE_WEIGHTS)[..., None]
    return np.minimum(peak, HDR_MARGIN * np.maximum(prior, mean))


def bounded(beauty_linear: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """`beauty_linear` `[F, H, W, 3]` with its luminance compressed above HDR_KNEE × `bound` so that it
    never exceeds `bound` (hue kept); C¹-continuous, untouched below the knee."""
    luminance = np.asarray(beauty_linear, np.float64) @ LUMINANCE_WEIGHTS
    knee = HDR_KNEE * bound[..., 0]
    room = np.maximum(bound[..., 0] - knee, 1e-30)
    over = np.maximum(luminance - knee, 0.0)
    compressed = np.where(luminance > knee, knee + room * np.tanh(over / room), luminance)
    factor = np.where(luminance > 0, compressed / np.maximum(luminance, 1e-30), 1.0)
    return (beauty_linear * factor[..., None]).astype(np.float32)
