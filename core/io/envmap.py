"""Lat-long HDR env maps: reading, orientation (yaw, flip, exposure) and re-projection into a camera's view.

The mapping is ARCHITECTURE §2's, exactly: a world-space map has its centre facing +Z, a quarter
from the left facing +X and its top row facing +Y; the camera-view map has the same (u, v) in the
camera frame turned 180° about Y, so its centre shows what the camera looks at (-Z).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderflow.core.io import colour
from renderflow.core.io.exr import ExrImage, read_exr

logger = logging.getLogger(__name__)

NEGATIVE_ENERGY_TOLERANCE = 0.01  # negative radiance up to 1 % of the positive is ringing: clamped
ASPECT_TOLERANCE = 0.02  # lat-long maps are 2:1; a few pixels off is tolerated (odd sizes)


class EnvMapError(ValueError):
    """An env map that cannot be used; the message names the file and what was expected."""


@dataclass(frozen=True)
class EnvTransform:
    """How to orient a source env map in the scene.

    yaw_degrees: turns the environment about +Y; content at azimuth φ moves to φ + yaw
        (φ = 0 faces +Z, φ = 90° faces +X).
    flip: mirror left-right, for maps written with the opposite horizontal convention.
    exposure_stops: multiply the radiance by 2^stops.
    """

    yaw_degrees: float = 0.0
    flip: bool = False
    exposure_stops: float = 0.0


def read_envmap(path: Path) -> np.ndarray:
    """A lat-long HDR env map (.exr or .hdr) as `[H, W, 3]` linear radiance."""
    image = read_exr(path)
    return envmap_pixels(image)


def envmap_pixels(image: ExrImage) -> np.ndarray:
    names = ["R", "G", "B"]
    if not all(name in image.channels for name in names):
        raise EnvMapError(f"{image.path}: an env map needs R, G, B channels; the file has {image.channels}")
    pixels = image.select(names)
    if image.integer:  # a JPEG/PNG env map: display-referred, decoded with a warning
        pixels = colour.display_referred_to_linear(pixels, image.path)
    height, width = pixels.shape[:2]
    if abs(width / height - 2.0) > 2.0 * ASPECT_TOLERANCE:
        raise EnvMapError(
            f"{image.path}: {width}x{height} is not a 2:1 lat-long (equirectangular) env map; "
            "cube maps and mirror balls must be converted first"
        )
    bad = int((~np.isfinite(pixels)).any(axis=-1).sum())
    if bad:
        raise EnvMapError(f"{image.path}: {bad} env-map pixels are NaN or inf")
    if pixels.min() < 0:
        negative = -pixels[pixels < 0].sum()
        if negative > NEGATIVE_ENERGY_TOLERANCE * pixels[pixels > 0].sum():
            raise EnvMapError(
                f"{image.path}: env-map radiance must be >= 0; {int((pixels < 0).sum())} values are negative "
                f"(down to {pixels.min():.4g}), too many to be a resize filter's ringing: clamp them at 0 "
                "(Nuke: Clamp, oiiotool --clamp:min=0) or check the map's colour conversion"
            )
        logger.warning(
            "%s: %d negative values (down to %.3g, a resize filter's ringing?) clamped to 0",
            image.path,
            int((pixels < 0).sum()),
            pixels.min(),
        )
        pixels = np.maximum(pixels, 0.0)
    return pixels


def latlong_directions(height: int, width: int) -> np.ndarray:
    """World-space unit directions of a lat-long map's pixel centres, `[H, W, 3]`."""
    phi, theta = _angles(height, width)
    return np.stack(
        np.broadcast_arrays(np.cos(theta) * np.sin(phi), np.sin(theta), np.cos(theta) * np.cos(phi)), axis=-1
    )


