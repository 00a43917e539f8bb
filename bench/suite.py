"""RenderFlow's benchmark suite: every speed question of issue #8 in one run, one table each.

    python bench/suite.py                                   # bundled CPU model, 256², 5 frames
    python bench/suite.py --config production --device cuda --size 512 --only resolution

Sections (`--only` picks some):
  steps       1 step against 4 and the 30-step sampler, same model, end to end
  split       where a 1-step render's time goes: G-buffer encode, env encode, transformer, decode
  relight     a cached relight (G-buffer latents reused) against a cold render
  daemon      the same request through a daemon on 127.0.0.1 against in process (EXRs both ways)
  frames      ms/frame and peak memory as the sequence grows (chunks of 5)
  resolution  end to end by frame size (256² to 2048²; the transformer in windows, the autoencoder in
              tiles above their sizes): time per pixel against 256², peak memory, and the windowed
              render's distance from an untiled one where both fit
  autoencoder the autoencoder alone where no render fits (4096²), tiled, against untiled
  compile     torch.compile of the transformer: the one-off compile cost and the time per call

Random weights for `cpu-default` and `production` (speed does not depend on them); `bundled` is
the shipped CPU model. Prints a table per section and writes bench/results/suite_CONFIG_DEVICE.json
with the date, machine and arguments. Peak memory: CUDA's allocator peak on a GPU, the process's
peak resident set on the CPU (reset per row through /proc/self/clear_refs).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from report import print_table, write_record

from renderflow.core.io.buffers import GBuffers
from renderflow.core.model import encodings as enc
from renderflow.core.model.autoencoder import WanAutoencoder
from renderflow.core.model.configs import (
    CPU_DEFAULT_AUTOENCODER,
    CPU_DEFAULT_TRANSFORMER,
    PRODUCTION_TRANSFORMER,
    build_tiny_pipeline,
)
from renderflow.core.model.pipeline import PipelineConfig, RenderFlowPipeline, plan_chunks
from renderflow.core.model.tiling import TiledAutoencoder
from renderflow.core.model.transformer import RenderFlowTransformer
from renderflow.core.shot.demo import BUNDLED_MODEL
from renderflow.core.shot.demo_scene import demo_clip

SECTIONS = ("steps", "split", "relight", "daemon", "frames", "resolution", "autoencoder", "compile")
DEMO_FOV_DEGREES = 40.0  # core.demo_scene.demo_clip's camera
Row = dict[str, Any]


# -- measuring --------------------------------------------------------------------------------------
def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def render(pipeline: RenderFlowPipeline, gbuffers: Any, envmap: np.ndarray, **options: Any) -> np.ndarray:
    """`pipeline.render` on the demo scene, with the demo camera's field of view."""
    return pipeline.render(gbuffers, envmap, vertical_fov_degrees=DEMO_FOV_DEGREES, **options)


