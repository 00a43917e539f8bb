"""Exposure-normalised lighting, HDR env brackets and the shaded bridge source."""

import numpy as np
import pytest
import torch
from conftest import make_gbuffers, randomise, tiny_v2_pipeline

from renderflow.core.io.envmap import latlong_directions
from renderflow.core.model import encodings as enc
from renderflow.core.model.configs import V2_LIGHTING
from renderflow.core.shading.deferred import shaded_source_model
from renderflow.core.shading.lighting import (
    LightingConfig,
    env_brackets_to_model,
    image_exposure_scale,
    light_scale,
    normalised_envmap,
)

FOV = 40.0


def _sky_with_sun(sun_radiance: float, height: int = 16) -> np.ndarray:
    """A camera-view sky of about 1 with a sun disk of `sun_radiance`, `[He, We, 3]`."""
    directions = latlong_directions(height, 2 * height)
    sky = np.where(directions[..., 1:2] > 0, [0.4, 0.6, 1.0], [0.2, 0.18, 0.15])
    sun = np.array([0.3, 0.8, -0.5]) / np.linalg.norm([0.3, 0.8, -0.5])
    disk = (directions @ sun > np.cos(np.radians(8)))[..., None]
    return (sky + disk * sun_radiance).astype(np.float32)


def _random_pipeline(bridge_source: str = "albedo"):
    pipeline = tiny_v2_pipeline(bridge_source=bridge_source, reprojection=False)
    randomise(pipeline.transformer)
    return pipeline


def test_light_scale_is_the_mean_luminance_over_the_sphere_and_linear():
    uniform = np.full((16, 32, 3), 2.0, np.float32)
    assert light_scale(uniform) == pytest.approx(2.0, rel=1e-6)
    env = _sky_with_sun(500.0)
    assert light_scale(7.0 * env) == pytest.approx(7.0 * light_scale(env), rel=1e-6)
    upper_half = np.where(latlong_directions(16, 32)[..., 1:2] > 0, 1.0, 0.0).astype(np.float32) * np.ones(3)
    assert light_scale(upper_half) == pytest.approx(0.5, rel=1e-6)  # half the sphere's solid angle


def test_a_black_env_map_is_a_clear_error():
    with pytest.raises(ValueError, match=r"env map is black"):
        light_scale(np.zeros((8, 16, 3), np.float32))


@pytest.mark.parametrize("bridge_source", ["albedo", "shaded"])
def test_scaling_the_env_map_by_k_scales_the_beauty_by_k(bridge_source):
    pipeline = _random_pipeline(bridge_source)
    gbuffers, env = make_gbuffers(frames=3), _sky_with_sun(300.0)
    beauty = pipeline.render(gbuffers, env, vertical_fov_degrees=FOV)
    for k in (0.01, 16.0, 1000.0):
        scaled = pipeline.render(gbuffers, k * env, vertical_fov_degrees=FOV)
        np.testing.assert_allclose(scaled, k * beauty, rtol=1e-4, atol=1e-6 * k)
    exposed = pipeline.render(gbuffers, env, exposure_stops=2.0, vertical_fov_degrees=FOV)
    np.testing.assert_allclose(exposed, 4.0 * beauty, rtol=1e-4, atol=1e-6)


