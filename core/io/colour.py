"""Colour-space conversion of colour buffers with OpenColorIO (ARCHITECTURE §2).

The model works in linear Rec.709. Albedo, env maps and beauty are converted at the edges from
and to the user's scene-linear space; data buffers (normals, depth, materials) never are.
The config is $OCIO when set, else OCIO's built-in CG config, so ACEScg, lin_rec709, lin_p3d65,
lin_rec2020 and the rest work without files.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np
import PyOpenColorIO as ocio

logger = logging.getLogger(__name__)

MODEL_COLOUR_SPACE = "lin_rec709"
BUILTIN_CONFIG = "ocio://cg-config-latest"


class ColourSpaceError(ValueError):
    """An unknown colour space or unreadable OCIO config; the message lists what exists."""


@functools.cache
def _config(path: str) -> ocio.Config:
    try:
        return ocio.Config.CreateFromFile(path)
    except ocio.Exception as error:
        raise ColourSpaceError(f"cannot load the OCIO config {path!r}: {error}") from error


def config() -> ocio.Config:
    return _config(os.environ.get("OCIO") or BUILTIN_CONFIG)


def scene_linear_spaces() -> list[str]:
    """The scene-linear colour spaces of the active config (what `--colour-space` accepts)."""
    spaces = config().getColorSpaces(ocio.SEARCH_REFERENCE_SPACE_SCENE, ocio.COLORSPACE_ACTIVE)
    return [space.getName() for space in spaces if space.getEncoding() == "scene-linear"]


def canonical_name(space: str) -> str:
    """The config's name for `space` (aliases such as ACEScg or lin_ap1 resolve), or an error."""
    found = config().getColorSpace(space)
    if found is None:
        raise ColourSpaceError(
            f"unknown colour space {space!r}; scene-linear spaces here: {', '.join(scene_linear_spaces())}"
        )
    return str(found.getName())


def convert(pixels: np.ndarray, source: str, target: str) -> np.ndarray:
    """`[..., 3]` float pixels from `source` to `target`; a new float32 array."""
    if pixels.shape[-1] != 3:
        raise ValueError(f"colour conversion needs [..., 3] pixels, got {pixels.shape}")
    source_name, target_name = canonical_name(source), canonical_name(target)
    out = np.ascontiguousarray(pixels, dtype=np.float32).copy()
    if source_name == target_name:
        return out
    processor = config().getProcessor(source_name, target_name).getDefaultCPUProcessor()
    processor.applyRGB(out.reshape(-1, 3))
    return out


SRGB_ENCODED = "sRGB - Texture"  # what an 8/16-bit image without a colour space holds


def display_referred_to_linear(pixels: np.ndarray, path: object) -> np.ndarray:
    """An 8/16-bit image's pixels (sRGB-encoded by default) as linear Rec.709, with a warning: such a
    file holds no light above 1, so a plate or an env map read from it loses its highlights."""
    logger.warning(
        "%s: an 8/16-bit image, read as sRGB and decoded to linear; a scene-linear float EXR (or .hdr) "
        "keeps the highlights it cannot hold",
        path,
    )
    return convert(np.clip(pixels, 0.0, 1.0), SRGB_ENCODED, MODEL_COLOUR_SPACE)


def to_model(pixels: np.ndarray, source: str) -> np.ndarray:
    return convert(pixels, source, MODEL_COLOUR_SPACE)


def from_model(pixels: np.ndarray, target: str) -> np.ndarray:
    return convert(pixels, MODEL_COLOUR_SPACE, target)
