"""Keyframes reprojected into every frame by depth and cameras (beyond the paper; docs/MODEL.md).

A path-traced keyframe shows the true radiance of every surface point it sees. For a pixel of
another frame, its world position follows from the frame's planar depth and camera; projected
into the keyframe's camera it lands on a keyframe pixel, whose radiance is the answer up to
view-dependent effects, unless something else was in front there (a depth test against the
keyframe's own depth) or it falls outside the keyframe. That is exact geometry, which the network
should not have to learn: the adapter gets the reprojected radiance and a validity mask.

A pixel seen by several keyframes blends the two nearest in time (`KEYFRAMES_BLENDED`), so that
one view's highlight or path-tracing outlier is not copied alone into every frame it fills.

Cameras are camera-to-world `[4, 4]` (column vectors, translation in the last column; the camera
looks down -Z with +Y up, ARCHITECTURE §2); pixel centres as core/shading/rays.py.
"""

from __future__ import annotations

import math

import numpy as np

from renderflow.core.shading.rays import pixel_rays

# A reprojected point is visible in the keyframe when its depth there is within this fraction
# of the keyframe's own depth at that pixel.
DEPTH_TOLERANCE = 0.03

# Keyframes blended per pixel (the nearest in time that see it). Two measured best on the OOD split
# (gap 4, display-space PSNR on the pixels a keyframe sees: nearest alone 25.5 dB, two 26.6, three
# 26.4, all 26.1): a second view halves a view-dependent highlight or a path-tracing outlier that the
# nearest carries alone, farther views bring more geometric error than they average out.
KEYFRAMES_BLENDED = 2


def reproject(
    depth: np.ndarray,
    camera_to_world: np.ndarray,
    key_image: np.ndarray,
    key_depth: np.ndarray,
    key_camera_to_world: np.ndarray,
    vertical_fov_degrees: float,
) -> tuple[np.ndarray, np.ndarray]:
    """A keyframe seen from another frame: (image `[H, W, C]`, valid `[H, W, 1]` in {0, 1}).

    Args:
        depth: the frame's planar depth `[H, W, 1]` (inf on background, which is never valid).
        camera_to_world: the frame's camera `[4, 4]`.
        key_image: the keyframe's pixels `[H, W, C]` (any channels: radiance, model space).
        key_depth: the keyframe's planar depth `[H, W, 1]`.
        key_camera_to_world: the keyframe's camera `[4, 4]`.
        vertical_fov_degrees: the shared vertical field of view.
    """
    height, width = depth.shape[:2]
    tan_half = math.tan(math.radians(vertical_fov_degrees) / 2)
    finite = np.isfinite(depth[..., 0]) & (depth[..., 0] > 0)
    planar = np.where(finite, depth[..., 0], 1.0).astype(np.float64)
    points_cam = pixel_rays(height, width, vertical_fov_degrees) * planar[..., None]  # [H, W, 3]
    # frame camera -> world -> keyframe camera, as one matrix
    to_key = np.linalg.inv(np.asarray(key_camera_to_world, np.float64)) @ np.asarray(
        camera_to_world, np.float64
    )
    points_key = points_cam @ to_key[:3, :3].T + to_key[:3, 3]
    key_planar = -points_key[..., 2]
    in_front = key_planar > 1e-6
    safe = np.where(in_front, key_planar, 1.0)
    column = (points_key[..., 0] / (safe * tan_half * width / height) + 1) / 2 * width - 0.5
    row = (1 - points_key[..., 1] / (safe * tan_half)) / 2 * height - 0.5
    inside = in_front & (column > -0.5) & (column < width - 0.5) & (row > -0.5) & (row < height - 0.5)
    image, seen = _depth_tested_bilinear(key_image, key_depth[..., 0], row, column, key_planar)
    valid = finite & inside & seen
    image = np.where(valid[..., None], image, 0.0)
    return image.astype(np.float32), valid[..., None].astype(np.float32)


