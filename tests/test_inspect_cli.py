"""`rf-render inspect`: what a TD sees before rendering a renderer's EXRs; and error-map previews."""

import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from renderflow.core.io.camera_files import write_camera_json
from renderflow.core.io.cameras import CameraTrack, ray_length_factor, to_imath
from renderflow.core.io.exr import Layer, write_layers
from renderflow.core.io.gbuffer_io import write_canonical_frame
from renderflow.core.shot.contact_sheet import display_error
from renderflow.core.shot.demo import DEMO_CLIP
from renderflow.core.shot.demo_scene import orbit_camera_to_world, ray_cast
from renderflow.daemon.rf_render.cli import main

DEMO_FRAMES = DEMO_CLIP / "frame.####.exr"


def _arnold_frame(path, with_camera=True):
    normals = np.zeros((4, 4, 3), np.float32)
    normals[..., 2] = 1.0
    depth = np.full((4, 4, 1), 3.0, np.float32)
    depth[0, 0] = 1e30
    layers = [
        Layer("", np.ones((4, 4, 4), np.float32), "RGBA"),
        Layer("diffuse_albedo", np.full((4, 4, 3), 0.5, np.float32), "RGB"),
        Layer("N", normals, "XYZ", half=False),
        Layer("", depth, ["Z"], half=False),
    ]
    attributes = {"arnold/version": "7.3"}
    if with_camera:
        attributes["worldToCamera"] = to_imath(np.eye(4))
    write_layers(path, layers, attributes)


def test_inspect_shows_layers_profile_mapping_and_ranges(tmp_path):
    _arnold_frame(tmp_path / "shot.1001.exr")
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "shot.####.exr")])
    assert result.exit_code == 0, result.output
    assert "diffuse_albedo" in result.output and "shot.1001.exr" in result.output
    assert "profile: arnold (auto-detected" in result.output
    assert "albedo     <- diffuse_albedo.R,diffuse_albedo.G,diffuse_albedo.B" in result.output
    assert "depth      <- Z" in result.output and "[3, 3]" in result.output
    assert "roughness  <- default 0.5 (no layer)" in result.output
    assert "geometry covers 93.8% of the frame" in result.output


def test_inspect_with_a_mapping_and_a_camera_file(tmp_path):
    _arnold_frame(tmp_path / "frame.exr", with_camera=False)
    write_camera_json(tmp_path / "camera.json", CameraTrack([1], np.eye(4)[None], [40.0]))
    args = ["inspect", str(tmp_path / "frame.exr"), "--profile", "arnold", "--aov", "roughness=A"]
    result = CliRunner().invoke(main, [*args, "--camera", str(tmp_path / "camera.json")])
    assert result.exit_code == 0, result.output
    assert "roughness  <- A" in result.output and "camera:  from" in result.output


def test_inspect_fails_with_the_reason_when_the_camera_is_missing(tmp_path):
    _arnold_frame(tmp_path / "frame.exr", with_camera=False)
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "frame.exr")])
    assert result.exit_code != 0
    assert "layers:" in result.output  # what the file holds is printed before the error
    assert "world-space normals but the header has no camera" in result.output


def test_inspect_rejects_a_mapping_without_a_profile_and_a_broken_file(tmp_path):
    _arnold_frame(tmp_path / "frame.exr")
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "frame.exr"), "--aov", "roughness=A"])
    assert result.exit_code != 0 and "--aov needs an explicit --profile" in result.output
    (tmp_path / "broken.exr").write_bytes(b"\x76\x2f\x31\x01 broken")
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "broken.exr")])
    assert result.exit_code != 0 and "broken.exr" in result.output


def test_error_map_is_black_where_equal_and_white_at_full_scale():
    reference = np.zeros((2, 2, 3), np.float32)
    prediction = reference.copy()
    prediction[1, 1] = 0.5
    heat = display_error(prediction, reference, full_scale=0.25)
    np.testing.assert_array_equal(heat[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(heat[1, 1], [1, 1, 1])
    assert heat[0, 0].sum() < display_error(reference + 0.05, reference)[0, 0].sum() < 3


def test_reading_and_inspecting_a_frame_never_imports_torch():
    # a fresh interpreter: reading EXRs through a profile and `rf-render inspect` stay numpy-only,
    # so inspecting a shot on a farm node takes seconds, not the import of torch and diffusers
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from renderflow.core.io.gbuffer_io import read_sequence\n"
        "from renderflow.daemon.rf_render.cli import main\n"
        f"read_sequence({str(DEMO_FRAMES)!r})\n"
        f"result = CliRunner().invoke(main, ['inspect', {str(DEMO_FRAMES)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(name for name in ('torch', 'diffusers') if name in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_inspect_catches_ray_distance_depth_as_render_does(tmp_path):
    """A ray-distance depth labelled planar: inspect (with the fov render would assume) refuses it too."""
    camera_to_world = orbit_camera_to_world(angle=0.7, radius=5.0, height=2.5)
    albedo, normal, depth, material = ray_cast(camera_to_world[:3, :3], camera_to_world[:3, 3], 32, 40.0)
    buffers = {
        "albedo": albedo,
        "normal": normal,
        "depth": depth * ray_length_factor(32, 32, 40.0),
        "roughness": material[..., :1],
        "metallic": material[..., 1:2],
        "specular": material[..., 2:],
    }
    path = tmp_path / "ray.0001.exr"
    write_canonical_frame(path, buffers, {"worldToCamera": to_imath(np.linalg.inv(camera_to_world))})
    env = ["--env", str(DEMO_CLIP / "envmap.exr"), "--out", str(tmp_path / "preview.exr")]
    for args in (["inspect", str(path)], ["preview", str(path), *env]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code != 0, (args, result.output)
        assert "ray.0001.exr: layer depth.Z looks like ray distance" in result.output, result.output
    toml = tmp_path / "ray.toml"
    toml.write_text('base = "canonical"\ndepth_kind = "ray"\n')
    result = CliRunner().invoke(main, ["inspect", str(path), "--aov-file", str(toml)])
    assert result.exit_code == 0, result.output
    assert "fov:     40° vertical, assumed (no --fov, no camera file)" in result.output
