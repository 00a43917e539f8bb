"""Torch datasets over clip folders: loading, model space, windows, crops, keyframes, latent cache."""

import shutil

import numpy as np
import pytest
import torch
from conftest import TINY_AUTOENCODER, write_clip

from renderflow.core.io.clips import frame_pattern, load_clip
from renderflow.core.io.envmap import camera_view_envmaps, read_envmap
from renderflow.core.model import encodings as enc
from renderflow.core.model.autoencoder import TinyAutoencoder
from renderflow.core.shading.deferred import shaded_source_model
from renderflow.core.shading.lighting import LightingConfig, light_scale
from renderflow.training.datasets import (
    BUFFERS,
    STACK_CACHE_DIR,
    ClipWindowDataset,
    LatentCache,
    ModelInputs,
    WindowSpec,
    find_clips,
    keyframe_indices,
    load_dataset,
    to_model_space,
)


def test_find_clips_by_split_and_skips_incomplete(tiny_dataset, tmp_path, caplog):
    assert [folder.name for folder in find_clips(tiny_dataset, "train")] == ["clip_0000", "clip_0001"]
    assert len(find_clips(tiny_dataset)) == 3
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    (copy / "synth.json").write_text("{}")  # rf-train synth writes it first
    (copy / "train" / "clip_0001" / "done").unlink()  # an interrupted rf-train synth clip
    assert [folder.name for folder in find_clips(copy, "train")] == ["clip_0000"]
    assert "incomplete clip" in caplog.text
    with pytest.raises(FileNotFoundError, match="no such dataset folder"):
        find_clips(tiny_dataset, "val")


def test_a_folder_of_clips_from_another_tool_needs_no_done_file(tiny_dataset, tmp_path):
    """Issue #30: frames, envmap.exr, camera.json and a scene.json, without rf-train synth's markers."""
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_dataset / "train" / "clip_0000", foreign / "shot_a")
    (foreign / "shot_a" / "done").unlink()
    assert [folder.name for folder in find_clips(foreign)] == ["shot_a"]
    linked = tmp_path / "linked"  # a split assembled from symlinked clip folders
    linked.mkdir()
    (linked / "shot_b").symlink_to(foreign / "shot_a", target_is_directory=True)
    assert [folder.name for folder in find_clips(linked)] == ["shot_b"]


def test_frame_pattern_picks_the_frames_or_says_which_sequences_it_cannot_tell_apart(tiny_dataset, tmp_path):
    clip = tiny_dataset / "train" / "clip_0000"
    assert frame_pattern(clip) == str(clip / "frame.####.exr")
    two = tmp_path / "two"
    shutil.copytree(clip, two)
    shutil.copy(two / "frame.1001.exr", two / "other.1001.exr")
    assert frame_pattern(two) == str(two / "frame.####.exr")  # frame.####.exr among several
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for name in ("beauty.1001.exr", "beauty.1002.exr", "gbuf.1001.exr", "gbuf.1002.exr"):
        shutil.copy(clip / "frame.1001.exr", renamed / name)
    with pytest.raises(
        ValueError, match=r"expected one EXR frame sequence \(or frame.####.exr among several\)"
    ):
        frame_pattern(renamed)


def test_load_clip_matches_the_files(tiny_dataset):
    folder = tiny_dataset / "train" / "clip_0000"
    clip = load_clip(folder)
    assert clip.gbuffers.albedo.shape == (5, 32, 32, 3)
    assert clip.beauty.shape == (5, 32, 32, 3)
    assert clip.envmap_cam.shape == (5, 32, 64, 3)
    expected_env = camera_view_envmaps(read_envmap(folder / "envmap.exr"), clip.camera_to_world, 32, 64)
    np.testing.assert_allclose(clip.envmap_cam, expected_env)
    assert clip.vertical_fov_degrees == 40.0


def test_model_space_stack_uses_the_model_encodings(tiny_dataset):
    clip = load_clip(tiny_dataset / "train" / "clip_0000")
    arrays = to_model_space(clip)
    assert arrays.stack.shape == (len(BUFFERS), 5, 32, 32, 3)
    assert arrays.stack.min() >= -1.0 and arrays.stack.max() <= 1.0
    np.testing.assert_allclose(
        arrays.stack[BUFFERS.index("beauty")], enc.beauty_to_model(clip.beauty), atol=1e-6
    )
    depth = enc.depth_to_model(
        clip.gbuffers.depth, enc.disparity_range(clip.gbuffers.depth)
    )  # clip-wide range
    np.testing.assert_allclose(arrays.stack[BUFFERS.index("depth")], depth)


