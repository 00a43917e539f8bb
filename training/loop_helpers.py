"""Plain helpers beside the stages' loops: batches, latents, learning rate, logs, resumable state.

Training state is safetensors + JSON (never pickle): the trainable tensors, the AdamW moments
under `optimizer.<param>.<name>`, and `state.json` with the step, the stage's config and the
optimizer's hyper-parameters. Resuming from it continues bit-for-bit: samples, bridge times and
noise are pure functions of (seed, step).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from renderflow.core.model.autoencoder import Autoencoder
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.training.datasets import (
    ClipArrays,
    ClipWindowDataset,
    LatentCache,
    ModelInputs,
    env_buffer_names,
    load_dataset,
)
from renderflow.training.lpips import PerceptualFn, load_lpips

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, dict[str, float]], None]  # (step, total, logged values)

STATE_DIR = "train_state"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


@dataclass
class TransformerStageConfig:
    """The system settings of the stages that train on the transformer (stage 1, stage 2, inverse);
    each stage's config adds its own groups (I/O, data, optimisation) and stays flat."""

    seed: int = 0
    device: str = "cuda"
    gradient_checkpointing: bool = True
    checkpoint_every: int = 1000
    log_every: int = 10


@dataclass
class AdapterStageConfig(TransformerStageConfig):
    """What the adapter stages (keyframes, inverse) share beside the system settings: the data's
    sub-folder and windows, and the optimisation of paper appendix A (AdamW, LR 1e-4, batch 32,
    20k steps)."""

    split: str = "train"
    profile: str = "auto"  # AOV profile of the clips' EXRs
    window: int = 5
    crop: int | None = None  # square crop in pixels; None = the whole frame
    batch_size: int = 32
    cache_latents: bool = False
    steps: int = 20000
    learning_rate: float = 1e-4
    warmup_steps: int = 0
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lpips_weights: str | None = None


def train_only_adapter(
    pipeline: RenderFlowPipeline, adapter: nn.Module, lora_name: str, gradient_checkpointing: bool
) -> dict[str, nn.Parameter]:
    """Freeze the model but `adapter` and its LoRA `lora_name` in the transformer; their parameters."""
    transformer = pipeline.transformer
    for module in (transformer, pipeline.autoencoder, pipeline.keyframe_adapter, pipeline.inverse_adapter):
        if module is not None:
            module.requires_grad_(False)
    adapter.requires_grad_(True).train()
    for name, param in transformer.named_parameters():
        param.requires_grad_(f".{lora_name}." in name)
    if gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    return trainable_parameters([("adapter", adapter), ("transformer", transformer)])


def stage_clips(
    config: Any, pipeline: RenderFlowPipeline, augmentations: tuple[str, ...] = ()
) -> list[ClipArrays]:
    """The clips of a stage whose config has data, split and profile, as `pipeline` sees them; clips
    not cached yet are shaded by one process per CPU this process may run on."""
    return load_dataset(
        Path(config.data),
        config.split,
        config.profile,
        ModelInputs.of(pipeline),
        augmentations,
        workers=len(os.sched_getaffinity(0)),
    )


def start_stage(device: str, seed: int) -> tuple[Accelerator, torch.device, int, int]:
    """A stage's accelerator, device, process rank and count; torch seeded."""
    accelerator = make_accelerator(device)
    torch.manual_seed(seed)
    return accelerator, accelerator.device, accelerator.process_index, accelerator.num_processes


def load_for_training(init: str, device: torch.device) -> RenderFlowPipeline:
    """The checkpoint a stage starts from, in fp32 master weights (bf16 comes from autocast on CUDA)."""
    return RenderFlowPipeline.from_pretrained(Path(init)).to(device, torch.float32)


def make_accelerator(device: str, gradient_accumulation_steps: int = 1) -> Accelerator:
    """accelerate for multi-GPU/multi-node (`accelerate launch rf-train ...`); bf16 autocast on CUDA."""
    on_cpu = device == "cpu" or not torch.cuda.is_available()
    return Accelerator(
        cpu=on_cpu,
        mixed_precision="no" if on_cpu else "bf16",
        gradient_accumulation_steps=gradient_accumulation_steps,
    )


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The random stream of one step on one process: bridge times, noise, coin flips."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + rank)


def sample_generators(
    seed: int, step: int, batch_size: int, rank: int = 0, world: int = 1
) -> list[torch.Generator]:
    """One random stream per sample of `batch(...)`, seeded by the sample's global index: a batch
    split over processes draws exactly what one process drawing the whole batch would."""
    first = (step * world + rank) * batch_size
    return [
        torch.Generator().manual_seed(seed * 1_000_003 + index) for index in range(first, first + batch_size)
    ]


