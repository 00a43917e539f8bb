"""Issue #19's daemon cases D1-D7, each through real sockets (and real processes where it matters)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from click.testing import CliRunner
from conftest import write_clip
from test_daemon import (
    ADMIN,
    WAIT_S,
    clip_files,
    raw_socket,
    receive_until_final,
    running_server,
    wait_until_running,
)

from renderflow.core.io.exr import write_exr
from renderflow.daemon import protocol as wire
from renderflow.daemon.client import DaemonClient, DaemonError, render_payloads
from renderflow.daemon.daemon_cli import main as rf_daemon
from renderflow.daemon.farm import plan_batches, run_batches


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("hardening") / "clip", frames=4, size=32)


@pytest.fixture(scope="module")
def server(random_checkpoint):
    with running_server(random_checkpoint, limits=wire.Limits(max_message_bytes=4 << 20)) as server:
        yield server


def render_on(clients, files, envmap, batch_frames, output_for):
    """run_batches of a render of `files` over `clients`, `batch_frames` frames a job."""
    return run_batches(
        clients,
        "render",
        {"fov": 40.0},
        plan_batches([frame for frame, _ in files], batch_frames),
        lambda batch: render_payloads([f for f in files if f[0] in batch], envmap),
        output_for,
    )


def ask(endpoint, frames):
    """Send raw frames on a fresh socket; the first reply's header."""
    socket = raw_socket(endpoint)
    socket.send_multipart(frames)
    assert socket.poll(int(WAIT_S * 1000)), "no reply"
    header = json.loads(socket.recv_multipart()[0])
    socket.close()
    return header


# -- D1: errors carry the request's id, and the client takes them as its answer ------------------------
def test_d1_corrupt_exr_header_and_oversize_requests_are_answered_with_their_id(server, clip):
    good = (clip / "frame.1001.exr").read_bytes()
    corrupt = good[:4] + b"\xff" * 60  # the EXR magic, then no readable header
    payloads = [wire.Payload.exr("gbuffers", corrupt, 1001), wire.Payload.exr("envmap", good)]
    header = ask(server.endpoint, wire.request("render", "corrupt-1", {}, payloads))
    assert header["id"] == "corrupt-1" and header["code"] == wire.E_BAD_PAYLOAD
    padded = good + b"\0" * (3 << 20)  # two frames, each under the 4 MB limit, together over it
    big = [
        wire.Payload.exr("gbuffers", padded, 1001),
        payloads[1],
        wire.Payload.exr("keyframe", padded, 1001),
    ]
    header = ask(server.endpoint, wire.request("render", "big-1", {}, big))
    assert header["id"] == "big-1" and header["code"] == wire.E_TOO_LARGE
    # the client raises the daemon's error at once instead of retrying into "is rf-daemon running?"
    started = time.monotonic()
    with (
        DaemonClient(server.endpoint, timeout_s=5) as client,
        pytest.raises(DaemonError, match=r"EXR"),
    ):
        client.render({}, payloads)
    assert time.monotonic() - started < 2.0


def test_the_client_refuses_a_request_over_the_daemons_limit_before_sending_it(server, clip):
    """One frame over --max-message-mb (4 MiB here): ZeroMQ would drop it unanswered; the client asks
    hello for the limit and refuses it at once, naming both sizes."""
    padded = (clip / "frame.1001.exr").read_bytes() + b"\0" * (5 << 20)
    payloads = [wire.Payload.exr("gbuffers", padded, 1001), wire.Payload.exr("envmap", padded[:100])]
    with DaemonClient(server.endpoint, timeout_s=5, retries=0) as client:
        with pytest.raises(DaemonError, match=r"the request is \d+ bytes; .* takes at most 4194304"):
            client.render({}, payloads)
        assert client.hello()["state"] == "ready"


def test_d1_an_unreadable_request_gets_an_id_less_error_the_client_takes_as_its_own(server):
    header = ask(server.endpoint, [b"\xff\xfe not json"])
    assert header["id"] == "" and header["code"] == wire.E_BAD_MESSAGE


def test_d1_one_corrupt_frame_fails_only_itself_on_two_daemons(random_checkpoint, clip, tmp_path):
    shot = tmp_path / "shot"
    shot.mkdir()
    for _, path in clip_files(clip):
        (shot / path.name).write_bytes(path.read_bytes())
    (shot / "frame.1003.exr").write_bytes(b"\x76\x2f\x31\x01" + b"\xff" * 200)
    with running_server(random_checkpoint) as one, running_server(random_checkpoint) as two:
        clients = [DaemonClient(one.endpoint, timeout_s=5), DaemonClient(two.endpoint, timeout_s=5)]
        outcome = render_on(
            clients,
            clip_files(shot),
            clip / "envmap.exr",
            2,
            lambda frame: tmp_path / "out" / f"b.{frame}.exr",
        )
    assert sorted(path.name for path in outcome.written) == ["b.1001.exr", "b.1002.exr", "b.1004.exr"]
    assert list(outcome.failed) == [1003] and "EXR" in outcome.failed[1003]