@pytest.fixture(scope="module")
def clips(tiny_dataset):
    return load_dataset(tiny_dataset, "train")


def test_samples_are_fixed_by_seed_and_index(clips):
    spec = WindowSpec(window=3, crop=16, keyframe_gap=2, crop_multiple=8)
    first, again = ClipWindowDataset(clips, spec, seed=3), ClipWindowDataset(clips, spec, seed=3)
    other_seed = ClipWindowDataset(clips, spec, seed=4)
    for index in (0, 7, 123):
        a, b = first[index], again[index]
        assert all(torch.equal(a[key], b[key]) for key in ("buffers", "mask", "keyframes", "keyframe_frames"))
    assert any(not torch.equal(first[i]["buffers"], other_seed[i]["buffers"]) for i in range(5))


def test_window_crop_and_keyframes_cut_the_right_pixels(clips):
    dataset = ClipWindowDataset(clips, WindowSpec(window=3, crop=16, keyframe_gap=2, crop_multiple=8), seed=0)
    for index in range(10):
        item = dataset[index]
        clip = clips[int(item["clip"])]
        start, (top, left) = int(item["start"]), item["origin"].tolist()
        assert top % 8 == 0 and left % 8 == 0 and 0 <= start <= 2
        assert item["buffers"].shape == (len(BUFFERS), 3, 3, 16, 16)  # [N, 3, F, H, W]
        expected = clip.stack[:, start : start + 3, top : top + 16, left : left + 16]
        np.testing.assert_array_equal(item["buffers"].permute(0, 2, 3, 4, 1).numpy(), expected)
        frames = (item["keyframe_frames"] + start).long().tolist()  # back to clip frames
        assert frames == keyframe_indices(5, 2, frames[0]) and frames[0] in (0, 1)
        beauty = clip.stack[BUFFERS.index("beauty"), frames, top : top + 16, left : left + 16]
        np.testing.assert_array_equal(item["keyframes"].permute(0, 2, 3, 1).numpy(), beauty)


def test_keyframe_indices():
    assert keyframe_indices(17, 16, 0) == [0, 16]
    assert keyframe_indices(17, 16, 5) == [5]
    assert keyframe_indices(5, 2, 3) == [1, 3]
    with pytest.raises(ValueError, match="gap"):
        keyframe_indices(5, 0, 0)


def test_bad_windows_are_named(clips):
    with pytest.raises(ValueError, match="shorter than the window 9"):
        ClipWindowDataset(clips, WindowSpec(window=9))
    with pytest.raises(ValueError, match="smaller than the crop 64"):
        ClipWindowDataset(clips, WindowSpec(window=3, crop=64))


def test_user_clip_with_its_own_sequence_name(tmp_path):
    """Any clip folder counts: one EXR sequence of any name, no rf-train synth files."""
    clip = write_clip(tmp_path / "mine" / "shot010", frames=3)
    for path in clip.glob("frame.*.exr"):
        path.rename(clip / path.name.replace("frame.", "shot010_beauty."))
    (clip / "scene.json").unlink()
    (clip / "done").unlink()
    loaded = load_dataset(tmp_path / "mine", None)
    assert loaded[0].name == "shot010" and loaded[0].stack.shape[1] == 3


def test_latent_cache_serves_windows_and_reuses_files(clips, tmp_path):
    torch.manual_seed(0)
    autoencoder = TinyAutoencoder(**TINY_AUTOENCODER).eval()
    cache = LatentCache(autoencoder, autoencoder.state_dict(), tmp_path / "cache")
    window = cache.window_latents(clips[0], start=1, window=3, origin=(8, 16), size=(16, 16))
    full = torch.from_numpy(clips[0].stack).permute(0, 4, 1, 2, 3)  # [N, 3, F, H, W]
    with torch.no_grad():
        direct = autoencoder.encode(full)
    torch.testing.assert_close(window, direct[:, :, 1:4, 2:6, 4:8])
    files = list((tmp_path / "cache").glob("*.safetensors"))
    assert len(files) == 1

    # a new cache over the same weights reads the file instead of encoding again
    reread = LatentCache(autoencoder, autoencoder.state_dict(), tmp_path / "cache")
    with torch.no_grad():
        for param in autoencoder.parameters():
            param.zero_()  # encoding now would give zeros
    torch.testing.assert_close(reread.clip_latents(clips[0]), direct)
    # changed weights change the file name: stale latents are never served
    changed = LatentCache(autoencoder, autoencoder.state_dict(), tmp_path / "cache")
    assert changed.autoencoder_hash != reread.autoencoder_hash
    with pytest.raises(ValueError, match="grid"):
        cache.window_latents(clips[0], 0, 3, origin=(2, 0), size=(16, 16))