def camera_view_directions(height: int, width: int) -> np.ndarray:
    """Camera-frame unit directions of the camera-view map's pixel centres (centre looks down -Z)."""
    phi, theta = _angles(height, width)
    return np.stack(
        np.broadcast_arrays(-np.cos(theta) * np.sin(phi), np.sin(theta), -np.cos(theta) * np.cos(phi)),
        axis=-1,
    )


def _angles(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    return 2 * math.pi * (0.5 - u)[None, :], math.pi * (0.5 - v)[:, None]


def direction_to_uv(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World direction(s) `[..., 3]` -> (u, v) in [0, 1] of the world-space lat-long map."""
    x, y, z = direction[..., 0], direction[..., 1], direction[..., 2]
    phi = np.arctan2(x, z)
    theta = np.arcsin(np.clip(y / np.linalg.norm(direction, axis=-1), -1.0, 1.0))
    return 0.5 - phi / (2 * math.pi), 0.5 - theta / math.pi


def sample_latlong(envmap: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Bilinear lookup of `[He, We, 3]` along world directions `[..., 3]`; wraps in u, clamps in v."""
    height, width = envmap.shape[:2]
    u, v = direction_to_uv(direction)
    x = u * width - 0.5
    y = np.clip(v * height - 0.5, 0.0, height - 1.0)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, x1 = x0 % width, (x0 + 1) % width
    y1 = np.minimum(y0 + 1, height - 1)
    top = envmap[y0, x0] * (1 - fx) + envmap[y0, x1] * fx
    bottom = envmap[y1, x0] * (1 - fx) + envmap[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def prefilter(envmap: np.ndarray, width: int) -> np.ndarray:
    """Box-average `envmap` down to about twice `width`, so that point lookups do not alias a sun."""
    factor = envmap.shape[1] // (2 * width)
    if factor <= 1:
        return envmap
    height_out, width_out = envmap.shape[0] // factor, envmap.shape[1] // factor
    cropped = envmap[: height_out * factor, : width_out * factor]
    # [H, W, 3] -> [H/f, f, W/f, f, 3] -> mean over the f x f blocks
    return cropped.reshape(height_out, factor, width_out, factor, 3).mean(axis=(1, 3))


def camera_view_envmap(
    envmap_world: np.ndarray,
    camera_to_world: np.ndarray,
    height: int,
    width: int,
    transform: EnvTransform = EnvTransform(),
) -> np.ndarray:
    """Re-project a world-space lat-long map into the camera's view, `[height, width, 3]`.

    `camera_to_world` is the camera's rotation `[3, 3]` (or its full `[4, 4]` matrix).
    """
    return _reproject(prefilter(envmap_world, width), camera_to_world, height, width, transform)


def _reproject(
    envmap_world: np.ndarray, camera_to_world: np.ndarray, height: int, width: int, transform: EnvTransform
) -> np.ndarray:
    rotation = np.asarray(camera_to_world, dtype=np.float64)[:3, :3]
    directions_world = camera_view_directions(height, width) @ rotation.T
    yaw = math.radians(transform.yaw_degrees)
    # look up the source map at R_y(-yaw)·d: content at φ then shows at φ + yaw
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    x, y, z = directions_world[..., 0], directions_world[..., 1], directions_world[..., 2]
    source = np.stack([x * cos_yaw - z * sin_yaw, y, x * sin_yaw + z * cos_yaw], axis=-1)
    if transform.flip:
        source[..., 0] = -source[..., 0]
    radiance = sample_latlong(envmap_world, source)
    return (radiance * np.float32(2.0**transform.exposure_stops)).astype(np.float32)


def camera_view_envmaps(
    envmap_world: np.ndarray,
    cameras_to_world: np.ndarray,
    height: int,
    width: int,
    transform: EnvTransform = EnvTransform(),
) -> np.ndarray:
    """One camera-view map per frame for cameras `[F, 3|4, 3|4]`: `[F, height, width, 3]`."""
    filtered = prefilter(envmap_world, width)  # once for the sequence
    return np.stack([_reproject(filtered, camera, height, width, transform) for camera in cameras_to_world])
