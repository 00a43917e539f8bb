"""Spatially tiled encode and decode, for frames larger than the autoencoder should take at once.

A frame above `tile` pixels on a side is cut into overlapping tiles on the autoencoder's grid;
each tile is encoded (or decoded) on its own over all its frames, and the tiles are blended back
with weights that ramp linearly across each overlap, so no seam shows where two tiles meet.
Memory then grows with the tile, not with the frame. The tiles see less context than the whole
frame, so the result differs slightly from an untiled call (tests bound the difference).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

from renderflow.core.model.autoencoder import Autoencoder


def tile_layout(size: int, tile: int, overlap: int, multiple: int = 1) -> tuple[list[int], int]:
    """(start of each tile, tile length) along an axis of `size`: the fewest tiles of at most `tile`
    that overlap by at least `overlap`, spread evenly and shrunk to fit, on a grid of `multiple`.

    Even spacing keeps the work near the frame's own size (1024 in tiles of 512 overlapping by 64:
    3 tiles of 384, not 3 of 512); the first tile starts at 0 and the last ends at `size`.
    """
    if size <= tile:
        return [0], size
    count = math.ceil((size - overlap) / (tile - overlap))
    length = min(tile, math.ceil((size + (count - 1) * overlap) / count / multiple) * multiple)
    stride = (size - length) / (count - 1)
    starts = [round(index * stride / multiple) * multiple for index in range(count - 1)]
    return [*starts, size - length], length


def smallest_overlap(starts: list[int], length: int) -> int:
    """How much the closest two neighbouring tiles share (the fade the blend may use)."""
    return min((length - (b - a) for a, b in itertools.pairwise(starts)), default=0)


def fade_weights(length: int, fade_in: int, fade_out: int, device: torch.device) -> torch.Tensor:
    """Weights `[length]` in [0, 1] that fade in over the first `fade_in` samples and out over the
    last `fade_out`: zero over the outer quarter of a fade, where the tile's own border (padding
    instead of the neighbour's pixels) changes the result, then linear up to one."""
    position = torch.arange(length, device=device, dtype=torch.float32)
    weights = torch.ones(length, device=device)
    for fade, distance in ((fade_in, position), (fade_out, length - 1 - position)):
        if fade:
            margin = fade // 4
            weights = torch.minimum(weights, ((distance + 1 - margin) / (fade - 2 * margin + 1)).clamp(0, 1))
    return weights


def tile_weights(
    height: int,
    width: int,
    row: int,
    column: int,
    rows: list[int],
    columns: list[int],
    fade: int,
    device: torch.device,
) -> torch.Tensor:
    """`[height, width]` blend weights of the tile at (`row`, `column`): fading over `fade` samples on
    each side it shares with a neighbour (`rows`, `columns`: every tile's start)."""
    vertical = fade_weights(height, fade if row > 0 else 0, fade if row != rows[-1] else 0, device)
    horizontal = fade_weights(width, fade if column > 0 else 0, fade if column != columns[-1] else 0, device)
    return vertical[:, None] * horizontal[None, :]


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    scale: float,
) -> torch.Tensor:
    """Apply `fn` to overlapping spatial tiles of `x` `[B, C, F, H, W]` and blend the results.

    `fn` maps a tile of `t × t` to one of `t·scale × t·scale` (encode: 1/factor, decode: factor);
    `tile` and `overlap` are in `x`'s pixels and must make whole output pixels. Each tile's weight
    fades towards the sides it shares with a neighbour; the blend divides by the summed weights,
    which are positive everywhere (where one tile fades out, its neighbour is at full weight).
    """
    height, width = x.shape[-2:]
    multiple = round(1 / scale) if scale < 1 else 1  # tiles of whole output pixels
    rows, tile_height = tile_layout(height, tile, overlap, multiple)
    columns, tile_width = tile_layout(width, tile, overlap, multiple)
    shared = [smallest_overlap(rows, tile_height), smallest_overlap(columns, tile_width)]
    fade = round(min(overlap, *(value for value in shared if value > 0)) * scale)
    out: torch.Tensor | None = None
    total_weight: torch.Tensor | None = None
    for row in rows:
        for column in columns:
            result = fn(x[..., row : row + tile_height, column : column + tile_width])  # [B, C', F', h, w]
            if out is None:
                out = result.new_zeros(
                    (*result.shape[:-2], round(height * scale), round(width * scale)), dtype=torch.float32
                )
                total_weight = out.new_zeros(out.shape[-2:])
            assert total_weight is not None
            top, left = round(row * scale), round(column * scale)
            out_height, out_width = result.shape[-2:]
            weight = tile_weights(out_height, out_width, row, column, rows, columns, fade, x.device)
            out[..., top : top + out_height, left : left + out_width] += result.float() * weight
            total_weight[top : top + out_height, left : left + out_width] += weight
    assert out is not None and total_weight is not None
    return (out / total_weight).to(result.dtype)


class TiledAutoencoder:
    """An autoencoder that encodes and decodes frames larger than `tile` pixels in overlapping tiles.

    Args:
        autoencoder: the autoencoder to run on each tile.
        tile: tile side in pixels; frames no larger than this run untiled, exactly as before.
        overlap: pixels shared by neighbouring tiles, blended linearly.
    """

    def __init__(self, autoencoder: Autoencoder, tile: int, overlap: int) -> None:
        factor = autoencoder.spatial_factor
        if tile % factor or overlap % factor or not 0 <= overlap < tile:
            raise ValueError(
                f"autoencoder tile {tile} and overlap {overlap} must be multiples of {factor}, "
                "with 0 <= overlap < tile"
            )
        self.autoencoder = autoencoder
        self.tile, self.overlap = tile, overlap
        self.latent_channels = autoencoder.latent_channels
        self.spatial_factor = factor
        self.temporal_factor = autoencoder.temporal_factor

    def is_valid_frame_count(self, num_frames: int) -> bool:
        return self.autoencoder.is_valid_frame_count(num_frames)

    def latent_frames(self, num_frames: int) -> int:
        return self.autoencoder.latent_frames(num_frames)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Videos `[B, 3, F, H, W]` -> latents `[B, C, F', H/f, W/f]`."""
        if max(video.shape[-2:]) <= self.tile:
            return self.autoencoder.encode(video)
        return run_tiled(self.autoencoder.encode, video, self.tile, self.overlap, 1 / self.spatial_factor)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latents `[B, C, F', h, w]` -> videos `[B, 3, F, h·f, w·f]` in [-1, 1]."""
        factor = self.spatial_factor
        if max(latent.shape[-2:]) * factor <= self.tile:
            return self.autoencoder.decode(latent)
        return run_tiled(self.autoencoder.decode, latent, self.tile // factor, self.overlap // factor, factor)
