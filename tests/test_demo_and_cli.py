"""The demo clip's exact G-buffers, EXR files, and rf-render from the command line."""

import dataclasses
import math

import numpy as np
import OpenImageIO as oiio
import pytest
from click.testing import CliRunner

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.clips import load_clip
from renderflow.core.io.exr import ImageFileError, read_exr, write_exr
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shot.contact_sheet import LABEL_HEIGHT
from renderflow.core.shot.demo import BUNDLED_MODEL, DEMO_CLIP
from renderflow.core.shot.demo_scene import SPHERE_CENTRE, SPHERE_RADIUS, demo_clip, orbit_camera_to_world
from renderflow.daemon.rf_render.cli import main
from renderflow.training.metrics import display, psnr

NETWORK_MIN_GAIN = 0.2  # dB the bundled model adds to its physics prior on a held-out frame (~0.4 since
# the principled energy made the prior brighter and closer; ~2.7 before)


def test_demo_clip_centre_pixel_sees_the_sphere_face_on():
    gbuffers, envmap = demo_clip(frames=2, size=32)
    centre = (slice(None), slice(15, 17), slice(15, 17))
    # The camera looks at the sphere's centre: the central ray hits it head-on.
    np.testing.assert_allclose(gbuffers.normal[centre], np.broadcast_to([0, 0, 1], (2, 2, 2, 3)), atol=0.05)
    distance = np.linalg.norm(orbit_camera_to_world(0.0)[:3, 3] - SPHERE_CENTRE)
    np.testing.assert_allclose(gbuffers.depth[0, 15:17, 15:17], distance - SPHERE_RADIUS, rtol=0.01)
    assert envmap.shape == (2, 16, 32, 3) and envmap.max() > 1.0


def test_demo_clip_background_is_inf_and_ground_normal_is_up_in_camera_space():
    gbuffers, _ = demo_clip(frames=1, size=32)
    assert np.isinf(gbuffers.depth[0, 0]).all()
    rotation = orbit_camera_to_world(0.0)[:3, :3]
    up_cam = rotation.T @ np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(gbuffers.normal[0, -1, 16], up_cam, atol=1e-6)
    assert up_cam[1] > 0 and up_cam[2] > 0  # tilted towards a camera that looks down
    assert gbuffers.validate() == (1, 32, 32)
    assert math.isclose(float(np.linalg.norm(gbuffers.normal[0, 20, 16])), 1.0, rel_tol=1e-5)


def test_exr_round_trip_keeps_channels_and_attributes(tmp_path):
    pixels = np.random.default_rng(0).random((4, 6, 3), dtype=np.float32) * 10
    write_exr(tmp_path / "a.exr", pixels, ["R", "G", "B"], half=False, attributes={"renderflow/steps": 1})
    image = read_exr(tmp_path / "a.exr")
    assert image.channels == ["R", "G", "B"]
    np.testing.assert_array_equal(image.select(["B", "R"]), pixels[..., [2, 0]])
    assert image.attributes["renderflow/steps"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a.exr"]


def test_truncated_exr_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.exr"
    write_exr(path, np.ones((8, 8, 3), np.float32), ["R", "G", "B"])
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageFileError, match=r"cut.exr"):
        read_exr(path)


def test_rf_render_demo_renders_the_bundled_clip_with_the_bundled_model(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--frames", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["beauty.1001.exr", "beauty.1002.exr", "beauty.1003.exr", "contact_sheet.png"]
    beauty = read_exr(tmp_path / "beauty.1002.exr")
    assert beauty.channels == ["R", "G", "B"] and beauty.pixels.shape == (128, 128, 3)
    assert beauty.attributes["renderflow/model"].endswith("renderflow-cpu")
    # a trained network: closer to the held-out path-traced frame than the physics it starts from
    clip = load_clip(DEMO_CLIP)
    pipeline = RenderFlowPipeline.from_pretrained(BUNDLED_MODEL)
    pipeline.config = dataclasses.replace(pipeline.config, change_weight=0.0)
    full = clip.gbuffers
    first_three = GBuffers(full.albedo[:3], full.normal[:3], full.depth[:3], full.material[:3])
    prior = pipeline.render(first_three, clip.envmap_cam[:3], vertical_fov_degrees=clip.vertical_fov_degrees)
    reference = display(clip.beauty[1])
    assert psnr(display(beauty.pixels), reference) > psnr(display(prior[1]), reference) + NETWORK_MIN_GAIN
    # readable: 256-px panels, seven labelled columns, the first, middle and last frame as rows
    spec = oiio.ImageBuf(str(tmp_path / "contact_sheet.png")).spec()
    assert (spec.height, spec.width) == (LABEL_HEIGHT + 3 * 256, 7 * 256)


def test_rf_render_import_wan_without_a_wan_folder_fails_with_a_message(tmp_path):
    result = CliRunner().invoke(main, ["import-wan", str(tmp_path), str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "expected a diffusers Wan2.1 transformer folder" in result.output


def test_rf_render_help_teaches_with_examples():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "rf-render demo --out demo_out" in result.output
