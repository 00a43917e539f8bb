"""How much does the daemon cost, and how much does its G-buffer latent cache save?

    python bench/bench_daemon.py                      # bundled CPU model, 64² and 256², 5 frames
    python bench/bench_daemon.py --weights ckpt/ --device cuda --sizes 512

For the same job (the demo scene's G-buffers as canonical EXRs + a lat-long env map) it times:
the pipeline alone on arrays already in memory, the whole request in process (EXR decoding and
writing included: rf-render without --daemon), the same request through a daemon on 127.0.0.1
(cold: new G-buffers each time), and a cached relight (same G-buffers, a new exposure). Prints a
table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from report import print_table, write_record

from renderflow.core.io.cameras import to_imath
from renderflow.core.io.envmap import latlong_directions
from renderflow.core.io.exr import write_exr
from renderflow.core.io.gbuffer_io import write_canonical_frame
from renderflow.core.io.outputs import write_frame
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shot.demo import BUNDLED_MODEL
from renderflow.core.shot.demo_scene import orbit_camera_to_world, ray_cast_buffers, sky_radiance
from renderflow.core.shot.reading import ReadOptions, read_shot, shot_envmaps
from renderflow.core.shot.rendering import render_shot
from renderflow.core.shot.settings import RenderSettings
from renderflow.daemon.client import DaemonClient, render_payloads
from renderflow.daemon.server import Server, ServerConfig

FOV_DEGREES = 40.0


def write_shot(folder: Path, frames: int, size: int) -> list[tuple[int, Path]]:
    """The demo scene as canonical G-buffer EXRs with cameras in the header, and its sky as envmap.exr."""
    files = []
    for index in range(frames):
        camera = orbit_camera_to_world(angle=0.15 * index)
        buffers = ray_cast_buffers(camera, size, FOV_DEGREES)
        path = folder / f"gbuffers.{1001 + index}.exr"
        write_canonical_frame(path, buffers, {"worldToCamera": to_imath(np.linalg.inv(camera))})
        files.append((1001 + index, path))
    write_exr(folder / "envmap.exr", sky_radiance(latlong_directions(64, 128)), ["R", "G", "B"], half=False)
    return files


def in_process(pipeline: RenderFlowPipeline, folder: Path, envmap: Path) -> None:
    """What rf-render without --daemon does: read the shot's files, render, write each frame."""
    shot = read_shot(str(folder / "gbuffers.####.exr"), None, ReadOptions(vertical_fov_degrees=FOV_DEGREES))
    for frame in render_shot(pipeline, shot, envmap, RenderSettings(), "lin_rec709"):
        write_frame(folder / f"out.{frame.frame}.exr", frame.layers, frame.attributes)


def median_seconds(fn: Callable[[int], object], repeats: int, device: str) -> float:
    """Median of `fn(i)` over `repeats` runs after one burn-in; `i` lets a run vary its request."""
    fn(-1)
    timings = []
    for index in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(index)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    return float(np.median(timings))


def measure(
    size: int,
    args: argparse.Namespace,
    pipeline: RenderFlowPipeline,
    client: DaemonClient,
) -> dict[str, float | int]:
    """One row of the table: the same 5-frame job four ways."""
    with tempfile.TemporaryDirectory() as folder:
        files = write_shot(Path(folder), args.frames, size)
        envmap = Path(folder) / "envmap.exr"
        payloads = render_payloads(files, envmap)
        options = ReadOptions(vertical_fov_degrees=FOV_DEGREES)
        shot = read_shot(str(Path(folder) / "gbuffers.####.exr"), None, options)
        envmap_cam = shot_envmaps(shot, envmap)
        runs: dict[str, Callable[[int], object]] = {
            "pipeline": lambda _: pipeline.render(shot.sequence.gbuffers, envmap_cam),
            "in_process": lambda _: in_process(pipeline, Path(folder), envmap),
            # a new cache key each run: the G-buffers are decoded and encoded every time
            "daemon_cold": lambda i: client.render({"fov": FOV_DEGREES + 1e-6 * (i + 2)}, payloads),
            # the same G-buffers under another exposure: their latents come from the cache
            "daemon_relight": lambda i: client.render({"fov": FOV_DEGREES, "exposure": 0.1 * i}, payloads),
        }
        seconds = {name: median_seconds(fn, args.repeats, args.device) for name, fn in runs.items()}
    row: dict[str, float | int] = {"size": size, "frames": args.frames}
    row |= {f"{name}_ms_per_frame": 1000 * value / args.frames for name, value in seconds.items()}
    row["daemon_overhead"] = seconds["daemon_cold"] / seconds["in_process"] - 1
    row["relight_speedup"] = seconds["daemon_cold"] / seconds["daemon_relight"]
    row["request_mb"] = sum(len(p.data) for p in payloads) / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    server = Server(ServerConfig(weights=args.weights, device=args.device, bind="tcp://127.0.0.1:*"))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    server.bound.wait()
    server.model_settled.wait()
    pipeline = RenderFlowPipeline.from_pretrained(args.weights, device=args.device)
    client = DaemonClient(server.endpoint, timeout_s=600)
    try:
        rows = [measure(size, args, pipeline, client) for size in args.sizes]
    finally:
        client.close()
        server.request_stop()
        thread.join()

    print_table(f"daemon against in process, {args.frames} frames", rows)
    write_record("daemon", args, rows=rows)


if __name__ == "__main__":
    main()
