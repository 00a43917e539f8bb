"""How long does `rf-train synth` take per frame: Mitsuba's three passes by resolution and spp.

    python bench/bench_synth.py                       # 64² and 128² at 32 and 128 spp
    python bench/bench_synth.py --sizes 256 --spp 256

One process (the CLI's --workers multiplies throughput by the cores it is given). Prints a
table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from renderflow.core.io.cameras import look_at
from renderflow.core.io.exr import write_exr
from renderflow.training.mitsuba_render import mitsuba_module, render_frame, write_meshes
from renderflow.training.procedural import make_envmap, random_scene

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--spp", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--frames", type=int, default=3, help="frames timed per setting (median)")
    args = parser.parse_args()

    variant = mitsuba_module().variant()
    scene = random_scene(7)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        envmap = Path(folder) / "envmap.exr"
        write_exr(envmap, make_envmap(scene.env, 128, 256), ["R", "G", "B"], half=False)
        meshes = write_meshes(scene, Path(folder) / "meshes")
        camera = look_at(np.array([0.0, 2.0, 5.0]), np.array(scene.camera_target))
        for size in args.sizes:
            for spp in args.spp:
                timings = []
                for frame in range(args.frames):
                    started = time.perf_counter()
                    render_frame(scene, envmap, meshes, camera, 40.0, size, spp, seed=frame)
                    timings.append(time.perf_counter() - started)
                rows.append({"size": size, "spp": spp, "seconds_per_frame": float(np.median(timings))})

    print(f"Mitsuba variant {variant}, {platform.processor() or platform.machine()}")
    print(f"{'size':>6} {'spp':>6} {'s/frame':>9}")
    for row in rows:
        print(f"{row['size']:>6} {row['spp']:>6} {row['seconds_per_frame']:>9.3f}")
    RESULTS.mkdir(exist_ok=True)
    record = {"date": str(date.today()), "variant": variant, "machine": platform.platform(), "rows": rows}
    (RESULTS / "synth.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
