"""Relight, insert and material edit: exact arithmetic on constructed inputs, and each end to end on EXRs."""

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_gbuffers, tiny_v2_pipeline, write_clip

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.exr import read_exr, write_exr
from renderflow.core.io.gbuffer_io import write_canonical_frame
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shot.workflows import (
    DECOMPOSED_VISIBILITY_BLUR,
    MaterialEdit,
    composite_insert,
    edit_materials,
    merge_gbuffers,
    relight,
    shading_ratio,
)
from renderflow.daemon.rf_render.cli import main as rf_render


def constant_gbuffers(depth, albedo=0.5, frames=2, size=8):
    shape = (frames, size, size)
    normal = np.zeros((*shape, 3), np.float32)
    normal[..., 2] = 1
    return GBuffers(
        np.full((*shape, 3), albedo, np.float32),
        normal,
        np.full((*shape, 1), depth, np.float32),
        np.full((*shape, 3), 0.5, np.float32),
    )


def test_merge_takes_the_object_where_it_covers_and_is_nearer():
    plate, obj = constant_gbuffers(depth=5.0, albedo=0.2), constant_gbuffers(depth=3.0, albedo=0.9)
    obj.depth[:, :, 4:] = 8.0  # the object's right half lies behind the plate
    alpha = np.zeros((2, 8, 8, 1), np.float32)
    alpha[:, 2:6] = 1.0  # rows 2-5 covered
    merged, coverage = merge_gbuffers(plate, obj, alpha)
    expected = np.zeros((2, 8, 8, 1), bool)
    expected[:, 2:6, :4] = True
    np.testing.assert_array_equal(coverage.astype(bool), expected)
    np.testing.assert_array_equal(
        merged.albedo, np.where(expected, 0.9, 0.2).astype(np.float32).repeat(3, -1)
    )
    np.testing.assert_array_equal(merged.depth, np.where(expected, 3.0, 5.0).astype(np.float32))
    _, everywhere = merge_gbuffers(plate, obj, alpha, depth_test=False)
    assert everywhere.sum() == 2 * 4 * 8


def test_ratio_drops_the_networks_small_global_changes_and_keeps_soft_shadow_edges():
    without = np.full((1, 1, 5, 3), 2.0, np.float32)
    # the network moves every pixel a little (0.5 %, 0.9 %); a shadow's edge (1.5 %) and core (25 %)
    change = np.array([1.005, 0.991, 0.985, 0.97, 0.75], np.float32)[None, None, :, None]
    ratio = shading_ratio(without * change, without)[0, 0, :, 0]
    assert ratio[0] == 1.0 and ratio[1] == 1.0
    assert 0.985 < ratio[2] < 1.0  # faded in, so the shadow's edge stays soft
    np.testing.assert_allclose(ratio[3:], [0.97, 0.75], rtol=1e-6)


def test_ratio_is_exactly_one_where_the_object_changes_nothing_and_darkens_its_shadow():
    without = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32) + 0.1
    with_object = without.copy()
    with_object[:, 6:] *= 0.25  # a shadow
    ratio = shading_ratio(with_object, without)
    assert (ratio[:, :6] == 1.0).all()
    np.testing.assert_allclose(ratio[:, 6:], 0.25, rtol=1e-6)
    assert (shading_ratio(np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 3))) == 1.0).all()  # black stays 1
    plate = np.random.default_rng(1).random((2, 8, 8, 3), dtype=np.float32)
    coverage = np.zeros((2, 8, 8, 1), np.float32)
    coverage[:, 0] = 1
    comp = composite_insert(plate, with_object, ratio, coverage)
    np.testing.assert_array_equal(comp[:, 1:6], plate[:, 1:6])  # untouched pixels are exactly the plate's
    np.testing.assert_array_equal(comp[:, 0], with_object[:, 0])


