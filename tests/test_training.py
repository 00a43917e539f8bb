"""The training stages on a tiny set: losses go down, frozen parts stay bit-identical, resume is exact."""

import csv
import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_envmap, make_gbuffers, randomise, tiny_v2_pipeline
from safetensors.torch import load_file

from renderflow.core.model.lora import base_state_dict, lora_state_dict
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.training import loop_helpers as helpers
from renderflow.training.autoencoder_stage import AutoencoderConfig, train_autoencoder
from renderflow.training.cli import main
from renderflow.training.datasets import ClipWindowDataset, WindowSpec, load_dataset
from renderflow.training.inverse_stage import (
    InverseConfig,
    inverse_losses,
    reconstruction_loss,
    train_inverse,
)
from renderflow.training.stage1 import Stage1Config, stage1_losses, train_stage1
from renderflow.training.stage2 import Stage2Config, stage2_losses, train_stage2

WINDOW, CROP = 3, 16


def common(tiny_dataset, out, init, **overrides):
    values = dict(
        data=str(tiny_dataset),
        init=str(init),
        out=str(out),
        window=WINDOW,
        batch_size=2,
        learning_rate=3e-3,
        warmup_steps=0,
        device="cpu",
        gradient_checkpointing=False,
        checkpoint_every=100,
        log_every=1,
    )
    return values | overrides


def fixed_batch(tiny_dataset, pipeline, crop=CROP, gap=2):
    dataset = ClipWindowDataset(load_dataset(tiny_dataset, "train"), WindowSpec(WINDOW, crop, gap), seed=99)
    samples = helpers.batch(dataset, 0, 2)
    latents = helpers.encode_buffers(pipeline.autoencoder, samples, None, dataset, torch.device("cpu"))
    return samples, latents


def stage1_value(checkpoint, tiny_dataset, config):
    pipeline = RenderFlowPipeline.from_pretrained(checkpoint)
    samples, latents = fixed_batch(tiny_dataset, pipeline)
    with torch.no_grad():
        losses = stage1_losses(
            pipeline, latents, samples["buffers"][:, 5], helpers.sample_generators(0, 0, 2), config, None
        )
    return float(losses["loss"])


def test_stage1_lowers_the_loss_and_logs(tiny_dataset, tiny_checkpoint, tmp_path):
    config = Stage1Config(**common(tiny_dataset, tmp_path / "s1", tiny_checkpoint, schedule=((12, CROP),)))
    before = stage1_value(tiny_checkpoint, tiny_dataset, config)
    out = train_stage1(config)
    assert stage1_value(out, tiny_dataset, config) < 0.8 * before
    rows = list(csv.DictReader((out / "logs" / "metrics.csv").open()))
    assert [int(row["step"]) for row in rows] == list(range(1, 13))
    assert {"loss", "latent", "gradient", "lpips", "lr", "grad_norm"} <= set(rows[0])
    assert list((out / "logs").glob("events.out.tfevents.*"))  # TensorBoard


