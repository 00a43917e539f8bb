"""Camera matrices: the layouts renderers store them in, and the camera frame of ARCHITECTURE §2.

Our camera frame: +X right, +Y up, +Z towards the viewer (the camera looks down -Z), right-handed.
Matrices here are numpy `[4, 4]` in the column-vector layout (translation in the last column) unless
a name says otherwise; EXR headers store the transpose (Imath's row-vector layout, translation in
elements 12-14).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A renderer's camera axes -> ours. RenderMan's camera space is left-handed with +Z forward.
CAMERA_AXES = {
    "opengl": np.eye(3),
    "renderman": np.diag([1.0, 1.0, -1.0]),
}


def from_imath(matrix_imath: np.ndarray) -> np.ndarray:
    """EXR/Imath row-vector layout -> column-vector layout."""
    return np.asarray(matrix_imath, dtype=np.float64).reshape(4, 4).T.copy()


def to_imath(matrix: np.ndarray) -> np.ndarray:
    """Column-vector layout -> EXR/Imath row-vector layout (what `worldToCamera` holds)."""
    return np.asarray(matrix, dtype=np.float64).reshape(4, 4).T.copy()


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world `[4, 4]` of a camera at `position` looking at `target`, world +Y up."""
    back = np.asarray(position, np.float64) - target  # the camera looks down -Z: +Z points back
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, np.cross(back, right), back, position
    return matrix


def unreal_world_to_camera(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """World->camera rotation `[3, 3]` for an Unreal camera rotator (degrees).

    Unreal's world is left-handed and Z-up; a camera looks along its rotator's X axis with Y to
    the right and Z up (the rows of Unreal's FRotationMatrix). Our camera axes are then
    right = Y, up = Z, back = -X, all expressed in Unreal world coordinates, so the result maps
    Unreal world vectors straight into our right-handed camera frame.
    """
    sp, cp = math.sin(math.radians(pitch)), math.cos(math.radians(pitch))
    sy, cy = math.sin(math.radians(yaw)), math.cos(math.radians(yaw))
    sr, cr = math.sin(math.radians(roll)), math.cos(math.radians(roll))
    forward = np.array([cp * cy, cp * sy, sp])
    right = np.array([sr * sp * cy - cr * sy, sr * sp * sy + cr * cy, -sr * cp])
    up = np.array([-(cr * sp * cy + sr * sy), cy * sr - cr * sp * sy, cr * cp])
    return np.stack([right, up, -forward])


def ray_length_factor(height: int, width: int, vertical_fov_degrees: float) -> np.ndarray:
    """Per pixel `[H, W, 1]`: distance along the pixel's ray / planar depth, for a pinhole camera."""
    tan_half = math.tan(math.radians(vertical_fov_degrees) / 2)
    y = (1 - 2 * (np.arange(height) + 0.5) / height)[:, None] * tan_half
    x = (2 * (np.arange(width) + 0.5) / width - 1)[None, :] * tan_half * width / height
    return np.sqrt(1 + x**2 + y**2)[..., None]


@dataclass(frozen=True)
class CameraTrack:
    """A shot's cameras: per frame camera-to-world and vertical fov (NaN where the file gave none).

    Read from camera.json, .chan or USD by `camera_files`."""

    frames: list[int]
    camera_to_world: np.ndarray  # [F, 4, 4], column vectors
    vertical_fov_degrees: list[float]

    def world_to_camera_rotation(self, index: int) -> np.ndarray:
        return self.camera_to_world[index, :3, :3].T
