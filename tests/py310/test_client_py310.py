"""Run under Python 3.10 (Nuke 15's) with only numpy, pyzmq and pytest, as docs/NUKE.md installs the
client: `.ci/py310` makes that environment. The daemon is a real `rf-daemon` from the main
environment ($RF_DAEMON), serving the bundled model; the inputs are the bundled demo clip's EXRs."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from renderflow.daemon import protocol as wire
from renderflow.daemon.client import DaemonClient, render_payloads
from renderflow_nuke import session

DEMO = Path(__file__).parents[2] / "core" / "demo_clip"
EXR_MAGIC = b"\x76\x2f\x31\x01"


def test_this_is_python_3_10():
    assert sys.version_info[:2] == (3, 10)


@pytest.fixture(scope="module")
def daemon():
    state = Path(tempfile.mkdtemp(prefix="rf-py310-")) / "state.json"
    args = [os.environ["RF_DAEMON"], "start", "--foreground", "--bind", "tcp://127.0.0.1:0"]
    process = subprocess.Popen([*args, "--device", "cpu", "--state-file", str(state)])
    end = time.monotonic() + 120
    while time.monotonic() < end and not (
        state.exists() and json.loads(state.read_text())["state"] == "ready"
    ):
        assert process.poll() is None, "rf-daemon exited"
        time.sleep(0.1)
    yield json.loads(state.read_text())["endpoint"]
    process.terminate()
    process.wait(60)


def demo_files(count):
    return [(1001 + index, DEMO / f"frame.{1001 + index}.exr") for index in range(count)]


def test_client_renders_the_demo_frames(daemon):
    with DaemonClient(daemon, timeout_s=60) as client:
        assert client.hello()["protocol"] == wire.PROTOCOL_VERSION
        reply = client.render({}, render_payloads(demo_files(2), DEMO / "envmap.exr"))
    assert [payload.frame for payload in reply.payloads] == [1001, 1002]
    assert all(bytes(payload.data[:4]) == EXR_MAGIC for payload in reply.payloads)


def test_session_runs_a_render_job_into_a_version_folder(daemon, tmp_path):
    settings = session.NodeSettings(
        node_name="RenderFlow1",
        address=daemon,
        envmap=str(DEMO / "envmap.exr"),
        first=1001,
        last=1002,
        output_root=str(tmp_path),
        camera_file=str(DEMO / "camera.json"),
        timeout_s=60,
    )
    result = session.run_job(settings, demo_files(2), [])
    assert result.folder == tmp_path / "RenderFlow1" / "v001" and (result.first, result.last) == (1001, 1002)
    assert (result.folder / "beauty.1002.exr").read_bytes()[:4] == EXR_MAGIC


def test_session_errors_speak_to_the_compositor(daemon, tmp_path):
    settings = session.NodeSettings(
        node_name="RenderFlow1", address=daemon, envmap=str(tmp_path / "nope.exr")
    )
    with pytest.raises(session.NodeError, match="env map: no file"):
        session.run_job(settings, demo_files(1), [])