def test_stage1_resume_continues_exactly(tiny_dataset, tiny_checkpoint, tmp_path):
    straight = Stage1Config(
        **common(tiny_dataset, tmp_path / "straight", tiny_checkpoint, schedule=((2, CROP), (2, None)))
    )
    train_stage1(straight)
    interrupted = dataclasses.replace(straight, out=str(tmp_path / "resumed"), schedule=((2, CROP),))
    train_stage1(interrupted)  # stops after step 2 with its checkpoint, as a killed run would have
    resumed = dataclasses.replace(interrupted, schedule=straight.schedule)
    train_stage1(resumed)
    for name in ("transformer.safetensors", "train_state/state.safetensors"):
        a, b = load_file(str(tmp_path / "straight" / name)), load_file(str(tmp_path / "resumed" / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a), name


def test_stage2_trains_only_the_keyframe_adapter(tiny_dataset, tiny_checkpoint, tmp_path):
    config = Stage2Config(
        **common(tiny_dataset, tmp_path / "s2", tiny_checkpoint, steps=10, crop=CROP, keyframe_gap=2)
    )
    initial = RenderFlowPipeline.from_pretrained(tiny_checkpoint)

    def value(pipeline):
        samples, latents = fixed_batch(tiny_dataset, pipeline)
        sample = {key: value[0] for key, value in samples.items()}
        first = {name: latent[:1] for name, latent in latents.items()}
        with torch.no_grad():
            losses = stage2_losses(
                pipeline, first, sample, torch.Generator().manual_seed(0), config, None, torch.device("cpu")
            )
        return float(losses["loss"])

    before = value(initial)
    trained = RenderFlowPipeline.from_pretrained(train_stage2(config))
    assert value(trained) < before
    base_before, base_after = base_state_dict(initial.transformer), base_state_dict(trained.transformer)
    assert all(torch.equal(base_before[key], base_after[key]) for key in base_before)
    autoencoder_before, autoencoder_after = initial.autoencoder.state_dict(), trained.autoencoder.state_dict()
    assert all(torch.equal(autoencoder_before[key], autoencoder_after[key]) for key in autoencoder_before)
    lora_before, lora_after = (
        lora_state_dict(initial.transformer, "keyframe"),
        lora_state_dict(trained.transformer, "keyframe"),
    )
    assert any(not torch.equal(lora_before[key], lora_after[key]) for key in lora_before)


def test_stage2_fresh_adapter_starts_again_from_a_no_op(tiny_dataset, random_checkpoint, tmp_path):
    """--fresh-adapter drops --init's trained keyframe adapter: keyframes then change nothing."""
    config = Stage2Config(
        **common(
            tiny_dataset,
            tmp_path / "fresh",
            random_checkpoint,
            steps=1,
            crop=CROP,
            keyframe_gap=2,
            learning_rate=0.0,  # one step that changes no weight: the checkpoint holds the fresh start
            weight_decay=0.0,
            fresh_adapter=True,
        )
    )
    random_model = RenderFlowPipeline.from_pretrained(random_checkpoint)
    fresh = RenderFlowPipeline.from_pretrained(train_stage2(config))
    gbuffers, env = make_gbuffers(), make_envmap()
    keyframes = {0: np.full((32, 32, 3), 0.5, np.float32)}
    assert not np.array_equal(
        random_model.render(gbuffers, env, keyframes=keyframes), random_model.render(gbuffers, env)
    )
    assert np.array_equal(fresh.render(gbuffers, env, keyframes=keyframes), fresh.render(gbuffers, env))
    base_before, base_after = base_state_dict(random_model.transformer), base_state_dict(fresh.transformer)
    assert all(torch.equal(base_before[key], base_after[key]) for key in base_before)


def test_the_material_loss_scores_the_geometry_only():
    """Roughness and metallic exist on the geometry: what the adapter answers on the background
    changes nothing, what it answers on the geometry does."""
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 2, 8, 8, generator=generator) * 2 - 1
    mask = torch.zeros(1, 1, 2, 8, 8)
    mask[..., 2:6, 2:6] = 1.0
    decoded = torch.rand(1, 3, 2, 8, 8, generator=generator) * 2 - 1
    loss = reconstruction_loss("metallic", decoded, target, mask, None)
    background_changed = torch.where(mask > 0, decoded, torch.full_like(decoded, 5.0))
    assert torch.equal(reconstruction_loss("metallic", background_changed, target, mask, None), loss)
    geometry_right = torch.where(mask > 0, target[:, :1].expand_as(decoded), decoded)
    assert float(reconstruction_loss("roughness", geometry_right, target, mask, None)) < 1e-6 < float(loss)


def test_inverse_trains_only_the_inverse_adapter(tiny_dataset, tiny_checkpoint, tmp_path):
    config = InverseConfig(**common(tiny_dataset, tmp_path / "inv", tiny_checkpoint, steps=12, crop=CROP))
    initial = RenderFlowPipeline.from_pretrained(tiny_checkpoint)

    def value(pipeline):
        samples, latents = fixed_batch(tiny_dataset, pipeline)
        total = 0.0
        for intrinsic in ("albedo", "normal", "depth", "roughness"):
            with torch.no_grad():
                losses = inverse_losses(
                    pipeline,
                    intrinsic,
                    latents,
                    samples["buffers"],
                    samples["mask"],
                    torch.Generator().manual_seed(0),
                    config,
                    None,
                )
            total += float(losses["loss"])
        return total

    before = value(initial)
    trained = RenderFlowPipeline.from_pretrained(train_inverse(config))
    assert value(trained) < before
    forward_before = base_state_dict(initial.transformer) | lora_state_dict(initial.transformer, "keyframe")
    forward_after = base_state_dict(trained.transformer) | lora_state_dict(trained.transformer, "keyframe")
    assert all(torch.equal(forward_before[key], forward_after[key]) for key in forward_before)
    keyframe_before, keyframe_after = (
        initial.keyframe_adapter.state_dict(),
        trained.keyframe_adapter.state_dict(),
    )
    assert all(torch.equal(keyframe_before[key], keyframe_after[key]) for key in keyframe_before)