# -- D2: a stopping daemon's work goes to the others ------------------------------------------------------
def test_d2_rolling_restart_of_a_two_daemon_pool_renders_every_frame(
    random_checkpoint, tiny_checkpoint, clip, long_clip, tmp_path
):
    with (
        running_server(tiny_checkpoint, shutdown_grace_s=60) as stopping,
        running_server(random_checkpoint) as healthy,
    ):
        busy = raw_socket(stopping.endpoint)  # a long job keeps the stopping daemon alive and answering
        busy.send_multipart(
            wire.request(
                "render",
                "long",
                {"fov": 40.0},
                render_payloads(clip_files(long_clip), long_clip / "envmap.exr"),
            )
        )
        wait_until_running(busy, "long")
        stopping.request_stop()
        clients = [DaemonClient(stopping.endpoint, timeout_s=5), DaemonClient(healthy.endpoint, timeout_s=5)]
        outcome = render_on(
            clients, clip_files(clip), clip / "envmap.exr", 1, lambda frame: tmp_path / f"b.{frame}.exr"
        )
        busy.close()
    assert not outcome.failed and len(outcome.written) == 4


# -- D6/D7: hostile headers are bad requests, never internal errors ------------------------------------
@pytest.mark.parametrize(
    ("header", "code"),
    [
        (b'{"v": 1, "id": "nan", "op": "render", "params": {"fov": NaN}}', wire.E_BAD_MESSAGE),
        (b'{"v": 1, "id": "big", "op": "render", "params": {"fov": 1e400}}', wire.E_BAD_REQUEST),
        (b'{"v": 1, "id": "exp", "op": "render", "params": {"exposure": 1000}}', wire.E_BAD_REQUEST),
        (b'{"v": true, "id": "bool", "op": "hello"}', wire.E_UNSUPPORTED_VERSION),
        (
            b'{"v": 1, "id": "deep", "op": "hello", "params": ' + b"[" * 100000 + b"]" * 100000 + b"}",
            wire.E_BAD_MESSAGE,
        ),
        (
            b'{"v": 1, "id": "huge", "op": "render", "params": {"steps": ' + b"9" * 5000 + b"}}",
            wire.E_BAD_MESSAGE,
        ),
    ],
    ids=["nan", "inf-fov", "exposure", "v-true", "deep-json", "huge-int"],
)
def test_d6_hostile_numbers_and_nesting(server, header, code):
    reply = ask(server.endpoint, [header])
    assert reply["code"] == code, reply
    assert ask(server.endpoint, wire.request("hello", "alive"))["kind"] == wire.KIND_RESULT


def test_d7_tiny_env_maps_are_refused(server, clip, tmp_path):
    write_exr(tmp_path / "tiny.exr", np.ones((1, 1, 3), np.float32), "RGB")
    payloads = render_payloads(clip_files(clip, 1), tmp_path / "tiny.exr")
    header = ask(server.endpoint, wire.request("render", "tiny", {}, payloads))
    assert header["code"] == wire.E_BAD_PAYLOAD and "at least 16x8" in header["message"]


def test_d7_a_retry_on_a_fresh_socket_is_answered_once_and_rendered_once(server, clip):
    frames = wire.request(
        "render", "retry-1", {"fov": 40.0}, render_payloads(clip_files(clip, 2), clip / "envmap.exr")
    )
    before = server.counts["done"]
    first, second = raw_socket(server.endpoint), raw_socket(server.endpoint)
    first.send_multipart(frames)
    assert first.poll(int(WAIT_S * 1000)) and json.loads(first.recv_multipart()[0])["kind"] == "accepted"
    second.send_multipart(frames)  # the Lazy Pirate retry: same id, same request, new socket
    seen = receive_until_final(second, ["retry-1"], linger_s=0.5)
    assert seen["retry-1"][-1] == wire.KIND_RESULT
    # the socket it took over from is told so at once, not left waiting (three sockets at once alike)
    taken = receive_until_final(first, ["retry-1"], linger_s=0.2)["retry-1"]
    assert taken[-1] == wire.KIND_ERROR and wire.KIND_RESULT not in taken
    third = raw_socket(server.endpoint)  # after it finished: the same answer again, no second render
    third.send_multipart(frames)
    assert receive_until_final(third, ["retry-1"], linger_s=0.2)["retry-1"] == [wire.KIND_RESULT]
    assert server.counts["done"] == before + 1
    other = wire.request(
        "render", "retry-1", {"fov": 30.0}, render_payloads(clip_files(clip, 2), clip / "envmap.exr")
    )
    third.send_multipart(other)  # another request with a taken id
    assert json.loads(third.recv_multipart()[0])["code"] == wire.E_DUPLICATE_JOB
    for socket in (first, second, third):
        socket.close()


