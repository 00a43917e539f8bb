"""rf-render render/decompose for the farm (in process and through daemons) and rf-daemon's commands."""

import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import render_args, write_clip

from renderflow.core.io.cameras import from_imath
from renderflow.core.io.exr import Layer, read_exr, write_layers
from renderflow.daemon.client import DaemonClient
from renderflow.daemon.daemon_cli import main as rf_daemon
from renderflow.daemon.rf_render.cli import main as rf_render
from renderflow.daemon.server import Server, ServerConfig


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("farm") / "clip", frames=6, size=32)


@pytest.fixture(scope="module")
def daemons(random_checkpoint):
    servers = [Server(ServerConfig(weights=random_checkpoint, bind="tcp://127.0.0.1:*")) for _ in range(2)]
    threads = [threading.Thread(target=server.serve, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    for server in servers:
        assert server.bound.wait(30) and server.model_settled.wait(30)
    yield servers
    for server in servers:
        server.request_stop()
    for thread in threads:
        thread.join(30)


def test_render_in_process_writes_every_frame_of_the_range(clip, random_checkpoint, tmp_path):
    out = tmp_path / "beauty.####.exr"
    result = CliRunner().invoke(
        rf_render,
        render_args(
            clip, out, "--checkpoint", str(random_checkpoint), "--frames", "1002-1005", "--aovs", "depth"
        ),
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"beauty.{n}.exr" for n in range(1002, 1006)]
    image = read_exr(tmp_path / "beauty.1003.exr")
    assert set(image.channels) == {"R", "G", "B", "A", "depth.Z"} and np.isfinite(image.pixels).all()
    # premultiplied over a transparent background, depth finite there (docs/OUTPUTS.md)
    background = image.select(["A"])[..., 0] == 0
    assert background.any() and (image.select(["R", "G", "B"])[background] == 0).all()
    assert (image.select(["depth.Z"])[background] == 1e10).all()


def test_render_on_two_daemons_shares_the_frames_and_matches_in_process(
    clip, random_checkpoint, daemons, tmp_path
):
    local, remote = tmp_path / "local", tmp_path / "remote"
    args = ["--batch-frames", "3"]
    assert (
        CliRunner()
        .invoke(
            rf_render, render_args(clip, local / "b.####.exr", "--checkpoint", str(random_checkpoint), *args)
        )
        .exit_code
        == 0
    )
    addresses = [arg for server in daemons for arg in ("--daemon", server.endpoint)]
    result = CliRunner().invoke(rf_render, render_args(clip, remote / "b.####.exr", *addresses, *args))
    assert result.exit_code == 0, result.output
    for frame in range(1001, 1007):
        np.testing.assert_array_equal(
            read_exr(remote / f"b.{frame}.exr").pixels, read_exr(local / f"b.{frame}.exr").pixels
        )
    done = [server.counts["done"] for server in daemons]
    assert all(count >= 1 for count in done), done


def test_a_dead_daemon_hands_its_frames_to_a_live_one(clip, daemons, tmp_path):
    out = tmp_path / "b.####.exr"
    args = [
        "--daemon",
        "tcp://127.0.0.1:9",
        "--daemon",
        daemons[0].endpoint,
        "--timeout",
        "0.5",
        "--batch-frames",
        "2",
    ]
    result = CliRunner().invoke(rf_render, render_args(clip, out, *args))
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("b.*.exr"))) == 6


def test_skip_existing_leaves_rendered_frames_alone(clip, daemons, tmp_path):
    out = tmp_path / "b.####.exr"
    (tmp_path / "b.1001.exr").write_bytes(b"keep me")
    result = CliRunner().invoke(
        rf_render, render_args(clip, out, "--daemon", daemons[0].endpoint, "--skip-existing")
    )
    assert result.exit_code == 0, result.output
    assert "skipping 1 frame" in result.output and (tmp_path / "b.1001.exr").read_bytes() == b"keep me"
    assert len(list(tmp_path.glob("b.*.exr"))) == 6