def test_a_four_times_brighter_sun_changes_the_env_encoding_and_the_render():
    dim, bright = _sky_with_sun(1000.0), _sky_with_sun(4000.0)
    encodings = [
        env_brackets_to_model(normalised_envmap(env, V2_LIGHTING)[0], V2_LIGHTING.env_brackets, 1, 16, 32)[
            :, 0
        ]
        for env in (dim, bright)
    ]  # [brackets, H, W, 3] each
    sun = enc.envmap_to_model(dim)[..., 0] > 0.99  # where Reinhard at 0 stops is white
    assert sun.any()
    # at 0 stops the sun is white for both; the sky, relative to the light scale, is not
    np.testing.assert_allclose(encodings[0][0][sun], encodings[1][0][sun], atol=0.01)
    assert np.abs(encodings[0][0][~sun] - encodings[1][0][~sun]).max() > 0.1
    # at -8 stops the sun is not white: its radiance relative to the sky stays readable
    assert encodings[1][1][sun].max() < 0.9
    assert np.abs(encodings[0][1][sun] - encodings[1][1][sun]).max() > 0.005

    pipeline = _random_pipeline()
    randomise(pipeline.autoencoder, seed=3)  # a random autoencoder that passes differences on
    gbuffers = make_gbuffers(frames=2)
    renders = [
        pipeline.render(gbuffers, env, vertical_fov_degrees=FOV) / light_scale(env) for env in (dim, bright)
    ]
    # not a rescale of the same image (that would agree to ~1e-7): the sun's share of the light changed
    assert np.abs(renders[1] - renders[0]).mean() > 1e-5


def test_the_paper_encoding_is_one_bracket_without_normalisation():
    env = _sky_with_sun(300.0)
    normalised, scale = normalised_envmap(env, LightingConfig())
    assert scale == 1.0 and np.array_equal(normalised, env)
    (bracket,) = env_brackets_to_model(env, (0.0,), 1, 8, 16)
    assert bracket.shape == (1, 8, 16, 3) and bracket.max() <= 1.0


def test_with_a_zero_velocity_the_shaded_bridge_returns_the_deferred_shading():
    pipeline = _random_pipeline("shaded")
    torch.nn.init.zeros_(pipeline.transformer.proj_out.weight)
    torch.nn.init.zeros_(pipeline.transformer.proj_out.bias)
    gbuffers, env = make_gbuffers(frames=3), _sky_with_sun(300.0)
    beauty = pipeline.render(gbuffers, env, vertical_fov_degrees=FOV)

    normalised, scale = normalised_envmap(env, pipeline.lighting)
    shaded = shaded_source_model(gbuffers, normalised, FOV)  # [F, H, W, 3] model space
    video = torch.from_numpy(shaded).permute(3, 0, 1, 2)[None]  # [1, 3, F, H, W]
    with torch.no_grad():
        through_autoencoder = pipeline.autoencoder.decode(pipeline.autoencoder.encode(video))
    expected = enc.model_to_beauty(enc.tensor_to_frames(through_autoencoder)) * scale
    np.testing.assert_allclose(beauty, expected, rtol=1e-4, atol=1e-5)


def test_decompose_sees_a_plate_at_the_same_exposure_whatever_its_brightness():
    pipeline = _random_pipeline()
    plate = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    assert image_exposure_scale(5.0 * plate) == pytest.approx(5.0 * image_exposure_scale(plate))
    dim, bright = (pipeline.decompose(k * plate, targets=["albedo"])["albedo"] for k in (0.5, 40.0))
    np.testing.assert_allclose(dim, bright, atol=1e-5)


def test_a_lighting_config_that_does_not_fit_the_transformer_is_a_clear_error():
    pipeline = _random_pipeline()
    with pytest.raises(ValueError, match=r"transformer takes 2 env latents.*1 env brackets"):
        type(pipeline)(pipeline.transformer, pipeline.autoencoder, lighting=LightingConfig(True, (0.0,)))


def test_lighting_and_bridge_source_survive_a_checkpoint(tmp_path):
    pipeline = _random_pipeline("shaded")
    pipeline.save_pretrained(tmp_path)
    loaded = type(pipeline).from_pretrained(tmp_path)
    assert loaded.lighting == V2_LIGHTING and loaded.bridge.source == "shaded"
    gbuffers, env = make_gbuffers(frames=2), _sky_with_sun(300.0)
    np.testing.assert_array_equal(
        loaded.render(gbuffers, env, vertical_fov_degrees=FOV),
        pipeline.render(gbuffers, env, vertical_fov_degrees=FOV),
    )
