"""What every benchmark here ends with: Markdown tables on stdout and a JSON record in bench/results/."""

from __future__ import annotations

import argparse
import json
import platform
from datetime import date
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n## {title}\n")
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k]) for k in header]
        print("| " + " | ".join(cells) + " |")


def write_record(stem: str, args: argparse.Namespace, **content: Any) -> Path:
    """`bench/results/STEM_DEVICE.json` with the date, machine, threads and arguments of the run."""
    cuda = args.device.startswith("cuda")
    machine = torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{stem}_{args.device.split(':')[0]}.json"
    record = {
        "date": str(date.today()),
        "machine": machine,
        "threads": torch.get_num_threads(),
        "args": {key: str(value) for key, value in vars(args).items()},
        **content,
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"\nwrote {out}")
    return out
