"""Keyframe reprojection by depth and cameras, on the ray-cast demo scene (a sphere on a ground disk)."""

import numpy as np
import pytest

from renderflow.core.shading.rays import pixel_rays
from renderflow.core.shading.reprojection import reproject, reproject_keyframes
from renderflow.core.shot.demo_scene import SPHERE_CENTRE, SPHERE_RADIUS, orbit_camera_to_world, ray_cast

SIZE, FOV = 64, 40.0
LIGHT = np.array([0.3, 0.9, 0.3]) / np.linalg.norm([0.3, 0.9, 0.3])


def _frame(angle: float):
    """Depth, camera and a Lambertian radiance (view-independent, so reprojection is exact)."""
    camera = orbit_camera_to_world(angle)
    _, normal_cam, depth, _ = ray_cast(camera[:3, :3], camera[:3, 3], SIZE, FOV)
    normal_world = normal_cam @ camera[:3, :3].T
    radiance = (0.2 + 0.8 * np.clip(normal_world @ LIGHT, 0, 1))[..., None] * np.array([1.0, 0.8, 0.6])
    radiance = np.where(np.isfinite(depth), radiance, 0.0).astype(np.float32)
    return depth, camera, radiance


def _world_points(depth: np.ndarray, camera: np.ndarray) -> np.ndarray:
    points_cam = pixel_rays(SIZE, SIZE, FOV) * np.nan_to_num(depth, posinf=1.0)
    return points_cam @ camera[:3, :3].T + camera[:3, 3]


