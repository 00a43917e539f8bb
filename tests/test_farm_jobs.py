"""Farm integration on existing engines: segments at keyframes, the Open Job Description template run
locally with openjd-cli, and the OpenCue job built with opencue-pyoutline (no Cuebot here)."""

import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner
from conftest import render_args, write_clip

from renderflow.core.shot.segments import segment_frames, segment_starts
from renderflow.daemon.opencue_job import LAYER_NAME, ShotJob, build_outline, job_spec
from renderflow.daemon.rf_render.cli import main as rf_render

TEMPLATE = Path(str(files("renderflow.daemon").joinpath("farm_templates/rf-render.openjd.yaml")))


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    """Six frames with path-traced keyframes at 1001 and 1004 (the clip's beauty as keyframes)."""
    clip = write_clip(tmp_path_factory.mktemp("farmjobs") / "clip", frames=6, size=32)
    keyframes = clip.parent / "kf"
    keyframes.mkdir()
    for frame in (1001, 1004):
        shutil.copy(clip / f"frame.{frame}.exr", keyframes / f"kf.{frame}.exr")
    return clip, str(keyframes / "kf.####.exr")


def test_segments_start_at_keyframes_and_cover_every_frame_once():
    frames = list(range(1001, 1011))
    starts = segment_starts(frames, [1001, 1005, 1009], max_frames=3)
    assert starts == [1001, 1004, 1005, 1008, 1009]  # 1004, 1008: split at the longest segment
    covered = [frame for start in starts for frame in segment_frames(frames, starts, start)]
    assert covered == frames
    assert segment_starts([1003, 1001, 1002], [], 48) == [1001]
    with pytest.raises(ValueError, match="does not start a segment"):
        segment_frames(frames, starts, 1002)


def test_rf_render_segments_and_a_segment_render(shot, random_checkpoint, tmp_path):
    clip, keyframes = shot
    args = ["segments", str(clip / "frame.####.exr"), "--keyframes", keyframes]
    result = CliRunner().invoke(rf_render, args)
    assert result.exit_code == 0 and result.output.strip() == "1001,1004"
    out = tmp_path / "b.####.exr"
    render = render_args(
        clip, out, "--keyframes", keyframes, "--segment", "1004", "--checkpoint", str(random_checkpoint)
    )
    result = CliRunner().invoke(rf_render, render)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.1004.exr", "b.1005.exr", "b.1006.exr"]
    bad = CliRunner().invoke(rf_render, [*render[:-3], "1005", *render[-2:]])
    assert bad.exit_code == 1 and "segments start at [1001, 1004]" in bad.output


@pytest.mark.slow
def test_openjd_template_runs_locally_with_openjd_cli(shot, random_checkpoint, tmp_path):
    clip, keyframes = shot
    openjd = Path(sys.executable).parent / "openjd"
    assert subprocess.run([openjd, "check", TEMPLATE], capture_output=True).returncode == 0
    params = {
        "GBuffers": str(clip / "frame.####.exr"),
        "EnvMap": str(clip / "envmap.exr"),
        "Output": str(tmp_path / "out" / "beauty.####.exr"),
        "Frames": "1001-1006",
        "SegmentStarts": "1001,1004",
        "Keyframes": keyframes,
        "Checkpoint": str(random_checkpoint),
        "Device": "cpu",
        "RfRender": str(Path(sys.executable).parent / "rf-render"),
    }
    args = [openjd, "run", TEMPLATE, *(f"-p{key}={value}" for key, value in params.items())]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "frame 1006 written" in run.stdout  # rf-render's per-frame lines reach the farm log
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == [f"beauty.{frame}.exr" for frame in range(1001, 1007)]


def test_opencue_job_has_one_frame_per_segment(shot, tmp_path):
    clip, keyframes = shot
    job = ShotJob(
        "demo-sh010-renderflow",
        "demo",
        "sh010",
        "artist",
        str(clip / "frame.####.exr"),
        clip / "envmap.exr",
        str(tmp_path / "with space" / "beauty.####.exr"),
        "1001-1006",
        [1001, 1004],
        keyframes=keyframes,
    )
    outline = build_outline(job)
    layer = outline.get_layer(LAYER_NAME)
    assert layer.get_frame_range() == "1001,1004" and layer.get_chunk_size() == 1
    spec = ElementTree.fromstring(job_spec(job).split("?>", 1)[1].split(">", 1)[1])
    (xml_layer,) = spec.iter("layer")
    assert xml_layer.findtext("range") == "1001,1004" and xml_layer.findtext("chunk") == "1"
    command = xml_layer.findtext("cmd")
    assert "--segment #IFRAME#" in command and f"'{tmp_path}/with space/beauty.####.exr'" in command
    assert spec.findtext("show") == "demo" and spec.findtext("shot") == "sh010"
    printed = CliRunner().invoke(
        rf_render,
        [
            "opencue",
            str(clip / "frame.####.exr"),
            "--env",
            str(clip / "envmap.exr"),
            "--out",
            "/renders/b.####.exr",
            "--frames",
            "1001-1006",
            "--keyframes",
            keyframes,
            "--show",
            "demo",
            "--shot",
            "sh010",
        ],
    )
    assert printed.exit_code == 0, printed.output
    assert "<range>1001,1004</range>" in printed.output
