"""Torch datasets over clip folders (ARCHITECTURE §2): frame windows, crops, keyframes, latents.

A clip is loaded once into memory in model space (`ClipArrays`); a sample is a window of
`window` consecutive frames at a random crop, with the clip's keyframes every `keyframe_gap`
frames from a random phase. Every sample is a pure function of (seed, sample index), so a
training run resumes exactly by restarting at the right index, and several processes can
read disjoint indices.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from renderflow.core.io.buffers import DEFAULT_VERTICAL_FOV_DEGREES
from renderflow.core.io.clips import Clip, load_clip
from renderflow.core.model import encodings as enc
from renderflow.core.model.autoencoder import Autoencoder
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.model.sources import SOURCE_SHADERS
from renderflow.core.shading.lighting import (
    LightingConfig,
    env_brackets_to_model,
    image_exposure_scale,
    normalised_envmap,
)
from renderflow.core.shading.reprojection import reproject_keyframes
from renderflow.core.shot.contact_sheet import (
    display_colour,
    display_depth,
    display_normal,
    write_contact_sheet,
)
from renderflow.training.augment import augment_clip, augmented_name

logger = logging.getLogger(__name__)

# The model-space stack of a clip starts with these, for every model; the first four are the forward
# model's inputs. `ModelInputs.names` adds what a model's lighting and bridge source need.
BUFFERS = ("albedo", "normal", "depth", "material", "env", "beauty")
DONE_FILE = "done"  # written last by `rf-train synth`


@dataclass(frozen=True)
class ModelInputs:
    """What a checkpoint's model sees of a clip besides its G-buffers (core.lighting, core.bridge).

    With `lighting.normalise`, env map, beauty and keyframes are divided by the clip's light scale,
    and `plate` is the beauty divided by its own exposure (what `decompose` sees); `env1`, `env2`...
    are the darker env brackets; `shaded` or `shaded_visibility` is the image bridge source, named as
    the source is (core/model/sources.py).
    """

    lighting: LightingConfig = field(default_factory=LightingConfig)
    bridge_source: str = "albedo"

    @classmethod
    def of(cls, pipeline: RenderFlowPipeline) -> ModelInputs:
        return cls(pipeline.lighting, pipeline.bridge.source)

    @property
    def names(self) -> tuple[str, ...]:
        brackets = tuple(f"env{index}" for index in range(1, len(self.lighting.env_brackets)))
        shaded = (self.bridge_source,) if SOURCE_SHADERS[self.bridge_source] is not None else ()
        plate = ("plate",) if self.lighting.normalise else ()
        return BUFFERS + brackets + shaded + plate

    def env_names(self) -> tuple[str, ...]:
        """The stack's env buffers, brightest bracket first: the transformer's env latents in order."""
        return env_buffer_names(self.names)


def env_buffer_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The env brackets among a stack's buffer names, in order: `env`, `env1`, `env2`..."""
    return tuple(name for name in names if name == "env" or (name[:3] == "env" and name[3:].isdigit()))


@dataclass
class ClipArrays:
    """A clip in model space: `stack` is `[len(names), F, H, W, 3]` in [-1, 1], `mask` `[F, H, W, 1]`;
    its planar depth, cameras and fov for keyframe reprojection."""

    name: str
    stack: np.ndarray
    mask: np.ndarray
    names: tuple[str, ...] = BUFFERS
    depth: np.ndarray | None = None  # [F, H, W, 1] planar
    camera_to_world: np.ndarray | None = None  # [F, 4, 4]
    vertical_fov_degrees: float = DEFAULT_VERTICAL_FOV_DEGREES


