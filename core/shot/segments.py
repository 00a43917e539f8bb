"""Shot segments for farms: pieces of a frame range that render in parallel and join without seams.

A segment starts at a keyframe (or the range's first frame) and ends before the next keyframe, so
every segment is anchored by its own path-traced frame and neighbouring segments meet at a
keyframe, which both render to the path-traced image. Segments longer than `max_frames` are
split further (those pieces start without a keyframe: add keyframes to avoid a seam there).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from renderflow.core.io.sequences import frame_path, has_frame_token


def segment_starts(frames: Sequence[int], keyframes: Sequence[int], max_frames: int) -> list[int]:
    """The first frame of each segment of `frames` (sorted), cut at `keyframes` and every `max_frames`."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    ordered = sorted(frames)
    cuts = set(keyframes) & set(ordered)
    starts: list[int] = []
    length = 0
    for frame in ordered:
        if not starts or frame in cuts or length == max_frames:
            starts.append(frame)
            length = 0
        length += 1
    return starts


def segment_frames(frames: Sequence[int], starts: Sequence[int], start: int) -> list[int]:
    """The frames of the segment that begins at `start` (one of `starts`)."""
    if start not in starts:
        raise ValueError(f"frame {start} does not start a segment; segments start at {list(starts)}")
    later = [other for other in starts if other > start]
    end = min(later) if later else None
    return [frame for frame in sorted(frames) if frame >= start and (end is None or frame < end)]


def keyframe_numbers(keyframes: str | None, frames: Sequence[int]) -> list[int]:
    """The frames among `frames` that have a keyframe file in the `keyframes` pattern."""
    if keyframes is None:
        return []
    if not has_frame_token(keyframes):
        raise ValueError(f"--keyframes {keyframes!r}: needs a frame token (####)")
    return [frame for frame in frames if frame_path(keyframes, frame).is_file()]


def shot_segment_starts(frames: Sequence[int], keyframes: str | None, max_frames: int) -> list[int]:
    """`segment_starts` of a shot whose keyframes are the files of a pattern."""
    return segment_starts(frames, keyframe_numbers(keyframes, frames), max_frames)


def segment_files(
    files: list[tuple[int | None, Path]], keyframes: str | None, start: int, max_frames: int
) -> list[tuple[int | None, Path]]:
    """The files of the segment that begins at `start` (a file without a frame number is frame 1)."""
    numbers = [1 if frame is None else frame for frame, _ in files]
    chosen = set(segment_frames(numbers, shot_segment_starts(numbers, keyframes, max_frames), start))
    return [(frame, path) for frame, path in files if (1 if frame is None else frame) in chosen]
