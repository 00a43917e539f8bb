"""`rf-train stage1`: the base renderer (paper §4.3, eqs. 5-8; appendix A).

Loss = bridge loss in latent space + λ·(LPIPS + gradient loss) on the decoded ẑ1 (eq. 8). The
whole transformer trains; the autoencoder and any adapters stay frozen. Half the samples (by
default) are conditioned on their first frame's beauty through the reference latent, as the
chunked inference does (paper §4.4).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from renderflow.core.model.bridge import interpolant, sample_train_times, velocity_target
from renderflow.core.model.pipeline import PipelineConfig, RenderFlowPipeline
from renderflow.core.model.transformer import attribute_latent
from renderflow.core.model.velocity import forward_velocity
from renderflow.training import loop_helpers as helpers
from renderflow.training.datasets import BUFFERS, ClipWindowDataset, WindowSpec
from renderflow.training.losses import bridge_loss, gradient_loss
from renderflow.training.lpips import PerceptualFn

logger = logging.getLogger(__name__)


@dataclass
class Stage1Config(helpers.TransformerStageConfig):
    # I/O
    data: str = ""  # dataset folder (rf-train synth, or clip folders of your own EXRs)
    init: str = ""  # checkpoint to start from (rf-train autoencoder, rf-render import-wan, or a stage-1 run)
    out: str = ""  # the trained checkpoint, its train_state/ and logs/
    split: str = "train"
    profile: str = "auto"  # AOV profile of the clips' EXRs
    augmentations: tuple[str, ...] = ()  # exact copies of each clip beside it (training/augment.py)
    # data: the paper trains 20k steps at 256² then 20k at 512², 5-frame clips
    window: int = 5
    schedule: tuple[tuple[int, int | None], ...] = ((20000, 256), (20000, 512))  # (steps, crop; None = full)
    batch_size: int = 32
    cache_latents: bool = False  # encode each clip once (per-frame autoencoders only)
    # optimisation: AdamW, constant LR per phase of the schedule, each phase with its own linear
    # warm-up (appendix A: 5e-5 at 256², then 3e-5 at 512² after a 1000-step warm-up)
    learning_rate: float = 5e-5
    phase_lr_factors: tuple[float, ...] = (1.0, 0.6)  # × learning_rate per phase; later phases: the last
    warmup_steps: int = 1000
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lambda_pixel: float = 1.0  # λ of eq. 8
    reference_probability: float = 0.5  # share of samples conditioned on their first frame (§4.4)
    lpips_weights: str | None = None  # converted LPIPS weights; see training/lpips.py
    # system: seed, device, gradient_checkpointing, checkpoint_every, log_every (TransformerStageConfig)

    @property
    def steps(self) -> int:
        return sum(steps for steps, _ in self.schedule)

    def phase_at(self, step: int) -> tuple[int, int]:
        """(phase of the schedule, step within it) of a global step."""
        for index, (steps, _) in enumerate(self.schedule):
            if step < steps:
                return index, step
            step -= steps
        return len(self.schedule) - 1, step + self.schedule[-1][0]

    def crop_at(self, step: int) -> int | None:
        return self.schedule[self.phase_at(step)[0]][1]

    def learning_rate_at(self, step: int) -> tuple[float, int]:
        """(the phase's learning rate, step within the phase, from which its warm-up counts)."""
        phase, phase_step = self.phase_at(step)
        factors = self.phase_lr_factors or (1.0,)
        return self.learning_rate * factors[min(phase, len(factors) - 1)], phase_step


def train_stage1(config: Stage1Config, progress: helpers.ProgressFn | None = None) -> Path:
    """Train the base model; return the checkpoint folder. Resumes from `out/train_state/`."""
    # 1. Seed and device
    accelerator, device, rank, world = helpers.start_stage(config.device, config.seed)

    # 2. Model: the transformer trains, the rest is frozen
    # fp32 master weights; bf16 comes from autocast on CUDA
    pipeline = helpers.load_for_training(config.init, device)

    # 3. Data: clips in memory, as this model sees them; one dataset per crop size of the schedule
    clips = helpers.stage_clips(config, pipeline, config.augmentations)
    datasets = {
        crop: ClipWindowDataset(clips, WindowSpec(config.window, crop), config.seed)
        for crop in {crop for _, crop in config.schedule}
    }
    # the checkpoint renders without windows up to the largest frame it trains on (core/model/windows.py)
    full = max(max(clip.stack.shape[2:4]) for clip in clips)  # [N, F, H, W, 3]
    largest = max(crop or full for _, crop in config.schedule)
    pipeline.config = trained_window(pipeline.config, largest)
    transformer, autoencoder = pipeline.transformer, pipeline.autoencoder
    autoencoder.requires_grad_(False)
    transformer.requires_grad_(False)
    for name, param in transformer.named_parameters():
        param.requires_grad_("lora_" not in name)
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    cache, perceptual = helpers.frozen_model_extras(autoencoder, config, device)

    # 4. Optimizer, and the state of an interrupted run
    params = helpers.trainable_parameters([("transformer", transformer)])
    optimizer, start, log = helpers.start_optimizer(params, config, accelerator)

    # 5. The loop
    for step in range(start, config.steps):
        phase_learning_rate, phase_step = config.learning_rate_at(step)
        learning_rate = helpers.set_learning_rate(
            optimizer, phase_step, phase_learning_rate, config.warmup_steps
        )
        dataset = datasets[config.crop_at(step)]
        samples = helpers.batch(dataset, step, config.batch_size, rank, world)
        generators = helpers.sample_generators(config.seed, step, config.batch_size, rank, world)
        latents = helpers.encode_buffers(autoencoder, samples, cache, dataset, device)
        beauty_model = samples["buffers"][:, BUFFERS.index("beauty")].to(device)  # [B, 3, F, H, W]
        with accelerator.autocast():
            losses = stage1_losses(pipeline, latents, beauty_model, generators, config, perceptual)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(losses["loss"])
        grad_norm = helpers.apply_gradients(accelerator, params, optimizer, config.grad_clip)

        values = helpers.process_mean(accelerator, losses) | {"lr": learning_rate, "grad_norm": grad_norm}
        helpers.finish_step(step + 1, config, values, progress, log, accelerator, pipeline, params, optimizer)
    log.close()
    return Path(config.out)


def trained_window(config: PipelineConfig, trained_size: int) -> PipelineConfig:
    """`config` with its transformer window at least `trained_size`: frames up to the size a model was
    trained at go through it whole, as in training."""
    return dataclasses.replace(config, transformer_window=max(config.transformer_window, trained_size))


def stage1_losses(
    pipeline: RenderFlowPipeline,
    latents: dict[str, torch.Tensor],
    beauty_model: torch.Tensor,
    generators: Sequence[torch.Generator],
    config: Stage1Config,
    perceptual: PerceptualFn | None,
) -> dict[str, torch.Tensor]:
    """Eq. 8 for one batch: {loss, latent, gradient, lpips}; `generators`: one random stream per sample
    (bridge time, noise, conditioning coin)."""
    z0, z1 = latents[pipeline.bridge.source], latents["beauty"]  # [B, C, F, h, w]
    device = z0.device
    t = torch.cat([sample_train_times(1, pipeline.bridge, g) for g in generators]).to(device)
    noise = torch.stack([torch.randn(z0.shape[1:], generator=g) for g in generators]).to(device)
    z_t = interpolant(z0, z1, t, pipeline.bridge.sigma, noise)
    target = velocity_target(z1, z_t, t)

    # first-frame conditioning (paper §4.4): the reference latent and its mask, for some samples
    coins = torch.cat([torch.rand(1, generator=g) for g in generators])
    conditioned = (coins < config.reference_probability).to(device)
    reference = torch.zeros_like(z1)
    mask = torch.zeros_like(z1[:, :1])
    reference[:, :, :1] = torch.where(conditioned.view(-1, 1, 1, 1, 1), z1[:, :, :1], 0.0)
    mask[:, :, :1] = conditioned.view(-1, 1, 1, 1, 1).float()
    albedo = latents["albedo"] if pipeline.transformer.config.get("albedo_attribute", False) else None
    attributes = attribute_latent(
        latents["normal"], latents["depth"], latents["material"], reference, mask, albedo
    )

    velocity = forward_velocity(pipeline.transformer, z_t, t, attributes, latents["env"])
    z1_predicted = z_t + velocity * (1 - t).view(-1, 1, 1, 1, 1)  # eq. 6
    decoded = pipeline.autoencoder.decode(z1_predicted)  # [B, 3, F, H, W]
    return total_loss(velocity, target, decoded, beauty_model, perceptual, config.lambda_pixel)


def total_loss(
    velocity: torch.Tensor,
    target: torch.Tensor,
    decoded: torch.Tensor,
    beauty_model: torch.Tensor,
    perceptual: PerceptualFn | None,
    lambda_pixel: float,
) -> dict[str, torch.Tensor]:
    """Eq. 8: bridge loss + λ·(LPIPS + gradient loss) of the decoded ẑ1 `[B, 3, F, H, W]`."""
    loss_latent = bridge_loss(velocity, target)
    loss_gradient = gradient_loss(decoded, beauty_model)
    loss_lpips = (
        perceptual_distance(perceptual, decoded, beauty_model)
        if perceptual is not None
        else torch.zeros((), device=decoded.device)
    )
    total = loss_latent + lambda_pixel * (loss_lpips + loss_gradient)
    return {"loss": total, "latent": loss_latent, "gradient": loss_gradient, "lpips": loss_lpips}


def perceptual_distance(
    perceptual: PerceptualFn, video_a: torch.Tensor, video_b: torch.Tensor
) -> torch.Tensor:
    """Mean LPIPS over the frames of two videos `[B, 3, F, H, W]`."""
    # [B, 3, F, H, W] -> [B*F, 3, H, W]
    frames_a = video_a.permute(0, 2, 1, 3, 4).flatten(0, 1)
    frames_b = video_b.permute(0, 2, 1, 3, 4).flatten(0, 1)
    return perceptual(frames_a.float(), frames_b.float()).mean()
