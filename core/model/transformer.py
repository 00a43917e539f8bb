"""The RenderFlow transformer (paper §4.2, appendix A.1) built from diffusers' Wan2.1 modules.

Differences from `WanTransformer3DModel`, and why:
- the input is the bridge interpolant that starts at the clean albedo latent, not noise;
- text cross-attention and the text embedder are removed (G-buffers condition, not prompts);
- an attribute embedder (normal, depth, material latents, the previous chunk's conditioning frame
  and its mask) adds its tokens to the render tokens; it starts at zero, so it changes nothing
  until trained;
- an env-map embedder (initialised from the albedo patch embedding) makes env tokens, from which
  each block predicts (γ, β) and modulates the render tokens `f <- (1 + γ)·f + β` (AdaLN).
  γ and β are per token, not pooled: the env map is re-projected into the camera's view and
  resized to the frame, so env token i sees what lies behind render token i; pooling would throw
  away the direction of the light, which is the point of the camera-view projection. The
  projection starts at zero, so a fresh model ignores the env map until trained.
Parameter names match Wan's wherever the part is Wan's, so Wan2.1 weights load by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed, WanTransformerBlock
from torch import nn

from renderflow.core.model.attention import zero_init
from renderflow.core.model.bridge import wan_timestep

# The latents stacked into the attribute embedder's input, in this order, then the albedo latent for
# a model made with `albedo_attribute`, then one mask channel that is 1 on the latent frames given as
# conditioning (the previous chunk's last frame).
ATTRIBUTE_LATENTS = ("normal", "depth", "material", "reference")


def attribute_latent(
    normal: torch.Tensor,
    depth: torch.Tensor,
    material: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor,
    albedo: torch.Tensor | None = None,
) -> torch.Tensor:
    """The attribute embedder's input `[B, 4C (+ C) + 1, F, H, W]` from latents `[B, C, F, H, W]` and
    the conditioning mask `[B, 1, F, H, W]`; `albedo` for a model made with `albedo_attribute`."""
    parts = [normal, depth, material, reference] + ([albedo] if albedo is not None else []) + [mask]
    return torch.cat(parts, dim=1)


Branch = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class BlockBranches:
    """Optional adapter branches a block calls; each maps `[B, L, D]` to a residual `[B, L, D]`.

    `beside_self_attention` sees the self-attention's input (keyframe guidance, paper Fig. 3);
    `after_self_attention` sees the tokens after self-attention (intrinsic prompts, paper Fig. 4).
    """

    beside_self_attention: Branch | None = None
    after_self_attention: Branch | None = None


@dataclass
class TransformerBranches:
    """Per-block branches, tokens added at the input and the output head: what the adapters hand
    the transformer."""

    blocks: list[BlockBranches] = field(default_factory=list)
    input_tokens: torch.Tensor | None = None  # [B, L, D], added to the render tokens
    output_head: Callable[[torch.Tensor], torch.Tensor] | None = None


class RenderFlowTimeEmbedding(nn.Module):
    """Wan's time embedding without its text embedder (same parameter names as Wan's)."""

    def __init__(self, dim: int, time_freq_dim: int) -> None:
        super().__init__()
        self.timesteps_proj = Timesteps(
            num_channels=time_freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0
        )
        self.time_embedder = TimestepEmbedding(in_channels=time_freq_dim, time_embed_dim=dim)
        self.act_fn = nn.SiLU()
        self.time_proj = nn.Linear(dim, dim * 6)

    def forward(self, timestep: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Wan timesteps `[B]` -> temb `[B, D]` and the blocks' modulation `[B, 6, D]`."""
        projected = self.timesteps_proj(timestep).float()
        temb = self.time_embedder(projected).to(dtype)
        timestep_proj = self.time_proj(self.act_fn(temb))
        return temb, timestep_proj.unflatten(1, (6, -1))


