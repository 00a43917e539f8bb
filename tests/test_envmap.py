"""Env maps: the lat-long mapping of ARCHITECTURE §2, orientation, and re-projection into the camera.

The analytic map is a single bright lobe around a world direction L. Re-projected into a camera
with camera-to-world rotation R, the lobe must peak at the camera-view pixel whose direction is
Rᵀ·L, which `camera_view_directions` defines independently of the lookup being tested.
"""

import math

import numpy as np
import pytest

from renderflow.core.io.envmap import (
    EnvMapError,
    EnvTransform,
    camera_view_directions,
    camera_view_envmap,
    camera_view_envmaps,
    direction_to_uv,
    latlong_directions,
    read_envmap,
)
from renderflow.core.io.exr import write_exr
from renderflow.core.shot.demo_scene import orbit_camera_to_world

OUT_HEIGHT, OUT_WIDTH = 32, 64


def _lobe_map(direction, height=128, width=256, sharpness=400.0):
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    cosine = latlong_directions(height, width) @ direction
    return np.repeat(np.exp(sharpness * (cosine - 1.0))[..., None], 3, axis=-1).astype(np.float32) * 100


def _rotation(yaw_degrees, pitch_degrees, roll_degrees=0.0):
    yaw, pitch, roll = (math.radians(a) for a in (yaw_degrees, pitch_degrees, roll_degrees))
    about_y = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    about_x = np.array(
        [[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]]
    )
    about_z = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    return about_y @ about_x @ about_z


def _peak_direction(camera_view):
    row, column = np.unravel_index(np.argmax(camera_view[..., 0]), camera_view.shape[:2])
    return camera_view_directions(*camera_view.shape[:2])[row, column]