def test_inverse_fine_tunes_some_intrinsics_and_leaves_the_others_bit_identical(
    tiny_dataset, random_checkpoint, tmp_path
):
    initial = RenderFlowPipeline.from_pretrained(random_checkpoint)
    randomise(initial.inverse_adapter, seed=3)  # zero-initialised parts would hide a changed prompt
    init = tmp_path / "init"
    initial.save_pretrained(init)
    out = tmp_path / "normals"
    args = ["inverse", "--data", str(tiny_dataset), "--init", str(init), "--out", str(out)]
    args += ["--steps", "4", "--batch-size", "2", "--crop", str(CROP), "--window", str(WINDOW)]
    args += ["--lr", "3e-3", "--device", "cpu", "--no-gradient-checkpointing", "--log-every", "1"]
    args += ["--intrinsic", "normal"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "logs" / "metrics.csv").open()))
    assert all(row["normal"] != "nan" and row["albedo"] == "nan" for row in rows)

    trained = RenderFlowPipeline.from_pretrained(out)
    image = np.random.default_rng(3).uniform(0.0, 2.0, (3, 32, 32, 3)).astype(np.float32)
    before, after = initial.decompose(image), trained.decompose(image)
    for name in ("albedo", "depth", "roughness", "metallic"):
        assert np.array_equal(before[name], after[name]), name
    assert not np.allclose(before["normal"], after["normal"])
    changed = {
        key
        for key, value in initial.inverse_adapter.state_dict().items()
        if not torch.equal(value, trained.inverse_adapter.state_dict()[key])
    }
    assert changed and all(key.startswith(("heads.normal.", "prompt_embeddings")) for key in changed)

    unknown = CliRunner().invoke(main, [*args[:-1], "specular", "--out", str(tmp_path / "bad")])
    assert unknown.exit_code != 0 and "specular" in unknown.output


def test_autoencoder_stage_writes_a_complete_checkpoint(tiny_dataset, tmp_path):
    config = AutoencoderConfig(
        data=str(tiny_dataset),
        out=str(tmp_path / "ae"),
        steps=4,
        batch_size=2,
        crop=16,
        learning_rate=1e-3,
        log_every=1,
    )
    pipeline = RenderFlowPipeline.from_pretrained(train_autoencoder(config))
    assert pipeline.keyframe_adapter is not None and pipeline.inverse_adapter is not None
    losses = [float(row["loss"]) for row in csv.DictReader((tmp_path / "ae" / "logs" / "metrics.csv").open())]
    assert len(losses) == 4
    with pytest.raises(ValueError, match="unknown model configuration 'huge'"):
        train_autoencoder(dataclasses.replace(config, model="huge", out=str(tmp_path / "other")))


