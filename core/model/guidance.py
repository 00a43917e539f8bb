"""Keyframe guidance, chosen once from a model's keyframe adapter (paper §4.4, docs/MODEL.md).

- no adapter: keyframes are refused;
- the paper's adapter: keyframe tokens for its cross-attention and aligned path;
- with `reprojection`: every keyframe also moved into each frame by depth and cameras, its latent
  and validity joining the aligned path;
- with `reprojected_source`: the bridge starts from the reprojected keyframes where they are valid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from renderflow.core.io.buffers import GBuffers
from renderflow.core.model import encodings as enc
from renderflow.core.model.keyframe import KeyframeAdapter, KeyframeTokens
from renderflow.core.shading.reprojection import reproject_keyframes

logger = logging.getLogger(__name__)

# model-space videos [N, f, H, W, 3] -> latents [N, C, f', h, w] (the pipeline's batched encode)
EncodeVideos = Callable[[np.ndarray], torch.Tensor]


@dataclass
class KeyframeInputs:
    """What the keyframes of one render give the model."""

    tokens: KeyframeTokens
    reprojected_model: np.ndarray | None  # [F, H, W, 4]: model-space image, validity; None: not used
    gives_source: bool  # the bridge starts from `reprojected_model` where it is valid

    def source(self, source_model: np.ndarray) -> np.ndarray:
        """The bridge source with the reprojected keyframes where they are valid."""
        if not self.gives_source or self.reprojected_model is None:
            return source_model
        return reprojected_source(self.reprojected_model, source_model)

    def valid_pixels(self, num_frames: int, height: int, width: int) -> np.ndarray:
        """Where each frame shows a keyframe's reprojection `[F, H, W]` bool (none without reprojection)."""
        if self.reprojected_model is None:
            return np.zeros((num_frames, height, width), bool)
        return self.reprojected_model[..., 3] > 0

    def reprojected_chunk(self, start: int, end: int, encode: EncodeVideos) -> torch.Tensor | None:
        """Frames [start, end) of the reprojection as `[1, C + 1, f', h, w]`: the image's latent and
        the validity averaged over each latent cell."""
        if self.reprojected_model is None:
            return None
        chunk = self.reprojected_model[start:end]
        latent = encode(chunk[None, ..., :3])  # [1, C, f', h, w]
        validity = torch.from_numpy(np.ascontiguousarray(chunk[..., 3])).to(latent.device)
        frames, height, width = latent.shape[2:]
        pooled = F.adaptive_avg_pool3d(validity[None, None], (frames, height, width))  # [1, 1, f', h, w]
        return torch.cat([latent, pooled.to(latent.dtype)], dim=1)


class KeyframeGuidance:
    """How a model takes keyframes; `prepare` is called once per render."""

    def __init__(
        self, adapter: KeyframeAdapter | None, encode_frames: Callable[[np.ndarray], torch.Tensor]
    ) -> None:
        self.adapter = adapter
        self.encode_frames = encode_frames  # [K, H, W, 3] model space -> latents [K, C, 1, h, w]
        self.reprojection = adapter is not None and bool(adapter.config["reprojection"])
        self.gives_source = adapter is not None and bool(adapter.config["reprojected_source"])

    def prepare(
        self,
        keyframes: dict[int, np.ndarray] | None,
        gbuffers: GBuffers,
        light_scale: float,
        camera_to_world: np.ndarray | None,
        vertical_fov_degrees: float | None,
    ) -> KeyframeInputs | None:
        """Keyframes {frame index: scene-linear `[H, W, 3]`} checked, divided by the light scale, in
        model space, encoded and (with reprojection) moved into every frame; None without keyframes."""
        if not keyframes:
            return None
        if self.adapter is None:
            raise ValueError("keyframes were given but this model has no keyframe adapter")
        num_frames, height, width = gbuffers.depth.shape[:3]
        for frame, image in keyframes.items():
            if not 0 <= frame < num_frames:
                raise ValueError(
                    f"keyframe at frame {frame} lies outside the sequence of {num_frames} frames"
                )
            if image.shape != (height, width, 3):
                raise ValueError(
                    f"keyframe {frame}: expected [{height}, {width}, 3], got {list(image.shape)}"
                )
        frames = sorted(keyframes)
        keyframes_model = {f: enc.beauty_to_model(keyframes[f] / np.float32(light_scale)) for f in frames}
        latents = self.encode_frames(np.stack([keyframes_model[f] for f in frames]))  # [K, C, 1, h, w]
        positions = torch.tensor(frames, dtype=torch.float32, device=latents.device)
        tokens = self.adapter.embed(latents.permute(2, 1, 0, 3, 4), positions)  # from [1, C, K, h, w]
        reprojected = None
        if self.reprojection:
            reprojected = self._reproject(keyframes_model, gbuffers, camera_to_world, vertical_fov_degrees)
        return KeyframeInputs(tokens, reprojected, self.gives_source)

    def _reproject(
        self,
        keyframes_model: dict[int, np.ndarray],
        gbuffers: GBuffers,
        camera_to_world: np.ndarray | None,
        vertical_fov_degrees: float | None,
    ) -> np.ndarray:
        """Keyframes reprojected into every frame `[F, H, W, 4]` (model-space image, validity); without
        cameras every pixel is marked invalid."""
        num_frames, height, width = gbuffers.depth.shape[:3]
        if camera_to_world is None or vertical_fov_degrees is None:
            logger.warning("no cameras or field of view given: keyframes are not reprojected into the frames")
            return np.zeros((num_frames, height, width, 4), np.float32)
        if camera_to_world.shape != (num_frames, 4, 4):
            raise ValueError(f"cameras: expected [{num_frames}, 4, 4], got {list(camera_to_world.shape)}")
        return reproject_keyframes(gbuffers.depth, camera_to_world, vertical_fov_degrees, keyframes_model)


def reprojected_source(reprojected_model: np.ndarray, shaded_model: np.ndarray) -> np.ndarray:
    """The bridge source with keyframes: the reprojected keyframes `[F, H, W, 4]` (model-space image,
    validity) where valid, the shaded source `[F, H, W, 3]` elsewhere."""
    return np.where(reprojected_model[..., 3:] > 0, reprojected_model[..., :3], shaded_model)
