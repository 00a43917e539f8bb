"""Transformer inference in overlapping spatial windows: cost linear in pixels at 2K and 4K.

The transformer attends over every token of a frame: a 2048² frame has 64× the tokens of a 256²
one, ~4000× the attention, and token counts and RoPE positions far outside what the model was
trained on (the banding of issue #21). Above `window` latent cells a side, every per-token input
(the noisy latent, the G-buffer attributes, the env map's tokens, the keyframe reprojection) is
cut into overlapping windows of that size; windows run as one batch (a group of `batch` at a
time), each with its own crop of the keyframe latents, and their velocities are blended with
weights that fade across each overlap (`tiling.tile_weights`).

Global context is kept where the model takes it: the exposure is normalised over the whole env
map before any window, the Deferred-shading bridge source is computed on the whole frame, and
every window's env tokens are the env map seen behind its own pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from renderflow.core.model.tiling import smallest_overlap, tile_layout, tile_weights

CORRECTION_CELLS = 2  # cells of the shrunk frame per sample of the low-frequency correction
PATCH_CELLS = 2  # windows start and end on the transformer's patch grid (Wan's 2×2 latent cells)

# A window's inputs, stacked on channels `[B, C, F, h, w]`, and its keyframe latents `[B, C, K, h, w]`
# (None without keyframes) -> its velocity `[B, C_out, F, h, w]`.
WindowFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def windowed(
    fn: WindowFn,
    inputs: torch.Tensor,
    keyframe_latents: torch.Tensor | None,
    window: int,
    overlap: int,
    batch: int,
) -> torch.Tensor:
    """`fn` over overlapping `window × window` crops of `inputs` `[1, C, F, h, w]`, blended.

    `window` and `overlap` are in latent cells (multiples of the transformer's patch); a frame
    no larger than `window` runs whole, exactly as without windows. Windows are spread evenly
    (`tiling.tile_layout`), so the work stays close to the frame's own size.
    """
    height, width = inputs.shape[-2:]
    if max(height, width) <= window:
        return fn(inputs, keyframe_latents)
    rows, window_height = tile_layout(height, window, overlap, PATCH_CELLS)
    columns, window_width = tile_layout(width, window, overlap, PATCH_CELLS)
    fade = min(
        overlap,
        *(
            value
            for value in (smallest_overlap(rows, window_height), smallest_overlap(columns, window_width))
            if value > 0
        ),
    )
    places = [(row, column) for row in rows for column in columns]
    out: torch.Tensor | None = None
    total = inputs.new_zeros((height, width), dtype=torch.float32)
    for first in range(0, len(places), batch):
        group = places[first : first + batch]
        crops = torch.cat([_crop(inputs, row, column, window_height, window_width) for row, column in group])
        keyframe_crops = (
            None
            if keyframe_latents is None
            else torch.cat(
                [_crop(keyframe_latents, row, column, window_height, window_width) for row, column in group]
            )
        )
        results = fn(crops, keyframe_crops).float()  # [n, C_out, F, h', w']
        if out is None:
            out = results.new_zeros((1, *results.shape[1:3], height, width))
        for result, (row, column) in zip(results, group, strict=True):
            tile_height, tile_width = result.shape[-2:]
            weight = tile_weights(tile_height, tile_width, row, column, rows, columns, fade, inputs.device)
            out[0, ..., row : row + tile_height, column : column + tile_width] += result * weight
            total[row : row + tile_height, column : column + tile_width] += weight
    assert out is not None
    return (out / total).to(inputs.dtype)


def with_global_context(
    fn: WindowFn,
    windowed_velocity: torch.Tensor,
    inputs: torch.Tensor,
    keyframe_latents: torch.Tensor | None,
    window: int,
) -> torch.Tensor:
    """The windows' detail on a whole-frame low-frequency base.

    Windows that see different parts of a frame disagree a little on its overall light, and a blend
    turns that into soft blocks. One more pass of `fn` over the whole frame shrunk to a window (area
    pooling of every per-token input) gives the frame's low frequencies as the model sees the whole
    of it; they replace the windows' own: `v = v_windows + up(low(v_global - shrink(v_windows)))`.
    """
    frames, height, width = inputs.shape[-3:]
    scale = window / max(height, width)
    small = (
        frames,
        max(PATCH_CELLS, round(height * scale / PATCH_CELLS) * PATCH_CELLS),
        max(PATCH_CELLS, round(width * scale / PATCH_CELLS) * PATCH_CELLS),
    )
    shrunk_keyframes = (
        None
        if keyframe_latents is None
        else F.interpolate(keyframe_latents, (keyframe_latents.shape[2], *small[1:]), mode="area")
    )
    global_velocity = fn(F.interpolate(inputs, small, mode="area"), shrunk_keyframes).float()
    # the correction lives on a grid of a few samples per window: the blocks are window-sized, and a
    # finer grid would carry the small pass's own patch-level texture into the frame
    coarse = (frames, max(1, small[1] // CORRECTION_CELLS), max(1, small[2] // CORRECTION_CELLS))
    shrunk_windows = F.interpolate(windowed_velocity.float(), small, mode="area")
    correction = F.interpolate(global_velocity - shrunk_windows, coarse, mode="area")
    full = (frames, height, width)
    return (windowed_velocity.float() + F.interpolate(correction, full, mode="trilinear")).to(
        windowed_velocity.dtype
    )


def _crop(tensor: torch.Tensor, row: int, column: int, height: int, width: int) -> torch.Tensor:
    return tensor[..., row : row + height, column : column + width]
