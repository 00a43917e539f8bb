"""The daemon's GPU work: a checked render or decompose request -> RenderFlowPipeline -> result payloads.

EXR payloads are written into the job's own temporary folder and read with the same functions
rf-render uses on a shot (AOV profiles, cameras, env-map re-projection), so a file rendered
through the daemon and in process is the same file. Encoded G-buffers are kept in a
content-addressed LRU cache: a relight that changes only the env map or the keyframes skips
reading, converting and encoding the G-buffers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import resource
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.outputs import write_frame
from renderflow.core.io.sequences import frame_path
from renderflow.core.model.pipeline import GBufferLatents, ProgressFn, RenderFlowPipeline
from renderflow.core.shot.reading import Shot, read_plate, read_shot
from renderflow.core.shot.rendering import decompose_plate, read_keyframes, render_shot
from renderflow.core.shot.settings import OutputFrame
from renderflow.daemon import protocol as wire
from renderflow.daemon import requests
from renderflow.daemon.shot_requests import render_settings, request_read_options

logger = logging.getLogger(__name__)

GBUFFER_DECODE_PARAMS = ("profile", "aov", "aov_profile_toml", "colour_space", "camera", "fov", "view")
OUTPUT_PATTERN = "{name}.{frame:04d}.exr"
JOB_FOLDER_PREFIX = "rf-job-"  # + the daemon's pid: folders of dead daemons are found and removed


class JobCancelled(Exception):
    """Raised from a progress callback when the job's client (or a shutdown) cancelled it."""


class JobInputError(ValueError):
    """Images that cannot be used (a bad_input reply); the message says what to change."""


@dataclass
class CachedGBuffers:
    """One shot's G-buffers, read and encoded: everything a relight of it needs."""

    gbuffers: GBuffers  # at rest, for the AOV layers of the result
    latents: GBufferLatents  # on the pipeline's device
    shot: Shot | None = None  # frames, cameras, fov and mask (EXR form); None for raw arrays

    @property
    def nbytes(self) -> int:
        arrays = (self.gbuffers.albedo, self.gbuffers.normal, self.gbuffers.depth, self.gbuffers.material)
        return self.latents.nbytes + sum(array.nbytes for array in arrays)