class RenderFlowBlock(WanTransformerBlock):
    """Wan2.1's transformer block without text cross-attention, with env AdaLN and adapter branches."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, qk_norm: str, eps: float) -> None:
        super().__init__(dim, ffn_dim, num_heads, qk_norm=qk_norm, cross_attn_norm=False, eps=eps)
        # 0. Env-map AdaLN, zero-initialised: (γ, β) per token from the env tokens
        self.env_modulation = nn.Linear(dim, 2 * dim)
        zero_init(self.env_modulation)
        # 2. (Wan's text cross-attention is removed, paper A.1)
        del self.attn2, self.norm2

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        env_tokens: torch.Tensor | None,
        branches: BlockBranches,
    ) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
            self.scale_shift_table + temb.float()
        ).chunk(6, dim=1)

        # 0. Env-map AdaLN
        if env_tokens is not None:
            gamma, beta = self.env_modulation(env_tokens).chunk(2, dim=-1)
            hidden_states = (1 + gamma) * hidden_states + beta

        # 1. Self-attention (+ the keyframe branch beside it)
        norm_hidden_states = (self.norm1(hidden_states.float()) * (1 + scale_msa) + shift_msa).type_as(
            hidden_states
        )
        attn_output = self.attn1(norm_hidden_states, None, None, rotary_emb)
        hidden_states = (hidden_states.float() + attn_output * gate_msa).type_as(hidden_states)
        if branches.beside_self_attention is not None:
            hidden_states = hidden_states + branches.beside_self_attention(norm_hidden_states)

        # 2. Intrinsic-prompt cross-attention (inverse adapter only)
        if branches.after_self_attention is not None:
            hidden_states = hidden_states + branches.after_self_attention(hidden_states)

        # 3. Feed-forward
        norm_hidden_states = (self.norm3(hidden_states.float()) * (1 + c_scale_msa) + c_shift_msa).type_as(
            hidden_states
        )
        ff_output = self.ffn(norm_hidden_states)
        return (hidden_states.float() + ff_output.float() * c_gate_msa).type_as(hidden_states)


class RenderFlowTransformer(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers' two bases disagree on config_name's type
    """Predicts the bridge velocity of the beauty latent from G-buffer and env-map latents.

    Args:
        patch_size: (t, h, w) patch of the latent, as Wan's.
        num_attention_heads: attention heads per block.
        attention_head_dim: channels per head; the model width is heads × head_dim.
        in_channels: latent channels of the autoencoder.
        freq_dim: sinusoidal timestep channels.
        ffn_dim: hidden width of each block's feed-forward.
        num_layers: transformer blocks.
        qk_norm: Wan's query/key normalisation.
        eps: epsilon of the norms.
        rope_max_seq_len: longest position the 3D RoPE table covers.
        env_latents: env-map latents stacked on channels (one per exposure bracket,
            `LightingConfig.env_brackets`); the paper's single Reinhard env map is 1.
        albedo_attribute: the albedo latent is an attribute too (a model whose bridge starts from
            a shading of the G-buffers, where albedo would otherwise reach it only through the shading).
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["RenderFlowBlock"]  # type: ignore[assignment]  # noqa: RUF012
    # Wan's policy: these stay in float32 under bf16 (diffusers' WanTransformer3DModel, plus norm_out).
    _keep_in_fp32_modules = [  # type: ignore[assignment]  # noqa: RUF012
        "rope",
        "time_embedder",
        "scale_shift_table",
        "norm1",
        "norm3",
        "norm_out",
    ]

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, int, int] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        qk_norm: str = "rms_norm_across_heads",
        eps: float = 1e-6,
        rope_max_seq_len: int = 1024,
        env_latents: int = 1,
        albedo_attribute: bool = False,
    ) -> None:
        super().__init__()
        patch_size = tuple(patch_size)  # type: ignore[assignment]  # JSON configs give lists
        inner_dim = num_attention_heads * attention_head_dim

        # 1. Patch embeddings: render tokens, attribute tokens (added), env tokens (AdaLN)
        self.rope = WanRotaryPosEmbed(attention_head_dim, patch_size, rope_max_seq_len)
        self.patch_embedding = nn.Conv3d(in_channels, inner_dim, kernel_size=patch_size, stride=patch_size)
        # with an image bridge source the albedo is an input of its own (an albedo edit under the
        # same shading still changes the render)
        attribute_channels = in_channels * (len(ATTRIBUTE_LATENTS) + int(albedo_attribute)) + 1
        self.attribute_embedder = nn.Conv3d(
            attribute_channels, inner_dim, kernel_size=patch_size, stride=patch_size
        )
        zero_init(self.attribute_embedder)
        self.env_embedder = nn.Conv3d(
            in_channels * env_latents, inner_dim, kernel_size=patch_size, stride=patch_size
        )
        self.init_env_embedder()

        # 2. Time embedding
        self.condition_embedder = RenderFlowTimeEmbedding(inner_dim, freq_dim)

        # 3. Transformer blocks
        self.blocks = nn.ModuleList(
            [
                RenderFlowBlock(inner_dim, ffn_dim, num_attention_heads, qk_norm, eps)
                for _ in range(num_layers)
            ]
        )

        # 4. Output norm & projection
        self.norm_out = FP32LayerNorm(inner_dim, eps, elementwise_affine=False)
        self.proj_out = nn.Linear(inner_dim, in_channels * math.prod(patch_size))
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, inner_dim) / inner_dim**0.5)
        self.gradient_checkpointing = False

    @torch.no_grad()
    def init_env_embedder(self) -> None:
        """Paper A.1: the env embedder starts as the albedo patch embedding on the first (unchanged
        exposure) env latent; the darker brackets start at zero."""
        in_channels = self.config["in_channels"]
        self.env_embedder.weight.zero_()
        self.env_embedder.weight[:, :in_channels] = self.patch_embedding.weight
        assert self.env_embedder.bias is not None and self.patch_embedding.bias is not None
        self.env_embedder.bias.copy_(self.patch_embedding.bias)

    def patchify(self, embedder: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        """`[B, C, F, H, W]` latent -> `[B, L, D]` tokens through a Conv3d patch embedder."""
        _, _, num_frames, height, width = latent.shape
        p_t, p_h, p_w = self.config["patch_size"]
        if num_frames % p_t or height % p_h or width % p_w:
            raise ValueError(
                f"latent of {num_frames} frames, {width}x{height} is not divisible "
                f"by the patch {tuple(self.config['patch_size'])}"
            )
        # [B, D, F', H', W'] -> [B, L, D]
        return embedder(latent.to(self.dtype)).flatten(2).transpose(1, 2).contiguous()

    def forward(
        self,
        render_latent: torch.Tensor,
        t: torch.Tensor,
        attribute_latent: torch.Tensor,
        env_latent: torch.Tensor,
        branches: TransformerBranches | None = None,
    ) -> torch.Tensor:
        """The forward renderer's velocity.

        Args:
            render_latent: the bridge interpolant z_t `[B, C, F, H, W]` (the albedo latent at t = 0).
            t: bridge times `[B]` in [0, 1).
            attribute_latent: `[B, 4C (+ C) + 1, F, H, W]` (`attribute_latent`).
            env_latent: camera-view env-map latents `[B, C·env_latents, F, H, W]`, brackets stacked.
            branches: adapter branches (keyframe guidance); None for the stage-1 model.
        Returns:
            the velocity `[B, C, F, H, W]`.
        """
        env_channels = render_latent.shape[1] * self.config["env_latents"]
        if (
            attribute_latent.shape[2:] != render_latent.shape[2:]
            or env_latent.shape[2:] != render_latent.shape[2:]
            or env_latent.shape[1] != env_channels
        ):
            raise ValueError(
                f"latents disagree: render {tuple(render_latent.shape)}, "
                f"attributes {tuple(attribute_latent.shape)}, env {tuple(env_latent.shape)}"
            )
        branches = branches or TransformerBranches()
        tokens = self.patchify(self.patch_embedding, render_latent)
        tokens = tokens + self.patchify(self.attribute_embedder, attribute_latent)
        if branches.input_tokens is not None:
            tokens = tokens + branches.input_tokens
        env_tokens = self.patchify(self.env_embedder, env_latent)
        return self.run(render_latent, tokens, t, env_tokens, branches)

    def run(
        self,
        latent: torch.Tensor,
        tokens: torch.Tensor,
        t: torch.Tensor,
        env_tokens: torch.Tensor | None,
        branches: TransformerBranches,
    ) -> torch.Tensor:
        """Blocks, output norm and head on `tokens` `[B, L, D]` patched from `latent`; -> `[B, C, F, H, W]`.

        Shared by the forward renderer and the inverse adapter (which brings its own tokens and head).
        """
        batch_size, _, num_frames, height, width = latent.shape
        p_t, p_h, p_w = self.config["patch_size"]
        post_patch_num_frames, post_patch_height, post_patch_width = (
            num_frames // p_t,
            height // p_h,
            width // p_w,
        )

        rotary_emb = self.rope(latent)
        temb, timestep_proj = self.condition_embedder(wan_timestep(t).to(latent.device), tokens.dtype)
        block_branches = branches.blocks or [BlockBranches()] * len(self.blocks)

        # 3. Transformer blocks
        for block, block_branch in zip(self.blocks, block_branches, strict=True):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                tokens = self._gradient_checkpointing_func(
                    block, tokens, timestep_proj, rotary_emb, env_tokens, block_branch
                )
            else:
                tokens = block(tokens, timestep_proj, rotary_emb, env_tokens, block_branch)

        # 4. Output norm, projection & unpatchify
        shift, scale = (self.scale_shift_table + temb.float().unsqueeze(1)).chunk(2, dim=1)
        tokens = (self.norm_out(tokens.float()) * (1 + scale) + shift).type_as(tokens)
        head = branches.output_head or self.proj_out
        tokens = head(tokens)
        # [B, L, C·p_t·p_h·p_w] -> [B, F', H', W', p_t, p_h, p_w, C]
        tokens = tokens.reshape(
            batch_size, post_patch_num_frames, post_patch_height, post_patch_width, p_t, p_h, p_w, -1
        )
        # -> [B, C, F', p_t, H', p_h, W', p_w] -> [B, C, F, H, W]
        tokens = tokens.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return tokens.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    def token_frame_times(self, latent: torch.Tensor, first_frame: float, frame_step: float) -> torch.Tensor:
        """The time (in pixel frames) of each token frame of `latent`, `[F / p_t]`."""
        p_t = self.config["patch_size"][0]
        token_frames = torch.arange(latent.shape[2] // p_t, device=latent.device, dtype=torch.float32)
        return first_frame + frame_step * p_t * token_frames

    def token_positions(self, latent: torch.Tensor, first_frame: float, frame_step: float) -> torch.Tensor:
        """(time in pixel frames, row, column) of every token of `latent`, `[L, 3]`, for the keyframe RoPE."""
        _, p_h, p_w = self.config["patch_size"]
        frame_times = self.token_frame_times(latent, first_frame, frame_step)
        return grid_positions(frame_times, latent.shape[3] // p_h, latent.shape[4] // p_w)


def grid_positions(times: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """(time, row, column) of the tokens of `len(times)` frames of `rows` × `columns` tokens, `[L, 3]`.

    Tokens are ordered frame by frame, row by row, as patchifying flattens them.
    """
    time, row, column = torch.meshgrid(
        times.float(),
        torch.arange(rows, device=times.device, dtype=torch.float32),
        torch.arange(columns, device=times.device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([time, row, column], dim=-1).reshape(-1, 3)
