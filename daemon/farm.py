"""rf-render's work on daemons: a frame range split into jobs over several daemons.

A daemon renders through the same core.shot_render as rf-render in process, so a frame rendered
either way is the same file, byte for byte. Each daemon gets its own thread and client (one
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

# Errors about the request's images: a batch failing with one is retried frame by frame.
FRAME_ERRORS = (wire.E_BAD_INPUT, wire.E_BAD_PAYLOAD)


class Runner(Protocol):
    """Something that answers a request: a DaemonClient."""

    def call(
        self, op: str, params: dict[str, Any] | None = None, payloads: Sequence[wire.Payload] = ()
    ) -> wire.Message: ...


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
            except (DaemonUnavailable, DaemonError) as error:
                stopping = isinstance(error, DaemonError) and error.code == wire.E_SHUTTING_DOWN
                if isinstance(error, DaemonError) and not stopping:
                    if error.code in FRAME_ERRORS and len(batch) > 1:
                        # one bad frame fails only itself: its batch comes back one frame a job
                        logger.warning("frames %d-%d: %s; trying them one by one", batch[0], batch[-1], error)
                        with lock:
                            unfinished[0] += len(batch) - 1
                        for frame in batch:
                            todo.put([frame])
                        continue
                    logger.error("frames %d-%d failed: %s", batch[0], batch[-1], error)
                    finish(batch, str(error))
                    continue
                with lock:  # this daemon is gone or stopping: it takes no more work
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
