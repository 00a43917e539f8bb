"""Metrics on known cases, rf-eval end to end on a tiny set, rf-render preview and rf-train sheet."""

import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_v2_pipeline

from renderflow.core.io.clips import load_clip
from renderflow.core.io.exr import read_exr
from renderflow.core.shading.pixel_filter import PIXEL_FILTER_SIGMA
from renderflow.core.shot.reading import ReadOptions, read_shot, shot_envmaps
from renderflow.daemon.rf_render.cli import main as rf_render
from renderflow.training import metrics
from renderflow.training.cli import main as rf_train
from renderflow.training.eval_cli import main as rf_eval
from renderflow.training.evaluate import exposure_gain, prior_pixel_filter


def test_psnr_and_ssim_known_values():
    reference = np.full((2, 16, 16, 3), 0.5)
    assert math.isinf(metrics.psnr(reference, reference))
    assert metrics.psnr(reference + 0.1, reference) == pytest.approx(20.0)
    mask = np.zeros((2, 16, 16, 1))
    mask[:, :8] = 1.0
    noisy = reference.copy()
    noisy[:, 8:] += 0.3  # outside the mask
    assert math.isinf(metrics.psnr(noisy, reference, mask))
    textured = np.random.default_rng(0).random((2, 16, 16, 3))
    assert metrics.ssim(textured, textured) == pytest.approx(1.0)
    assert metrics.ssim(np.random.default_rng(1).random((2, 16, 16, 3)), textured) < 0.2


def test_flicker_sees_temporal_changes_only():
    reference = np.random.default_rng(0).random((4, 8, 8, 3))
    assert metrics.flicker(reference + 0.2, reference) == pytest.approx(0.0)  # a steady offset
    flickering = reference.copy()
    flickering[1::2] += 0.1
    assert metrics.flicker(flickering, reference) == pytest.approx(0.1)


def test_intrinsic_metrics():
    mask = np.ones((1, 4, 4, 1))
    normal = np.zeros((1, 4, 4, 3))
    normal[..., 2] = 1.0
    tilted = np.zeros_like(normal)
    tilted[..., 1] = tilted[..., 2] = 1.0
    assert metrics.angular_error_degrees(tilted, normal, mask) == pytest.approx(45.0)
    depth = np.random.default_rng(0).uniform(1, 5, (1, 4, 4, 1))
    assert metrics.ssi_log_depth_rmse(3.0 * depth, depth, mask) == pytest.approx(0.0, abs=1e-9)


def test_paired_difference_interval_tells_a_consistent_gain_from_a_few_swings():
    steady = np.full(16, 0.2) + np.linspace(-0.05, 0.05, 16)  # every clip a little better
    low, high = metrics.paired_difference_interval(steady)
    assert 0.0 < low < 0.2 < high < 0.3
    swings = np.array([3.0, -2.8, 0.1, -0.1, 2.5, -2.4, 0.2, -0.3])  # mean +0.03, a few big swings
    low, high = metrics.paired_difference_interval(swings)
    assert low < 0.0 < high
    assert metrics.paired_difference_interval(swings) == (low, high)  # the same on a rerun
    with pytest.raises(ValueError, match="two or more"):
        metrics.paired_difference_interval(np.array([1.0]))


