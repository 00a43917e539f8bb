"""Exact training augmentations (training/augment.py): each stands for a scene a renderer would draw."""

import numpy as np
import pytest

from renderflow.core.io.clips import load_clip
from renderflow.core.shading.deferred import render_baseline
from renderflow.core.shading.reprojection import reproject_keyframes
from renderflow.core.shot.demo_scene import ray_cast_buffers
from renderflow.training.augment import augment_clip, clip_tint, mirror_clip, tint_clip
from renderflow.training.datasets import BUFFERS, load_dataset


@pytest.fixture()
def clip(tiny_dataset):
    return load_clip(tiny_dataset / "train" / "clip_0000")


def test_the_mirrored_clip_is_what_a_mirrored_camera_sees(clip):
    """The ray caster, given the mirrored cameras, draws the mirrored G-buffers: the flip, the
    normals' sign and the cameras agree with each other."""
    mirrored = mirror_clip(clip)
    assert mirrored.name == "clip_0000+mirror"
    for frame, camera in enumerate(mirrored.camera_to_world):
        drawn = ray_cast_buffers(camera, 32, clip.vertical_fov_degrees)
        np.testing.assert_allclose(drawn["normal"], mirrored.gbuffers.normal[frame], atol=1e-5)
        np.testing.assert_allclose(drawn["albedo"], mirrored.gbuffers.albedo[frame], atol=1e-3)  # half floats
        drawn_geometry = np.isfinite(drawn["depth"])
        np.testing.assert_array_equal(drawn_geometry, np.isfinite(mirrored.gbuffers.depth[frame]))
    original = ray_cast_buffers(clip.camera_to_world[0], 32, clip.vertical_fov_degrees)
    assert np.abs(original["normal"][..., 0]).max() > 0.3  # x is not zero: its sign was tested


def test_shading_and_reprojection_of_the_mirrored_clip_are_the_mirror_of_the_clips(clip):
    mirrored = mirror_clip(clip)
    fov = clip.vertical_fov_degrees
    shaded = render_baseline("deferred", clip.gbuffers, clip.envmap_cam, fov)
    shaded_mirrored = render_baseline("deferred", mirrored.gbuffers, mirrored.envmap_cam, fov)
    np.testing.assert_allclose(shaded_mirrored[:, :, ::-1], shaded, rtol=1e-4, atol=1e-5)
    assert not np.allclose(shaded[:, :, ::-1], shaded, atol=1e-3)  # the env map is not symmetric

    def reprojected(of):
        keyframes = {0: of.beauty[0], 4: of.beauty[4]}
        return reproject_keyframes(of.gbuffers.depth, of.camera_to_world, fov, keyframes)

    np.testing.assert_allclose(reprojected(mirrored)[:, :, ::-1], reprojected(clip), atol=1e-5)
    assert reprojected(clip)[1:4, ..., 3].mean() > 0.3  # keyframes seen in the frames between


def test_the_tint_scales_the_light_and_the_beauty_by_one_colour_per_clip(clip):
    colour = clip_tint(clip.name)
    assert colour.shape == (3,)
    np.testing.assert_allclose(np.exp(np.log(colour).mean()), 1.0, rtol=1e-6)  # the level is kept
    np.testing.assert_array_equal(colour, clip_tint(clip.name))  # a pure function of the name
    assert not np.allclose(colour, clip_tint("clip_0001"))
    tinted = tint_clip(clip, colour)
    np.testing.assert_allclose(tinted.beauty, clip.beauty * colour, rtol=1e-6)
    np.testing.assert_allclose(tinted.envmap_cam, clip.envmap_cam * colour, rtol=1e-6)
    np.testing.assert_array_equal(tinted.gbuffers.albedo, clip.gbuffers.albedo)
    shaded = render_baseline("deferred", clip.gbuffers, clip.envmap_cam, clip.vertical_fov_degrees)
    shaded_tinted = render_baseline("deferred", tinted.gbuffers, tinted.envmap_cam, clip.vertical_fov_degrees)
    np.testing.assert_allclose(shaded_tinted, shaded * colour, rtol=1e-3, atol=1e-5)  # light is linear
    with pytest.raises(ValueError, match="augmentation 'rotate': expected one of mirror, tint"):
        augment_clip(clip, "rotate")


def test_an_augmented_dataset_holds_each_clip_then_its_copies_cached_apart(tiny_dataset):
    clips = load_dataset(tiny_dataset, "train", augmentations=("mirror", "tint"))
    assert [clip.name for clip in clips] == [
        "clip_0000",
        "clip_0000+mirror",
        "clip_0000+tint",
        "clip_0001",
        "clip_0001+mirror",
        "clip_0001+tint",
    ]
    albedo = BUFFERS.index("albedo")
    np.testing.assert_array_equal(clips[1].stack[albedo], clips[0].stack[albedo][:, :, ::-1])
    np.testing.assert_array_equal(clips[2].stack[albedo], clips[0].stack[albedo])
    beauty = BUFFERS.index("beauty")
    assert not np.array_equal(clips[2].stack[beauty], clips[0].stack[beauty])
    again = load_dataset(tiny_dataset, "train", augmentations=("mirror", "tint"))  # from the cache
    for first, second in zip(clips, again, strict=True):
        assert first.name == second.name
        np.testing.assert_array_equal(first.stack, second.stack)
    plain = load_dataset(tiny_dataset, "train")
    np.testing.assert_array_equal(plain[1].stack, clips[3].stack)
