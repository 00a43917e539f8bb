"""Latent bridge matching (paper §4.3, ARCHITECTURE §3): the interpolant, the target, the sampler.

z0 is the bridge source: the clean albedo latent (the paper), or with `source = "shaded"` the latent of
a cheap deferred shading of the G-buffers (beyond the paper: the network then learns what shading
misses, not all of light transport); the RGB latent for inverse rendering. z1 is the beauty latent.
    z_t = (1 - t)·z0 + t·z1 + σ·sqrt(t(1 - t))·ε          (paper eq. 4)
    target v = (z1 - z_t) / (1 - t)                         (paper eq. 5)
    ẑ1 = z_t + v·(1 - t)                                    (paper eq. 6)
With σ = 0 this is flow matching: the target becomes z1 - z0.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

# Wan2.1 was pre-trained with flow matching on timesteps in [0, 1000], 1000 being pure noise.
WAN_NUM_TRAIN_TIMESTEPS = 1000


BRIDGE_SOURCES = ("albedo", "shaded", "shaded_visibility", "shaded_visibility_filtered")


@dataclass(frozen=True)
class BridgeConfig:
    """Settings of the bridge; saved in the checkpoint's config.json."""

    sigma: float = 0.005  # ARCHITECTURE §3 / paper §4.3
    train_times: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)  # the four discrete training times
    # z0: "albedo" (paper), "shaded" (Deferred shading of the G-buffers), "shaded_visibility" (with
    # shadows, occlusion and one screen-space bounce: core/shading/visibility.py) or
    # "shaded_visibility_filtered" (that under the renderer's pixel filter: core/shading/pixel_filter.py)
    source: str = "albedo"

    def __post_init__(self) -> None:
        if self.source not in BRIDGE_SOURCES:
            raise ValueError(f"bridge source {self.source!r}: expected one of {BRIDGE_SOURCES}")


def interpolant(
    z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, sigma: float, noise: torch.Tensor
) -> torch.Tensor:
    """z_t for latents `[B, C, F, H, W]` and times `t` of shape `[B]`."""
    t_ = t.view(-1, *([1] * (z0.ndim - 1)))
    return (1 - t_) * z0 + t_ * z1 + sigma * torch.sqrt(t_ * (1 - t_)) * noise


def velocity_target(z1: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(z1 - z_t) / (1 - t); t < 1 always (the training times stop at 0.75)."""
    t_ = t.view(-1, *([1] * (z1.ndim - 1)))
    return (z1 - z_t) / (1 - t_)


def sample_train_times(
    batch_size: int, config: BridgeConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One of the discrete training times per sample, `[B]`."""
    choices = torch.tensor(config.train_times, dtype=torch.float32)
    index = torch.randint(len(choices), (batch_size,), generator=generator)
    return choices[index]


def wan_timestep(t: torch.Tensor) -> torch.Tensor:
    """Bridge time -> Wan's timestep input: the one place the two scales meet.

    Wan's flow matching runs from noise (1000) to data (0); our bridge runs from the source
    (t = 0) to the beauty (t = 1), so the start of our trajectory takes Wan's first timestep.
    Wan predicts noise − data, the negative of our velocity z1 − z0: `wan_import` negates Wan's
    output head once, so that an imported model starts pointing from the source to the beauty.
    """
    return (1.0 - t) * WAN_NUM_TRAIN_TIMESTEPS


def inference_times(steps: int) -> list[float]:
    """Uniform times 0, 1/steps, ..., 1 at which the sampler evaluates and lands."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return [i / steps for i in range(steps + 1)]


VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample(z0: torch.Tensor, velocity: VelocityFn, steps: int = 1) -> torch.Tensor:
    """Integrate from z0 (t = 0) to ẑ1 with Euler steps of the predicted velocity.

    One step is paper eq. 6 at t = 0 (z_0 = z0 exactly, since the noise term vanishes there);
    more steps are the diffusion-style baseline, never the default. Deterministic: no noise.
    """
    times = inference_times(steps)
    z = z0
    for t, t_next in itertools.pairwise(times):
        t_batch = torch.full((z0.shape[0],), t, dtype=torch.float32, device=z0.device)
        z = z + velocity(z, t_batch) * (t_next - t)
    return z