def _hidden_by_sphere(origin: np.ndarray, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Whether the segment origin -> point crosses the sphere before reaching the point, through a
    chord longer than `margin` (analytic; a margin leaves out points hidden by a grazing ray)."""
    direction = points - origin
    oc = origin - SPHERE_CENTRE
    a = (direction**2).sum(-1)
    b = 2 * direction @ oc
    disc = b**2 - 4 * a * (oc @ oc - SPHERE_RADIUS**2)
    s = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    chord = np.sqrt(np.maximum(disc, 0)) / a * np.sqrt(a)
    return (disc > 0) & (s > 1e-3) & (s < 1 - 1e-3) & (chord > margin)


def test_a_keyframe_reprojected_into_its_own_frame_is_itself():
    depth, camera, radiance = _frame(0.0)
    image, valid = reproject(depth, camera, radiance, depth, camera, FOV)
    geometry = np.isfinite(depth)
    assert np.array_equal(valid > 0, geometry)
    np.testing.assert_allclose(image[geometry[..., 0]], radiance[geometry[..., 0]], atol=1e-5)


def test_a_moving_camera_sees_the_keyframe_radiance_where_valid_and_disocclusions_are_invalid():
    key_depth, key_camera, key_radiance = _frame(0.0)
    depth, camera, truth = _frame(0.45)  # the camera orbits 26° around the sphere
    image, valid = reproject(depth, camera, key_radiance, key_depth, key_camera, FOV)
    valid = valid[..., 0] > 0
    geometry = np.isfinite(depth[..., 0])

    error = np.abs(image - truth).max(axis=-1)[valid]
    assert valid.sum() > 0.5 * geometry.sum()
    assert error.mean() < 0.01 and np.percentile(error, 98) < 0.1

    # the ground behind the sphere as the keyframe saw it: hidden there, so it must be invalid; but
    # for points hidden within about a pixel of the sphere's silhouette (a chord under 0.8 of the
    # unit sphere, ~17 px in radius here), which the keyframe pixel beside the silhouette still sees
    points = _world_points(depth, camera)
    hidden = geometry & _hidden_by_sphere(key_camera[:3, 3], points, margin=0.8)
    assert hidden.sum() > 20
    assert not (valid & hidden).any()
    barely_hidden = geometry & _hidden_by_sphere(key_camera[:3, 3], points)
    assert (valid & barely_hidden).sum() <= 0.1 * barely_hidden.sum()
    assert not valid[~geometry].any()  # background is never valid


def test_the_two_nearest_keyframes_that_see_a_pixel_blend_by_their_distance_in_frames():
    depths, cameras, images = zip(*(_frame(angle) for angle in (0.0, 0.1, 0.2, 0.3)), strict=True)
    depth, cameras = np.stack(depths), np.stack(cameras)
    marked = {0: np.full_like(images[0], 1.0), 3: np.full_like(images[3], 2.0)}
    out = reproject_keyframes(depth, cameras, FOV, marked)
    assert out.shape == (4, SIZE, SIZE, 4)
    for frame, expected in ((0, 1.0), (3, 2.0)):  # each keyframe's own frame takes its own pixels alone
        seen = out[frame, ..., 3] > 0
        np.testing.assert_allclose(out[frame, ..., 0][seen], expected)
    # frame 1 is 1 frame from keyframe 0 and 2 from keyframe 3: weights 1 and 1/2 where both see it
    seen_by = {
        key: reproject(depth[1], cameras[1], marked[key], depth[key], cameras[key], FOV)[1][..., 0] > 0
        for key in marked
    }
    both = seen_by[0] & seen_by[3]
    assert both.sum() > 0.5 * np.isfinite(depth[1, ..., 0]).sum()
    np.testing.assert_allclose(out[1, ..., 0][both], (1.0 + 0.5 * 2.0) / 1.5, rtol=1e-6)
    only = seen_by[3] & ~seen_by[0]  # what keyframe 0 cannot see comes from keyframe 3 alone
    np.testing.assert_allclose(out[1, ..., 0][only], 2.0)
    np.testing.assert_array_equal(out[1, ..., 3] > 0, seen_by[0] | seen_by[3])
    # blended=1: the plain reprojection, the nearest keyframe that sees a pixel wins
    nearest = reproject_keyframes(depth, cameras, FOV, marked, blended=1)
    np.testing.assert_allclose(nearest[1, ..., 0][seen_by[0]], 1.0)
    np.testing.assert_allclose(nearest[1, ..., 0][only], 2.0)


@pytest.mark.parametrize("angle", [0.0, 0.3])
def test_pixel_rays_meet_the_ray_cast_depth(angle):
    depth, camera, _ = _frame(angle)
    points = _world_points(depth, camera)
    on_sphere = np.abs(np.linalg.norm(points - SPHERE_CENTRE, axis=-1) - SPHERE_RADIUS) < 1e-4
    on_ground = np.abs(points[..., 1]) < 1e-4
    assert (on_sphere | on_ground)[np.isfinite(depth[..., 0])].all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d, c, f, k: (d[..., 0], c, f, k), r"depth: expected \[N, H, W, 1\]"),
        (lambda d, c, f, k: (d, c[:1], f, k), r"cameras: expected 2 finite 4x4 matrices"),
        (lambda d, c, f, k: (d, c * np.nan, f, k), r"cameras: expected 2 finite"),
        (
            lambda d, c, f, k: (d, c, float("nan"), k),
            r"field of view: expected degrees in \(0, 180\), got nan",
        ),
        (lambda d, c, f, k: (d, c, f, {5: k[0]}), r"keyframe at sequence index 5: outside the 2 frames"),
        (
            lambda d, c, f, k: (d, c, f, {0: k[0][:8]}),
            r"keyframe at sequence index 0: expected \[64, 64, C\]",
        ),
        (lambda d, c, f, k: (d, c, f, {0: k[0] + np.inf}), r"keyframe at sequence index 0: holds NaN"),
        (lambda d, c, f, k: (d, c, f, {}), r"keyframes: none given"),
    ],
)
def test_reprojection_refuses_bad_inputs_by_name(change, message):
    frames = [_frame(angle) for angle in (0.0, 0.2)]
    depth = np.stack([frame[0] for frame in frames])
    cameras = np.stack([frame[1] for frame in frames])
    keyframes = {0: frames[0][2]}
    with pytest.raises(ValueError, match=message):
        reproject_keyframes(*change(depth, cameras, FOV, keyframes))
