"""LoRA through peft on the frozen transformer: attach, switch on and off, save apart from the base.

Each adapter (keyframe, inverse) targets its own modules, so every LoRA layer carries exactly one
adapter and switching a layer on or off switches exactly that adapter.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from torch import nn


def attach_lora(model: nn.Module, adapter_name: str, target_regex: str, rank: int) -> None:
    """Inject LoRA layers named `adapter_name` into the modules whose full name matches the regex.

    LoRA's B matrices start at zero, so attaching changes no output.
    """
    config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=target_regex)
    with warnings.catch_warnings():
        # peft warns when a second adapter is injected into the same model: two are intended here.
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        inject_adapter_in_model(config, model, adapter_name=adapter_name)
    if not any(adapter_name in layer.lora_A for layer in _lora_layers(model)):
        raise ValueError(f"LoRA target {target_regex!r} matched no module of {type(model).__name__}")
    set_lora_enabled(model, adapter_name, False)


def has_lora(model: nn.Module, adapter_name: str) -> bool:
    return any(adapter_name in layer.lora_A for layer in _lora_layers(model))


def set_lora_enabled(model: nn.Module, adapter_name: str, enabled: bool) -> None:
    """Switch every LoRA layer of `adapter_name` on or off (off: the base layer's output, exactly).

    peft's switch also sets `requires_grad` of the layer's weights; which weights train is the
    training stage's decision, so the flags are put back as they were.
    """
    for layer in _lora_layers(model):
        if adapter_name in layer.lora_A and layer.disable_adapters == enabled:
            flags = [(param, param.requires_grad) for param in layer.parameters()]
            layer.enable_adapters(enabled)
            if enabled:  # peft keeps one model-wide active name; each layer must run its own adapter
                layer.set_adapter(adapter_name)
            for param, requires_grad in flags:
                param.requires_grad_(requires_grad)


@contextmanager
def selected_lora(model: nn.Module, adapter_name: str | None, known: tuple[str, ...]) -> Iterator[None]:
    """Run a task with exactly `adapter_name`'s LoRA on (None: the base model alone) among the
    adapters `known` to the model; all are off again afterwards. A task selects its adapter once."""
    present = [name for name in known if has_lora(model, name)]
    for name in present:
        set_lora_enabled(model, name, name == adapter_name)
    try:
        yield
    finally:
        for name in present:
            set_lora_enabled(model, name, False)


def reset_lora(model: nn.Module, adapter_name: str) -> None:
    """Start `adapter_name`'s LoRA afresh: A re-drawn as peft initialises it, B zero (a no-op again)."""
    for layer in _lora_layers(model):
        if adapter_name in layer.lora_A:
            layer.reset_lora_parameters(adapter_name, init_lora_weights=True)


def lora_state_dict(model: nn.Module, adapter_name: str) -> dict[str, torch.Tensor]:
    return dict(get_peft_model_state_dict(model, adapter_name=adapter_name))


def load_lora_state_dict(model: nn.Module, adapter_name: str, state_dict: dict[str, torch.Tensor]) -> None:
    """Load LoRA tensors saved by `lora_state_dict`; every expected tensor must be there, nothing else."""
    expected = set(lora_state_dict(model, adapter_name))
    unexpected = set(state_dict) - expected
    if unexpected:
        raise ValueError(f"LoRA weights for {adapter_name!r} do not fit, e.g. {min(unexpected)}")
    missing = expected - set(state_dict)
    if missing:
        raise ValueError(
            f"LoRA weights for {adapter_name!r} miss {len(missing)} tensors, e.g. {min(missing)}"
        )
    set_peft_model_state_dict(model, state_dict, adapter_name=adapter_name)


def base_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's own weights under their original names, without any LoRA tensor."""
    return {
        key.replace(".base_layer.", "."): value
        for key, value in model.state_dict().items()
        if "lora_" not in key
    }


def _lora_layers(model: nn.Module) -> list[Any]:
    """peft's LoRA layers: modules that are also LoraLayer (typed loosely: the mixin is no Module)."""
    return [module for module in model.modules() if isinstance(module, LoraLayer)]
