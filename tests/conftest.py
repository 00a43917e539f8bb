"""Tiny configurations of the real classes, and G-buffers made in the test."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from renderflow.core.configs import build_tiny_pipeline
from renderflow.core.pipeline import GBuffers, RenderFlowPipeline

TINY_TRANSFORMER: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "in_channels": 4,
    "freq_dim": 16,
    "ffn_dim": 32,
    "num_layers": 2,
    "rope_max_seq_len": 64,
}
TINY_AUTOENCODER: dict[str, Any] = {"latent_channels": 4, "base_channels": 8, "num_downsamples": 2}


def randomise(module: torch.nn.Module, seed: int = 1) -> None:
    """Give every parameter (zero-initialised ones too) random values: a stand-in for training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


@pytest.fixture
def tiny_pipeline() -> RenderFlowPipeline:
    torch.manual_seed(0)
    return build_tiny_pipeline(TINY_TRANSFORMER, TINY_AUTOENCODER, lora_rank=4, chunk_frames=3)


def make_gbuffers(frames: int = 3, size: int = 32, seed: int = 0) -> GBuffers:
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(frames, size, size, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    depth = (1.0 + 4.0 * rng.random((frames, size, size, 1))).astype(np.float32)
    depth[:, :4] = np.inf  # a strip of background
    return GBuffers(
        albedo=rng.random((frames, size, size, 3), dtype=np.float32),
        normal=normal,
        depth=depth,
        material=rng.random((frames, size, size, 3), dtype=np.float32),
    )


def make_envmap(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((16, 32, 3)) * 5.0).astype(np.float32)
