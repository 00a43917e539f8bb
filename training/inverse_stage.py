"""`rf-train inverse`: the inverse adapter on the frozen forward model (paper §4.5, appendix A.2).

The bridge runs from the image latent (t = 0) to one intrinsic's latent (t = 1); each batch
draws one intrinsic at random. Loss = bridge loss + λ·the intrinsic's reconstruction loss on
the decoded prediction: L1 (+ LPIPS) for albedo, cosine for normals, scale-and-shift-invariant
log depth, L1 for roughness and metallic on the geometry only (eqs. 9-12; the background has no
material). Only the inverse embedder, its LoRA, the prompt cross-attentions and the heads train;
the forward model stays bit-identical.

`intrinsics` fine-tunes some intrinsics of a trained adapter and leaves the others bit-identical:
batches draw only those, and only their prompt embeddings and heads train (the embedder, the LoRA
and the prompt cross-attentions, which every intrinsic shares, stay frozen). Fine-tuning the whole
adapter towards one generator's scenes trades one intrinsic for another (docs/DECISIONS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from renderflow.core.model.bridge import interpolant, sample_train_times, velocity_target
from renderflow.core.model.inverse import INTRINSICS, INVERSE_LORA, InverseAdapter
from renderflow.core.model.lora import selected_lora
from renderflow.core.model.pipeline import ADAPTER_LORAS, RenderFlowPipeline
from renderflow.core.model.velocity import inverse_velocity
from renderflow.training import loop_helpers as helpers
from renderflow.training.datasets import BUFFERS, ClipWindowDataset, WindowSpec
from renderflow.training.losses import bridge_loss, cosine_loss, l1_loss, ssi_log_depth_loss
from renderflow.training.lpips import PerceptualFn
from renderflow.training.stage1 import perceptual_distance

MATERIAL_CHANNEL = {"roughness": 0, "metallic": 1}  # channels of the material buffer
MIN_DISPARITY = 1e-3  # normalised disparity floor before the log: background is 0


@dataclass
class InverseConfig(helpers.AdapterStageConfig):
    # I/O
    data: str = ""
    init: str = ""  # the forward checkpoint (with an inverse adapter)
    out: str = ""
    # loss
    lambda_reconstruction: float = 1.0
    # the intrinsics to fine-tune, the others frozen (module docstring); None: the whole adapter
    intrinsics: tuple[str, ...] | None = None
    # the rest (split, profile, window, crop, batch size, optimisation, system): AdapterStageConfig


def train_inverse(config: InverseConfig, progress: helpers.ProgressFn | None = None) -> Path:
    """Train the inverse adapter; return the checkpoint folder. Resumes from `out/train_state/`."""
    # 1. Seed and device
    accelerator, device, rank, world = helpers.start_stage(config.device, config.seed)

    # 2. Model: the forward model frozen, the inverse adapter and its LoRA trainable
    pipeline = helpers.load_for_training(config.init, device)
    adapter = pipeline.inverse_adapter
    if adapter is None:
        raise ValueError(f"{config.init}: the checkpoint has no inverse adapter to train")
    drawn = INTRINSICS if config.intrinsics is None else tuple(config.intrinsics)
    for name in drawn:
        adapter.intrinsic_index(name)  # an intrinsic the adapter lacks: a clear error before the data loads

    # 3. Data, as this model sees it
    dataset = ClipWindowDataset(
        helpers.stage_clips(config, pipeline),
        WindowSpec(config.window, config.crop),
        config.seed,
    )
    autoencoder = pipeline.autoencoder
    params = helpers.train_only_adapter(pipeline, adapter, INVERSE_LORA, config.gradient_checkpointing)
    if config.intrinsics is not None:
        params = _train_only_intrinsics(pipeline, adapter, drawn)
    frozen_prompts = adapter.prompt_embeddings.detach().clone()
    frozen_rows = torch.tensor(
        [name not in drawn for name in adapter.config["intrinsics"]], device=frozen_prompts.device
    )
    cache, perceptual = helpers.frozen_model_extras(autoencoder, config, device)

    # 4. Optimizer, and the state of an interrupted run
    optimizer, start, log = helpers.start_optimizer(params, config, accelerator)

    # 5. The loop
    for step in range(start, config.steps):
        learning_rate = helpers.set_learning_rate(optimizer, step, config.learning_rate, config.warmup_steps)
        samples = helpers.batch(dataset, step, config.batch_size, rank, world)
        generator = helpers.step_generator(config.seed, step, rank)
        intrinsic = drawn[int(torch.randint(len(drawn), (1,), generator=generator))]
        latents = helpers.encode_buffers(autoencoder, samples, cache, dataset, device)
        buffers = samples["buffers"].to(device)  # [B, N, 3, F, H, W]
        mask = samples["mask"].to(device)  # [B, 1, F, H, W]
        with accelerator.autocast():
            losses = inverse_losses(
                pipeline, intrinsic, latents, buffers, mask, generator, config, perceptual
            )
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(losses["loss"])
        grad_norm = helpers.apply_gradients(accelerator, params, optimizer, config.grad_clip)
        with torch.no_grad():  # AdamW's weight decay would shrink the other intrinsics' prompts
            adapter.prompt_embeddings[frozen_rows] = frozen_prompts[frozen_rows]

        # one column per intrinsic, so that the CSV keeps its header: NaN where not drawn
        values = {"loss": losses["loss"].item(), "latent": losses["latent"].item()}
        values |= {
            name: losses["reconstruction"].item() if name == intrinsic else float("nan")
            for name in INTRINSICS
        }
        values |= {"lr": learning_rate, "grad_norm": grad_norm}
        helpers.finish_step(step + 1, config, values, progress, log, accelerator, pipeline, params, optimizer)
    log.close()
    return Path(config.out)


def _train_only_intrinsics(
    pipeline: RenderFlowPipeline, adapter: InverseAdapter, intrinsics: tuple[str, ...]
) -> dict[str, torch.nn.Parameter]:
    """Freeze the adapter but the prompt embeddings and the heads of `intrinsics`; their parameters."""
    for param in pipeline.transformer.parameters():
        param.requires_grad_(False)
    adapter.requires_grad_(False)
    adapter.prompt_embeddings.requires_grad_(True)
    for name in intrinsics:
        adapter.heads[name].requires_grad_(True)
    return helpers.trainable_parameters([("adapter", adapter), ("transformer", pipeline.transformer)])


def intrinsic_target(intrinsic: str, buffers: torch.Tensor) -> torch.Tensor:
    """The model-space image `[B, 3, F, H, W]` of `intrinsic` from the buffers `[B, N, 3, F, H, W]`."""
    if intrinsic in MATERIAL_CHANNEL:
        channel = buffers[:, BUFFERS.index("material"), MATERIAL_CHANNEL[intrinsic]]  # [B, F, H, W]
        return channel[:, None].expand(-1, 3, -1, -1, -1)
    return buffers[:, BUFFERS.index(intrinsic)]


def log_depth_from_model(depth_model: torch.Tensor) -> torch.Tensor:
    """Model-space depth (normalised disparity ×2−1, 3 channels) -> log depth `[B, 1, F, H, W]`."""
    disparity = ((depth_model.mean(dim=1, keepdim=True) + 1.0) * 0.5).clamp_min(MIN_DISPARITY)
    return -torch.log(disparity)


def reconstruction_loss(
    intrinsic: str,
    decoded: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    perceptual: PerceptualFn | None,
) -> torch.Tensor:
    """The intrinsic's loss (eqs. 9-12) on model-space videos `[B, 3, F, H, W]`."""
    if intrinsic == "albedo":
        loss = l1_loss(decoded, target)
        if perceptual is not None:
            loss = loss + perceptual_distance(perceptual, decoded, target)
        return loss
    if intrinsic == "normal":
        return cosine_loss(decoded, target, mask)
    if intrinsic == "depth":
        return ssi_log_depth_loss(log_depth_from_model(decoded), log_depth_from_model(target), mask)
    return l1_loss(decoded.mean(dim=1, keepdim=True), target[:, :1], mask)