def test_d7_admin_ops_need_the_owners_token(server, long_clip):
    for op in ("shutdown", "free"):
        assert ask(server.endpoint, wire.request(op, f"{op}-1"))["code"] == wire.E_FORBIDDEN
        assert (
            ask(server.endpoint, wire.request(op, f"{op}-2", {"token": "guess"}))["code"] == wire.E_FORBIDDEN
        )
    busy = raw_socket(server.endpoint)
    payloads = render_payloads(clip_files(long_clip), long_clip / "envmap.exr")
    busy.send_multipart(wire.request("render", "mine", {"fov": 40.0}, payloads))
    wait_until_running(busy, "mine")
    assert all(job["id"] != "mine" for job in ask(server.endpoint, wire.request("status", "s1"))["jobs"])
    with DaemonClient(server.endpoint, timeout_s=5, admin_token=ADMIN) as admin:
        assert any(job["id"] == "mine" for job in admin.status()["jobs"])  # the owner sees everyone's
        busy.send_multipart(wire.request("cancel", "stop-mine", {"job": "mine"}))
        receive_until_final(busy, ["mine", "stop-mine"], linger_s=0.1)
        busy.close()
        assert admin.free()["freed_cache_bytes"] >= 0


def test_d7_a_second_daemon_on_a_taken_port_says_so_in_a_second(tmp_path):
    taken = zmq.Context.instance().socket(zmq.ROUTER)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    try:
        started = time.monotonic()
        result = CliRunner().invoke(
            rf_daemon,
            [
                "start",
                "--foreground",
                "--bind",
                f"tcp://127.0.0.1:{port}",
                "--state-file",
                str(tmp_path / "s.json"),
            ],
        )
        assert result.exit_code == 1 and "cannot listen on" in result.output
        assert result.exc_info[0] is SystemExit and time.monotonic() - started < 3.0
    finally:
        taken.close(linger=0)


@pytest.mark.slow
def test_d4_a_job_stuck_past_the_grace_is_answered_and_left_behind_without_an_abort(tiny_checkpoint, clip):
    with running_server(tiny_checkpoint, shutdown_grace_s=0.0) as server:
        release, entered = threading.Event(), threading.Event()

        def stuck(message, progress):  # a chunk that never reaches a cancel point
            entered.set()
            release.wait(30)
            return {}, []

        server.renderer.run = stuck
        socket = raw_socket(server.endpoint)
        socket.send_multipart(
            wire.request(
                "render", "stuck", {"fov": 40.0}, render_payloads(clip_files(clip, 1), clip / "envmap.exr")
            )
        )
        assert entered.wait(WAIT_S)
        started = time.monotonic()
        server.request_stop()
        seen = receive_until_final(socket, ["stuck"], linger_s=0.1)
        assert seen["stuck"][-1] == wire.KIND_ERROR and time.monotonic() - started < 10
        socket.close()
    assert server.worker_stuck  # rf-daemon then leaves with os._exit instead of aborting
    release.set()


# -- D4 and D5: real processes --------------------------------------------------------------------------
def start_daemon(checkpoint, state, *extra):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "renderflow.daemon.daemon_cli",
            "start",
            "--foreground",
            "--bind",
            "tcp://127.0.0.1:0",
            "--weights",
            str(checkpoint),
            "--device",
            "cpu",
            "--state-file",
            str(state),
            *extra,
        ],
        stderr=subprocess.PIPE,
    )
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if state.exists() and json.loads(state.read_text()).get("state") not in (None, "loading"):
            return process, json.loads(state.read_text())
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    raise AssertionError("the daemon did not start")