def test_rf_eval_writes_the_three_tables(tiny_dataset, tiny_checkpoint, tmp_path):
    args = ["--data", str(tiny_dataset), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path)]
    result = CliRunner().invoke(rf_eval, [*args, "--keyframe-gaps", "2,4", "--sampler-steps", "3"])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    forward = results["forward"]
    assert set(forward) == {
        "IBL",
        "Deferred",
        "Deferred + visibility (no network)",
        "Autoencoder ceiling",
        "RenderFlow (1 step)",
        "RenderFlow (4 steps)",
        "RenderFlow sampler (3 steps)",
        "Nearest keyframe reprojected, Deferred fill (gap 2, no network)",
        "Keyframes reprojected, visibility fill (gap 2, no network)",
        "RenderFlow + keyframes (gap 2)",
        "Nearest keyframe reprojected, Deferred fill (gap 4, no network)",
        "Keyframes reprojected, visibility fill (gap 4, no network)",
        "RenderFlow + keyframes (gap 4)",
    }
    assert forward["RenderFlow (1 step)"]["steps"] == 1 and forward["Deferred"]["steps"] == 0
    assert "psnr_non_key" in forward["RenderFlow + keyframes (gap 2)"]
    assert results["run_to_run_psnr_std"] == 0.0  # one deterministic evaluation
    assert results["lpips"] == "unavailable" and "lpips" not in forward["IBL"]
    assert set(results["inverse"]) == {
        "albedo_psnr",
        "normal_degrees",
        "depth_log_rmse",
        "roughness_rmse",
        "metallic_rmse",
    }
    # the Deferred row is the baseline rendered here again: the table holds what the code computes
    clip = load_clip(tiny_dataset / "test" / "clip_0002")
    markdown = (tmp_path / "results.md").read_text()
    assert "| Deferred | — |" in markdown and "n/a" in markdown and "| Keyframes |" in markdown
    assert (tmp_path / "contact_clip_0002.png").exists()
    assert clip.beauty.shape[0] == 5
    # per-clip rows, the exposure gain and the naive decomposition the inverse adapter must beat
    assert results["per_clip_psnr"]["Deferred"] == [pytest.approx(forward["Deferred"]["psnr"])]
    assert (
        "| clip_0002 |" in markdown
        and "Naive (image as albedo, camera-facing normals, best constants)" in markdown
    )
    assert 0 < results["inverse_naive"]["normal_degrees"] < 180  # camera-facing normals, scored
    assert forward["Deferred"]["gain"] > 0


def test_exposure_gain_says_how_much_brighter_the_truth_is():
    reference = np.random.default_rng(0).random((2, 8, 8, 3)) * 5
    mask = np.ones((2, 8, 8, 1))
    assert exposure_gain(reference, reference, mask) == pytest.approx(1.0)
    assert exposure_gain(reference / 4, reference, mask) == pytest.approx(4.0)
    mask[:, :4] = 0
    spoiled = reference.copy()
    spoiled[:, :4] = 100.0  # outside the geometry: does not count
    assert exposure_gain(spoiled, reference, mask) == pytest.approx(1.0)
    highlight = reference.copy()
    highlight[0, 6, 6] *= 1000.0  # one blown-out pixel does not rule the exposure
    assert exposure_gain(highlight, reference, mask) == pytest.approx(1.0)


def test_rf_eval_scores_a_clip_without_camera_json_from_its_headers(tiny_dataset, tmp_path):
    data = tmp_path / "mine"
    shutil.copytree(tiny_dataset / "test", data)
    (data / "clip_0002" / "camera.json").unlink()
    (data / "clip_0002" / "scene.json").unlink()  # not made by rf-train synth: no done file needed
    (data / "clip_0002" / "done").unlink()
    out = tmp_path / "out"
    refused = CliRunner().invoke(rf_eval, ["--data", str(data), "--split", "", "--out", str(out)])
    assert refused.exit_code == 1 and "--fov" in refused.output
    result = CliRunner().invoke(
        rf_eval, ["--data", str(data), "--split", "", "--out", str(out), "--fov", "40"]
    )
    assert result.exit_code == 0, result.output
    original = load_clip(tiny_dataset / "test" / "clip_0002")
    from_headers = load_clip(data / "clip_0002", vertical_fov_degrees=40.0)
    np.testing.assert_allclose(from_headers.camera_to_world, original.camera_to_world, atol=1e-6)


def test_rf_eval_with_other_step_counts(tiny_dataset, tiny_checkpoint, tmp_path):
    args = ["--data", str(tiny_dataset), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path)]
    result = CliRunner().invoke(rf_eval, [*args, "--steps", "2", "--sampler-steps", "3", "--no-inverse"])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert "RenderFlow (2 steps)" in results["forward"] and results["run_to_run_psnr_std"] == 0.0


