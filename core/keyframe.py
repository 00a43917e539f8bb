"""The keyframe adapter (paper §4.2 "Keyframe Guidance", Fig. 3; stage 2, base frozen).

A cross-attention branch beside each block's self-attention, with its own query, attends to
keyframe tokens (keyframe latents patchified frame by frame with a 2D convolution). Queries and
keys are rotated by their time (RoPE), so attention sees the temporal distance between each
frame and each keyframe. LoRA (peft) adapts the feed-forward only. The branch's output projection
starts at zero and the LoRA is switched off when no keyframe is given, so the model then returns
exactly the stage-1 output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from renderflow.core.attention import CrossAttention
from renderflow.core.lora import attach_lora
from renderflow.core.transformer import BlockBranches, RenderFlowTransformer, TransformerBranches

KEYFRAME_LORA = "keyframe"
# The feed-forward's two linear layers in every block; nothing else (ARCHITECTURE §3).
KEYFRAME_LORA_TARGETS = r"blocks\.\d+\.ffn\.net\.(0\.proj|2)"


@dataclass
class KeyframeTokens:
    """Keyframes ready for attention: tokens `[B, K·h·w, D]` and their times `[K·h·w]` (pixel frames)."""

    tokens: torch.Tensor
    positions: torch.Tensor


class KeyframeAdapter(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers' two bases disagree on config_name's type
    """Keyframe guidance for a RenderFlowTransformer.

    Args:
        in_channels: latent channels of the autoencoder.
        patch_size: (h, w) patch of the 2D keyframe embedding (the transformer's spatial patch).
        dim: model width (the transformer's heads × head_dim).
        num_heads: heads of each cross-attention.
        num_layers: one cross-attention per transformer block.
        lora_rank: rank of the feed-forward LoRA.
        rope_theta: base of the temporal rotary embedding.
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
    ) -> None:
        super().__init__()
        patch_size = tuple(patch_size)  # type: ignore[assignment]  # JSON configs give lists
        self.patch_embedding = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.attentions = nn.ModuleList(
            [CrossAttention(dim, num_heads, rope_theta=rope_theta) for _ in range(num_layers)]
        )

    @classmethod
    def for_transformer(cls, transformer: RenderFlowTransformer, lora_rank: int = 64) -> KeyframeAdapter:
        """A fresh adapter sized for `transformer`."""
        config = transformer.config
        return cls(
            in_channels=config["in_channels"],
            patch_size=tuple(config["patch_size"][1:]),
            dim=config["num_attention_heads"] * config["attention_head_dim"],
            num_heads=config["num_attention_heads"],
            num_layers=config["num_layers"],
            lora_rank=lora_rank,
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
        batch_size, channels, num_keyframes, height, width = keyframe_latents.shape
        # [B, C, K, h, w] -> [B*K, C, h, w]
        frames = keyframe_latents.permute(0, 2, 1, 3, 4).reshape(-1, channels, height, width)
        tokens = self.patch_embedding(frames.to(self.dtype))  # [B*K, D, h', w']
        tokens_per_frame = tokens.shape[2] * tokens.shape[3]
        # [B*K, D, h', w'] -> [B, K*h'*w', D]
        tokens = tokens.flatten(2).transpose(1, 2).reshape(batch_size, num_keyframes * tokens_per_frame, -1)
        positions = keyframe_frames.float().repeat_interleave(tokens_per_frame)
        return KeyframeTokens(tokens, positions.to(tokens.device))

    def branches(self, keyframes: KeyframeTokens, query_positions: torch.Tensor) -> TransformerBranches:
        """The per-block branches that attend from tokens at `query_positions` `[L]` to the keyframes."""
        return TransformerBranches(
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
            ]
        )
