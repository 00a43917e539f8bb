"""Camera rays and projection, defined once for the physics prior (ARCHITECTURE §2).

The camera looks down -Z with +Y up; pixel (row, column) has its centre at ((column + 0.5) / W,
(row + 0.5) / H) of the image; depth is planar (distance along -Z).
"""

from __future__ import annotations

import math

import numpy as np


def pixel_rays(height: int, width: int, vertical_fov_degrees: float) -> np.ndarray:
    """Camera-space points at planar depth 1 through each pixel centre, `[H, W, 3]` float64 (z = -1)."""
    tan_half = math.tan(math.radians(vertical_fov_degrees) / 2)
    x = ((np.arange(width) + 0.5) / width * 2 - 1) * tan_half * width / height
    y = (1 - (np.arange(height) + 0.5) / height * 2) * tan_half
    return np.stack(np.broadcast_arrays(x[None, :], y[:, None], -np.ones((height, width))), axis=-1)


def view_rays(height: int, width: int, vertical_fov_degrees: float) -> np.ndarray:
    """Unit camera-space directions from the eye through each pixel centre, `[H, W, 3]` float64."""
    rays = pixel_rays(height, width, vertical_fov_degrees)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)
