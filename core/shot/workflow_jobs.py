"""The workflows on files: read and check the inputs, run core/shot/workflows.py, lay out the output
frames. The model is loaded (`load`) only once the inputs have been read and the outputs checked."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderflow.core.io import colour
from renderflow.core.io.envmap import EnvTransform
from renderflow.core.io.exr import Layer
from renderflow.core.io.gbuffer_io import read_sequence
from renderflow.core.io.outputs import check_output_pattern, colour_attributes
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shot.reading import (
    Plate,
    ReadOptions,
    plate_envmaps,
    read_channel,
    read_plate,
    read_shot,
    shot_envmaps,
)
from renderflow.core.shot.rendering import render_frames
from renderflow.core.shot.settings import OutputFrame, RenderSettings
from renderflow.core.shot.workflows import (
    RERENDER_INVERSE_MIN_SIZE,
    MaterialEdit,
    edit_materials,
    gbuffers_from_intrinsics,
    insert_object,
    relight,
)

logger = logging.getLogger(__name__)
LoadPipeline = Callable[[], RenderFlowPipeline]


@dataclass(frozen=True)
class PlateJob:
    """The settings every workflow shares."""

    frames: str | None  # fileseq range; None: every frame of the pattern
    steps: int
    colour_space: str


def plate_frames(plate: Plate, layers_per_frame: list[list[Layer]], colour_space: str) -> list[OutputFrame]:
    """Plate-sized results as output frames with the colour-space header and the plate's cameras."""
    attributes = colour_attributes(colour_space)
    return [
        OutputFrame(1 if number is None else number, layers, attributes | camera)
        for number, camera, layers in zip(plate.numbers, plate.cameras, layers_per_frame, strict=True)
    ]


def relight_plate(
    load: LoadPipeline,
    job: PlateJob,
    plate: str,
    layer: str,
    envmaps: Sequence[Path],
    outs: Sequence[str],
    transform: EnvTransform,
) -> list[list[OutputFrame]]:
    """The plate decomposed once and rendered under each env map: the frames for each of `outs`."""
    read = read_plate(plate, job.frames, layer, job.colour_space)
    for out in outs:
        check_output_pattern(out, len(read.numbers))
    height = read.images.shape[1]
    envs = [plate_envmaps(path, len(read.numbers), height, job.colour_space, transform) for path in envmaps]
    _, renders = relight(load(), read.images, envs, job.steps)
    return [
        plate_frames(
            read,
            [[Layer("", colour.from_model(frame, job.colour_space), "RGB", half=False)] for frame in beauty],
            job.colour_space,
        )
        for beauty in renders
    ]


@dataclass(frozen=True)
class InsertInputs:
    """What goes into a plate: an object's G-buffers with their coverage, under one env map."""

    object_gbuffers: str  # the object's G-buffer EXR pattern
    alpha_channel: str
    profile: str
    envmap_path: Path
    env_rotate: float = 0.0
    plate_gbuffers: str | None = None  # a CG plate's own G-buffers: depth-tested, no decomposition


def insert_into_plate(
    load: LoadPipeline, job: PlateJob, plate: str, inserted: InsertInputs, out: str
) -> list[OutputFrame]:
    """Per frame: comp RGB, the coverage (`mask.Y`), the render with the object and the ratio layer."""
    space = job.colour_space
    read = read_plate(plate, job.frames, "", space)
    plate_linear = read.images
    check_output_pattern(out, len(read.numbers))
    obj = read_sequence(inserted.object_gbuffers, job.frames, inserted.profile, space).gbuffers
    alpha = read_channel(inserted.object_gbuffers, job.frames, inserted.alpha_channel, "--alpha-channel")
    pipeline = load()
    if inserted.plate_gbuffers is not None:
        under = read_sequence(inserted.plate_gbuffers, job.frames, inserted.profile, space).gbuffers
    else:
        logger.info("no --plate-gbuffers: decomposing the plate; the object goes in front wherever it covers")
        intrinsics = pipeline.decompose(plate_linear, steps=job.steps, min_size=RERENDER_INVERSE_MIN_SIZE)
        under = gbuffers_from_intrinsics(intrinsics)
    env = plate_envmaps(
        inserted.envmap_path,
        len(read.numbers),
        plate_linear.shape[1],
        space,
        EnvTransform(inserted.env_rotate),
    )
    result = insert_object(
        pipeline, plate_linear, under, obj, alpha, env, job.steps, inserted.plate_gbuffers is not None
    )
    layers = [
        [
            Layer("", colour.from_model(comp, space), "RGB", half=False),
            Layer("mask", coverage, "Y", half=False),
            Layer("render", colour.from_model(render, space), "RGB", half=False),
            Layer("ratio", ratio, "RGB", half=False),
        ]
        for comp, coverage, render, ratio in zip(
            result.comp, result.coverage, result.with_object, result.ratio, strict=True
        )
    ]
    return plate_frames(read, layers, space)


@dataclass(frozen=True)
class MaskSource:
    """Where the edit applies: a mask channel (>= 0.5), or the pixels of one id in an id channel."""

    pattern: str
    channel: str = "A"
    object_id: float | None = None


def edit_shot(
    load: LoadPipeline,
    job: PlateJob,
    gbuffers: str,
    reading: ReadOptions,
    mask_source: MaskSource,
    change: MaterialEdit,
    envmap_path: Path,
    transform: EnvTransform,
    out: str,
) -> list[OutputFrame]:
    """The shot re-rendered with `change` applied inside the mask."""
    shot = read_shot(gbuffers, job.frames, reading)
    check_output_pattern(out, len(shot.frames))
    mask = read_channel(mask_source.pattern, job.frames, mask_source.channel, "--mask-channel")
    if mask_source.object_id is not None:
        mask = (mask == mask_source.object_id).astype(np.float32)
    edited = edit_materials(shot.sequence.gbuffers, mask, change)
    settings = RenderSettings(job.steps, (), transform)
    env = shot_envmaps(shot, envmap_path, job.colour_space, settings.env_transform)
    beauty = load().render(edited, env, steps=job.steps, vertical_fov_degrees=shot.vertical_fov_degrees)
    return render_frames(shot, beauty, settings, job.colour_space)
