"""EXR and PNG files through OpenImageIO; the only module that imports it.

OpenImageIO reports failures as return values plus `geterror()`; here they become exceptions
that name the file. Channels are always selected by name (OIIO reorders them on read). Writes go
to a temporary name in the same folder and are renamed, so that a reader never sees half a file.

Multi-part files are read as one set of channels: a part's channels keep their names when they
carry a layer prefix (`diffuse.R`) or the part is the beauty (`rgba`, unnamed); bare names in
other parts get the part's name as prefix (`R` in part `diffuse` becomes `diffuse.R`, Karma's part
`C` gives `C.R`), which is how Nuke and most renderers name layers in single-part files.
Files are written without a time stamp, so the same pixels give the same bytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

logger = logging.getLogger(__name__)

COMPRESSIONS = ("zip", "piz", "none")


class ImageFileError(ValueError):
    """A file that cannot be read or written; the message names the file and what went wrong."""


@dataclass
class ExrImage:
    """Pixels `[H, W, C]` float32 with their channel names and the header's attributes."""

    pixels: np.ndarray
    channels: list[str]
    attributes: dict[str, object] = field(default_factory=dict)
    path: Path | None = None
    integer: bool = False  # stored as 8/16-bit integers (JPEG, PNG, TIFF): display-referred, not linear

    def select(self, names: Sequence[str]) -> np.ndarray:
        """The named channels, in the order asked, `[H, W, len(names)]`."""
        missing = [name for name in names if name not in self.channels]
        if missing:
            raise KeyError(f"{self.path}: channels {missing} are missing; the file has {self.channels}")
        return self.pixels[..., [self.channels.index(name) for name in names]]

    def layers(self) -> dict[str, list[str]]:
        """Layer name -> channel suffixes; unprefixed channels (R, G, B, A, Z) are layer ''."""
        layers: dict[str, list[str]] = {}
        for name in self.channels:
            layer, _, suffix = name.rpartition(".")
            layers.setdefault(layer, []).append(suffix)
        return layers

    def matrix(self, name: str) -> np.ndarray | None:
        """A 4x4 matrix attribute as stored (row-major over its 16 values), or None if absent."""
        value = self.attributes.get(name)
        if value is None:
            return None
        values = np.asarray(value, dtype=np.float64).ravel()
        if values.size != 16:
            raise ImageFileError(
                f"{self.path}: attribute {name!r} is not a 4x4 matrix ({values.size} values)"
            )
        return values.reshape(4, 4)


@dataclass(frozen=True)
class Layer:
    """One layer to write: `name` '' for unprefixed channels (the beauty's R, G, B, A)."""

    name: str
    pixels: np.ndarray  # [H, W, C]
    channels: Sequence[str]  # suffixes, e.g. ("R", "G", "B")
    half: bool = True  # half for colour, float for data (depth, normals, materials)

    def channel_names(self) -> list[str]:
        return [f"{self.name}.{suffix}" if self.name else suffix for suffix in self.channels]


def write_exr(
    path: Path,
    pixels: np.ndarray,
    channels: Sequence[str],
    half: bool = True,
    attributes: dict[str, object] | None = None,
    compression: str = "zip",
) -> None:
    """Write `[H, W, C]` pixels with the given full channel names as one EXR part."""
    write_layers(path, [Layer("", pixels, channels, half)], attributes, compression)


