"""The autoencoder in reduced precision (issue #29, item 2): how far bf16 and fp16 move its HDR
reconstruction and its latents from fp32's, and what they save in time.

    python bench/autoencoder_dtype.py                                   # bundled CPU model, demo clip
    python bench/autoencoder_dtype.py --config production --device cuda --size 512 --frames 17

The clip's path-traced beauty (scene-linear HDR, in the model's space: Reinhard + sRGB over the
env map's light scale, as the pipeline encodes it) goes through encode and decode in each dtype.
Columns: PSNR of the reconstruction against the input (display space, rf-eval's) and against the
fp32 reconstruction, the latents' relative distance from fp32's, and ms per frame for encode and
decode (median of `--repeats`). `--size` repeats the clip's frames into a larger frame (speed at
the production size; the content stays HDR). `production` has random weights unless `--weights`
names an imported Wan checkpoint: its PSNR against the input then means nothing, its distance
from fp32 still does. Prints a table, writes bench/results/autoencoder_dtype_DEVICE.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from report import print_table, write_record
from suite import DTYPES, build, median_seconds

from renderflow.core.io.clips import load_clip
from renderflow.core.model import encodings as enc
from renderflow.core.shading.lighting import light_scale
from renderflow.core.shot.demo import BUNDLED_MODEL, DEMO_CLIP


def clip_video(clip_folder: Path, frames: int, size: int) -> torch.Tensor:
    """The clip's first `frames` beauty frames in model space, repeated to `size` pixels:
    `[1, 3, F, S, S]`."""
    clip = load_clip(clip_folder)
    beauty = clip.beauty[:frames] / np.float32(light_scale(clip.envmap_cam))
    height, width = beauty.shape[1:3]
    repeats = (1, -(-size // height), -(-size // width), 1)
    beauty = np.tile(beauty, repeats)[:, :size, :size]
    return torch.from_numpy(enc.beauty_to_model(beauty)).permute(3, 0, 1, 2)[None].contiguous()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in display space of two model-space videos `[1, 3, F, H, W]` in [-1, 1]."""
    error = (((a.float() - b.float()) / 2) ** 2).mean().item()
    return float(10 * np.log10(1 / max(error, 1e-20)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=["bundled", "production"], default="bundled")
    parser.add_argument("--weights", type=Path, default=BUNDLED_MODEL, help="checkpoint for --config bundled")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clip", type=Path, default=DEMO_CLIP, help="a clip folder with beauty (the demo's)")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--size", type=int, default=64, help="frame side; the clip's frames are repeated")
    parser.add_argument(
        "--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES), help="float32 always runs first"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    pipeline = build(args)
    autoencoder = pipeline._ae
    video = clip_video(args.clip, args.frames, args.size).to(pipeline.device)
    if not autoencoder.is_valid_frame_count(video.shape[2]):
        raise SystemExit(f"--frames {args.frames}: the autoencoder does not take that many frames")
    reference: tuple[torch.Tensor, torch.Tensor] | None = None
    rows = []
    for name in ["float32", *(name for name in args.dtypes if name != "float32")]:
        pipeline.to(args.device, pipeline.dtype, autoencoder_dtype=DTYPES[name])
        with torch.no_grad():
            latent = autoencoder.encode(video).float()
            reconstruction = autoencoder.decode(latent).float()
            encode_s = median_seconds(lambda: autoencoder.encode(video), args.device, args.repeats)
            decode_s = median_seconds(
                lambda latent=latent: autoencoder.decode(latent), args.device, args.repeats
            )
        if reference is None:
            reference = latent, reconstruction
        rows.append(
            {
                "dtype": name,
                "psnr_vs_input_db": psnr(reconstruction, video),
                "psnr_vs_fp32_db": psnr(reconstruction, reference[1]),
                "latent_distance_vs_fp32": float(
                    ((latent - reference[0]).norm() / reference[0].norm().clamp_min(1e-12)).item()
                ),
                "encode_ms_per_frame": 1000 * encode_s / args.frames,
                "decode_ms_per_frame": 1000 * decode_s / args.frames,
            }
        )
    title = f"autoencoder precision ({args.config}, {args.size}², {args.frames} frames, {args.device})"
    print_table(title, rows)
    write_record("autoencoder_dtype", args, rows=rows)


if __name__ == "__main__":
    main()
