"""EXR and PNG files through OpenImageIO; the only module that imports it.

OpenImageIO reports failures as return values plus `geterror()`; here they become exceptions
that name the file. Channels are always selected by name. Writes go to a temporary name in the
same folder and are renamed, so that a reader never sees half a file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import OpenImageIO as oiio


class ImageFileError(ValueError):
    """A file that cannot be read or written; the message names the file and what went wrong."""


@dataclass
class ExrImage:
    """Pixels `[H, W, C]` float32 with their channel names and the header's attributes."""

    pixels: np.ndarray
    channels: list[str]
    attributes: dict[str, object] = field(default_factory=dict)

    def select(self, names: Sequence[str]) -> np.ndarray:
        """The named channels, in the order asked, `[H, W, len(names)]`."""
        missing = [name for name in names if name not in self.channels]
        if missing:
            raise KeyError(f"channels {missing} are missing; the file has {self.channels}")
        return self.pixels[..., [self.channels.index(name) for name in names]]


def write_exr(
    path: Path,
    pixels: np.ndarray,
    channels: Sequence[str],
    half: bool = True,
    attributes: dict[str, object] | None = None,
) -> None:
    """Write `[H, W, C]` pixels as a ZIP-compressed EXR (half for colour, float for data)."""
    if pixels.ndim != 3 or pixels.shape[-1] != len(channels):
        raise ValueError(f"{path}: pixels of shape {pixels.shape} do not match channels {list(channels)}")
    height, width, count = pixels.shape
    spec = oiio.ImageSpec(width, height, count, "half" if half else "float")
    spec.channelnames = tuple(channels)
    spec.attribute("compression", "zip")
    for name, value in (attributes or {}).items():
        spec.attribute(name, value)
    _write(path, spec, np.ascontiguousarray(pixels, dtype=np.float32))


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write display-referred `[H, W, 3]` pixels in [0, 1] as an 8-bit PNG."""
    height, width, count = pixels.shape
    spec = oiio.ImageSpec(width, height, count, "uint8")
    _write(path, spec, np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32))


def read_exr(path: Path) -> ExrImage:
    """Read every channel of the first part as float32 `[H, W, C]` with names and attributes."""
    image_input = oiio.ImageInput.open(str(path))
    if image_input is None:
        raise ImageFileError(f"{path}: cannot open ({oiio.geterror() or 'unreadable file'})")
    try:
        spec = image_input.spec()
        pixels = image_input.read_image(0, 0, 0, spec.nchannels, "float")
        if pixels is None:
            raise ImageFileError(f"{path}: cannot read pixels ({image_input.geterror() or 'truncated file'})")
        attributes = {attr.name: spec.getattribute(attr.name) for attr in spec.extra_attribs}
        return ExrImage(
            np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, -1),
            list(spec.channelnames),
            attributes,
        )
    finally:
        image_input.close()


def _write(path: Path, spec: oiio.ImageSpec, pixels: np.ndarray) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    output = oiio.ImageOutput.create(str(tmp))
    if output is None:
        raise ImageFileError(f"{path}: cannot create ({oiio.geterror()})")
    try:
        if not output.open(str(tmp), spec):
            raise ImageFileError(f"{path}: cannot open for writing ({output.geterror()})")
        if not output.write_image(pixels):
            raise ImageFileError(f"{path}: cannot write pixels ({output.geterror()})")
    finally:
        output.close()
    os.replace(tmp, path)
