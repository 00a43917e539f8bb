"""One home for a shot render: parsed inputs -> the pipeline -> the layers and headers of each output frame.

rf-render (in process), the daemon and the workflows all come through here; they differ only
in where the inputs come from (the user's files, a request's payloads) and where frames go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from renderflow.core.io import colour
from renderflow.core.io.envmap import EnvTransform
from renderflow.core.io.outputs import camera_attributes, colour_attributes, data_layers, rgba_layer
from renderflow.core.io.sequences import has_frame_token
from renderflow.core.model.pipeline import GBufferLatents, ProgressFn, RenderFlowPipeline
from renderflow.core.shading.deferred import render_baseline
from renderflow.core.shading.visibility import shade_with_visibility
from renderflow.core.shot.reading import Plate, ReadOptions, Shot, read_plate, read_shot, shot_envmaps
from renderflow.core.shot.segments import keyframe_numbers
from renderflow.core.shot.settings import OutputFrame, RenderSettings


def read_keyframes(shot: Shot, pattern: str | None, colour_space: str) -> dict[int, np.ndarray]:
    """Path-traced keyframes `{frame index: [H, W, 3] model space}` for the shot's frames that have one."""
    numbers = keyframe_numbers(pattern, shot.frames)
    if pattern is None or not numbers:
        return {}
    images = read_plate(pattern, numbers, "", colour_space).images
    return {shot.frames.index(number): image for number, image in zip(numbers, images, strict=True)}


def render_shot(
    pipeline: RenderFlowPipeline,
    shot: Shot,
    envmap_path: Path,
    settings: RenderSettings,
    colour_space: str,
    keyframes: Mapping[int, np.ndarray] | None = None,
    latents: GBufferLatents | None = None,
    progress: ProgressFn | None = None,
) -> list[OutputFrame]:
    """Render `shot` under the env map and lay out each frame (docs/OUTPUTS.md).

    `latents` are the shot's encoded G-buffers when a caller keeps them (the daemon's cache).
    """
    envmap_cam = shot_envmaps(shot, envmap_path, colour_space, settings.env_transform)
    beauty = pipeline.render(
        latents if latents is not None else shot.sequence.gbuffers,
        envmap_cam,
        dict(keyframes) if keyframes else None,
        settings.steps,
        progress=progress,
        vertical_fov_degrees=shot.vertical_fov_degrees,
        camera_to_world=shot.cameras,
    )
    return render_frames(shot, beauty, settings, colour_space)


def preview_shot(
    shot: Shot, envmap_path: Path, method: str, env_transform: EnvTransform, colour_space: str
) -> list[OutputFrame]:
    """The shot shaded without the network (`method`: deferred, ibl, or visibility: the Deferred
    shading with shadows, occlusion and one bounce), laid out like a render."""
    settings = RenderSettings(env_transform=env_transform)
    envmap_cam = shot_envmaps(shot, envmap_path, colour_space, settings.env_transform)
    gbuffers, fov = shot.sequence.gbuffers, shot.vertical_fov_degrees
    if method == "visibility":
        beauty = shade_with_visibility(gbuffers, envmap_cam, fov)
    else:
        beauty = render_baseline(method, gbuffers, envmap_cam, fov)
    outputs = render_frames(shot, beauty, settings, colour_space)
    for frame in outputs:
        frame.attributes["renderflow/preview"] = method
    return outputs


def render_shot_files(
    pipeline: RenderFlowPipeline,
    gbuffers: str,
    frames: list[int],
    options: ReadOptions,
    envmap_path: Path,
    settings: RenderSettings,
    keyframes: str | None = None,
) -> list[OutputFrame]:
    """Render `frames` of a G-buffer EXR pattern (a single file: all of it), guided by the keyframe
    files of the `keyframes` pattern that exist."""
    shot = read_shot(gbuffers, frames if has_frame_token(gbuffers) else None, options)
    keys = read_keyframes(shot, keyframes, options.colour_space)
    return render_shot(pipeline, shot, envmap_path, settings, options.colour_space, keys)


def render_frames(
    shot: Shot, beauty_model: np.ndarray, settings: RenderSettings, colour_space: str
) -> list[OutputFrame]:
    """Each rendered frame `[F, H, W, 3]` (model space) as premultiplied RGBA plus the asked-for layers."""
    gbuffers, mask = shot.sequence.gbuffers, shot.sequence.mask
    base = colour_attributes(colour_space) | {"renderflow/steps": settings.steps}
    frames = []
    for index, number in enumerate(shot.frames):
        buffers: dict[str, np.ndarray] = {}
        for name in settings.aovs:
            if name == "alpha":  # protocol 1's name for A, which every render now has
                continue
            if name == "albedo":
                buffers[name] = colour.from_model(gbuffers.albedo[index], colour_space)
            elif name in ("roughness", "metallic", "specular"):
                channel = ("roughness", "metallic", "specular").index(name)
                buffers[name] = gbuffers.material[index][..., channel : channel + 1]
            else:
                buffers[name] = getattr(gbuffers, name)[index]
        camera = shot.cameras[index] if shot.cameras is not None else shot.camera_to_world[index]
        frames.append(
            OutputFrame(
                number,
                [
                    rgba_layer(colour.from_model(beauty_model[index], colour_space), mask[index]),
                    *data_layers(buffers),
                ],
                base | camera_attributes(camera, shot.vertical_fov_degrees),
            )
        )
    return frames


def decompose_plate(
    pipeline: RenderFlowPipeline,
    plate: Plate,
    targets: Sequence[str],
    steps: int,
    colour_space: str,
    progress: ProgressFn | None = None,
) -> list[OutputFrame]:
    """Intrinsic layers of a plate, one output frame each, with the plate's header cameras."""
    buffers = pipeline.decompose(plate.images, list(targets), steps, progress)
    base = colour_attributes(colour_space) | {"renderflow/steps": steps}
    frames = []
    for index, (number, camera) in enumerate(zip(plate.numbers, plate.cameras, strict=True)):
        frame_buffers = {name: buffers[name][index] for name in targets}
        if "albedo" in frame_buffers:
            frame_buffers["albedo"] = colour.from_model(frame_buffers["albedo"], colour_space)
        frames.append(OutputFrame(1 if number is None else number, data_layers(frame_buffers), base | camera))
    return frames
