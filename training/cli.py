"""rf-train: make training data and train RenderFlow's stages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from renderflow.core.cli_options import data_option, folder_option, profile_option, stacked, verbose_option
from renderflow.training.augment import AUGMENTATIONS
from renderflow.training.scene_presets import PRESETS

# the Mitsuba variants `rf-train synth --variant` offers: the RGB ones the generator's scenes need
MITSUBA_VARIANTS = ("auto", "scalar_rgb", "llvm_ad_rgb", "cuda_ad_rgb")

F = Callable[..., Any]


@click.group(
    epilog="""A full CPU run (docs/RESULTS.md has the exact commands of the bundled model):

\b
  rf-train synth --clips 120 --frames 17 --res 64 --spp 128 --out data/synth
  rf-train autoencoder --data data/synth --out runs/ae
  rf-train stage1 --data data/synth --init runs/ae --out runs/stage1 --schedule 2000@32,2000@64
  rf-train stage2 --data data/synth --init runs/stage1 --out runs/stage2
  rf-train inverse --data data/synth --init runs/stage2 --out runs/model
""",
)
@verbose_option
def main(verbose: bool) -> None:
    """Make path-traced training data and train RenderFlow."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.option("--clips", type=click.IntRange(1), default=4, show_default=True, help="Clips (one scene each).")
@click.option("--frames", type=click.IntRange(1), default=5, show_default=True, help="Frames per clip.")
@click.option(
    "--res", type=click.IntRange(8, 4096), default=64, show_default=True, help="Frame width and height."
)
@click.option(
    "--spp", type=click.IntRange(1), default=64, show_default=True, help="Path-tracing samples per pixel."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Dataset seed: same seed, same data.")
@click.option("--fov", type=float, default=40.0, show_default=True, help="Vertical field of view in degrees.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Parallel processes.")
@click.option(
    "--animate-material", is_flag=True, help="Animate the first object's material (paper appendix C)."
)
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="classic",
    show_default=True,
    help="Scene generator: classic (the first one), diverse (training data of real-world range), "
    "ood (the out-of-distribution test split: never train on it), hard (rooms lit through a window "
    "or skylight, fences under low suns, mirrors among fine textures, night), closeup (diverse framed "
    "so that the objects fill the frame), golden (diverse under golden-hour skies, the sun 0.5-10° "
    "high). docs/DATA.md describes each.",
)
@click.option(
    "--variant",
    type=click.Choice(list(MITSUBA_VARIANTS)),
    default="auto",
    show_default=True,
    help="Mitsuba variant: auto (llvm_ad_rgb where a libLLVM >= 16 exists, else scalar_rgb), or "
    "cuda_ad_rgb on an NVIDIA GPU (OptiX from the driver; run a few --workers, they share the GPU).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Dataset folder (resumable).",
)
def synth(
    clips: int,
    frames: int,
    res: int,
    spp: int,
    seed: int,
    fov: float,
    workers: int,
    animate_material: bool,
    preset: str,
    variant: str,
    out: Path,
) -> None:
    """Render procedural scenes with Mitsuba 3: beauty + exact G-buffers per frame.

    Clips already complete in OUT are skipped, so an interrupted run resumes where it stopped.
    """
    from renderflow.training.synth import SynthConfig, synthesise

    config = SynthConfig(
        clips,
        frames,
        res,
        spp,
        seed,
        fov,
        animate_material=animate_material,
        preset=preset,
        variant=None if variant == "auto" else variant,
    )
    started = time.perf_counter()
    with tqdm(total=clips, desc="clips", unit="clip", disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            folders = synthesise(out, config, workers, progress)
        except (OSError, ValueError, RuntimeError) as error:
            raise click.ClickException(str(error)) from error
    seconds = time.perf_counter() - started
    click.echo(f"{len(folders)} clips in {out} ({seconds:.1f} s)")


@main.command()
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Dataset folder.",
)
@click.option("--split", default=None, help="Sub-folder of DATA (default: every clip).")
@click.option(
    "--clips", type=click.IntRange(1), default=6, show_default=True, help="Clips to show, one per row."
)
@click.option(
    "--frame", type=click.IntRange(0), default=0, show_default=True, help="Frame index within each clip."
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file.")
def sheet(data: Path, split: str | None, clips: int, frame: int, out: Path) -> None:
    """A contact sheet of a dataset: one row per clip, one column per buffer (docs/DATA.md)."""
    from renderflow.training.datasets import dataset_contact_sheet

    try:
        dataset_contact_sheet(data, split, clips, frame, out)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(str(out))


# -- options shared by the training stages (defined once, stacked on each command) -----------------
_data_options = stacked(
    data_option("Dataset folder: rf-train synth output, or clip folders of your own EXRs."),
    click.option("--split", default="train", show_default=True, help="Sub-folder of DATA to train on."),
    profile_option,
    click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help="Checkpoint folder; an interrupted run given the same OUT resumes.",
    ),
    click.option("--batch-size", type=click.IntRange(1), help="Samples per step."),
    click.option("--steps", type=click.IntRange(1), help="Optimizer steps in all."),
    click.option("--lr", "learning_rate", type=float, help="AdamW learning rate."),
    click.option("--warmup", "warmup_steps", type=click.IntRange(0), help="Linear warm-up steps."),
    click.option("--seed", type=int, help="Seed of samples, bridge times and noise."),
    click.option("--device", help="cpu, cuda, cuda:1 ... (bf16 autocast on CUDA)."),
    click.option("--checkpoint-every", type=click.IntRange(1), help="Steps between checkpoints."),
    click.option("--log-every", type=click.IntRange(1), help="Steps between CSV/TensorBoard rows."),
)


