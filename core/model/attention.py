"""Cross-attention for the adapters (keyframe guidance, intrinsic prompts), beside Wan's own attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rope_axis_dims(head_dim: int, num_axes: int) -> list[int]:
    """Channels of each axis in a multi-axis rotary embedding: Wan's split for (time, row, column).

    Every axis but the first gets `2 * (head_dim // (2 * num_axes))` channels, the first the rest.
    """
    other = 2 * (head_dim // (2 * num_axes))
    return [head_dim - other * (num_axes - 1)] + [other] * (num_axes - 1)


def rotate_by_position(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary embedding of `x` `[B, heads, L, head_dim]` at float `positions` `[L]` or `[L, A]`.

    With A axes (keyframes: time, row, column), each axis rotates its own slice of head_dim.
    Rotating queries and keys by their own positions makes q·k depend on the offset only: here,
    the temporal distance and the spatial offset between a render token and a keyframe token.
    """
    if positions.ndim == 1:
        positions = positions[:, None]
    slices = x.float().split(rope_axis_dims(x.shape[-1], positions.shape[1]), dim=-1)
    rotated_slices = []
    for axis, part in enumerate(slices):
        dim = part.shape[-1]
        inv_freq = theta ** (-torch.arange(0, dim, 2, device=x.device, dtype=torch.float32) / dim)
        angles = positions[:, axis].to(x.device, torch.float32)[:, None] * inv_freq[None, :]  # [L, dim/2]
        cos, sin = angles.cos(), angles.sin()
        x1, x2 = part[..., 0::2], part[..., 1::2]
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # [B, h, L, dim/2, 2]
        rotated_slices.append(rotated.flatten(-2))
    return torch.cat(rotated_slices, dim=-1).type_as(x)


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

        With positions (`[L, A]`, `[Lc, A]`), queries and keys are rotated by them (RoPE).
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
