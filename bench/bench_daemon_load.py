"""The daemon under load and under failure (issue #19): throughput and memory with many clients, a
request over the size limit, and how long a farm render takes to move off a daemon that dies.

    python bench/bench_daemon_load.py                   # bundled CPU model, 16 clients x 50 jobs, 64²
    python bench/bench_daemon_load.py --clients 4 --jobs 10

The daemons run as real `rf-daemon start --foreground` processes, so their RSS is measured from
/proc. Prints tables and writes JSON to bench/results/daemon_load_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import zmq
from bench_daemon import FOV_DEGREES, write_shot
from report import print_table, write_record

from renderflow.core.shot.demo import BUNDLED_MODEL
from renderflow.daemon import protocol as wire
from renderflow.daemon.client import DaemonClient, render_payloads
from renderflow.daemon.farm import plan_batches, run_batches


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_daemon(
    folder: Path, name: str, args: argparse.Namespace, *extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    state = folder / f"{name}.json"
    command = [sys.executable, "-m", "renderflow.daemon.daemon_cli", "start", "--foreground"]
    command += ["--bind", "tcp://127.0.0.1:0", "--weights", str(args.weights), "--device", args.device]
    process = subprocess.Popen(
        [*command, "--state-file", str(state), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not (state.exists() and json.loads(state.read_text()).get("state") == "ready"):
        if process.poll() is not None:
            raise RuntimeError(f"rf-daemon {name} exited with {process.returncode}")
        time.sleep(0.05)
    return process, json.loads(state.read_text())["endpoint"]


def load_row(
    endpoint: str, pid: int, payloads: list[wire.Payload], args: argparse.Namespace
) -> dict[str, object]:
    """`clients` threads, each its own client, `jobs` renders each; every answer counted by job id."""
    answers: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    rss_samples = [rss_mb(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            rss_samples.append(rss_mb(pid))

    def client_loop(index: int) -> None:
        with DaemonClient(endpoint, timeout_s=120) as client:
            for job in range(args.jobs):
                try:
                    reply = client.render(
                        {"fov": FOV_DEGREES, "exposure": 0.01 * (index * args.jobs + job)}, payloads
                    )
                    with lock:
                        answers[f"{index}-{job}"] += len(reply.payloads) == args.frames
                except Exception as error:  # counted, and the bench goes on
                    with lock:
                        failures.append(str(error))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(index,)) for index in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    done.set()
    total = args.clients * args.jobs
    third = max(1, len(rss_samples) // 3)
    return {
        "clients": args.clients,
        "jobs": total,
        "answered_once": sum(1 for count in answers.values() if count == 1),
        "failed": len(failures),
        "jobs_per_s": total / seconds,
        "ms_per_frame": 1000 * seconds / (total * args.frames),
        "rss_start_mb": rss_samples[0],
        "rss_first_third_mb": float(np.median(rss_samples[:third])),
        "rss_last_third_mb": float(np.median(rss_samples[-third:])),
        "rss_peak_mb": max(rss_samples),
    }


def oversize_row(endpoint: str, pid: int, args: argparse.Namespace) -> dict[str, object]:
    """One frame of `--big-mb` MB (over the daemon's limit): ZeroMQ drops it as it arrives."""
    before = rss_mb(pid)
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    big = bytes(args.big_mb << 20)
    socket.send_multipart([b'{"v":1,"id":"big","op":"hello"}', big])
    peak = before
    end = time.monotonic() + 10
    while time.monotonic() < end:
        peak = max(peak, rss_mb(pid))
        time.sleep(0.05)
    socket.close()
    with DaemonClient(endpoint, timeout_s=10) as client:
        alive = client.hello()["state"] == "ready"
        limit = client.hello()["limits"]["max_message_bytes"] >> 20
    return {
        "message_mb": args.big_mb,
        "limit_mb": limit,
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "daemon_alive": alive,
    }


def failover_row(
    folder: Path, files: list[tuple[int, Path]], envmap: Path, args: argparse.Namespace
) -> dict[str, object]:
    """Two daemons share a render; one is killed (SIGKILL) in the middle; time to finish and to move."""
    one, one_endpoint = start_daemon(folder, "one", args)
    two, two_endpoint = start_daemon(folder, "two", args)
    moved_at: list[float] = []
    try:
        clients = [
            DaemonClient(one_endpoint, timeout_s=args.timeout, retries=0),
            DaemonClient(two_endpoint, timeout_s=args.timeout, retries=0),
        ]
        frames = [frame for frame, _ in files]
        killed = threading.Timer(
            0.5, lambda: (one.send_signal(signal.SIGKILL), moved_at.append(time.perf_counter()))
        )
        started = time.perf_counter()
        killed.start()
        outcome = run_batches(
            clients,
            "render",
            {"fov": FOV_DEGREES},
            plan_batches(frames, 1),
            lambda batch: render_payloads([f for f in files if f[0] in batch], envmap),
            lambda frame: folder / "out" / f"b.{frame}.exr",
        )
        seconds = time.perf_counter() - started
    finally:
        one.kill()
        two.terminate()
        two.wait(30)
    return {
        "frames": len(files),
        "written": len(outcome.written),
        "failed": len(outcome.failed),
        "client_timeout_s": args.timeout,
        "total_s": seconds,
        "after_kill_s": seconds - (moved_at[0] - started) if moved_at else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--big-mb", type=int, default=1200, help="size of the oversize message")
    parser.add_argument("--limit-mb", type=int, default=1024, help="the daemon's --max-message-mb")
    parser.add_argument("--timeout", type=float, default=3.0, help="client silence before failover")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        files = write_shot(folder, args.frames, args.size)
        payloads = render_payloads(files, folder / "envmap.exr")
        daemon, endpoint = start_daemon(folder, "load", args, "--max-message-mb", str(args.limit_mb))
        try:
            load = load_row(endpoint, daemon.pid, payloads, args)
            oversize = oversize_row(endpoint, daemon.pid, args)
        finally:
            daemon.terminate()
            daemon.wait(60)
        (folder / "failover").mkdir()
        shot = write_shot(folder / "failover", 12, args.size)
        failover = failover_row(folder / "failover", shot, folder / "failover" / "envmap.exr", args)

    print_table(f"{args.clients} clients x {args.jobs} jobs of {args.frames} frames at {args.size}²", [load])
    print_table("a message over the size limit", [oversize])
    print_table("failover: one of two daemons killed mid-render", [failover])
    write_record("daemon_load", args, load=load, oversize=oversize, failover=failover)


if __name__ == "__main__":
    main()
