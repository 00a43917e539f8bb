"""rf-daemon: keep a RenderFlow model warm on a GPU box and serve renders over ZeroMQ."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from renderflow.core.cli_options import (
    CHECKPOINT_HELP,
    curve_client_options,
    folder_option,
    seconds_option,
    stacked,
    verbose_option,
)
from renderflow.daemon import protocol as wire
from renderflow.daemon.client import admin_token_file, default_state_file, read_admin_token
from renderflow.daemon.processes import process_alive, process_start_time

logger = logging.getLogger("renderflow.daemon")

STATE_POLL_S = 0.1


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _running(state: dict[str, Any] | None) -> bool:
    """Whether the daemon a state file describes still runs: its pid is alive and is the same
    process (after a SIGKILL the pid may be reused by anything)."""
    if state is None:
        return False
    try:
        pid = int(state.get("pid", -1))
    except (TypeError, ValueError):
        return False
    if pid <= 0 or not process_alive(pid):
        return False
    started = state.get("started")
    return started is None or process_start_time(pid) in (None, started)


def _check_bindable(bind: str) -> None:
    """Fail in a second, before loading anything, when the endpoint is taken or not ours."""
    import zmq

    socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    try:
        socket.bind(bind)
    except zmq.ZMQError as error:
        raise click.ClickException(
            f"cannot listen on {bind}: {error.strerror} (another rf-daemon or program has it? "
            "`rf-daemon status`, or choose --bind tcp://127.0.0.1:PORT)"
        ) from error
    finally:
        socket.close(linger=0)


state_file_option = click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The daemon's pid/state file (default: rf-daemon-PORT.json in the temp folder).",
)
bind_option = click.option(
    "--bind",
    default=wire.DEFAULT_ADDRESS,
    show_default=True,
    help="ZeroMQ endpoint. Anything beyond 127.0.0.1 needs --curve-secret-key and --curve-clients.",
)


# The limits hello announces and every request is held to (docs/PROTOCOL.md): option, default, help.
LIMITS = (
    ("--max-frames", wire.Limits.max_frames, "Most frames one job may carry (more is refused as too_large)."),
    ("--max-pixels", wire.Limits.max_pixels, "Most pixels per frame (width x height) a job may carry."),
    (
        "--max-message-mb",
        wire.Limits.max_message_bytes >> 20,
        "Largest request in MiB; ZeroMQ drops a larger frame as it arrives.",
    ),
)
limit_options = stacked(
    *(
        click.option(name, type=click.IntRange(1), default=value, show_default=True, help=text)
        for name, value, text in LIMITS
    )
)


@click.group(
    epilog=(
        "Examples:\n\n  rf-daemon start --device cuda --weights ckpt/\n\n"
        "  rf-daemon status\n\n  rf-daemon keys --out keys/\n\n"
        "  rf-daemon start --bind tcp://0.0.0.0:5557 --curve-secret-key keys/server.key_secret "
        "--curve-clients keys/clients/\n\n  rf-daemon stop"
    )
)
@verbose_option
def main(verbose: bool) -> None:
    """The RenderFlow render daemon: a warm model behind a ZeroMQ socket (docs/PROTOCOL.md)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@bind_option
