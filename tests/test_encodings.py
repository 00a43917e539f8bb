import numpy as np
import pytest
import torch

from renderflow.core.model import encodings as enc


def test_srgb_oetf_and_eotf_are_inverse_on_unit_range():
    linear = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    np.testing.assert_allclose(enc.srgb_eotf(enc.srgb_oetf(linear)), linear, atol=1e-6)


def test_srgb_oetf_matches_known_values():
    np.testing.assert_allclose(
        enc.srgb_oetf(np.array([0.0, 0.0031308, 0.18, 1.0])), [0.0, 0.04045, 0.46135, 1.0], atol=1e-4
    )


def test_reinhard_inverse_returns_hdr_values_above_one():
    hdr = np.array([0.0, 0.5, 1.0, 4.0, 50.0], dtype=np.float32)
    np.testing.assert_allclose(enc.inverse_reinhard(enc.reinhard(hdr)), hdr, rtol=1e-4)


def test_inverse_reinhard_clamps_so_output_stays_finite():
    assert np.isfinite(enc.inverse_reinhard(np.array([1.0, 2.0]))).all()
    assert enc.inverse_reinhard(np.array([1.0]))[0] == pytest.approx(999.0, rel=1e-3)


def test_beauty_round_trip_keeps_highlights():
    beauty = np.array([[[[0.01, 0.5, 2.0], [8.0, 20.0, 0.0]]]], dtype=np.float32)
    model = enc.beauty_to_model(beauty)
    assert model.min() >= -1.0 and model.max() < 1.0
    np.testing.assert_allclose(enc.model_to_beauty(model), beauty, rtol=2e-3, atol=1e-5)


def test_albedo_round_trip():
    albedo = np.random.default_rng(0).random((2, 4, 4, 3), dtype=np.float32)
    np.testing.assert_allclose(enc.model_to_albedo(enc.albedo_to_model(albedo)), albedo, atol=1e-5)


def test_material_round_trip():
    material = np.random.default_rng(1).random((2, 4, 4, 3), dtype=np.float32)
    np.testing.assert_allclose(enc.model_to_material(enc.material_to_model(material)), material, atol=1e-6)


def test_normal_passes_as_is_and_renormalises():
    normal = np.array([[[[0.0, 0.0, 1.0], [0.6, 0.0, 0.8]]]], dtype=np.float32)
    np.testing.assert_array_equal(enc.normal_to_model(normal), normal)
    np.testing.assert_allclose(enc.model_to_normal(normal * 0.5), normal, atol=1e-6)


def test_depth_uses_the_whole_sequence_range_and_round_trips():
    depth = np.array([1.0, 2.0, 4.0, np.inf], dtype=np.float32).reshape(1, 1, 4, 1)
    rng = enc.disparity_range(depth)
    assert (rng.min, rng.max) == (0.25, 1.0)
    model = enc.depth_to_model(depth, rng)
    assert model.shape == (1, 1, 4, 3)
    np.testing.assert_allclose(model[0, 0, :, 0], [1.0, 1.0 / 3.0 * 2 - 1, -1.0, -1.0], atol=1e-6)
    back = enc.model_to_depth(model, rng)
    np.testing.assert_allclose(back[0, 0, :3, 0], [1.0, 2.0, 4.0], rtol=1e-5)


def test_depth_of_a_frame_is_normalised_by_the_sequence_not_by_itself():
    near_frame = np.full((1, 2, 2, 1), 1.0, dtype=np.float32)
    far_frame = np.full((1, 2, 2, 1), 10.0, dtype=np.float32)
    rng = enc.disparity_range(np.concatenate([near_frame, far_frame]))
    assert enc.depth_to_model(far_frame, rng).max() == -1.0
    assert enc.depth_to_model(near_frame, rng).min() == 1.0


def test_depth_without_geometry_is_an_error():
    with pytest.raises(ValueError, match="background"):
        enc.disparity_range(np.full((1, 2, 2, 1), np.inf, dtype=np.float32))


def test_envmap_exposure_is_in_stops():
    env = np.full((1, 2, 2, 3), 0.5, dtype=np.float32)
    np.testing.assert_allclose(enc.envmap_to_model(env, exposure_stops=1.0), enc.beauty_to_model(env * 2.0))


def test_layout_pair_round_trips_and_names_the_layout():
    frames = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    video = enc.frames_to_tensor(frames)
    assert tuple(video.shape) == (1, 5, 2, 3, 4)
    assert video[0, 4, 1, 2, 3] == frames[1, 2, 3, 4]
    np.testing.assert_array_equal(enc.tensor_to_frames(video), frames)
    with pytest.raises(ValueError, match=r"\[F, H, W, C\]"):
        enc.frames_to_tensor(frames[0])
    with pytest.raises(ValueError, match=r"\[1, C, F, H, W\]"):
        enc.tensor_to_frames(torch.zeros(2, 3, 1, 2, 2))