def _angle_degrees(a, b):
    return math.degrees(math.acos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


PIXEL_DEGREES = 360.0 / OUT_WIDTH


def test_latlong_mapping_matches_the_architecture():
    # Pixel centres: 3x5 puts one at (u, v) = (0.5, 0.5); 3x6 puts one at u = 0.25.
    np.testing.assert_allclose(latlong_directions(3, 5)[1, 2], [0, 0, 1], atol=1e-12)  # centre faces +Z
    np.testing.assert_allclose(latlong_directions(3, 6)[1, 1], [1, 0, 0], atol=1e-12)  # a quarter in: +X
    top = math.radians(60)  # the top row's centre, v = 1/6, is 60° above the horizon
    np.testing.assert_allclose(latlong_directions(3, 5)[0, 2], [0, math.sin(top), math.cos(top)], atol=1e-12)
    u, v = direction_to_uv(np.array([1.0, 0.0, 0.0]))
    assert (float(u), float(v)) == pytest.approx((0.25, 0.5))
    assert float(direction_to_uv(np.array([0.0, 0.0, -1.0]))[0]) % 1.0 == pytest.approx(0.0)  # -Z at the seam


def test_camera_view_map_of_an_unrotated_camera_shows_minus_z_at_its_centre():
    view = camera_view_envmap(_lobe_map([0, 0, -1]), np.eye(3), OUT_HEIGHT, OUT_WIDTH)
    row, column = np.unravel_index(np.argmax(view[..., 0]), view.shape[:2])
    assert (row, column) in {(15, 31), (15, 32), (16, 31), (16, 32)}


@pytest.mark.parametrize(
    ("lobe", "yaw", "pitch", "roll"),
    [
        ([0, 0, -1], 0, 0, 0),
        ([1, 0.3, 0], 40, 10, 0),
        ([0.2, 1, 0.5], -120, -35, 0),
        ([-1, -0.4, 2], 75, 20, 30),
    ],
)
def test_a_bright_lobe_lands_where_the_camera_sees_it(lobe, yaw, pitch, roll):
    rotation = _rotation(yaw, pitch, roll)
    view = camera_view_envmap(_lobe_map(lobe), rotation, OUT_HEIGHT, OUT_WIDTH)
    expected_camera_direction = rotation.T @ (np.array(lobe) / np.linalg.norm(lobe))
    assert _angle_degrees(_peak_direction(view), expected_camera_direction) < PIXEL_DEGREES


def test_yaw_turns_the_environment_about_up():
    view = camera_view_envmap(
        _lobe_map([0, 0, 1]), np.eye(3), OUT_HEIGHT, OUT_WIDTH, EnvTransform(yaw_degrees=90)
    )
    assert _angle_degrees(_peak_direction(view), [1, 0, 0]) < PIXEL_DEGREES  # +Z content now faces +X


def test_flip_mirrors_left_and_right():
    view = camera_view_envmap(
        _lobe_map([1, 0, -1]), np.eye(3), OUT_HEIGHT, OUT_WIDTH, EnvTransform(flip=True)
    )
    assert _angle_degrees(_peak_direction(view), [-1, 0, -1]) < PIXEL_DEGREES


def test_exposure_scales_radiance_by_powers_of_two():
    envmap = _lobe_map([0, 1, 0]) + 0.5
    plain = camera_view_envmap(envmap, np.eye(3), OUT_HEIGHT, OUT_WIDTH)
    brighter = camera_view_envmap(envmap, np.eye(3), OUT_HEIGHT, OUT_WIDTH, EnvTransform(exposure_stops=1.5))
    np.testing.assert_allclose(brighter, plain * 2**1.5, rtol=1e-6)


def test_per_frame_cameras_give_one_map_per_frame():
    cameras = np.stack([orbit_camera_to_world(angle) for angle in (0.0, 0.5, 1.0)])
    views = camera_view_envmaps(_lobe_map([0, 1, 0]), cameras, OUT_HEIGHT, OUT_WIDTH)
    assert views.shape == (3, OUT_HEIGHT, OUT_WIDTH, 3)
    for view, camera in zip(views, cameras, strict=True):
        assert _angle_degrees(_peak_direction(view), camera[:3, :3].T @ [0, 1, 0]) < PIXEL_DEGREES


def test_a_constant_map_stays_constant_and_a_sun_survives_downsampling():
    constant = np.full((64, 128, 3), 2.0, np.float32)
    np.testing.assert_allclose(camera_view_envmap(constant, _rotation(30, 20), 16, 32), 2.0, rtol=1e-6)
    sun = np.zeros((512, 1024, 3), np.float32)
    sun[100:102, 300:302] = 1e4  # 4 texels: a point lookup would usually miss it
    energy = camera_view_envmap(sun, np.eye(3), 16, 32).sum()
    assert energy > 0


@pytest.mark.parametrize("suffix", [".exr", ".hdr"])
def test_env_maps_load_from_exr_and_radiance_hdr(tmp_path, suffix):
    envmap = _lobe_map([0, 1, 0], 16, 32) + 0.25
    path = tmp_path / f"sky{suffix}"
    write_exr(path, envmap, ["R", "G", "B"], half=False)
    np.testing.assert_allclose(read_envmap(path), envmap, rtol=1e-2)  # .hdr is RGBE: ~1 % precision


def test_bad_env_maps_are_errors_naming_the_file(tmp_path):
    write_exr(tmp_path / "square.exr", np.ones((16, 16, 3), np.float32), ["R", "G", "B"])
    with pytest.raises(EnvMapError, match=r"square\.exr: 16x16 is not a 2:1 lat-long"):
        read_envmap(tmp_path / "square.exr")
    nan = np.ones((16, 32, 3), np.float32)
    nan[2, 3, 0] = np.nan
    write_exr(tmp_path / "nan.exr", nan, ["R", "G", "B"])
    with pytest.raises(EnvMapError, match=r"nan\.exr: 1 env-map pixels are NaN or inf"):
        read_envmap(tmp_path / "nan.exr")
    write_exr(tmp_path / "grey.exr", np.ones((16, 32, 1), np.float32), ["Y"])
    with pytest.raises(EnvMapError, match=r"grey\.exr: an env map needs R, G, B"):
        read_envmap(tmp_path / "grey.exr")


def test_an_8_bit_env_map_is_decoded_from_srgb_and_8_bit_g_buffers_are_refused(tmp_path, caplog):
    """Issue #30: JPEG/PNG inputs are display-referred: decoded with a warning, or refused where they
    cannot be right."""
    from renderflow.core.io.exr import write_png
    from renderflow.core.io.gbuffer_io import GBufferError, read_frame

    write_png(tmp_path / "sky.png", np.full((8, 16, 3), 0.5, np.float32))
    env = read_envmap(tmp_path / "sky.png")
    np.testing.assert_allclose(env, 0.2140, atol=2e-3)  # sRGB 0.5 (128/255) as linear
    assert "8/16-bit image, read as sRGB" in caplog.text
    with pytest.raises(GBufferError, match=r"sky\.png: an 8/16-bit image cannot hold G-buffers"):
        read_frame(tmp_path / "sky.png")
