"""The inverse adapter (paper §4.5, appendix A.2): image -> intrinsic buffers on the frozen renderer.

A trainable inverse embedder turns the RGB latent into tokens; LoRA (peft) adapts the blocks'
self-attention q/k/v only; after each self-attention a cross-attention reads learned prompt
tokens of the requested intrinsic (a learned embedding per intrinsic stands in for the paper's
text embedding: the text encoder is gone); per-intrinsic MLP heads replace the output projection.
The forward model's own weights are never touched, and with the adapter's LoRA switched off
(the forward path) its outputs are unchanged.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from renderflow.core.model.attention import CrossAttention
from renderflow.core.model.lora import attach_lora
from renderflow.core.model.transformer import BlockBranches, RenderFlowTransformer, TransformerBranches

INTRINSICS = ("albedo", "normal", "depth", "roughness", "metallic")
INVERSE_LORA = "inverse"
# Self-attention only: a plain `to_q` would also hit cross-attention modules.
INVERSE_LORA_TARGETS = r"blocks\.\d+\.attn1\.to_(q|k|v)"


class InverseAdapter(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers' two bases disagree on config_name's type
    """Intrinsic decomposition for a frozen RenderFlowTransformer.

    Args:
        in_channels: latent channels of the autoencoder.
        patch_size: (t, h, w) patch, the transformer's.
        dim: model width (the transformer's heads × head_dim).
        num_heads: heads of each prompt cross-attention.
        num_layers: one prompt cross-attention per transformer block.
        lora_rank: rank of the self-attention LoRA.
        prompt_tokens: learned tokens per intrinsic.
        head_hidden_dim: hidden width of each intrinsic's MLP head.
        intrinsics: the intrinsics the adapter predicts, in the order of its prompt embeddings.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 16,
        patch_size: tuple[int, int, int] = (1, 2, 2),
        dim: int = 1536,
        num_heads: int = 12,
        num_layers: int = 30,
        lora_rank: int = 32,
        prompt_tokens: int = 8,
        head_hidden_dim: int = 1536,
        intrinsics: tuple[str, ...] = INTRINSICS,
    ) -> None:
        super().__init__()
        patch_size = tuple(patch_size)  # type: ignore[assignment]  # JSON configs give lists
        # 1. Inverse embedder: RGB latent -> tokens
        self.inverse_embedder = nn.Conv3d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        # 2. A learned prompt per intrinsic: [num_intrinsics, prompt_tokens, D]
        self.prompt_embeddings = nn.Parameter(torch.randn(len(intrinsics), prompt_tokens, dim) * 0.02)
        # 3. Prompt cross-attention after each self-attention
        self.prompt_attentions = nn.ModuleList([CrossAttention(dim, num_heads) for _ in range(num_layers)])
        # 4. Per-intrinsic heads: tokens -> latent patches
        patch_channels = in_channels * math.prod(patch_size)
        self.heads = nn.ModuleDict(
            {
                name: nn.Sequential(
                    nn.Linear(dim, head_hidden_dim), nn.GELU(), nn.Linear(head_hidden_dim, patch_channels)
                )
                for name in intrinsics
            }
        )

    @classmethod
    def for_transformer(cls, transformer: RenderFlowTransformer, lora_rank: int = 32) -> InverseAdapter:
        """A fresh adapter sized for `transformer`, its embedder initialised from the albedo embedding."""
        config = transformer.config
        dim = config["num_attention_heads"] * config["attention_head_dim"]
        adapter = cls(
            in_channels=config["in_channels"],
            patch_size=tuple(config["patch_size"]),
            dim=dim,
            num_heads=config["num_attention_heads"],
            num_layers=config["num_layers"],
            lora_rank=lora_rank,
            head_hidden_dim=dim,
        )
        adapter.inverse_embedder.load_state_dict(transformer.patch_embedding.state_dict())
        return adapter

    def attach(self, transformer: RenderFlowTransformer) -> None:
        """Inject this adapter's self-attention LoRA into `transformer` (switched off until used)."""
        if len(transformer.blocks) != len(self.prompt_attentions):
            raise ValueError(
                f"adapter has {len(self.prompt_attentions)} layers, transformer {len(transformer.blocks)}"
            )
        attach_lora(transformer, INVERSE_LORA, INVERSE_LORA_TARGETS, self.config["lora_rank"])

    def intrinsic_index(self, intrinsic: str) -> int:
        if intrinsic not in self.config["intrinsics"]:
            raise ValueError(
                f"unknown intrinsic {intrinsic!r}; expected one of {list(self.config['intrinsics'])}"
            )
        return list(self.config["intrinsics"]).index(intrinsic)

    def branches(self, intrinsic: str, batch_size: int) -> TransformerBranches:
        """Prompt cross-attention in every block and the intrinsic's head."""
        prompt = self.prompt_embeddings[self.intrinsic_index(intrinsic)]
        context = prompt.unsqueeze(0).expand(batch_size, -1, -1)  # [B, prompt_tokens, D]
        return TransformerBranches(
            blocks=[
                BlockBranches(after_self_attention=partial(attn, context=context))
                for attn in self.prompt_attentions
            ],
            output_head=self.heads[intrinsic],
        )
