"""A client for rf-daemon: a DEALER socket that never waits without a deadline (numpy + pyzmq only).

Like the zguide's Lazy Pirate client, a request that meets silence for `timeout_s` (the daemon
sends a keep-alive every second while a job is queued or running) is sent again on a fresh
socket, up to `retries` times, for the ops that are safe to repeat; then DaemonUnavailable.
A job is cancelled from the thread that waits on it, through `cancel_event`: sockets are never
shared between threads. A retry keeps the job id, so the daemon answers it once (a running job is
taken over, a finished one answered again), never renders it twice.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import zmq

from renderflow.daemon import protocol as wire

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 15.0  # silence that counts as a dead daemon (keep-alives come every second)
REQUEST_RETRIES = 2  # extra attempts for ops that are safe to repeat
POLL_SLICE_S = 0.05  # how often a wait looks at its cancel event
LARGE_MESSAGE_BYTES = 1 << 20  # requests above this (rf-daemon's smallest --max-message-mb) are checked
# against the daemon's limit from hello first: ZeroMQ drops a message over its limit without a reply
IDEMPOTENT_OPS = (wire.OP_HELLO, wire.OP_STATUS, wire.OP_RENDER, wire.OP_DECOMPOSE, wire.OP_FREE)
ProgressCallback = Callable[[int, int, str], None]


class DaemonError(RuntimeError):
    """An `error` reply: `code` from docs/PROTOCOL.md and a message a user can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} [{code}]")
        self.code = code
        self.message = message


class DaemonUnavailable(RuntimeError):
    """The daemon did not answer in time (not running, wrong address, wrong keys, or it died)."""


def default_state_file(bind: str) -> Path:
    """Where `rf-daemon start` records pid, endpoint and model state for `stop` and `status`: one
    file per port in the temp folder (the admin token goes beside it)."""
    port = urlsplit(bind).port or wire.DEFAULT_PORT
    return Path(tempfile.gettempdir()) / f"rf-daemon-{port}.json"


def admin_token_file(state_file: Path) -> Path:
    """Where rf-daemon writes its admin token (mode 0600): beside its state file."""
    return Path(state_file).with_suffix(".token")


