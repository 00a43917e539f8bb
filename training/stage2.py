"""`rf-train stage2`: the keyframe adapter on the frozen base model (paper §4.2, appendix A).

Only the adapter's cross-attentions, its keyframe patch embedding and its feed-forward LoRA
train; every base weight stays bit-identical, so the model without keyframes is the stage-1
model. Each sample sees its clip's keyframes every `keyframe_gap` frames (from a random phase),
placed in time relative to the window, and in space, by the adapter's 3D RoPE. Samples carry
different keyframe counts and times, so a step runs its samples one by one and accumulates their
gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from renderflow.core.model.autoencoder import Autoencoder
from renderflow.core.model.bridge import interpolant, sample_train_times, velocity_target
from renderflow.core.model.keyframe import KEYFRAME_LORA, KeyframeAdapter
from renderflow.core.model.lora import reset_lora, selected_lora
from renderflow.core.model.pipeline import ADAPTER_LORAS, RenderFlowPipeline
from renderflow.core.model.transformer import attribute_latent
from renderflow.core.model.velocity import forward_velocity
from renderflow.training import loop_helpers as helpers
from renderflow.training.datasets import BUFFERS, ClipWindowDataset, WindowSpec
from renderflow.training.lpips import PerceptualFn
from renderflow.training.stage1 import total_loss


@dataclass
class Stage2Config(helpers.AdapterStageConfig):
    # I/O
    data: str = ""
    init: str = ""  # the stage-1 checkpoint (with a keyframe adapter; rf-train autoencoder makes one)
    fresh_adapter: bool = False  # start the keyframe adapter and its LoRA from scratch, not from init's
    reprojected_source: bool | None = None  # set the adapter's `reprojected_source`; None: init's
    out: str = ""
    # data
    keyframe_gap: int = 16  # paper: sparse keyframes
    # loss
    lambda_pixel: float = 1.0
    reference_probability: float = 0.5
    # the rest (split, profile, window, crop, batch size, optimisation, system): AdapterStageConfig


def train_stage2(config: Stage2Config, progress: helpers.ProgressFn | None = None) -> Path:
    """Train the keyframe adapter; return the checkpoint folder. Resumes from `out/train_state/`."""
    # 1. Seed and device
    accelerator, device, rank, world = helpers.start_stage(config.device, config.seed)

    # 2. Model: everything frozen but the keyframe adapter and its LoRA
    pipeline = helpers.load_for_training(config.init, device)
    adapter = pipeline.keyframe_adapter
    if adapter is None:
        raise ValueError(f"{config.init}: the checkpoint has no keyframe adapter to train")

    # 3. Data, as this model sees it (with keyframes reprojected for an adapter that takes them)
    reproject = bool(adapter.config["reprojection"])
    spec = WindowSpec(config.window, config.crop, config.keyframe_gap, reproject=reproject)
    clips = helpers.stage_clips(config, pipeline)
    dataset = ClipWindowDataset(clips, spec, config.seed)
    transformer, autoencoder = pipeline.transformer, pipeline.autoencoder
    if config.fresh_adapter:
        adapter.load_state_dict(KeyframeAdapter.from_config(adapter.config).state_dict())
        reset_lora(transformer, KEYFRAME_LORA)
    if config.reprojected_source is not None:  # a setting, no weights: the checkpoint keeps it
        if config.reprojected_source and not adapter.config["reprojection"]:
            raise ValueError(f"{config.init}: --reprojected-source needs an adapter made with reprojection")
        adapter.register_to_config(reprojected_source=config.reprojected_source)
    params = helpers.train_only_adapter(pipeline, adapter, KEYFRAME_LORA, config.gradient_checkpointing)
    cache, perceptual = helpers.frozen_model_extras(autoencoder, config, device)

    # 4. Optimizer, and the state of an interrupted run
    optimizer, start, log = helpers.start_optimizer(params, config, accelerator)

    # 5. The loop: one sample at a time, gradients accumulated over the batch
    for step in range(start, config.steps):
        learning_rate = helpers.set_learning_rate(optimizer, step, config.learning_rate, config.warmup_steps)
        samples = helpers.batch(dataset, step, config.batch_size, rank, world)
        generator = helpers.step_generator(config.seed, step, rank)
        latents = helpers.encode_buffers(autoencoder, samples, cache, dataset, device)
        optimizer.zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "latent": 0.0, "gradient": 0.0, "lpips": 0.0}
        for index in range(config.batch_size):
            sample_latents = {name: latent[index : index + 1] for name, latent in latents.items()}
            if "reprojected" in samples and adapter.config["reprojected_source"]:
                sample_latents["source"] = source_from_keyframes(
                    autoencoder, samples, index, dataset.clips[0].names.index(pipeline.bridge.source), device
                )
            with accelerator.autocast():
                losses = stage2_losses(
                    pipeline, sample_latents, _sample(samples, index), generator, config, perceptual, device
                )
            accelerator.backward(losses["loss"] / config.batch_size)
            for key in totals:
                totals[key] += losses[key].item() / config.batch_size
        grad_norm = helpers.apply_gradients(accelerator, params, optimizer, config.grad_clip)

        values = totals | {"lr": learning_rate, "grad_norm": grad_norm}
        helpers.finish_step(step + 1, config, values, progress, log, accelerator, pipeline, params, optimizer)
    log.close()
    return Path(config.out)


def source_from_keyframes(
    autoencoder: Autoencoder, samples: dict[str, Any], index: int, shaded_index: int, device: torch.device
) -> torch.Tensor:
    """The latent `[1, C, F, h, w]` of the bridge source with keyframes (`reprojected_source`): the
    reprojected keyframes where valid, the shaded source elsewhere, as render() makes it."""
    reprojected = samples["reprojected"][index]  # [4, F, H, W]: model-space image, validity
    shaded = samples["buffers"][index, shaded_index]  # [3, F, H, W]
    pixels = torch.where(reprojected[3:] > 0, reprojected[:3], shaded)
    with torch.no_grad():
        return autoencoder.encode(pixels[None].contiguous().to(device))


def _sample(samples: dict[str, Any], index: int) -> dict[str, Any]:
    return {key: value[index] for key, value in samples.items()}


def stage2_losses(
    pipeline: RenderFlowPipeline,
    latents: dict[str, torch.Tensor],
    sample: dict[str, Any],
    generator: torch.Generator,
    config: Stage2Config,
    perceptual: PerceptualFn | None,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Eq. 8 for one sample with its keyframes: {loss, latent, gradient, lpips}."""
    adapter = pipeline.keyframe_adapter
    assert adapter is not None
    autoencoder = pipeline.autoencoder
    z0 = latents.get("source", latents[pipeline.bridge.source])  # [1, C, F, h, w]
    z1 = latents["beauty"]
    t = sample_train_times(1, pipeline.bridge, generator).to(device)
    noise = torch.randn(z0.shape, generator=generator).to(device)
    z_t = interpolant(z0, z1, t, pipeline.bridge.sigma, noise)
    target = velocity_target(z1, z_t, t)
    conditioned = bool(torch.rand(1, generator=generator).item() < config.reference_probability)
    reference = torch.zeros_like(z1)
    mask = torch.zeros_like(z1[:, :1])
    if conditioned:
        reference[:, :, :1] = z1[:, :, :1]
        mask[:, :, :1] = 1.0
    albedo = latents["albedo"] if pipeline.transformer.config.get("albedo_attribute", False) else None
    attributes = attribute_latent(
        latents["normal"], latents["depth"], latents["material"], reference, mask, albedo
    )

    # keyframes [K, 3, H, W] -> one-frame clips [K, 3, 1, H, W] -> latents [K, C, 1, h, w] -> [1, C, K, h, w]
    with torch.no_grad():
        keyframe_latents = autoencoder.encode(sample["keyframes"][:, :, None].to(device)).permute(
            2, 1, 0, 3, 4
        )
    keyframes = adapter.embed(keyframe_latents, sample["keyframe_frames"].to(device))
    reprojected = None
    if "reprojected" in sample:  # [4, F, H, W]: image -> latent [1, C, F, h, w], validity pooled onto it
        pixels = sample["reprojected"].to(device)
        with torch.no_grad():
            image_latent = autoencoder.encode(pixels[None, :3].contiguous())
        validity = F.adaptive_avg_pool3d(pixels[None, 3:], tuple(image_latent.shape[2:]))
        reprojected = torch.cat([image_latent, validity], dim=1)
    with selected_lora(pipeline.transformer, KEYFRAME_LORA, ADAPTER_LORAS):
        velocity = forward_velocity(
            pipeline.transformer,
            z_t,
            t,
            attributes,
            latents["env"],
            adapter,
            keyframes,
            first_frame=0.0,  # keyframe times are relative to the window's first frame
            frame_step=float(autoencoder.temporal_factor),
            reprojected=reprojected,
        )
    z1_predicted = z_t + velocity * (1 - t).view(-1, 1, 1, 1, 1)
    decoded = autoencoder.decode(z1_predicted)
    beauty_model = sample["buffers"][BUFFERS.index("beauty")][None].to(device)  # [1, 3, F, H, W]
    return total_loss(velocity, target, decoded, beauty_model, perceptual, config.lambda_pixel)
