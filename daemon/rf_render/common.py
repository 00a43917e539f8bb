"""What rf-render's commands share beside their options: user errors as one line and exit code 1,
the runner options gathered, written files printed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from renderflow.core.cli_options import READ_OPTION_KEYS
from renderflow.daemon.shot_jobs import FramesFailed, InProcess, OnDaemons
from renderflow.daemon.shot_requests import CliReading


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input (a file, a layer, a value) and failed frames end the command with their message
    on one line and exit code 1: never a traceback."""
    try:
        yield
    except (OSError, ValueError, FramesFailed) as error:
        raise click.ClickException(" ".join(str(error).split())) from error


def echo_path(path: Path) -> None:
    click.echo(str(path))


def frames_to_do(files: list[tuple[int | None, Path]], out: str, skip_existing: bool) -> list[int]:
    """The frames still to write, saying how many are skipped because their output exists."""
    from renderflow.daemon.shot_jobs import frames_to_do as frames_left

    todo, skipped = frames_left(files, out, skip_existing)
    if skipped:
        click.echo(f"skipping {skipped} frame(s) whose output exists")
    return todo


def pop_reading(options: dict[str, Any]) -> CliReading:
    """The read options (core/cli_options.py `read_options`) taken out of a command's keyword args."""
    return CliReading(**{key: options.pop(key) for key in READ_OPTION_KEYS})


def runner(options: dict[str, Any]) -> InProcess | OnDaemons:
    """Where the work runs, from the runner options: on the --daemon addresses, else in process."""
    if not options["daemons"]:
        return InProcess(options["checkpoint"], options["device"], options["batch_frames"])
    from renderflow.daemon.client import CurveKeys, DaemonClient

    server_key, client_key = options["curve_server_key"], options["curve_client_key"]
    if (server_key is None) != (client_key is None):
        raise click.UsageError("--curve-server-key and --curve-client-key go together")
    curve = CurveKeys.from_files(server_key, client_key) if server_key and client_key else None
    clients = [
        DaemonClient(address, timeout_s=options["timeout"], curve=curve) for address in options["daemons"]
    ]
    return OnDaemons(list(clients), options["batch_frames"])