def test_a_failed_frame_gives_exit_code_1_and_keeps_the_rest(clip, daemons, tmp_path):
    shot = tmp_path / "shot"
    shot.mkdir()
    for path in sorted(clip.glob("frame.*.exr")):
        (shot / path.name).write_bytes(path.read_bytes())
    (shot / "frame.1006.exr").write_bytes((clip / "envmap.exr").read_bytes())  # an RGB image, no G-buffers
    (shot / "envmap.exr").write_bytes((clip / "envmap.exr").read_bytes())
    out = tmp_path / "out" / "b.####.exr"
    result = CliRunner().invoke(
        rf_render, render_args(shot, out, "--daemon", daemons[0].endpoint, "--batch-frames", "3")
    )
    assert result.exit_code == 1
    # D1: the bad frame fails only itself (its batch is retried frame by frame), with the daemon's words
    assert "1 of 6 frame(s) failed (1006-1006)" in result.output
    assert "the G-buffer EXR of frame 1006: no AOV profile recognises" in result.output
    assert sorted(p.name for p in out.parent.iterdir()) == [f"b.{n}.exr" for n in range(1001, 1006)]


def test_no_daemon_at_the_address_is_a_clear_failure(clip, tmp_path):
    result = CliRunner().invoke(
        rf_render,
        render_args(clip, tmp_path / "b.####.exr", "--daemon", "tcp://127.0.0.1:9", "--timeout", "0.3"),
    )
    assert (
        result.exit_code == 1 and "no answer from the RenderFlow daemon at tcp://127.0.0.1:9" in result.output
    )


def test_decompose_writes_intrinsic_layers_per_frame(clip, daemons, tmp_path):
    out = tmp_path / "intrinsics.####.exr"
    args = [
        "decompose",
        str(clip / "frame.####.exr"),
        "--out",
        str(out),
        "--frames",
        "1001-1002",
        "--targets",
        "albedo",
        "--targets",
        "depth",
    ]
    result = CliRunner().invoke(rf_render, [*args, "--daemon", daemons[1].endpoint])
    assert result.exit_code == 0, result.output
    written = read_exr(tmp_path / "intrinsics.1002.exr")
    assert set(written.channels) == {"albedo.R", "albedo.G", "albedo.B", "depth.Z"}
    plate = read_exr(clip / "frame.1002.exr")  # the plate's camera goes with what is made of it
    np.testing.assert_array_equal(written.matrix("worldToCamera"), plate.matrix("worldToCamera"))