@pytest.mark.slow
def test_d4_grace_zero_stops_cleanly_mid_job_and_d5_a_killed_daemon_leaves_nothing_behind(
    tiny_checkpoint, long_clip, tmp_path
):
    state = tmp_path / "state.json"
    process, record = start_daemon(tiny_checkpoint, state, "--grace", "0")
    assert oct(os.stat(state.with_suffix(".token")).st_mode & 0o777) == "0o600"
    socket = raw_socket(record["endpoint"])
    socket.send_multipart(
        wire.request(
            "render", "long", {"fov": 40.0}, render_payloads(clip_files(long_clip), long_clip / "envmap.exr")
        )
    )
    wait_until_running(socket, "long")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0, process.stderr.read().decode()[-2000:]  # not -6 (SIGABRT)
    assert "terminate called" not in process.stderr.read().decode()
    assert receive_until_final(socket, ["long"], linger_s=0.1)["long"][-1] in wire.FINAL_KINDS
    socket.close()
    assert not state.exists() and not state.with_suffix(".token").exists()

    # D5: SIGKILL leaves the state file and a job folder; stop and start see through them
    process, record = start_daemon(tiny_checkpoint, state)
    socket = raw_socket(record["endpoint"])
    socket.send_multipart(
        wire.request(
            "render", "long", {"fov": 40.0}, render_payloads(clip_files(long_clip), long_clip / "envmap.exr")
        )
    )
    folders = Path(tempfile.gettempdir()).glob(f"rf-job-{process.pid}-*")
    end = time.monotonic() + WAIT_S
    while not list(folders) and time.monotonic() < end:
        time.sleep(0.05)
        folders = Path(tempfile.gettempdir()).glob(f"rf-job-{process.pid}-*")
    process.kill()
    process.wait()
    socket.close()
    left = list(Path(tempfile.gettempdir()).glob(f"rf-job-{process.pid}-*"))
    assert left and state.exists()
    # the pid now "belongs" to this test process: stop must not signal it
    stale = json.loads(state.read_text()) | {"pid": os.getpid()}
    state.write_text(json.dumps(stale))
    result = CliRunner().invoke(rf_daemon, ["stop", "--state-file", str(state)])
    assert result.exit_code == 1 and "stale" in result.output and not state.exists()
    process, _ = start_daemon(tiny_checkpoint, state)  # starts although a state file was there
    try:
        assert not any(folder.exists() for folder in left)  # the dead daemon's job folder is gone
    finally:
        process.terminate()
        process.wait(30)


# -- the two permission cases: one-line errors, never a traceback -----------------------------------------
NOBODY = 65534


def as_another_user(command):
    """`rf-daemon` with `command` run by a user other than the files' and process's owner: directly when
    this is not root (the test's targets then belong to root), else in a child dropped to `nobody`.
    Returns (exit code, output)."""
    if os.geteuid() != 0:
        result = CliRunner().invoke(rf_daemon, command)
        return result.exit_code, result.output, result.exc_info[0]
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = CliRunner().invoke(rf_daemon, command)
            report = [result.exit_code, result.output, result.exc_info[0].__name__]
        except BaseException as error:
            report = [-1, repr(error), "crash"]
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        code, output, raised = json.loads(pipe.read())
    return code, output, SystemExit if raised == "SystemExit" else raised


def test_stopping_another_users_daemon_is_a_one_line_error(tmp_path):
    from renderflow.daemon.processes import process_start_time

    folder = Path(tempfile.mkdtemp())
    os.chmod(folder, 0o755)
    owned = None
    if os.geteuid() == 0:  # a process of root's, stopped by nobody
        owned = subprocess.Popen(["sleep", "60"])
        pid = owned.pid
    else:  # init belongs to root: this user cannot signal it
        pid = 1
    state = folder / "rf-daemon.json"
    state.write_text(json.dumps({"pid": pid, "started": process_start_time(pid), "endpoint": "tcp://x:1"}))
    os.chmod(state, 0o644)
    try:
        code, output, raised = as_another_user(["stop", "--state-file", str(state)])
        assert raised is SystemExit and code == 1, output
        assert f"Error: rf-daemon (pid {pid}) for tcp://127.0.0.1:5557 belongs to another user" in output
        assert len(output.strip().splitlines()) == 1 and (owned is None or owned.poll() is None)
    finally:
        if owned is not None:
            owned.kill()
            owned.wait()


def test_a_token_file_of_another_user_is_a_one_line_error():
    if os.geteuid() == 0:  # a sticky shared folder (as /tmp) holding root's token file, started by nobody
        folder = Path(tempfile.mkdtemp())
        os.chmod(folder, 0o1777)
        (folder / "rf-daemon.token").write_text("roots-token")
    else:  # a folder this user cannot write
        folder = Path("/")
    state = folder / "rf-daemon.json"
    command = ["start", "--foreground", "--device", "cpu"]  # the token is written before any model loads
    code, output, raised = as_another_user(
        [*command, "--bind", "tcp://127.0.0.1:0", "--state-file", str(state)]
    )
    assert raised is SystemExit and code == 1, output
    assert f"Error: {folder / 'rf-daemon.token'}: cannot write the admin token" in output
    assert "Traceback" not in output
