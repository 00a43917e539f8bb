"""rf-render's batch work: a frame range split into jobs, run in process or on several daemons.

The same request (header + EXR payloads) goes to a daemon or to an in-process Renderer, so a
frame rendered either way is the same file. Each daemon gets its own thread and client (one
socket per thread); a daemon that stops answering hands its batch back to the others. Results are
written to a temporary name and renamed, so a farm never sees half a frame.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from renderflow.daemon import protocol as wire
from renderflow.daemon.client import DaemonError, DaemonUnavailable, write_atomically

logger = logging.getLogger(__name__)


class Runner(Protocol):
    """Something that answers a request: a DaemonClient, or LocalRunner in this process."""

    def call(
        self, op: str, params: dict[str, Any] | None = None, payloads: Sequence[wire.Payload] = ()
    ) -> wire.Message: ...


class LocalRunner:
    """Runs requests on a Renderer in this process, with the daemon's checks and error codes."""

    def __init__(self, weights: Path, device: str) -> None:
        from renderflow.daemon.jobs import Renderer

        self.renderer = Renderer(weights, device, cache_bytes=0)
        self.limits = wire.Limits(max_frames=1 << 20, max_message_bytes=1 << 62)

    def call(
        self, op: str, params: dict[str, Any] | None = None, payloads: Sequence[wire.Payload] = ()
    ) -> wire.Message:
        message = wire.Message(
            {"v": wire.PROTOCOL_VERSION, "id": "local", "op": op, "params": params or {}}, list(payloads)
        )
        try:
            wire.check_request(message, self.limits)
            fields, results = self.renderer.run(message, lambda done, total: None)
        except wire.ProtocolError as error:
            raise DaemonError(error.code, str(error)) from error
        except (ValueError, OSError, KeyError) as error:
            raise DaemonError(wire.E_BAD_INPUT, str(error)) from error
        return wire.Message({"kind": wire.KIND_RESULT, **fields}, results)


@dataclass
class BatchOutcome:
    written: list[Path] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # frame -> why


def plan_batches(frames: Sequence[int], batch_frames: int) -> list[list[int]]:
    """Contiguous batches of at most `batch_frames` frames (each batch is one job, chunked inside)."""
    return [list(frames[start : start + batch_frames]) for start in range(0, len(frames), batch_frames)]


def run_batches(
    runners: Sequence[Runner],
    op: str,
    params: dict[str, Any],
    batches: Sequence[list[int]],
    payloads_for: Callable[[list[int]], list[wire.Payload]],
    output_for: Callable[[int], Path],
    on_frames_done: Callable[[int], None] = lambda count: None,
) -> BatchOutcome:
    """Run every batch on the first free runner and write each result frame to `output_for(frame)`."""
    todo: queue.Queue[list[int]] = queue.Queue()
    for batch in batches:
        todo.put(batch)
    outcome = BatchOutcome()
    lock = threading.Lock()
    unfinished = [len(batches)]  # batches neither written nor failed: a dead daemon's come back
    alive = [len(runners)]

    def finish(batch: list[int], why: str | None = None) -> None:
        with lock:
            unfinished[0] -= 1
            if why is not None:
                outcome.failed |= {frame: why for frame in batch}

    def serve(runner: Runner) -> None:
        while True:
            try:
                batch = todo.get(timeout=0.05)
            except queue.Empty:
                with lock:
                    if unfinished[0] == 0:
                        return
                continue
            try:
                reply = runner.call(op, params, payloads_for(batch))
                written = [write_atomically(output_for(int(p.frame or 0)), p.data) for p in reply.payloads]
                with lock:
                    outcome.written += written
                finish(batch)
                on_frames_done(len(batch))
            except DaemonUnavailable as error:
                with lock:
                    alive[0] -= 1
                    others = alive[0] > 0
                if others:
                    logger.warning("%s; its frames %d-%d go to another daemon", error, batch[0], batch[-1])
                    todo.put(batch)
                    return
                finish(batch, str(error))
                while True:  # no daemon is left: everything still to do fails with the same reason
                    try:
                        finish(todo.get_nowait(), str(error))
                    except queue.Empty:
                        return
            except Exception as error:  # a failed batch never stops the others (nor hangs them)
                logger.error("frames %d-%d failed: %s", batch[0], batch[-1], error)
                finish(batch, str(error))

    threads = [threading.Thread(target=serve, args=(runner,), daemon=True) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome
