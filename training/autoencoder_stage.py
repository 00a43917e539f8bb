"""`rf-train autoencoder`: the tiny per-frame autoencoder of the CPU models, before stage 1.

Wan's VAE comes pre-trained; the tiny autoencoder does not, and every later stage keeps it
frozen, so it is trained first, on every buffer the model encodes (albedo, normals, depth,
materials, env map, beauty), to reconstruct frames in model space: L1 + gradient loss. The
result is a complete checkpoint: the trained autoencoder with a freshly initialised transformer
and adapters of the named model configuration, ready for `rf-train stage1 --init`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from renderflow.core.model.configs import MODEL_CONFIGS, build_model
from renderflow.training import loop_helpers as helpers
from renderflow.training.datasets import ClipWindowDataset, WindowSpec
from renderflow.training.losses import gradient_loss, l1_loss

logger = logging.getLogger(__name__)


@dataclass
class AutoencoderConfig:
    # I/O
    data: str = ""
    out: str = ""
    split: str = "train"
    profile: str = "auto"
    # model: a named configuration of renderflow.core.model.configs (tiny autoencoder)
    model: str = "cpu-default"
    lora_rank: int = 8
    # data: single frames, all six buffers of each
    crop: int | None = 32
    batch_size: int = 16
    # optimisation
    steps: int = 3000
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # system
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 500
    log_every: int = 10


def train_autoencoder(config: AutoencoderConfig, progress: helpers.ProgressFn | None = None) -> Path:
    """Train the tiny autoencoder; return the checkpoint folder. Resumes from `out/train_state/`."""
    # 1. Seed and device
    accelerator = helpers.make_accelerator(config.device)
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    if config.model not in MODEL_CONFIGS:
        raise ValueError(f"unknown model configuration {config.model!r}; known: {sorted(MODEL_CONFIGS)}")
    torch.manual_seed(config.seed)

    # 2. Model: a fresh pipeline of the named configuration; only its autoencoder trains here
    pipeline = build_model(MODEL_CONFIGS[config.model], lora_rank=config.lora_rank).to(device)

    # 3. Data: single frames (window 1) at random crops, every buffer that model encodes
    clips = helpers.stage_clips(config, pipeline)
    dataset = ClipWindowDataset(clips, WindowSpec(1, config.crop), config.seed)
    autoencoder = pipeline.autoencoder.train()
    params = helpers.trainable_parameters([("autoencoder", autoencoder)])

    # 4. Optimizer, and the state of an interrupted run
    optimizer, start, log = helpers.start_optimizer(params, config, accelerator)

    # 5. The loop
    for step in range(start, config.steps):
        learning_rate = helpers.set_learning_rate(optimizer, step, config.learning_rate, config.warmup_steps)
        samples = helpers.batch(dataset, step, config.batch_size, rank, world)
        video = samples["buffers"].flatten(0, 1).to(device)  # [B, N, 3, 1, H, W] -> [B*N, 3, 1, H, W]
        with accelerator.autocast():
            reconstruction = autoencoder.decode(autoencoder.encode(video))
        loss_l1 = l1_loss(reconstruction, video)
        loss_gradient = gradient_loss(reconstruction, video)
        loss = loss_l1 + loss_gradient
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        grad_norm = helpers.apply_gradients(accelerator, params, optimizer, config.grad_clip)

        values = {
            "loss": loss.item(),
            "l1": loss_l1.item(),
            "gradient": loss_gradient.item(),
            "lr": learning_rate,
            "grad_norm": grad_norm,
        }
        helpers.finish_step(step + 1, config, values, progress, log, accelerator, pipeline, params, optimizer)
    log.close()
    return Path(config.out)
