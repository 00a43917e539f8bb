"""rf-daemon over real ZeroMQ sockets on 127.0.0.1: every request answered once, bad ones too."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict

import numpy as np
import pytest
import torch
import zmq
import zmq.auth
from click.testing import CliRunner
from conftest import make_envmap, make_gbuffers, write_clip

from renderflow.core.io.exr import read_exr
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.daemon import protocol as wire
from renderflow.daemon.client import (
    CurveKeys,
    DaemonClient,
    DaemonError,
    DaemonUnavailable,
    decompose_payloads,
    render_array_payloads,
    render_payloads,
)
from renderflow.daemon.rf_render.cli import main as rf_render
from renderflow.daemon.server import Server, ServerConfig

WAIT_S = 30.0
ADMIN = "the-owner's-token"


@contextlib.contextmanager
def running_server(checkpoint, **options):
    options.setdefault("admin_token", ADMIN)
    server = Server(ServerConfig(weights=checkpoint, bind="tcp://127.0.0.1:*", **options))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    assert server.bound.wait(WAIT_S) and server.model_settled.wait(WAIT_S)
    try:
        yield server
    finally:
        server.request_stop()
        thread.join(WAIT_S)
        assert not thread.is_alive()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("daemon") / "clip", frames=5, size=32)


@pytest.fixture(scope="module")
def server(random_checkpoint):
    with running_server(random_checkpoint, limits=wire.Limits(max_pixels=64 * 64, max_frames=60)) as server:
        yield server


def clip_files(clip, count=None):
    files = sorted(clip.glob("frame.*.exr"))[:count]
    return [(int(path.name.split(".")[1]), path) for path in files]


def raw_socket(endpoint):
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    return socket


def receive_until_final(socket, job_ids, linger_s=1.5):
    """Every message per job id until all are final, then `linger_s` more to catch any extra."""
    seen = defaultdict(list)
    deadline = None
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        if deadline is None and all(any(k in wire.FINAL_KINDS for k in seen[j]) for j in job_ids):
            deadline = time.monotonic() + linger_s
        if deadline is not None and time.monotonic() > deadline:
            break
        if socket.poll(50):
            header = json.loads(socket.recv_multipart()[0])
            seen[header["id"]].append(header["kind"])
    return seen


def wait_until_running(socket, job_id):
    """The replies to `job_id` up to its first chunk's progress (sent by the worker, so it is running)."""
    kinds = []
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        if socket.poll(50):
            header = json.loads(socket.recv_multipart()[0])
            kinds.append(header["kind"])
            if header["kind"] == wire.KIND_PROGRESS and header["done"] >= 1:
                return kinds
    raise AssertionError(f"{job_id} never started: {kinds}")


def test_hello_reports_model_limits_and_capabilities(server):
    with DaemonClient(server.endpoint, timeout_s=5) as client:
        hello = client.hello()
    assert hello["protocol"] == wire.PROTOCOL_VERSION and hello["state"] == "ready"
    assert (
        hello["model"]["keyframes"] and hello["model"]["decompose"] and hello["model"]["frame_multiple"] == 8
    )
    assert hello["limits"]["max_frames"] == 60 and "render" in hello["capabilities"]["ops"]


def rf_render_in_process(clip, checkpoint, out, *extra):
    """The same render by rf-render in this process (core.shot_render on the user's files)."""
    args = ["render", str(clip / "frame.####.exr"), "--env", str(clip / "envmap.exr"), "--out", str(out)]
    result = CliRunner().invoke(rf_render, [*args, "--checkpoint", str(checkpoint), "--fov", "40", *extra])
    assert result.exit_code == 0, result.output


def test_render_over_the_wire_is_the_file_rf_render_writes(server, clip, random_checkpoint, tmp_path):
    payloads = render_payloads(clip_files(clip), clip / "envmap.exr")
    params = {"aovs": ["alpha", "depth"], "fov": 40.0}  # protocol 1's "alpha": A is always written
    with DaemonClient(server.endpoint, timeout_s=5) as client:
        remote = client.render(params, payloads)
    rf_render_in_process(clip, random_checkpoint, tmp_path / "b.####.exr", "--aovs", "depth")
    assert [p.frame for p in remote.payloads] == [1001, 1002, 1003, 1004, 1005]
    for sent in remote.payloads:
        assert sent.data == (tmp_path / f"b.{sent.frame}.exr").read_bytes()  # byte for byte
    image = read_exr_bytes(remote.payloads[-1].data)
    assert image.channels == ["R", "G", "B", "A", "depth.Z"] and np.isfinite(image.pixels).all()


def read_exr_bytes(data, _folder=[]):  # noqa: B006  # one temp folder for the module's reads
    import tempfile
    from pathlib import Path

    if not _folder:
        _folder.append(Path(tempfile.mkdtemp(prefix="rf-test-")))
    path = _folder[0] / f"{uuid.uuid4().hex}.exr"
    path.write_bytes(data)
    return read_exr(path)


