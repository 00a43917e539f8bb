"""The EXRs RenderFlow writes, laid out as Nuke expects them (docs/OUTPUTS.md).

- Every channel is float32: one pixel type per file (Nuke shows no half/float mix; a sun of 10⁵
  fits).
- A render's R, G, B, A are premultiplied over a transparent background: A is the geometry's
  coverage, RGB is zero where A is (Merge over adds nothing twice). Decompositions, relights and
  material edits of a plate cover every pixel: A = 1.
- depth.Z is planar depth in scene units with a finite background, BACKGROUND_DEPTH (as Cycles
  writes it), never inf.
- The header says the colour space (`chromaticities`, `colorSpace` = the OCIO name) and carries
  the input camera: `worldToCamera`, `cameraToWorld` (Imath layout), `renderflow/vertical_fov_degrees`;
  what is made of a plate keeps the plate's camera attributes.
- No time stamp: the same inputs give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from renderflow.core.io import colour
from renderflow.core.io.cameras import to_imath
from renderflow.core.io.exr import ExrImage, Layer, write_layers
from renderflow.core.io.sequences import FrameRangeError, frame_path, has_frame_token

BACKGROUND_DEPTH = 1e10
# CIE xy of red, green, blue and white for the spaces whose primaries EXR can state.
CHROMATICITIES = {
    "Linear Rec.709 (sRGB)": (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290),
    "ACEScg": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767),
    "ACES2065-1": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767),
    "Linear P3-D65": (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290),
    "Linear Rec.2020": (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290),
}


class OutputError(ValueError):
    """An output pattern or folder that cannot be written; the message says what to change."""


def check_output_pattern(pattern: str, num_frames: int) -> None:
    """Refuse, before any work, what cannot be written: non-EXR names, a sequence without a frame
    token, a folder that cannot be created or written."""
    path = Path(pattern)
    if path.suffix.lower() != ".exr":
        raise OutputError(f"--out {pattern!r}: RenderFlow writes OpenEXR; the name must end in .exr")
    if num_frames > 1 and not has_frame_token(pattern):
        raise OutputError(
            f"--out {pattern!r} needs a frame token (####) for a sequence of {num_frames} frames"
        )
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(
            f"--out {pattern!r}: cannot create the folder {folder} ({error.strerror})"
        ) from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"--out {pattern!r}: the folder {folder} is not writable")


def output_path(pattern: str, frame: int) -> Path:
    """The file of `frame`: the pattern's frame token filled in, or the pattern itself."""
    try:
        return frame_path(pattern, frame) if has_frame_token(pattern) else Path(pattern)
    except FrameRangeError as error:
        raise OutputError(str(error)) from error


def colour_attributes(colour_space: str) -> dict[str, object]:
    """`colorSpace` (the OCIO name) and, where known, the EXR `chromaticities` of `colour_space`."""
    name = colour.canonical_name(colour_space)
    attributes: dict[str, object] = {"colorSpace": name}
    if name in CHROMATICITIES:
        attributes["chromaticities"] = np.asarray(CHROMATICITIES[name], np.float32)
    return attributes


def camera_attributes(
    camera_to_world: np.ndarray | None, vertical_fov_degrees: float | None
) -> dict[str, object]:
    """The input camera as Nuke reads it from EXR metadata (Imath row-vector layout)."""
    attributes: dict[str, object] = {}
    if camera_to_world is not None:
        matrix = np.eye(4)
        if camera_to_world.shape == (3, 3):
            matrix[:3, :3] = camera_to_world
        else:
            matrix = np.asarray(camera_to_world, np.float64)
        attributes["cameraToWorld"] = to_imath(matrix)
        attributes["worldToCamera"] = to_imath(np.linalg.inv(matrix))
    if vertical_fov_degrees is not None:
        attributes["renderflow/vertical_fov_degrees"] = float(vertical_fov_degrees)
    return attributes


PLATE_CAMERA_MATRICES = ("worldToCamera", "cameraToWorld", "worldToNDC")  # standard EXR camera attributes
PLATE_CAMERA_NUMBERS = ("screenWindowWidth", "renderflow/vertical_fov_degrees")


def plate_camera_attributes(image: ExrImage) -> dict[str, object]:
    """The camera attributes of a plate's header, carried to what is made of it (decompose, relight,
    insert): Nuke reads them to line a 3-D scene up with the plate."""
    attributes: dict[str, object] = {}
    for name in PLATE_CAMERA_MATRICES:
        matrix = image.matrix(name)
        if matrix is not None:
            attributes[name] = matrix
    for name in PLATE_CAMERA_NUMBERS:
        value = image.attributes.get(name)
        if isinstance(value, int | float):
            attributes[name] = float(value)
    return attributes


def rgba_layer(beauty: np.ndarray, coverage: np.ndarray) -> Layer:
    """Premultiplied R, G, B, A: `beauty` `[H, W, 3]` × coverage `[H, W, 1]`, A = coverage."""
    return Layer("", np.concatenate([beauty * coverage, coverage], axis=-1), "RGBA", half=False)


def data_layers(buffers: Mapping[str, np.ndarray]) -> list[Layer]:
    """Named G-buffer/intrinsic layers (albedo already in the output colour space), all float."""
    names = {
        "albedo": ("albedo", "RGB"),
        "normal": ("N", "XYZ"),
        "depth": ("depth", "Z"),
        "roughness": ("roughness", "Y"),
        "metallic": ("metallic", "Y"),
        "specular": ("specular", "Y"),
    }
    layers = []
    for name, pixels in buffers.items():
        if name == "depth":
            pixels = np.where(np.isfinite(pixels), pixels, BACKGROUND_DEPTH).astype(np.float32)
        layer, suffixes = names[name]
        layers.append(Layer(layer, pixels, suffixes, half=False))
    return layers


def write_frame(path: Path, layers: Sequence[Layer], attributes: Mapping[str, object]) -> Path:
    """One output EXR, atomically (temp name + rename), every channel float."""
    write_layers(
        path,
        [Layer(layer.name, layer.pixels, layer.channels, half=False) for layer in layers],
        dict(attributes),
    )
    return path
