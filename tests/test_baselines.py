"""The IBL and Deferred baselines against analytic cases: white furnace, mirror reflection, sun lobe."""

import math

import numpy as np
import pytest

from renderflow.core.io.buffers import GBuffers
from renderflow.core.shading.deferred import (
    camera_view_directions,
    render_baseline,
    sh_irradiance,
    solid_angles,
    view_rays,
)

FOV = 40.0


def sphere(size: int, roughness: float, metallic: float, albedo: float = 1.0, specular: float = 0.5):
    """G-buffers of a unit sphere 4 units in front of the camera, computed here by ray casting."""
    rays = view_rays(size, size, FOV).numpy()
    centre = np.array([0.0, 0.0, -4.0])
    b = rays @ centre
    disc = b * b - (centre @ centre - 1.0)
    distance = np.where(disc > 0, b - np.sqrt(np.maximum(disc, 0.0)), np.inf)
    hit = np.isfinite(distance)
    point = rays * np.where(hit, distance, 0.0)[..., None]
    normal = np.where(hit[..., None], point - centre, [0.0, 0.0, 1.0])
    depth = np.where(hit, -point[..., 2], np.inf)[..., None]
    material = np.broadcast_to([roughness, metallic, specular], (size, size, 3))

    def frame(array):
        return np.asarray(array, dtype=np.float32)[None]

    gbuffers = GBuffers(frame(np.full((size, size, 3), albedo)), frame(normal), frame(depth), frame(material))
    return gbuffers, hit, rays, normal


def test_solid_angles_cover_the_sphere():
    assert float(solid_angles(16, 32).sum() * 32) == pytest.approx(4 * math.pi, rel=1e-12)


@pytest.mark.parametrize("roughness", [0.2, 1.0])
def test_white_furnace(roughness):
    """A white Lambertian sphere under a uniform env map of radiance L shades to L (IBL; the
    Deferred shading under a furnace is checked against the path tracer in test_principled_albedo)."""
    gbuffers, hit, _, _ = sphere(32, roughness, metallic=0.0)
    radiance = 2.5
    beauty = render_baseline("ibl", gbuffers, np.full((16, 32, 3), radiance, np.float32), FOV)[0]
    np.testing.assert_allclose(beauty[hit], radiance, rtol=5e-3)
    np.testing.assert_allclose(beauty[~hit], radiance, rtol=1e-6)  # background: the env map itself


def test_irradiance_of_a_half_lit_sky():
    """Sky of radiance 1 above the horizon only: E(up) = π, E(down) ≈ 0, E(sideways) = π/2."""
    directions = camera_view_directions(64, 128)
    envmap = (directions[..., 1:2] > 0).float().expand(64, 128, 3)[None].numpy()
    import torch

    normals = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])[None]
    irradiance = sh_irradiance(torch.from_numpy(envmap), normals)[0, :, 0].numpy()
    # order-2 SH of a step function rings a little: Ramamoorthi and Hanrahan's error bound is ~9 %
    np.testing.assert_allclose(irradiance, [math.pi, 0.0, math.pi / 2], atol=0.1 * math.pi)


def test_mirror_sphere_reflects_the_env_map_along_the_reflection():
    """Roughness 0, metallic 1, white: the pixel shows L(r), r = reflect(view, n)."""
    directions = camera_view_directions(64, 128).numpy()
    tint = np.array([1.0, 0.5, 0.25])

    def radiance(d):
        return (1.0 + 0.8 * d[..., 0:1] + 0.5 * d[..., 1:2]) * tint

    gbuffers, hit, rays, normal = sphere(48, roughness=0.0, metallic=1.0)
    beauty = render_baseline("deferred", gbuffers, radiance(directions).astype(np.float32), FOV)[0]
    reflected = rays - 2 * (rays * normal).sum(-1, keepdims=True) * normal
    np.testing.assert_allclose(beauty[hit], radiance(reflected)[hit], rtol=1.5e-2)


def test_mirror_sphere_shows_the_sun_where_the_maths_says():
    """A small sun: the brightest sphere pixel is the one whose normal halves the view and sun directions."""
    directions = camera_view_directions(64, 128).numpy()
    sun = np.array([0.4, 0.5, 0.3])
    sun /= np.linalg.norm(sun)
    envmap = np.full((64, 128, 3), 0.05, np.float32)
    envmap[(directions @ sun) > math.cos(math.radians(4))] = 50.0
    gbuffers, hit, rays, normal = sphere(64, roughness=0.0, metallic=1.0)
    beauty = render_baseline("deferred", gbuffers, envmap, FOV)[0].mean(-1)
    brightest = np.unravel_index(np.argmax(np.where(hit, beauty, -1.0)), beauty.shape)
    half_vector = -rays[brightest] + sun
    half_vector /= np.linalg.norm(half_vector)
    assert math.degrees(math.acos(np.clip(half_vector @ normal[brightest], -1, 1))) < 3.0
    # rougher spheres spread the same sun over more pixels, more dimly
    rough, _, _, _ = sphere(64, roughness=0.5, metallic=1.0)
    rough_beauty = render_baseline("deferred", rough, envmap, FOV)[0].mean(-1)
    peak, rough_peak = beauty[hit].max(), rough_beauty[hit].max()
    assert rough_peak < 0.1 * peak
    assert (rough_beauty[hit] > 0.5 * rough_peak).sum() > 10 * (beauty[hit] > 0.5 * peak).sum()


def test_ibl_is_albedo_times_irradiance():
    gbuffers, hit, _, _ = sphere(24, 0.5, 0.0, albedo=0.5)
    envmap = np.full((16, 32, 3), 2.0, np.float32)
    beauty = render_baseline("ibl", gbuffers, envmap, FOV)[0]
    np.testing.assert_allclose(beauty[hit], 1.0, rtol=5e-3)


def test_bad_inputs_are_named():
    gbuffers, _, _, _ = sphere(16, 0.5, 0.0)
    with pytest.raises(ValueError, match="unknown baseline 'pbr'"):
        render_baseline("pbr", gbuffers, np.ones((8, 16, 3), np.float32), FOV)
    with pytest.raises(ValueError, match="env map"):
        render_baseline("ibl", gbuffers, np.ones((2, 8, 16, 3), np.float32), FOV)
