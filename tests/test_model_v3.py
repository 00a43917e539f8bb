"""Model v3: never worse than the physics it starts from (pixel-space residual, keyframes returned
where the network changes nothing), HDR that cannot blow out, albedo as an input, the inverse
path's conventions, and v2 weights converted to v3."""

import dataclasses

import numpy as np
import torch
from conftest import randomise, tiny_v2_pipeline

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.envmap import camera_view_directions
from renderflow.core.model import encodings as enc
from renderflow.core.model.change_filter import smoothed_change
from renderflow.core.model.pipeline import _intrinsic_from_model
from renderflow.core.model.sources import SOURCE_SHADERS
from renderflow.core.model.transformer import attribute_latent
from renderflow.core.model.velocity import forward_velocity
from renderflow.core.shading.hdr_bound import HDR_MARGIN, bounded, hdr_bound
from renderflow.core.shading.lighting import LUMINANCE_WEIGHTS, light_scale, normalised_envmap
from renderflow.core.shading.pixel_filter import filter_pixels
from renderflow.core.shading.reprojection import reproject_keyframes
from renderflow.core.shading.visibility import shade_with_visibility
from renderflow.core.shot.demo_scene import orbit_camera_to_world, ray_cast, sky_radiance
from renderflow.training.convert import copy_fitting
from renderflow.training.datasets import BUFFERS
from renderflow.training.inverse_stage import intrinsic_target

V3 = {
    "bridge_source": "shaded_visibility",
    "albedo_attribute": True,
    "pixel_residual": True,
    "hdr_bound": True,
}
SIZE, FOV = 32, 40.0


