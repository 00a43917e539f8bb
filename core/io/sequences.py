"""Image sequences and frame ranges, in the syntaxes artists type (through fileseq).

Patterns: `beauty.####.exr` (one `#` per digit, as in Nuke), `beauty.%04d.exr`,
`beauty.$F4.exr`, `beauty.@@@@.exr`. Ranges: `1001-1100`, `1001-1100x2`, `1001,1005,1010-1020`.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path

import fileseq

logger = logging.getLogger(__name__)

# fileseq's default makes `#` stand for 4 digits; artists mean one digit per `#` (Nuke, Houdini).
PAD_STYLE = fileseq.PAD_STYLE_HASH1
_PADDING = re.compile(r"#+|@+|%0?\d*d|\$F\d*")


class FrameRangeError(ValueError):
    """A frame range or sequence pattern that cannot be used; the message says why."""


def has_frame_token(pattern: str) -> bool:
    """True if `pattern` holds a frame-number placeholder (`####`, `%04d`, `$F4`, `@@@@`)."""
    return _PADDING.search(Path(pattern).name) is not None


def parse_frames(frames: str) -> list[int]:
    """`1001-1100x2` -> [1001, 1003, ...]; an empty or malformed range is an error."""
    try:
        frame_set = fileseq.FrameSet(frames.strip())
    except fileseq.ParseException as error:
        raise FrameRangeError(
            f"frame range {frames!r} is not valid: use e.g. 1001-1100, 1001-1100x2 or 1001,1005,1010-1020"
        ) from error
    numbers = [int(frame) for frame in frame_set]
    if not numbers:
        raise FrameRangeError(f"frame range {frames!r} is empty")
    return numbers


def frame_path(pattern: str, frame: int) -> Path:
    """The file of `frame` in `pattern` (`shot.####.exr`, 1001 -> `shot.1001.exr`)."""
    if not has_frame_token(pattern):
        raise FrameRangeError(f"{pattern}: no frame placeholder (####, %04d, $F4 or @@@@) in the file name")
    return Path(fileseq.FileSequence(pattern, pad_style=PAD_STYLE).frame(frame))


_FRAME_NUMBER = re.compile(r"[._](-?\d+)\.[A-Za-z0-9]+$")


def file_frame_number(path: str) -> int | None:
    """The frame number in a single file's name (`shot.0003.exr` -> 3), or None (`shot.exr`)."""
    match = _FRAME_NUMBER.search(Path(path).name)
    return int(match.group(1)) if match else None


def _holes(numbers: list[int]) -> list[int]:
    """Frames missing between the first and last, at the sequence's step."""
    if len(numbers) < 2:
        return []
    step = math.gcd(*(b - a for a, b in itertools.pairwise(numbers)))
    return sorted(set(range(numbers[0], numbers[-1] + 1, step or 1)) - set(numbers))


def sequence_files(pattern: str, frames: str | Sequence[int] | None = None) -> list[tuple[int | None, Path]]:
    """(frame, path) for every frame of a sequence; a plain file name is one frame, numbered as its
    name says (`shot.0003.exr` is 3) or `None`.

    Without `frames`, the frames are the ones found on disk (holes are logged); with them, every
    listed frame must exist.
    """
    if not has_frame_token(pattern):
        if frames is not None:
            raise FrameRangeError(f"{pattern}: a frame range was given but the name has no frame placeholder")
        if not Path(pattern).is_file():
            raise FileNotFoundError(f"{pattern}: no such file")
        return [(file_frame_number(pattern), Path(pattern))]
    if frames is None:
        try:
            found = fileseq.findSequenceOnDisk(pattern, pad_style=PAD_STYLE)
        except fileseq.FileSeqException as error:
            raise FileNotFoundError(f"{pattern}: no frames of this sequence on disk") from error
        numbers = [int(frame) for frame in found.frameSet() or []]
        holes = _holes(numbers)
        if holes:
            logger.warning(
                "%s: frames %s are missing from the sequence on disk (%d of %d); rendering the others",
                pattern,
                fileseq.FrameSet(holes),
                len(holes),
                len(numbers) + len(holes),
            )
    else:
        numbers = parse_frames(frames) if isinstance(frames, str) else [int(frame) for frame in frames]
    missing = [frame for frame in numbers if not frame_path(pattern, frame).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{pattern}: frames {fileseq.FrameSet(missing)} are missing ({len(missing)} of {len(numbers)})"
        )
    return [(frame, frame_path(pattern, frame)) for frame in numbers]
