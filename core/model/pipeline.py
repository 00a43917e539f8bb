"""RenderFlowPipeline: G-buffers + env map -> scene-linear HDR beauty, and image -> intrinsics.

Long sequences run in overlapping chunks (paper §4.4): the last frame of a chunk is the first of
the next and its predicted beauty conditions that chunk through the attribute embedder.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from safetensors.torch import load_file, save_file
from torch import nn

from renderflow.core.io.buffers import DEFAULT_VERTICAL_FOV_DEGREES, GBuffers
from renderflow.core.model import encodings as enc
from renderflow.core.model.autoencoder import Autoencoder, TinyAutoencoder, WanAutoencoder
from renderflow.core.model.bridge import BridgeConfig, sample
from renderflow.core.model.inverse import INTRINSICS, INVERSE_LORA, InverseAdapter
from renderflow.core.model.keyframe import KEYFRAME_LORA, KeyframeAdapter, KeyframeTokens
from renderflow.core.model.lora import (
    base_state_dict,
    has_lora,
    load_lora_state_dict,
    lora_state_dict,
    set_lora_enabled,
)
from renderflow.core.model.tiling import TiledAutoencoder
from renderflow.core.model.transformer import ATTRIBUTE_LATENTS, RenderFlowTransformer
from renderflow.core.model.windows import windowed, with_global_context
from renderflow.core.shading.deferred import shaded_source_model
from renderflow.core.shading.lighting import (
    LightingConfig,
    env_brackets_to_model,
    image_exposure_scale,
    normalised_envmap,
)
from renderflow.core.shading.reprojection import reproject_keyframes

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "renderflow-checkpoint"
CHECKPOINT_VERSION = 1
CONFIG_NAME = "config.json"
TRANSFORMER_WEIGHTS = "transformer.safetensors"
AUTOENCODER_WEIGHTS = "autoencoder.safetensors"
KEYFRAME_WEIGHTS = "keyframe_adapter.safetensors"
INVERSE_WEIGHTS = "inverse_adapter.safetensors"
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class PipelineConfig:
    """Inference settings saved with the checkpoint."""

    chunk_frames: int = 5  # frames per chunk: the training clip length (paper §4.4, A.1)
    # Frames larger than this (pixels, either side) are encoded and decoded in overlapping tiles.
    autoencoder_tile: int = 512
    autoencoder_tile_overlap: int = 64
    # Frames larger than this (pixels, either side) go through the transformer in overlapping
    # windows (core/model/windows.py), `transformer_window_batch` windows per forward pass.
    transformer_window: int = 256
    transformer_window_overlap: int = 64
    transformer_window_batch: int = 16
    # ... on the low frequencies of one pass over the whole frame shrunk to a window (windows.py)
    transformer_global_context: bool = True


@dataclass
class GBufferLatents:
    """A sequence's G-buffers encoded chunk by chunk on the pipeline's device: what a relight reuses."""

    num_frames: int
    height: int
    width: int
    chunks: list[tuple[int, int]]  # [start, end) of each chunk, as `plan_chunks` made them
    latents: list[torch.Tensor]  # per chunk [4, C, f', h, w]: albedo, normal, depth, material
    # The G-buffers stay beside their latents: a shaded bridge source and keyframe reprojection
    # are computed from them for each env map and set of keyframes.
    gbuffers: GBuffers

    @property
    def nbytes(self) -> int:
        """The latents' bytes (device memory); the G-buffers are the caller's arrays, counted by it."""
        return sum(latent.numel() * latent.element_size() for latent in self.latents)


def plan_chunks(num_frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """[start, end) of each chunk; consecutive chunks share one frame (paper §4.4)."""
    if chunk_frames < 2:
        raise ValueError(f"chunk_frames must be >= 2 to overlap, got {chunk_frames}")
    chunks = [(0, min(chunk_frames, num_frames))]
    while chunks[-1][1] < num_frames:
        start = chunks[-1][1] - 1
        chunks.append((start, min(start + chunk_frames, num_frames)))
    return chunks


def forward_velocity(
    transformer: RenderFlowTransformer,
    z_t: torch.Tensor,
    t: torch.Tensor,
    attribute_latent: torch.Tensor,
    env_latent: torch.Tensor,
    keyframe_adapter: KeyframeAdapter | None = None,
    keyframes: KeyframeTokens | None = None,
    first_frame: float = 0.0,
    frame_step: float = 1.0,
    reprojected: torch.Tensor | None = None,
) -> torch.Tensor:
    """The forward renderer's velocity; keyframe guidance (and its LoRA) only when keyframes are given.

    `reprojected` `[B, C + 1, F, h, w]`: the keyframes reprojected into the frames (latent, validity),
    for an adapter made with reprojection."""
    use_keyframes = keyframes is not None
    if use_keyframes and keyframe_adapter is None:
        raise ValueError("keyframes were given but the model has no keyframe adapter")
    if has_lora(transformer, KEYFRAME_LORA):
        set_lora_enabled(transformer, KEYFRAME_LORA, use_keyframes)
    if has_lora(transformer, INVERSE_LORA):
        set_lora_enabled(transformer, INVERSE_LORA, False)
    branches = None
    if keyframes is not None and keyframe_adapter is not None:
        frame_times = transformer.token_frame_times(z_t, first_frame, frame_step)
        positions = transformer.token_positions(z_t, first_frame, frame_step)
        branches = keyframe_adapter.branches(keyframes, frame_times, positions, reprojected)
    return transformer(z_t, t, attribute_latent, env_latent, branches)


def inverse_velocity(
    transformer: RenderFlowTransformer,
    adapter: InverseAdapter,
    z_t: torch.Tensor,
    t: torch.Tensor,
    intrinsic: str,
) -> torch.Tensor:
    """The inverse adapter's velocity from the image latent towards `intrinsic`'s latent."""
    if has_lora(transformer, KEYFRAME_LORA):
        set_lora_enabled(transformer, KEYFRAME_LORA, False)
    set_lora_enabled(transformer, INVERSE_LORA, True)
    tokens = transformer.patchify(adapter.inverse_embedder, z_t)
    return transformer.run(z_t, tokens, t, None, adapter.branches(intrinsic, z_t.shape[0]))


def cast_keeping_fp32(module: nn.Module, dtype: torch.dtype, keep: Sequence[str]) -> None:
    """Cast `module`'s parameters to `dtype`, except those under any name in `keep` (Wan's fp32 policy)."""
    for name, param in module.named_parameters():
        param.data = param.data.to(torch.float32 if set(name.split(".")) & set(keep) else dtype)


class RenderFlowPipeline:
    """The RenderFlow model, kept together: transformer, autoencoder, adapters, settings."""

    def __init__(
        self,
        transformer: RenderFlowTransformer,
        autoencoder: TinyAutoencoder | WanAutoencoder,
        keyframe_adapter: KeyframeAdapter | None = None,
        inverse_adapter: InverseAdapter | None = None,
        bridge: BridgeConfig | None = None,
        config: PipelineConfig | None = None,
        lighting: LightingConfig | None = None,
    ) -> None:
        lighting = lighting or LightingConfig()
        if transformer.config["env_latents"] != len(lighting.env_brackets):
            raise ValueError(
                f"transformer takes {transformer.config['env_latents']} env latents, the lighting "
                f"config has {len(lighting.env_brackets)} env brackets {lighting.env_brackets}"
            )
        if transformer.config["in_channels"] != autoencoder.latent_channels:
            raise ValueError(
                f"transformer takes {transformer.config['in_channels']} latent channels, "
                f"the autoencoder makes {autoencoder.latent_channels}"
            )
        self.transformer = transformer.eval()
        self.autoencoder = autoencoder.eval()
        self.keyframe_adapter = keyframe_adapter.eval() if keyframe_adapter is not None else None
        self.inverse_adapter = inverse_adapter.eval() if inverse_adapter is not None else None
        for adapter in (self.keyframe_adapter, self.inverse_adapter):
            if adapter is not None:
                adapter.attach(transformer)
        self.bridge = bridge or BridgeConfig()
        self.config = config or PipelineConfig()
        self.lighting = lighting
        if self._keyframes_give_the_source() and self.bridge.source != "shaded":
            raise ValueError("a keyframe adapter with reprojected_source needs the shaded bridge source")
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    # -- devices ----------------------------------------------------------------------------------
    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> RenderFlowPipeline:
        """Move to `device`; bf16 on CUDA by default (Wan's fp32 modules and the autoencoder stay fp32)."""
        device = torch.device(device)
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        keep = RenderFlowTransformer._keep_in_fp32_modules
        for module in self._modules():
            module.to(device)
        for adapted in (self.transformer, self.keyframe_adapter, self.inverse_adapter):
            if adapted is not None:
                cast_keeping_fp32(adapted, dtype, keep)
        self.device, self.dtype = device, dtype
        return self

    def _modules(self) -> list[nn.Module]:
        modules = [self.transformer, self.autoencoder, self.keyframe_adapter, self.inverse_adapter]
        return [module for module in modules if module is not None]

    @property
    def _ae(self) -> Autoencoder:
        return TiledAutoencoder(
            self.autoencoder, self.config.autoencoder_tile, self.config.autoencoder_tile_overlap
        )

    # -- forward rendering ------------------------------------------------------------------------
    @torch.no_grad()
    def encode_gbuffers(self, gbuffers: GBuffers) -> GBufferLatents:
        """Encode a sequence's G-buffers chunk by chunk, once for any number of env maps (relights)."""
        num_frames, height, width = gbuffers.validate()
        self._check_frame_size(height, width)
        rng = enc.disparity_range(gbuffers.depth)  # over the whole sequence, never per chunk
        buffers_model = np.stack(
            [
                enc.albedo_to_model(gbuffers.albedo),
                enc.normal_to_model(gbuffers.normal),
                enc.depth_to_model(gbuffers.depth, rng),
                enc.material_to_model(gbuffers.material),
            ]
        )  # [4, F, H, W, 3]
        chunks = plan_chunks(num_frames, self.config.chunk_frames)
        latents = [self._encode_videos(buffers_model[:, start:end]) for start, end in chunks]
        return GBufferLatents(num_frames, height, width, chunks, latents, gbuffers)

    @torch.no_grad()
    def render(
        self,
        gbuffers: GBuffers | GBufferLatents,
        envmap_cam: np.ndarray,
        keyframes: dict[int, np.ndarray] | None = None,
        steps: int = 1,
        exposure_stops: float = 0.0,
        progress: ProgressFn | None = None,
        vertical_fov_degrees: float | None = None,
        camera_to_world: np.ndarray | None = None,
    ) -> np.ndarray:
        """Render scene-linear HDR beauty `[F, H, W, 3]` float32.

        Args:
            gbuffers: the canonical G-buffers of the sequence, or their latents from `encode_gbuffers`.
            envmap_cam: camera-view HDR env map, `[He, We, 3]` for all frames or `[F, He, We, 3]`.
            keyframes: optional {frame index: scene-linear beauty `[H, W, 3]`} for keyframe guidance.
            steps: sampler steps; 1 is the method, more is the diffusion-style baseline.
            exposure_stops: exposure applied to the env map (the beauty follows it exactly when the
                model normalises its lighting).
            progress: called with (chunks done, chunks total).
            vertical_fov_degrees: the camera's vertical field of view, for a model whose bridge source is
                `shaded` (the view rays of the Deferred shading; DEFAULT_VERTICAL_FOV_DEGREES, logged,
                when not given) and for keyframe reprojection.
            camera_to_world: the cameras `[F, 4, 4]` (ARCHITECTURE §2's camera.json layout); a keyframe
                adapter with reprojection uses them with the depth to move keyframes into each frame.
        """
        encoded = gbuffers if isinstance(gbuffers, GBufferLatents) else self.encode_gbuffers(gbuffers)
        num_frames, height, width = encoded.num_frames, encoded.height, encoded.width
        env_cam, light_scale = normalised_envmap(
            self._check_envmap(envmap_cam, num_frames), self.lighting, exposure_stops
        )
        env_model = env_brackets_to_model(env_cam, self.lighting.env_brackets, num_frames, height, width)
        source_model = self._source_frames(encoded.gbuffers, env_cam, vertical_fov_degrees)
        keyframes_model = self._keyframes_model(keyframes, num_frames, height, width, light_scale)
        keyframe_tokens = self._keyframe_tokens(keyframes_model)
        reprojected_model = self._reprojected(
            keyframes_model, encoded.gbuffers, camera_to_world, vertical_fov_degrees
        )
        if reprojected_model is not None and self._keyframes_give_the_source() and source_model is not None:
            source_model = reprojected_source(reprojected_model, source_model)

        outputs: list[np.ndarray] = []  # model-space beauty, [f, H, W, 3] per chunk, on the host
        reference: torch.Tensor | None = None  # the previous chunk's last frame, on the device
        for index, ((start, end), gbuffer_latents) in enumerate(
            zip(encoded.chunks, encoded.latents, strict=True)
        ):
            # [brackets, C, f', h, w] -> [1, brackets·C, f', h, w]
            env_latent = self._encode_videos(env_model[:, start:end]).flatten(0, 1)[None]
            source = None if source_model is None else self._encode_videos(source_model[None, start:end])
            reprojected = (
                None if reprojected_model is None else self._reprojected_latent(reprojected_model[start:end])
            )
            beauty = self._render_chunk(
                gbuffer_latents,
                env_latent,
                end - start,
                reference,
                keyframe_tokens,
                start,
                steps,
                source,
                reprojected,
            )
            reference = beauty[:, :, -1:]
            # one copy to the host per chunk: device memory stays flat in the number of frames
            outputs.append(enc.tensor_to_frames(beauty if index == 0 else beauty[:, :, 1:]))
            if progress is not None:
                progress(index + 1, len(encoded.chunks))
        return enc.model_to_beauty(np.concatenate(outputs)) * np.float32(light_scale)

    def _keyframes_give_the_source(self) -> bool:
        adapter = self.keyframe_adapter
        return adapter is not None and bool(adapter.config["reprojected_source"])

    def _source_frames(
        self, gbuffers: GBuffers, envmap_cam: np.ndarray, vertical_fov_degrees: float | None
    ) -> np.ndarray | None:
        """The shaded bridge source in model space `[F, H, W, 3]`; None for the albedo source (its
        latent is already among the G-buffer latents)."""
        if self.bridge.source == "albedo":
            return None
        if vertical_fov_degrees is None:
            logger.warning(
                "no field of view given for the Deferred shading the model starts from; assuming %.0f "
                "degrees (rf-render --fov or camera.json)",
                DEFAULT_VERTICAL_FOV_DEGREES,
            )
            vertical_fov_degrees = DEFAULT_VERTICAL_FOV_DEGREES
        return shaded_source_model(gbuffers, envmap_cam, vertical_fov_degrees)

    def _reprojected(
        self,
        keyframes_model: dict[int, np.ndarray] | None,
        gbuffers: GBuffers,
        camera_to_world: np.ndarray | None,
        vertical_fov_degrees: float | None,
    ) -> np.ndarray | None:
        """Keyframes reprojected into every frame `[F, H, W, 4]` (model-space image, validity), for an
        adapter that takes them; without cameras every pixel is marked invalid."""
        adapter = self.keyframe_adapter
        if not keyframes_model or adapter is None or not adapter.config["reprojection"]:
            return None
        num_frames, height, width = gbuffers.depth.shape[:3]  # validated by encode_gbuffers
        if camera_to_world is None or vertical_fov_degrees is None:
            logger.warning("no cameras or field of view given: keyframes are not reprojected into the frames")
            return np.zeros((num_frames, height, width, 4), np.float32)
        if camera_to_world.shape != (num_frames, 4, 4):
            raise ValueError(f"cameras: expected [{num_frames}, 4, 4], got {list(camera_to_world.shape)}")
        return reproject_keyframes(gbuffers.depth, camera_to_world, vertical_fov_degrees, keyframes_model)

    def _reprojected_latent(self, reprojected_model: np.ndarray) -> torch.Tensor:
        """`[f, H, W, 4]` (image, validity) -> `[1, C + 1, f', h, w]`: the image's latent and the
        validity averaged over each latent cell."""
        latent = self._encode_videos(reprojected_model[None, ..., :3])  # [1, C, f', h, w]
        validity = torch.from_numpy(np.ascontiguousarray(reprojected_model[..., 3])).to(self.device)
        frames, height, width = latent.shape[2:]
        pooled = F.adaptive_avg_pool3d(validity[None, None], (frames, height, width))  # [1, 1, f', h, w]
        return torch.cat([latent, pooled.to(latent.dtype)], dim=1)

    def _encode_videos(self, videos_model: np.ndarray) -> torch.Tensor:
        """Model-space videos `[N, f, H, W, 3]` -> latents `[N, C, f', h, w]` in one batched encode."""
        padded = self._pad_frames(videos_model, axis=1)
        video = torch.from_numpy(padded).permute(0, 4, 1, 2, 3).to(self.device)  # [N, 3, f, H, W]
        return self._ae.encode(video).to(self.dtype)

    def _render_chunk(
        self,
        gbuffer_latents: torch.Tensor,
        env_latent: torch.Tensor,
        num_frames: int,
        reference: torch.Tensor | None,
        keyframes: KeyframeTokens | None,
        first_frame: int,
        steps: int,
        source: torch.Tensor | None = None,
        reprojected: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One chunk of `num_frames` frames from its latents `[4, C, f', h, w]` (albedo, normal, depth,
        material), `[1, brackets·C, f', h, w]` (env) and the bridge source `[1, C, f', h, w]` (None:
        the albedo) -> beauty `[1, 3, f, H, W]` in [-1, 1]."""
        albedo, normal, depth, material = gbuffer_latents.split(1, dim=0)
        reference_latent = torch.zeros_like(albedo)
        mask = torch.zeros_like(albedo[:, :1])
        if reference is not None:
            reference_latent[:, :, :1] = self._ae.encode(reference).to(self.dtype)
            mask[:, :, :1] = 1.0
        attributes = torch.cat([normal, depth, material, reference_latent, mask], dim=1)
        assert attributes.shape[1] == albedo.shape[1] * len(ATTRIBUTE_LATENTS) + 1

        reprojected = reprojected if keyframes is not None else None
        # the per-token inputs, stacked on channels so that windows cut them alike
        parts = [albedo.shape[1], attributes.shape[1], env_latent.shape[1]]
        per_token = [attributes, env_latent] + ([reprojected] if reprojected is not None else [])

        def window_velocity(
            stacked: torch.Tensor, keyframe_latents: torch.Tensor | None, t: torch.Tensor
        ) -> torch.Tensor:
            z_t, window_attributes, window_env, *rest = stacked.split(
                [*parts, *(p.shape[1] for p in per_token[2:])], dim=1
            )
            window_keyframes = None
            if keyframes is not None and keyframe_latents is not None:
                assert self.keyframe_adapter is not None
                window_keyframes = self.keyframe_adapter.embed(keyframe_latents, keyframes.frames)
            return forward_velocity(
                self.transformer,
                z_t,
                t.to(self.device).expand(z_t.shape[0]),
                window_attributes,
                window_env,
                self.keyframe_adapter,
                window_keyframes,
                first_frame=float(first_frame),
                frame_step=float(self._ae.temporal_factor),
                reprojected=rest[0] if rest else None,
            )

        window, overlap, batch = self._window_cells()

        def velocity(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if max(z_t.shape[-2:]) <= window:  # the whole frame at once, with the keyframe tokens made
                return forward_velocity(
                    self.transformer,
                    z_t,
                    t.to(self.device),
                    attributes,
                    env_latent,
                    self.keyframe_adapter,
                    keyframes,
                    first_frame=float(first_frame),
                    frame_step=float(self._ae.temporal_factor),
                    reprojected=reprojected,
                )
            stacked = torch.cat([z_t, *per_token], dim=1)
            keyframe_latents = None if keyframes is None else keyframes.latents

            def run(crops: torch.Tensor, keyframe_crops: torch.Tensor | None) -> torch.Tensor:
                return window_velocity(crops, keyframe_crops, t[:1])

            result = windowed(run, stacked, keyframe_latents, window, overlap, batch)
            if self.config.transformer_global_context:
                result = with_global_context(run, result, stacked, keyframe_latents, window)
            return result

        beauty_latent = sample(albedo if source is None else source, velocity, steps)
        return self._ae.decode(beauty_latent).float()[:, :, :num_frames]

    def _window_cells(self) -> tuple[int, int, int]:
        """The transformer's window and overlap in latent cells (whole patches), and windows per pass."""
        cell = self.autoencoder.spatial_factor * max(self.transformer.config["patch_size"][1:])
        window = max(cell, self.config.transformer_window // cell * cell) // self.autoencoder.spatial_factor
        overlap = self.config.transformer_window_overlap // cell * cell // self.autoencoder.spatial_factor
        return window, min(overlap, window // 2), self.config.transformer_window_batch

    def _keyframes_model(
        self, keyframes: dict[int, np.ndarray] | None, num_frames: int, height: int, width: int, scale: float
    ) -> dict[int, np.ndarray] | None:
        """Keyframes checked, divided by the light scale and put in model space: {frame: `[H, W, 3]`}."""
        if not keyframes:
            return None
        if self.keyframe_adapter is None:
            raise ValueError("keyframes were given but this model has no keyframe adapter")
        for frame, image in keyframes.items():
            if not 0 <= frame < num_frames:
                raise ValueError(
                    f"keyframe at frame {frame} lies outside the sequence of {num_frames} frames"
                )
            if image.shape != (height, width, 3):
                raise ValueError(
                    f"keyframe {frame}: expected [{height}, {width}, 3], got {list(image.shape)}"
                )
        return {
            frame: enc.beauty_to_model(keyframes[frame] / np.float32(scale)) for frame in sorted(keyframes)
        }

    def _keyframe_tokens(self, keyframes_model: dict[int, np.ndarray] | None) -> KeyframeTokens | None:
        if not keyframes_model or self.keyframe_adapter is None:
            return None
        frames = sorted(keyframes_model)
        stacked = np.stack([keyframes_model[f] for f in frames])  # [K, H, W, 3]
        # [K, H, W, 3] -> [K, 3, 1, H, W]: each keyframe encoded as a one-frame clip, in one call
        video = torch.from_numpy(stacked).permute(0, 3, 1, 2)[:, :, None].to(self.device)
        latents = self._ae.encode(video).to(self.dtype)  # [K, C, 1, h, w]
        latents = latents.permute(2, 1, 0, 3, 4)  # [1, C, K, h, w]
        positions = torch.tensor(frames, dtype=torch.float32, device=self.device)
        return self.keyframe_adapter.embed(latents, positions)

    @torch.no_grad()
    def reconstruct(self, beauty_linear: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """A scene-linear sequence `[F, H, W, 3]` through the autoencoder alone, as the model sees its
        targets (divided by `scale`, the light scale of a normalising model, and multiplied back): the
        ceiling of any render this model can make."""
        image_model = enc.beauty_to_model(beauty_linear / np.float32(scale))
        decoded = self._ae.decode(self._encode_videos(image_model[None])).float()[:, :, : len(beauty_linear)]
        return enc.model_to_beauty(enc.tensor_to_frames(decoded)) * np.float32(scale)

    # -- inverse rendering ------------------------------------------------------------------------
    @torch.no_grad()
    def decompose(
        self,
        image_linear: np.ndarray,
        targets: Sequence[str] = INTRINSICS,
        steps: int = 1,
        progress: ProgressFn | None = None,
    ) -> dict[str, np.ndarray]:
        """Intrinsic buffers of a scene-linear image sequence `[F, H, W, 3]`.

        Returns {name: `[F, H, W, C]`}: albedo (linear, C = 3), normal (camera space, C = 3),
        depth (relative planar depth: nearest possible 1, background inf, C = 1), roughness and
        metallic (C = 1). `progress` is called with (chunks done, chunks total).
        """
        if self.inverse_adapter is None:
            raise ValueError("this model has no inverse adapter: it cannot decompose images")
        if image_linear.ndim != 4 or image_linear.shape[-1] != 3:
            raise ValueError(f"image: expected [F, H, W, 3], got {image_linear.shape}")
        if not np.isfinite(image_linear).all():
            raise ValueError("image contains NaN or infinite values")
        adapter = self.inverse_adapter
        for target in targets:
            adapter.intrinsic_index(target)
        num_frames, height, width, _ = image_linear.shape
        self._check_frame_size(height, width)
        if self.lighting.normalise:  # a plate has no env map: normalise its exposure by itself
            image_linear = image_linear / np.float32(image_exposure_scale(image_linear))
        image_model = enc.beauty_to_model(image_linear)
        decoded: dict[str, list[np.ndarray]] = {target: [] for target in targets}
        chunks = plan_chunks(num_frames, self.config.chunk_frames)
        for index, (start, end) in enumerate(chunks):
            padded = self._pad_frames(image_model[start:end], axis=0)
            video = torch.from_numpy(padded).permute(3, 0, 1, 2)[None].to(self.device)  # [1, 3, f, H, W]
            z0 = self._ae.encode(video).to(self.dtype)
            for target in targets:

                def velocity(z_t: torch.Tensor, t: torch.Tensor, target: str = target) -> torch.Tensor:
                    return inverse_velocity(self.transformer, adapter, z_t, t.to(self.device), target)

                out = self._ae.decode(sample(z0, velocity, steps)).float()[:, :, : end - start]
                frames = enc.tensor_to_frames(out)
                decoded[target].append(frames if index == 0 else frames[1:])
            if progress is not None:
                progress(index + 1, len(chunks))
        return {
            target: _intrinsic_from_model(target, np.concatenate(parts)) for target, parts in decoded.items()
        }

    # -- shared helpers ---------------------------------------------------------------------------
    def _check_frame_size(self, height: int, width: int) -> None:
        multiple = self._ae.spatial_factor * max(self.transformer.config["patch_size"][1:])
        if height % multiple or width % multiple:
            raise ValueError(f"frame size {width}x{height} must be a multiple of {multiple} for this model")

    def _pad_frames(self, frames: np.ndarray, axis: int) -> np.ndarray:
        """Repeat the last frame until the autoencoder accepts the count (Wan: 1 + 4k)."""
        count = frames.shape[axis]
        padded_count = count
        while not self._ae.is_valid_frame_count(padded_count):
            padded_count += 1
        if padded_count == count:
            return np.ascontiguousarray(frames, dtype=np.float32)
        last = np.take(frames, [count - 1], axis=axis)
        repeats = np.repeat(last, padded_count - count, axis=axis)
        return np.ascontiguousarray(np.concatenate([frames, repeats], axis=axis), dtype=np.float32)

    def _check_envmap(self, envmap_cam: np.ndarray, num_frames: int) -> np.ndarray:
        """A camera-view env map for all frames `[He, We, 3]` or one per frame -> `[F, He, We, 3]`."""
        if envmap_cam.ndim == 3:
            envmap_cam = envmap_cam[None]
        if envmap_cam.ndim != 4 or envmap_cam.shape[-1] != 3 or envmap_cam.shape[0] not in (1, num_frames):
            raise ValueError(
                f"env map: expected [He, We, 3] or [{num_frames}, He, We, 3], got {list(envmap_cam.shape)}"
            )
        if not np.isfinite(envmap_cam).all():
            raise ValueError("env map contains NaN or infinite values")
        return np.broadcast_to(envmap_cam, (num_frames, *envmap_cam.shape[1:]))

    # -- checkpoints ------------------------------------------------------------------------------
    def save_pretrained(self, folder: Path) -> None:
        """Write config.json and the safetensors files; each file is written to a temp name and renamed."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(self.autoencoder, WanAutoencoder):
            autoencoder_entry = {"kind": "wan", "config": _plain_config(self.autoencoder.vae)}
        else:
            autoencoder_entry = {"kind": "tiny", "config": _plain_config(self.autoencoder)}
        config: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "transformer": _plain_config(self.transformer),
            "autoencoder": autoencoder_entry,
            "keyframe_adapter": _plain_config(self.keyframe_adapter) if self.keyframe_adapter else None,
            "inverse_adapter": _plain_config(self.inverse_adapter) if self.inverse_adapter else None,
            "bridge": asdict(self.bridge),
            "pipeline": asdict(self.config),
            "lighting": asdict(self.lighting),
        }
        _save_tensors(base_state_dict(self.transformer), folder / TRANSFORMER_WEIGHTS)
        _save_tensors(self.autoencoder.state_dict(), folder / AUTOENCODER_WEIGHTS)
        if self.keyframe_adapter is not None:
            tensors = {f"modules.{k}": v for k, v in self.keyframe_adapter.state_dict().items()}
            tensors |= {f"lora.{k}": v for k, v in lora_state_dict(self.transformer, KEYFRAME_LORA).items()}
            _save_tensors(tensors, folder / KEYFRAME_WEIGHTS)
        if self.inverse_adapter is not None:
            tensors = {f"modules.{k}": v for k, v in self.inverse_adapter.state_dict().items()}
            tensors |= {f"lora.{k}": v for k, v in lora_state_dict(self.transformer, INVERSE_LORA).items()}
            _save_tensors(tensors, folder / INVERSE_WEIGHTS)
        _atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2, default=_json_default))

    @classmethod
    def from_pretrained(cls, folder: Path, device: str | torch.device = "cpu") -> RenderFlowPipeline:
        """Load a checkpoint folder written by `save_pretrained` (local files only)."""
        folder = Path(folder)
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path}: no RenderFlow checkpoint here (config.json is missing)")
        config = json.loads(config_path.read_text())
        if config.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{config_path}: not a RenderFlow checkpoint (format {config.get('format')!r})")
        if config.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"{config_path}: checkpoint version {config.get('version')}, expected {CHECKPOINT_VERSION}"
            )

        transformer = RenderFlowTransformer.from_config(config["transformer"])
        _load_module(transformer, folder / TRANSFORMER_WEIGHTS)
        autoencoder: TinyAutoencoder | WanAutoencoder
        if config["autoencoder"]["kind"] == "wan":
            autoencoder = WanAutoencoder(AutoencoderKLWan.from_config(config["autoencoder"]["config"]))
        else:
            autoencoder = TinyAutoencoder.from_config(config["autoencoder"]["config"])
        _load_module(autoencoder, folder / AUTOENCODER_WEIGHTS)
        keyframe_adapter = (
            KeyframeAdapter.from_config(config["keyframe_adapter"]) if config["keyframe_adapter"] else None
        )
        inverse_adapter = (
            InverseAdapter.from_config(config["inverse_adapter"]) if config["inverse_adapter"] else None
        )
        pipeline = cls(
            transformer,
            autoencoder,
            keyframe_adapter,
            inverse_adapter,
            BridgeConfig(**{**config["bridge"], "train_times": tuple(config["bridge"]["train_times"])}),
            PipelineConfig(**config["pipeline"]),
            lighting_config(config.get("lighting", {})),
        )
        for adapter, name, weights in (
            (keyframe_adapter, KEYFRAME_LORA, KEYFRAME_WEIGHTS),
            (inverse_adapter, INVERSE_LORA, INVERSE_WEIGHTS),
        ):
            if adapter is not None:
                tensors = _read_tensors(folder / weights)
                modules = {
                    k.removeprefix("modules."): v for k, v in tensors.items() if k.startswith("modules.")
                }
                _load_state(adapter, modules, folder / weights)
                lora = {k.removeprefix("lora."): v for k, v in tensors.items() if k.startswith("lora.")}
                load_lora_state_dict(transformer, name, lora)
        return pipeline.to(device)


def reprojected_source(reprojected_model: np.ndarray, shaded_model: np.ndarray) -> np.ndarray:
    """The bridge source with keyframes: the reprojected keyframes `[F, H, W, 4]` (model-space image,
    validity) where valid, the shaded source `[F, H, W, 3]` elsewhere."""
    return np.where(reprojected_model[..., 3:] > 0, reprojected_model[..., :3], shaded_model)


def lighting_config(entry: dict[str, Any]) -> LightingConfig:
    """The checkpoint's `lighting` entry (absent in checkpoints before it: the paper's defaults)."""
    if "env_brackets" in entry:
        entry = {**entry, "env_brackets": tuple(entry["env_brackets"])}
    return LightingConfig(**entry)


def _intrinsic_from_model(target: str, frames_model: np.ndarray) -> np.ndarray:
    """Decoded model-space frames `[F, H, W, 3]` -> the intrinsic at rest."""
    if target == "albedo":
        return enc.model_to_albedo(frames_model)
    if target == "normal":
        return enc.model_to_normal(frames_model)
    if target == "depth":
        return enc.model_to_depth(frames_model, enc.DisparityRange(0.0, 1.0))
    return enc.model_to_material(frames_model.mean(axis=-1, keepdims=True))


def _plain_config(module: Any) -> dict[str, Any]:
    """A registered module's config without diffusers' private keys (`_name_or_path`, ...)."""
    return {key: value for key, value in module.config.items() if not key.startswith("_")}


def _json_default(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to config.json")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file is missing from the checkpoint")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from error


def _load_state(module: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    result = module.load_state_dict(tensors, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path}: weights do not fit {type(module).__name__} "
            f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


def _load_module(module: nn.Module, path: Path) -> None:
    _load_state(module, _read_tensors(path), path)