_model_options = stacked(
    click.option(
        "--init",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        required=True,
        help="Checkpoint to start from.",
    ),
    click.option("--window", type=click.IntRange(1), help="Frames per sample (the chunk length)."),
    click.option(
        "--cache-latents/--no-cache-latents",
        default=None,
        help="Encode each clip once with the frozen autoencoder (per-frame autoencoders).",
    ),
    click.option(
        "--gradient-checkpointing/--no-gradient-checkpointing",
        default=None,
        help="Recompute activations in the backward pass: less memory, more time.",
    ),
    click.option(
        "--lpips-weights",
        type=click.Path(exists=True, dir_okay=False),
        help="LPIPS weights from `rf-train lpips-weights` (else $RENDERFLOW_LPIPS_WEIGHTS).",
    ),
)


def _config(config_type: type, options: dict[str, Any]) -> Any:
    """The stage's dataclass with the defaults replaced by every option given on the command line."""
    given = {key: value for key, value in options.items() if value is not None}
    for key in ("data", "out", "init"):
        if key in given:
            given[key] = str(given[key])
    return config_type(**given)


def _train(name: str, config_type: type, train: Callable[..., Path], options: dict[str, Any]) -> None:
    """Run a stage with its config made from the options, a progress bar, and the checkpoint said."""
    with _progress_bar(name) as progress:
        out = train(_config(config_type, options), progress)
    click.echo(f"checkpoint: {out}")