def process_mean(accelerator: Accelerator, values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalar losses averaged over processes (every process holds an equal share of the batch)."""
    if accelerator.num_processes == 1:
        return {key: value.item() for key, value in values.items()}
    return {key: accelerator.reduce(value.detach(), reduction="mean").item() for key, value in values.items()}


def batch(
    dataset: ClipWindowDataset, step: int, batch_size: int, rank: int = 0, world: int = 1
) -> dict[str, Any]:
    """The samples of `step` for process `rank`: indices never overlap between steps or processes."""
    first = (step * world + rank) * batch_size
    items = [dataset[index] for index in range(first, first + batch_size)]
    stacked: dict[str, Any] = {}
    for key in items[0]:
        if key in ("keyframes", "keyframe_frames"):  # K differs between samples
            stacked[key] = [item[key] for item in items]
        else:
            stacked[key] = torch.stack([item[key] for item in items])
    return stacked


def encode_buffers(
    autoencoder: Autoencoder,
    samples: dict[str, Any],
    cache: LatentCache | None,
    dataset: ClipWindowDataset,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """{buffer: latent `[B, C, F, h, w]`} for every buffer of the clips' stack, from the cache when there
    is one; `env` holds every env bracket, stacked on channels, as the transformer takes them."""
    buffers = samples["buffers"]  # [B, N, 3, F, H, W]
    batch_size, num_buffers, _, num_frames, height, width = buffers.shape
    if cache is not None:
        latents = torch.stack(
            [
                cache.window_latents(
                    dataset.clips[int(samples["clip"][i])],
                    int(samples["start"][i]),
                    num_frames,
                    (int(samples["origin"][i][0]), int(samples["origin"][i][1])),
                    (height, width),
                )
                for i in range(batch_size)
            ]
        ).to(device)  # [B, N, C, F, h, w]
    else:
        with torch.no_grad():
            # [B, N, 3, F, H, W] -> [B*N, 3, F, H, W]: every buffer of the batch in one call
            flat = autoencoder.encode(buffers.flatten(0, 1).to(device))
        latents = flat.unflatten(0, (batch_size, num_buffers))
    names = dataset.clips[0].names
    by_name = {name: latents[:, index] for index, name in enumerate(names)}
    by_name["env"] = torch.cat([by_name[name] for name in env_buffer_names(names)], dim=1)
    return by_name


def set_learning_rate(
    optimizer: torch.optim.Optimizer, step: int, learning_rate: float, warmup_steps: int
) -> float:
    """Linear warm-up to `learning_rate`, then constant (paper appendix A)."""
    value = learning_rate * min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else learning_rate
    for group in optimizer.param_groups:
        group["lr"] = value
    return value


def trainable_parameters(modules: Iterable[tuple[str, nn.Module]]) -> dict[str, nn.Parameter]:
    """{qualified name: parameter} of every parameter that requires a gradient."""
    return {
        f"{prefix}.{name}": param
        for prefix, module in modules
        for name, param in module.named_parameters()
        if param.requires_grad
    }


def save_state(
    out: Path,
    step: int,
    params: dict[str, nn.Parameter],
    optimizer: torch.optim.Optimizer,
    config: Any,
) -> None:
    """Write the resumable training state into `out/train_state/` (temp names, then renames)."""
    folder = Path(out) / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    names = list(params)  # the optimizer's one parameter group, in this order
    tensors = {f"param.{name}": param.detach().cpu().contiguous() for name, param in params.items()}
    optimizer_state = optimizer.state_dict()
    groups = optimizer_state["param_groups"]
    for param_index, moments in optimizer_state["state"].items():
        for key, value in moments.items():
            tensors[f"optimizer.{names[param_index]}.{key}"] = (
                torch.as_tensor(value).detach().cpu().contiguous()
            )
    record = {
        "step": step,
        "config": asdict(config),
        "param_groups": [{k: v for k, v in group.items() if k != "params"} for group in groups],
        "params": names,
    }
    tmp_tensors = folder / f".{STATE_TENSORS}.tmp-{os.getpid()}"
    save_file(tensors, str(tmp_tensors))
    tmp_tensors.replace(folder / STATE_TENSORS)
    tmp_json = folder / f".{STATE_JSON}.tmp-{os.getpid()}"
    tmp_json.write_text(json.dumps(record, indent=1))
    tmp_json.replace(folder / STATE_JSON)


def load_state(out: Path, params: dict[str, nn.Parameter], optimizer: torch.optim.Optimizer) -> int:
    """Restore parameters and optimizer from `out/train_state/`; return the step to continue at (0: none)."""
    folder = Path(out) / STATE_DIR
    if not (folder / STATE_JSON).exists():
        return 0
    record = json.loads((folder / STATE_JSON).read_text())
    if record["params"] != list(params):
        raise ValueError(
            f"{folder}: the saved state trains other parameters than this run "
            f"({len(record['params'])} saved, {len(params)} now); use a new --out"
        )
    tensors = load_file(str(folder / STATE_TENSORS))
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[f"param.{name}"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for index, name in enumerate(record["params"]):
        prefix = f"optimizer.{name}."
        moments = {
            key.removeprefix(prefix): value for key, value in tensors.items() if key.startswith(prefix)
        }
        if moments:
            state[index] = moments
    param_groups = [dict(group, params=list(range(len(params)))) for group in record["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    logger.info("resumed from %s at step %d", folder, record["step"])
    return int(record["step"])


class TrainingLog:
    """One CSV row and TensorBoard scalars per logged step, in `out/logs/`."""

    def __init__(self, out: Path, start_step: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self.folder = Path(out) / "logs"
        self._writer: SummaryWriter | None = None
        self._started = time.perf_counter()
        if enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._forget_after(start_step)
            self._writer = SummaryWriter(str(self.folder), purge_step=start_step + 1 if start_step else None)

    def _forget_after(self, step: int) -> None:
        """Drop CSV rows past `step`: an interrupted run logged steps that its checkpoint does not hold."""
        path = self.folder / "metrics.csv"
        if not path.exists():
            return
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            return
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(row for row in rows if int(row["step"]) <= step)

    def write(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        path = self.folder / "metrics.csv"
        row = {"step": step, "seconds": round(time.perf_counter() - self._started, 3), **values}
        new_file = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        assert self._writer is not None
        for key, value in values.items():
            self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def save_checkpoint(
    pipeline: RenderFlowPipeline,
    params: dict[str, nn.Parameter],
    optimizer: torch.optim.Optimizer,
    step: int,
    config: Any,
    out: Path,
) -> None:
    """The usable checkpoint (save_pretrained) and the resumable state, side by side in `out`."""
    pipeline.save_pretrained(out)
    save_state(out, step, params, optimizer, config)
    logger.info("step %d: checkpoint written to %s", step, out)


def apply_gradients(
    accelerator: Accelerator,
    params: dict[str, nn.Parameter],
    optimizer: torch.optim.Optimizer,
    grad_clip: float,
) -> float:
    """Average gradients over processes, clip them, step; return the gradient norm before clipping.

    The explicit all-reduce (rather than a DDP wrapper) covers LoRA weights inside a frozen module
    and adapter modules beside it alike.
    """
    if accelerator.num_processes > 1:
        for param in params.values():
            if param.grad is not None:
                param.grad = accelerator.reduce(param.grad, reduction="mean")
    grad_norm = torch.nn.utils.clip_grad_norm_(list(params.values()), grad_clip)
    optimizer.step()
    return float(grad_norm)


def end_of_step(
    step: int,
    total: int,
    values: dict[str, float],
    progress: ProgressFn | None,
    log: TrainingLog,
    log_every: int,
) -> None:
    """Report a finished step (1-based) to the progress bar and, every `log_every` steps, the logs."""
    if progress is not None:
        progress(step, total, values)
    if step % log_every == 0:
        log.write(step, values)


def checkpoint_due(step: int, total: int, checkpoint_every: int) -> bool:
    return step % checkpoint_every == 0 or step == total


def finish_step(
    step: int,
    config: Any,
    values: dict[str, float],
    progress: ProgressFn | None,
    log: TrainingLog,
    accelerator: Accelerator,
    pipeline: RenderFlowPipeline,
    params: dict[str, nn.Parameter],
    optimizer: torch.optim.Optimizer,
) -> None:
    """A finished step (1-based) of a stage whose config has steps, log_every, checkpoint_every and
    out: reported, logged, and checkpointed when due (by the main process; the others wait). On a
    GPU the log gains the peak memory so far (`peak_memory_gib`)."""
    if accelerator.device.type == "cuda":
        values = values | {"peak_memory_gib": torch.cuda.max_memory_allocated(accelerator.device) / 2**30}
    end_of_step(step, config.steps, values, progress, log, config.log_every)
    if checkpoint_due(step, config.steps, config.checkpoint_every):
        if accelerator.is_main_process:
            save_checkpoint(pipeline, params, optimizer, step, config, Path(config.out))
        accelerator.wait_for_everyone()


def frozen_model_extras(
    autoencoder: Autoencoder, config: Any, device: torch.device
) -> tuple[LatentCache | None, PerceptualFn | None]:
    """The latent cache (when `config.cache_latents`) and LPIPS (when weights exist) of a stage."""
    cache = None
    if config.cache_latents:
        weights = autoencoder.state_dict()
        cache = LatentCache(autoencoder, weights, Path(config.out) / "latent_cache")
    perceptual = load_lpips(Path(config.lpips_weights) if config.lpips_weights else None, device)
    return cache, perceptual


def start_optimizer(
    params: dict[str, nn.Parameter], config: Any, accelerator: Accelerator
) -> tuple[torch.optim.Optimizer, int, TrainingLog]:
    """AdamW over `params`, the state of an interrupted run restored, and the logs from that step on."""
    optimizer = torch.optim.AdamW(params.values(), lr=config.learning_rate, weight_decay=config.weight_decay)
    start = load_state(Path(config.out), params, optimizer)
    return optimizer, start, TrainingLog(Path(config.out), start, enabled=accelerator.is_main_process)