@pytest.mark.slow
def test_rf_daemon_starts_in_the_background_reports_status_and_stops(random_checkpoint, tmp_path):
    state = tmp_path / "state.json"
    bind = "tcp://127.0.0.1:0"
    command = [sys.executable, "-m", "renderflow.daemon.daemon_cli"]
    started = subprocess.run(
        [
            *command,
            "start",
            "--bind",
            bind,
            "--weights",
            str(random_checkpoint),
            "--device",
            "cpu",
            "--state-file",
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    assert "ready on tcp://127.0.0.1:" in started.stdout
    endpoint = json.loads(state.read_text())["endpoint"]
    status = CliRunner().invoke(rf_daemon, ["status", "--address", endpoint])
    assert status.exit_code == 0 and "ready" in status.output
    again = subprocess.run(
        [*command, "start", "--bind", bind, "--state-file", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode != 0 and "already running" in again.stderr
    stopped = CliRunner().invoke(rf_daemon, ["stop", "--state-file", str(state)])
    assert stopped.exit_code == 0, stopped.output
    assert not state.exists()
    gone = CliRunner().invoke(rf_daemon, ["status", "--address", endpoint, "--timeout", "0.3"])
    assert gone.exit_code == 1


def test_rf_daemon_start_fails_loudly_when_the_model_cannot_load(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "renderflow.daemon.daemon_cli",
            "start",
            "--bind",
            "tcp://127.0.0.1:0",
            "--weights",
            str(broken),
            "--device",
            "cpu",
            "--state-file",
            str(tmp_path / "state.json"),
            "--wait",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "not a RenderFlow checkpoint" in result.stderr


def test_rf_daemon_keys_make_a_working_curve_pair(random_checkpoint, tmp_path):
    result = CliRunner().invoke(rf_daemon, ["keys", "--out", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    keys = tmp_path / "keys"
    assert (keys / "server.key_secret").stat().st_mode & 0o077 == 0
    config = ServerConfig(
        weights=random_checkpoint,
        bind="tcp://127.0.0.1:*",
        curve_secret_key=keys / "server.key_secret",
        curve_clients=keys / "clients",
    )
    server = Server(config)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    assert server.bound.wait(30)
    from renderflow.daemon.client import CurveKeys

    with DaemonClient(
        server.endpoint,
        timeout_s=5,
        curve=CurveKeys.from_files(keys / "server.key", keys / "client.key_secret"),
    ) as client:
        assert client.hello()["protocol"] == 1
    server.request_stop()
    thread.join(30)


def _chan_file(clip, path):
    """The clip's header cameras as a Nuke .chan (no roll: Y then X in Nuke's ZXY order)."""
    lines = []
    for frame in range(1001, 1007):
        camera = from_imath(read_exr(clip / f"frame.{frame}.exr").matrix("cameraToWorld"))
        ry = np.degrees(np.arctan2(camera[0, 2], camera[2, 2]))
        rx = np.degrees(np.arcsin(-camera[1, 2]))
        lines.append(f"{frame} {camera[0, 3]} {camera[1, 3]} {camera[2, 3]} {rx} {ry} 0 40")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_passes_in_their_own_files_and_a_chan_camera_render_the_same_through_a_daemon(
    clip, random_checkpoint, daemons, tmp_path
):
    """Blender-style per-pass files and a Nuke .chan: rf-render combines and converts them for the
    daemon, and the frames are the files an in-process render writes, byte for byte."""
    shot = tmp_path / "shot"
    shot.mkdir()
    for frame in range(1001, 1004):
        image = read_exr(clip / f"frame.{frame}.exr")
        keep = [name for name in image.channels if not name.startswith("N.")]
        write_layers(shot / f"main.{frame}.exr", [Layer("", image.select(keep), keep, half=False)])
        write_layers(
            shot / f"Normal.{frame}.exr", [Layer("", image.select(["N.X", "N.Y", "N.Z"]), "XYZ", half=False)]
        )
    chan = _chan_file(clip, tmp_path / "cam.chan")
    common = [
        "render",
        str(shot / "main.####.exr"),
        "--env",
        str(clip / "envmap.exr"),
        "--profile",
        "canonical",
        "--aov",
        f"normal={shot}/Normal.####.exr",
        "--camera",
        str(chan),
    ]
    local = CliRunner().invoke(
        rf_render,
        [*common, "--out", str(tmp_path / "local" / "b.####.exr"), "--checkpoint", str(random_checkpoint)],
    )
    assert local.exit_code == 0, local.output
    remote = CliRunner().invoke(
        rf_render,
        [*common, "--out", str(tmp_path / "remote" / "b.####.exr"), "--daemon", daemons[0].endpoint],
    )
    assert remote.exit_code == 0, remote.output
    for frame in range(1001, 1004):
        assert (tmp_path / "local" / f"b.{frame}.exr").read_bytes() == (
            tmp_path / "remote" / f"b.{frame}.exr"
        ).read_bytes()
    assert not list(Path(tempfile.gettempdir()).glob("rf-passes-*"))


def test_in_process_one_bad_frame_fails_alone_and_names_its_file(clip, random_checkpoint, tmp_path):
    """Issue #30: as on daemons, a batch that fails is retried frame by frame."""
    shot = tmp_path / "shot"
    shot.mkdir()
    for path in sorted(clip.glob("frame.*.exr"))[:4]:
        (shot / path.name).write_bytes(path.read_bytes())
    (shot / "frame.1003.exr").write_bytes((clip / "envmap.exr").read_bytes())  # an RGB image, no G-buffers
    (shot / "envmap.exr").write_bytes((clip / "envmap.exr").read_bytes())
    out = tmp_path / "out" / "b.####.exr"
    result = CliRunner().invoke(rf_render, render_args(shot, out, "--checkpoint", str(random_checkpoint)))
    assert result.exit_code == 1
    assert "1 of 4 frame(s) failed (1003-1003)" in result.output and "frame.1003.exr" in result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["b.1001.exr", "b.1002.exr", "b.1004.exr"]


def test_a_plate_with_nan_names_its_file(clip, random_checkpoint, tmp_path):
    from renderflow.core.io.exr import read_exr, write_exr

    image = read_exr(clip / "frame.1002.exr").select(["R", "G", "B"]).copy()
    image[3, 4, 1] = np.nan
    write_exr(tmp_path / "plate.1002.exr", image, ["R", "G", "B"], half=False)
    result = CliRunner().invoke(
        rf_render,
        [
            "decompose",
            str(tmp_path / "plate.####.exr"),
            "--out",
            str(tmp_path / "i.####.exr"),
            "--checkpoint",
            str(random_checkpoint),
        ],
    )
    assert result.exit_code == 1
    assert "plate.1002.exr: 1 pixel(s) of the plate hold NaN or infinite values" in result.output
