"""Named model configurations: the production Wan2.1-1.3B shape and the small CPU default."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from renderflow.core.model.attention import zero_init
from renderflow.core.model.autoencoder import TinyAutoencoder
from renderflow.core.model.bridge import BridgeConfig
from renderflow.core.model.inverse import InverseAdapter
from renderflow.core.model.keyframe import KeyframeAdapter
from renderflow.core.model.pipeline import PipelineConfig, RenderFlowPipeline
from renderflow.core.model.transformer import RenderFlowTransformer
from renderflow.core.shading.lighting import LightingConfig

# Wan2.1-T2V-1.3B (ARCHITECTURE §3): dim 1536 = 12 heads × 128, 30 layers, FFN 8960, 16 latent channels.
PRODUCTION_TRANSFORMER: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
}

# The CPU default model: small enough to train and run on a laptop (see docs/MODEL.md).
CPU_DEFAULT_TRANSFORMER: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 4,
    "attention_head_dim": 32,
    "in_channels": 8,
    "freq_dim": 64,
    "ffn_dim": 512,
    "num_layers": 4,
    "rope_max_seq_len": 256,
}
CPU_DEFAULT_AUTOENCODER: dict[str, Any] = {"latent_channels": 8, "base_channels": 32, "num_downsamples": 2}

# The bundled model v2's choices beyond the paper (docs/MODEL.md): exposure-normalised lighting,
# the env map at 0 and -8 stops, the Deferred shading as the bridge source, reprojected keyframes.
V2_LIGHTING = LightingConfig(normalise=True, env_brackets=(0.0, -8.0))


@dataclass(frozen=True)
class ModelSpec:
    """A named model for `rf-train autoencoder --model`: module configs and the choices beyond the paper."""

    transformer: dict[str, Any]
    autoencoder: dict[str, Any]
    lighting: LightingConfig = field(default_factory=LightingConfig)
    bridge_source: str = "albedo"
    reprojection: bool = False
    reprojected_source: bool = False
    albedo_attribute: bool = False  # the albedo latent among the transformer's attributes
    pixel_residual: bool = False  # PipelineConfig.pixel_residual
    hdr_bound: bool = False  # PipelineConfig.hdr_bound
    exact_reprojection: bool = False  # PipelineConfig.exact_reprojection
    exact_background: bool = False  # PipelineConfig.exact_background
    pixel_filter: float = 0.0  # PipelineConfig.pixel_filter


# v3 (docs/MODEL.md, "Model v3"): the shading with visibility as the source, albedo as an input, the
# output as the source's pixels plus the network's change, bounded HDR, keyframes taken as they are
# where they are seen, the renderer's pixel filter.
V3_SPEC = ModelSpec(
    CPU_DEFAULT_TRANSFORMER,
    CPU_DEFAULT_AUTOENCODER,
    V2_LIGHTING,
    "shaded_visibility",
    True,
    True,
    albedo_attribute=True,
    pixel_residual=True,
    hdr_bound=True,
    exact_reprojection=True,
    exact_background=True,
    pixel_filter=0.5,
)

MODEL_CONFIGS: dict[str, ModelSpec] = {
    "cpu-default": ModelSpec(CPU_DEFAULT_TRANSFORMER, CPU_DEFAULT_AUTOENCODER),
    "cpu-v2": ModelSpec(CPU_DEFAULT_TRANSFORMER, CPU_DEFAULT_AUTOENCODER, V2_LIGHTING, "shaded", True, True),
    "cpu-v3": V3_SPEC,
    # v3 trained from the prior under the renderer's pixel filter (no filter after the network)
    "cpu-v3-filtered": dataclasses.replace(
        V3_SPEC, bridge_source="shaded_visibility_filtered", pixel_filter=0.0
    ),
}


def build_tiny_pipeline(
    transformer_config: dict[str, Any],
    autoencoder_config: dict[str, Any],
    with_adapters: bool = True,
    lora_rank: int = 8,
    chunk_frames: int = 5,
    lighting: LightingConfig | None = None,
    bridge_source: str = "albedo",
    reprojection: bool = False,
    reprojected_source: bool = False,
    albedo_attribute: bool = False,
    pixel_residual: bool = False,
    hdr_bound: bool = False,
    exact_reprojection: bool = False,
    exact_background: bool = False,
    change_weight: float = 1.0,
    pixel_filter: float = 0.0,
) -> RenderFlowPipeline:
    """A randomly initialised pipeline on the tiny autoencoder (the CPU models, tests, benchmarks).

    With an image bridge source (`shaded`, `shaded_visibility`) the output head starts at zero: a model
    trained from scratch then starts as the shading it is given and learns corrections.
    """
    lighting = lighting or LightingConfig()
    transformer = RenderFlowTransformer(
        **transformer_config, env_latents=len(lighting.env_brackets), albedo_attribute=albedo_attribute
    )
    if bridge_source != "albedo":
        zero_init(transformer.proj_out)
    autoencoder = TinyAutoencoder(**autoencoder_config)
    keyframe = (
        KeyframeAdapter.for_transformer(transformer, lora_rank, reprojection, reprojected_source)
        if with_adapters
        else None
    )
    inverse = InverseAdapter.for_transformer(transformer, lora_rank) if with_adapters else None
    return RenderFlowPipeline(
        transformer,
        autoencoder,
        keyframe,
        inverse,
        BridgeConfig(source=bridge_source),
        PipelineConfig(
            chunk_frames,
            pixel_residual=pixel_residual,
            hdr_bound=hdr_bound,
            exact_reprojection=exact_reprojection,
            exact_background=exact_background,
            change_weight=change_weight,
            pixel_filter=pixel_filter,
        ),
        lighting,
    )


def build_model(spec: ModelSpec, lora_rank: int = 8) -> RenderFlowPipeline:
    """A fresh pipeline of a named model specification."""
    return build_tiny_pipeline(
        spec.transformer,
        spec.autoencoder,
        lora_rank=lora_rank,
        lighting=spec.lighting,
        bridge_source=spec.bridge_source,
        reprojection=spec.reprojection,
        reprojected_source=spec.reprojected_source,
        albedo_attribute=spec.albedo_attribute,
        pixel_residual=spec.pixel_residual,
        hdr_bound=spec.hdr_bound,
        exact_reprojection=spec.exact_reprojection,
        exact_background=spec.exact_background,
        pixel_filter=spec.pixel_filter,
    )


def parameter_counts(transformer_config: dict[str, Any], lora_rank: int = 64) -> dict[str, int]:
    """Parameters of the backbone and each adapter, built on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        transformer = RenderFlowTransformer(**transformer_config)
        keyframe = KeyframeAdapter.for_transformer(transformer, lora_rank)
        inverse = InverseAdapter.for_transformer(transformer, lora_rank)  # the rank the builders use
        backbone = sum(p.numel() for p in transformer.parameters())
        keyframe.attach(transformer)
        with_keyframe_lora = sum(p.numel() for p in transformer.parameters())
        inverse.attach(transformer)
        with_all_lora = sum(p.numel() for p in transformer.parameters())
    keyframe_total = sum(p.numel() for p in keyframe.parameters()) + with_keyframe_lora - backbone
    inverse_total = sum(p.numel() for p in inverse.parameters()) + with_all_lora - with_keyframe_lora
    return {
        "backbone": backbone,
        "keyframe_adapter": keyframe_total,
        "inverse_adapter": inverse_total,
        "backbone_with_keyframes": backbone + keyframe_total,
    }
