"""RenderFlowPipeline: render and decompose through every path, and the errors a user sees."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import (
    TINY_AUTOENCODER,
    TINY_TRANSFORMER,
    make_envmap,
    make_gbuffers,
    randomise,
    tiny_v2_pipeline,
)

from renderflow.core.io.buffers import GBuffers
from renderflow.core.model import encodings as enc
from renderflow.core.model.configs import build_tiny_pipeline
from renderflow.core.model.guidance import reprojected_source
from renderflow.core.model.keyframe import KeyframeAdapter
from renderflow.core.model.pipeline import plan_chunks
from renderflow.core.shading.deferred import shaded_source_model
from renderflow.core.shading.lighting import normalised_envmap
from renderflow.core.shading.reprojection import reproject_keyframes
from renderflow.core.shot.demo_scene import orbit_camera_to_world, ray_cast


def test_render_returns_linear_hdr_frames(tiny_pipeline):
    beauty = tiny_pipeline.render(make_gbuffers(frames=3), make_envmap())
    assert beauty.shape == (3, 32, 32, 3) and beauty.dtype == np.float32
    assert np.isfinite(beauty).all() and beauty.min() >= 0.0


def test_the_autoencoder_can_run_in_bf16_while_the_transformer_stays_in_fp32():
    """`to(..., autoencoder_dtype=)`: the autoencoder's weights change dtype, the render stays finite
    and close to the fp32 one (bf16 keeps 8 bits of mantissa), the transformer is untouched."""
    gbuffers, env = make_gbuffers(frames=3), make_envmap()
    renders = []
    for dtype in (torch.float32, torch.bfloat16):
        pipeline = tiny_v2_pipeline(pixel_residual=True).to("cpu", autoencoder_dtype=dtype)
        randomise(pipeline.transformer)
        assert {p.dtype for p in pipeline.autoencoder.parameters()} == {dtype}
        assert {p.dtype for p in pipeline.transformer.parameters()} == {torch.float32}
        renders.append(pipeline.render(gbuffers, env))
    full, reduced = renders
    assert np.isfinite(reduced).all()
    assert 0 < np.abs(reduced - full).mean() < 0.01 * np.abs(full).mean()


@pytest.mark.parametrize("frames", [1, 4, 7])
def test_long_sequences_render_in_overlapping_chunks(tiny_pipeline, frames):
    seen = []
    beauty = tiny_pipeline.render(
        make_gbuffers(frames=frames), make_envmap(), progress=lambda done, total: seen.append((done, total))
    )
    assert beauty.shape == (frames, 32, 32, 3)
    chunks = plan_chunks(frames, tiny_pipeline.config.chunk_frames)
    assert seen == [(i + 1, len(chunks)) for i in range(len(chunks))]


def test_chunk_plan_overlaps_by_one_frame_and_covers_the_sequence():
    assert plan_chunks(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert plan_chunks(3, 5) == [(0, 3)]
    assert plan_chunks(6, 3) == [(0, 3), (2, 5), (4, 6)]


def test_previous_chunk_conditions_the_next(tiny_pipeline):
    randomise(tiny_pipeline.transformer.attribute_embedder)
    gbuffers = make_gbuffers(frames=5)
    env = make_envmap()
    chained = tiny_pipeline.render(gbuffers, env)[3:]
    alone = tiny_pipeline.render(
        dataclasses.replace(
            gbuffers,
            **{name: getattr(gbuffers, name)[2:] for name in ("albedo", "normal", "depth", "material")},
        ),
        env,
    )[1:]
    # Same G-buffers for frames 3-4, but in the sequence they are conditioned on frame 2's beauty.
    assert chained.shape == alone.shape
    assert not np.allclose(chained, alone)


def test_env_map_per_frame_is_accepted(tiny_pipeline):
    env = np.stack([make_envmap(0), make_envmap(1), make_envmap(2)])
    assert tiny_pipeline.render(make_gbuffers(frames=3), env).shape == (3, 32, 32, 3)


def test_keyframes_guide_the_render(tiny_pipeline):
    randomise(tiny_pipeline.keyframe_adapter)
    gbuffers, env = make_gbuffers(frames=3), make_envmap()
    plain = tiny_pipeline.render(gbuffers, env)
    guided = tiny_pipeline.render(gbuffers, env, keyframes={0: np.full((32, 32, 3), 0.5, np.float32)})
    assert guided.shape == plain.shape and not np.allclose(guided, plain)


def test_thirty_steps_run_and_differ_from_one(tiny_pipeline):
    gbuffers, env = make_gbuffers(frames=2), make_envmap()
    one = tiny_pipeline.render(gbuffers, env, steps=1)
    thirty = tiny_pipeline.render(gbuffers, env, steps=30)
    assert thirty.shape == one.shape and not np.allclose(thirty, one)


def test_decompose_returns_every_intrinsic_at_rest(tiny_pipeline):
    image = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32) * 3
    buffers = tiny_pipeline.decompose(image)
    assert {k: v.shape for k, v in buffers.items()} == {
        "albedo": (4, 32, 32, 3),
        "normal": (4, 32, 32, 3),
        "depth": (4, 32, 32, 1),
        "roughness": (4, 32, 32, 1),
        "metallic": (4, 32, 32, 1),
    }
    np.testing.assert_allclose(np.linalg.norm(buffers["normal"], axis=-1), 1.0, atol=1e-4)
    assert (buffers["depth"] >= 1.0).all()
    assert buffers["roughness"].min() >= 0 and buffers["roughness"].max() <= 1


def test_decompose_reads_a_plate_below_the_inverse_size_enlarged_and_answers_at_its_size(
    tiny_pipeline, monkeypatch
):
    image = np.random.default_rng(1).random((3, 32, 32, 3), dtype=np.float32) * 3
    plain = tiny_pipeline.decompose(image)
    for size, enlarged in ((32, False), (64, True), (33, True)):  # 33: the next whole factor, 2
        config = dataclasses.replace(tiny_pipeline.config, inverse_min_size=size)
        monkeypatch.setattr(tiny_pipeline, "config", config)
        buffers = tiny_pipeline.decompose(image)
        assert {k: v.shape for k, v in buffers.items()} == {k: v.shape for k, v in plain.items()}
        np.testing.assert_allclose(np.linalg.norm(buffers["normal"], axis=-1), 1.0, atol=1e-4)
        differs = [not np.array_equal(buffers[k], plain[k]) for k in plain]
        assert all(differs) if enlarged else not any(differs)
    with pytest.raises(ValueError, match="inverse_min_size"):
        dataclasses.replace(tiny_pipeline.config, inverse_min_size=-1)


def test_decompose_selected_targets_only(tiny_pipeline):
    image = np.ones((2, 32, 32, 3), np.float32)
    assert set(tiny_pipeline.decompose(image, targets=["depth"])) == {"depth"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: dataclasses.replace(g, normal=None), "missing G-buffer 'normal'"),
        (lambda g: dataclasses.replace(g, depth=g.depth[:2]), r"'depth' has \[F, H, W\] = \[2, 32, 32\]"),
        (
            lambda g: dataclasses.replace(g, material=g.material[..., :2]),
            r"'material': expected \[F, H, W, 3\]",
        ),
        (lambda g: dataclasses.replace(g, albedo=np.full_like(g.albedo, np.nan)), "'albedo' contains NaN"),
    ],
)
def test_bad_gbuffers_get_errors_that_name_the_buffer(tiny_pipeline, change, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipeline.render(change(make_gbuffers()), make_envmap())


def test_frame_size_must_fit_the_model(tiny_pipeline):
    gbuffers = make_gbuffers(size=36)
    with pytest.raises(ValueError, match="multiple of 8"):
        tiny_pipeline.render(gbuffers, make_envmap())


def test_env_map_with_wrong_frame_count_is_an_error(tiny_pipeline):
    env = np.stack([make_envmap()] * 2)
    with pytest.raises(ValueError, match=r"env map: expected \[He, We, 3\] or \[3, He, We, 3\]"):
        tiny_pipeline.render(make_gbuffers(frames=3), env)


def test_keyframe_outside_the_sequence_is_an_error(tiny_pipeline):
    with pytest.raises(ValueError, match="keyframe at frame 9"):
        tiny_pipeline.render(make_gbuffers(), make_envmap(), keyframes={9: np.zeros((32, 32, 3), np.float32)})


def test_keyframe_of_the_wrong_size_is_an_error(tiny_pipeline):
    with pytest.raises(ValueError, match=r"keyframe 1: expected \[32, 32, 3\]"):
        tiny_pipeline.render(make_gbuffers(), make_envmap(), keyframes={1: np.zeros((16, 16, 3), np.float32)})


def test_gbuffers_validate_reports_the_frame_shape():
    assert GBuffers.validate(make_gbuffers(frames=2, size=16)) == (2, 16, 16)


def test_reprojected_keyframes_reach_a_reprojecting_adapter(caplog):
    torch.manual_seed(0)
    pipeline = build_tiny_pipeline(
        TINY_TRANSFORMER, TINY_AUTOENCODER, lora_rank=4, chunk_frames=3, reprojection=True
    )
    adapter = pipeline.keyframe_adapter
    randomise(adapter)
    cameras = np.stack([orbit_camera_to_world(0.1 * frame) for frame in range(3)])
    frames = [ray_cast(camera[:3, :3], camera[:3, 3], 32, 40.0) for camera in cameras]
    gbuffers = GBuffers(*(np.stack([frame[index] for frame in frames]) for index in range(4)))
    env, keyframes = make_envmap(), {0: np.full((32, 32, 3), 0.5, np.float32)}
    seen = []
    adapter.aligned_embedder.register_forward_hook(lambda module, args, output: seen.append(args[0]))

    with_cameras = pipeline.render(
        gbuffers, env, keyframes, vertical_fov_degrees=40.0, camera_to_world=cameras
    )
    # the last channel of the aligned input is the validity of the reprojection: keyframe 0 sees
    # most of frames 1 and 2, which orbit 6° and 11° away from it
    assert seen[-1][0, -1].mean() > 0.5
    with caplog.at_level("WARNING"):
        without_cameras = pipeline.render(gbuffers, env, keyframes)
    assert "not reprojected" in caplog.text and seen[-1][0, -1].abs().max() == 0
    assert not np.allclose(with_cameras, without_cameras)


def test_with_keyframes_the_bridge_starts_from_the_reprojected_keyframes_where_valid():
    # an untrained model with the shaded source has a zero head: its render is its bridge source,
    # which with keyframes is the keyframe reprojected where valid, the Deferred shading elsewhere
    pipeline = tiny_v2_pipeline(reprojected_source=True)
    cameras = np.stack([orbit_camera_to_world(0.0)] * 3)  # a still camera: every frame sees frame 0
    frames = [ray_cast(camera[:3, :3], camera[:3, 3], 32, 40.0) for camera in cameras]
    gbuffers = GBuffers(*(np.stack([frame[index] for frame in frames]) for index in range(4)))
    env = make_envmap()
    keyframe = np.random.default_rng(3).uniform(0.1, 2.0, (32, 32, 3)).astype(np.float32)
    beauty = pipeline.render(gbuffers, env, {0: keyframe}, vertical_fov_degrees=40.0, camera_to_world=cameras)

    normalised, scale = normalised_envmap(env, pipeline.lighting)
    shaded = shaded_source_model(gbuffers, np.broadcast_to(normalised, (3, *normalised.shape)), 40.0)
    reprojected = reproject_keyframes(
        gbuffers.depth, cameras, 40.0, {0: enc.beauty_to_model(keyframe / np.float32(scale))}
    )
    geometry = np.isfinite(gbuffers.depth[..., 0])
    assert np.array_equal(reprojected[..., 3] > 0, geometry)
    source = reprojected_source(reprojected, shaded)
    video = torch.from_numpy(source).permute(3, 0, 1, 2)[None]
    with torch.no_grad():
        through_autoencoder = pipeline.autoencoder.decode(pipeline.autoencoder.encode(video))
    expected = enc.model_to_beauty(enc.tensor_to_frames(through_autoencoder)) * np.float32(scale)
    np.testing.assert_allclose(beauty, expected, rtol=1e-4, atol=1e-5)


def test_a_reprojected_source_needs_reprojection_and_the_shaded_bridge():
    with pytest.raises(ValueError, match=r"reprojected_source needs reprojection"):
        KeyframeAdapter(in_channels=4, dim=24, num_heads=2, num_layers=2, reprojected_source=True)
    with pytest.raises(ValueError, match=r"needs the shaded bridge source"):
        build_tiny_pipeline(
            TINY_TRANSFORMER, TINY_AUTOENCODER, lora_rank=4, reprojection=True, reprojected_source=True
        )
