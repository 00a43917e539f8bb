"""What smoothing the network's change costs (`pipeline.change_blur`, core/model/change_filter.py):
milliseconds per frame of the prior-guided filter, 5-frame chunks, per frame size and σ.

    .venv/bin/python bench/change_filter.py --sizes 128 256 512 --sigmas 2 3 4 6

Prints the table, writes bench/results/change_filter_DEVICE.json.
"""

from __future__ import annotations

import argparse
import time

import torch
from report import print_table, write_record

from renderflow.core.model.change_filter import smoothed_change

FRAMES = 5  # the CPU model's chunk


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[2.0, 3.0, 4.0, 6.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    rows = []
    for size in args.sizes:
        change = (0.05 * torch.randn(FRAMES, 3, size, size, generator=generator)).to(args.device)
        prior = (2 * torch.rand(FRAMES, 3, size, size, generator=generator) - 1).to(args.device)
        row: dict[str, object] = {"size": f"{size}²"}
        for sigma in args.sigmas:
            smoothed_change(change, prior, sigma)  # warm-up
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.repeats):
                smoothed_change(change, prior, sigma)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            row[f"σ {sigma:g} (ms/frame)"] = 1000 * (time.perf_counter() - start) / args.repeats / FRAMES
        rows.append(row)
    print_table(f"prior-guided change filter, {FRAMES}-frame chunks, {args.device}", rows)
    write_record("change_filter", args, rows=rows)


if __name__ == "__main__":
    main()