def test_raw_arrays_render_bit_identical_to_the_pipeline(server, random_checkpoint):
    gbuffers, env = make_gbuffers(frames=3), make_envmap()
    payloads = render_array_payloads(gbuffers.albedo, gbuffers.normal, gbuffers.depth, gbuffers.material, env)
    with DaemonClient(server.endpoint, timeout_s=5) as client:
        reply = client.render({}, payloads)
    expected = RenderFlowPipeline.from_pretrained(random_checkpoint).render(gbuffers, env)
    np.testing.assert_array_equal(reply.named("beauty")[0].array(), expected)


def test_relight_reuses_cached_gbuffer_latents_and_matches_a_cold_render(
    server, clip, random_checkpoint, tmp_path
):
    files = clip_files(clip, 3)
    with DaemonClient(server.endpoint, timeout_s=5, admin_token=ADMIN) as client:
        client.free()  # an empty cache
        cold = client.render({"fov": 40.0}, render_payloads(files, clip / "envmap.exr"))
        relit = client.render({"fov": 40.0, "exposure": 1.5}, render_payloads(files, clip / "envmap.exr"))
        status = client.status()
    assert not cold.header["cached_gbuffers"] and relit.header["cached_gbuffers"]
    assert status["cache"]["hits"] >= 1 and status["cache"]["entries"] >= 1
    fresh = tmp_path / "fresh.####.exr"
    rf_render_in_process(clip, random_checkpoint, fresh, "--exposure", "1.5", "--frames", "1001-1003")
    for got in relit.payloads:
        assert got.data == (tmp_path / f"fresh.{got.frame}.exr").read_bytes()
    assert not np.array_equal(
        read_exr_bytes(cold.payloads[0].data).pixels, read_exr_bytes(relit.payloads[0].data).pixels
    )


def test_keyframes_travel_as_exrs_and_change_the_render(server, clip):
    files = clip_files(clip, 3)
    with DaemonClient(server.endpoint, timeout_s=5) as client:
        plain = client.render({"fov": 40.0}, render_payloads(files, clip / "envmap.exr"))
        guided = client.render({"fov": 40.0}, render_payloads(files, clip / "envmap.exr", [files[1]]))
    assert len(guided.payloads) == 3
    # the tiny checkpoint's keyframe adapter is zero-initialised: with keyframes the output may equal
    # the plain one, but the job must succeed through the keyframe path
    assert (
        read_exr_bytes(guided.payloads[1].data).pixels.shape
        == read_exr_bytes(plain.payloads[1].data).pixels.shape
    )


def test_decompose_returns_intrinsic_layers_nuke_can_read(server, clip):
    with DaemonClient(server.endpoint, timeout_s=5) as client:
        reply = client.decompose({}, decompose_payloads(clip_files(clip, 2)))
    image = read_exr_bytes(reply.payloads[0].data)
    assert sorted(image.channels) == sorted(
        [
            "albedo.R",
            "albedo.G",
            "albedo.B",
            "N.X",
            "N.Y",
            "N.Z",
            "depth.Z",
            "roughness.Y",
            "metallic.Y",
        ]
    )
    assert [p.frame for p in reply.payloads] == [1001, 1002]


