"""The 2048² picture of docs/PERFORMANCE.md (issue #21): the demo scene rendered in process by the
bundled model, the transformer in windows of PipelineConfig.transformer_window:

    .venv/bin/python docs/make_resolution_sheet.py          # writes docs/images/resolution_2048.png

Left, the whole frame (shown at half size); right, a 512² crop shown at twice its size across
several window borders (windows of 256 px start every ~224 px), where banding or seams would show.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from renderflow.core.io.exr import write_png
from renderflow.core.model import encodings as enc
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shot.demo import BUNDLED_MODEL
from renderflow.core.shot.demo_scene import demo_clip

SIZE = 2048
CROP = (slice(768, 1280), slice(640, 1152))  # rows, columns: the spheres and the floor behind them


def main() -> None:
    pipeline = RenderFlowPipeline.from_pretrained(BUNDLED_MODEL)
    if len(sys.argv) > 1:  # WINDOW OVERLAP: try other windows
        window, overlap = map(int, sys.argv[1:3])
        pipeline.config = dataclasses.replace(
            pipeline.config, transformer_window=window, transformer_window_overlap=overlap
        )
    gbuffers, envmap = demo_clip(1, SIZE)
    start = time.perf_counter()
    beauty = pipeline.render(gbuffers, envmap, vertical_fov_degrees=40.0)[0]
    print(f"{SIZE}² in {time.perf_counter() - start:.1f} s")
    display = enc.srgb_oetf(enc.reinhard(beauty))
    half = display.reshape(SIZE // 2, 2, SIZE // 2, 2, 3).mean(axis=(1, 3))
    crop = display[CROP].repeat(2, axis=0).repeat(2, axis=1)  # 512² shown at 2× (nearest)
    sheet = np.concatenate([half, crop], axis=1)
    out = Path(__file__).parent / "images" / f"resolution_{SIZE}.png"
    write_png(out, sheet)
    print(out)


if __name__ == "__main__":
    main()
