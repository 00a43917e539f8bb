"""Checkpoint folders: config.json (every module's config and the settings) and safetensors files.

Nothing is pickled; each file is written to a temporary name and renamed (docs/MODEL.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from safetensors.torch import load_file, save_file
from torch import nn

from renderflow.core.model.autoencoder import TinyAutoencoder, WanAutoencoder
from renderflow.core.model.bridge import BridgeConfig
from renderflow.core.model.inverse import INVERSE_LORA, InverseAdapter
from renderflow.core.model.keyframe import KEYFRAME_LORA, KeyframeAdapter
from renderflow.core.model.lora import base_state_dict, load_lora_state_dict, lora_state_dict
from renderflow.core.model.pipeline import PipelineConfig, RenderFlowPipeline
from renderflow.core.model.transformer import RenderFlowTransformer
from renderflow.core.shading.lighting import LightingConfig

CHECKPOINT_FORMAT = "renderflow-checkpoint"
CHECKPOINT_VERSION = 1
CONFIG_NAME = "config.json"
TRANSFORMER_WEIGHTS = "transformer.safetensors"
AUTOENCODER_WEIGHTS = "autoencoder.safetensors"
KEYFRAME_WEIGHTS = "keyframe_adapter.safetensors"
INVERSE_WEIGHTS = "inverse_adapter.safetensors"


def save_checkpoint(pipeline: RenderFlowPipeline, folder: Path) -> None:
    """Write config.json and the safetensors files; each file is written to a temp name and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(pipeline.autoencoder, WanAutoencoder):
        autoencoder_entry = {"kind": "wan", "config": _plain_config(pipeline.autoencoder.vae)}
    else:
        autoencoder_entry = {"kind": "tiny", "config": _plain_config(pipeline.autoencoder)}
    config: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "transformer": _plain_config(pipeline.transformer),
        "autoencoder": autoencoder_entry,
        "keyframe_adapter": _plain_config(pipeline.keyframe_adapter) if pipeline.keyframe_adapter else None,
        "inverse_adapter": _plain_config(pipeline.inverse_adapter) if pipeline.inverse_adapter else None,
        "bridge": asdict(pipeline.bridge),
        "pipeline": asdict(pipeline.config),
        "lighting": asdict(pipeline.lighting),
    }
    _save_tensors(base_state_dict(pipeline.transformer), folder / TRANSFORMER_WEIGHTS)
    _save_tensors(pipeline.autoencoder.state_dict(), folder / AUTOENCODER_WEIGHTS)
    if pipeline.keyframe_adapter is not None:
        tensors = {f"modules.{k}": v for k, v in pipeline.keyframe_adapter.state_dict().items()}
        tensors |= {f"lora.{k}": v for k, v in lora_state_dict(pipeline.transformer, KEYFRAME_LORA).items()}
        _save_tensors(tensors, folder / KEYFRAME_WEIGHTS)
    if pipeline.inverse_adapter is not None:
        tensors = {f"modules.{k}": v for k, v in pipeline.inverse_adapter.state_dict().items()}
        tensors |= {f"lora.{k}": v for k, v in lora_state_dict(pipeline.transformer, INVERSE_LORA).items()}
        _save_tensors(tensors, folder / INVERSE_WEIGHTS)
    _atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2, default=_json_default))


def load_checkpoint(folder: Path) -> RenderFlowPipeline:
    """Load a checkpoint folder written by `save_checkpoint` (local files only), on the CPU."""
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no RenderFlow checkpoint here (config.json is missing)")
    config = json.loads(config_path.read_text())
    if config.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{config_path}: not a RenderFlow checkpoint (format {config.get('format')!r})")
    if config.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{config_path}: checkpoint version {config.get('version')}, expected {CHECKPOINT_VERSION}"
        )

    try:
        pipeline_config = PipelineConfig(**config["pipeline"])
    except (TypeError, ValueError) as error:  # an unknown setting or a value out of range
        raise ValueError(f"{config_path}: {error}") from error

    transformer = RenderFlowTransformer.from_config(config["transformer"])
    _load_module(transformer, folder / TRANSFORMER_WEIGHTS)
    autoencoder: TinyAutoencoder | WanAutoencoder
    if config["autoencoder"]["kind"] == "wan":
        autoencoder = WanAutoencoder(AutoencoderKLWan.from_config(config["autoencoder"]["config"]))
    else:
        autoencoder = TinyAutoencoder.from_config(config["autoencoder"]["config"])
    _load_module(autoencoder, folder / AUTOENCODER_WEIGHTS)
    keyframe_adapter = (
        KeyframeAdapter.from_config(config["keyframe_adapter"]) if config["keyframe_adapter"] else None
    )
    inverse_adapter = (
        InverseAdapter.from_config(config["inverse_adapter"]) if config["inverse_adapter"] else None
    )
    pipeline = RenderFlowPipeline(
        transformer,
        autoencoder,
        keyframe_adapter,
        inverse_adapter,
        BridgeConfig(**{**config["bridge"], "train_times": tuple(config["bridge"]["train_times"])}),
        pipeline_config,
        lighting_config(config.get("lighting", {})),
    )
    for adapter, name, weights in (
        (keyframe_adapter, KEYFRAME_LORA, KEYFRAME_WEIGHTS),
        (inverse_adapter, INVERSE_LORA, INVERSE_WEIGHTS),
    ):
        if adapter is not None:
            tensors = _read_tensors(folder / weights)
            modules = {k.removeprefix("modules."): v for k, v in tensors.items() if k.startswith("modules.")}
            _load_state(adapter, modules, folder / weights)
            lora = {k.removeprefix("lora."): v for k, v in tensors.items() if k.startswith("lora.")}
            load_lora_state_dict(transformer, name, lora)
    return pipeline


def lighting_config(entry: dict[str, Any]) -> LightingConfig:
    """The checkpoint's `lighting` entry (absent in checkpoints before it: the paper's defaults)."""
    if "env_brackets" in entry:
        entry = {**entry, "env_brackets": tuple(entry["env_brackets"])}
    return LightingConfig(**entry)


def _plain_config(module: Any) -> dict[str, Any]:
    """A registered module's config without diffusers' private keys (`_name_or_path`, ...)."""
    return {key: value for key, value in module.config.items() if not key.startswith("_")}


def _json_default(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to config.json")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file is missing from the checkpoint")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from error


def _load_state(module: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    result = module.load_state_dict(tensors, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path}: weights do not fit {type(module).__name__} "
            f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


def _load_module(module: nn.Module, path: Path) -> None:
    _load_state(module, _read_tensors(path), path)
