"""Autoencoders behind one small interface: Wan2.1's video VAE for production, a tiny one for CPU.

Both take videos `[B, 3, F, H, W]` in [-1, 1] and give normalised latents `[B, C, F', H', W']`.
Callers stack buffers along B and encode them in one call: a chunk's four G-buffers together
(cached for relights), its env map in a second call.
"""

from __future__ import annotations

import itertools
from typing import Protocol

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class Autoencoder(Protocol):
    latent_channels: int
    spatial_factor: int
    temporal_factor: int

    def encode(self, video: torch.Tensor) -> torch.Tensor: ...
    def decode(self, latent: torch.Tensor) -> torch.Tensor: ...
    def is_valid_frame_count(self, num_frames: int) -> bool: ...
    def latent_frames(self, num_frames: int) -> int: ...


def check_video(autoencoder: Autoencoder, video: torch.Tensor) -> None:
    """Raise a ValueError naming the bad size when `video` cannot be encoded."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"expected a video of shape [B, 3, F, H, W], got {tuple(video.shape)}")
    _, _, num_frames, height, width = video.shape
    factor = autoencoder.spatial_factor
    if height % factor or width % factor:
        raise ValueError(f"frame size {width}x{height} is not a multiple of the autoencoder's {factor}")
    if not autoencoder.is_valid_frame_count(num_frames):
        raise ValueError(f"the autoencoder cannot encode {num_frames} frames at once")


class WanAutoencoder(nn.Module):
    """AutoencoderKLWan with Wan's per-channel latent normalisation and its 1+4k frame rule."""

    latents_mean: torch.Tensor
    latents_std: torch.Tensor

    def __init__(self, vae: AutoencoderKLWan) -> None:
        super().__init__()
        self.vae = vae
        config = vae.config
        self.latent_channels = int(config["z_dim"])
        self.spatial_factor = int(config["scale_factor_spatial"])
        self.temporal_factor = int(config["scale_factor_temporal"])
        # [C] -> [1, C, 1, 1, 1], so that they broadcast over [B, C, F, H, W]; they come from the config
        self.register_buffer(
            "latents_mean", torch.tensor(config["latents_mean"]).view(1, -1, 1, 1, 1), persistent=False
        )
        self.register_buffer(
            "latents_std", torch.tensor(config["latents_std"]).view(1, -1, 1, 1, 1), persistent=False
        )

    def is_valid_frame_count(self, num_frames: int) -> bool:
        return num_frames >= 1 and (num_frames - 1) % self.temporal_factor == 0

    def latent_frames(self, num_frames: int) -> int:
        return 1 + (num_frames - 1) // self.temporal_factor

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        check_video(self, video)
        # The posterior's mode, not a sample: rendering must be deterministic.
        latent = self.vae.encode(video.to(self.vae.dtype)).latent_dist.mode()
        return (latent - self.latents_mean.to(latent)) / self.latents_std.to(latent)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        latent = latent.to(self.vae.dtype) * self.latents_std.to(self.vae.dtype)
        latent = latent + self.latents_mean.to(self.vae.dtype)
        return self.vae.decode(latent).sample.clamp(-1.0, 1.0)


class TinyAutoencoder(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers' two bases disagree on config_name's type
    """A per-frame convolutional autoencoder for the CPU default model (no temporal compression).

    Args:
        latent_channels: channels of the latent.
        base_channels: channels after the first convolution; doubled at each downsampling.
        num_downsamples: stride-2 stages; the spatial factor is 2**num_downsamples.
    """

    temporal_factor = 1

    @register_to_config
    def __init__(self, latent_channels: int = 8, base_channels: int = 32, num_downsamples: int = 2) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        self.spatial_factor = 2**num_downsamples
        widths = [base_channels * 2**i for i in range(num_downsamples + 1)]
        encoder: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1), nn.SiLU()]
        for c_in, c_out in itertools.pairwise(widths):
            encoder += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
        encoder.append(nn.Conv2d(widths[-1], latent_channels, 1))
        decoder: list[nn.Module] = [nn.Conv2d(latent_channels, widths[-1], 3, padding=1), nn.SiLU()]
        for c_in, c_out in zip(widths[:0:-1], widths[-2::-1], strict=True):
            decoder += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
        decoder.append(nn.Conv2d(widths[0], 3, 3, padding=1))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        # Channels-last convolutions run about 2× faster on the CPU (oneDNN); loaded weights keep it.
        for param in self.parameters():
            if param.ndim == 4:
                param.data = param.data.contiguous(memory_format=torch.channels_last)

    def is_valid_frame_count(self, num_frames: int) -> bool:
        return num_frames >= 1

    def latent_frames(self, num_frames: int) -> int:
        return num_frames

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        check_video(self, video)
        batch_size, channels, num_frames, height, width = video.shape
        # [B, 3, F, H, W] -> [B*F, 3, H, W]: each frame on its own
        frames = video.permute(0, 2, 1, 3, 4).reshape(batch_size * num_frames, channels, height, width)
        latent = self.encoder(frames.to(self.dtype).contiguous(memory_format=torch.channels_last))
        # [B*F, C, H', W'] -> [B, C, F, H', W']
        return latent.unflatten(0, (batch_size, num_frames)).permute(0, 2, 1, 3, 4)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        batch_size, channels, num_frames, height, width = latent.shape
        # [B, C, F, H', W'] -> [B*F, C, H', W']
        frames = latent.permute(0, 2, 1, 3, 4).reshape(batch_size * num_frames, channels, height, width)
        video = self.decoder(frames.to(self.dtype).contiguous(memory_format=torch.channels_last)).clamp(
            -1.0, 1.0
        )
        # [B*F, 3, H, W] -> [B, 3, F, H, W]
        return video.unflatten(0, (batch_size, num_frames)).permute(0, 2, 1, 3, 4)
