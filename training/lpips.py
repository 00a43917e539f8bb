"""LPIPS (Zhang et al. 2018, the AlexNet variant) in plain torch, from local weights.

The `lpips` package needs torchvision, which these machines cannot install; this module is the
same network without it. Weights come from the user: torchvision's AlexNet checkpoint
(`alexnet-owt-7be5be79.pth`) and the LPIPS linear heads (`weights/v0.1/alex.pth` of the lpips
repository), converted once to one safetensors file by `rf-train lpips-weights`. Where no
weights are found and the `lpips` package imports, that package is used; where neither exists,
`load_lpips` returns None and every caller says loudly that LPIPS is unavailable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

logger = logging.getLogger(__name__)

LPIPS_WEIGHTS_ENV = "RENDERFLOW_LPIPS_WEIGHTS"  # default weights file for rf-train and rf-eval
# The lpips package's input scaling for [-1, 1] images (its ScalingLayer).
INPUT_SHIFT = (-0.030, -0.088, -0.188)
INPUT_SCALE = (0.458, 0.448, 0.450)
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)
# torchvision's AlexNet `features` indices of the convolutions; LPIPS taps the ReLU after each.
ALEXNET_CONVS = (0, 3, 6, 8, 10)

PerceptualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _alexnet_features() -> nn.Sequential:
    """torchvision's `alexnet().features`, layer for layer, so that its state dict loads by name."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=False),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=False),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=False),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=False),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=False),
    )


class _LinearHead(nn.Module):
    """The lpips package's NetLinLayer (dropout, then a 1x1 convolution), named as it names it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(p=0.0), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, squared_difference: torch.Tensor) -> torch.Tensor:
        return self.model(squared_difference)


class Lpips(nn.Module):
    """LPIPS distance between images `[N, 3, H, W]` in [-1, 1]; returns `[N]`. Frozen, eval mode."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.net = _alexnet_features()
        self.heads = nn.ModuleList([_LinearHead(channels) for channels in ALEXNET_CHANNELS])
        self.register_buffer("shift", torch.tensor(INPUT_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(INPUT_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _taps(self, image: torch.Tensor) -> list[torch.Tensor]:
        features, taps = (image - self.shift) / self.scale, []
        for index, layer in enumerate(self.net):
            features = layer(features)
            if index - 1 in ALEXNET_CONVS:  # the ReLU right after a convolution
                taps.append(features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return taps

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        if image_a.shape != image_b.shape or image_a.ndim != 4 or image_a.shape[1] != 3:
            raise ValueError(
                "LPIPS compares two [N, 3, H, W] images, "
                f"got {tuple(image_a.shape)} and {tuple(image_b.shape)}"
            )
        distance = torch.zeros(image_a.shape[0], device=image_a.device)
        for head, tap_a, tap_b in zip(
            self.heads, self._taps(image_a.float()), self._taps(image_b.float()), strict=True
        ):
            distance = distance + head((tap_a - tap_b) ** 2).mean(dim=(1, 2, 3))
        return distance


def convert_official_weights(alexnet_path: Path, heads_path: Path, out: Path) -> None:
    """torchvision's AlexNet checkpoint + lpips' `alex.pth` heads -> one safetensors file.

    The .pth files are read with `torch.load(weights_only=True)`: tensors only, no code runs.
    """
    backbone = torch.load(alexnet_path, map_location="cpu", weights_only=True)
    heads = torch.load(heads_path, map_location="cpu", weights_only=True)
    tensors = {
        f"net.{key.removeprefix('features.')}": value
        for key, value in backbone.items()
        if key.startswith("features.")
    }
    tensors |= {
        f"heads.{key.removeprefix('lin')}": value for key, value in heads.items() if key.startswith("lin")
    }
    model = Lpips()
    _load_checked(model, tensors, f"{alexnet_path} + {heads_path}")
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(tmp))
    tmp.replace(out)


def _load_checked(model: Lpips, tensors: dict[str, torch.Tensor], source: str) -> None:
    result = model.load_state_dict(tensors, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{source}: not LPIPS AlexNet weights (missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]})"
        )


def load_lpips_file(path: Path) -> Lpips:
    """An Lpips module from a safetensors file written by `convert_official_weights`."""
    try:
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from error
    model = Lpips()
    _load_checked(model, tensors, str(path))
    return model


def load_lpips(path: Path | None = None, device: str | torch.device = "cpu") -> PerceptualFn | None:
    """The LPIPS distance `[N, 3, H, W]` x 2 -> `[N]`, or None when no weights exist here (logged loudly).

    Looks at `path`, then $RENDERFLOW_LPIPS_WEIGHTS, then the `lpips` package.
    """
    path = path or (Path(os.environ[LPIPS_WEIGHTS_ENV]) if os.environ.get(LPIPS_WEIGHTS_ENV) else None)
    if path is not None:
        return load_lpips_file(path).to(device)
    try:
        import lpips  # optional: needs torchvision

        package_model: nn.Module = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
        package_model.requires_grad_(False)
        return lambda a, b: package_model(a, b).flatten()
    except Exception as error:  # ImportError, or torchvision failing inside it
        logger.warning(
            "LPIPS UNAVAILABLE: no weights file (--lpips-weights or $%s) and the lpips package does not "
            "import (%s); training runs without the LPIPS term and evaluations report LPIPS as n/a. "
            "Convert the official weights with `rf-train lpips-weights`.",
            LPIPS_WEIGHTS_ENV,
            type(error).__name__,
        )
        return None
