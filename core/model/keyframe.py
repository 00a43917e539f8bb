"""The keyframe adapter (paper §4.2 "Keyframe Guidance", Fig. 3; stage 2, base frozen).

Two paths carry the keyframes into the frozen model, both starting at zero:
- the paper's: a cross-attention branch beside each block's self-attention, with its own query,
  attends to keyframe tokens (keyframe latents patchified frame by frame with a 2D convolution).
  Queries and keys are rotated by their time, row and column (a 3D RoPE, as Wan's
  self-attention), so attention sees the temporal distance between each frame and each keyframe
  and the spatial offset between a token and the keyframe tokens;
- an aligned path: for every latent frame, the keyframes just before and just after it (their
  latents, pixel for pixel, with presence and signed distance in time) go through a zero-init
  patch embedding whose tokens are added to the render tokens, as the attribute latents are.
  Consecutive frames differ little, so the keyframe at the same place is most of the answer;
  the cross-attention alone did not learn to find it on our CPU budget (docs/DECISIONS.md).
  With `reprojection`, the aligned path also gets every keyframe reprojected into the frame by
  depth and cameras (core/shading/reprojection.py): the reprojected radiance's latent and the validity
  mask pooled to the latent grid. Where the cameras move, that is the keyframe at the right place.
LoRA (peft) adapts the feed-forward only and is switched off when no keyframe is given, so the
model then returns exactly the stage-1 output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from renderflow.core.model.attention import CrossAttention, zero_init
from renderflow.core.model.lora import attach_lora
from renderflow.core.model.transformer import (
    BlockBranches,
    RenderFlowTransformer,
    TransformerBranches,
    grid_positions,
)

KEYFRAME_LORA = "keyframe"
# The feed-forward's two linear layers in every block; nothing else (ARCHITECTURE §3).
KEYFRAME_LORA_TARGETS = r"blocks\.\d+\.ffn\.net\.(0\.proj|2)"
# Keyframe distances are given to the aligned path in units of the paper's keyframe gap.
DISTANCE_SCALE = 16.0


@dataclass
class KeyframeTokens:
    """Keyframes ready for attention: tokens `[B, K·h·w, D]` and their (time in pixel frames, row,
    column) `[K·h·w, 3]`."""

    tokens: torch.Tensor
    positions: torch.Tensor
    latents: torch.Tensor  # the keyframe latents `[B, C, K, h, w]`, for the aligned path
    frames: torch.Tensor  # their times `[K]` in pixel frames, ascending


def bracketing_keyframes(keyframes: KeyframeTokens, frame_times: torch.Tensor) -> torch.Tensor:
    """For each latent frame at `frame_times` `[F]`, the keyframes at or just before and at or just
    after it: `[B, 2·(C + 2), F, h, w]`, each as (latent, present, signed distance / DISTANCE_SCALE),
    zeros where there is none on that side."""
    latents, frames = keyframes.latents, keyframes.frames.to(frame_times)
    num_keyframes = frames.shape[0]
    before = torch.searchsorted(frames, frame_times, right=True) - 1  # [F], -1: none before
    after = torch.searchsorted(frames, frame_times, right=False)  # [F], K: none after
    sides = []
    for index, present in ((before, before >= 0), (after, after < num_keyframes)):
        index = index.clamp(0, num_keyframes - 1)
        gathered = latents[:, :, index]  # [B, C, F, h, w]
        distance = (frame_times - frames[index]) / DISTANCE_SCALE  # [F]
        present_map = present.to(latents.dtype).view(1, 1, -1, 1, 1).expand_as(gathered[:, :1])
        distance_map = (distance * present).to(latents.dtype).view(1, 1, -1, 1, 1).expand_as(gathered[:, :1])
        sides += [gathered * present_map, present_map, distance_map]
    return torch.cat(sides, dim=1)


class KeyframeAdapter(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers' two bases disagree on config_name's type
    """Keyframe guidance for a RenderFlowTransformer.

    Args:
        in_channels: latent channels of the autoencoder.
        patch_size: (h, w) patch of the 2D keyframe embedding (the transformer's spatial patch).
        dim: model width (the transformer's heads × head_dim).
        num_heads: heads of each cross-attention.
        num_layers: one cross-attention per transformer block.
        lora_rank: rank of the feed-forward LoRA.
        rope_theta: base of the time/row/column rotary embedding.
        reprojection: the aligned path also takes the keyframes reprojected into each frame (their
            latent and the validity mask).
        reprojected_source: with keyframes, the bridge starts from the reprojected keyframes where
            they are valid and from the shaded source elsewhere (needs `reprojection` and the
            `shaded` bridge source): what reprojection computes exactly, the network need not learn.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 16,
        patch_size: tuple[int, int] = (2, 2),
        dim: int = 1536,
        num_heads: int = 12,
        num_layers: int = 30,
        lora_rank: int = 64,
        rope_theta: float = 10000.0,
        reprojection: bool = False,
        reprojected_source: bool = False,
    ) -> None:
        super().__init__()
        if reprojected_source and not reprojection:
            raise ValueError("reprojected_source needs reprojection")
        patch_size = tuple(patch_size)  # type: ignore[assignment]  # JSON configs give lists
        self.patch_embedding = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.attentions = nn.ModuleList(
            [CrossAttention(dim, num_heads, rope_theta=rope_theta) for _ in range(num_layers)]
        )
        # bracketing_keyframes: two sides of (latent, present, distance)
        aligned_channels = 2 * (in_channels + 2) + (in_channels + 1 if reprojection else 0)
        self.aligned_embedder = nn.Conv3d(
            aligned_channels, dim, kernel_size=(1, *patch_size), stride=(1, *patch_size)
        )
        zero_init(self.aligned_embedder)

    @classmethod
    def for_transformer(
        cls,
        transformer: RenderFlowTransformer,
        lora_rank: int = 64,
        reprojection: bool = False,
        reprojected_source: bool = False,
    ) -> KeyframeAdapter:
        """A fresh adapter sized for `transformer`."""
        config = transformer.config
        return cls(
            in_channels=config["in_channels"],
            patch_size=tuple(config["patch_size"][1:]),
            dim=config["num_attention_heads"] * config["attention_head_dim"],
            num_heads=config["num_attention_heads"],
            num_layers=config["num_layers"],
            lora_rank=lora_rank,
            reprojection=reprojection,
            reprojected_source=reprojected_source,
        )

    def attach(self, transformer: RenderFlowTransformer) -> None:
        """Inject this adapter's feed-forward LoRA into `transformer` (switched off until used)."""
        if len(transformer.blocks) != len(self.attentions):
            raise ValueError(
                f"adapter has {len(self.attentions)} layers, transformer {len(transformer.blocks)}"
            )
        attach_lora(transformer, KEYFRAME_LORA, KEYFRAME_LORA_TARGETS, self.config["lora_rank"])

    def embed(self, keyframe_latents: torch.Tensor, keyframe_frames: torch.Tensor) -> KeyframeTokens:
        """Keyframe latents `[B, C, K, h, w]` at pixel frames `[K]` -> tokens, frame by frame."""
        order = torch.argsort(keyframe_frames)
        keyframe_frames, keyframe_latents = keyframe_frames[order], keyframe_latents[:, :, order.cpu()]
        batch_size, channels, num_keyframes, height, width = keyframe_latents.shape
        # [B, C, K, h, w] -> [B*K, C, h, w]
        frames = keyframe_latents.permute(0, 2, 1, 3, 4).reshape(-1, channels, height, width)
        tokens = self.patch_embedding(frames.to(self.dtype))  # [B*K, D, h', w']
        rows, columns = tokens.shape[2], tokens.shape[3]
        # [B*K, D, h', w'] -> [B, K*h'*w', D]
        tokens = tokens.flatten(2).transpose(1, 2).reshape(batch_size, num_keyframes * rows * columns, -1)
        frames = keyframe_frames.to(tokens.device, torch.float32)
        return KeyframeTokens(tokens, grid_positions(frames, rows, columns), keyframe_latents, frames)

    def branches(
        self,
        keyframes: KeyframeTokens,
        frame_times: torch.Tensor,
        query_positions: torch.Tensor,
        reprojected: torch.Tensor | None = None,
    ) -> TransformerBranches:
        """The adapter's parts for a latent whose token frames lie at `frame_times` `[F]`: the aligned
        path's input tokens and the per-block branches that attend from tokens at `query_positions`
        `[L, 3]` to the keyframes. `reprojected` `[B, C + 1, F, h, w]` (latent, validity) is required
        by, and only by, an adapter made with `reprojection`."""
        aligned = bracketing_keyframes(keyframes, frame_times)  # [B, 2(C+2), F, h, w]
        if self.config["reprojection"]:
            if reprojected is None:
                raise ValueError("this keyframe adapter reprojects keyframes: give their reprojection")
            aligned = torch.cat([aligned, reprojected.to(aligned)], dim=1)
        elif reprojected is not None:
            raise ValueError("this keyframe adapter was made without reprojection")
        input_tokens = self.aligned_embedder(aligned.to(self.dtype)).flatten(2).transpose(1, 2)
        return TransformerBranches(
            input_tokens=input_tokens,
            blocks=[
                BlockBranches(
                    beside_self_attention=partial(
                        attention,
                        context=keyframes.tokens,
                        query_positions=query_positions,
                        key_positions=keyframes.positions,
                    )
                )
                for attention in self.attentions
            ],
        )
