"""rf-render on real-shot inputs: the outputs Nuke expects and each CLI defect of issue #18, one test each."""

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_clip

from renderflow.core.io.cameras import from_imath
from renderflow.core.io.exr import read_exr, write_exr
from renderflow.core.io.gbuffer_io import write_canonical_frame
from renderflow.daemon.rf_render.cli import main as rf_render


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("shot") / "clip", frames=3, size=32)


def preview(clip, out, *extra, gbuffers=None):
    args = ["preview", gbuffers or str(clip / "frame.####.exr"), "--env", str(clip / "envmap.exr")]
    return CliRunner().invoke(rf_render, [*args, "--out", str(out), *extra])


def test_outputs_are_float_premultiplied_tagged_with_the_camera_and_deterministic(clip, tmp_path):
    first = preview(
        clip, tmp_path / "a" / "b.####.exr", "--colour-space", "ACEScg", "--aov", "normal=N.X,N.Y,N.Z"
    )
    assert first.exit_code != 0 and "--aov needs an explicit --profile" in first.output
    for name in ("a", "b"):
        result = preview(clip, tmp_path / name / "b.####.exr", "--colour-space", "ACEScg")
        assert result.exit_code == 0, result.output
    a, b = (tmp_path / name / "b.1002.exr" for name in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()  # no time stamp: the same inputs, the same bytes
    image = read_exr(a)
    assert image.channels == ["R", "G", "B", "A"]
    alpha = image.select(["A"])[..., 0]
    assert set(np.unique(alpha)) == {0.0, 1.0} and (image.select(["R", "G", "B"])[alpha == 0] == 0).all()
    assert image.attributes["colorSpace"] == "ACEScg"
    np.testing.assert_allclose(image.attributes["chromaticities"][-2:], (0.32168, 0.33767), atol=1e-6)
    source = read_exr(clip / "frame.1002.exr")
    np.testing.assert_allclose(
        from_imath(image.matrix("cameraToWorld")), from_imath(source.matrix("cameraToWorld")), atol=1e-5
    )


def test_non_exr_outputs_and_unwritable_folders_are_refused_before_any_work(clip, tmp_path):
    png = preview(clip, tmp_path / "beauty.####.png")
    assert png.exit_code == 1 and "RenderFlow writes OpenEXR" in png.output
    (tmp_path / "file.exr").write_text("not a folder")
    blocked = preview(clip, tmp_path / "file.exr" / "beauty.####.exr")
    assert blocked.exit_code == 1 and "cannot create the folder" in blocked.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file.exr"]


def test_a_single_numbered_file_keeps_its_frame_number(clip, tmp_path):
    shutil.copy(clip / "frame.1003.exr", tmp_path / "shot.0003.exr")
    result = preview(clip, tmp_path / "out" / "beauty.####.exr", gbuffers=str(tmp_path / "shot.0003.exr"))
    assert result.exit_code == 0, result.output
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["beauty.0003.exr"]


def test_a_hole_in_a_sequence_is_logged_and_every_frame_written_says_so(clip, tmp_path, caplog):
    for frame in (1001, 1002):
        shutil.copy(clip / f"frame.{frame}.exr", tmp_path / f"frame.{frame}.exr")
    shutil.copy(clip / "frame.1003.exr", tmp_path / "frame.1004.exr")
    with caplog.at_level(logging.INFO):
        result = preview(clip, tmp_path / "out" / "b.####.exr", gbuffers=str(tmp_path / "frame.####.exr"))
    assert result.exit_code == 0, result.output
    assert "frames 1003 are missing" in caplog.text
    assert "frame 1004 written" in caplog.text and "(3/3)" in caplog.text  # per-frame lines for farm logs


def test_nan_in_the_unused_beauty_layer_does_not_fail_the_render(clip, tmp_path):
    image = read_exr(clip / "frame.1001.exr")
    buffers = {
        "beauty": image.select(["R", "G", "B"]).copy(),
        "albedo": image.select(["albedo.R", "albedo.G", "albedo.B"]),
        "normal": image.select(["N.X", "N.Y", "N.Z"]),
        "depth": image.select(["depth.Z"]),
    }
    buffers["beauty"][3, 3] = np.nan
    attributes = {key: image.attributes[key] for key in ("cameraToWorld", "worldToCamera")}
    write_canonical_frame(
        tmp_path / "nan.1001.exr", buffers, {k: np.asarray(v).reshape(4, 4) for k, v in attributes.items()}
    )
    result = preview(
        clip, tmp_path / "out.####.exr", "--profile", "canonical", gbuffers=str(tmp_path / "nan.####.exr")
    )
    assert result.exit_code == 0, result.output


def test_env_map_ringing_is_clamped_and_real_negatives_get_a_hint(clip, tmp_path):
    env = read_exr(clip / "envmap.exr").select(["R", "G", "B"]).copy()
    env[0, :4] = -0.01  # a resize filter's ringing
    write_exr(tmp_path / "ringing.exr", env, ["R", "G", "B"], half=False)
    args = ["--frames", "1001", "--out", str(tmp_path / "o.####.exr")]
    ok = CliRunner().invoke(
        rf_render, ["preview", str(clip / "frame.####.exr"), "--env", str(tmp_path / "ringing.exr"), *args]
    )
    assert ok.exit_code == 0, ok.output
    write_exr(tmp_path / "negative.exr", -env, ["R", "G", "B"], half=False)
    bad = CliRunner().invoke(
        rf_render, ["preview", str(clip / "frame.####.exr"), "--env", str(tmp_path / "negative.exr"), *args]
    )
    assert bad.exit_code == 1 and "negative.exr" in bad.output and "clamp them at 0" in bad.output


def test_render_errors_name_the_users_files_and_leave_no_temp_folders(clip, random_checkpoint, tmp_path):
    write_exr(tmp_path / "broken.1001.exr", np.ones((32, 32, 3), np.float32), ["R", "G", "B"])
    before = set(Path(tempfile.gettempdir()).glob("rf-job-*"))
    result = CliRunner().invoke(
        rf_render,
        [
            "render",
            str(tmp_path / "broken.####.exr"),
            "--env",
            str(clip / "envmap.exr"),
            "--out",
            str(tmp_path / "out" / "b.####.exr"),
            "--checkpoint",
            str(random_checkpoint),
        ],
    )
    assert result.exit_code == 1
    assert str(tmp_path / "broken.1001.exr") in result.output and "rf-job" not in result.output
    assert set(Path(tempfile.gettempdir()).glob("rf-job-*")) == before


def test_relight_tells_env_maps_with_the_same_name_apart(clip, random_checkpoint, tmp_path):
    for folder in ("day", "night"):
        (tmp_path / folder).mkdir()
        shutil.copy(clip / "envmap.exr", tmp_path / folder / "envmap.exr")
    write_exr(tmp_path / "plate.1001.exr", read_exr(clip / "frame.1001.exr").select(["R", "G", "B"]), "RGB")
    result = CliRunner().invoke(
        rf_render,
        [
            "relight",
            str(tmp_path / "plate.####.exr"),
            "--env",
            str(tmp_path / "day" / "envmap.exr"),
            "--env",
            str(tmp_path / "night" / "envmap.exr"),
            "--out",
            str(tmp_path / "relit" / "{env}.####.exr"),
            "--checkpoint",
            str(random_checkpoint),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "relit").iterdir()) == [
        "day_envmap.1001.exr",
        "night_envmap.1001.exr",
    ]


def test_preview_takes_a_nuke_chan_camera(clip, tmp_path):
    """A .chan from Nuke instead of the header cameras: same cameras, same frames."""
    lines = []
    for frame in (1001, 1002, 1003):
        camera = from_imath(read_exr(clip / f"frame.{frame}.exr").matrix("cameraToWorld"))
        # our clips' cameras have no roll: Y then X, Nuke's ZXY order with z = 0
        ry = np.degrees(np.arctan2(camera[0, 2], camera[2, 2]))
        rx = np.degrees(np.arcsin(-camera[1, 2]))
        lines.append(f"{frame} {camera[0, 3]} {camera[1, 3]} {camera[2, 3]} {rx} {ry} 0 40")
    (tmp_path / "cam.chan").write_text("\n".join(lines) + "\n")
    with_chan = preview(clip, tmp_path / "chan" / "b.####.exr", "--camera", str(tmp_path / "cam.chan"))
    from_header = preview(clip, tmp_path / "header" / "b.####.exr", "--fov", "40")
    assert with_chan.exit_code == 0 and from_header.exit_code == 0, with_chan.output + from_header.output
    np.testing.assert_allclose(
        read_exr(tmp_path / "chan" / "b.1002.exr").pixels,
        read_exr(tmp_path / "header" / "b.1002.exr").pixels,
        atol=1e-4,
    )


def test_decompose_of_one_numbered_plate_file_keeps_its_number(clip, random_checkpoint, tmp_path):
    write_exr(tmp_path / "plate.0007.exr", read_exr(clip / "frame.1001.exr").select(["R", "G", "B"]), "RGB")
    args = ["decompose", str(tmp_path / "plate.0007.exr"), "--out", str(tmp_path / "out" / "i.####.exr")]
    result = CliRunner().invoke(rf_render, [*args, "--checkpoint", str(random_checkpoint)])
    assert result.exit_code == 0, result.output
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["i.0007.exr"]
