"""What a render is asked for and what it hands back to be written: plain data, no torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from renderflow.core.io.envmap import EnvTransform
from renderflow.core.io.exr import Layer


@dataclass(frozen=True)
class RenderSettings:
    """What a render is asked for beside its inputs."""

    steps: int = 1
    aovs: Sequence[str] = ()  # layers beside the beauty: albedo, normal, depth, roughness, metallic, specular
    env_transform: EnvTransform = field(default_factory=EnvTransform)


@dataclass
class OutputFrame:
    """One frame to write: its number, layers and header attributes."""

    frame: int
    layers: list[Layer]
    attributes: dict[str, object]
