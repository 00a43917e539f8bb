"""An OpenCue job for a RenderFlow shot, built with opencue-pyoutline (docs/FARM.md).

One Shell layer whose frames are the segment starts (`rf-render segments`), one segment per
OpenCue frame: `#IFRAME#` becomes `rf-render render ... --segment START`. The outline is
serialised to OpenCue's job spec; launching it needs a Cuebot (`outline.cuerun.launch`).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYER_NAME = "renderflow"


@dataclass(frozen=True)
class ShotJob:
    """What a shot render needs on the farm; paths as the render nodes see them."""

    name: str
    show: str
    shot: str
    user: str
    gbuffers: str
    envmap: Path
    out: str
    frames: str
    segment_starts: Sequence[int]
    segment_length: int = 48
    keyframes: str | None = None
    checkpoint: Path | None = None
    rf_render: str = "rf-render"

    def command(self, segment: str) -> list[str]:
        """rf-render's arguments for the segment starting at `segment` (a frame, or #IFRAME#)."""
        args = [self.rf_render, "render", self.gbuffers, "--env", str(self.envmap), "--out", self.out]
        args += ["--frames", self.frames, "--segment", segment, "--segment-length", str(self.segment_length)]
        args += ["--skip-existing"]
        if self.keyframes is not None:
            args += ["--keyframes", self.keyframes]
        if self.checkpoint is not None:
            args += ["--checkpoint", str(self.checkpoint)]
        return args


def build_outline(job: ShotJob) -> Any:
    """The outline.Outline of `job`: one layer, one OpenCue frame per segment."""
    from outline import Outline
    from outline.modules.shell import Shell

    if not job.segment_starts:
        raise ValueError(f"{job.name}: no segments to render")
    outline = Outline(job.name, show=job.show, shot=job.shot, user=job.user)
    # RQD runs the command through a shell: quote each argument (paths with spaces, ####).
    command = [shlex.quote(arg) if arg != "#IFRAME#" else arg for arg in job.command("#IFRAME#")]
    layer = Shell(LAYER_NAME, command=command, range=",".join(map(str, job.segment_starts)), chunk=1)
    outline.add_layer(layer)
    return outline


def job_spec(job: ShotJob) -> str:
    """OpenCue's XML job spec for `job`, without pycuerun (the command runs as it is)."""
    import outline.backend.cue as cue
    from outline.cuerun import OutlineLauncher

    return str(cue.serialize_simple(OutlineLauncher(build_outline(job))))
