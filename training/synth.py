"""`rf-train synth`: a dataset of path-traced clips (ARCHITECTURE §2's clip folders).

A dataset is `OUT/{train,val,test}/clip_NNNN/` with `frame.####.exr` (canonical layers: beauty,
albedo, N, depth, roughness, metallic, specular, mask), `envmap.exr`, `camera.json` and
`scene.json`. Each clip is its own scene, so the split is by scene. A clip is complete when its
`done` file exists (written last); a rerun skips complete clips and redoes the rest, so an
interrupted build resumes. Everything is deterministic in (seed, clip index).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderflow.core.io.camera_files import write_camera_json
from renderflow.core.io.cameras import CameraTrack, to_imath
from renderflow.core.io.exr import write_exr
from renderflow.core.io.gbuffer_io import write_canonical_frame
from renderflow.training.mitsuba_render import render_frame, write_meshes
from renderflow.training.procedural import MaterialSpec, SceneSpec, make_envmap
from renderflow.training.scene_presets import clip_setup

logger = logging.getLogger(__name__)

FIRST_FRAME = 1001
DONE_FILE = "done"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SynthConfig:
    clips: int = 4
    frames: int = 5
    resolution: int = 64
    spp: int = 64
    seed: int = 0
    vertical_fov_degrees: float = 40.0
    envmap_height: int = 128  # the env map written with each clip is 2:1 lat-long
    animate_material: bool = False  # paper appendix C: roughness 1->0, metallic 0->1, blue->green
    preset: str = "classic"  # scene_presets.PRESETS; ood is a test split only
    variant: str | None = None  # Mitsuba variant; None: mitsuba_render.mitsuba_module's choice


def split_of(index: int, clips: int) -> str:
    """Last ~10 % of clips (at least one from 3 clips on) are test, the ~10 % before them val."""
    held_out = max(1, round(0.1 * clips)) if clips >= 3 else 0
    if index >= clips - held_out:
        return "test"
    if index >= clips - 2 * held_out:
        return "val"
    return "train"


def clip_folder(out: Path, index: int, config: SynthConfig) -> Path:
    """`ood` clips are all test clips: that preset never trains anything."""
    split = "test" if config.preset == "ood" else split_of(index, config.clips)
    return out / split / f"clip_{index:04d}"


def animated_scene(scene: SceneSpec, frame: int, frames: int) -> SceneSpec:
    """The appendix C edit on the first object: roughness 1->0, metallic 0->1, albedo blue->green."""
    t = frame / max(frames - 1, 1)
    shapes = list(scene.shapes)
    edited = MaterialSpec((0.05, 0.1 + 0.7 * t, 0.8 - 0.7 * t), 1.0 - t, t, shapes[1].material.specular)
    shapes[1] = dataclasses.replace(shapes[1], material=edited)
    return dataclasses.replace(scene, shapes=shapes)


def make_clip(out: Path, index: int, config: SynthConfig) -> Path:
    """Render clip `index` into its folder (skipped when already complete); return the folder."""
    folder = clip_folder(out, index, config)
    if (folder / DONE_FILE).exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)  # a half-written clip from an interrupted run
    folder.mkdir(parents=True)
    clip_seed = config.seed * 1_000_003 + index
    setup = clip_setup(config.preset, clip_seed, config.frames, config.vertical_fov_degrees)
    scene, cameras, fov = setup.scene, setup.cameras, setup.vertical_fov_degrees
    envmap = make_envmap(scene.env, config.envmap_height, 2 * config.envmap_height)
    write_exr(folder / "envmap.exr", envmap, ["R", "G", "B"], half=False)
    meshes = write_meshes(scene, folder / "meshes")
    frame_numbers = [FIRST_FRAME + frame for frame in range(config.frames)]
    for frame, number in enumerate(frame_numbers):
        frame_scene = animated_scene(scene, frame, config.frames) if config.animate_material else scene
        buffers = render_frame(
            frame_scene,
            folder / "envmap.exr",
            meshes,
            cameras[frame],
            fov,
            config.resolution,
            config.spp,
            seed=(clip_seed * 1000 + frame) % 2**32,  # Mitsuba seeds are 32-bit
            variant=config.variant,
        )
        attributes = {
            "renderflow/source": "rf-train synth",
            "renderflow/seed": int(clip_seed),
            "renderflow/spp": config.spp,
            "cameraToWorld": to_imath(cameras[frame]),
            "worldToCamera": to_imath(np.linalg.inv(cameras[frame])),
        }
        write_canonical_frame(folder / f"frame.{number:04d}.exr", buffers, attributes)
    fovs = [fov] * config.frames
    write_camera_json(folder / "camera.json", CameraTrack(frame_numbers, cameras, fovs))
    (folder / "scene.json").write_text(json.dumps(dataclasses.asdict(scene), indent=1))
    shutil.rmtree(folder / "meshes")
    (folder / DONE_FILE).write_text(json.dumps(dataclasses.asdict(config)))
    return folder


def _make_clip_job(job: tuple[Path, int, SynthConfig]) -> Path:
    return make_clip(*job)


def synthesise(
    out: Path, config: SynthConfig, workers: int = 1, progress: Callable[[int, int], None] | None = None
) -> list[Path]:
    """Make every clip of the dataset, `workers` processes at a time; return the clip folders."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "synth.json").write_text(json.dumps(dataclasses.asdict(config), indent=1))
    jobs = [(out, index, config) for index in range(config.clips)]
    folders: list[Path] = []
    if workers <= 1:
        for job in jobs:
            folders.append(_make_clip_job(job))
            if progress is not None:
                progress(len(folders), len(jobs))
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for folder in pool.imap_unordered(_make_clip_job, jobs):
                folders.append(folder)
                if progress is not None:
                    progress(len(folders), len(jobs))
    return sorted(folders)