def _depth_tested_bilinear(
    image: np.ndarray, image_depth: np.ndarray, row: np.ndarray, column: np.ndarray, depth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`image` `[H, W, C]` at fractional pixel coordinates, blending only the (up to four) neighbours
    whose depth matches `depth` within DEPTH_TOLERANCE: no mixing across silhouettes. Returns the
    image and whether any neighbour matched."""
    height, width = image.shape[:2]
    row = np.clip(row, 0, height - 1)
    column = np.clip(column, 0, width - 1)
    top, left = np.floor(row).astype(np.int64), np.floor(column).astype(np.int64)
    fy, fx = row - top, column - left
    total = np.zeros((*row.shape, image.shape[-1]))
    weight_sum = np.zeros(row.shape)
    for dy, dx, weight in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        r, c = np.minimum(top + dy, height - 1), np.minimum(left + dx, width - 1)
        neighbour_depth = image_depth[r, c]
        with np.errstate(invalid="ignore"):
            matches = np.isfinite(neighbour_depth) & (
                np.abs(neighbour_depth - depth) <= DEPTH_TOLERANCE * neighbour_depth
            )
        weight = np.where(matches, weight + 1e-6, 0.0)  # + 1e-6: a matching neighbour at weight 0 counts
        total += weight[..., None] * image[r, c]
        weight_sum += weight
    seen = weight_sum > 0
    return total / np.maximum(weight_sum, 1e-12)[..., None], seen


def check_reprojection_inputs(
    depth: np.ndarray,
    camera_to_world: np.ndarray,
    vertical_fov_degrees: float,
    keyframes: dict[int, np.ndarray],
) -> None:
    """Refuse inputs the reprojection would turn into silent garbage or an IndexError deep inside."""
    if depth.ndim != 4 or depth.shape[-1] != 1:
        raise ValueError(f"depth: expected [N, H, W, 1], got {list(depth.shape)}")
    count, height, width = depth.shape[:3]
    if camera_to_world.shape != (count, 4, 4) or not np.isfinite(camera_to_world).all():
        raise ValueError(
            f"cameras: expected {count} finite 4x4 matrices, got shape {list(camera_to_world.shape)}"
        )
    if not math.isfinite(vertical_fov_degrees) or not 0 < vertical_fov_degrees < 180:
        raise ValueError(f"vertical field of view: expected degrees in (0, 180), got {vertical_fov_degrees}")
    if not keyframes:
        raise ValueError("keyframes: none given")
    for index, image in keyframes.items():
        if not 0 <= index < count:
            raise ValueError(f"keyframe at sequence index {index}: outside the {count} frames")
        if image.ndim != 3 or image.shape[:2] != (height, width):
            raise ValueError(
                f"keyframe at sequence index {index}: expected [{height}, {width}, C], "
                f"got {list(image.shape)}"
            )
        if not np.isfinite(image).all():
            raise ValueError(f"keyframe at sequence index {index}: holds NaN or infinite values")


def reproject_keyframes(
    depth: np.ndarray,
    camera_to_world: np.ndarray,
    vertical_fov_degrees: float,
    keyframes: dict[int, np.ndarray],
    frames: range | None = None,
    blended: int = KEYFRAMES_BLENDED,
) -> np.ndarray:
    """Every keyframe reprojected into each frame: per pixel, the `blended` keyframes nearest in time
    that see it, weighted by 1 / their distance in frames (a keyframe's own frame takes it alone).
    Returns `[F, H, W, C + 1]`: the image, then the validity mask.

    Args:
        depth: planar depth of the sequence `[N, H, W, 1]`.
        camera_to_world: cameras of the sequence `[N, 4, 4]`.
        vertical_fov_degrees: the vertical field of view.
        keyframes: {frame index in the sequence: image `[H, W, C]`}; blend in a display-like space
            (the pipeline's model space), where one view's highlight does not outweigh the other.
        frames: the sequence frames to produce (default: all N).
        blended: how many keyframes a pixel blends; 1 is the plain reprojection of the nearest.
    """
    check_reprojection_inputs(depth, camera_to_world, vertical_fov_degrees, keyframes)
    if blended < 1:
        raise ValueError(f"blended: expected at least 1 keyframe per pixel, got {blended}")
    frames = frames if frames is not None else range(depth.shape[0])
    channels = next(iter(keyframes.values())).shape[-1]
    out = np.zeros((len(frames), *depth.shape[1:3], channels + 1), np.float32)
    for slot, frame in enumerate(frames):
        total = np.zeros((*depth.shape[1:3], channels), np.float64)
        weight_sum = np.zeros((*depth.shape[1:3], 1), np.float64)
        taken = np.zeros((*depth.shape[1:3], 1), np.int64)  # keyframes blended so far per pixel
        for key in sorted(keyframes, key=lambda k: (abs(k - frame), k)):
            open_pixels = taken < blended
            if not open_pixels.any():
                break
            image, valid = reproject(
                depth[frame],
                camera_to_world[frame],
                keyframes[key],
                depth[key],
                camera_to_world[key],
                vertical_fov_degrees,
            )
            use = open_pixels & (valid > 0)
            distance = abs(key - frame)
            weight = use / distance if distance else use.astype(np.float64)
            total += weight * image
            weight_sum += weight
            taken += np.where(use, 1 if distance else blended, 0)
        seen = weight_sum > 0
        out[slot, ..., :channels] = np.where(seen, total / np.maximum(weight_sum, 1e-12), 0.0)
        out[slot, ..., -1:] = seen
    return out
