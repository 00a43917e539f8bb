"""The daemon's jobs as its I/O loop tracks them: states, the job record, what a request asks (its
digest), and the job folders that daemons which died left behind."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from renderflow.daemon import protocol as wire
from renderflow.daemon import request_checks as checks
from renderflow.daemon.jobs import JOB_FOLDER_PREFIX
from renderflow.daemon.processes import process_alive

logger = logging.getLogger("renderflow.daemon.server")


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class ModelState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FREED = "freed"
    FAILED = "failed"


@dataclass
class Job:
    identity: bytes  # the socket to answer: a retry from a fresh socket takes the job over
    message: wire.Message
    size: str  # e.g. "5 frames 512x512", for the log line
    digest: str  # what the request asks (header less its id, and payloads): tells a retry from a clash
    received: float = field(default_factory=time.monotonic)
    state: JobState = JobState.QUEUED  # queued -> running -> done, or queued -> cancelled
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    progress: tuple[int, int, str] = (0, 0, "queued")  # set by the worker with each progress reply
    outcome: str = ""  # set by the worker with the final reply: "ok", or "code: message"
    started: float | None = None

    @property
    def key(self) -> str:
        return self.message.job_id


def request_digest(message: wire.Message) -> str:
    """What a request asks, without its id: the same digest means a retry of the same job."""
    digest = hashlib.blake2b(digest_size=16)
    header = {key: value for key, value in message.header.items() if key != "id"}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for payload in message.payloads:
        digest.update(payload.data)
    return digest.hexdigest()


def job_size(message: wire.Message) -> str:
    """ "5 frames 512x512" from the first image payload (already checked by check_request)."""
    images = [p for p in message.payloads if p.name in ("gbuffers", "albedo", "image")]
    if not images:
        return "-"
    width, height = checks.payload_size(images[0])
    frames = len(images) if images[0].encoding == wire.ENCODING_EXR else (images[0].shape or (0,))[0]
    return f"{frames} frames {width}x{height}"


def remove_stale_job_folders() -> None:
    """Jobs of a daemon that died (SIGKILL, power) leave rf-job-PID-* temp folders: remove them."""
    for folder in Path(tempfile.gettempdir()).glob(f"{JOB_FOLDER_PREFIX}*"):
        pid = folder.name.removeprefix(JOB_FOLDER_PREFIX).split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("removed %s, left by a daemon that died (pid %s)", folder, pid)
