"""`rf-train convert`: a model of a named specification started from an older checkpoint's weights.

Every tensor whose name and shape fit is copied (transformer, LoRA, autoencoder, adapters); the
attribute embedder of a model that adds the albedo attribute keeps the old channels and starts the
albedo's at zero, so the converted model renders exactly as the old one did from the same source
until it is trained (tests/test_training.py). What could not be copied starts as a fresh model's and
is logged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from renderflow.core.model.configs import MODEL_CONFIGS, build_model
from renderflow.core.model.pipeline import RenderFlowPipeline

logger = logging.getLogger(__name__)
WIDENED = "attribute_embedder.weight"  # [D, 4C (+ C) + 1, kt, kh, kw]: the albedo goes before the mask


def convert(init: Path, model: str, out: Path) -> Path:
    """Write `out`: the named model with `init`'s weights wherever they fit."""
    if model not in MODEL_CONFIGS:
        raise ValueError(f"unknown model configuration {model!r}; known: {sorted(MODEL_CONFIGS)}")
    old = RenderFlowPipeline.from_pretrained(init)
    lora_rank = old.keyframe_adapter.config["lora_rank"] if old.keyframe_adapter is not None else 8
    new = build_model(MODEL_CONFIGS[model], lora_rank=lora_rank)
    fresh: list[str] = []
    for name in ("transformer", "autoencoder", "keyframe_adapter", "inverse_adapter"):
        source, target = getattr(old, name), getattr(new, name)
        if source is not None and target is not None:
            fresh += [f"{name}.{key}" for key in copy_fitting(source, target)]
    if fresh:
        logger.info("started fresh (no fitting tensor in %s): %s", init, ", ".join(fresh))
    new.save_pretrained(out)
    return out


@torch.no_grad()
def copy_fitting(source: nn.Module, target: nn.Module) -> list[str]:
    """Copy `source`'s tensors into `target` where name and shape fit (the attribute embedder widened);
    the names of `target`'s tensors left as they were."""
    given = source.state_dict()
    left = []
    for key, tensor in target.state_dict().items():
        old = given.get(key)
        if old is not None and old.shape == tensor.shape:
            tensor.copy_(old)
        elif old is not None and key == WIDENED and old.shape[1] < tensor.shape[1]:
            tensor.zero_()
            tensor[:, : old.shape[1] - 1] = old[:, :-1]  # the latents as before
            tensor[:, -1] = old[:, -1]  # the conditioning mask, last in both
        else:
            left.append(key)
    return left