def test_material_edit_changes_only_the_masked_pixels_and_sweeps_over_frames():
    gbuffers = make_gbuffers(frames=3, size=8)
    mask = np.zeros((3, 8, 8, 1), np.float32)
    mask[:, :, :4] = 1
    edited = edit_materials(gbuffers, mask, MaterialEdit(roughness=(1.0, 0.0), albedo=(0.0, 0.0, 1.0)))
    np.testing.assert_array_equal(
        edited.material[:, :, :4, 0], np.array([1.0, 0.5, 0.0])[:, None, None].repeat(8, 1).repeat(4, 2)
    )
    np.testing.assert_array_equal(edited.material[:, :, 4:], gbuffers.material[:, :, 4:])
    np.testing.assert_array_equal(edited.material[..., 1:], gbuffers.material[..., 1:])
    assert (edited.albedo[:, :, :4] == [0.0, 0.0, 1.0]).all()
    np.testing.assert_array_equal(edited.albedo[:, :, 4:], gbuffers.albedo[:, :, 4:])
    with pytest.raises(ValueError, match="metallic: values must lie in"):
        edit_materials(gbuffers, mask, MaterialEdit(metallic=2.0))


@pytest.mark.parametrize(
    ("alpha_shape", "object_size", "text"),
    [
        ((2, 8, 8, 1), 16, "object G-buffers: \\[F, H, W\\] = \\[2, 16, 16\\]"),
        ((2, 8, 8), 8, "object alpha: expected"),
    ],
)
def test_merge_rejects_objects_of_another_size_or_without_alpha(alpha_shape, object_size, text):
    with pytest.raises(ValueError, match=text):
        merge_gbuffers(
            constant_gbuffers(5.0), constant_gbuffers(3.0, size=object_size), np.ones(alpha_shape, np.float32)
        )


def test_relight_decomposes_once_and_renders_every_env_map(tiny_checkpoint):
    pipeline = RenderFlowPipeline.from_pretrained(tiny_checkpoint)
    calls = []
    decompose = pipeline.decompose
    pipeline.decompose = lambda *a, **k: calls.append(1) or decompose(*a, **k)
    plate = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    envs = [np.full((16, 32, 3), value, np.float32) for value in (0.5, 2.0)]
    gbuffers, renders = relight(pipeline, plate, envs)
    assert calls == [1] and len(renders) == 2 and renders[0].shape == (3, 32, 32, 3)
    assert gbuffers.validate() == (3, 32, 32)


def test_relight_reads_the_plate_at_its_own_size_whatever_the_checkpoints_inverse_size(tiny_checkpoint):
    """An enlarged read gives better intrinsics but no better a relit plate (RERENDER_INVERSE_MIN_SIZE)."""
    pipeline = RenderFlowPipeline.from_pretrained(tiny_checkpoint)
    pipeline.config = dataclasses.replace(pipeline.config, inverse_min_size=64)
    plate = np.random.default_rng(2).random((2, 32, 32, 3), dtype=np.float32)
    gbuffers, _ = relight(pipeline, plate, [np.full((16, 32, 3), 0.5, np.float32)])
    native = pipeline.decompose(plate, min_size=0)
    np.testing.assert_array_equal(gbuffers.albedo, native["albedo"])
    assert not np.array_equal(pipeline.decompose(plate)["albedo"], native["albedo"])


def test_relight_averages_the_priors_visibility_over_the_decomposed_depths_token_grid():
    """The prior's rays read a decomposed depth's bumps as occluders: relight renders with
    DECOMPOSED_VISIBILITY_BLUR, which changes what the visibility prior gives."""
    pipeline = tiny_v2_pipeline(bridge_source="shaded_visibility", pixel_residual=True)
    plate = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    env = np.full((16, 32, 3), 0.5, np.float32)
    env[2:4, 10:12] = 400.0  # a sun: shadows as well as occlusion
    gbuffers, (relit,) = relight(pipeline, plate, [env])
    blurred = pipeline.render(gbuffers, env, visibility_blur=DECOMPOSED_VISIBILITY_BLUR)
    sharp = pipeline.render(gbuffers, env)
    np.testing.assert_array_equal(relit, blurred)
    assert np.abs(relit - sharp).max() > 1e-3 * sharp.max()


