"""rf-daemon's server: one ROUTER socket served by one I/O loop, one GPU worker thread, and a job queue.

The I/O loop (the thread that calls `Server.serve`) owns the ROUTER: it polls, reads
`[identity, header, *payloads]`, checks the request against the protocol and the limits, answers
hello/status/cancel/shutdown at once, queues render/decompose/free for the worker, forwards the
worker's replies and sends keep-alive progress for every active job. The worker thread owns the
model (daemon.jobs.Renderer) and talks back only through its own inproc PUSH socket: no socket is
ever used from two threads. Every request gets exactly one final `result` or `error`.
"""

from __future__ import annotations

import hmac
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from renderflow.core.io.aov_profiles import PROFILES
from renderflow.daemon import protocol as wire
from renderflow.daemon import request_checks as checks
from renderflow.daemon.job_table import (
    Job,
    JobState,
    ModelState,
    job_size,
    remove_stale_job_folders,
    request_digest,
)
from renderflow.daemon.jobs import JobCancelled, Renderer, is_out_of_memory, memory_report

logger = logging.getLogger(__name__)

POLL_INTERVAL_MS = 100
KEEPALIVE_INTERVAL_S = 1.0  # clients treat this much silence x their own margin as a dead daemon
HARD_STOP_AFTER_GRACE_S = 5.0  # after the grace period and a cancel, how long a stuck job gets
WORKER_ADDRESS = "inproc://rf-worker"
LOOPBACK_HOSTS = ("localhost", "::1")
FINISHED_JOBS_KEPT = 64  # finished answers kept for late retries (the same id is answered once)
FINISHED_BYTES_KEPT = 256 << 20
FINAL = b"1"
NOT_FINAL = b"0"


@dataclass(frozen=True)
class ServerConfig:
    weights: Path
    device: str = "cpu"
    bind: str = wire.DEFAULT_ADDRESS
    cache_bytes: int = 2 << 30
    limits: wire.Limits = field(default_factory=wire.Limits)
    idle_timeout_s: float | None = None  # stop after this long without requests or jobs
    shutdown_grace_s: float = 30.0  # how long a running job may finish after SIGTERM/shutdown
    curve_secret_key: Path | None = None  # the server's secret certificate (rf-daemon keys)
    curve_clients: Path | None = None  # folder of the client public certificates allowed in
    admin_token: str | None = None  # shutdown/free and everyone's jobs need it; None: nobody may


class BindError(RuntimeError):
    """The endpoint cannot be bound (in use, or not an address of this machine)."""


def is_loopback(address: str) -> bool:
    """True for ipc/inproc endpoints and tcp endpoints on 127.0.0.0/8 or ::1."""
    parts = urlsplit(address)
    if parts.scheme in ("ipc", "inproc"):
        return True
    host = (parts.hostname or "").strip("[]")
    return host.startswith("127.") or host in LOOPBACK_HOSTS


