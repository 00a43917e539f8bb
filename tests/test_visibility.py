"""The physics prior with visibility: lights split from the env map, screen-space shadows against
the analytic shadow of a sphere over a plane, occlusion in enclosed spaces, exposure equivariance."""

import math

import numpy as np
import pytest
import torch

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.envmap import camera_view_directions
from renderflow.core.shading import rays
from renderflow.core.shading.pixel_filter import filter_pixels
from renderflow.core.shading.visibility import (
    Marcher,
    enclosure,
    march_stride,
    shade_with_visibility,
    split_lights,
)
from renderflow.core.shot.demo_scene import (
    SPHERE_CENTRE,
    SPHERE_RADIUS,
    SUN_DIRECTION,
    orbit_camera_to_world,
    ray_cast,
    sky_radiance,
)

SIZE, FOV = 96, 40.0


def sphere_over_plane(size=SIZE):
    """The demo scene (a sphere on a plane under a sky with a sun) from one camera."""
    camera = orbit_camera_to_world(angle=0.3)
    rotation, position = camera[:3, :3], camera[:3, 3]
    albedo, normal, depth, material = ray_cast(rotation, position, size, FOV)
    env_cam = sky_radiance(camera_view_directions(size // 2, size) @ rotation.T)
    return GBuffers(albedo[None], normal[None], depth[None], material[None]), env_cam, rotation, position


def analytic_shadow(depth, rotation, position):
    """Ground pixels whose ray towards the sun meets the sphere `[H, W]`, and the ground mask."""
    size = depth.shape[0]
    points_cam = rays.pixel_rays(size, size, FOV) * np.nan_to_num(depth[..., 0], posinf=0.0)[..., None]
    points = points_cam @ rotation.T + position
    ground = np.isfinite(depth[..., 0]) & (np.abs(points[..., 1]) < 1e-3)
    to_centre = points - SPHERE_CENTRE
    b = to_centre @ SUN_DIRECTION
    c = (to_centre**2).sum(-1) - SPHERE_RADIUS**2
    hits = (b * b - c > 0) & (-b - np.sqrt(np.maximum(b * b - c, 0)) > 0)
    return hits & ground, ground


def test_a_sun_becomes_one_light_and_lights_plus_residual_are_the_map():
    _, env_cam, rotation, _ = sphere_over_plane()
    env = torch.from_numpy(env_cam)
    lights, residual = split_lights(env)
    assert len(lights) == 1
    sun_cam = SUN_DIRECTION @ rotation  # world -> camera
    assert math.degrees(math.acos(float(lights[0].direction.numpy() @ sun_cam))) < 2.0
    total = residual + sum(light.radiance for light in lights)
    torch.testing.assert_close(total, env.double(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [SIZE, 256])
def test_screen_space_shadow_of_the_sphere_matches_the_analytic_shadow(size):
    """At 256² rays start from every second pixel (`march_stride`) and the result is upsampled."""
    gbuffers, _, rotation, position = sphere_over_plane(size)
    depth = torch.from_numpy(gbuffers.depth[0, ..., 0]).double()
    stride = march_stride(size, size)
    assert stride == (1 if size == SIZE else 2)
    marcher = Marcher(depth, torch.from_numpy(gbuffers.normal[0]).double(), FOV, stride=stride)
    (visible,) = marcher.upsample(marcher.visibility(torch.from_numpy(SUN_DIRECTION @ rotation)))
    visible = visible.numpy()
    truth, ground = analytic_shadow(gbuffers.depth[0], rotation, position)
    found = (visible < 0.5) & ground
    assert truth.sum() > 100  # the shadow is in view
    iou = (found & truth).sum() / (found | truth).sum()
    assert iou >= 0.8, iou


def test_the_shaded_source_is_dark_in_the_shadow_and_follows_the_env_map_exactly():
    gbuffers, env_cam, rotation, position = sphere_over_plane()
    shaded = shade_with_visibility(gbuffers, env_cam, FOV)[0]
    truth, ground = analytic_shadow(gbuffers.depth[0], rotation, position)
    luminance = shaded @ np.array([0.2126, 0.7152, 0.0722])
    dark_squares = gbuffers.albedo[0, ..., 0] < 0.3
    inside = luminance[truth & dark_squares].mean()
    outside = luminance[ground & ~truth & dark_squares].mean()
    assert inside < 0.75 * outside  # the sun's share is gone where the sphere blocks it
    brighter = shade_with_visibility(gbuffers, env_cam * np.float32(37.0), FOV)[0]
    np.testing.assert_allclose(brighter, shaded * 37.0, rtol=1e-5, atol=1e-6)


def token_grid(depth, amplitude=0.1, period=8):
    """Depth `[H, W, 1]` with the bumps of a decomposition's token grid: ± `amplitude` of itself."""
    rows, cols = np.meshgrid(*(np.arange(n) for n in depth.shape[:2]), indexing="ij")
    bumps = np.cos(2 * np.pi * rows / period) * np.cos(2 * np.pi * cols / period)
    return (depth * (1 + amplitude * bumps[..., None])).astype(np.float32)


def test_a_blurred_visibility_drops_the_dots_a_token_grid_makes_and_keeps_the_spheres_shadow():
    """A decomposed depth's token grid makes the rays find occluders in every token (dots); with
    `visibility_blur` they are averaged away, while the sphere's shadow and the flat ground's
    shading stay, and the shading still follows the env map exactly."""
    gbuffers, env_cam, rotation, position = sphere_over_plane()
    bumpy = GBuffers(gbuffers.albedo, gbuffers.normal, token_grid(gbuffers.depth[0])[None], gbuffers.material)
    truth, ground = analytic_shadow(gbuffers.depth[0], rotation, position)
    luminance = np.array([0.2126, 0.7152, 0.0722])
    dark_squares = gbuffers.albedo[0, ..., 0] < 0.3  # the checker's dark squares: one albedo
    shadow, lit = truth & dark_squares, ground & ~truth & dark_squares

    def dots(blur):  # the fine pattern the bumps add on the ground, relative to its shading
        smooth = shade_with_visibility(gbuffers, env_cam, FOV, blur)[0] @ luminance
        rough = shade_with_visibility(bumpy, env_cam, FOV, blur)[0] @ luminance
        added = (rough - smooth).astype(np.float32)
        fine = added - filter_pixels(added[None, ..., None], 4.0)[0, ..., 0]
        return np.abs(fine)[ground].mean() / smooth[ground].mean(), smooth

    sharp_dots, sharp = dots(0.0)
    blurred_dots, blurred = dots(4.0)
    assert sharp_dots > 0.03  # the grid is seen as occluders ...
    assert blurred_dots < 0.25 * sharp_dots  # ... and averaged away
    darkening = [1 - image[shadow].mean() / image[lit].mean() for image in (sharp, blurred)]
    assert darkening[1] > 0.4 * darkening[0] > 0.15  # the sphere still casts its shadow, softer
    assert abs(blurred[lit].mean() / sharp[lit].mean() - 1) < 0.02  # no light added or lost
    brighter = shade_with_visibility(bumpy, env_cam * np.float32(37.0), FOV, 4.0)
    expected = shade_with_visibility(bumpy, env_cam, FOV, 4.0) * 37.0
    np.testing.assert_allclose(brighter, expected, rtol=1e-5, atol=1e-6)


def test_a_tiny_suns_glint_on_a_mirror_like_sphere_is_spread_over_its_pixel_not_lost_or_blown_out():
    """The lights' specular is the GGX BRDF evaluated towards each light over the pixel's footprint:
    a one-texel sun on a sphere of roughness 0.02 makes a glint far narrower than a pixel, which a
    BRDF sampled at pixel centres would miss. It shows on the pixel whose view ray mirrors onto the
    sun, and stays below the sun's own radiance."""
    gbuffers, env_cam, rotation, position = sphere_over_plane()
    _, ground = analytic_shadow(gbuffers.depth[0], rotation, position)
    sphere = np.isfinite(gbuffers.depth[0, ..., 0]) & ~ground
    material = gbuffers.material.copy()
    material[0][sphere] = [0.02, 1.0, 0.5]  # roughness, metallic, specular
    mirror_like = GBuffers(gbuffers.albedo, gbuffers.normal, gbuffers.depth, material)
    tiny_sun = np.minimum(env_cam, 2.0)  # the sky without its sun lobe ...
    row, column = np.unravel_index(np.argmax(env_cam.sum(-1)), env_cam.shape[:2])
    tiny_sun[row, column] = 2000.0  # ... and a sun of one texel where the lobe peaked
    shaded = shade_with_visibility(mirror_like, tiny_sun, FOV)[0]
    luminance = shaded @ np.array([0.2126, 0.7152, 0.0722])
    y, x = np.unravel_index(np.argmax(np.where(sphere, luminance, -1.0)), luminance.shape)
    assert luminance[y, x] > 50 * np.median(luminance[sphere])
    assert luminance[y, x] <= tiny_sun.max()
    view, normal = rays.view_rays(SIZE, SIZE, FOV)[y, x], mirror_like.normal[0, y, x]
    mirrored = view - 2 * (view @ normal) * normal
    sun = camera_view_directions(*tiny_sun.shape[:2])[row, column]
    assert math.degrees(math.acos(float(np.clip(mirrored @ sun, -1, 1)))) < 3.0


def room(size: int = 64):
    """A camera inside a closed box (4 × 3 × 4), near one wall, looking at the other with a 90° lens
    (floor, ceiling, side walls and the far wall in view): G-buffers."""
    half, eye = np.array([2.0, 1.5, 2.0]), np.array([0.0, 0.0, 1.6])
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(coords, -coords)  # tan(45°) = 1
    direction = np.stack([x, y, -np.ones_like(x)], axis=-1)  # planar: z = -1
    with np.errstate(divide="ignore", invalid="ignore"):
        distances = np.where(direction > 0, half - eye, -half - eye) / direction
    distances = np.where(np.isfinite(distances) & (distances > 0), distances, np.inf)
    axis = np.argmin(distances, axis=-1)
    depth = np.min(distances, axis=-1)[..., None]
    normal = np.zeros_like(direction)
    np.put_along_axis(
        normal, axis[..., None], -np.sign(np.take_along_axis(direction, axis[..., None], -1)), -1
    )
    albedo = np.full_like(direction, 0.6)
    material = np.broadcast_to(np.array([0.8, 0.0, 0.5]), direction.shape)
    return GBuffers(*(np.asarray(b, np.float32)[None] for b in (albedo, normal, depth, material)))


def test_a_closed_room_does_not_receive_the_open_sky_and_an_open_floor_does():
    gbuffers = room()
    assert enclosure(gbuffers) == 1.0
    depth = torch.from_numpy(gbuffers.depth[0, ..., 0]).double()
    normal = torch.from_numpy(gbuffers.normal[0]).double()
    occlusion, _ = Marcher(depth, normal, 90.0, enclosure(gbuffers)).occlusion(normal)
    assert float(occlusion.mean()) < 0.5  # an open plane sees the whole sky: 1
    sky = np.ones((32, 64, 3), np.float32)
    inside = shade_with_visibility(gbuffers, sky, 90.0)
    assert inside.mean() < 0.5 * 0.6  # a white sky of 1 lights an open 0.6 wall to about 0.6
    floor = GBuffers(
        *(b[:, 54:, 16:48] for b in (gbuffers.albedo, gbuffers.normal, gbuffers.depth, gbuffers.material))
    )
    assert enclosure(floor) == 0.0  # the floor alone, seen from above: no evidence of walls


def test_a_flat_wall_lit_by_its_room_shows_no_stipple():
    """The few dithered bounce rays per pixel are averaged over pixels of similar depth: the far wall
    of a closed room, lit only by what its walls bounce, is smooth (unaveraged it varies by a third
    of its brightness from pixel to pixel)."""
    gbuffers = room()
    shaded = shade_with_visibility(gbuffers, np.ones((32, 64, 3), np.float32), 90.0)[0]
    luminance = shaded @ np.array([0.2126, 0.7152, 0.0722])
    padded = np.pad(luminance, 1, mode="edge")
    local_mean = sum(padded[i : i + 64, j : j + 64] for i in range(3) for j in range(3)) / 9
    far_wall = gbuffers.normal[0, ..., 2] > 0.5
    interior = (
        far_wall[2:-2, 2:-2]
        & far_wall[:-4, 2:-2]
        & far_wall[4:, 2:-2]
        & far_wall[2:-2, :-4]
        & far_wall[2:-2, 4:]
    )
    far_wall = np.pad(interior, 2)  # two pixels away from its edges
    assert far_wall.sum() > 500
    stipple = np.abs(luminance - local_mean)[far_wall].mean() / luminance[far_wall].mean()
    assert stipple < 0.1, stipple


@pytest.mark.parametrize("k", [0.01, 1000.0])
def test_without_geometry_the_frame_shows_the_env_map(k):
    empty = GBuffers(
        np.zeros((1, 16, 16, 3), np.float32),
        np.zeros((1, 16, 16, 3), np.float32),
        np.full((1, 16, 16, 1), np.inf, np.float32),
        np.zeros((1, 16, 16, 3), np.float32),
    )
    env = np.random.default_rng(0).random((8, 16, 3)).astype(np.float32) * k
    out = shade_with_visibility(empty, env, 40.0)
    assert np.isfinite(out).all() and out.max() <= env.max() * (1 + 1e-5)


def test_upsampling_keeps_grid_pixels_and_does_not_cross_a_silhouette():
    """Each pixel takes the value of the grid pixel nearest in depth among the four around it."""
    depth = torch.full((6, 6), 10.0, dtype=torch.float64)
    depth[:, 3:] = 2.0  # a near object from column 3 on
    depth[0, 0] = math.inf  # background
    marcher = Marcher(depth, torch.tensor([0.0, 0.0, 1.0]).expand(6, 6, 3).double(), FOV, stride=2)
    grid = torch.arange(9, dtype=torch.float64).reshape(3, 3)  # grid pixels at rows/columns 0, 2, 4
    (full,) = marcher.upsample(grid)
    assert full[2, 2] == grid[1, 1] and full[4, 4] == grid[2, 2]  # grid pixels keep their own value
    assert full[1, 3] == grid[0, 2] and full[3, 3] == grid[1, 2]  # column 3 is near: from column 4
    assert full[3, 1] in (grid[1, 0], grid[1, 1], grid[2, 0], grid[2, 1])  # far: from the far side
    assert full[1, 1] in (grid[0, 1], grid[1, 0], grid[1, 1])  # not the background's
