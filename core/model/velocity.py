"""The transformer's velocity for the bridge sampler: forward (render) and inverse (decompose), whole
frames or overlapping windows (core/model/windows.py).

Which LoRA adapter runs is the caller's choice, made once per task (`lora.selected_lora`); these
functions only compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from renderflow.core.model.inverse import InverseAdapter
from renderflow.core.model.keyframe import KeyframeAdapter, KeyframeTokens
from renderflow.core.model.transformer import RenderFlowTransformer
from renderflow.core.model.windows import windowed, with_global_context

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (z_t, t) -> v


def forward_velocity(
    transformer: RenderFlowTransformer,
    z_t: torch.Tensor,
    t: torch.Tensor,
    attribute_latent: torch.Tensor,
    env_latent: torch.Tensor,
    keyframe_adapter: KeyframeAdapter | None = None,
    keyframes: KeyframeTokens | None = None,
    first_frame: float = 0.0,
    frame_step: float = 1.0,
    reprojected: torch.Tensor | None = None,
) -> torch.Tensor:
    """The forward renderer's velocity; keyframe guidance only when keyframes are given.

    `reprojected` `[B, C + 1, F, h, w]`: the keyframes reprojected into the frames (latent, validity),
    for an adapter made with reprojection."""
    if keyframes is None:
        return transformer(z_t, t, attribute_latent, env_latent, None)
    if keyframe_adapter is None:
        raise ValueError("keyframes were given but the model has no keyframe adapter")
    frame_times = transformer.token_frame_times(z_t, first_frame, frame_step)
    positions = transformer.token_positions(z_t, first_frame, frame_step)
    branches = keyframe_adapter.branches(keyframes, frame_times, positions, reprojected)
    return transformer(z_t, t, attribute_latent, env_latent, branches)


def inverse_velocity(
    transformer: RenderFlowTransformer,
    adapter: InverseAdapter,
    z_t: torch.Tensor,
    t: torch.Tensor,
    intrinsic: str,
) -> torch.Tensor:
    """The inverse adapter's velocity from the image latent towards `intrinsic`'s latent."""
    tokens = transformer.patchify(adapter.inverse_embedder, z_t)
    return transformer.run(z_t, tokens, t, None, adapter.branches(intrinsic, z_t.shape[0]))


@dataclass(frozen=True)
class WindowPlan:
    """The transformer's windows in latent cells (whole patches); frames up to `window` run whole."""

    window: int
    overlap: int
    batch: int  # windows per forward pass
    global_context: bool  # windows on the low frequencies of one pass over the whole frame


@dataclass
class ChunkInputs:
    """One chunk's per-token inputs and guidance."""

    attributes: torch.Tensor  # [1, 4·C + 1, f', h, w]
    env_latent: torch.Tensor  # [1, brackets·C, f', h, w]
    keyframes: KeyframeTokens | None
    reprojected: torch.Tensor | None  # [1, C + 1, f', h, w] with keyframes of a reprojecting adapter
    first_frame: float
    frame_step: float


def chunk_velocity(
    transformer: RenderFlowTransformer,
    keyframe_adapter: KeyframeAdapter | None,
    inputs: ChunkInputs,
    plan: WindowPlan,
) -> VelocityFn:
    """The forward velocity of one chunk: the whole frame at once up to the plan's window, else every
    per-token input cut alike into windows (each with its crop of the keyframe latents)."""

    def whole(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return forward_velocity(
            transformer,
            z_t,
            t,
            inputs.attributes,
            inputs.env_latent,
            keyframe_adapter,
            inputs.keyframes,
            inputs.first_frame,
            inputs.frame_step,
            inputs.reprojected,
        )

    per_token = [inputs.attributes, inputs.env_latent]
    if inputs.keyframes is not None and inputs.reprojected is not None:
        per_token.append(inputs.reprojected)
    sizes = [part.shape[1] for part in per_token]

    def velocity(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if max(z_t.shape[-2:]) <= plan.window:
            return whole(z_t, t)
        stacked = torch.cat([z_t, *per_token], dim=1)  # cut alike by the windows
        keyframe_latents = None if inputs.keyframes is None else inputs.keyframes.latents

        def run(crops: torch.Tensor, keyframe_crops: torch.Tensor | None) -> torch.Tensor:
            z_crop, attributes, env, *rest = crops.split([z_t.shape[1], *sizes], dim=1)
            window_keyframes = None
            if inputs.keyframes is not None and keyframe_crops is not None:
                assert keyframe_adapter is not None
                window_keyframes = keyframe_adapter.embed(keyframe_crops, inputs.keyframes.frames)
            return forward_velocity(
                transformer,
                z_crop,
                t[:1].expand(z_crop.shape[0]),
                attributes,
                env,
                keyframe_adapter,
                window_keyframes,
                inputs.first_frame,
                inputs.frame_step,
                rest[0] if rest else None,
            )

        result = windowed(run, stacked, keyframe_latents, plan.window, plan.overlap, plan.batch)
        if plan.global_context:
            result = with_global_context(run, result, stacked, keyframe_latents, plan.window)
        return result

    return velocity