def find_clips(root: Path, split: str | None = None) -> list[Path]:
    """Clip folders under `root` (or `root/split`), sorted; a folder is a clip when it holds `envmap.exr`
    (its cameras come from camera.json or the frames' headers).

    In a dataset `rf-train synth` writes (its `synth.json` beside the splits), a clip counts only once
    complete (its `done` file exists); any other folder of clips is taken as it is on disk.
    """
    base = Path(root) / split if split else Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: no such dataset folder")
    made_by_synth = any((folder / "synth.json").exists() for folder in (base, base.parent))
    clips = []
    # glob, not Path.rglob: a split assembled from symlinked clip folders is followed
    for envmap in sorted(Path(path) for path in glob.glob(str(base / "**" / "envmap.exr"), recursive=True)):
        folder = envmap.parent
        if made_by_synth and not (folder / DONE_FILE).exists():
            logger.warning("%s: incomplete clip (no %s file), skipped", folder, DONE_FILE)
            continue
        clips.append(folder)
    if not clips:
        raise FileNotFoundError(
            f"{base}: no clip folders (a clip holds frames, envmap.exr and camera.json or EXR cameras)"
        )
    return clips


def to_model_space(clip: Clip, inputs: ModelInputs | None = None) -> ClipArrays:
    """The clip's buffers in the model's encodings, depth normalised over the whole clip; env map,
    brackets and shaded source made by the pipeline's own functions, so training sees what inference sees."""
    inputs = inputs or ModelInputs()
    gbuffers = clip.gbuffers
    num_frames, height, width = gbuffers.validate()
    env_cam, scale = normalised_envmap(clip.envmap_cam, inputs.lighting)
    brackets = env_brackets_to_model(env_cam, inputs.lighting.env_brackets, num_frames, height, width)
    buffers = {
        "albedo": enc.albedo_to_model(gbuffers.albedo),
        "normal": enc.normal_to_model(gbuffers.normal),
        "depth": enc.depth_to_model(gbuffers.depth, enc.disparity_range(gbuffers.depth)),
        "material": enc.material_to_model(gbuffers.material),
        "beauty": enc.beauty_to_model(clip.beauty / np.float32(scale)),
    }
    buffers |= dict(zip(inputs.env_names(), brackets, strict=True))
    shader = SOURCE_SHADERS[inputs.bridge_source]
    if shader is not None:
        buffers[inputs.bridge_source] = shader(gbuffers, env_cam, clip.vertical_fov_degrees, 0.0)
    if inputs.lighting.normalise:
        buffers["plate"] = enc.beauty_to_model(clip.beauty / np.float32(image_exposure_scale(clip.beauty)))
    stack = np.stack([buffers[name] for name in inputs.names]).astype(np.float32)
    assert stack.shape == (len(inputs.names), num_frames, height, width, 3)
    return ClipArrays(
        clip.name,
        stack,
        clip.mask.astype(np.float32),
        inputs.names,
        gbuffers.depth,
        clip.camera_to_world,
        clip.vertical_fov_degrees,
    )


@dataclass(frozen=True)
class WindowSpec:
    """How samples are cut from clips."""

    window: int = 5  # frames per sample: the training clip length (paper §4.4)
    crop: int | None = None  # square crop in pixels; None keeps the whole frame
    keyframe_gap: int = 16  # keyframes every this many frames of the clip (paper: sparse keyframes)
    crop_multiple: int = 8  # crops start on this grid (the autoencoder × patch factor)
    reproject: bool = False  # items carry the keyframes reprojected into the window's frames


def keyframe_indices(num_frames: int, gap: int, phase: int) -> list[int]:
    """Clip frames `phase, phase + gap, ...` below `num_frames`."""
    if gap < 1:
        raise ValueError(f"keyframe gap must be >= 1, got {gap}")
    return list(range(phase % gap, num_frames, gap))


