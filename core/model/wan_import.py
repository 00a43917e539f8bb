"""Import Wan2.1-T2V (diffusers layout: `transformer/`, `vae/`) from a local folder into RenderFlow.

Kept: patch embedding, time embedding, self-attention, feed-forward, norms, output head, VAE.
Dropped: text cross-attention (`attn2`, `norm2`), the text embedder (and any image embedder).
New, initialised as the paper says: the attribute embedder and the per-block env AdaLN at zero,
the env embedder from the albedo patch embedding, fresh keyframe and inverse adapters.
Changed: the output head is negated, since Wan predicts noise − data and our bridge's velocity is
data − source (core/model/bridge.py); without it a fine-tune starts with its head pointing backwards.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel

from renderflow.core.model.autoencoder import WanAutoencoder
from renderflow.core.model.bridge import BridgeConfig
from renderflow.core.model.configs import ModelSpec
from renderflow.core.model.inverse import InverseAdapter
from renderflow.core.model.keyframe import KeyframeAdapter
from renderflow.core.model.pipeline import PipelineConfig, RenderFlowPipeline
from renderflow.core.model.transformer import RenderFlowTransformer
from renderflow.core.shading.lighting import LightingConfig

logger = logging.getLogger(__name__)
WAN_TRAINED_SIZE = 832  # the longer side of Wan2.1-T2V-1.3B's 480p videos

# Wan config keys that carry over unchanged to RenderFlowTransformer.
SHARED_CONFIG_KEYS = (
    "patch_size",
    "num_attention_heads",
    "attention_head_dim",
    "in_channels",
    "freq_dim",
    "ffn_dim",
    "num_layers",
    "qk_norm",
    "eps",
    "rope_max_seq_len",
)
# What RenderFlow drops from Wan (paper A.1: no text conditioning).
DROPPED_PREFIXES = ("condition_embedder.text_embedder.", "condition_embedder.image_embedder.")
DROPPED_BLOCK_PARTS = (".attn2.", ".norm2.")
# What RenderFlow adds, initialised by RenderFlowTransformer itself.
NEW_PARTS = ("attribute_embedder.", "env_embedder.", ".env_modulation.")


def import_wan(
    folder: Path, lora_rank: int = 64, chunk_frames: int = 5, spec: ModelSpec | None = None
) -> RenderFlowPipeline:
    """Build a RenderFlow pipeline from a local Wan2.1 diffusers folder (no network).

    `spec` takes its choices beyond the paper (lighting, bridge source, keyframe reprojection), not
    its module sizes, which come from Wan's config; None builds the paper's model.
    """
    folder = Path(folder)
    for part in ("transformer", "vae"):
        if not (folder / part / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder / part}: expected a diffusers Wan2.1 {part} folder with config.json"
            )
    wan = WanTransformer3DModel.from_pretrained(folder / "transformer", local_files_only=True)
    vae = AutoencoderKLWan.from_pretrained(folder / "vae", local_files_only=True)
    wan_config = wan.config
    if (wan_config["out_channels"] or wan_config["in_channels"]) != wan_config["in_channels"]:
        raise ValueError(
            f"{folder / 'transformer'}: in_channels {wan_config['in_channels']} != out_channels "
            f"{wan_config['out_channels']}; RenderFlow needs a T2V model (latent in, latent out)"
        )
    if wan_config["in_channels"] != vae.config["z_dim"]:
        raise ValueError(
            f"{folder}: transformer takes {wan_config['in_channels']} channels, "
            f"VAE makes {vae.config['z_dim']}"
        )

    lighting = spec.lighting if spec is not None else LightingConfig()
    transformer = RenderFlowTransformer(
        **{key: wan_config[key] for key in SHARED_CONFIG_KEYS}, env_latents=len(lighting.env_brackets)
    )
    kept = {
        key: value
        for key, value in wan.state_dict().items()
        if not key.startswith(DROPPED_PREFIXES) and not any(part in key for part in DROPPED_BLOCK_PARTS)
    }
    result = transformer.load_state_dict(kept, strict=False)
    not_new = [key for key in result.missing_keys if not any(part in key for part in NEW_PARTS)]
    if not_new or result.unexpected_keys:
        raise ValueError(
            f"{folder}: Wan weights do not map "
            f"(missing {not_new[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    # Paper A.1: the env embedder starts as a copy of the (now loaded) albedo patch embedding.
    transformer.init_env_embedder()
    # Wan predicts noise − data; our bridge velocity is target − source (core/model/bridge.py): with the
    # source in the place of the noise, that is the negative. Negate the head once, here.
    with torch.no_grad():
        transformer.proj_out.weight.neg_()
        transformer.proj_out.bias.neg_()
    logger.info("imported Wan2.1 from %s: %d tensors kept", folder, len(kept))

    keyframe_adapter = KeyframeAdapter.for_transformer(
        transformer,
        lora_rank,
        reprojection=spec.reprojection if spec is not None else False,
        reprojected_source=spec.reprojected_source if spec is not None else False,
    )
    inverse_adapter = InverseAdapter.for_transformer(transformer, lora_rank)
    return RenderFlowPipeline(
        transformer,
        WanAutoencoder(vae),
        keyframe_adapter,
        inverse_adapter,
        BridgeConfig(source=spec.bridge_source if spec is not None else "albedo"),
        # Wan2.1-1.3B generates 832 × 480: frames up to that go through the transformer whole
        PipelineConfig(chunk_frames, transformer_window=WAN_TRAINED_SIZE),
        lighting,
    )
