"""Handedness, proved on surfaces whose camera-space normals follow from geometry alone.

A camera at the origin turned 90° about +Y looks along world -X (its -Z), with world +Y up; its
right-hand side is forward x up = (-1, 0, 0) x (0, 1, 0) = (0, 0, -1). So, in our camera frame
(+X right, +Y up, +Z towards the viewer), a wall facing it (world +X) has normal (0, 0, 1), the
floor (world +Y) has (0, 1, 0), and a wall whose normal is world -Z points right: (1, 0, 0).
"""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from renderflow.core.io.aov_profiles import get_profile
from renderflow.core.io.camera_files import CameraFileError, read_camera, read_camera_json, write_camera_json
from renderflow.core.io.cameras import (
    CameraTrack,
    from_imath,
    ray_length_factor,
    to_imath,
    unreal_world_to_camera,
)
from renderflow.core.io.exr import Layer, write_layers
from renderflow.core.io.gbuffer_io import GBufferError, read_frame

WORLD_NORMALS = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, -1]])
EXPECTED_CAMERA_NORMALS = np.array([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]])


def _turned_camera_to_world():
    turn = math.radians(90)
    matrix = np.eye(4)
    matrix[:3, :3] = [[math.cos(turn), 0, math.sin(turn)], [0, 1, 0], [-math.sin(turn), 0, math.cos(turn)]]
    matrix[:3, 3] = [4.0, 1.0, -2.0]  # translation must not matter for normals
    return matrix


def _write_three_pixels(path, normal_layer, normals, attributes, depth_layer="depth.Z"):
    layers = [
        Layer("", np.ones((1, 3, 1), np.float32), "A"),  # covered: Arnold tells the background by A
        Layer("albedo", np.full((1, 3, 3), 0.5, np.float32), "RGB"),
        Layer(normal_layer, normals.reshape(1, 3, 3).astype(np.float32), "XYZ", half=False),
        Layer("", np.array([2.0, 3.0, 4.0], np.float32).reshape(1, 3, 1), [depth_layer], half=False),
    ]
    write_layers(path, layers, attributes)


def test_turned_camera_frame_is_the_geometry_above():
    camera = _turned_camera_to_world()
    np.testing.assert_allclose(-camera[:3, 2], [-1, 0, 0], atol=1e-12)  # looks along -X
    np.testing.assert_allclose(camera[:3, 0], [0, 0, -1], atol=1e-12)  # right is -Z


@pytest.mark.parametrize("key", ["worldToCamera", "cameraToWorld"])
def test_world_normals_through_the_header_matrix(tmp_path, key):
    camera_to_world = _turned_camera_to_world()
    matrix = np.linalg.inv(camera_to_world) if key == "worldToCamera" else camera_to_world
    path = tmp_path / "world.exr"
    _write_three_pixels(path, "N", WORLD_NORMALS, {key: to_imath(matrix)})
    frame = read_frame(path, "arnold")
    np.testing.assert_allclose(frame.buffers["normal"][0], EXPECTED_CAMERA_NORMALS, atol=1e-6)


def test_renderman_camera_normals_are_left_handed(tmp_path):
    # RenderMan's camera space has +Z forward: a surface facing the camera points along -Z there.
    renderman = np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])
    path = tmp_path / "rman.exr"
    _write_three_pixels(path, "Nn", renderman, {"Software": "RenderMan"}, depth_layer="z")
    frame = read_frame(path, "renderman")
    np.testing.assert_allclose(frame.buffers["normal"][0], EXPECTED_CAMERA_NORMALS, atol=1e-6)


