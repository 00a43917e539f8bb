"""Running a shot's frames: in process batch by batch, or shared between daemons; each frame written
atomically as it is done. rf-render's commands say what to run; this runs it and says what failed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from renderflow.core.io.outputs import check_output_pattern, output_path, write_frame
from renderflow.core.io.sequences import frame_path, has_frame_token
from renderflow.daemon.client import decompose_payloads, render_payloads
from renderflow.daemon.farm import Runner, plan_batches, run_batches
from renderflow.daemon.protocol import Limits, Payload
from renderflow.daemon.requests import DecomposeParams, RenderParams, decompose_params
from renderflow.daemon.shot_requests import CliReading, read_options, render_settings, shot_request

if TYPE_CHECKING:
    from renderflow.core.model.pipeline import RenderFlowPipeline
    from renderflow.core.shot.settings import OutputFrame

logger = logging.getLogger("renderflow.render")
WrittenFn = Callable[[Path], None]  # told each file written (rf-render prints it: what farm logs show)


class FramesFailed(Exception):
    """Some frames failed (the others were written); the message names them and why."""


@dataclass(frozen=True)
class InProcess:
    """Run in this process with the model loaded from `checkpoint` (None: the bundled model)."""

    checkpoint: Path | None
    device: str
    batch_frames: int | None  # frames per batch (bounds memory); None: all at once


@dataclass(frozen=True)
class OnDaemons:
    """Share the frames between daemons."""

    daemons: list[Runner]
    batch_frames: int | None  # frames per job; None: the range split evenly between the daemons


def load_pipeline(checkpoint: Path | None, device: str) -> RenderFlowPipeline:
    """The model from `checkpoint`, or the bundled CPU model."""
    from renderflow.core.model.pipeline import RenderFlowPipeline
    from renderflow.core.shot.demo import BUNDLED_MODEL

    return RenderFlowPipeline.from_pretrained(checkpoint or BUNDLED_MODEL, device=device)


def frames_to_do(
    files: list[tuple[int | None, Path]], out: str, skip_existing: bool
) -> tuple[list[int], int]:
    """The frames to render (a file without a frame number is frame 1), less those already written;
    and how many were left out for that."""
    numbers = [1 if frame is None else frame for frame, _ in files]
    check_output_pattern(out, len(numbers))
    todo = [frame for frame in numbers if not (skip_existing and output_path(out, frame).exists())]
    return todo, len(numbers) - len(todo)


def write_outputs(
    out: str, frames: list[OutputFrame], written: WrittenFn, done: int = 0, total: int | None = None
) -> None:
    """Write each frame atomically and log it, one line per frame."""
    total = total or len(frames)
    for count, frame in enumerate(frames, done + 1):
        path = write_frame(output_path(out, frame.frame), frame.layers, frame.attributes)
        logger.info("frame %d written: %s (%d/%d)", frame.frame, path, count, total)
        written(path)


def run_in_process(
    op: str,
    frames: list[int],
    where: InProcess,
    out: str,
    work: Callable[[RenderFlowPipeline, list[int]], list[OutputFrame]],
    written: WrittenFn,
) -> None:
    """Run `work(pipeline, frame list)` batch by batch (bounded memory) and write each batch's frames.
    A batch that fails is retried frame by frame, as the daemons' batches are, so one bad frame fails
    alone; the others go on; FramesFailed at the end if any failed."""
    pipeline = load_pipeline(where.checkpoint, where.device)
    per_batch = where.batch_frames or len(frames)
    failed: dict[int, str] = {}
    with tqdm(total=len(frames), desc=op, unit="frame", disable=None) as bar:
        for start in range(0, len(frames), per_batch):
            batch = frames[start : start + per_batch]
            try:
                write_outputs(out, work(pipeline, batch), written, start, len(frames))
            except (OSError, ValueError) as error:
                if len(batch) == 1:
                    logger.error("frame %d failed: %s", batch[0], error)
                    failed[batch[0]] = str(error)
                else:
                    logger.warning(
                        "frames %d-%d failed (%s); trying them one by one", batch[0], batch[-1], error
                    )
                    for frame in batch:
                        try:
                            write_outputs(out, work(pipeline, [frame]), written, start, len(frames))
                        except (OSError, ValueError) as frame_error:
                            logger.error("frame %d failed: %s", frame, frame_error)
                            failed[frame] = str(frame_error)
            bar.update(len(batch))
    raise_if_failed(failed, len(frames))


def run_on_daemons(
    op: str,
    params: dict[str, object],
    frames: list[int],
    where: OnDaemons,
    out: str,
    payloads_for: Callable[[list[int]], list[Payload]],
    written: WrittenFn,
) -> None:
    """Batch the frames over the daemons and write what comes back; FramesFailed if any failed."""
    per_job = where.batch_frames or min(-(-len(frames) // len(where.daemons)), Limits().max_frames)
    done = [0]
    with tqdm(total=len(frames), desc=op, unit="frame", disable=None) as bar:

        def frames_done(count: int) -> None:
            done[0] += count
            bar.update(count)
            logger.info("%d/%d frames done", done[0], len(frames))

        outcome = run_batches(
            where.daemons,
            op,
            params,
            plan_batches(frames, per_job),
            payloads_for,
            lambda frame: output_path(out, frame),
            frames_done,
        )
    for path in sorted(outcome.written):
        written(path)
    raise_if_failed(outcome.failed, len(frames))


def raise_if_failed(failed: dict[int, str], total: int) -> None:
    if failed:
        reasons = sorted(set(failed.values()))
        raise FramesFailed(
            f"{len(failed)} of {total} frame(s) failed ({min(failed)}-{max(failed)}): {'; '.join(reasons)}"
        )


@dataclass(frozen=True)
class ShotRender:
    """A shot render as rf-render is asked for it: the user's files and options."""

    gbuffers: str  # the G-buffer EXR pattern
    files: list[tuple[int | None, Path]]  # its files (frame, path), as sequence_files lists them
    reading: CliReading
    envmap_path: Path
    keyframes: str | None  # the path-traced keyframes' pattern
    render: RenderParams


