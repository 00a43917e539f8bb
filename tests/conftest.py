"""Tiny configurations of the real classes, and G-buffers made in the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.camera_files import write_camera_json
from renderflow.core.io.cameras import CameraTrack, to_imath
from renderflow.core.io.exr import write_exr
from renderflow.core.io.gbuffer_io import write_canonical_frame
from renderflow.core.model.configs import V2_LIGHTING, build_tiny_pipeline
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shot.demo_scene import orbit_camera_to_world, ray_cast_buffers

TINY_TRANSFORMER: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "in_channels": 4,
    "freq_dim": 16,
    "ffn_dim": 32,
    "num_layers": 2,
    "rope_max_seq_len": 64,
}
TINY_AUTOENCODER: dict[str, Any] = {"latent_channels": 4, "base_channels": 8, "num_downsamples": 2}


def randomise(module: torch.nn.Module, seed: int = 1) -> None:
    """Give every parameter (zero-initialised ones too) random values: a stand-in for training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


def tiny_v2_pipeline(**choices: Any) -> RenderFlowPipeline:
    """A fresh tiny pipeline with the bundled model v2's choices (normalised lighting, env brackets,
    shaded bridge source, reprojected keyframes); `choices` override them."""
    torch.manual_seed(0)
    options: dict[str, Any] = {"lighting": V2_LIGHTING, "bridge_source": "shaded", "reprojection": True}
    return build_tiny_pipeline(
        TINY_TRANSFORMER, TINY_AUTOENCODER, lora_rank=4, chunk_frames=3, **(options | choices)
    )


@pytest.fixture
def tiny_pipeline() -> RenderFlowPipeline:
    torch.manual_seed(0)
    return build_tiny_pipeline(TINY_TRANSFORMER, TINY_AUTOENCODER, lora_rank=4, chunk_frames=3)


def make_gbuffers(frames: int = 3, size: int = 32, seed: int = 0) -> GBuffers:
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(frames, size, size, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    depth = (1.0 + 4.0 * rng.random((frames, size, size, 1))).astype(np.float32)
    depth[:, :4] = np.inf  # a strip of background
    return GBuffers(
        albedo=rng.random((frames, size, size, 3), dtype=np.float32),
        normal=normal,
        depth=depth,
        material=rng.random((frames, size, size, 3), dtype=np.float32),
    )


def make_envmap(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((16, 32, 3)) * 5.0).astype(np.float32)


def write_clip(folder: Path, frames: int = 5, size: int = 32, seed: int = 0) -> Path:
    """A clip folder as `rf-train synth` writes it, from the ray-cast demo scene (no path tracer)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    envmap_world = (rng.random((16, 32, 3)) * 3.0 + 0.2).astype(np.float32)
    write_exr(folder / "envmap.exr", envmap_world, ["R", "G", "B"], half=False)
    cameras = np.stack([orbit_camera_to_world(angle=0.2 * frame + seed) for frame in range(frames)])
    for frame, camera in enumerate(cameras):
        buffers = ray_cast_buffers(camera, size, 40.0)
        light = 0.3 + 0.7 * np.clip(buffers["normal"][..., 1:2], 0.0, 1.0)  # stands in for a path tracer
        buffers["beauty"] = buffers["albedo"] * light * 2.0
        buffers["mask"] = np.isfinite(buffers["depth"]).astype(np.float32)
        attributes = {"cameraToWorld": to_imath(camera), "worldToCamera": to_imath(np.linalg.inv(camera))}
        write_canonical_frame(folder / f"frame.{1001 + frame:04d}.exr", buffers, attributes)
    write_camera_json(
        folder / "camera.json", CameraTrack(list(range(1001, 1001 + frames)), cameras, [40.0] * frames)
    )
    (folder / "scene.json").write_text("{}")
    (folder / "done").write_text("{}")
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two train clips and one test clip of 5 frames, 32x32."""
    root = tmp_path_factory.mktemp("dataset")
    write_clip(root / "train" / "clip_0000", seed=0)
    write_clip(root / "train" / "clip_0001", seed=1)
    write_clip(root / "test" / "clip_0002", seed=2)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny pipeline (untrained) with both adapters, as `rf-train ... --init` takes it."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("checkpoint")
    build_tiny_pipeline(TINY_TRANSFORMER, TINY_AUTOENCODER, lora_rank=4, chunk_frames=3).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pipeline with every weight random (the zero-initialised ones too), so env maps and
    keyframes change the render; saved as a checkpoint folder."""
    torch.manual_seed(0)
    pipeline = build_tiny_pipeline(TINY_TRANSFORMER, TINY_AUTOENCODER, lora_rank=4, chunk_frames=3)
    randomise(pipeline.transformer)
    assert pipeline.keyframe_adapter is not None
    randomise(pipeline.keyframe_adapter, seed=2)
    folder = tmp_path_factory.mktemp("random_checkpoint")
    pipeline.save_pretrained(folder)
    return folder


def render_args(clip, out, *extra):
    """`rf-render render` of a test clip's frames under its env map."""
    return [
        "render",
        str(clip / "frame.####.exr"),
        "--env",
        str(clip / "envmap.exr"),
        "--out",
        str(out),
        "--fov",
        "40",
        *extra,
    ]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """40 frames: 20 chunks of the tiny model, long enough to cancel or stop a job in the middle."""
    return write_clip(tmp_path_factory.mktemp("long") / "clip", frames=40, size=32)
