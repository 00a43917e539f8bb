"""`rf-eval`: the paper's tables on a dataset split (Table 1 forward, Table 2 inverse, Table 6 gaps).

Every method renders every clip from the same G-buffers and env map; metrics compare with the
path-traced beauty in display space (training/metrics.py), on the whole frame and on the
geometry mask. Keyframe rows take their keyframes from the reference at frames 0, gap, 2·gap …
and also report PSNR on the other frames only, where nothing was given away.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from renderflow.core.io.clips import Clip, load_clip
from renderflow.core.model import encodings as enc
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.model.sources import SOURCE_PIXEL_FILTERS
from renderflow.core.shading.deferred import render_baseline
from renderflow.core.shading.lighting import LUMINANCE_WEIGHTS, light_scale
from renderflow.core.shading.pixel_filter import filter_pixels
from renderflow.core.shading.reprojection import KEYFRAMES_BLENDED, reproject_keyframes
from renderflow.core.shading.visibility import shade_with_visibility
from renderflow.core.shot.contact_sheet import display_colour, display_error, write_contact_sheet
from renderflow.training import metrics
from renderflow.training.datasets import find_clips
from renderflow.training.lpips import PerceptualFn, load_lpips

logger = logging.getLogger(__name__)

EVAL_ENV_HEIGHT = 64  # camera-view env maps of 64x128: enough for the baselines' mirror lobes
CONTACT_SHEET_CLIPS = 4
RenderFn = Callable[[Clip], np.ndarray]


@dataclass
class EvalConfig:
    data: str = ""
    out: str = ""
    checkpoint: str | None = None  # None: baselines only
    split: str = "test"
    profile: str = "auto"
    steps: tuple[int, ...] = (1, 4)  # RenderFlow's own step counts
    sampler_steps: int = 30  # the diffusion-style baseline: the same network, many Euler steps; 0: skip
    keyframe_gaps: tuple[int, ...] = (4, 8, 16)
    repeats: int = 2  # runs of the 1-step model, for the run-to-run spread
    inverse: bool = True
    device: str = "cpu"
    lpips_weights: str | None = None
    max_clips: int | None = None
    env_height: int = (
        EVAL_ENV_HEIGHT  # camera-view env maps of env_height x 2·env_height (at least the frame's)
    )
    vertical_fov_degrees: float | None = None  # for clips without camera.json (cameras from the headers)


@dataclass
class MethodScores:
    """Per-clip values of each metric; the tables show their means (the exposure gain: its median)."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, scores: dict[str, float]) -> None:
        for key, value in scores.items():
            self.values.setdefault(key, []).append(value)

    def summary(self) -> dict[str, float]:
        return {key: _summarise(key, values) for key, values in self.values.items()}