class LatentCache:
    """Least-recently-used G-buffer latents, bounded by their size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CachedGBuffers] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedGBuffers | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: str, entry: CachedGBuffers) -> None:
        if entry.nbytes > self.max_bytes:
            return
        self._entries[key] = entry
        while self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    @property
    def nbytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._entries),
            "bytes": self.nbytes,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
        }


def gbuffer_cache_key(message: wire.Message) -> str:
    """A digest of everything that decides a render's G-buffer latents: their bytes and how to read them."""
    digest = hashlib.blake2b(digest_size=20)
    decode = {key: message.params.get(key) for key in GBUFFER_DECODE_PARAMS}
    digest.update(json.dumps(decode, sort_keys=True).encode())
    for payload in message.payloads:
        if payload.name in ("gbuffers", *wire.RENDER_RAW_GBUFFERS):
            digest.update(json.dumps(payload.descriptor(), sort_keys=True).encode())
            digest.update(payload.data)
    return digest.hexdigest()


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError for the same thing."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class Renderer:
    """The model and its cache, owned by the daemon's GPU worker thread (never used from two threads)."""

    def __init__(self, weights: Path, device: str, cache_bytes: int) -> None:
        self.weights = Path(weights)
        self.device = device
        self.cache = LatentCache(cache_bytes)
        self._pipeline: RenderFlowPipeline | None = None

    @property
    def loaded(self) -> bool:
        return self._pipeline is not None

    def pipeline(self) -> RenderFlowPipeline:
        """The warm pipeline, loaded on first use (and again after `free`)."""
        if self._pipeline is None:
            logger.info("loading %s on %s", self.weights, self.device)
            self._pipeline = RenderFlowPipeline.from_pretrained(self.weights, device=self.device)
        return self._pipeline

    def free(self) -> dict[str, Any]:
        """Drop the model and the cache from (GPU) memory; the next job loads the model again."""
        freed = self.cache.nbytes
        self.cache.clear()
        self._pipeline = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"freed_cache_bytes": freed}

    def describe(self) -> dict[str, Any]:
        """The model as hello reports it (only what is known without loading it)."""
        info: dict[str, Any] = {"checkpoint": str(self.weights), "device": self.device, "loaded": self.loaded}
        if self._pipeline is not None:
            pipeline = self._pipeline
            info |= {
                "dtype": str(pipeline.dtype).removeprefix("torch."),
                "parameters": sum(p.numel() for p in pipeline.transformer.parameters()),
                "keyframes": pipeline.keyframe_adapter is not None,
                "decompose": pipeline.inverse_adapter is not None,
                "chunk_frames": pipeline.config.chunk_frames,
                "frame_multiple": pipeline.autoencoder.spatial_factor
                * max(pipeline.transformer.config["patch_size"][1:]),
            }
        return info

    # -- jobs ----------------------------------------------------------------------------------------
    def run(self, message: wire.Message, progress: ProgressFn) -> tuple[dict[str, Any], list[wire.Payload]]:
        """Run a checked render/decompose/free request; the result's fields and payloads."""
        if message.op == wire.OP_FREE:
            return self.free(), []
        with tempfile.TemporaryDirectory(prefix=f"{JOB_FOLDER_PREFIX}{os.getpid()}-") as folder:
            workdir = Path(folder)
            try:
                if message.op == wire.OP_RENDER:
                    return self._render(message, workdir, progress)
                return self._decompose(message, workdir, progress)
            except (ValueError, OSError, KeyError) as error:
                raise JobInputError(_payload_names(str(error), workdir)) from error

    def _render(
        self, message: wire.Message, workdir: Path, progress: ProgressFn
    ) -> tuple[dict[str, Any], list[wire.Payload]]:
        params = message.params
        pipeline = self.pipeline()
        key = gbuffer_cache_key(message)
        cached = self.cache.get(key)
        cache_hit = cached is not None
        if cached is None:
            cached = self._read_gbuffers(pipeline, message, workdir)
            self.cache.put(key, cached)
        settings = requests.render_params_of(params)
        shot = cached.shot
        if shot is None:  # raw form: arrays in, arrays out
            beauty = pipeline.render(
                cached.latents,
                _float_array(message.named("envmap_cam")[0]),
                self._raw_keyframes(message) or None,
                settings.steps,
                progress=progress,
                vertical_fov_degrees=params.get("fov"),
            )
            return {"frames": None, "cached_gbuffers": cache_hit}, [wire.Payload.from_array("beauty", beauty)]
        colour_space = requests.shot_params_of(params).colour_space
        envmap_path = _write_payload(workdir / "envmap.exr", message.named("envmap")[0])
        keyframes = {}
        if message.named("keyframe"):
            pattern, _ = _write_sequence(workdir, "keyframe", message.named("keyframe"))
            keyframes = read_keyframes(shot, pattern, colour_space)
        frames = render_shot(
            pipeline,
            shot,
            envmap_path,
            render_settings(settings),
            colour_space,
            keyframes,
            cached.latents,
            progress,
        )
        return {"frames": shot.frames, "cached_gbuffers": cache_hit}, _exr_payloads("beauty", frames, workdir)

    def _read_gbuffers(
        self, pipeline: RenderFlowPipeline, message: wire.Message, workdir: Path
    ) -> CachedGBuffers:
        params = message.params
        gbuffer_payloads = message.named("gbuffers")
        if not gbuffer_payloads:  # raw form: canonical arrays
            gbuffers = GBuffers(*(_float_array(message.named(name)[0]) for name in wire.RENDER_RAW_GBUFFERS))
            return CachedGBuffers(gbuffers, pipeline.encode_gbuffers(gbuffers), None)
        pattern, frames = _write_sequence(workdir, "gbuffers", gbuffer_payloads)
        options = request_read_options(requests.shot_params_of(params))
        shot = read_shot(pattern, frames, options)
        gbuffers = shot.sequence.gbuffers
        return CachedGBuffers(gbuffers, pipeline.encode_gbuffers(gbuffers), shot)

    def _raw_keyframes(self, message: wire.Message) -> dict[int, np.ndarray]:
        raw = message.named("keyframes")
        if not raw:
            return {}
        images = _float_array(raw[0])
        indices = message.params.get("keyframe_frames", [])
        if images.ndim != 4 or len(indices) != images.shape[0]:
            raise JobInputError(
                f"keyframes: {list(images.shape)} images for keyframe_frames {indices}; "
                "expected [K, H, W, 3] and K indices"
            )
        return {int(index): image for index, image in zip(indices, images, strict=True)}

    def _decompose(
        self, message: wire.Message, workdir: Path, progress: ProgressFn
    ) -> tuple[dict[str, Any], list[wire.Payload]]:
        pipeline = self.pipeline()
        asked = requests.decompose_params_of(message.params)
        targets, steps, colour_space = list(asked.targets), asked.steps, asked.colour_space
        payloads = message.named("image")
        if payloads[0].encoding == wire.ENCODING_RAW:
            buffers = pipeline.decompose(_float_array(payloads[0]), targets, steps, progress)
            return {"frames": None}, [wire.Payload.from_array(name, buffers[name]) for name in targets]
        pattern, frames = _write_sequence(workdir, "image", payloads)
        plate = read_plate(pattern, frames, asked.layer, colour_space, asked.view)
        outputs = decompose_plate(pipeline, plate, targets, steps, colour_space, progress)
        return {"frames": frames}, _exr_payloads("intrinsics", outputs, workdir)


