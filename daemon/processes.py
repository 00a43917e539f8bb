"""Is a process alive, and is it still the one we started? (the daemon's state file, job folders)."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, Linux /proc), or None where unknown.

    A pid is reused after its process dies; the pair (pid, start time) is not.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19]  # field 22 of stat; pid and (comm) come before the split