def test_a_normalising_shaded_model_sees_its_own_inputs(tiny_dataset):
    clip = load_clip(tiny_dataset / "train" / "clip_0000")
    inputs = ModelInputs(LightingConfig(normalise=True, env_brackets=(0.0, -8.0)), "shaded")
    arrays = to_model_space(clip, inputs)
    assert arrays.names == (*BUFFERS, "env1", "shaded", "plate")
    scale = light_scale(clip.envmap_cam)
    np.testing.assert_allclose(
        arrays.stack[arrays.names.index("beauty")], enc.beauty_to_model(clip.beauty / scale), atol=1e-6
    )
    env_cam = clip.envmap_cam / np.float32(scale)
    shaded = shaded_source_model(clip.gbuffers, env_cam, clip.vertical_fov_degrees)
    np.testing.assert_allclose(arrays.stack[arrays.names.index("shaded")], shaded, atol=1e-6)
    assert ModelInputs(inputs.lighting).env_names() == ("env", "env1")


def test_model_space_arrays_are_cached_by_the_clip_files_and_the_inputs(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    write_clip(root / "train" / "clip_0000", frames=3)
    inputs = ModelInputs(LightingConfig(normalise=True), "shaded")
    first = load_dataset(root, "train", inputs=inputs)[0]
    assert len(list((root / STACK_CACHE_DIR).iterdir())) == 1
    again = load_dataset(root, "train", inputs=inputs)[0]
    np.testing.assert_array_equal(again.stack, first.stack)
    np.testing.assert_array_equal(again.camera_to_world, first.camera_to_world)
    load_dataset(root, "train")  # other inputs: another file
    assert len(list((root / STACK_CACHE_DIR).iterdir())) == 2


def test_clips_shaded_by_several_processes_are_the_clips_shaded_by_one(tmp_path):
    roots = [tmp_path / "one", tmp_path / "two"]
    for index in range(3):
        write_clip(roots[0] / "train" / f"clip_{index:04d}", frames=2)
    shutil.copytree(roots[0], roots[1])
    inputs = ModelInputs(LightingConfig(normalise=True), "shaded_visibility")
    alone = load_dataset(roots[0], "train", inputs=inputs)
    together = load_dataset(roots[1], "train", inputs=inputs, workers=2)
    assert len(list((roots[1] / STACK_CACHE_DIR).iterdir())) == 3
    for a, b in zip(alone, together, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(a.stack, b.stack)


def test_items_carry_keyframes_reprojected_into_their_frames(clips):
    spec = WindowSpec(window=3, crop=16, keyframe_gap=2, reproject=True)
    item = ClipWindowDataset(clips, spec, seed=4)[0]
    reprojected = item["reprojected"]  # [4, window, h, w]: model-space image, validity
    assert reprojected.shape == (4, 3, 16, 16)
    beauty = item["buffers"][BUFFERS.index("beauty")]  # [3, window, h, w]
    for index, frame in enumerate(item["keyframe_frames"].tolist()):
        if 0 <= frame < 3:  # a keyframe inside the window reprojects onto itself exactly
            valid = reprojected[3, int(frame)] > 0
            torch.testing.assert_close(
                reprojected[:3, int(frame)][:, valid], beauty[:, int(frame)][:, valid], atol=1e-5, rtol=0
            )
            torch.testing.assert_close(item["keyframes"][index], beauty[:, int(frame)])
    assert (reprojected[3] > 0).float().mean() > 0.5


def test_a_clip_folder_with_numbered_textures_beside_its_frames_reads_its_frames(tiny_dataset, tmp_path):
    """Issue #30: `tex_wall0-2#.exr` beside `frame.####.exr` no longer stops rf-eval."""
    from renderflow.core.io.clips import frame_pattern, load_clip

    clip = tmp_path / "clip"
    shutil.copytree(tiny_dataset / "train" / "clip_0000", clip)
    for index in range(3):
        shutil.copy(clip / "envmap.exr", clip / f"tex_wall{index}.exr")
    assert frame_pattern(clip) == str(clip / "frame.####.exr")
    assert load_clip(clip).beauty.shape[0] == 5