# -- end to end with EXRs -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A stand-in plate (the clip's beauty), an object (a square patch with alpha), a mask, two env maps."""
    root = tmp_path_factory.mktemp("workflows")
    clip = write_clip(root / "clip", frames=3, size=32)
    for frame in (1001, 1002, 1003):
        image = read_exr(clip / f"frame.{frame}.exr")
        camera = {"worldToCamera": image.matrix("worldToCamera")}  # a plate from a tracked camera
        write_exr(root / f"plate.{frame}.exr", image.select(["R", "G", "B"]), "RGB", attributes=camera)
        obj = constant_gbuffers(depth=2.0, albedo=0.8, frames=1, size=32)
        alpha = np.zeros((32, 32, 1), np.float32)
        alpha[12:20, 12:20] = 1.0
        buffers = {"albedo": obj.albedo[0], "normal": obj.normal[0], "depth": obj.depth[0], "alpha": alpha}
        write_canonical_frame(root / f"object.{frame}.exr", buffers, {"renderflow/source": "test"})
        mask = np.zeros((32, 32, 1), np.float32)
        mask[:, :16] = 1
        write_exr(root / f"mask.{frame}.exr", mask, ["A"])
    (root / "sky2.exr").write_bytes((clip / "envmap.exr").read_bytes())
    return root, clip


def test_rf_render_relight_writes_one_sequence_per_env_map(scene, random_checkpoint):
    root, clip = scene
    out = root / "relit" / "{env}.####.exr"
    args = [
        "relight",
        str(root / "plate.####.exr"),
        "--env",
        str(clip / "envmap.exr"),
        "--env",
        str(root / "sky2.exr"),
        "--out",
        str(out),
        "--checkpoint",
        str(random_checkpoint),
    ]
    result = CliRunner().invoke(rf_render, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (root / "relit").iterdir()) == [
        f"{env}.{f}.exr" for env in ("envmap", "sky2") for f in (1001, 1002, 1003)
    ]
    relit = read_exr(root / "relit" / "sky2.1002.exr")
    assert np.isfinite(relit.pixels).all()
    tracked = read_exr(root / "plate.1002.exr").matrix("worldToCamera")
    np.testing.assert_array_equal(relit.matrix("worldToCamera"), tracked)


def test_rf_render_insert_writes_comp_render_and_ratio_layers(scene, random_checkpoint):
    root, clip = scene
    out = root / "insert" / "comp.####.exr"
    args = [
        "insert",
        str(root / "plate.####.exr"),
        "--object",
        str(root / "object.####.exr"),
        "--env",
        str(clip / "envmap.exr"),
        "--out",
        str(out),
        "--checkpoint",
        str(random_checkpoint),
        "--profile",
        "canonical",
    ]
    result = CliRunner().invoke(rf_render, args)
    assert result.exit_code == 0, result.output
    image = read_exr(root / "insert" / "comp.1001.exr")
    assert set(image.channels) == {
        "R",
        "G",
        "B",
        "mask.Y",
        "render.R",
        "render.G",
        "render.B",
        "ratio.R",
        "ratio.G",
        "ratio.B",
    }
    mask = image.select(["mask.Y"])
    assert mask[12:20, 12:20].min() == 1.0 and mask.sum() == 64
    # where the object changes nothing, the comp is the plate, bit for bit (as --help says)
    untouched = (image.select(["ratio.R", "ratio.G", "ratio.B"]) == 1.0).all(axis=-1) & (mask[..., 0] == 0)
    plate = read_exr(root / "plate.1001.exr").select(["R", "G", "B"])
    assert untouched.mean() > 0.5
    np.testing.assert_array_equal(image.select(["R", "G", "B"])[untouched], plate[untouched])
    # the plate's camera stays in the header (Nuke lines the 3-D scene up with it)
    tracked = read_exr(root / "plate.1001.exr").matrix("worldToCamera")
    np.testing.assert_array_equal(image.matrix("worldToCamera"), tracked)


