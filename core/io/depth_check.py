"""Does a depth layer hold planar depth or ray distance? The normals say.

Surface normals follow from depth exactly (the cross product of neighbouring points), but only
under the right reading: planar depth read as ray distance (or the reverse) bends every surface
(13 % depth error at the frame's corners for a 40° camera). Comparing the normals each reading
implies with the normal layer catches a mislabelled depth kind (older Blender wrote ray distance
in the Depth pass) without trusting any header.
"""

from __future__ import annotations

import numpy as np

from renderflow.core.io.cameras import ray_length_factor

SMOOTH_DEPTH_STEP = 0.05  # neighbours further apart than 5 % of depth are a silhouette, not a surface


def median_normal_error_degrees(
    planar: np.ndarray, normals: np.ndarray, vertical_fov_degrees: float
) -> float:
    """Median angle between the normals implied by `planar` depth `[H, W, 1]` (inf = background) and
    camera-space `normals` `[H, W, 3]`, over smooth surface pixels; NaN when there are none."""
    height, width = planar.shape[:2]
    tan_half = np.tan(np.radians(vertical_fov_degrees) / 2)
    x = (2 * (np.arange(width) + 0.5) / width - 1)[None, :] * tan_half * width / height
    y = (1 - 2 * (np.arange(height) + 0.5) / height)[:, None] * tan_half
    z = planar[..., 0].astype(np.float64)
    finite = np.isfinite(z)
    z = np.where(finite, z, 0.0)
    points = np.stack([x * z, y * z, -z], axis=-1)  # [H, W, 3] in our camera frame
    along_x = points[:-1, 1:] - points[:-1, :-1]
    along_y = points[1:, :-1] - points[:-1, :-1]
    implied = np.cross(along_x, along_y)
    length = np.linalg.norm(implied, axis=-1)
    near = z[:-1, :-1]
    smooth = (
        finite[:-1, :-1]
        & finite[:-1, 1:]
        & finite[1:, :-1]
        & (np.abs(z[:-1, 1:] - near) < SMOOTH_DEPTH_STEP * near)
        & (np.abs(z[1:, :-1] - near) < SMOOTH_DEPTH_STEP * near)
        & (length > 0)
    )
    given = normals[:-1, :-1].astype(np.float64)
    given_length = np.linalg.norm(given, axis=-1)
    smooth &= given_length > 0.5
    if not smooth.any():
        return float("nan")
    cosine = np.abs((implied[smooth] * given[smooth]).sum(-1)) / (length[smooth] * given_length[smooth])
    return float(np.degrees(np.median(np.arccos(np.clip(cosine, 0.0, 1.0)))))


def depth_kind_errors(
    planar: np.ndarray, normals: np.ndarray, vertical_fov_degrees: float, read_as: str
) -> tuple[float, float]:
    """(error as read, error had the layer held the other kind): `read_as` "planar" or "ray"."""
    factor = ray_length_factor(*planar.shape[:2], vertical_fov_degrees)
    other = planar / factor if read_as == "planar" else planar * factor
    return (
        median_normal_error_degrees(planar, normals, vertical_fov_degrees),
        median_normal_error_degrees(other, normals, vertical_fov_degrees),
    )