def inverse_losses(
    pipeline: RenderFlowPipeline,
    intrinsic: str,
    latents: dict[str, torch.Tensor],
    buffers: torch.Tensor,
    mask: torch.Tensor,
    generator: torch.Generator,
    config: InverseConfig,
    perceptual: PerceptualFn | None,
) -> dict[str, torch.Tensor]:
    """Bridge + reconstruction loss for one batch and one intrinsic: {loss, latent, reconstruction}."""
    adapter = pipeline.inverse_adapter
    assert adapter is not None
    target_pixels = intrinsic_target(intrinsic, buffers)
    if intrinsic in MATERIAL_CHANNEL:
        with torch.no_grad():
            z1 = pipeline.autoencoder.encode(target_pixels.contiguous())
    else:
        z1 = latents[intrinsic]
    # the image as decompose() sees it: exposure-normalised by itself when the model normalises lighting
    z0 = latents["plate"] if pipeline.lighting.normalise else latents["beauty"]
    t = sample_train_times(z0.shape[0], pipeline.bridge, generator).to(z0.device)
    noise = torch.randn(z0.shape, generator=generator).to(z0.device)
    z_t = interpolant(z0, z1, t, pipeline.bridge.sigma, noise)
    with selected_lora(pipeline.transformer, INVERSE_LORA, ADAPTER_LORAS):
        velocity = inverse_velocity(pipeline.transformer, adapter, z_t, t, intrinsic)
    z1_predicted = z_t + velocity * (1 - t).view(-1, 1, 1, 1, 1)
    decoded = pipeline.autoencoder.decode(z1_predicted)
    loss_latent = bridge_loss(velocity, velocity_target(z1, z_t, t))
    loss_reconstruction = reconstruction_loss(intrinsic, decoded, target_pixels, mask, perceptual)
    total = loss_latent + config.lambda_reconstruction * loss_reconstruction
    return {"loss": total, "latent": loss_latent, "reconstruction": loss_reconstruction}