def render_shot_job(
    job: ShotRender, frames: list[int], where: InProcess | OnDaemons, out: str, written: WrittenFn
) -> None:
    """Render `frames` of the shot in process or on daemons, writing each frame as it comes."""
    if isinstance(where, InProcess):
        from renderflow.core.shot.rendering import render_shot_files

        options = read_options(job.reading)
        settings = render_settings(job.render)

        def work(pipeline: RenderFlowPipeline, batch: list[int]) -> list[OutputFrame]:
            return render_shot_files(
                pipeline, job.gbuffers, batch, options, job.envmap_path, settings, job.keyframes
            )

        run_in_process("render", frames, where, out, work, written)
        return
    request = shot_request(job.reading, job.files, job.render)

    def payloads_for(batch: list[int]) -> list[Payload]:
        keys = []
        if job.keyframes is not None and has_frame_token(job.keyframes):
            keys = [(frame, frame_path(job.keyframes, frame)) for frame in batch]
            keys = [(frame, path) for frame, path in keys if path.is_file()]
        return render_payloads([(frame, request.files[frame]) for frame in batch], job.envmap_path, keys)

    try:
        run_on_daemons("render", request.params, frames, where, out, payloads_for, written)
    finally:
        request.close()


def decompose_plate_job(
    plate: str,
    files: list[tuple[int | None, Path]],
    asked: DecomposeParams,
    frames: list[int],
    where: InProcess | OnDaemons,
    out: str,
    written: WrittenFn,
) -> None:
    """Decompose `frames` of a plate in process or on daemons, writing each frame as it comes."""
    if isinstance(where, InProcess):
        from renderflow.core.shot.reading import read_plate
        from renderflow.core.shot.rendering import decompose_plate

        single = not has_frame_token(plate)  # one file, numbered by its name or frame 1

        def work(pipeline: RenderFlowPipeline, batch: list[int]) -> list[OutputFrame]:
            read = read_plate(plate, None if single else batch, asked.layer, asked.colour_space, asked.view)
            return decompose_plate(pipeline, read, asked.targets, asked.steps, asked.colour_space)

        run_in_process("decompose", frames, where, out, work, written)
        return
    by_frame = {1 if frame is None else frame: path for frame, path in files}
    run_on_daemons(
        "decompose",
        decompose_params(asked),
        frames,
        where,
        out,
        lambda batch: decompose_payloads([(frame, by_frame[frame]) for frame in batch]),
        written,
    )