def scene(frames: int = 3, moving: bool = True):
    """The demo scene (sphere on a plane, sky with a sun): G-buffers, camera-view env maps, cameras."""
    cameras = np.stack([orbit_camera_to_world(0.1 * frame if moving else 0.0) for frame in range(frames)])
    buffers = [ray_cast(c[:3, :3], c[:3, 3], SIZE, FOV) for c in cameras]
    gbuffers = GBuffers(*(np.stack([b[i] for b in buffers]) for i in range(4)))
    env = np.stack([sky_radiance(camera_view_directions(SIZE // 2, SIZE) @ c[:3, :3].T) for c in cameras])
    return gbuffers, env, cameras


def test_a_model_that_changes_nothing_returns_its_physics_prior_at_full_resolution():
    pipeline = tiny_v2_pipeline(**V3)  # zero output head: the velocity is 0, so ẑ1 = z0
    gbuffers, env, _ = scene()
    beauty = pipeline.render(gbuffers, env, vertical_fov_degrees=FOV)
    normalised, scale = normalised_envmap(env, pipeline.lighting)
    prior = shade_with_visibility(gbuffers, normalised, FOV) * scale  # no autoencoder in between
    geometry = np.isfinite(gbuffers.depth[..., 0])
    assert np.abs(beauty - prior)[geometry].max() < 1e-3 * max(1.0, float(prior.max()))


def test_with_a_static_camera_the_keyframe_path_returns_the_keyframe_where_it_is_valid():
    pipeline = tiny_v2_pipeline(**V3, reprojected_source=True)
    gbuffers, env, cameras = scene(moving=False)
    keyframe = np.random.default_rng(0).random((SIZE, SIZE, 3)).astype(np.float32) * 3.0  # any radiance
    beauty = pipeline.render(
        gbuffers, env, keyframes={0: keyframe}, vertical_fov_degrees=FOV, camera_to_world=cameras
    )
    geometry = np.isfinite(gbuffers.depth[0, ..., 0])
    for frame in range(3):  # the keyframe itself, and the frames that see it from the same camera
        np.testing.assert_allclose(beauty[frame][geometry], keyframe[geometry], rtol=2e-3, atol=2e-3)


def test_with_exact_reprojection_a_trained_network_changes_only_what_no_keyframe_sees():
    """`exact_reprojection`: a network that changes every pixel (random weights) leaves the valid
    reprojected pixels of a moving camera exactly as the keyframe's, and changes the others."""
    pipelines = [
        tiny_v2_pipeline(**V3, reprojected_source=True, exact_reprojection=exact) for exact in (False, True)
    ]
    for pipeline in pipelines:
        randomise(pipeline.transformer)
        randomise(pipeline.keyframe_adapter)
    gbuffers, env, cameras = scene(moving=True)
    keyframes = {0: shade_with_visibility(gbuffers, env, FOV)[0] * np.float32(1.3)}  # any radiance
    free, exact = (
        p.render(gbuffers, env, keyframes=keyframes, vertical_fov_degrees=FOV, camera_to_world=cameras)
        for p in pipelines
    )
    scale = np.float32(light_scale(env))  # the pipeline moves keyframes in model space, light-normalised
    keyframes_model = {0: enc.beauty_to_model(keyframes[0] / scale)}
    reprojected = reproject_keyframes(gbuffers.depth, cameras, FOV, keyframes_model)
    valid = reprojected[..., 3] > 0
    reprojected = enc.model_to_beauty(reprojected[..., :3]) * scale
    assert valid[1:].mean() > 0.3 and (~valid[1:]).mean() > 0.1  # both kinds of pixel in frames 1-2
    np.testing.assert_allclose(exact[valid], reprojected[valid], rtol=1e-4, atol=1e-4 * scale)
    # without it, the network changes the valid pixels too
    assert np.abs(free - reprojected)[valid].mean() > 10 * np.abs(exact - reprojected)[valid].mean()
    np.testing.assert_array_equal(exact[~valid], free[~valid])  # elsewhere the network renders as before


def test_with_exact_background_a_trained_network_leaves_the_env_map_where_no_geometry_is():
    """`exact_background`: a network that changes every pixel (random weights) leaves the background
    exactly as the prior shows the env map, and still changes the geometry."""
    pipelines = [tiny_v2_pipeline(**V3, exact_background=exact) for exact in (False, True)]
    for pipeline in pipelines:
        randomise(pipeline.transformer)
    gbuffers, env, _ = scene()
    free, exact = (p.render(gbuffers, env, vertical_fov_degrees=FOV) for p in pipelines)
    normalised, scale = normalised_envmap(env, pipelines[0].lighting)
    prior = shade_with_visibility(gbuffers, normalised, FOV) * scale
    background = ~np.isfinite(gbuffers.depth[..., 0])
    assert 0.1 < background.mean() < 0.9
    np.testing.assert_allclose(exact[background], prior[background], rtol=1e-4, atol=1e-4 * scale)
    assert np.abs(free - prior)[background].mean() > 10 * np.abs(exact - prior)[background].mean()
    np.testing.assert_array_equal(exact[~background], free[~background])


def test_the_change_weight_takes_that_share_of_the_networks_change_in_model_space():
    """`change_weight`: the output is the prior plus that share of the network's change (model
    space), so 0 is the prior itself and 1 the whole change."""
    options = V3 | {"hdr_bound": False, "exact_background": True}
    pipelines = [tiny_v2_pipeline(**options, change_weight=weight) for weight in (0.0, 0.6, 1.0)]
    for pipeline in pipelines:
        randomise(pipeline.transformer)
    gbuffers, env, _ = scene()
    prior, partial, whole = (
        enc.beauty_to_model(p.render(gbuffers, env, vertical_fov_degrees=FOV)) for p in pipelines
    )
    normalised, scale = normalised_envmap(env, pipelines[0].lighting)
    physics = enc.beauty_to_model(shade_with_visibility(gbuffers, normalised, FOV) * scale)
    np.testing.assert_allclose(prior, physics, atol=1e-3)
    assert np.abs(whole - prior).max() > 5e-3  # the network changes the frame ...
    np.testing.assert_allclose(partial, prior + 0.6 * (whole - prior), atol=2e-5)  # ... by far more than this


def test_the_change_blur_smooths_the_networks_change_within_the_priors_surfaces():
    """`change_blur`: the output is the prior plus the network's change under the prior-guided
    filter (model space); the background (exact) counts as no change and takes none."""
    options = V3 | {"hdr_bound": False, "exact_background": True, "pixel_filter": 0.0}
    pipeline = tiny_v2_pipeline(**options)
    randomise(pipeline.transformer)
    gbuffers, env, _ = scene()
    scale = np.float32(light_scale(env))  # model space is light-normalised

    def render(**setting: float) -> np.ndarray:
        pipeline.config = dataclasses.replace(pipeline.config, **setting)
        return enc.beauty_to_model(pipeline.render(gbuffers, env, vertical_fov_degrees=FOV) / scale)

    sharp, smooth, prior = render(), render(change_blur=2.0), render(change_weight=0.0)
    geometry = np.isfinite(gbuffers.depth[..., 0])[..., None]
    change = torch.from_numpy((sharp - prior) * geometry).permute(0, 3, 1, 2)
    guide = torch.from_numpy(prior).permute(0, 3, 1, 2)
    expected = smoothed_change(change, guide, 2.0).permute(0, 2, 3, 1).numpy() * geometry
    assert np.abs(expected - (sharp - prior)).max() > 5e-3  # the filter changes the change ...
    np.testing.assert_allclose(smooth - prior, expected, atol=5e-5)  # ... by far more than this
    np.testing.assert_array_equal(smooth[~geometry[..., 0]], prior[~geometry[..., 0]])


def test_the_change_filter_keeps_an_edge_of_the_prior_and_smooths_within_a_surface():
    """Across a step in the prior the change does not bleed; within one side it is averaged."""
    prior = torch.full((1, 3, 16, 16), -0.5)
    prior[..., 8:] = 0.5  # two surfaces, an edge at column 8
    change = torch.zeros(1, 3, 16, 16)
    change[..., 8:] = 0.2  # the network lifts the right-hand surface only
    change[0, :, 4, 4] = 0.3  # and a speck on the left
    smoothed = smoothed_change(change, prior, 2.0)
    assert float(smoothed[..., :, :7].abs().max()) < 0.05  # the lift stays right of the edge
    torch.testing.assert_close(smoothed[..., 9:], torch.full_like(smoothed[..., 9:], 0.2))
    assert 0 < float(smoothed[0, 0, 4, 4]) < 0.03  # the speck spread thin
    flat = smoothed_change(change, torch.zeros_like(prior), 2.0)  # no edge: the change bleeds across
    assert float(flat[0, 0, 8, 7]) > 0.05 and float(smoothed[0, 0, 8, 7]) < 0.01


def test_the_pixel_filter_spreads_light_without_adding_any_and_leaves_keyframe_pixels():
    image = np.zeros((1, 16, 16, 3), np.float32)
    image[0, 8, 8] = [100.0, 50.0, 1.0]  # one bright pixel
    filtered = filter_pixels(image, 0.5)
    np.testing.assert_allclose(filtered.sum((1, 2)), image.sum((1, 2)), rtol=1e-5)  # energy kept
    assert 0 < filtered[0, 8, 9, 0] < filtered[0, 8, 8, 0] < 100.0  # spread to the neighbours
    assert filtered[0, 8, 12, 0] < 1e-3  # ... not far
    np.testing.assert_allclose(filter_pixels(image * 7.0, 0.5), filtered * 7.0, rtol=1e-5)  # linear
    np.testing.assert_allclose(filter_pixels(image + 3.0, 0.5)[0, 0, 0], [3.0, 3.0, 3.0], rtol=1e-6)  # flat
    keep = np.zeros((1, 16, 16), bool)
    keep[0, 8, 8] = True
    np.testing.assert_array_equal(filter_pixels(image, 0.5, keep)[0, 8, 8], image[0, 8, 8])
    assert filter_pixels(image, 0.0) is image


def test_the_filtered_source_is_the_prior_with_softened_edges_and_the_same_light():
    gbuffers, env, _ = scene(frames=1)
    sharp = shade_with_visibility(gbuffers, env, FOV)
    source = SOURCE_SHADERS["shaded_visibility_filtered"]
    soft = enc.model_to_beauty(source(gbuffers, env, FOV))
    luminance = LUMINANCE_WEIGHTS
    assert abs((soft @ luminance).mean() / (sharp @ luminance).mean() - 1) < 0.01  # no light added or lost
    steepest = [np.abs(np.diff(enc.beauty_to_model(image), axis=2)).max() for image in (sharp, soft)]
    assert steepest[1] < 0.8 * steepest[0]  # the silhouettes are softened
    brighter = enc.model_to_beauty(source(gbuffers, env * np.float32(5.0), FOV))
    np.testing.assert_allclose(brighter, soft * 5.0, rtol=1e-3, atol=1e-5)


def test_a_model_with_a_pixel_filter_renders_its_unfiltered_render_filtered():
    sharp, soft = (tiny_v2_pipeline(**(V3 | {"hdr_bound": False}), pixel_filter=s) for s in (0.0, 0.5))
    for pipeline in (sharp, soft):
        randomise(pipeline.transformer)
    gbuffers, env, _ = scene()
    expected = filter_pixels(sharp.render(gbuffers, env, vertical_fov_degrees=FOV), 0.5)
    np.testing.assert_allclose(soft.render(gbuffers, env, vertical_fov_degrees=FOV), expected, rtol=1e-5)


def test_a_saturated_model_cannot_emit_a_pixel_above_the_bound():
    pipeline = tiny_v2_pipeline(**V3)
    with torch.no_grad():
        pipeline.transformer.proj_out.bias.fill_(50.0)  # every latent pushed far past saturation
    gbuffers, env, _ = scene()
    beauty = pipeline.render(gbuffers, env, vertical_fov_degrees=FOV)
    normalised, scale = normalised_envmap(env, pipeline.lighting)
    prior = shade_with_visibility(gbuffers, normalised, FOV)
    peak = env.max(axis=(1, 2))[:, None, None, :]  # each channel's, per frame
    mean = np.array([light_scale(frame[None]) for frame in normalised])[:, None, None, None]  # per frame
    allowed = HDR_MARGIN * np.maximum(prior, mean) * scale
    assert (beauty <= np.minimum(allowed, peak) * (1 + 1e-4)).all()  # every channel: no coloured fireflies


def test_the_bound_is_smooth_and_leaves_what_is_below_its_knee_alone():
    bound = np.full((1, 1, 4, 3), 10.0)
    beauty = np.array([[[[1.0] * 3, [7.9] * 3, [12.0] * 3, [1e6] * 3]]], np.float32)
    out = bounded(beauty, bound)
    np.testing.assert_allclose(out[0, 0, :2], beauty[0, 0, :2], rtol=1e-6)
    assert 8.0 < out[0, 0, 2, 0] < out[0, 0, 3, 0] <= 10.0
    blue_firefly = bounded(np.array([[[[0.5, 0.6, 50.0]]]], np.float32), np.full((1, 1, 1, 3), 1.0))
    np.testing.assert_allclose(blue_firefly[0, 0, 0, :2], [0.5, 0.6], rtol=1e-6)  # the others untouched
    assert 0.8 < blue_firefly[0, 0, 0, 2] <= 1.0
    assert hdr_bound(np.ones((1, 4, 8, 3), np.float32), None).shape == (1, 1, 1, 3)


def test_v3_follows_the_env_maps_exposure_exactly():
    pipeline = tiny_v2_pipeline(**V3, exact_background=True, change_weight=0.6, pixel_filter=0.5)
    pipeline.config = dataclasses.replace(pipeline.config, change_blur=4.0)  # the bundled settings
    randomise(pipeline.transformer)
    gbuffers, env, _ = scene()
    once = pipeline.render(gbuffers, env, vertical_fov_degrees=FOV)
    brighter = pipeline.render(gbuffers, env * np.float32(20.0), vertical_fov_degrees=FOV)
    np.testing.assert_allclose(brighter, once * 20.0, rtol=2e-3, atol=1e-4)


def test_changing_albedo_under_the_same_shading_changes_the_render():
    inputs = [torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(s)) for s in range(6)]
    z_t, normal, depth, material, albedo, other_albedo = inputs
    reference, mask, env, t = (
        torch.zeros_like(normal),
        torch.zeros(1, 1, 2, 8, 8),
        torch.randn(1, 8, 2, 8, 8),
        torch.zeros(1),
    )
    for albedo_attribute in (True, False):
        pipeline = tiny_v2_pipeline(**(V3 | {"albedo_attribute": albedo_attribute}))
        randomise(pipeline.transformer)
        given = albedo if albedo_attribute else None
        edited = other_albedo if albedo_attribute else None
        with torch.no_grad():
            one = forward_velocity(
                pipeline.transformer,
                z_t,
                t,
                attribute_latent(normal, depth, material, reference, mask, given),
                env,
            )
            two = forward_velocity(
                pipeline.transformer,
                z_t,
                t,
                attribute_latent(normal, depth, material, reference, mask, edited),
                env,
            )
        assert (not torch.allclose(one, two)) == albedo_attribute


def test_inverse_targets_and_outputs_keep_channel_order_and_signs():
    """A constructed scene: each intrinsic's training target, read back as decompose reads its output,
    is the intrinsic itself: metallic is channel 1 of the material, normals keep X right, Y up."""
    gbuffers, _, _ = scene(frames=1)
    stack = {
        "albedo": enc.albedo_to_model(gbuffers.albedo),
        "normal": enc.normal_to_model(gbuffers.normal),
        "depth": enc.depth_to_model(gbuffers.depth, enc.disparity_range(gbuffers.depth)),
        "material": enc.material_to_model(gbuffers.material),
    }
    material = gbuffers.material.copy()
    material[..., 1] = np.linspace(0, 1, SIZE)[None, None, :]  # metallic rises left to right
    stack["material"] = enc.material_to_model(material)
    # [F, H, W, 3] per buffer -> [B, N, 3, F, H, W] as the training loop sees them
    buffers = torch.stack(
        [
            torch.from_numpy(stack.get(name, np.zeros_like(stack["albedo"]))).permute(3, 0, 1, 2)
            for name in BUFFERS
        ]
    )[None]

    def read_back(intrinsic):
        return _intrinsic_from_model(intrinsic, enc.tensor_to_frames(intrinsic_target(intrinsic, buffers)))

    np.testing.assert_allclose(read_back("metallic")[..., 0], material[..., 1], atol=1e-6)
    np.testing.assert_allclose(read_back("roughness")[..., 0], material[..., 0], atol=1e-6)
    geometry = np.isfinite(gbuffers.depth[..., 0])
    normal = read_back("normal")
    np.testing.assert_allclose(normal[geometry], gbuffers.normal[geometry], atol=1e-5)
    right_side = geometry & (gbuffers.normal[..., 0] > 0.5)  # the sphere's right flank faces +X
    assert right_side.any() and (normal[right_side][:, 0] > 0.5).all()
    np.testing.assert_allclose(read_back("albedo")[geometry], gbuffers.albedo[geometry], atol=1e-5)


def test_v2_weights_converted_to_v3_render_as_before_from_the_same_inputs():
    v2 = tiny_v2_pipeline()
    randomise(v2.transformer)
    v3 = tiny_v2_pipeline(**V3)
    assert copy_fitting(v2.transformer, v3.transformer) == []
    inputs = [torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    z_t, normal, depth, material, albedo = inputs
    reference, mask, env, t = (
        torch.zeros_like(normal),
        torch.ones(1, 1, 2, 8, 8),
        torch.randn(1, 8, 2, 8, 8),
        torch.zeros(1),
    )
    with torch.no_grad():
        before = forward_velocity(
            v2.transformer, z_t, t, attribute_latent(normal, depth, material, reference, mask), env
        )
        after = forward_velocity(
            v3.transformer, z_t, t, attribute_latent(normal, depth, material, reference, mask, albedo), env
        )
    torch.testing.assert_close(after, before)
