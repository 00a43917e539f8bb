"""Cross-attention for the adapters (keyframe guidance, intrinsic prompts), beside Wan's own attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rotate_by_position(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """1D rotary embedding of `x` `[B, heads, L, head_dim]` at float `positions` `[L]`.

    Rotating queries and keys by their own positions makes q·k depend on the difference only:
    here, the temporal distance between a frame and a keyframe.
    """
    head_dim = x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, device=x.device, dtype=torch.float32) / head_dim)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # [L, head_dim / 2]
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # [B, h, L, hd/2, 2]
    return rotated.flatten(-2).type_as(x)


def zero_init(module: nn.Module) -> None:
    """Set every parameter of `module` to zero: a new branch that starts as an exact no-op."""
    for param in module.parameters():
        nn.init.zeros_(param)


class CrossAttention(nn.Module):
    """Attention of render tokens onto context tokens, with its own query; output zero-initialised.

    The zero output projection makes a freshly attached branch an exact no-op.
    """

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6, rope_theta: float = 10000.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.rope_theta = rope_theta
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(dim, eps=eps)
        self.norm_k = nn.RMSNorm(dim, eps=eps)
        self.to_out = nn.Linear(dim, dim)
        zero_init(self.to_out)

    def forward(
        self,
        hidden_states: torch.Tensor,
        context: torch.Tensor,
        query_positions: torch.Tensor | None = None,
        key_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`hidden_states` `[B, L, D]`, `context` `[B, Lc, D]` -> `[B, L, D]`.

        With positions (`[L]`, `[Lc]`), queries and keys are rotated by them (RoPE).
        """
        x = self.norm(hidden_states)
        query = self.norm_q(self.to_q(x)).unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        key = self.norm_k(self.to_k(context)).unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        value = self.to_v(context).unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        # [B, L, D] -> [B, heads, L, head_dim]
        if query_positions is not None and key_positions is not None:
            query = rotate_by_position(query, query_positions, self.rope_theta)
            key = rotate_by_position(key, key_positions, self.rope_theta)
        out = F.scaled_dot_product_attention(query, key, value)
        # [B, heads, L, head_dim] -> [B, L, D]
        return self.to_out(out.transpose(1, 2).flatten(2))
