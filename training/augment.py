"""Augmentations of a training clip that the light transport makes exact: the path-traced beauty
of the changed scene is known without rendering it again.

- `mirror`: the clip seen in a mirror (every buffer flipped left-right). Flipping the image negates
  camera-space x: the normals' x, and the camera-view env map's longitude (its columns reversed,
  ARCHITECTURE §2's layout `camera_view_directions`); the cameras become `camera_to_world @ diag(-1,
  1, 1, 1)`, so every pixel still maps to the same world point and world direction (keyframe
  reprojection and the world env map are unchanged).
- `tint`: the lighting in another colour. A path tracer in RGB treats each channel on its own and
  is linear in the light it is given: env map × k (per channel) → beauty × k exactly. k is drawn
  per clip (log-normal, geometric mean 1, seeded by the clip's name), so a sunset's orange or a north
  sky's blue reach the network though the training env maps are near white.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.clips import Clip

AUGMENTATIONS = ("mirror", "tint")
TINT_LOG_SIGMA = 0.4  # per channel: about 1 clip in 5 has a channel twice another


def augmented_name(name: str, augmentation: str) -> str:
    """The name of a clip's copy under `augmentation`: `clip_0007+mirror`."""
    return f"{name}+{augmentation}"


def augment_clip(clip: Clip, augmentation: str) -> Clip:
    """The clip under one augmentation of `AUGMENTATIONS`, named by `augmented_name`."""
    if augmentation == "mirror":
        return mirror_clip(clip)
    if augmentation == "tint":
        return tint_clip(clip, clip_tint(clip.name))
    raise ValueError(f"augmentation {augmentation!r}: expected one of {', '.join(AUGMENTATIONS)}")


def mirror_clip(clip: Clip) -> Clip:
    """Every image flipped left-right `[F, H, W, C]`, the geometry and the env maps with it."""
    gbuffers = clip.gbuffers
    normal_cam = np.flip(gbuffers.normal, axis=2).copy()
    normal_cam[..., 0] *= -1
    mirrored = GBuffers(
        np.flip(gbuffers.albedo, axis=2).copy(),
        normal_cam,
        np.flip(gbuffers.depth, axis=2).copy(),
        np.flip(gbuffers.material, axis=2).copy(),
    )
    return dataclasses.replace(
        clip,
        name=augmented_name(clip.name, "mirror"),
        gbuffers=mirrored,
        beauty=np.flip(clip.beauty, axis=2).copy(),
        mask=np.flip(clip.mask, axis=2).copy(),
        envmap_cam=np.flip(clip.envmap_cam, axis=-2).copy(),  # [F, He, We, 3]: longitude reversed
        camera_to_world=clip.camera_to_world @ np.diag([-1.0, 1.0, 1.0, 1.0]),
    )


def clip_tint(name: str) -> np.ndarray:
    """The clip's light colour `[3]`: log-normal per channel, geometric mean 1 (the model normalises
    the light's level anyway), a pure function of `name`."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    log_colour = rng.normal(0.0, TINT_LOG_SIGMA, 3)
    return np.exp(log_colour - log_colour.mean()).astype(np.float32)


def tint_clip(clip: Clip, colour: np.ndarray) -> Clip:
    """The clip lit by its env maps × `colour` `[3]`: the beauty (background included) × `colour`."""
    return dataclasses.replace(
        clip,
        name=augmented_name(clip.name, "tint"),
        beauty=clip.beauty * colour,
        envmap_cam=clip.envmap_cam * colour,
        envmap_world=clip.envmap_world * colour,
    )
