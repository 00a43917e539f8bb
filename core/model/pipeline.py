"""RenderFlowPipeline: G-buffers + env map -> scene-linear HDR beauty, and image -> intrinsics.

Long sequences run in overlapping chunks (paper §4.4): the last frame of a chunk is the first of
the next and its predicted beauty conditions that chunk through the attribute embedder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from renderflow.core.io.buffers import GBuffers
from renderflow.core.model import encodings as enc
from renderflow.core.model.autoencoder import Autoencoder, TinyAutoencoder, WanAutoencoder
from renderflow.core.model.bridge import BridgeConfig, sample
from renderflow.core.model.change_filter import smoothed_change
from renderflow.core.model.guidance import KeyframeGuidance
from renderflow.core.model.inverse import INTRINSICS, INVERSE_LORA, InverseAdapter
from renderflow.core.model.keyframe import KEYFRAME_LORA, KeyframeAdapter
from renderflow.core.model.lora import selected_lora
from renderflow.core.model.sources import BridgeSource
from renderflow.core.model.tiling import TiledAutoencoder
from renderflow.core.model.transformer import RenderFlowTransformer, attribute_latent
from renderflow.core.model.velocity import ChunkInputs, WindowPlan, chunk_velocity, inverse_velocity
from renderflow.core.shading.hdr_bound import bounded, hdr_bound
from renderflow.core.shading.lighting import (
    LightingConfig,
    env_brackets_to_model,
    image_exposure_scale,
    normalised_envmap,
)
from renderflow.core.shading.pixel_filter import filter_pixels

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
ADAPTER_LORAS = (KEYFRAME_LORA, INVERSE_LORA)  # every task selects one of them, or none


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
    # With an image bridge source: the output is the source's own pixels plus what the network changed
    # (decode(ẑ1) - decode(z0)), so the autoencoder no longer caps sharp reflections or keyframes.
    pixel_residual: bool = False
    # With keyframes (and `pixel_residual`, `reprojected_source`): where a keyframe's reprojection is
    # valid, the output is the reprojected keyframe itself, the network's change dropped there; the
    # network renders what no keyframe sees (docs/MODEL.md, "Model v3").
    exact_reprojection: bool = False
    # With `pixel_residual`: where no geometry is (infinite depth), the output is the source's env map
    # as it is, the network's change dropped there: the path tracer shows the same env map, which the
    # network could only blur (docs/MODEL.md, "Model v3"). The pixel filter still blends silhouettes.
    exact_background: bool = False
    # With `pixel_residual`: the share of the network's change the output takes, in model space (1:
    # all of it). Below 1 the output is a weighted mean of two estimates of the frame, the physics
    # prior and the network's render, whose errors are only partly alike; calibrated per checkpoint
    # on data its generator did not make (docs/MODEL.md, "Model v3"; bench/change_weight.py).
    change_weight: float = 1.0
    # With `pixel_residual`: the network's change averaged over a Gaussian of this many pixels,
    # within what the prior shows as one surface, before it is added (0: as it is); pixels whose
    # change is dropped (`exact_*`) take none and count as no change in their neighbours' averages
    # (core/model/change_filter.py).
    change_blur: float = 0.0
    # The renderer's pixel filter on the rendered beauty: a Gaussian of this many pixels (0: none),
    # in scene-linear light; pixels taken from keyframes by `exact_reprojection` are left as they are
    # (core/shading/pixel_filter.py).
    pixel_filter: float = 0.0
    # No pixel brighter than the env map allows (core/shading/hdr_bound.py).
    hdr_bound: bool = False
    # `decompose` reads a plate whose shorter side is below this many pixels enlarged by the smallest
    # whole factor that reaches it (bilinear, in model space) and averages each intrinsic back over
    # the factor's blocks: the inverse adapter reads objects at the pixel scale it learnt (0: as they
    # are; docs/MODEL.md, "Model v3").
    inverse_min_size: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.change_weight <= 1.0:
            raise ValueError(f"pipeline.change_weight: expected a share in [0, 1], got {self.change_weight}")
        if self.change_blur < 0.0:
            raise ValueError(f"pipeline.change_blur: expected a σ in pixels ≥ 0, got {self.change_blur}")
        if self.inverse_min_size < 0:
            raise ValueError(f"pipeline.inverse_min_size: expected pixels ≥ 0, got {self.inverse_min_size}")


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
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        # policies, chosen once: what the bridge starts from, how keyframes guide, where windows begin
        self.source = BridgeSource(self.bridge.source)
        self.guidance = KeyframeGuidance(self.keyframe_adapter, self._encode_frames)
        if self.guidance.gives_source and not self.source.is_image:
            raise ValueError("a keyframe adapter with reprojected_source needs the shaded bridge source")
        self.windows = self._window_plan()

    # -- devices ----------------------------------------------------------------------------------
    def to(
        self,
        device: str | torch.device,
        dtype: torch.dtype | None = None,
        autoencoder_dtype: torch.dtype = torch.float32,
    ) -> RenderFlowPipeline:
        """Move to `device`; the transformer and adapters in `dtype` (bf16 on CUDA by default; Wan's
        fp32 modules stay fp32), the autoencoder in `autoencoder_dtype` (fp32 unless asked: its
        reduced-precision reconstruction is measured by bench/autoencoder_dtype.py)."""
        device = torch.device(device)
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        keep = RenderFlowTransformer._keep_in_fp32_modules
        for module in self._modules():
            module.to(device)
        for adapted in (self.transformer, self.keyframe_adapter, self.inverse_adapter):
            if adapted is not None:
                cast_keeping_fp32(adapted, dtype, keep)
        cast_keeping_fp32(self.autoencoder, autoencoder_dtype, keep=())
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
        visibility_blur: float = 0.0,
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
            visibility_blur: pixels over which the physics prior's visibility is averaged (0: none);
                for G-buffers decomposed from a plate (core/shot/workflows.py, `shade_with_visibility`).
        """
        encoded = gbuffers if isinstance(gbuffers, GBufferLatents) else self.encode_gbuffers(gbuffers)
        num_frames, height, width = encoded.num_frames, encoded.height, encoded.width
        env_cam, light_scale = normalised_envmap(
            self._check_envmap(envmap_cam, num_frames), self.lighting, exposure_stops
        )
        env_model = env_brackets_to_model(env_cam, self.lighting.env_brackets, num_frames, height, width)
        source_model = self.source.frames(encoded.gbuffers, env_cam, vertical_fov_degrees, visibility_blur)
        guide = self.guidance.prepare(
            keyframes, encoded.gbuffers, light_scale, camera_to_world, vertical_fov_degrees
        )
        if guide is not None and source_model is not None:
            source_model = guide.source(source_model)

        # with `exact_reprojection`, the pixels the output takes from the keyframes as they are
        keyframe_pixels = None
        if self.config.exact_reprojection and guide is not None:
            keyframe_pixels = guide.valid_pixels(num_frames, height, width)
        exact_pixels = self._exact_pixels(encoded.gbuffers, keyframe_pixels)  # [F, H, W]: no change there
        outputs: list[np.ndarray] = []  # model-space beauty, [f, H, W, 3] per chunk, on the host
        reference: torch.Tensor | None = None  # the previous chunk's last frame, on the device
        with selected_lora(self.transformer, KEYFRAME_LORA if guide else None, ADAPTER_LORAS):
            for index, ((start, end), gbuffer_latents) in enumerate(
                zip(encoded.chunks, encoded.latents, strict=True)
            ):
                # [brackets, C, f', h, w] -> [1, brackets·C, f', h, w]
                env_latent = self._encode_videos(env_model[:, start:end]).flatten(0, 1)[None]
                source = None if source_model is None else self._encode_videos(source_model[None, start:end])
                inputs = ChunkInputs(
                    self._attributes(gbuffer_latents, reference),
                    env_latent,
                    None if guide is None else guide.tokens,
                    None if guide is None else guide.reprojected_chunk(start, end, self._encode_videos),
                    float(start),
                    float(self._ae.temporal_factor),
                )
                velocity = chunk_velocity(self.transformer, self.keyframe_adapter, inputs, self.windows)
                z0 = gbuffer_latents[:1] if source is None else source  # the albedo latent, or the source's
                beauty = self._ae.decode(sample(z0, velocity, steps)).float()[:, :, : end - start]
                if self.config.pixel_residual and source is not None and source_model is not None:
                    unchanged = self._ae.decode(z0).float()[:, :, : end - start]
                    prior = enc.frames_to_tensor(source_model[start:end]).to(beauty)  # [1, 3, f, H, W]
                    change = (beauty - unchanged) * self.config.change_weight
                    changeable = None
                    if exact_pixels is not None:
                        changeable = torch.from_numpy(~exact_pixels[None, None, start:end]).to(change)
                        change = change * changeable
                    if self.config.change_blur > 0:  # frame by frame, [f, 3, H, W], guided by the prior
                        frames = change[0].transpose(0, 1), prior[0].transpose(0, 1)
                        change = smoothed_change(*frames, self.config.change_blur).transpose(0, 1)[None]
                        if changeable is not None:
                            change = change * changeable
                    beauty = prior + change
                reference = beauty[:, :, -1:]
                # one copy to the host per chunk: device memory stays flat in the number of frames
                outputs.append(enc.tensor_to_frames(beauty if index == 0 else beauty[:, :, 1:]))
                if progress is not None:
                    progress(index + 1, len(encoded.chunks))
        beauty_linear = enc.model_to_beauty(np.concatenate(outputs))
        if self.config.pixel_filter > 0:
            beauty_linear = filter_pixels(beauty_linear, self.config.pixel_filter, keyframe_pixels)
        if self.config.hdr_bound:
            prior = None if source_model is None else enc.model_to_beauty(source_model)
            beauty_linear = bounded(beauty_linear, hdr_bound(env_cam, prior))
        return beauty_linear * np.float32(light_scale)

    def _exact_pixels(self, gbuffers: GBuffers, keyframe_pixels: np.ndarray | None) -> np.ndarray | None:
        """Where the network's change is dropped `[F, H, W]` bool: the keyframes' pixels and, with
        `exact_background`, the background; None where it is kept everywhere."""
        exact = keyframe_pixels
        if self.config.exact_background:
            background = ~np.isfinite(gbuffers.depth[..., 0])
            exact = background if exact is None else exact | background
        return exact

    def _attributes(self, gbuffer_latents: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        """A chunk's attribute latents (`transformer.attribute_latent`) from its G-buffer latents
        `[4, C, f', h, w]` (albedo, normal, depth, material) and the previous chunk's last frame."""
        albedo, normal, depth, material = gbuffer_latents.split(1, dim=0)
        reference_latent = torch.zeros_like(normal)
        mask = torch.zeros_like(normal[:, :1])
        if reference is not None:
            reference_latent[:, :, :1] = self._ae.encode(reference).to(self.dtype)
            mask[:, :, :1] = 1.0
        given_albedo = albedo if self.transformer.config.get("albedo_attribute", False) else None
        return attribute_latent(normal, depth, material, reference_latent, mask, given_albedo)

    def _encode_videos(self, videos_model: np.ndarray) -> torch.Tensor:
        """Model-space videos `[N, f, H, W, 3]` -> latents `[N, C, f', h, w]` in one batched encode."""
        padded = self._pad_frames(videos_model, axis=1)
        video = torch.from_numpy(padded).permute(0, 4, 1, 2, 3).to(self.device)  # [N, 3, f, H, W]
        return self._ae.encode(video).to(self.dtype)

    def _encode_frames(self, frames_model: np.ndarray) -> torch.Tensor:
        """Model-space images `[K, H, W, 3]`, each a one-frame clip -> latents `[K, C, 1, h, w]`."""
        frames = torch.from_numpy(np.ascontiguousarray(frames_model, dtype=np.float32))
        video = frames.permute(0, 3, 1, 2)[:, :, None]  # [K, H, W, 3] -> [K, 3, 1, H, W]
        return self._ae.encode(video.to(self.device)).to(self.dtype)

    def _window_plan(self) -> WindowPlan:
        """The transformer's window and overlap in latent cells (whole patches), and windows per pass."""
        cell = self.autoencoder.spatial_factor * max(self.transformer.config["patch_size"][1:])
        window = max(cell, self.config.transformer_window // cell * cell) // self.autoencoder.spatial_factor
        overlap = self.config.transformer_window_overlap // cell * cell // self.autoencoder.spatial_factor
        return WindowPlan(
            window,
            min(overlap, window // 2),
            self.config.transformer_window_batch,
            self.config.transformer_global_context,
        )

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
        min_size: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Intrinsic buffers of a scene-linear image sequence `[F, H, W, 3]`.

        Returns {name: `[F, H, W, C]`}: albedo (linear, C = 3), normal (camera space, C = 3),
        depth (relative planar depth: nearest possible 1, background inf, C = 1), roughness and
        metallic (C = 1). `progress` is called with (chunks done, chunks total). `min_size`: read
        the plate enlarged below this shorter side (PipelineConfig.inverse_min_size; None: the
        checkpoint's).
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
        min_size = self.config.inverse_min_size if min_size is None else min_size
        factor = -(-min_size // min(height, width))  # ceil; 0 or 1: as it is
        if factor > 1:
            image_model = _enlarged(image_model, factor)
        decoded: dict[str, list[np.ndarray]] = {target: [] for target in targets}
        chunks = plan_chunks(num_frames, self.config.chunk_frames)
        with selected_lora(self.transformer, INVERSE_LORA, ADAPTER_LORAS):
            for index, (start, end) in enumerate(chunks):
                self._decompose_chunk(adapter, image_model[start:end], targets, steps, decoded, index == 0)
                if progress is not None:
                    progress(index + 1, len(chunks))
        return {
            target: _intrinsic_from_model(target, _block_mean(np.concatenate(parts), max(factor, 1)))
            for target, parts in decoded.items()
        }

    def _decompose_chunk(
        self,
        adapter: InverseAdapter,
        chunk_model: np.ndarray,
        targets: Sequence[str],
        steps: int,
        decoded: dict[str, list[np.ndarray]],
        first: bool,
    ) -> None:
        """One chunk `[f, H, W, 3]` (model space) decomposed into each target, appended to `decoded`
        (less the frame it shares with the previous chunk)."""
        padded = self._pad_frames(chunk_model, axis=0)
        video = torch.from_numpy(padded).permute(3, 0, 1, 2)[None].to(self.device)  # [1, 3, f, H, W]
        z0 = self._ae.encode(video).to(self.dtype)
        for target in targets:

            def velocity(z_t: torch.Tensor, t: torch.Tensor, target: str = target) -> torch.Tensor:
                return inverse_velocity(self.transformer, adapter, z_t, t.to(self.device), target)

            out = self._ae.decode(sample(z0, velocity, steps)).float()[:, :, : len(chunk_model)]
            frames = enc.tensor_to_frames(out)
            decoded[target].append(frames if first else frames[1:])

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

    # -- checkpoints (core/model/checkpoint.py) ---------------------------------------------------
    def save_pretrained(self, folder: Path) -> None:
        """Write config.json and the safetensors files; each file is written to a temp name and renamed."""
        from renderflow.core.model.checkpoint import save_checkpoint

        save_checkpoint(self, Path(folder))

    @classmethod
    def from_pretrained(cls, folder: Path, device: str | torch.device = "cpu") -> RenderFlowPipeline:
        """Load a checkpoint folder written by `save_pretrained` (local files only)."""
        from renderflow.core.model.checkpoint import load_checkpoint

        return load_checkpoint(Path(folder)).to(device)


def _enlarged(frames: np.ndarray, factor: int) -> np.ndarray:
    """Frames `[F, H, W, C]` enlarged `factor` times each side, bilinear."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    enlarged = torch.nn.functional.interpolate(
        tensor, scale_factor=factor, mode="bilinear", align_corners=False
    )
    return np.ascontiguousarray(enlarged.permute(0, 2, 3, 1).numpy())


def _block_mean(frames: np.ndarray, factor: int) -> np.ndarray:
    """Frames `[F, H·k, W·k, C]` averaged over k × k blocks: `[F, H, W, C]` (k = 1: as they are)."""
    if factor == 1:
        return frames
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return np.ascontiguousarray(torch.nn.functional.avg_pool2d(tensor, factor).permute(0, 2, 3, 1).numpy())


def _intrinsic_from_model(target: str, frames_model: np.ndarray) -> np.ndarray:
    """Decoded model-space frames `[F, H, W, 3]` -> the intrinsic at rest."""
    if target == "albedo":
        return enc.model_to_albedo(frames_model)
    if target == "normal":
        return enc.model_to_normal(frames_model)
    if target == "depth":
        return enc.model_to_depth(frames_model, enc.DisparityRange(0.0, 1.0))
    return enc.model_to_material(frames_model.mean(axis=-1, keepdims=True))