def read_admin_token(state_file: Path) -> str | None:
    """The daemon owner's admin token, when this user may read it."""
    try:
        return admin_token_file(state_file).read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class CurveKeys:
    """CurveZMQ keys of a client: the server's public key and the client's own key pair."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def from_files(cls, server_public_file: Path, client_secret_file: Path) -> CurveKeys:
        """Certificates as `rf-daemon keys` writes them (zmq.auth format)."""
        import zmq.auth

        server_public, _ = zmq.auth.load_certificate(str(server_public_file))
        client_public, client_secret = zmq.auth.load_certificate(str(client_secret_file))
        if client_secret is None:
            raise ValueError(f"{client_secret_file}: not a secret key certificate (the .key_secret file)")
        return cls(server_public, client_public, client_secret)


class DaemonClient:
    """Requests to one daemon; use from one thread at a time (one socket, one thread)."""

    def __init__(
        self,
        address: str = wire.DEFAULT_ADDRESS,
        timeout_s: float = REQUEST_TIMEOUT_S,
        retries: int = REQUEST_RETRIES,
        curve: CurveKeys | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.retries = retries
        self.curve = curve
        self.admin_token = admin_token  # for shutdown, free and everyone's jobs in status
        self._max_message_bytes: int | None = None  # from hello, before the first large request
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._socket: zmq.Socket[bytes] | None = None

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    # -- ops -----------------------------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        return self.call(wire.OP_HELLO).header

    def status(self) -> dict[str, Any]:
        return self.call(wire.OP_STATUS, self._token()).header

    def free(self) -> dict[str, Any]:
        return self.call(wire.OP_FREE, self._token()).header

    def shutdown(self) -> dict[str, Any]:
        return self.call(wire.OP_SHUTDOWN, self._token()).header

    def _token(self) -> dict[str, Any]:
        return {"token": self.admin_token} if self.admin_token is not None else {}

    def render(
        self,
        params: dict[str, Any],
        payloads: Sequence[wire.Payload],
        progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
    ) -> wire.Message:
        """A render request (see `render_payloads`); the result message with its payloads."""
        return self.call(wire.OP_RENDER, params, payloads, progress, cancel_event)

    def decompose(
        self, params: dict[str, Any], payloads: Sequence[wire.Payload], *waiting: Any
    ) -> wire.Message:
        """A decompose request (see `decompose_payloads`); `waiting`: progress and cancel event, as `call`."""
        return self.call(wire.OP_DECOMPOSE, params, payloads, *waiting)

    def call(
        self,
        op: str,
        params: dict[str, Any] | None = None,
        payloads: Sequence[wire.Payload] = (),
        progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
    ) -> wire.Message:
        """Send one request and wait for its final reply; raises DaemonError or DaemonUnavailable."""
        job_id = uuid.uuid4().hex
        frames = wire.request(op, job_id, params, payloads)
        size = sum(len(frame) for frame in frames)
        if size > LARGE_MESSAGE_BYTES:  # refused before sending: a daemon never buffers it
            if self._max_message_bytes is None:
                self._max_message_bytes = int(self.hello()["limits"]["max_message_bytes"])
            if size > self._max_message_bytes:
                raise DaemonError(
                    wire.E_TOO_LARGE,
                    f"the request is {size} bytes; {self.address} takes at most {self._max_message_bytes}: "
                    "send fewer frames per job (--batch-frames)",
                )
        attempts = 1 + (self.retries if op in IDEMPOTENT_OPS else 0)
        for attempt in range(attempts):
            reply = self._exchange(frames, job_id, progress, cancel_event)
            if reply is not None:
                if reply.kind == wire.KIND_ERROR:
                    raise DaemonError(str(reply.header["code"]), str(reply.header["message"]))
                return reply
            self.close()  # Lazy Pirate: a fresh socket for the next attempt
            if attempt + 1 < attempts:
                logger.warning(
                    "no answer from %s for %s; retrying (%d/%d)", self.address, op, attempt + 1, attempts - 1
                )
        raise DaemonUnavailable(
            f"no answer from the RenderFlow daemon at {self.address} within {self.timeout_s:g} s "
            f"({attempts} attempt(s)): is `rf-daemon start` running there, with matching keys?"
        )

    # -- the wait --------------------------------------------------------------------------------------
    def _connect(self) -> zmq.Socket[bytes]:
        if self._socket is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            if self.curve is not None:
                socket.curve_serverkey = self.curve.server_public
                socket.curve_publickey = self.curve.client_public
                socket.curve_secretkey = self.curve.client_secret
            socket.connect(self.address)
            self._socket = socket
        return self._socket

    def _exchange(
        self,
        frames: list[bytes | memoryview],
        job_id: str,
        progress: ProgressCallback | None,
        cancel_event: threading.Event | None,
    ) -> wire.Message | None:
        """Send and read replies until the final one; None after `timeout_s` of silence."""
        socket = self._connect()
        socket.send_multipart(frames, copy=False)
        cancel_id = f"{job_id}-cancel"
        cancel_sent = False
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if cancel_event is not None and cancel_event.is_set() and not cancel_sent:
                socket.send_multipart(wire.request(wire.OP_CANCEL, cancel_id, {"job": job_id}))
                cancel_sent = True
            if not socket.poll(int(POLL_SLICE_S * 1000)):
                continue
            reply = wire.decode(socket.recv_multipart())
            problems = wire.validate_reply(reply.header)
            if problems:
                raise DaemonError(wire.E_BAD_MESSAGE, f"malformed reply from {self.address}: {problems}")
            if reply.job_id == "" and reply.kind == wire.KIND_ERROR:
                return reply  # a request so broken the daemon could not read its id: ours, the only one out
            if reply.job_id != job_id:
                continue  # the cancel's own answer, or a late reply to an earlier attempt
            deadline = time.monotonic() + self.timeout_s
            if reply.kind in wire.FINAL_KINDS:
                return reply
            if reply.kind == wire.KIND_PROGRESS and progress is not None:
                progress(
                    int(reply.header["done"]),
                    int(reply.header["total"]),
                    str(reply.header.get("message", "")),
                )
        return None


# -- building requests from files (rf-render, the Nuke node) -----------------------------------------
def render_payloads(
    gbuffer_files: Sequence[tuple[int, Path]],
    envmap_file: Path,
    keyframe_files: Sequence[tuple[int, Path]] = (),
) -> list[wire.Payload]:
    """EXR payloads of a render: G-buffer frames (any AOV profile), the env map, optional keyframes."""
    payloads = [wire.Payload.exr("gbuffers", Path(path).read_bytes(), frame) for frame, path in gbuffer_files]
    payloads.append(wire.Payload.exr("envmap", Path(envmap_file).read_bytes()))
    payloads += [
        wire.Payload.exr("keyframe", Path(path).read_bytes(), frame) for frame, path in keyframe_files
    ]
    return payloads


def decompose_payloads(plate_files: Sequence[tuple[int, Path]]) -> list[wire.Payload]:
    return [wire.Payload.exr("image", Path(path).read_bytes(), frame) for frame, path in plate_files]


def render_array_payloads(
    albedo: np.ndarray,
    normal: np.ndarray,
    depth: np.ndarray,
    material: np.ndarray,
    envmap_cam: np.ndarray,
    keyframes: np.ndarray | None = None,
) -> list[wire.Payload]:
    """Raw payloads of a render from canonical arrays `[F, H, W, C]` (ARCHITECTURE §2), float32."""
    named = {
        "albedo": albedo,
        "normal": normal,
        "depth": depth,
        "material": material,
        "envmap_cam": envmap_cam,
    }
    if keyframes is not None:
        named["keyframes"] = keyframes
    return [
        wire.Payload.from_array(name, np.asarray(array, dtype=np.float32)) for name, array in named.items()
    ]


def write_atomically(path: Path, data: bytes | memoryview) -> Path:
    """Write a result file under a temporary name and rename it: no reader ever sees half a frame."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