def test_rf_render_insert_rejects_an_object_of_another_size(scene, random_checkpoint, tmp_path):
    root, clip = scene
    big = constant_gbuffers(depth=2.0, frames=1, size=64)
    for frame in (1001, 1002, 1003):
        buffers = {
            "albedo": big.albedo[0],
            "normal": big.normal[0],
            "depth": big.depth[0],
            "alpha": np.ones((64, 64, 1), np.float32),
        }
        write_canonical_frame(tmp_path / f"big.{frame}.exr", buffers, {"renderflow/source": "test"})
    args = [
        "insert",
        str(root / "plate.####.exr"),
        "--object",
        str(tmp_path / "big.####.exr"),
        "--env",
        str(clip / "envmap.exr"),
        "--out",
        str(tmp_path / "o.####.exr"),
        "--checkpoint",
        str(random_checkpoint),
        "--profile",
        "canonical",
    ]
    result = CliRunner().invoke(rf_render, args)
    assert result.exit_code == 1 and "object G-buffers: [F, H, W] = [3, 64, 64]" in result.output


def test_rf_render_edit_sweeps_roughness_inside_the_mask(scene, random_checkpoint):
    root, clip = scene
    out = root / "edit" / "beauty.####.exr"
    inputs = ["edit", str(clip / "frame.####.exr"), "--env", str(clip / "envmap.exr")]
    inputs += [
        "--mask",
        str(root / "mask.####.exr"),
        "--out",
        str(out),
        "--checkpoint",
        str(random_checkpoint),
    ]
    result = CliRunner().invoke(rf_render, [*inputs, "--roughness", "1:0"])
    assert result.exit_code == 0, result.output
    assert len(list((root / "edit").glob("beauty.*.exr"))) == 3
    nothing = CliRunner().invoke(rf_render, inputs)
    assert nothing.exit_code != 0 and "nothing to edit" in nothing.output
    bad = CliRunner().invoke(rf_render, [*inputs, "--albedo", "0.1,0.2"])
    assert bad.exit_code != 0 and "expected 3 value(s)" in bad.output


def test_rf_render_insert_names_a_missing_alpha_and_a_plate_of_another_clip(
    scene, random_checkpoint, tmp_path
):
    root, clip = scene
    base = [
        "insert",
        str(root / "plate.####.exr"),
        "--env",
        str(clip / "envmap.exr"),
        "--out",
        str(tmp_path / "o.####.exr"),
    ]
    base += ["--checkpoint", str(random_checkpoint), "--profile", "canonical"]
    no_alpha = CliRunner().invoke(
        rf_render, [*base, "--object", str(clip / "frame.####.exr"), "--alpha-channel", "coverage.Y"]
    )
    assert no_alpha.exit_code == 1 and "no channel 'coverage.Y' (--alpha-channel)" in no_alpha.output
    assert "try --alpha-channel " in no_alpha.output and "mask.Y" in no_alpha.output  # the clip's coverage
    other = write_clip(tmp_path / "other", frames=3, size=64)
    args = [
        *base,
        "--object",
        str(root / "object.####.exr"),
        "--plate-gbuffers",
        str(other / "frame.####.exr"),
    ]
    mismatch = CliRunner().invoke(rf_render, args)
    assert (
        mismatch.exit_code == 1
        and "plate: [F, H, W] = [3, 32, 32], but the plate's G-buffers has [3, 64, 64]" in mismatch.output
    )
    assert not list(tmp_path.glob("o.*.exr"))