def test_rf_train_commands(tiny_dataset, tiny_checkpoint, tmp_path):
    runner = CliRunner()
    help_text = runner.invoke(main, ["stage1", "--help"]).output
    assert "--schedule" in help_text and "--cache-latents" in help_text
    args = [
        "--data",
        str(tiny_dataset),
        "--init",
        str(tiny_checkpoint),
        "--window",
        "3",
        "--batch-size",
        "1",
        "--device",
        "cpu",
    ]
    result = runner.invoke(
        main, ["stage1", *args, "--out", str(tmp_path / "s1"), "--schedule", "2@16", "--cache-latents"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s1" / "transformer.safetensors").exists()
    assert list((tmp_path / "s1" / "latent_cache").glob("*.safetensors"))
    bad = runner.invoke(main, ["stage1", *args, "--out", str(tmp_path / "x"), "--schedule", "two@16"])
    assert bad.exit_code != 0 and "STEPS@CROP" in bad.output
    too_big = runner.invoke(
        main, ["inverse", *args, "--out", str(tmp_path / "y"), "--steps", "1", "--crop", "64"]
    )
    assert too_big.exit_code == 1 and "smaller than the crop 64" in too_big.output


def test_training_log_forgets_steps_past_the_resumed_checkpoint(tmp_path):
    log = helpers.TrainingLog(tmp_path)
    for step in range(1, 6):
        log.write(step, {"loss": 1.0 / step})
    log.close()
    resumed = helpers.TrainingLog(tmp_path, start_step=3)  # steps 4 and 5 were lost with the crash
    resumed.write(4, {"loss": 0.2})
    resumed.close()
    rows = list(csv.DictReader((tmp_path / "logs" / "metrics.csv").open()))
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["loss"]) == 0.2


def test_stage1_schedule_has_appendix_a_learning_rates_with_a_warm_up_per_phase():
    config = Stage1Config()  # the paper's run: 20000 steps at 256², then 20000 at 512²
    assert config.learning_rate_at(0) == (pytest.approx(5e-5), 0)
    assert config.learning_rate_at(19999) == (pytest.approx(5e-5), 19999)
    assert config.learning_rate_at(20000) == (pytest.approx(3e-5), 0)  # warm-up starts again here
    assert config.crop_at(19999) == 256 and config.crop_at(20000) == 512
    assert config.learning_rate_at(45000) == (pytest.approx(3e-5), 25000)  # past the end: the last phase


def _logged_losses(folder):
    with (folder / "logs" / "metrics.csv").open() as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_stage1_on_two_processes_follows_one_process_with_the_same_global_batch(
    tiny_dataset, tiny_checkpoint, tmp_path
):
    # two processes for real (gloo on loopback): each takes half of the global batch, draws its
    # samples' own random streams and averages gradients. `accelerate launch --cpu` would start one
    # process (its simple launcher; multi-CPU there means MPI): torchrun's launcher (`--multi_gpu`)
    # with `--device cpu` is what makes a process group on a CPU machine (docs/DECISIONS.md).
    args = ["--data", str(tiny_dataset), "--init", str(tiny_checkpoint), "--schedule", f"4@{CROP}"]
    args += ["--window", str(WINDOW), "--lr", "1e-3", "--warmup", "1", "--device", "cpu", "--log-every", "1"]
    args += ["--no-gradient-checkpointing", "--checkpoint-every", "4"]
    single = CliRunner().invoke(main, ["stage1", *args, "--batch-size", "4", "--out", str(tmp_path / "one")])
    assert single.exit_code == 0, single.output
    with socket.socket() as probe:  # a free port for the process group's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rf_train = Path(sys.executable).parent / "rf-train"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--main_process_port", str(port)]
    completed = subprocess.run(
        [*launch, str(rf_train), "stage1", *args, "--batch-size", "2", "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    one, two = _logged_losses(tmp_path / "one"), _logged_losses(tmp_path / "two")
    assert len(one) == len(two) == 4
    np.testing.assert_allclose(two, one, rtol=1e-4)
    assert one[-1] < one[0]  # and it trains


def test_stage2_trains_a_reprojecting_adapter_from_the_reprojected_source(tiny_dataset, tmp_path):
    # a v2-like tiny model: normalised lighting, shaded source, keyframes reprojected by depth
    tiny_v2_pipeline().save_pretrained(tmp_path / "init")
    config = Stage2Config(
        **common(tiny_dataset, tmp_path / "s2", tmp_path / "init", steps=3, crop=None, keyframe_gap=2),
        reprojected_source=True,
    )
    trained = RenderFlowPipeline.from_pretrained(train_stage2(config))
    adapter = trained.keyframe_adapter
    assert adapter is not None and adapter.config["reprojected_source"]
    assert np.isfinite(_logged_losses(tmp_path / "s2")).all()
    assert any(value.abs().sum() > 0 for value in lora_state_dict(trained.transformer, "keyframe").values())


def test_a_checkpoint_renders_whole_frames_up_to_the_size_it_was_trained_at(
    tiny_dataset, tiny_checkpoint, tmp_path
):
    """Issue #29: the transformer window follows the checkpoint; a model trained on whole frames of a
    size never renders those frames in windows."""
    narrow = tmp_path / "narrow"
    pipeline = RenderFlowPipeline.from_pretrained(tiny_checkpoint)
    pipeline.config = dataclasses.replace(pipeline.config, transformer_window=8)  # below the clips' size
    pipeline.save_pretrained(narrow)
    config = Stage1Config(**common(tiny_dataset, tmp_path / "s1", narrow, schedule=((1, None),)))
    trained = RenderFlowPipeline.from_pretrained(train_stage1(config))
    frame_size = max(load_dataset(tiny_dataset, "train")[0].stack.shape[2:4])
    assert trained.config.transformer_window == frame_size
    assert max(trained.windows.window, 1) * trained.autoencoder.spatial_factor >= frame_size  # one window