@contextmanager
def _progress_bar(description: str) -> Iterator[Callable[[int, int, dict[str, float]], None]]:
    """A tqdm bar (loss and it/s) fed by the stage's progress callback; errors become exit code 1."""
    bar: tqdm[Any] | None = None

    def progress(step: int, total: int, values: dict[str, float]) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=step - 1, desc=description, unit="step", disable=None)
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{values['loss']:.4f}", refresh=False)

    try:
        yield progress
    except (OSError, ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error
    finally:
        if bar is not None:
            bar.close()


@main.command()
@_data_options
@click.option("--model", help="Named model configuration (cpu-default).")
@click.option("--crop", type=click.IntRange(8), help="Square crop in pixels.")
def autoencoder(**options: Any) -> None:
    """Train the tiny per-frame autoencoder of the CPU models (before stage 1).

    Writes a complete checkpoint: the trained autoencoder with a fresh transformer and adapters.
    """
    from renderflow.training.autoencoder_stage import AutoencoderConfig, train_autoencoder

    _train("autoencoder", AutoencoderConfig, train_autoencoder, options)


def _parse_schedule(value: str | None) -> tuple[tuple[int, int | None], ...] | None:
    """`2000@256,2000@512` (steps@crop; `full` = the whole frame) -> ((2000, 256), (2000, 512))."""
    if value is None:
        return None
    phases: list[tuple[int, int | None]] = []
    for part in value.split(","):
        steps, _, crop = part.strip().partition("@")
        try:
            phases.append((int(steps), None if crop == "full" else int(crop)))
        except ValueError:
            raise click.BadParameter(f"{part!r}: expected STEPS@CROP, e.g. 2000@256 or 1000@full") from None
    return tuple(phases)


@main.command()
@_data_options
@_model_options
@click.option(
    "--schedule",
    help="Resolution schedule STEPS@CROP,... (paper: 20000@256,20000@512); sets the step count.",
)
@click.option(
    "--phase-lr-factors",
    help="Learning rate of each schedule phase as a factor of --lr, e.g. 1,0.6 (appendix A: 5e-5 then "
    "3e-5); each phase warms up again over --warmup steps.",
)
@click.option("--lambda-pixel", type=float, help="Weight of LPIPS + gradient loss (eq. 8).")
@click.option(
    "--reference-probability", type=click.FloatRange(0, 1), help="Share of first-frame conditioning."
)
@click.option(
    "--augment",
    "augmentations",
    type=click.Choice(AUGMENTATIONS),
    multiple=True,
    help="Train on each clip and its exact copy under this change as well (repeatable): mirror "
    "(flipped left-right), tint (the lighting in another colour). See training/augment.py.",
)
def stage1(schedule: str | None, phase_lr_factors: str | None, **options: Any) -> None:
    """Stage 1: train the base renderer (bridge loss + λ·pixel losses).

    Options left out keep Stage1Config's defaults, the paper's run: 20000@256,20000@512, batch 32,
    LR 5e-5 then 3e-5, each phase with 1000 warm-up steps, λ = 1, CUDA.
    """
    from renderflow.training.stage1 import Stage1Config, train_stage1

    if options.pop("steps") is not None:
        raise click.UsageError("stage1 takes its step count from --schedule")
    options["schedule"] = _parse_schedule(schedule)
    if phase_lr_factors is not None:
        try:
            options["phase_lr_factors"] = tuple(float(part) for part in phase_lr_factors.split(","))
        except ValueError:
            raise click.BadParameter(f"{phase_lr_factors!r}: expected factors like 1,0.6") from None
    _train("stage1", Stage1Config, train_stage1, options)


@main.command()
@_data_options
@_model_options
@click.option("--crop", type=click.IntRange(8), help="Square crop in pixels.")
@click.option("--keyframe-gap", type=click.IntRange(1), help="Frames between keyframes (default 16).")
@click.option("--lambda-pixel", type=float, help="Weight of LPIPS + gradient loss.")
@click.option(
    "--fresh-adapter",
    is_flag=True,
    default=None,
    help="Start the keyframe adapter from scratch instead of --init's (e.g. retrain a finished model's).",
)
@click.option(
    "--reprojected-source/--shaded-source",
    default=None,
    help="With keyframes, start the bridge from the reprojected keyframes where valid (the Deferred "
    "shading elsewhere), or from the shading alone; default: what --init's adapter does.",
)
def stage2(**options: Any) -> None:
    """Stage 2: train the keyframe adapter on the frozen base model.

    Options left out keep Stage2Config's defaults, the paper's run: 20000 steps, batch 32,
    LR 1e-4, keyframe gap 16, whole frames, CUDA.
    """
    from renderflow.training.stage2 import Stage2Config, train_stage2

    _train("stage2", Stage2Config, train_stage2, options)


@main.command()
@_data_options
@_model_options
@click.option("--crop", type=click.IntRange(8), help="Square crop in pixels.")
@click.option("--lambda-reconstruction", type=float, help="Weight of the intrinsic's reconstruction loss.")
@click.option(
    "--intrinsic",
    "intrinsics",
    multiple=True,
    help="Fine-tune only this intrinsic (albedo, normal, depth, roughness or metallic; repeatable): "
    "its prompt and head train, the shared adapter stays frozen and the other intrinsics decompose "
    "bit-identically. Default: the whole adapter.",
)
def inverse(intrinsics: tuple[str, ...], **options: Any) -> None:
    """Train the inverse adapter (image -> intrinsics) on the frozen forward model.

    Options left out keep InverseConfig's defaults, the paper's run: 20000 steps, batch 32,
    LR 1e-4, whole frames, CUDA.

    \b
    Fine-tune the bundled adapter's normals on 128² frames, the other intrinsics kept:
      rf-train inverse --data data/mix128 --init core/weights/renderflow-cpu
        --out runs/inverse_normals --intrinsic normal --crop 128 --device cpu
    """
    from renderflow.training.inverse_stage import InverseConfig, train_inverse

    if intrinsics:
        options["intrinsics"] = intrinsics
    _train("inverse", InverseConfig, train_inverse, options)


@main.command()
@folder_option("--init", "The checkpoint whose weights the new model starts from.", required=True)
@click.option("--model", required=True, help="Named model configuration to build (cpu-v3, ...).")
@folder_option("--out", "Folder for the converted checkpoint.", exists=False, required=True)
def convert(init: Path, model: str, out: Path) -> None:
    """Start a model of a newer configuration from an older checkpoint's weights (where they fit).

    The albedo attribute of cpu-v3 starts at zero, so the converted model renders as the old one
    did from the same source until stage 1 trains it on its own source.
    """
    from renderflow.training.convert import convert as convert_checkpoint

    try:
        click.echo(f"checkpoint: {convert_checkpoint(init, model, out)}")
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


@main.command("lpips-weights")
@click.option(
    "--alexnet",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="torchvision's AlexNet checkpoint (alexnet-owt-7be5be79.pth).",
)
@click.option(
    "--heads",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The lpips package's linear heads (weights/v0.1/alex.pth).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="safetensors file."
)
def lpips_weights(alexnet: Path, heads: Path, out: Path) -> None:
    """Convert the official LPIPS weights to one safetensors file (tensors only, no pickle code runs)."""
    from renderflow.training.lpips import LPIPS_WEIGHTS_ENV, convert_official_weights

    try:
        convert_official_weights(alexnet, heads, out)
    except (OSError, ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{out}: use it with --lpips-weights or ${LPIPS_WEIGHTS_ENV}")