def _exr_payloads(name: str, frames: list[OutputFrame], workdir: Path) -> list[wire.Payload]:
    """Output frames as EXR payloads (written to the job's folder, as rf-render writes them)."""
    payloads = []
    for frame in frames:
        path = write_frame(
            workdir / OUTPUT_PATTERN.format(name=name, frame=frame.frame), frame.layers, frame.attributes
        )
        payloads.append(wire.Payload.exr(name, path.read_bytes(), frame.frame))
    return payloads


def memory_report(device: str) -> dict[str, int]:
    """Bytes in use: the CUDA allocator's figures on a GPU, the process's peak RSS on the CPU."""
    if device.startswith("cuda") and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info(torch.device(device))
        return {
            "allocated": torch.cuda.memory_allocated(device),
            "reserved": torch.cuda.memory_reserved(device),
            "peak_allocated": torch.cuda.max_memory_allocated(device),
            "device_free": free,
            "device_total": total,
        }
    return {"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _payload_names(text: str, workdir: Path) -> str:
    """An error about the job's temporary files, told in the request's terms (payload and frame)."""
    text = re.sub(
        rf"{re.escape(str(workdir))}/(gbuffers|image|keyframe)\.0*(-?\d+)\.exr", _describe_file, text
    )
    return text.replace(str(workdir / "envmap.exr"), "the env-map EXR").replace(f"{workdir}/", "")


def _describe_file(match: re.Match[str]) -> str:
    what = {"gbuffers": "the G-buffer EXR", "image": "the plate EXR", "keyframe": "the keyframe EXR"}
    return f"{what[match.group(1)]} of frame {match.group(2)}"


def _write_sequence(workdir: Path, name: str, payloads: list[wire.Payload]) -> tuple[str, list[int]]:
    """Per-frame EXR payloads as the sequence `workdir/name.####.exr`: its pattern and frame numbers."""
    pattern = str(workdir / f"{name}.####.exr")
    frames = [int(payload.frame or 0) for payload in payloads]
    for payload, frame in zip(payloads, frames, strict=True):
        _write_payload(frame_path(pattern, frame), payload)
    return pattern, frames


def _write_payload(path: Path, payload: wire.Payload) -> Path:
    path.write_bytes(payload.data)
    return path


def _float_array(payload: wire.Payload) -> np.ndarray:
    """A raw payload as a writable float32 array (the pipeline's layout checks name what is wrong)."""
    return np.array(payload.array(), dtype=np.float32)