def test_bad_requests_get_error_replies_and_the_daemon_keeps_serving(server, clip, tmp_path):
    big = tmp_path / "big.exr"
    from renderflow.core.io.exr import write_exr

    write_exr(big, np.zeros((128, 128, 3), np.float32), ["R", "G", "B"])
    header = json.dumps(
        {
            "v": 1,
            "id": "lie",
            "op": "render",
            "payloads": [{"name": "albedo", "encoding": "raw", "dtype": "float32", "shape": [9, 9]}],
        }
    ).encode()
    cases = {
        "garbage": [b"\x00\xff garbage"],
        "not-json": [b"{not json"],
        "unknown-op": wire.request("paint", "unknown-op"),
        "old-version": [b'{"v": 0, "id": "old-version", "op": "hello"}'],
        "lie": [header, b"1234"],
        "oversize": wire.request(
            "render", "oversize", payloads=render_payloads([(1, big)], clip / "envmap.exr")
        ),
        # readable ids, though the strict decoding refuses the header (NaN) or a frame number (1e30)
        "nan-fov": [b'{"v": 1, "id": "nan-fov", "op": "render", "params": {"fov": NaN}, "payloads": []}'],
        "huge-frame": [
            json.dumps(
                {
                    "v": 1,
                    "id": "huge-frame",
                    "op": "decompose",
                    "payloads": [{"name": "image", "encoding": "exr", "frame": 10**30}],
                }
            ).encode(),
            b"exr",
        ],
        "no-layers": wire.request(
            "render",
            "no-layers",
            {"fov": 40.0},
            render_payloads([(1, clip / "envmap.exr")], clip / "envmap.exr"),
        ),
    }
    socket = raw_socket(server.endpoint)
    replies = {}
    for frames in cases.values():
        socket.send_multipart(frames)
    end = time.monotonic() + WAIT_S
    while len(replies) < len(cases) and time.monotonic() < end:
        if socket.poll(100):
            header = json.loads(socket.recv_multipart()[0])
            if header["kind"] == wire.KIND_ERROR:
                replies[header["id"] or f"anonymous-{len(replies)}"] = header
    socket.close()
    codes = {key: reply["code"] for key, reply in replies.items()}
    assert codes["unknown-op"] == wire.E_UNKNOWN_OP
    assert codes["old-version"] == wire.E_UNSUPPORTED_VERSION
    assert codes["lie"] == wire.E_BAD_PAYLOAD
    assert codes["oversize"] == wire.E_TOO_LARGE
    assert (
        codes["nan-fov"] == wire.E_BAD_MESSAGE and "NaN is not a JSON number" in replies["nan-fov"]["message"]
    )
    assert (
        codes["huge-frame"] == wire.E_BAD_REQUEST and "within ±999999999" in replies["huge-frame"]["message"]
    )
    assert codes["no-layers"] == wire.E_BAD_INPUT and "AOV profile" in replies["no-layers"]["message"]
    assert (
        sorted(code for key, code in codes.items() if key.startswith("anonymous")) == [wire.E_BAD_MESSAGE] * 2
    )
    with DaemonClient(server.endpoint, timeout_s=5) as client:
        assert client.hello()["state"] == "ready"


