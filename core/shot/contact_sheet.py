"""Contact sheets: one labelled row of tiles per frame, for previews and reports (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from renderflow.core.io.exr import write_png
from renderflow.core.model import encodings as enc

LABEL_HEIGHT = 14


def display_colour(linear_hdr: np.ndarray) -> np.ndarray:
    """Scene-linear colour -> Reinhard -> sRGB, for viewing."""
    return enc.srgb_oetf(enc.reinhard(linear_hdr))


def display_normal(normal_cam: np.ndarray) -> np.ndarray:
    return (normal_cam * 0.5 + 0.5).astype(np.float32)


def display_depth(depth_planar: np.ndarray) -> np.ndarray:
    """Normalised disparity in grey (near bright, background black), 3 channels."""
    rng = enc.disparity_range(depth_planar)
    return (enc.depth_to_model(depth_planar, rng) * 0.5 + 0.5).astype(np.float32)


def display_error(prediction: np.ndarray, reference: np.ndarray, full_scale: float = 0.25) -> np.ndarray:
    """Absolute error of display-referred images `[..., 3]` as a heat map (black -> red -> yellow -> white).

    The channel-mean error is divided by `full_scale`, so white means an error of `full_scale` or more.
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"error map: shapes differ, {prediction.shape} vs {reference.shape}")
    level = np.clip(np.abs(prediction - reference).mean(axis=-1, keepdims=True) / full_scale, 0.0, 1.0)
    # three ramps of a third each: red rises, then green, then blue
    heat = np.clip(level * 3.0 - np.array([0.0, 1.0, 2.0]), 0.0, 1.0)
    return heat.astype(np.float32)


def write_contact_sheet(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write a PNG with one column per named `[F, H, W, 3]` display-referred sequence, one row per frame."""
    tiles = list(columns.values())
    frames, height, width, _ = tiles[0].shape
    sheet = np.zeros((LABEL_HEIGHT + frames * height, len(tiles) * width, 3), np.float32)
    for column, tile in enumerate(tiles):
        sheet[LABEL_HEIGHT:, column * width : (column + 1) * width] = tile.reshape(frames * height, width, 3)
    buffer = oiio.ImageBuf(np.ascontiguousarray(sheet))
    for column, label in enumerate(columns):
        oiio.ImageBufAlgo.render_text(
            buffer, column * width + 2, LABEL_HEIGHT - 3, label, 11, "", [1.0, 1.0, 1.0]
        )
    write_png(path, buffer.get_pixels(oiio.FLOAT))