class ClipWindowDataset(Dataset[dict[str, torch.Tensor]]):
    """Samples of a window of frames from in-memory clips; item `i` is fixed by (seed, i).

    An item holds `buffers` `[len(BUFFERS), 3, window, h, w]` (model space, [-1, 1]), `mask`
    `[1, window, h, w]`, `keyframes` `[K, 3, h, w]` (the clip's beauty at `keyframe_frames`),
    `keyframe_frames` `[K]` (clip frames relative to the window's first frame; may lie outside
    the window), `clip` (the clip's index) and, with `spec.reproject`, `reprojected`
    `[4, window, h, w]` (the keyframes reprojected into each frame, model space, then validity).
    """

    def __init__(self, clips: list[ClipArrays], spec: WindowSpec, seed: int = 0, length: int = 10**9) -> None:
        if not clips:
            raise ValueError("a dataset needs at least one clip")
        for clip in clips:
            _, num_frames, height, width, _ = clip.stack.shape
            if num_frames < spec.window:
                raise ValueError(
                    f"clip {clip.name}: {num_frames} frames, shorter than the window {spec.window}"
                )
            if spec.crop is not None and spec.crop > min(height, width):
                raise ValueError(
                    f"clip {clip.name}: {width}x{height} is smaller than the crop {spec.crop} "
                    "(choose a smaller --crop or --schedule)"
                )
        self.clips = clips
        self.spec = spec
        self.seed = seed
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        clip_index = int(rng.integers(len(self.clips)))
        clip = self.clips[clip_index]
        _, num_frames, height, width, _ = clip.stack.shape
        start = int(rng.integers(num_frames - self.spec.window + 1))
        top, left, size_h, size_w = 0, 0, height, width
        if self.spec.crop is not None:
            size_h = size_w = self.spec.crop
            step = self.spec.crop_multiple
            top = step * int(rng.integers((height - size_h) // step + 1))
            left = step * int(rng.integers((width - size_w) // step + 1))
        rows, cols = slice(top, top + size_h), slice(left, left + size_w)
        frames = slice(start, start + self.spec.window)
        keyframes = keyframe_indices(
            num_frames, self.spec.keyframe_gap, int(rng.integers(self.spec.keyframe_gap))
        )
        beauty = BUFFERS.index("beauty")
        # [N, F, H, W, 3] -> [N, 3, F, H, W]
        buffers = torch.from_numpy(clip.stack[:, frames, rows, cols]).permute(0, 4, 1, 2, 3)
        # [K, H, W, 3] -> [K, 3, H, W]
        keyframe_pixels = torch.from_numpy(clip.stack[beauty, keyframes][:, rows, cols]).permute(0, 3, 1, 2)
        extra = {}
        if self.spec.reproject:
            if clip.depth is None or clip.camera_to_world is None:
                raise ValueError(f"clip {clip.name}: no depth or cameras to reproject keyframes with")
            reprojected = reproject_keyframes(
                clip.depth,
                clip.camera_to_world,
                clip.vertical_fov_degrees,
                {key: clip.stack[beauty, key] for key in keyframes},
                range(start, start + self.spec.window),
            )  # [window, H, W, 4], cropped after: the projection needs the whole frame
            extra["reprojected"] = (
                torch.from_numpy(reprojected[:, rows, cols]).permute(3, 0, 1, 2).contiguous()
            )
        return extra | {
            "buffers": buffers.contiguous(),
            "mask": torch.from_numpy(clip.mask[frames, rows, cols]).permute(3, 0, 1, 2).contiguous(),
            "keyframes": keyframe_pixels.contiguous(),
            "keyframe_frames": torch.tensor(keyframes, dtype=torch.float32) - start,
            "clip": torch.tensor(clip_index),
            "start": torch.tensor(start),
            "origin": torch.tensor([top, left]),
        }


def load_dataset(
    root: Path,
    split: str | None,
    profile: str = "auto",
    inputs: ModelInputs | None = None,
    augmentations: tuple[str, ...] = (),
    workers: int = 1,
) -> list[ClipArrays]:
    """Every clip of a split, loaded and converted to model space for a model that takes `inputs`;
    with `augmentations` (training/augment.py), each clip is followed by its augmented copies.

    Each clip's arrays are kept in `root/STACK_CACHE_DIR` (safetensors, named by a hash of the clip's
    files, the profile, `inputs` and the augmentation), so the stages after the first skip reading
    and shading it. Clips not cached yet are shaded by `workers` processes at once (one thread each)
    where the cache can be written.
    """
    inputs = inputs or ModelInputs()
    cache = Path(root) / STACK_CACHE_DIR
    jobs = [
        (folder, profile, inputs, cache, augmentation)
        for folder in find_clips(root, split)
        for augmentation in (None, *augmentations)
    ]
    missing = [job for job in jobs if not _cache_path(*job).exists()]
    if workers > 1 and len(missing) > 1 and _writable(cache):
        processes = min(workers, len(missing))
        logger.info("shading %d clips into %s, %d processes", len(missing), cache, processes)
        with multiprocessing.get_context("spawn").Pool(processes, _one_thread) as pool:
            pool.starmap(_write_model_space, missing)
    return [_cached_model_space(*job) for job in jobs]


STACK_CACHE_DIR = ".model_space_cache"
STACK_CACHE_VERSION = 4  # bump when to_model_space changes what it computes


def _cache_path(
    folder: Path, profile: str, inputs: ModelInputs, cache: Path, augmentation: str | None
) -> Path:
    digest = hashlib.sha256(repr((STACK_CACHE_VERSION, profile, inputs)).encode())
    if augmentation is not None:  # hashed only when set: the caches of unaugmented clips stay valid
        digest.update(augmentation.encode())
    name = folder.name if augmentation is None else augmented_name(folder.name, augmentation)
    for path in sorted(folder.iterdir()):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return cache / f"{name}-{digest.hexdigest()[:16]}.safetensors"


def _writable(cache: Path) -> bool:
    try:
        cache.mkdir(exist_ok=True)
    except OSError:
        return False
    return os.access(cache, os.W_OK)


def _one_thread() -> None:
    torch.set_num_threads(1)


def _write_model_space(
    folder: Path, profile: str, inputs: ModelInputs, cache: Path, augmentation: str | None
) -> None:
    _cached_model_space(folder, profile, inputs, cache, augmentation)  # in a worker: the file is what counts


def _cached_model_space(
    folder: Path, profile: str, inputs: ModelInputs, cache: Path, augmentation: str | None
) -> ClipArrays:
    path = _cache_path(folder, profile, inputs, cache, augmentation)
    name = folder.name if augmentation is None else augmented_name(folder.name, augmentation)
    if path.exists():
        tensors = load_file(str(path))
        return ClipArrays(
            name,
            tensors["stack"].numpy(),
            tensors["mask"].numpy(),
            inputs.names,
            tensors["depth"].numpy(),
            tensors["camera_to_world"].numpy(),
            float(tensors["vertical_fov_degrees"]),
        )
    clip = load_clip(folder, profile)
    if augmentation is not None:
        clip = augment_clip(clip, augmentation)
    arrays = to_model_space(clip, inputs)
    assert arrays.depth is not None and arrays.camera_to_world is not None
    try:
        cache.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # processes may shade one clip at once
        tensors = {
            "stack": torch.from_numpy(arrays.stack),
            "mask": torch.from_numpy(arrays.mask),
            "depth": torch.from_numpy(np.ascontiguousarray(arrays.depth, np.float32)),
            "camera_to_world": torch.from_numpy(np.ascontiguousarray(arrays.camera_to_world, np.float64)),
            "vertical_fov_degrees": torch.tensor(arrays.vertical_fov_degrees, dtype=torch.float64),
        }
        save_file(tensors, str(tmp))
        tmp.replace(path)
    except OSError as error:  # a read-only dataset still trains, only slower to start
        logger.warning("%s: model-space cache not written (%s)", cache, error)
    return arrays


class LatentCache:
    """Latents of a frozen autoencoder for whole clips, computed once and kept as safetensors.

    Files are named by a hash of the autoencoder's weights and the clip's pixels, so a changed
    autoencoder or clip never reads stale latents. Per-frame autoencoders (temporal factor 1)
    cache every frame of a clip and serve any window; crops are cut in latent space, on the
    autoencoder's grid (`WindowSpec.crop_multiple` must be a multiple of its spatial factor).
    """

    def __init__(self, autoencoder: Autoencoder, weights: dict[str, torch.Tensor], folder: Path) -> None:
        if autoencoder.temporal_factor != 1:
            raise ValueError(
                "latent caching serves windows of per-frame autoencoders only; "
                f"this one compresses time by {autoencoder.temporal_factor}"
            )
        self.autoencoder = autoencoder
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        for name in sorted(weights):
            digest.update(name.encode())
            digest.update(weights[name].detach().cpu().float().numpy().tobytes())
        self.autoencoder_hash = digest.hexdigest()[:16]
        self._memory: dict[str, torch.Tensor] = {}

    def clip_latents(self, clip: ClipArrays) -> torch.Tensor:
        """`[len(clip.names), C, F, h, w]` latents of every buffer of the clip."""
        key = hashlib.sha256(clip.stack.tobytes()).hexdigest()[:16]
        if key in self._memory:
            return self._memory[key]
        path = self.folder / f"{clip.name}-{self.autoencoder_hash}-{key}.safetensors"
        if path.exists():
            latents = load_file(str(path))["latents"]
        else:
            video = torch.from_numpy(clip.stack).permute(0, 4, 1, 2, 3)  # [N, F, H, W, 3] -> [N, 3, F, H, W]
            with torch.no_grad():
                latents = self.autoencoder.encode(video.contiguous())
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # processes may shade one clip at once
            save_file({"latents": latents.contiguous()}, str(tmp))
            tmp.replace(path)
        self._memory[key] = latents
        return latents

    def window_latents(
        self, clip: ClipArrays, start: int, window: int, origin: tuple[int, int], size: tuple[int, int]
    ) -> torch.Tensor:
        """Latents of a sample: `[len(clip.names), C, window, h, w]` for pixel crop `origin` + `size`."""
        factor = self.autoencoder.spatial_factor
        if origin[0] % factor or origin[1] % factor or size[0] % factor or size[1] % factor:
            raise ValueError(f"crop {origin} + {size} is not on the autoencoder's {factor}-pixel grid")
        top, left = origin[0] // factor, origin[1] // factor
        height, width = size[0] // factor, size[1] // factor
        latents = self.clip_latents(clip)
        return latents[:, :, start : start + window, top : top + height, left : left + width]


def dataset_contact_sheet(root: Path, split: str | None, clips: int, frame: int, out: Path) -> None:
    """One row per clip (its frame `frame`): beauty, albedo, normal, depth, roughness, metallic, env."""
    rows = [load_clip(folder) for folder in find_clips(root, split)[:clips]]
    for clip in rows:
        if frame >= len(clip.beauty):
            raise ValueError(
                f"clip {clip.name} has {len(clip.beauty)} frames; there is no frame index {frame}"
            )

    def column(pick: Callable[[Clip], np.ndarray]) -> np.ndarray:
        return np.stack([pick(clip) for clip in rows])

    def grey(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, 3, axis=-1)

    height = rows[0].beauty.shape[1]
    write_contact_sheet(
        out,
        {
            "path traced": column(lambda clip: display_colour(clip.beauty[frame])),
            "albedo": column(lambda clip: enc.srgb_oetf(clip.gbuffers.albedo[frame])),
            "normal": column(lambda clip: display_normal(clip.gbuffers.normal[frame])),
            "depth": column(lambda clip: display_depth(clip.gbuffers.depth[frame : frame + 1])[0]),
            "rough": column(lambda clip: grey(clip.gbuffers.material[frame, ..., :1])),
            "metal": column(lambda clip: grey(clip.gbuffers.material[frame, ..., 1:2])),
            "env (cam)": column(
                lambda clip: display_colour(clip.envmap_cam[frame, :, height // 2 : height // 2 + height])
            ),
        },
    )