def test_rf_eval_without_a_checkpoint_scores_the_baselines(tiny_dataset, tmp_path):
    result = CliRunner().invoke(rf_eval, ["--data", str(tiny_dataset), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["forward"]) == {"IBL", "Deferred", "Deferred + visibility (no network)"}
    assert results["inverse"] is None
    missing = CliRunner().invoke(
        rf_eval, ["--data", str(tiny_dataset), "--split", "val", "--out", str(tmp_path)]
    )
    assert missing.exit_code == 1 and "no such dataset folder" in missing.output


def test_rf_render_preview_writes_a_sequence(tiny_dataset, tmp_path):
    clip = tiny_dataset / "train" / "clip_0000"
    out = tmp_path / "preview" / "beauty.####.exr"
    args = ["preview", str(clip / "frame.####.exr"), "--env", str(clip / "envmap.exr"), "--out", str(out)]
    result = CliRunner().invoke(
        rf_render, [*args, "--frames", "1001-1003", "--camera", str(clip / "camera.json")]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == ["beauty.1001.exr", "beauty.1002.exr", "beauty.1003.exr"]
    image = read_exr(out.parent / "beauty.1002.exr")
    assert image.channels == ["R", "G", "B", "A"] and image.attributes["renderflow/preview"] == "deferred"
    # the header's camera does as well as camera.json (both come from the same track)
    from_header = read_shot(str(clip / "frame.####.exr"), "1001-1003")
    from_json = read_shot(str(clip / "frame.####.exr"), "1001-1003", ReadOptions(camera=clip / "camera.json"))
    np.testing.assert_allclose(
        shot_envmaps(from_header, clip / "envmap.exr"),
        shot_envmaps(from_json, clip / "envmap.exr"),
        atol=1e-4,
    )
    no_token = CliRunner().invoke(rf_render, [*args[:-1], str(tmp_path / "one.exr")])
    assert no_token.exit_code != 0 and "frame token" in no_token.output


def test_rf_train_sheet(tiny_dataset, tmp_path):
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(
        rf_train, ["sheet", "--data", str(tiny_dataset), "--clips", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert read_exr(out).pixels.shape[1] == 7 * 32  # seven buffers side by side
    bad = CliRunner().invoke(
        rf_train, ["sheet", "--data", str(tiny_dataset), "--frame", "9", "--out", str(out)]
    )
    assert bad.exit_code == 1 and "no frame index 9" in bad.output


def test_failure_scores_see_shadows_metals_and_fireflies(tiny_dataset):
    from renderflow.core.io.envmap import camera_view_envmaps
    from renderflow.training.evaluate import failure_scores, shadow_regions

    folder = sorted((tiny_dataset / "test").iterdir())[0]
    clip = load_clip(folder)
    clip.envmap_cam = camera_view_envmaps(clip.envmap_world, clip.camera_to_world, 16, 32)
    geometry = clip.mask[..., 0] > 0.5
    shadow, lit = geometry.copy(), geometry.copy()
    shadow[:, : shadow.shape[1] // 2] = False  # a constructed split: bottom half "in shadow"
    lit[:, shadow.shape[1] // 2 :] = False
    clip.gbuffers.material[..., 1] = np.where(geometry, 1.0, 0.0)  # every geometry pixel a metal
    exact = failure_scores(clip.beauty, clip, shadow, lit)
    assert exact["shadow_contrast"] == pytest.approx(1.0) and exact["peak_ratio"] == pytest.approx(1.0)
    assert math.isinf(exact["psnr_metal"])
    flat = np.where(shadow[..., None], clip.beauty * 3.0, clip.beauty)  # shadows three times too bright
    assert failure_scores(flat, clip, shadow, lit)["shadow_contrast"] == pytest.approx(1 / 3, rel=1e-3)
    firefly = clip.beauty.copy()
    firefly[0][geometry[0]] *= 0.5
    firefly[0][np.argwhere(geometry[0])[0][0], np.argwhere(geometry[0])[0][1]] = 1000.0
    assert failure_scores(firefly, clip, shadow, lit)["peak_ratio"] > 10
    found_shadow, found_lit = shadow_regions(clip)
    assert found_shadow.shape == geometry.shape and not (found_shadow & found_lit).any()


def test_the_no_network_rows_get_the_pixel_filter_the_model_puts_on_its_prior():
    """After the network (`pipeline.pixel_filter`) or in the bridge source: either way the prior's
    rows carry it, so that they hold everything the model does but the network."""
    v3 = {"bridge_source": "shaded_visibility", "pixel_residual": True}
    assert prior_pixel_filter(None) == 0.0
    assert prior_pixel_filter(tiny_v2_pipeline(**v3)) == 0.0
    assert prior_pixel_filter(tiny_v2_pipeline(**v3, pixel_filter=0.7)) == 0.7
    filtered_source = v3 | {"bridge_source": "shaded_visibility_filtered"}
    assert prior_pixel_filter(tiny_v2_pipeline(**filtered_source)) == PIXEL_FILTER_SIGMA