def test_unreal_rotator_yaw_90_looks_along_plus_y():
    # Unreal: left-handed, Z up; yaw +90 turns the view from +X to +Y and the right side to -X.
    rotation = unreal_world_to_camera(pitch=0.0, yaw=90.0, roll=0.0)
    facing_camera, floor, plus_x = rotation @ [0, -1, 0], rotation @ [0, 0, 1], rotation @ [1, 0, 0]
    np.testing.assert_allclose(facing_camera, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(floor, [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(plus_x, [-1, 0, 0], atol=1e-12)  # +X is on the camera's left


def test_unreal_pitch_up_tilts_the_floor_normal_away():
    rotation = unreal_world_to_camera(pitch=30.0, yaw=0.0, roll=0.0)
    np.testing.assert_allclose(rotation @ [0, 0, 1], [0, math.cos(math.radians(30)), -0.5], atol=1e-12)
    # Left-handed world -> right-handed camera is a reflection: orthogonal with determinant -1.
    for roll in (0.0, 35.0, 90.0):
        matrix = unreal_world_to_camera(pitch=30.0, yaw=-20.0, roll=roll)
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(matrix) == pytest.approx(-1.0)


def test_imath_layout_holds_translation_in_elements_12_to_14():
    matrix = np.eye(4)
    matrix[:3, 3] = [1, 2, 3]
    assert to_imath(matrix).ravel()[12:15].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(from_imath(to_imath(matrix)), matrix)


def test_ray_length_factor_is_one_at_the_centre_and_the_corner_ray_length():
    factor = ray_length_factor(3, 3, 90.0)
    assert factor[1, 1, 0] == pytest.approx(1.0)
    corner = math.sqrt(1 + 2 * (2 / 3) ** 2)  # pixel centres at ±2/3 of tan(45°)
    assert factor[0, 0, 0] == pytest.approx(corner)


def test_ray_distance_depth_becomes_planar_with_the_fov(tmp_path):
    planar = np.full((1, 3, 1), 5.0, np.float32)
    ray = planar * ray_length_factor(1, 3, 30.0)
    path = tmp_path / "ray.exr"
    layers = [
        Layer("", np.ones((1, 3, 1), np.float32), "A"),  # covered: Arnold tells the background by A
        Layer("albedo", np.full((1, 3, 3), 0.5, np.float32), "RGB"),
        Layer("N", np.tile([0.0, 0.0, 1.0], (1, 3, 1)).astype(np.float32), "XYZ", half=False),
        Layer("depth", ray.astype(np.float32), "Z", half=False),
    ]
    write_layers(path, layers)
    profile = replace(get_profile("canonical"), depth_kind="ray")
    np.testing.assert_allclose(read_frame(path, profile, vertical_fov_degrees=30.0).buffers["depth"], planar)
    with pytest.raises(GBufferError, match=r"ray distance.*--fov"):
        read_frame(path, profile)


def test_camera_json_round_trip_and_errors(tmp_path):
    track = CameraTrack([1001, 1002], np.stack([np.eye(4), _turned_camera_to_world()]), [40.0, 41.0])
    write_camera_json(tmp_path / "camera.json", track)
    read = read_camera_json(tmp_path / "camera.json")
    assert read.frames == [1001, 1002] and read.vertical_fov_degrees == [40.0, 41.0]
    np.testing.assert_allclose(read.camera_to_world, track.camera_to_world)
    (tmp_path / "bad.json").write_text('{"frames": [{"frame": 1}]}')
    with pytest.raises(
        ValueError, match=r"bad\.json: frames\[0\]: expected .camera_to_world. or .world_to_camera."
    ):
        read_camera_json(tmp_path / "bad.json")


def test_camera_json_with_both_matrices_and_an_fov_per_axis_reads_as_our_own_schema(tmp_path):
    """Issue #30: other tools' camera.json: both matrices (checked against each other), `fov_deg` with
    `fov_axis`, given once at the top for every frame."""
    camera = _turned_camera_to_world()
    ours = CameraTrack([1, 2], np.stack([np.eye(4), camera]), [30.0, 30.0])
    write_camera_json(tmp_path / "ours.json", ours)
    horizontal = 2 * np.degrees(np.arctan(np.tan(np.radians(15.0)) * 16 / 9))
    frames = [
        {"frame": f, "camera_to_world": m.tolist(), "world_to_camera": np.linalg.inv(m).tolist()}
        for f, m in ((1, np.eye(4)), (2, camera))
    ]
    (tmp_path / "theirs.json").write_text(
        json.dumps({"fov_deg": horizontal, "fov_axis": "x", "frames": frames})
    )
    theirs = read_camera(tmp_path / "theirs.json", [1, 2], aspect=16 / 9)
    np.testing.assert_allclose(
        theirs.camera_to_world, read_camera_json(tmp_path / "ours.json").camera_to_world
    )
    np.testing.assert_allclose(theirs.vertical_fov_degrees, [30.0, 30.0])
    frames[1]["world_to_camera"] = np.eye(4).tolist()  # no longer the inverse
    (tmp_path / "bad.json").write_text(json.dumps({"fov_deg": 30.0, "frames": frames}))
    with pytest.raises(
        ValueError, match=r"bad\.json: frames\[1\]: .camera_to_world. and .world_to_camera. are not"
    ):
        read_camera(tmp_path / "bad.json", [1, 2], aspect=16 / 9)


# -- cameras from the files a shot comes with (docs/CAMERAS.md) ---------------------------------------
ASPECT = 16 / 9


def _vertical(horizontal_degrees, aspect=ASPECT):
    return math.degrees(2 * math.atan(math.tan(math.radians(horizontal_degrees) / 2) / aspect))


@pytest.mark.parametrize(
    "entry",
    [
        {"camera_to_world": "nested"},
        {"camera_to_world": "flat"},
        {"world_to_camera": "nested"},
        {"camera_to_world": "row", "layout": "row"},
    ],
    ids=["camera_to_world", "flat-16", "world_to_camera", "row-layout"],
)
@pytest.mark.parametrize(
    "fov", ["vertical", "horizontal", "focal"], ids=["vertical_fov", "horizontal_fov", "focal_aperture"]
)
def test_camera_json_written_by_other_tools(tmp_path, entry, fov):
    """Matrices in either direction and layout, fovs in any of the three forms, extra keys ignored."""
    camera = _turned_camera_to_world()
    key = next(iter(entry))
    matrix = np.linalg.inv(camera) if key == "world_to_camera" else camera
    value = {"nested": matrix.tolist(), "flat": matrix.ravel().tolist(), "row": matrix.T.tolist()}[entry[key]]
    fov_fields = {
        "vertical": {"vertical_fov_degrees": 30.0},
        "horizontal": {"horizontal_fov_degrees": 50.0},
        "focal": {"focal_length": 35.0, "horizontal_aperture": 36.0},
    }[fov]
    data = {"frames": [{"frame": 7, key: value, **fov_fields, "lens_serial": "A-113"}]}
    if "layout" in entry:
        data["layout"] = entry["layout"]
    (tmp_path / "cam.json").write_text(json.dumps(data))
    track = read_camera(tmp_path / "cam.json", [7], ASPECT)
    np.testing.assert_allclose(track.camera_to_world[0], camera, atol=1e-12)
    expected = {
        "vertical": 30.0,
        "horizontal": _vertical(50.0),
        "focal": _vertical(2 * math.degrees(math.atan(18 / 35))),
    }
    assert track.vertical_fov_degrees[0] == pytest.approx(expected[fov])


def test_camera_json_mistakes_name_the_entry(tmp_path):
    row_layout = _turned_camera_to_world().T.tolist()  # translation in the last row, layout not said
    (tmp_path / "row.json").write_text(json.dumps({"frames": [{"frame": 1, "camera_to_world": row_layout}]}))
    with pytest.raises(CameraFileError, match=r'row\.json: frames\[0\]: .* "layout": "row"'):
        read_camera(tmp_path / "row.json", [1])
    (tmp_path / "fov.json").write_text(
        json.dumps({"camera_to_world": np.eye(4).tolist(), "horizontal_fov_degrees": 200})
    )
    with pytest.raises(CameraFileError, match=r"fov\.json: a field of view must be between 0 and 180"):
        read_camera(tmp_path / "fov.json", [1], ASPECT)


def test_a_static_camera_serves_every_frame(tmp_path):
    (tmp_path / "static.json").write_text(
        json.dumps({"camera_to_world": _turned_camera_to_world().tolist(), "vertical_fov_degrees": 35})
    )
    track = read_camera(tmp_path / "static.json", [1001, 1002, 1003])
    assert track.frames == [1001, 1002, 1003] and track.vertical_fov_degrees == [35.0] * 3


def test_nuke_chan_rotation_order_and_fov(tmp_path):
    """Nuke's default rotation order ZXY applies Z first: R = Ry · Rx · Rz."""
    (tmp_path / "cam.chan").write_text("1001 1 2 3 10 20 30 40\n1002\t1 2 3 0 90 0 41.5\n")
    track = read_camera(tmp_path / "cam.chan")
    assert track.frames == [1001, 1002] and track.vertical_fov_degrees == [40.0, 41.5]
    x, y, z = np.radians([10.0, 20.0, 30.0])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    np.testing.assert_allclose(track.camera_to_world[0, :3, :3], ry @ rx @ rz, atol=1e-12)
    np.testing.assert_allclose(track.camera_to_world[0, :3, 3], [1, 2, 3])
    # 90° about Y is the turned camera of this file's geometry
    np.testing.assert_allclose(
        track.camera_to_world[1, :3, :3], _turned_camera_to_world()[:3, :3], atol=1e-12
    )
    (tmp_path / "bad.chan").write_text("1001 1 2 3 10 20\n")
    with pytest.raises(CameraFileError, match=r"bad\.chan:1: expected 7 or 8 finite columns"):
        read_camera(tmp_path / "bad.chan")


@pytest.mark.parametrize("up_axis", ["Y", "Z"])
def test_usd_camera_sampled_at_the_shot_frames(tmp_path, up_axis):
    from pxr import Gf, Usd, UsdGeom

    path = tmp_path / "shot.usda"
    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y if up_axis == "Y" else UsdGeom.Tokens.z)
    camera = UsdGeom.Camera.Define(stage, "/World/shotCam")
    camera.GetFocalLengthAttr().Set(35.0)
    camera.GetHorizontalApertureAttr().Set(36.0)
    translate = camera.AddTranslateOp()
    rotate = camera.AddRotateYOp()
    for frame, (x, angle) in {1001: (0.0, 0.0), 1002: (2.0, 90.0)}.items():
        translate.Set(Gf.Vec3d(x, 1.0, 5.0), frame)
        rotate.Set(angle, frame)
    stage.GetRootLayer().Save()
    track = read_camera(path, [1001, 1002], ASPECT)
    assert track.vertical_fov_degrees[0] == pytest.approx(_vertical(2 * math.degrees(math.atan(18 / 35))))
    expected = _turned_camera_to_world()
    expected[:3, 3] = [2.0, 1.0, 5.0]
    if up_axis == "Z":  # a Z-up stage's world turned into our Y-up one: (x, y, z) -> (x, z, -y)
        expected = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]]) @ expected
    np.testing.assert_allclose(track.camera_to_world[1], expected, atol=1e-9)
    UsdGeom.Camera.Define(stage, "/World/witnessCam")
    stage.GetRootLayer().Save()
    with pytest.raises(CameraFileError, match=r"shot\.usda: expected one camera.*witnessCam.*--camera-prim"):
        read_camera(path, [1001], ASPECT)
    assert read_camera(path, [1001], ASPECT, prim="/World/shotCam").frames == [1001]
