"""The workflows built on render and decompose: relight a plate, insert a CG object, edit materials.

- relight: plate -> intrinsics (once) -> G-buffers -> beauty under each new env map; the
  G-buffers are encoded once for all env maps.
- insert: the object's G-buffers merged into the plate's by depth where its alpha covers, both
  rendered, and the ratio of the two: multiplied onto the original plate, it adds the object's
  shadows and bounce light while untouched pixels stay exactly the plate's.
- material edit: new roughness / metallic / specular / albedo inside a mask, constant or swept
  over the frames (the paper's appendix C).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from renderflow.core.io.aov_profiles import DEFAULT_MATERIAL
from renderflow.core.io.buffers import GBuffers
from renderflow.core.model.pipeline import RenderFlowPipeline

COVERAGE_THRESHOLD = 0.5  # alpha at or above this is the object's pixel (G-buffers cannot be blended)
RATIO_FLOOR = 1e-4  # below this the render without the object is black: the ratio is 1 there
RATIO_NOISE = 0.01  # relative changes below this are the network's, not the object's (shading_ratio)
# A decomposed depth carries the inverse adapter's 8-pixel token grid, which the prior's rays read as
# occluders (a dot per token); its visibility is averaged over this many pixels, which keeps 0.7 %
# of an 8-pixel period (docs/DECISIONS.md, bench/relight_round_trip.py)
DECOMPOSED_VISIBILITY_BLUR = 4.0
# Workflows that render a decomposed plate again read it at its own size: the enlarged read
# (`pipeline.inverse_min_size`) gives better intrinsics but a relit plate no better and blurrier
# (bench/relight_round_trip.py, docs/DECISIONS.md 2026-12-07 seventh).
RERENDER_INVERSE_MIN_SIZE = 0
MATERIAL_CHANNELS = {"roughness": 0, "metallic": 1, "specular": 2}


def gbuffers_from_intrinsics(intrinsics: dict[str, np.ndarray]) -> GBuffers:
    """Decomposed intrinsics `{name: [F, H, W, C]}` as G-buffers (specular at its Disney default)."""
    roughness, metallic = intrinsics["roughness"], intrinsics["metallic"]
    specular = np.full_like(roughness, DEFAULT_MATERIAL["specular"])
    material = np.concatenate([roughness, metallic, specular], axis=-1)
    return GBuffers(intrinsics["albedo"], intrinsics["normal"], intrinsics["depth"], material)


def relight(
    pipeline: RenderFlowPipeline, plate_linear: np.ndarray, envmaps_cam: Sequence[np.ndarray], steps: int = 1
) -> tuple[GBuffers, list[np.ndarray]]:
    """Decompose a scene-linear plate `[F, H, W, 3]` once and render it under each env map."""
    intrinsics = pipeline.decompose(plate_linear, steps=steps, min_size=RERENDER_INVERSE_MIN_SIZE)
    gbuffers = gbuffers_from_intrinsics(intrinsics)
    latents = pipeline.encode_gbuffers(gbuffers)  # one encode for every env map
    return gbuffers, [
        pipeline.render(latents, envmap, steps=steps, visibility_blur=DECOMPOSED_VISIBILITY_BLUR)
        for envmap in envmaps_cam
    ]


def _check_same_frames(name: str, array: np.ndarray, reference: np.ndarray, what: str) -> None:
    if array.shape[:3] != reference.shape[:3]:
        raise ValueError(
            f"{name}: [F, H, W] = {list(array.shape[:3])}, but the {what} has {list(reference.shape[:3])}; "
            "both must cover the same frames at the same size"
        )


def merge_gbuffers(
    plate: GBuffers, obj: GBuffers, alpha: np.ndarray, depth_test: bool = True
) -> tuple[GBuffers, np.ndarray]:
    """The object's G-buffers over the plate's where its alpha covers and (with `depth_test`) it is nearer.

    `alpha` `[F, H, W, 1]` is the object's coverage. Without `depth_test` the object is in front
    wherever it covers: for a decomposed plate, whose depth is only relative. Returns (merged
    G-buffers, coverage `[F, H, W, 1]` in {0, 1}).
    """
    plate.validate()
    obj.validate()
    _check_same_frames("object G-buffers", obj.albedo, plate.albedo, "plate")
    if alpha.ndim != 4 or alpha.shape[-1] != 1:
        raise ValueError(f"object alpha: expected [F, H, W, 1], got {list(alpha.shape)}")
    _check_same_frames("object alpha", alpha, plate.albedo, "plate")
    coverage = alpha >= COVERAGE_THRESHOLD  # [F, H, W, 1]
    if depth_test:
        coverage &= obj.depth < plate.depth
    merged = GBuffers(
        *(
            np.where(coverage, getattr(obj, name), getattr(plate, name))
            for name in ("albedo", "normal", "depth", "material")
        )
    )
    return merged, coverage.astype(np.float32)


def shading_ratio(with_object: np.ndarray, without_object: np.ndarray) -> np.ndarray:
    """with / without per channel: the object's effect on the plate's light, exactly 1 where it has none.

    The network sees the whole frame, so adding an object moves every pixel a little; changes
    below RATIO_NOISE are that, not shadow or bounce light, and are dropped (faded in up to twice
    that, so a soft shadow's edge stays soft).
    """
    if with_object.shape != without_object.shape:
        raise ValueError(f"renders differ in shape: {with_object.shape} and {without_object.shape}")
    lit = without_object > RATIO_FLOOR
    ratio = np.where(lit, with_object / np.where(lit, without_object, 1.0), 1.0)
    change = np.abs(ratio - 1.0).max(axis=-1, keepdims=True)
    fade = np.clip((change - RATIO_NOISE) / RATIO_NOISE, 0.0, 1.0)
    return (1.0 + (ratio - 1.0) * fade * fade * (3.0 - 2.0 * fade)).astype(np.float32)


def composite_insert(
    plate_linear: np.ndarray, with_object: np.ndarray, ratio: np.ndarray, coverage: np.ndarray
) -> np.ndarray:
    """The comp a compositor would build: plate × ratio, and the rendered object where it covers."""
    return np.where(coverage > 0, with_object, plate_linear * ratio).astype(np.float32)


@dataclass(frozen=True)
class InsertResult:
    with_object: np.ndarray  # [F, H, W, 3] scene-linear: the re-rendered frame with the object
    without_object: np.ndarray  # [F, H, W, 3]: the same render without it
    ratio: np.ndarray  # [F, H, W, 3]: with / without, multiply onto the plate
    coverage: np.ndarray  # [F, H, W, 1]: where the object is in front
    comp: np.ndarray  # [F, H, W, 3]: plate × ratio with the object over it


def insert_object(
    pipeline: RenderFlowPipeline,
    plate_linear: np.ndarray,
    plate_gbuffers: GBuffers,
    obj: GBuffers,
    alpha: np.ndarray,
    envmap_cam: np.ndarray,
    steps: int = 1,
    depth_test: bool = True,
) -> InsertResult:
    """Render the plate's G-buffers with and without the object under one env map, and their ratio."""
    _check_same_frames("plate", plate_linear, plate_gbuffers.albedo, "plate's G-buffers")
    merged, coverage = merge_gbuffers(plate_gbuffers, obj, alpha, depth_test)
    without_object = pipeline.render(plate_gbuffers, envmap_cam, steps=steps)
    with_object = pipeline.render(merged, envmap_cam, steps=steps)
    ratio = shading_ratio(with_object, without_object)
    comp = composite_insert(plate_linear, with_object, ratio, coverage)
    return InsertResult(with_object, without_object, ratio, coverage, comp)


@dataclass(frozen=True)
class MaterialEdit:
    """New values inside the mask: each a constant, or a (start, end) pair swept over the frames."""

    roughness: float | tuple[float, float] | None = None
    metallic: float | tuple[float, float] | None = None
    specular: float | tuple[float, float] | None = None
    albedo: (
        tuple[float, float, float] | tuple[tuple[float, float, float], tuple[float, float, float]] | None
    ) = None


def _sweep(value: object, num_frames: int, channels: int) -> np.ndarray:
    """A constant or a (start, end) pair as per-frame values `[F, 1, 1, channels]`."""
    array = np.asarray(value, dtype=np.float32)
    if array.shape == (channels,) or array.shape == ():
        return np.broadcast_to(array.reshape(1, 1, 1, -1), (num_frames, 1, 1, channels))
    if array.shape in ((2,), (2, channels)):
        start, end = array[0], array[1]
        weights = np.linspace(0.0, 1.0, num_frames, dtype=np.float32).reshape(-1, 1, 1, 1)
        return (1 - weights) * np.reshape(start, (1, 1, 1, -1)) + weights * np.reshape(end, (1, 1, 1, -1))
    raise ValueError(f"expected a value or a (start, end) pair, got {value!r}")


def edit_materials(gbuffers: GBuffers, mask: np.ndarray, edit: MaterialEdit) -> GBuffers:
    """G-buffers with the edit applied where `mask` `[F, H, W, 1]` is ≥ 0.5; everything else untouched."""
    num_frames = gbuffers.validate()[0]
    if mask.ndim != 4 or mask.shape[-1] != 1:
        raise ValueError(f"mask: expected [F, H, W, 1], got {list(mask.shape)}")
    _check_same_frames("mask", mask, gbuffers.albedo, "G-buffers")
    inside = mask >= COVERAGE_THRESHOLD
    material = gbuffers.material.copy()
    for name, channel in MATERIAL_CHANNELS.items():
        value = getattr(edit, name)
        if value is not None:
            values = _sweep(value, num_frames, 1)
            if values.min() < 0 or values.max() > 1:
                raise ValueError(f"{name}: values must lie in [0, 1], got {value!r}")
            material[..., channel : channel + 1] = np.where(
                inside, values, material[..., channel : channel + 1]
            )
    albedo = gbuffers.albedo
    if edit.albedo is not None:
        values = _sweep(edit.albedo, num_frames, 3)
        if values.min() < 0 or values.max() > 1:
            raise ValueError(f"albedo: linear colour in [0, 1] expected, got {edit.albedo!r}")
        albedo = np.where(inside, values, albedo).astype(np.float32)
    return dataclasses.replace(gbuffers, albedo=albedo, material=material)
