"""Image sequences and frame ranges, in the syntaxes artists type (through fileseq).

Patterns: `beauty.####.exr` (one `#` per digit, as in Nuke), `beauty.%04d.exr`,
`beauty.$F4.exr`, `beauty.@@@@.exr`. Ranges: `1001-1100`, `1001-1100x2`, `1001,1005,1010-1020`.
"""

from __future__ import annotations

import re
from pathlib import Path

import fileseq

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


def sequence_files(pattern: str, frames: str | None = None) -> list[tuple[int | None, Path]]:
    """(frame, path) for every frame of a sequence; a plain file name is one frame (`None`).

    Without `frames`, the frames are the ones found on disk; with them, every listed frame must exist.
    """
    if not has_frame_token(pattern):
        if frames is not None:
            raise FrameRangeError(f"{pattern}: a frame range was given but the name has no frame placeholder")
        if not Path(pattern).is_file():
            raise FileNotFoundError(f"{pattern}: no such file")
        return [(None, Path(pattern))]
    if frames is None:
        try:
            found = fileseq.findSequenceOnDisk(pattern, pad_style=PAD_STYLE)
        except fileseq.FileSeqException as error:
            raise FileNotFoundError(f"{pattern}: no frames of this sequence on disk") from error
        numbers = [int(frame) for frame in found.frameSet() or []]
    else:
        numbers = parse_frames(frames)
    missing = [frame for frame in numbers if not frame_path(pattern, frame).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{pattern}: frames {fileseq.FrameSet(missing)} are missing ({len(missing)} of {len(numbers)})"
        )
    return [(frame, frame_path(pattern, frame)) for frame in numbers]