def write_layers(
    path: Path,
    layers: Sequence[Layer],
    attributes: dict[str, object] | None = None,
    compression: str = "zip",
    multipart: bool = False,
) -> None:
    """Write layers as one multi-layer part, or one part per layer (`multipart`).

    Attributes are strings, ints, floats, 4x4 numpy matrices (EXR `m44f`) or 1-D float arrays.
    """
    path = Path(path)
    if not layers:
        raise ValueError(f"{path}: nothing to write")
    if compression not in COMPRESSIONS:
        raise ValueError(f"{path}: compression {compression!r} is not one of {COMPRESSIONS}")
    height, width = layers[0].pixels.shape[:2]
    for layer in layers:
        if layer.pixels.ndim != 3 or layer.pixels.shape[-1] != len(layer.channels):
            raise ValueError(
                f"{path}: layer {layer.name!r} has pixels of shape {layer.pixels.shape} "
                f"for channels {list(layer.channels)}"
            )
        if layer.pixels.shape[:2] != (height, width):
            raise ValueError(
                f"{path}: layer {layer.name!r} is {layer.pixels.shape[1]}x{layer.pixels.shape[0]}, "
                f"expected {width}x{height} like layer {layers[0].name!r}"
            )
    if multipart:
        specs = [
            _spec([layer], attributes if index == 0 else None, compression)
            for index, layer in enumerate(layers)
        ]
        for spec, layer in zip(specs, layers, strict=True):
            spec.attribute("oiio:subimagename", layer.name or "rgba")
        _write(path, specs, [_pixels([layer]) for layer in layers])
    else:
        _write(path, [_spec(layers, attributes, compression)], [_pixels(layers)])


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write display-referred `[H, W, 3]` pixels in [0, 1] as an 8-bit PNG."""
    height, width, count = pixels.shape
    spec = oiio.ImageSpec(width, height, count, "uint8")
    _write(Path(path), [spec], [np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32)])


def read_exr(path: Path, view: str | None = None) -> ExrImage:
    """Read every channel of every part as float32 `[H, W, C]` with names and attributes.

    The pixels cover the display window (a data window inside it is placed where it belongs, the
    rest is zero; overscan outside it is cropped), which is the frame a compositor sees. Deep
    files and cube-face env maps are refused. A multi-view (stereo) file needs `view`: its channels
    are read with the view's name taken out (`right.N.X` -> `N.X`, part `rgba.right` -> `rgba`); a
    file without views serves every view. Also reads any other format OpenImageIO knows (Radiance
    .hdr env maps); attributes come from the first part.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file")
    image_input = oiio.ImageInput.open(str(path))
    if image_input is None:
        reason = _first_line(oiio.geterror())
        if "could not find a format reader" in reason:
            reason = "no image format recognises its first bytes: damaged, or not an image"
        raise ImageFileError(f"{path}: not a readable image ({reason})")
    try:
        first = image_input.spec()
        attributes = _attributes(first, path)
        if "CubeFace" in str(attributes.get("textureformat", "")):
            raise ImageFileError(
                f"{path}: a cube-face environment map (six faces stacked); RenderFlow reads lat-long "
                "(equirectangular) maps: convert it first (Nuke SphericalTransform, or your DCC's exporter)"
            )
        views = _views(image_input, first)
        chosen = _chosen_view(path, views, view)
        arrays: list[np.ndarray] = []
        names: list[str] = []
        part = 0
        while True:
            spec = image_input.spec()
            part_view = str(spec.getattribute("view") or "")
            if chosen and part_view and part_view != chosen:
                part += 1
                if not image_input.seek_subimage(part, 0):
                    break
                continue
            if spec.deep:
                raise ImageFileError(
                    f"{path}: part {part} holds deep data; RenderFlow reads flat images: flatten it first "
                    "(Nuke DeepToImage, oiiotool --flatten)"
                )
            if _display_window(spec) != _display_window(first):
                raise ImageFileError(
                    f"{path}: part {part} has the display window {_display_window(spec)}, "
                    f"part 0 has {_display_window(first)}"
                )
            if chosen and not arrays:  # the chosen view's own header (each eye has its camera)
                attributes = _attributes(spec, path)
            pixels = image_input.read_image(part, 0, 0, spec.nchannels, "float")
            if pixels is None:
                reason = _first_line(image_input.geterror()) or "truncated file"
                raise ImageFileError(f"{path}: cannot read the pixels of part {part} ({reason})")
            data = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, -1)
            arrays.append(_in_display_window(data, spec))
            part_name = str(spec.getattribute("oiio:subimagename") or "")
            if part_view and part_name.endswith("." + part_view):
                part_name = part_name[: -len(part_view) - 1]
            names += [_full_channel_name(name, part_name) for name in spec.channelnames]
            part += 1
            if not image_input.seek_subimage(part, 0):
                break
    finally:
        image_input.close()
    if chosen and "multiView" in attributes:  # single part: the first view's channels carry no view name
        keep, names = _single_part_view(names, views, chosen)
        arrays = [np.concatenate(arrays, axis=-1)[..., keep]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ImageFileError(f"{path}: channels {duplicates} appear in more than one part")
    integer = str(first.format).startswith(("uint", "int"))
    return ExrImage(np.concatenate(arrays, axis=-1), names, attributes, path, integer)


def _views(image_input: oiio.ImageInput, first: oiio.ImageSpec) -> list[str]:
    """The views a file holds: its `multiView` list (one part), or its parts' `view` attributes."""
    listed = first.getattribute("multiView")
    if listed:
        return str(listed).split() if isinstance(listed, str) else [str(name) for name in listed]
    views: list[str] = []
    part = 0
    while image_input.seek_subimage(part, 0):
        name = str(image_input.spec().getattribute("view") or "")
        if name and name not in views:
            views.append(name)
        part += 1
    image_input.seek_subimage(0, 0)
    return views


def _chosen_view(path: Path, views: list[str], view: str | None) -> str | None:
    """The view to read: `view`, checked; None for a file with fewer than two views."""
    if view is not None and views and view not in views:
        raise ImageFileError(f"{path}: no view {view!r}; the file holds the views {', '.join(views)}")
    if len(views) < 2:
        return view if views else None
    if view is None:
        raise ImageFileError(
            f"{path}: a multi-view (stereo) file with the views {', '.join(views)}; choose one with "
            f"--view {views[0]} (rf-render, params.view on the daemon)"
        )
    return view


def _single_part_view(names: list[str], views: list[str], view: str) -> tuple[list[int], list[str]]:
    """Indices and names of `view`'s channels in a single-part multi-view file: the view's name is the
    next-to-last component (`right.R`, `diffuse.right.R`); channels without one belong to the first view."""
    keep, kept = [], []
    for index, name in enumerate(names):
        parts = name.split(".")
        named = parts[-2] if len(parts) > 1 and parts[-2] in views else None
        if (named or views[0]) == view:
            keep.append(index)
            kept.append(".".join(parts[:-2] + parts[-1:]) if named else name)
    return keep, kept


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image's display window, from its header alone."""
    image_input = oiio.ImageInput.open(str(path))
    if image_input is None:
        raise ImageFileError(f"{path}: not a readable image ({_first_line(oiio.geterror())})")
    spec = image_input.spec()
    image_input.close()
    return spec.full_width, spec.full_height


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _attributes(spec: oiio.ImageSpec, path: Path) -> dict[str, object]:
    """The header's attributes; names that are not valid UTF-8 cannot be looked up and are skipped."""
    attributes: dict[str, object] = {}
    for attr in spec.extra_attribs:
        try:
            attributes[attr.name] = spec.getattribute(attr.name)
        except (TypeError, UnicodeError):
            logger.warning("%s: skipping header attribute %r (its name is not UTF-8)", path, attr.name)
    return attributes


def _display_window(spec: oiio.ImageSpec) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the display window."""
    return spec.full_x, spec.full_y, spec.full_width, spec.full_height


def _in_display_window(data: np.ndarray, spec: oiio.ImageSpec) -> np.ndarray:
    """Data-window pixels `[h, w, C]` placed in the display window `[H, W, C]`, zero elsewhere."""
    full_x, full_y, full_width, full_height = _display_window(spec)
    if (spec.x, spec.y, spec.width, spec.height) == (full_x, full_y, full_width, full_height):
        return data
    canvas = np.zeros((full_height, full_width, data.shape[-1]), np.float32)
    left, top = spec.x - full_x, spec.y - full_y
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + spec.width, full_width), min(top + spec.height, full_height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = data[y0 - top : y1 - top, x0 - left : x1 - left]
    return canvas


# Parts whose bare channels are the image itself (Nuke and OIIO name the first part `rgba`).
BEAUTY_PART_NAMES = ("", "rgba", "rgb", "beauty", "default")


def _full_channel_name(name: str, part_name: str) -> str:
    """A part's channel with its layer: bare names take the part's name (`R` in part `albedo`), except
    a channel named like its part (Karma's `Pz` in part `Pz`)."""
    if "." in name or name == part_name or part_name.lower() in BEAUTY_PART_NAMES:
        return name
    return f"{part_name}.{name}"


def _spec(layers: Sequence[Layer], attributes: dict[str, object] | None, compression: str) -> oiio.ImageSpec:
    height, width = layers[0].pixels.shape[:2]
    names = [name for layer in layers for name in layer.channel_names()]
    formats = [oiio.TypeDesc("half" if layer.half else "float") for layer in layers for _ in layer.channels]
    spec = oiio.ImageSpec(width, height, len(names), "float")
    spec.channelnames = tuple(names)
    spec.channelformats = tuple(formats)
    spec.attribute("compression", compression)
    spec.attribute("DateTime", "")  # OpenImageIO stamps the time unless told: bytes must not change
    for name, value in (attributes or {}).items():
        if isinstance(value, np.ndarray):
            if value.shape == (4, 4):
                spec.attribute(name, oiio.TypeDesc("matrix"), tuple(float(v) for v in value.ravel()))
            elif value.ndim == 1:  # e.g. chromaticities, float[8]
                spec.attribute(name, oiio.TypeDesc(f"float[{value.size}]"), tuple(float(v) for v in value))
            else:
                raise ValueError(f"attribute {name!r}: 4x4 matrices and 1-D arrays only, got {value.shape}")
        else:
            spec.attribute(name, value)
    return spec


def _pixels(layers: Sequence[Layer]) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([layer.pixels for layer in layers], axis=-1), dtype=np.float32)


def _write(path: Path, specs: list[oiio.ImageSpec], pixels: list[np.ndarray]) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    output = oiio.ImageOutput.create(str(tmp))
    if output is None:
        raise ImageFileError(f"{path}: cannot create ({oiio.geterror()})")
    try:
        opened = output.open(str(tmp), specs) if len(specs) > 1 else output.open(str(tmp), specs[0])
        if not opened:
            raise ImageFileError(f"{path}: cannot open for writing ({output.geterror()})")
        for index, (spec, part_pixels) in enumerate(zip(specs, pixels, strict=True)):
            if index > 0 and not output.open(str(tmp), spec, "AppendSubimage"):
                raise ImageFileError(f"{path}: cannot add part {index} ({output.geterror()})")
            if not output.write_image(part_pixels):
                raise ImageFileError(f"{path}: cannot write pixels ({output.geterror()})")
    except BaseException:
        output.close()
        tmp.unlink(missing_ok=True)
        raise
    output.close()
    os.replace(tmp, path)