def median_seconds(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` runs, after one burn-in run."""
    fn()
    timings = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings))


class PeakMemory:
    """Peak memory since `reset()`: CUDA's allocator on a GPU, the resident set (VmHWM) on the CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from VmRSS

    def gib(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**30
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB -> GiB
        raise RuntimeError("/proc/self/status has no VmHWM line")


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build(args: argparse.Namespace) -> RenderFlowPipeline:
    """The pipeline of `--config` on `--device`, in `--dtype` / `--autoencoder-dtype` where given."""
    torch.manual_seed(0)
    if args.config == "bundled":
        pipeline = RenderFlowPipeline.from_pretrained(args.weights, args.device)
    elif args.config == "cpu-default":
        pipeline = build_tiny_pipeline(CPU_DEFAULT_TRANSFORMER, CPU_DEFAULT_AUTOENCODER, with_adapters=False)
    else:
        from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan

        transformer = RenderFlowTransformer(**PRODUCTION_TRANSFORMER)
        autoencoder = WanAutoencoder(AutoencoderKLWan())
        pipeline = RenderFlowPipeline(transformer, autoencoder, config=PipelineConfig(5))
    dtype = DTYPES[args.dtype] if getattr(args, "dtype", None) else None
    autoencoder_dtype = DTYPES[getattr(args, "autoencoder_dtype", None) or "float32"]
    return pipeline.to(args.device, dtype, autoencoder_dtype=autoencoder_dtype)


# -- sections ---------------------------------------------------------------------------------------
def steps_section(pipeline: RenderFlowPipeline, args: argparse.Namespace) -> list[Row]:
    gbuffers, envmap = demo_clip(args.frames, args.size)
    seconds = {
        steps: median_seconds(
            lambda s=steps: render(pipeline, gbuffers, envmap, steps=s), args.device, args.repeats
        )
        for steps in (1, 4, 30)
    }
    return [
        {"steps": steps, "ms_per_frame": 1000 * value / args.frames, "vs_1_step": value / seconds[1]}
        for steps, value in seconds.items()
    ]


def split_section(pipeline: RenderFlowPipeline, args: argparse.Namespace) -> list[Row]:
    """The parts of a 1-step render of one chunk, each timed alone on the shapes render() gives it."""
    frames = pipeline.config.chunk_frames
    gbuffers, albedo, attributes, t = _chunk_inputs(pipeline, args.size, args.device)
    _, envmap = demo_clip(frames, args.size)
    ae = _tiled_autoencoder(pipeline)
    brackets = len(pipeline.lighting.env_brackets)
    env_videos = torch.rand(brackets, 3, frames, args.size, args.size, device=args.device) * 2 - 1
    with torch.no_grad():
        env_latent = ae.encode(env_videos).to(pipeline.dtype).flatten(0, 1)[None]  # brackets on channels
        parts: dict[str, Callable[[], object]] = {
            "G-buffer encode (4 buffers, one call)": lambda: pipeline.encode_gbuffers(gbuffers),
            f"env-map encode ({brackets} bracket{'s' if brackets > 1 else ''})": lambda: ae.encode(
                env_videos
            ),
        }
        if pipeline.bridge.source != "albedo":
            parts[f"bridge source ({pipeline.bridge.source})"] = lambda: pipeline.source.frames(
                gbuffers, envmap, DEMO_FOV_DEGREES
            )
            parts["bridge source encode"] = lambda: ae.encode(env_videos[:1])
        parts |= {
            "transformer (1 step)": lambda: pipeline.transformer(albedo, t, attributes, env_latent),
            "decode": lambda: ae.decode(albedo),
            "render() end to end": lambda: render(pipeline, gbuffers, envmap),
        }
        seconds = {name: median_seconds(fn, args.device, args.repeats) for name, fn in parts.items()}
    total = seconds["render() end to end"]
    return [
        {"part": name, "ms_per_frame": 1000 * value / frames, "share_of_render": value / total}
        for name, value in seconds.items()
    ]


def relight_section(pipeline: RenderFlowPipeline, args: argparse.Namespace) -> list[Row]:
    gbuffers, envmap = demo_clip(args.frames, args.size)
    latents = pipeline.encode_gbuffers(gbuffers)
    cold = median_seconds(lambda: render(pipeline, gbuffers, envmap), args.device, args.repeats)
    cached = median_seconds(
        lambda: render(pipeline, latents, envmap, exposure_stops=0.5), args.device, args.repeats
    )
    return [
        {
            "frames": args.frames,
            "cold_ms_per_frame": 1000 * cold / args.frames,
            "cached_relight_ms_per_frame": 1000 * cached / args.frames,
            "speedup": cold / cached,
            "cache_mb": latents.nbytes / 2**20,
        }
    ]


def daemon_section(pipeline: RenderFlowPipeline, args: argparse.Namespace) -> list[Row]:
    """bench_daemon's four ways of one request, on a daemon serving the same model."""
    import bench_daemon  # bench/ is the script's own folder, so its sibling imports

    from renderflow.daemon.client import DaemonClient
    from renderflow.daemon.server import Server, ServerConfig

    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights
        if args.config != "bundled":
            weights = Path(folder) / "model"
            pipeline.save_pretrained(weights)
        server = Server(ServerConfig(weights=weights, device=args.device, bind="tcp://127.0.0.1:*"))
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        server.bound.wait()
        server.model_settled.wait()
        client = DaemonClient(server.endpoint, timeout_s=3600)
        try:
            options = argparse.Namespace(frames=args.frames, repeats=args.repeats, device=args.device)
            row = bench_daemon.measure(args.size, options, pipeline, client)
        finally:
            client.close()
            server.request_stop()
            thread.join()
    return [row]


def frames_section(pipeline: RenderFlowPipeline, args: argparse.Namespace) -> list[Row]:
    rows = []
    memory = PeakMemory(args.device)
    for frames in args.frame_counts:
        gbuffers, envmap = demo_clip(frames, args.size)
        render(pipeline, gbuffers, envmap)  # burn-in
        memory.reset()
        seconds = median_seconds(
            lambda g=gbuffers, e=envmap: render(pipeline, g, e), args.device, args.repeats
        )
        rows.append(
            {
                "frames": frames,
                "chunks": len(plan_chunks(frames, pipeline.config.chunk_frames)),
                "ms_per_frame": 1000 * seconds / frames,
                "peak_memory_gib": memory.gib(),
                # what the caller holds anyway: the G-buffers, env maps and the float32 RGB output
                "arrays_gib": (_gbuffer_bytes(gbuffers) + envmap.nbytes + 12 * frames * args.size**2) / 2**30,
            }
        )
    return rows


def resolution_section(pipeline: RenderFlowPipeline, args: argparse.Namespace) -> list[Row]:
    """Time and peak memory per frame as frames grow (issue #21): the autoencoder in tiles, the
    transformer in windows above PipelineConfig.transformer_window; time per pixel against the
    smallest size, and where an untiled pass still fits, how far the windowed render is from it."""
    rows: list[Row] = []
    memory = PeakMemory(args.device)
    untiled = dataclasses.replace(pipeline.config, transformer_window=1 << 30, autoencoder_tile=1 << 30)
    windowed_config = pipeline.config
    for size in args.sizes:
        gbuffers, envmap = demo_clip(args.resolution_frames, size)
        memory.reset()
        seconds = median_seconds(
            lambda g=gbuffers, e=envmap: render(pipeline, g, e), args.device, args.resolution_repeats
        )
        row: Row = {
            "size": size,
            "windows": size > pipeline.config.transformer_window,
            "ms_per_frame": 1000 * seconds / args.resolution_frames,
            "ns_per_pixel": 1e9 * seconds / (args.resolution_frames * size * size),
            "peak_memory_gib": memory.gib(),
            "untiled_mean_display_diff": None,
            "untiled_p99_display_diff": None,
        }
        if size in args.untiled_sizes and row["windows"]:
            windowed_render = render(pipeline, gbuffers, envmap)
            pipeline.config = untiled
            try:
                whole = render(pipeline, gbuffers, envmap)
            finally:
                pipeline.config = windowed_config
            difference = np.abs(_display(windowed_render) - _display(whole))
            row["untiled_mean_display_diff"] = float(difference.mean())
            row["untiled_p99_display_diff"] = float(np.percentile(difference, 99))
        rows.append(row)
    for row in rows:
        row["ratio_to_smallest"] = row["ns_per_pixel"] / rows[0]["ns_per_pixel"]
    return rows


def _display(linear: np.ndarray) -> np.ndarray:
    return enc.srgb_oetf(enc.reinhard(linear))


def autoencoder_section(pipeline: RenderFlowPipeline, args: argparse.Namespace) -> list[Row]:
    """The autoencoder alone at sizes beyond a whole render (4096²), tiled."""
    memory = PeakMemory(args.device)
    return [_tiled_autoencoder_row(pipeline, size, args, memory) for size in args.tiled_sizes]


def _tiled_autoencoder_row(
    pipeline: RenderFlowPipeline, size: int, args: argparse.Namespace, memory: PeakMemory
) -> Row:
    """Encode + decode of one frame at `size`, tiled, and its max difference from the untiled pass."""
    gbuffers, _ = demo_clip(1, size)
    video = enc.frames_to_tensor(enc.albedo_to_model(gbuffers.albedo)).to(args.device)  # [1, 3, 1, S, S]
    tiled = _tiled_autoencoder(pipeline)
    with torch.no_grad():
        memory.reset()
        seconds = median_seconds(lambda: tiled.decode(tiled.encode(video)), args.device, args.repeats)
        peak = memory.gib()
        tiled_out = tiled.decode(tiled.encode(video)).float()
        untiled_out = pipeline.autoencoder.decode(pipeline.autoencoder.encode(video)).float()
    return {
        "size": size,
        "what": f"autoencoder, 1 frame, tiles of {tiled.tile} (overlap {tiled.overlap})",
        "ms_per_frame": 1000 * seconds,
        "peak_memory_gib": peak,
        "tiled_max_error": float((tiled_out - untiled_out).abs().max()),
    }


def compile_section(pipeline: RenderFlowPipeline, args: argparse.Namespace) -> list[Row]:
    """torch.compile of the transformer on one chunk's shapes: compile cost, then eager vs compiled."""
    _, albedo, attributes, t = _chunk_inputs(pipeline, args.size, args.device)
    with torch.no_grad():
        compiled = torch.compile(pipeline.transformer)
        synchronize(args.device)
        start = time.perf_counter()
        compiled(albedo, t, attributes, albedo)
        synchronize(args.device)
        compile_seconds = time.perf_counter() - start
        eager = median_seconds(
            lambda: pipeline.transformer(albedo, t, attributes, albedo), args.device, args.repeats
        )
        fast = median_seconds(lambda: compiled(albedo, t, attributes, albedo), args.device, args.repeats)
    return [
        {
            "first_call_s (compiles)": compile_seconds,
            "eager_ms_per_chunk": 1000 * eager,
            "compiled_ms_per_chunk": 1000 * fast,
            "speedup": eager / fast,
            # None: the compiled transformer is no faster, so the compile is never repaid
            "calls_to_repay_compile": compile_seconds / (eager - fast) if fast < eager else None,
        }
    ]


def _tiled_autoencoder(pipeline: RenderFlowPipeline) -> TiledAutoencoder:
    """The autoencoder as render() runs it: tiled above the checkpoint's tile size."""
    return TiledAutoencoder(
        pipeline.autoencoder, pipeline.config.autoencoder_tile, pipeline.config.autoencoder_tile_overlap
    )


def _chunk_inputs(
    pipeline: RenderFlowPipeline, size: int, device: str
) -> tuple[GBuffers, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chunk of the demo at `size`: its G-buffers, and the transformer's albedo latent,
    attribute latent (no reference frame) and bridge time, as render() builds them."""
    gbuffers, _ = demo_clip(pipeline.config.chunk_frames, size)
    with torch.no_grad():
        latents = pipeline.encode_gbuffers(gbuffers).latents[0]
        attributes = pipeline._attributes(latents, None)
    return gbuffers, latents[:1], attributes, torch.zeros(1, device=device)


def _gbuffer_bytes(gbuffers: Any) -> int:
    return sum(getattr(gbuffers, name).nbytes for name in ("albedo", "normal", "depth", "material"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=["bundled", "cpu-default", "production"], default="bundled")
    parser.add_argument("--weights", type=Path, default=BUNDLED_MODEL, help="checkpoint for --config bundled")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--dtype", choices=list(DTYPES), help="transformer and adapters (default: bf16 on CUDA, else fp32)"
    )
    parser.add_argument("--autoencoder-dtype", choices=list(DTYPES), default="float32")
    parser.add_argument("--size", type=int, default=256, help="frame size of every section but resolution")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--frame-counts", type=int, nargs="+", default=[5, 17, 33])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--resolution-frames", type=int, default=1, help="frames per render, resolution")
    parser.add_argument("--resolution-repeats", type=int, default=3)
    parser.add_argument(
        "--untiled-sizes", type=int, nargs="+", default=[512], help="also render these untiled"
    )
    parser.add_argument("--tiled-sizes", type=int, nargs="+", default=[4096], help="autoencoder alone")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args()

    pipeline = build(args)
    # Warm up first: the first renders in a process run slower (allocator, oneDNN primitive
    # caches), and whichever section ran first would pay for it.
    gbuffers, envmap = demo_clip(args.frames, args.size)
    for _ in range(3):
        render(pipeline, gbuffers, envmap)
    sections = {
        "steps": steps_section,
        "split": split_section,
        "relight": relight_section,
        "daemon": daemon_section,
        "frames": frames_section,
        "resolution": resolution_section,
        "autoencoder": autoencoder_section,
        "compile": compile_section,
    }
    results: dict[str, list[Row]] = {}
    for name in args.only:
        started = time.perf_counter()
        results[name] = sections[name](pipeline, args)
        print_table(f"{name} ({time.perf_counter() - started:.0f} s)", results[name])

    write_record(
        f"suite_{args.config}",
        args,
        dtype=str(pipeline.dtype),
        autoencoder_dtype=str(next(pipeline.autoencoder.parameters()).dtype),
        sections=results,
    )


if __name__ == "__main__":
    main()