def _summarise(key: str, values: list[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    if not finite:
        return float("nan")  # a metric the method does not produce (n/a in the tables)
    return float(np.median(finite) if key == "gain" else np.mean(finite))


def beauty_scores(
    prediction: np.ndarray, clip: Clip, perceptual: PerceptualFn | None, keyframes: list[int] | None = None
) -> dict[str, float]:
    """The forward metrics of one clip (beauty in scene-linear HDR, compared in display space)."""
    predicted, reference, mask = metrics.display(prediction), metrics.display(clip.beauty), clip.mask
    scores = {
        "psnr": metrics.psnr(predicted, reference),
        "ssim": metrics.ssim(predicted, reference),
        "psnr_mask": metrics.psnr(predicted, reference, mask),
        "ssim_mask": metrics.ssim(predicted, reference, mask),
        "flicker": metrics.flicker(predicted, reference),
        "gain": exposure_gain(prediction, clip.beauty, mask),
    }
    if perceptual is not None:
        scores["lpips"] = metrics.lpips(perceptual, predicted, reference)
        scores["lpips_mask"] = metrics.lpips(perceptual, predicted, reference, mask)
    if keyframes is not None:
        others = [frame for frame in range(len(predicted)) if frame not in keyframes]
        if others:
            scores["psnr_non_key"] = metrics.psnr(predicted[others], reference[others])
    return scores


SHADOW_DARKER = 0.5  # reference pixels below this share of the unshadowed shading are in shadow
LIT_SHARE = 0.8  # ... and above this share, lit
METAL = 0.5  # metallic above this is a metal pixel


def shadow_regions(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    """Where the path tracer has shadows the Deferred shading (no visibility) lacks, and where both
    are lit: masks `[F, H, W]` over the geometry."""
    unshadowed = shaded("deferred", clip)
    ratio = (clip.beauty @ LUMINANCE_WEIGHTS) / np.maximum(unshadowed @ LUMINANCE_WEIGHTS, 1e-6)
    geometry = clip.mask[..., 0] > 0.5
    return geometry & (ratio < SHADOW_DARKER), geometry & (ratio > LIT_SHARE)


def failure_scores(
    prediction: np.ndarray, clip: Clip, shadow: np.ndarray, lit: np.ndarray
) -> dict[str, float]:
    """What whole-frame PSNR hides: PSNR on metal pixels; shadow contrast (lit / shadowed luminance,
    over the reference's; 1 = right, above 1 = too dark in shadow); the brightest geometry pixel over
    the reference's (above 1: highlights the path tracer does not have)."""
    geometry = clip.mask[..., 0] > 0.5
    metal = geometry & (clip.gbuffers.material[..., 1] > METAL)
    nan = float("nan")
    predicted, reference = metrics.display(prediction), metrics.display(clip.beauty)
    luminance, truth = prediction @ LUMINANCE_WEIGHTS, clip.beauty @ LUMINANCE_WEIGHTS
    contrast = nan
    if shadow.sum() >= SHADOW_MIN_PIXELS and lit.sum() >= SHADOW_MIN_PIXELS:
        ours = luminance[lit].mean() / max(luminance[shadow].mean(), 1e-9)
        contrast = float(ours / (truth[lit].mean() / max(truth[shadow].mean(), 1e-9)))
    return {
        "psnr_metal": metrics.psnr(predicted[metal], reference[metal]) if metal.any() else nan,
        "shadow_contrast": contrast,
        "peak_ratio": float(luminance[geometry].max() / max(truth[geometry].max(), 1e-9))
        if geometry.any()
        else nan,
    }


SHADOW_MIN_PIXELS = 20


def exposure_gain(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """How much brighter the reference is than the prediction over the geometry: the median of the
    per-pixel ratios of linear luminance (1: exposure right, 4: two stops too dark). A median,
    because a few near-white pixels, which the inverse tone curve blows up, would rule a mean."""
    predicted = prediction.astype(np.float64) @ LUMINANCE_WEIGHTS
    truth = reference.astype(np.float64) @ LUMINANCE_WEIGHTS
    valid = (mask[..., 0] > 0) & (predicted > 1e-6) & (truth > 1e-6)
    if not valid.any():
        return float("nan")
    return float(np.median(truth[valid] / predicted[valid]))


def inverse_scores(decomposed: dict[str, np.ndarray], clip: Clip) -> dict[str, float]:
    """Table 2: albedo PSNR, normal angle, relative depth error, material RMSE, on the mask; any
    intrinsic missing from `decomposed` scores NaN (n/a)."""
    mask = clip.mask
    gbuffers = clip.gbuffers
    nan = float("nan")
    albedo_display = enc.srgb_oetf(np.clip(decomposed["albedo"], 0.0, 1.0))
    return {
        "albedo_psnr": metrics.psnr(albedo_display, enc.srgb_oetf(gbuffers.albedo), mask),
        "normal_degrees": (
            metrics.angular_error_degrees(decomposed["normal"], gbuffers.normal, mask)
            if "normal" in decomposed
            else nan
        ),
        "depth_log_rmse": (
            metrics.ssi_log_depth_rmse(decomposed["depth"], gbuffers.depth, mask)
            if "depth" in decomposed
            else nan
        ),
        "roughness_rmse": metrics.rmse(decomposed["roughness"], gbuffers.material[..., :1], mask),
        "metallic_rmse": metrics.rmse(decomposed["metallic"], gbuffers.material[..., 1:2], mask),
    }


NAIVE_ROW = "Naive (image as albedo, camera-facing normals, best constants)"
NAIVE_ROW_BEFORE = "Naive (image as albedo, constants)"  # results written before the per-buffer baselines


def _finite(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def naive_decomposition(clip: Clip) -> dict[str, np.ndarray]:
    """The naive baselines an inverse model must beat, per buffer: albedo = the image clipped to
    [0, 1], every normal facing the camera, and roughness and metallic at the best constant (the
    truth's mean over the geometry: an oracle no real method has)."""
    constant = np.ones((*clip.beauty.shape[:3], 1), np.float32)
    geometry = clip.mask[..., 0] > 0.5
    best = {
        name: float(clip.gbuffers.material[..., channel][geometry].mean())
        for name, channel in (("roughness", 0), ("metallic", 1))
    }
    return {
        "albedo": np.clip(clip.beauty, 0.0, 1.0),
        "normal": np.broadcast_to(np.array([0.0, 0.0, 1.0], np.float32), clip.beauty.shape),
        "roughness": best["roughness"] * constant,
        "metallic": best["metallic"] * constant,
    }


@dataclass(frozen=True)
class Method:
    """A row of Table 1: how it renders a clip, its step count (0: not a network) and keyframe gap."""

    render: RenderFn
    steps: int = 0
    keyframe_gap: int | None = None


# (method, clip) -> image, for the clip being scored only: evaluate() empties it before each clip
_SHADED: dict[tuple[str, str], np.ndarray] = {}


def shaded(method: str, clip: Clip) -> np.ndarray:
    """The clip under a shader without network (ibl, deferred, or visibility: the physics prior of
    model v3), made once per clip however many rows and scores use it."""
    key = (method, clip.name)
    if key not in _SHADED:
        if method == "visibility":
            image = shade_with_visibility(clip.gbuffers, clip.envmap_cam, clip.vertical_fov_degrees)
        else:
            image = render_baseline(method, clip.gbuffers, clip.envmap_cam, clip.vertical_fov_degrees)
        _SHADED[key] = image
    return _SHADED[key]


def baseline_renderer(method: str, pixel_filter: float = 0.0) -> RenderFn:
    """A shader without network; `pixel_filter` (σ in pixels): the evaluated model's pixel filter,
    so that the physics prior's row has everything the model adds to its shading but the network."""

    def render(clip: Clip) -> np.ndarray:
        return filter_pixels(shaded(method, clip), pixel_filter)

    return render


def autoencoder_ceiling(pipeline: RenderFlowPipeline) -> RenderFn:
    """The path-traced frames through the model's autoencoder: what no render of this model can beat."""

    def render(clip: Clip) -> np.ndarray:
        scale = light_scale(clip.envmap_cam) if pipeline.lighting.normalise else 1.0
        return pipeline.reconstruct(clip.beauty, scale)

    return render


def model_renderer(pipeline: RenderFlowPipeline, steps: int, keyframe_gap: int | None = None) -> RenderFn:
    """RenderFlow with `steps` sampler steps; keyframes from the reference every `keyframe_gap` frames."""

    def render(clip: Clip) -> np.ndarray:
        keyframes = None
        if keyframe_gap is not None:
            keyframes = {frame: clip.beauty[frame] for frame in range(0, len(clip.beauty), keyframe_gap)}
        return pipeline.render(
            clip.gbuffers,
            clip.envmap_cam,
            keyframes=keyframes,
            steps=steps,
            vertical_fov_degrees=clip.vertical_fov_degrees,
            camera_to_world=clip.camera_to_world,
        )

    return render


def prior_pixel_filter(pipeline: RenderFlowPipeline | None) -> float:
    """The pixel filter (σ, pixels) the model puts on its physics prior: in its bridge source or
    after the network; the no-network rows get the same."""
    if pipeline is None:
        return 0.0
    return SOURCE_PIXEL_FILTERS.get(pipeline.bridge.source, pipeline.config.pixel_filter)


def reprojection_renderer(
    keyframe_gap: int, pixel_filter: float = 0.0, fill: str = "visibility", blended: int = KEYFRAMES_BLENDED
) -> RenderFn:
    """No network: the reference's keyframes every `keyframe_gap` frames moved into each frame by
    depth and cameras where they are seen (the `blended` nearest that see a pixel, in the model's
    space: the display values of the beauty over its light scale), the `fill` shader elsewhere
    (under `pixel_filter`). blended = 1 with the Deferred fill is the plain baseline the issues name."""

    def render(clip: Clip) -> np.ndarray:
        scale = np.float32(light_scale(clip.envmap_cam))
        keyframes = {
            frame: enc.beauty_to_model(clip.beauty[frame] / scale)
            for frame in range(0, len(clip.beauty), keyframe_gap)
        }
        reprojected = reproject_keyframes(
            clip.gbuffers.depth, clip.camera_to_world, clip.vertical_fov_degrees, keyframes, blended=blended
        )
        valid = reprojected[..., 3] > 0
        image = enc.model_to_beauty(reprojected[..., :3]) * scale
        composite = np.where(valid[..., None], image, shaded(fill, clip))
        return filter_pixels(composite, pixel_filter, valid)  # as the model filters its own

    return render


def _timed(render: RenderFn, clip: Clip) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    image = render(clip)
    return image, (time.perf_counter() - started) / len(image)


def evaluate(config: EvalConfig, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Score every method on every clip of the split; write results.json, results.md, contact sheets."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    perceptual = load_lpips(Path(config.lpips_weights) if config.lpips_weights else None)
    pipeline = (
        RenderFlowPipeline.from_pretrained(Path(config.checkpoint), config.device)
        if config.checkpoint
        else None
    )
    folders = find_clips(Path(config.data), config.split)[: config.max_clips]

    pixel_filter = prior_pixel_filter(pipeline)
    methods = {
        "IBL": Method(baseline_renderer("ibl")),
        "Deferred": Method(baseline_renderer("deferred")),
        "Deferred + visibility (no network)": Method(baseline_renderer("visibility", pixel_filter)),
    }
    if pipeline is not None:
        methods["Autoencoder ceiling"] = Method(autoencoder_ceiling(pipeline))
        for steps in sorted({*config.steps, config.sampler_steps} - {0}):
            plural = "s" if steps > 1 else ""
            name = f"RenderFlow ({steps} step{plural})"
            if steps == config.sampler_steps:
                name = f"RenderFlow sampler ({steps} steps)"
            methods[name] = Method(model_renderer(pipeline, steps), steps)
        if pipeline.keyframe_adapter is not None:
            for gap in config.keyframe_gaps:
                methods[f"Nearest keyframe reprojected, Deferred fill (gap {gap}, no network)"] = Method(
                    reprojection_renderer(gap, fill="deferred", blended=1), 0, gap
                )
                methods[f"Keyframes reprojected, visibility fill (gap {gap}, no network)"] = Method(
                    reprojection_renderer(gap, pixel_filter), 0, gap
                )
                methods[f"RenderFlow + keyframes (gap {gap})"] = Method(
                    model_renderer(pipeline, 1, gap), 1, gap
                )

    scores = {name: MethodScores() for name in methods}
    repeat_psnr: list[list[float]] = []
    inverse, naive = MethodScores(), MethodScores()
    for index, folder in enumerate(folders):
        clip = load_clip(folder, config.profile, config.env_height, config.vertical_fov_degrees)
        _SHADED.clear()  # another dataset's clip of the same name must never be served
        renders: dict[str, np.ndarray] = {}
        times: dict[str, float] = {}
        for name, method in methods.items():
            renders[name], times[name] = _timed(method.render, clip)
        shadow, lit = shadow_regions(clip)  # from the Deferred row's image
        for name, method in methods.items():
            image = renders[name]
            keyframes = list(range(0, len(image), method.keyframe_gap)) if method.keyframe_gap else None
            scores[name].add(
                beauty_scores(image, clip, perceptual, keyframes)
                | failure_scores(image, clip, shadow, lit)
                | {"seconds_per_frame": times[name]}
            )
        if pipeline is not None and config.repeats > 1:
            runs = [
                pipeline.render(
                    clip.gbuffers, clip.envmap_cam, vertical_fov_degrees=clip.vertical_fov_degrees
                )
                for _ in range(config.repeats)
            ]
            repeat_psnr.append(
                [metrics.psnr(metrics.display(run), metrics.display(clip.beauty)) for run in runs]
            )
        if pipeline is not None and config.inverse and pipeline.inverse_adapter is not None:
            inverse.add(inverse_scores(pipeline.decompose(clip.beauty), clip))
            naive.add(inverse_scores(naive_decomposition(clip), clip))
        if index < CONTACT_SHEET_CLIPS:
            _contact_sheet(out / f"contact_{folder.name}.png", clip, renders)
        if progress is not None:
            progress(index + 1, len(folders))

    results: dict[str, Any] = {
        "config": asdict(config),
        "clips": [folder.name for folder in folders],
        "lpips": "available" if perceptual is not None else "unavailable",
        "forward": {name: score.summary() | {"steps": methods[name].steps} for name, score in scores.items()},
        "per_clip_psnr": {name: score.values["psnr"] for name, score in scores.items()},
        "inverse": inverse.summary() if inverse.values else None,
        "inverse_naive": naive.summary() if naive.values else None,
        "run_to_run_psnr_std": (
            float(statistics.mean(statistics.pstdev(runs) for runs in repeat_psnr)) if repeat_psnr else None
        ),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True))
    (out / "results.md").write_text(results_markdown(results))
    return results


def _contact_sheet(path: Path, clip: Clip, renders: dict[str, np.ndarray]) -> None:
    """Reference, each method, and the error maps of the 1-step model and Deferred."""
    columns = {"path traced": display_colour(clip.beauty)}
    short = {
        "IBL": "IBL",
        "Deferred": "Deferred",
        "Deferred + visibility (no network)": "prior",
        "RenderFlow (1 step)": "RF 1 step",
    }
    keyframe_rows = [name for name in renders if name.startswith("RenderFlow + keyframes")]
    if keyframe_rows:  # the first keyframe row scored (the smallest gap asked for first)
        short[keyframe_rows[0]] = "RF + kf " + keyframe_rows[0].split("gap ")[1].rstrip(")")
    for name, label in short.items():
        if name in renders:
            columns[label] = display_colour(renders[name])
    for name, label in (("RenderFlow (1 step)", "RF error"), ("Deferred", "Deferred error")):
        if name in renders:
            columns[label] = display_error(metrics.display(renders[name]), metrics.display(clip.beauty))
    write_contact_sheet(path, columns)


def _cell(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


FORWARD_HEADER = ["Method", "Steps", "PSNR ↑", "SSIM ↑", "LPIPS ↓", "PSNR mask ↑", "SSIM mask ↑"]
FORWARD_HEADER += ["Flicker ↓", "Gain (median)", "Time/frame (s) ↓"]
FAILURE_HEADER = ["Method", "PSNR metal ↑", "Shadow contrast (1 = right)", "Brightest / reference's"]
GAP_HEADER = ["Keyframes", "PSNR ↑", "PSNR non-key frames ↑", "SSIM ↑", "LPIPS ↓"]
INVERSE_HEADER = ["Inverse", "Albedo PSNR ↑", "Normal angle (°) ↓", "Depth log-RMSE (SSI) ↓"]
INVERSE_HEADER += ["Roughness RMSE ↓", "Metallic RMSE ↓"]


def results_markdown(results: dict[str, Any]) -> str:
    """The three tables in the shape of the paper's Tables 1, 2 and 6."""
    config = results["config"]
    lines = [
        f"Split `{config['split']}` of `{config['data']}`: {len(results['clips'])} clips. "
        f"LPIPS {results['lpips']}. Display space: Reinhard + sRGB.",
        "",
    ]
    forward = results["forward"]
    lines += _table(
        FORWARD_HEADER,
        [
            [
                name,
                str(row["steps"]) if row["steps"] else "—",
                _cell(row["psnr"], 2),
                _cell(row["ssim"], 3),
                _cell(row.get("lpips"), 3),
                _cell(row["psnr_mask"], 2),
                _cell(row["ssim_mask"], 3),
                _cell(row["flicker"], 4),
                _cell(row["gain"], 2),
                _cell(row["seconds_per_frame"], 4),
            ]
            for name, row in forward.items()
        ],
    )
    lines += [
        "",
        "Gain: the median over clips of the gain that maps the render's linear luminance onto the "
        "path-traced one over the geometry (1 = exposure right, above 1 = too dark).",
    ]
    spread = results["run_to_run_psnr_std"]
    if spread is not None:
        lines += ["", f"Run-to-run spread of the 1-step model's PSNR: σ = {spread:.4f} dB."]
    failure_rows = [
        [name, _cell(row["psnr_metal"], 2), _cell(row["shadow_contrast"], 2), _cell(row["peak_ratio"], 2)]
        for name, row in forward.items()
        if "psnr_metal" in row
    ]
    if failure_rows:
        lines += ["", *_table(FAILURE_HEADER, failure_rows)]
        lines += [
            "",
            "Shadow contrast: lit over shadowed luminance (shadows: the reference below half the Deferred "
            "shading), over the reference's own; 1 = right. Brightest: the brightest geometry pixel over "
            "the reference's.",
        ]
    gap_rows = [
        [
            name,
            _cell(row["psnr"], 2),
            _cell(row["psnr_non_key"], 2),
            _cell(row["ssim"], 3),
            _cell(row.get("lpips"), 3),
        ]
        for name, row in forward.items()
        if "psnr_non_key" in row
    ]
    if gap_rows:
        lines += ["", *_table(GAP_HEADER, gap_rows)]
    inverse = results["inverse"]
    if inverse:
        digits = {
            "albedo_psnr": 2,
            "normal_degrees": 1,
            "depth_log_rmse": 3,
            "roughness_rmse": 3,
            "metallic_rmse": 3,
        }
        rows = [
            ["RenderFlow inverse adapter", *(_cell(inverse[key], places) for key, places in digits.items())]
        ]
        naive = results.get("inverse_naive")
        if naive:
            rows.append(
                [
                    NAIVE_ROW if _finite(naive.get("normal_degrees")) else NAIVE_ROW_BEFORE,
                    *(_cell(naive[key], places) for key, places in digits.items()),
                ]
            )
        lines += ["", *_table(INVERSE_HEADER, rows)]
    per_clip = results.get("per_clip_psnr", {})
    if per_clip:
        names = list(per_clip)
        lines += ["", "PSNR per clip:", ""]
        lines += _table(
            ["Clip", *names],
            [
                [clip, *(_cell(per_clip[name][index], 2) for name in names)]
                for index, clip in enumerate(results["clips"])
            ],
        )
    return "\n".join(lines) + "\n"