@folder_option("--weights", CHECKPOINT_HELP)
@click.option(
    "--device", default="auto", show_default=True, help="Torch device: auto, cpu, cuda, cuda:1, ..."
)
@click.option(
    "--cache-mb", type=click.IntRange(0), default=2048, show_default=True, help="G-buffer latent cache."
)
@limit_options
@click.option(
    "--idle-timeout", type=click.FloatRange(min=1), help="Stop after this many seconds without work."
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds a running job may finish after SIGTERM or a shutdown request before it is cancelled.",
)
@click.option(
    "--curve-secret-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The daemon's secret key (server.key_secret from rf-daemon keys): CurveZMQ for listening beyond "
    "127.0.0.1.",
)
@folder_option("--curve-clients", "Folder of the client public keys (*.key) allowed to connect.")
@click.option(
    "--foreground/--background",
    default=False,
    help="Serve in this process (for systemd, containers, tests), or start in the background and return "
    "once the model is warm.",
)
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), help="Background daemon's log.")
@seconds_option("--wait", 600.0, 1, "Seconds to wait for the model to load (background start).")
@state_file_option
def start(**options: Any) -> None:
    """Start the daemon; with --background (the default) return once the model is warm."""
    state_file = options["state_file"] or default_state_file(options["bind"])
    previous = _read_state(state_file)
    if _running(previous):
        assert previous is not None
        raise click.ClickException(
            f"a daemon is already running for {options['bind']} (pid {previous['pid']})"
        )
    if previous is not None:
        logger.info(
            "%s: removing the state of a daemon that is gone (pid %s)", state_file, previous.get("pid")
        )
        state_file.unlink(missing_ok=True)
    _check_bindable(options["bind"])
    if options["device"] == "auto":
        import torch

        options["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    if options["foreground"]:
        sys.exit(_serve(options, state_file))
    _start_background(options, state_file)


def _serve(options: dict[str, Any], state_file: Path) -> int:
    from renderflow.core.shot.demo import BUNDLED_MODEL
    from renderflow.daemon.job_table import ModelState
    from renderflow.daemon.server import BindError, Server, ServerConfig

    config = ServerConfig(
        weights=options["weights"] or BUNDLED_MODEL,
        device=options["device"],
        bind=options["bind"],
        cache_bytes=options["cache_mb"] << 20,
        limits=wire.Limits(options["max_message_mb"] << 20, options["max_pixels"], options["max_frames"]),
        idle_timeout_s=options["idle_timeout"],
        shutdown_grace_s=options["grace"],
        curve_secret_key=options["curve_secret_key"],
        curve_clients=options["curve_clients"],
        admin_token=_write_admin_token(admin_token_file(state_file)),
    )
    try:
        server = Server(config)
    except ValueError as error:
        raise click.ClickException(str(error)) from error

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("%s: finishing the running job, then stopping", signal.Signals(signum).name)
        server.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def publish() -> None:
        server.bound.wait()
        record = {
            "pid": os.getpid(),
            "started": process_start_time(os.getpid()),
            "endpoint": server.endpoint,
            "device": config.device,
        }
        _write_state(state_file, record | {"state": "loading"})
        server.model_settled.wait()
        _write_state(state_file, record | {"state": server.model_state, "error": server.model_error})
        if server.model_state == ModelState.FAILED:
            server.request_stop()

    threading.Thread(target=publish, daemon=True).start()
    try:
        server.serve()
    except BindError as error:
        raise click.ClickException(str(error)) from error
    finally:
        state = _read_state(state_file)
        if state is not None and state.get("pid") == os.getpid():
            state_file.unlink(missing_ok=True)
            admin_token_file(state_file).unlink(missing_ok=True)
    code = 1 if server.model_state == ModelState.FAILED else 0
    if server.worker_stuck:
        # A job ran past the grace period; interpreter shutdown under its running thread would abort
        # (SIGABRT), so leave now: the replies are sent and the state file is gone.
        logging.shutdown()
        os._exit(code)
    return code


def _write_admin_token(path: Path) -> str:
    """A fresh admin token in a file only this user can read (0600): shutdown/free need it."""
    token = secrets.token_urlsafe(32)
    try:
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise click.ClickException(
            f"{path}: cannot write the admin token ({error.strerror}); another user's rf-daemon may hold "
            "this port's files: choose another --bind port, or --state-file in a folder of yours"
        ) from error
    with os.fdopen(descriptor, "w") as file:
        file.write(token)
    return token


def _start_background(options: dict[str, Any], state_file: Path) -> None:
    args = [sys.executable, "-m", "renderflow.daemon.daemon_cli", "start", "--foreground"]
    for name, value in options.items():
        if name in ("foreground", "log_file", "wait", "state_file") or value is None:
            continue
        args += [f"--{name.replace('_', '-')}", str(value)]
    args += ["--state-file", str(state_file)]
    log_file = options["log_file"] or state_file.with_suffix(".log")
    state_file.unlink(missing_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + options["wait"]
    while time.monotonic() < deadline:
        state = _read_state(state_file)
        if state is not None and state.get("pid") == process.pid and state.get("state") != "loading":
            if state["state"] == "ready":
                click.echo(
                    f"rf-daemon ready on {state['endpoint']} ({state['device']}, pid {process.pid}); "
                    f"log {log_file}"
                )
                return
            break
        if process.poll() is not None:
            break
        time.sleep(STATE_POLL_S)
    if process.poll() is None:
        process.terminate()
    tail = log_file.read_text(errors="replace").splitlines()[-8:]
    raise click.ClickException("rf-daemon did not become ready:\n" + "\n".join(tail))


@main.command()
@bind_option
@state_file_option
@click.option(
    "--wait", type=click.FloatRange(min=0), default=60.0, show_default=True, help="Seconds to wait."
)
def stop(bind: str, state_file: Path | None, wait: float) -> None:
    """Stop the daemon started for --bind: it finishes its running job and answers the queued ones."""
    state_file = state_file or default_state_file(bind)
    state = _read_state(state_file)
    if not _running(state):
        if state is not None:  # a daemon killed hard (SIGKILL) left it: its pid may be anyone's now
            try:
                state_file.unlink(missing_ok=True)
                admin_token_file(state_file).unlink(missing_ok=True)
            except OSError as error:
                raise click.ClickException(
                    f"no rf-daemon is running for {bind}; its stale {state_file} cannot be removed "
                    f"({error.strerror}): it belongs to another user"
                ) from error
            raise click.ClickException(
                f"no rf-daemon is running for {bind}; removed the stale {state_file} (pid {state.get('pid')})"
            )
        raise click.ClickException(f"no rf-daemon is running for {bind} (no state in {state_file})")
    assert state is not None
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except PermissionError as error:
        raise click.ClickException(
            f"rf-daemon (pid {pid}) for {bind} belongs to another user: only its owner can stop it "
            "(or send it `rf-daemon status`)"
        ) from error
    deadline = time.monotonic() + wait
    while _running(state) and time.monotonic() < deadline:
        time.sleep(STATE_POLL_S)
    if _running(state):
        raise click.ClickException(f"rf-daemon (pid {pid}) is still running after {wait:g} s")
    click.echo(f"rf-daemon (pid {pid}) stopped")


@main.command()
@click.option("--address", default=wire.DEFAULT_ADDRESS, show_default=True, help="The daemon's endpoint.")
@seconds_option("--timeout", 3.0, 0.1, "Seconds to wait for the daemon's answer.")
@curve_client_options
def status(
    address: str, timeout: float, curve_server_key: Path | None, curve_client_key: Path | None
) -> None:
    """Ask a daemon how it is: model, device, memory, cache and jobs. Exit code 1 if it does not answer."""
    from renderflow.daemon.client import CurveKeys, DaemonClient, DaemonUnavailable

    curve = None
    if curve_server_key is not None and curve_client_key is not None:
        curve = CurveKeys.from_files(curve_server_key, curve_client_key)
    token = read_admin_token(default_state_file(address))  # the owner sees every client's jobs
    with DaemonClient(address, timeout_s=timeout, retries=0, curve=curve, admin_token=token) as client:
        try:
            report = client.status()
        except DaemonUnavailable as error:
            raise click.ClickException(str(error)) from error
    model = report["model"]
    click.echo(f"{address}: {report['state']}, model {model['checkpoint']} on {model['device']}")
    click.echo(f"jobs: {len(report['jobs'])} active, {report['counts']}")
    click.echo(f"cache: {report['cache']}")
    click.echo(f"memory: {report['memory']}")


@main.command()
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the keys."
)
def keys(out: Path) -> None:
    """Make CurveZMQ keys: server.key(_secret) for the daemon, client.key(_secret) for a client.

    Give clients server.key and their client.key_secret; put each client's client.key into the folder
    the daemon reads with --curve-clients.
    """
    import zmq.auth

    out.mkdir(parents=True, exist_ok=True)
    for name in ("server", "client"):
        _, secret = zmq.auth.create_certificates(str(out), name)
        os.chmod(secret, 0o600)
    clients = out / "clients"
    clients.mkdir(exist_ok=True)
    (clients / "client.key").write_bytes((out / "client.key").read_bytes())
    click.echo(
        f"wrote {out}/server.key, server.key_secret, client.key, client.key_secret and clients/client.key"
    )


if __name__ == "__main__":
    main()
