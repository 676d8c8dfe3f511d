"""Slides per minute: the local pipeline against a real dask cluster on this machine.

Starts a ``dask scheduler`` and ``dask worker`` processes on loopback (no dashboards),
runs ``wsi-heatmap SLIDES --scheduler`` (whole slides as tasks on the workers) on a set
of slides, and compares with ``wsi-heatmap SLIDES`` run locally, each into a fresh
output folder, in one run::

    python benchmarks/bench_cluster.py /work/evalset-td/heldout/slides --n 8 \
        --workers 1 2 --out benchmarks/results/bench_cluster

``--kill-worker-after S`` also runs the 2-worker cluster again and kills one worker
process (SIGKILL) S seconds in: every slide must still finish (retried elsewhere).
``--kill-scheduler-after S`` kills the scheduler instead: the run must end with one
line per unfinished slide, exit 1 and ``run.json`` written; rerunning it locally
finishes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextmanager
def cluster(n_workers: int, threads: int) -> Iterator[tuple[str, list[Any], Any]]:
    """A scheduler and ``n_workers`` worker processes on loopback."""
    port = _free_port()
    address = f"tcp://{LOOPBACK}:{port}"
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    scheduler = subprocess.Popen(
        [
            BIN / "dask",
            "scheduler",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--no-dashboard",
        ],
        **quiet,
    )
    workers = []
    try:
        time.sleep(3)
        for _ in range(n_workers):
            workers.append(
                subprocess.Popen(
                    [
                        BIN / "dask",
                        "worker",
                        address,
                        "--nthreads",
                        str(threads),
                        "--no-dashboard",
                        "--host",
                        LOOPBACK,
                        "--no-nanny",
                    ],
                    **quiet,
                )
            )
        time.sleep(8)  # workers connect (and import the scientific stack)
        yield address, workers, scheduler
    finally:
        for process in [*workers, scheduler]:
            if process.poll() is None:
                process.terminate()
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def run_cli(
    slides: list[Path],
    out: Path,
    *extra: str,
    kill: Any = None,
    fresh: bool = True,
) -> dict[str, Any]:
    """``wsi-heatmap SLIDES --out OUT EXTRA``: seconds, exit code, run.json.

    ``kill`` (seconds, process) SIGKILLs the process that long after the start;
    ``fresh=False`` keeps what ``out`` holds (a resumed run).
    """
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    process = subprocess.Popen(
        [BIN / "wsi-heatmap", "-q", *map(str, slides), "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    if kill is not None:
        delay, victim = kill
        time.sleep(delay)
        victim.send_signal(signal.SIGKILL)
    _stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    record = (
        json.loads((out / "run.json").read_text())
        if (out / "run.json").is_file()
        else {}
    )
    return {
        "seconds": seconds,
        "exit": process.returncode,
        "finished": len(record.get("results", [])),
        "failed": len(record.get("failures", [])),
        "stderr_lines": [line for line in stderr.splitlines() if line.strip()][:12],
        "slides_per_minute": 60 * len(record.get("results", [])) / seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("slides", type=Path, help="a folder of slides")
    parser.add_argument("--n", type=int, default=8, help="how many slides")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=2, help="threads per worker")
    parser.add_argument("--kill-worker-after", type=float, default=None)
    parser.add_argument("--kill-scheduler-after", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write OUT.json/.md")
    args = parser.parse_args()
    slides = sorted(args.slides.glob("*.tif"))[: args.n]
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    rows = []
    local = run_cli(slides, work / "local")
    rows.append({"run": "local (2 threads)", **local})
    print(rows[-1], flush=True)
    for n in args.workers:
        with cluster(n, args.threads) as (address, _, _):
            result = run_cli(slides, work / f"cluster{n}", "--scheduler", address)
        rows.append(
            {"run": f"{n} worker process(es) x {args.threads} threads", **result}
        )
        print(rows[-1], flush=True)
    for delay, victim in (
        (args.kill_worker_after, "worker"),
        (args.kill_scheduler_after, "scheduler"),
    ):
        if delay is None:
            continue
        folder = work / f"killed-{victim}"
        with cluster(2, args.threads) as (address, workers, scheduler):
            target = workers[0] if victim == "worker" else scheduler
            result = run_cli(
                slides, folder, "--scheduler", address, kill=(delay, target)
            )
        rows.append({"run": f"2 workers, {victim} killed at {delay:g} s", **result})
        print(rows[-1], flush=True)
        if victim == "scheduler":
            resumed = run_cli(slides, folder, fresh=False)
            rows.append({"run": "the same command again, locally", **resumed})
            print(rows[-1], flush=True)
    shutil.rmtree(work, ignore_errors=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
        lines = [
            f"`{' '.join(sys.argv)}` ({len(slides)} slides, {os.cpu_count()} CPUs)",
            "",
            "| run | seconds | slides/min | finished | failed | exit |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['run']} | {r['seconds']:.1f} | {r['slides_per_minute']:.1f} | "
            f"{r['finished']} | {r['failed']} | {r['exit']} |"
            for r in rows
        ]
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