def test_many_concurrent_clients_get_every_request_answered_exactly_once(server, clip):
    payloads = render_payloads(clip_files(clip, 2), clip / "envmap.exr")
    sockets = [raw_socket(server.endpoint) for _ in range(6)]
    sent = defaultdict(list)
    for index, socket in enumerate(sockets):
        for op in ("render", "hello", "status", "render"):
            job_id = f"{index}-{op}-{uuid.uuid4().hex[:6]}"
            socket.send_multipart(
                wire.request(
                    op, job_id, {"fov": 40.0} if op == "render" else {}, payloads if op == "render" else ()
                )
            )
            sent[index].append(job_id)
    results = [None] * len(sockets)

    def collect(index):
        results[index] = receive_until_final(sockets[index], sent[index])

    threads = [threading.Thread(target=collect, args=(i,)) for i in range(len(sockets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, seen in enumerate(results):
        assert set(seen) == set(sent[index])
        for job_id, kinds in seen.items():
            finals = [kind for kind in kinds if kind in wire.FINAL_KINDS]
            assert finals == ["result"], (job_id, kinds)
            assert kinds[-1] == "result", f"{job_id}: replies after the final one: {kinds}"
    for socket in sockets:
        socket.close()


def test_cancel_stops_a_running_job_and_a_queued_one(server, long_clip):
    payloads = render_payloads(clip_files(long_clip), long_clip / "envmap.exr")
    cancel = threading.Event()
    with DaemonClient(server.endpoint, timeout_s=5) as client:
        with pytest.raises(DaemonError) as raised:
            client.render(
                {"fov": 40.0},
                payloads,
                progress=lambda done, total, message: cancel.set(),
                cancel_event=cancel,
            )
        assert raised.value.code == wire.E_CANCELLED
        assert client.hello()["state"] == "ready"
    socket = raw_socket(server.endpoint)
    socket.send_multipart(wire.request("render", "first", {"fov": 40.0}, payloads))
    socket.send_multipart(wire.request("render", "second", {"fov": 40.0}, payloads))
    socket.send_multipart(wire.request("cancel", "stop-second", {"job": "second"}))
    socket.send_multipart(wire.request("cancel", "stop-nothing", {"job": "no-such-job"}))
    seen = receive_until_final(socket, ["first", "second", "stop-second", "stop-nothing"], linger_s=0.2)
    socket.close()
    assert seen["first"][-1] == "result"
    assert seen["second"] == ["accepted", "error"]
    assert seen["stop-second"] == ["result"] and seen["stop-nothing"] == ["error"]


def test_out_of_memory_is_an_error_with_advice_and_the_daemon_lives_on(server, clip, monkeypatch):
    pipeline = server.renderer.pipeline()

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pipeline, "render", exhausted)
    with DaemonClient(server.endpoint, timeout_s=5) as client:
        with pytest.raises(DaemonError) as raised:
            client.render({"fov": 40.0}, render_payloads(clip_files(clip, 2), clip / "envmap.exr"))
        assert raised.value.code == wire.E_OUT_OF_MEMORY and "fewer frames" in raised.value.message
        monkeypatch.undo()
        assert (
            len(
                client.render(
                    {"fov": 40.0}, render_payloads(clip_files(clip, 2), clip / "envmap.exr")
                ).payloads
            )
            == 2
        )


def test_free_drops_the_model_and_the_next_job_loads_it_again(server, clip):
    with DaemonClient(server.endpoint, timeout_s=10, admin_token=ADMIN) as client:
        client.free()
        assert client.status()["state"] == "freed" and not client.hello()["model"]["loaded"]
        client.render({"fov": 40.0}, render_payloads(clip_files(clip, 2), clip / "envmap.exr"))
        assert client.hello()["state"] == "ready"


def test_shutdown_lets_the_running_job_finish_and_fails_the_queued(tiny_checkpoint, long_clip):
    payloads = render_payloads(clip_files(long_clip), long_clip / "envmap.exr")
    with running_server(tiny_checkpoint) as server:
        socket = raw_socket(server.endpoint)
        socket.send_multipart(wire.request("render", "running", {"fov": 40.0}, payloads))
        started = wait_until_running(socket, "running")
        socket.send_multipart(wire.request("render", "queued", {"fov": 40.0}, payloads))
        socket.send_multipart(wire.request("shutdown", "bye", {"token": ADMIN}))
        seen = receive_until_final(socket, ["running", "queued", "bye"], linger_s=0.2)
        socket.close()
    seen["running"] = started + seen["running"]
    assert seen["running"][-1] == "result" and seen["queued"][-1] == "error" and seen["bye"] == ["result"]


def test_stop_after_the_grace_period_cancels_the_running_job_with_an_answer(tiny_checkpoint, long_clip):
    payloads = render_payloads(clip_files(long_clip), long_clip / "envmap.exr")
    with (
        running_server(tiny_checkpoint, shutdown_grace_s=0.0) as server,
        DaemonClient(server.endpoint, timeout_s=5) as client,
        pytest.raises(DaemonError) as raised,
    ):
        client.render({"fov": 40.0}, payloads, progress=lambda *_: server.request_stop())
    assert raised.value.code == wire.E_CANCELLED and "shutting down" in raised.value.message


def test_idle_daemon_stops_by_itself(tiny_checkpoint):
    server = Server(ServerConfig(weights=tiny_checkpoint, bind="tcp://127.0.0.1:*", idle_timeout_s=0.3))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    thread.join(WAIT_S)
    assert not thread.is_alive()


def test_client_times_out_cleanly_when_the_daemon_is_killed(tiny_checkpoint, long_clip, tmp_path):
    state = tmp_path / "state.json"
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
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--state-file",
            str(state),
        ],
    )
    try:
        end = time.monotonic() + WAIT_S
        while (
            time.monotonic() < end
            and json.loads(state.read_text() if state.exists() else '{"state": "loading"}')["state"]
            == "loading"
        ):
            time.sleep(0.05)
        endpoint = json.loads(state.read_text())["endpoint"]
        payloads = render_payloads(clip_files(long_clip), long_clip / "envmap.exr")
        client = DaemonClient(endpoint, timeout_s=1.0, retries=1)
        started = time.monotonic()
        with pytest.raises(DaemonUnavailable, match="no answer"):
            client.render({"fov": 40.0}, payloads, progress=lambda *_: os.kill(process.pid, signal.SIGKILL))
        assert time.monotonic() - started < 10.0
        client.close()
    finally:
        process.kill()
        process.wait()


def test_non_loopback_bind_needs_curve_keys(tiny_checkpoint):
    with pytest.raises(ValueError, match="CurveZMQ"):
        Server(ServerConfig(weights=tiny_checkpoint, bind="tcp://0.0.0.0:5557"))


def test_curve_daemon_accepts_the_right_key_and_refuses_others(tiny_checkpoint, tmp_path):
    allowed, stranger = tmp_path / "allowed", tmp_path / "stranger"
    for folder in (allowed, stranger):
        folder.mkdir()
    zmq.auth.create_certificates(str(tmp_path), "server")
    zmq.auth.create_certificates(str(allowed), "client")
    zmq.auth.create_certificates(str(stranger), "client")
    config = {"curve_secret_key": tmp_path / "server.key_secret", "curve_clients": allowed}
    with running_server(tiny_checkpoint, **config) as server:
        keys = CurveKeys.from_files(tmp_path / "server.key", allowed / "client.key_secret")
        with DaemonClient(server.endpoint, timeout_s=5, curve=keys) as client:
            assert client.hello()["state"] == "ready"
        for curve in (None, CurveKeys.from_files(tmp_path / "server.key", stranger / "client.key_secret")):
            with (
                DaemonClient(server.endpoint, timeout_s=0.5, retries=0, curve=curve) as client,
                pytest.raises(DaemonUnavailable),
            ):
                client.hello()