class Server:
    """The daemon; `serve` blocks until shutdown, `request_stop` may be called from any thread."""

    def __init__(self, config: ServerConfig, renderer: Renderer | None = None) -> None:
        if not is_loopback(config.bind) and config.curve_secret_key is None:
            raise ValueError(
                f"refusing to listen on {config.bind} without authentication: beyond 127.0.0.1 the daemon "
                "needs CurveZMQ keys (rf-daemon keys, then --curve-secret-key and --curve-clients)"
            )
        if (config.curve_secret_key is None) != (config.curve_clients is None):
            raise ValueError("CurveZMQ needs both the server's secret key and the folder of client keys")
        self.config = config
        self.renderer = renderer or Renderer(config.weights, config.device, config.cache_bytes)
        self.bound = threading.Event()  # set once the ROUTER listens
        self.model_settled = threading.Event()  # set once the first load succeeded or failed
        self.endpoint = config.bind
        self.model_state = ModelState.LOADING
        self.model_error = ""
        self.model_info: dict[str, Any] = self.renderer.describe()  # published by the worker
        self.cache_stats: dict[str, int] = self.renderer.cache.stats()  # published by the worker
        self.counts = {"done": 0, "failed": 0, "cancelled": 0}
        self._stop = threading.Event()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._active: dict[str, Job] = {}  # by job id: ids are global, so a retry finds its job
        self._finished: OrderedDict[str, tuple[str, list[Any]]] = OrderedDict()  # id -> (digest, final reply)
        self._started = time.monotonic()
        self.worker_stuck = False  # a job ran past the grace period: the process must exit hard
        remove_stale_job_folders()

    def request_stop(self) -> None:
        """Finish (or, after the grace period, cancel) the running job, fail the queued ones, exit."""
        self._stop.set()

    # -- the I/O loop -------------------------------------------------------------------------------
    def serve(self) -> None:
        context = zmq.Context()
        authenticator = None
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 1000)
        router.setsockopt(zmq.MAXMSGSIZE, self.config.limits.max_message_bytes)
        if self.config.curve_secret_key is not None and self.config.curve_clients is not None:
            authenticator = ThreadAuthenticator(context)
            authenticator.start()
            authenticator.configure_curve(domain="*", location=str(self.config.curve_clients))
            public, secret = zmq.auth.load_certificate(str(self.config.curve_secret_key))
            if secret is None:
                raise ValueError(f"{self.config.curve_secret_key}: not a secret key certificate")
            router.curve_publickey, router.curve_secretkey, router.curve_server = public, secret, True
        from_worker = context.socket(zmq.PULL)
        from_worker.bind(WORKER_ADDRESS)
        worker = threading.Thread(target=self._work, args=(context,), name="rf-worker", daemon=True)
        try:
            try:
                router.bind(self.config.bind)
            except zmq.ZMQError as error:
                raise BindError(f"cannot listen on {self.config.bind}: {error.strerror}") from error
            self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
            worker.start()
            self.bound.set()
            logger.info("listening on %s", self.endpoint)
            self._loop(router, from_worker)
        finally:
            self._queue.put(None)
            if worker.is_alive():
                worker.join(timeout=1.0)
            router.close(linger=1000)
            from_worker.close(linger=0)
            if authenticator is not None:
                authenticator.stop()
            if worker.is_alive():
                # A job stuck past the grace period: terminating the context under its socket aborts
                # the process (SIGABRT); leave it to the process exit (rf-daemon exits at once).
                self.worker_stuck = True
                logger.warning("a job is still running past the grace period; exiting without it")
            else:
                context.term()
            logger.info("stopped")

    def _loop(self, router: zmq.Socket[bytes], from_worker: zmq.Socket[bytes]) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(from_worker, zmq.POLLIN)
        last_activity = last_keepalive = time.monotonic()
        stop_since: float | None = None
        while True:
            events = dict(poller.poll(POLL_INTERVAL_MS))
            if from_worker in events:
                while from_worker.poll(0):
                    self._forward(router, from_worker.recv_multipart())
                    last_activity = time.monotonic()
            if router in events:
                for _ in range(100):  # bounded, so replies and keep-alives are never starved
                    if not router.poll(0):
                        break
                    frames = router.recv_multipart(copy=False)
                    self._handle(router, frames[0].bytes, [frame.buffer for frame in frames[1:]])
                    last_activity = time.monotonic()
            now = time.monotonic()
            if now - last_keepalive >= KEEPALIVE_INTERVAL_S:
                self._send_keepalives(router)
                last_keepalive = now
            idle = self.config.idle_timeout_s
            if (
                idle is not None
                and not self._active
                and now - last_activity > idle
                and not self._stop.is_set()
            ):
                logger.info("idle for %.0f s: stopping", idle)
                self._stop.set()
            if self._stop.is_set():
                if stop_since is None:
                    stop_since = now
                    self._fail_queued(router)
                if self._finish_stopping(router, now - stop_since):
                    return

    def _finish_stopping(self, router: zmq.Socket[bytes], stopping_for: float) -> bool:
        """True once no job is left; cancels the running job after the grace, answers it past that."""
        if not self._active:
            return True
        grace = self.config.shutdown_grace_s
        if stopping_for >= grace:
            for job in self._active.values():
                job.cancel.set()
        if stopping_for >= grace + HARD_STOP_AFTER_GRACE_S:
            for job in list(self._active.values()):
                message = "the daemon stopped before this job finished; send it again to another daemon"
                self._final(router, job, wire.error_reply(job.message.job_id, wire.E_SHUTTING_DOWN, message))
                self._log_job(job, "failed: daemon stopped")
            return True
        return False

    def _handle(self, router: zmq.Socket[bytes], identity: bytes, frames: list[memoryview]) -> None:
        """One request; whatever goes wrong becomes an error reply (with the request's id when it has
        one) and the loop goes on."""
        try:
            self._answer(router, identity, frames)
        except Exception as error:
            logger.exception("request from %r failed", identity)
            job_id = wire.readable_id(frames)
            router.send_multipart(
                [identity, *wire.error_reply(job_id, wire.E_INTERNAL, f"{type(error).__name__}: {error}")]
            )

    def _answer(self, router: zmq.Socket[bytes], identity: bytes, frames: list[memoryview]) -> None:
        """Decode, check, answer at once or queue; a bad request becomes an error reply."""
        try:
            message = wire.decode(frames, self.config.limits)
            checks.check_request(message, self.config.limits)
        except wire.ProtocolError as error:
            logger.warning("bad request %r: %s: %s", error.job_id, error.code, error)
            job_id = error.job_id or wire.readable_id(frames)
            router.send_multipart([identity, *wire.error_reply(job_id, error.code, str(error))])
            return
        job_id = message.job_id
        if message.op in wire.ADMIN_OPS and not self._is_admin(message):
            logger.warning("refused %s %r: no admin token", message.op, job_id)
            reason = (
                f"{message.op} needs the daemon owner's admin token (params.token, from the token file "
                "beside the daemon's state file)"
            )
            router.send_multipart([identity, *wire.error_reply(job_id, wire.E_FORBIDDEN, reason)])
        elif message.op == wire.OP_HELLO:
            router.send_multipart([identity, *wire.reply(job_id, wire.KIND_RESULT, self._hello())])
        elif message.op == wire.OP_STATUS:
            status = self._status(None if self._is_admin(message) else identity)
            router.send_multipart([identity, *wire.reply(job_id, wire.KIND_RESULT, status)])
        elif message.op == wire.OP_CANCEL:
            router.send_multipart([identity, *self._cancel(router, identity, message)])
        elif message.op == wire.OP_SHUTDOWN:
            logger.info("shutdown requested by a client")
            router.send_multipart([identity, *wire.reply(job_id, wire.KIND_RESULT, {"shutting_down": True})])
            self._stop.set()
        else:
            self._queue_job(router, identity, message)

    def _queue_job(self, router: zmq.Socket[bytes], identity: bytes, message: wire.Message) -> None:
        job_id = message.job_id
        digest = request_digest(message)
        known = self._active.get(job_id)
        if known is not None and known.digest == digest:  # a retry (Lazy Pirate: a fresh socket)
            if known.identity != identity:  # the socket it takes over from gets its answer: this one
                reason = f"job {job_id!r} was taken over by the same request from another socket"
                router.send_multipart(
                    [known.identity, *wire.error_reply(job_id, wire.E_DUPLICATE_JOB, reason)]
                )
            known.identity = identity
            router.send_multipart([identity, *wire.reply(job_id, wire.KIND_ACCEPTED, {"queue_position": 0})])
            logger.info("job %s: a retry takes over the running job", job_id)
            return
        finished = self._finished.get(job_id)
        if finished is not None and finished[0] == digest:  # answered once already: the same answer
            router.send_multipart([identity, *finished[1]])
            logger.info("job %s: a retry gets the answer again, not a second render", job_id)
            return
        refusal = None
        if known is not None or finished is not None:
            refusal = (wire.E_DUPLICATE_JOB, f"job id {job_id!r} is taken by another request: use a fresh id")
        elif self._stop.is_set():
            refusal = (wire.E_SHUTTING_DOWN, "the daemon is shutting down; send the job to another daemon")
        elif self.model_state == ModelState.FAILED and message.op != wire.OP_FREE:
            refusal = (wire.E_MODEL_UNAVAILABLE, f"the model could not be loaded: {self.model_error}")
        if refusal is not None:
            router.send_multipart([identity, *wire.error_reply(job_id, *refusal)])
            return
        job = Job(identity, message, job_size(message), digest)
        ahead = sum(
            1 for other in self._active.values() if other.state in (JobState.QUEUED, JobState.RUNNING)
        )
        self._active[job.key] = job
        router.send_multipart([identity, *wire.reply(job_id, wire.KIND_ACCEPTED, {"queue_position": ahead})])
        self._queue.put(job)

    def _is_admin(self, message: wire.Message) -> bool:
        token = self.config.admin_token
        given = message.params.get("token")
        return token is not None and isinstance(given, str) and hmac.compare_digest(given, token)

    def _cancel(self, router: zmq.Socket[bytes], identity: bytes, message: wire.Message) -> list[Any]:
        target = str(message.params["job"])
        job = self._active.get(target)
        if job is None or job.identity != identity:
            return wire.error_reply(
                message.job_id, wire.E_UNKNOWN_JOB, f"no queued or running job {target!r}"
            )
        with job.lock:
            was = job.state
            if job.state == JobState.QUEUED:
                job.state = JobState.CANCELLED
            job.cancel.set()
        if was == JobState.QUEUED:
            self._final(
                router, job, wire.error_reply(target, wire.E_CANCELLED, "cancelled before it started")
            )
            self._log_job(job, "cancelled")
        return wire.reply(message.job_id, wire.KIND_RESULT, {"cancelled": target, "was": was})

    def _fail_queued(self, router: zmq.Socket[bytes]) -> None:
        for job in list(self._active.values()):
            with job.lock:
                queued = job.state == JobState.QUEUED
                if queued:
                    job.state = JobState.CANCELLED
            if queued:
                message = "the daemon is shutting down; send the job to another daemon"
                self._final(router, job, wire.error_reply(job.message.job_id, wire.E_SHUTTING_DOWN, message))
                self._log_job(job, "failed: shutting down")

    def _forward(self, router: zmq.Socket[bytes], frames: list[bytes]) -> None:
        """A reply from the worker: `[identity, job id, final?, *reply frames]`."""
        _, job_id, final, *reply_frames = frames
        job = self._active.get(job_id.decode())
        if job is None:  # already answered (cancelled while queued, or stopped hard)
            return
        if final == FINAL:
            self._final(router, job, reply_frames)
            self._remember(job, reply_frames)
            self._log_job(job, job.outcome)
        else:
            router.send_multipart([job.identity, *reply_frames])

    def _final(self, router: zmq.Socket[bytes], job: Job, reply_frames: list[Any]) -> None:
        self._active.pop(job.key, None)
        router.send_multipart([job.identity, *reply_frames])

    def _remember(self, job: Job, reply_frames: list[Any]) -> None:
        """Keep a finished job's answer for a retry that comes late (bounded by bytes and count)."""
        self._finished[job.key] = (job.digest, reply_frames)
        while len(self._finished) > FINISHED_JOBS_KEPT or (
            sum(len(frame) for _, frames in self._finished.values() for frame in frames) > FINISHED_BYTES_KEPT
            and len(self._finished) > 1
        ):
            self._finished.popitem(last=False)

    def _send_keepalives(self, router: zmq.Socket[bytes]) -> None:
        for ahead, job in enumerate(self._active.values()):
            if job.state == JobState.QUEUED:
                done, total, message = 0, 0, f"queued: {ahead} job(s) ahead"
            else:
                done, total, message = job.progress
            fields = {"done": done, "total": total, "message": message}
            router.send_multipart([job.identity, *wire.reply(job.message.job_id, wire.KIND_PROGRESS, fields)])

    def _log_job(self, job: Job, outcome: str) -> None:
        seconds = time.monotonic() - job.received
        counter = "done" if outcome == "ok" else "cancelled" if "cancel" in outcome else "failed"
        self.counts[counter] += 1
        logger.info("job %s %s %s %.3fs %s", job.message.job_id, job.message.op, job.size, seconds, outcome)

    def _hello(self) -> dict[str, Any]:
        return {
            "protocol": wire.PROTOCOL_VERSION,
            "renderflow": version("renderflow"),
            "state": self.model_state,
            "error": self.model_error,
            "model": self.model_info,
            "device": self.config.device,
            "limits": self.config.limits.as_dict(),
            "capabilities": {
                "ops": list(wire.OPS),
                "encodings": list(wire.ENCODINGS),
                "raw_dtypes": list(wire.RAW_DTYPES),
                "profiles": ["auto", *PROFILES],
                "profile_channels": {
                    name: {
                        buffer: [list(alias) for alias in aliases]
                        for buffer, aliases in profile.channels.items()
                    }
                    for name, profile in PROFILES.items()
                },
                "aov_layers": list(wire.AOV_LAYERS),
                "intrinsics": list(wire.INTRINSIC_NAMES),
            },
        }

    def _status(self, identity: bytes | None) -> dict[str, Any]:
        """The daemon's state; the jobs of the asking socket only, or everyone's for the admin (None)."""
        jobs = [
            {
                "id": job.message.job_id,
                "op": job.message.op,
                "state": job.state,
                "done": job.progress[0],
                "total": job.progress[1],
            }
            for job in self._active.values()
            if identity is None or job.identity == identity
        ]
        return {
            "state": self.model_state,
            "stopping": self._stop.is_set(),
            "uptime_s": round(time.monotonic() - self._started, 3),
            "jobs": jobs,
            "counts": dict(self.counts),
            "memory": memory_report(self.config.device),
            "cache": self.cache_stats,
            "model": self.model_info,
        }

    # -- the GPU worker thread ------------------------------------------------------------------------
    def _work(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        to_io = context.socket(zmq.PUSH)
        to_io.connect(WORKER_ADDRESS)
        try:
            self._load()
            while (job := self._queue.get()) is not None:
                with job.lock:
                    if job.state != JobState.QUEUED:
                        continue
                    job.state, job.started = JobState.RUNNING, time.monotonic()
                final = self._run(job, to_io)
                to_io.send_multipart([job.identity, job.message.job_id.encode(), FINAL, *final])
        finally:
            to_io.close(linger=1000)

    def _load(self) -> None:
        try:
            self.renderer.pipeline()
            self.model_state = ModelState.READY
        except Exception as error:  # any failure to load is reported by hello, never raised here
            logger.error("cannot load the model %s: %s", self.config.weights, error)
            self.model_state, self.model_error = ModelState.FAILED, str(error)
        self.model_info = self.renderer.describe()
        self.model_settled.set()

    def _run(self, job: Job, to_io: zmq.Socket[bytes]) -> list[Any]:
        """Run one job on the worker; its final reply frames (result or error)."""
        job_id = job.message.job_id
        identity = job.identity

        def progress(done: int, total: int) -> None:
            if job.cancel.is_set():
                raise JobCancelled
            message = f"{job.message.op}: chunk {done} of {total}"
            job.progress = (done, total, message)
            fields = {"done": done, "total": total, "message": message}
            to_io.send_multipart(
                [identity, job_id.encode(), NOT_FINAL, *wire.reply(job_id, wire.KIND_PROGRESS, fields)]
            )

        try:
            if job.cancel.is_set():
                raise JobCancelled
            fields, payloads = self.renderer.run(job.message, progress)
            job.outcome = "ok"
            return wire.reply(job_id, wire.KIND_RESULT, fields, payloads)
        except JobCancelled:
            reason = "cancelled (the daemon is shutting down)" if self._stop.is_set() else "cancelled"
            return _failed(job, wire.E_CANCELLED, reason)
        except Exception as error:
            if is_out_of_memory(error):
                if self.config.device.startswith("cuda"):
                    import torch

                    torch.cuda.empty_cache()
                advice = (
                    f"out of memory on {self.config.device} for {job.size}: send fewer frames per job or "
                    "smaller frames, or free the GPU (other jobs' models and caches)"
                )
                return _failed(job, wire.E_OUT_OF_MEMORY, advice)
            if isinstance(error, ValueError | OSError | KeyError):
                return _failed(job, wire.E_BAD_INPUT, str(error))
            logger.exception("job %s failed", job_id)
            return _failed(job, wire.E_INTERNAL, f"{type(error).__name__}: {error}")
        finally:
            self.cache_stats = self.renderer.cache.stats()
            self.model_info = self.renderer.describe()
            self.model_state = ModelState.READY if self.renderer.loaded else ModelState.FREED


def _failed(job: Job, code: str, message: str) -> list[Any]:
    """The error reply that ends `job`, its outcome noted for the I/O loop's log line."""
    job.outcome = f"{code}: {message}"
    return wire.error_reply(job.message.job_id, code, message)
