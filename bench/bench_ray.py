"""Ray overhead per task, against the local process pool, on the same machine and run.

Starts a local 2-CPU Ray cluster on loopback (``ray start --head --block``, stopped
at the end by signalling that process), then measures both backends with a trivial
evaluator (no training: what is left is the backend's own cost per task):

  * throughput: N tasks kept ``capacity`` in flight, as the search loop does
    (submit when a slot frees, ``poll`` for outcomes) -> tasks/s and ms/task;
  * round trip: one task at a time, submit to outcome -> ms.

Both with 2 workers. Figures are medians over repetitions; the overhead of Ray is the
difference in ms/task. Run: ``.venv/bin/python bench/bench_ray.py [--quick]``; results
go to ``results/bench/ray.json``. Needs Ray (``pip install 'ray>=2.40'``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Loopback only (read when Ray is imported; also passed to `ray start`).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

from evo.workers.base import Backend, LocalPool, Task  # noqa: E402
from graphs.core.fileformat import dumps  # noqa: E402
from graphs.rl_loss.library import builtin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = dumps(builtin("dqn"))
CPUS = 2


def trivial(program) -> dict:
    """An evaluator that does no work."""
    return {"status": "ok", "fitness": 1.0}


# -- a local cluster ---------------------------------------------------------------------------
def start_cluster(log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}",
           f"--num-cpus={CPUS}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
           "--disable-usage-stats", "--object-store-memory=100000000", "--block"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ),
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 90
    while b"Ray runtime started" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_cluster(proc)
            raise SystemExit(f"`ray start --head` did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc, f"127.0.0.1:{port}"


def stop_cluster(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` shuts its processes down
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- measurements ------------------------------------------------------------------------------
def throughput(backend: Backend, n: int) -> float:
    """Seconds to finish ``n`` tasks, keeping ``capacity`` of them in flight."""
    submitted = done = 0
    start = time.perf_counter()
    while done < n:
        while backend.running < backend.capacity and submitted < n:
            backend.submit(Task(submitted, PROGRAM))
            submitted += 1
        done += len(backend.poll(1.0))
    return time.perf_counter() - start


def round_trips(backend: Backend, n: int) -> list[float]:
    """Seconds from submit to outcome, one task at a time."""
    out = []
    for i in range(n):
        start = time.perf_counter()
        backend.submit(Task(i, PROGRAM))
        got = []
        while not got:
            got = backend.poll(1.0)
        out.append(time.perf_counter() - start)
    return out


def measure(backend: Backend, tasks: int, reps: int, trips: int) -> dict:
    throughput(backend, 2 * CPUS)  # warm up: every worker started and has run a task
    seconds = [throughput(backend, tasks) for _ in range(reps)]
    trips_s = round_trips(backend, trips)
    median = statistics.median(seconds)
    return {
        "workers": backend.capacity,
        "tasks_per_rep": tasks,
        "tasks_per_s": tasks / median,
        "ms_per_task": 1000 * median / tasks,
        "reps_tasks_per_s": [tasks / s for s in seconds],
        "round_trip_ms": 1000 * statistics.median(trips_s),
        "round_trip_ms_p90": 1000 * sorted(trips_s)[int(0.9 * (len(trips_s) - 1))],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=500, help="tasks per repetition")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--trips", type=int, default=100, help="one-at-a-time round trips")
    ap.add_argument("--quick", action="store_true", help="100 tasks x 3 reps, 30 round trips")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "ray.json"))
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.reps, args.trips = 100, 3, 30
    try:
        import ray
    except ImportError:
        raise SystemExit("Ray is not installed: pip install 'ray>=2.40'") from None
    from evo.workers.ray_backend import RayBackend

    results: dict = {}
    with LocalPool(trivial, workers=CPUS) as pool:
        results["local"] = measure(pool, args.tasks, args.reps, args.trips)
    with tempfile.TemporaryDirectory() as tmp:
        proc, address = start_cluster(Path(tmp) / "ray-start.log")
        try:
            start = time.perf_counter()
            backend = RayBackend(trivial, address)
            connect_s = time.perf_counter() - start
            with backend:
                results["ray"] = measure(backend, args.tasks, args.reps, args.trips)
            results["ray"]["connect_s"] = connect_s
        finally:
            stop_cluster(proc)
    local, remote = results["local"], results["ray"]
    summary = {
        "ray_overhead_ms_per_task": remote["ms_per_task"] - local["ms_per_task"],
        "ray_to_local_ms_per_task_ratio": remote["ms_per_task"] / local["ms_per_task"],
        "ray_round_trip_overhead_ms": remote["round_trip_ms"] - local["round_trip_ms"],
    }
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = {
        "machine": {"python": platform.python_version(), "ray": ray.__version__,
                    "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "loadavg_at_end": load},
        "settings": {"evaluator": "trivial (returns a constant)", "cluster":
                     f"local Ray head on 127.0.0.1, --num-cpus {CPUS}", "workers": CPUS,
                     "tasks_per_rep": args.tasks, "reps": args.reps,
                     "round_trips": args.trips, "statistic": "median over reps"},
        "summary": summary,
        **results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"local pool: {local['tasks_per_s']:.0f} tasks/s, {local['ms_per_task']:.3f} ms/task, "
          f"round trip {local['round_trip_ms']:.2f} ms")
    print(f"ray:        {remote['tasks_per_s']:.0f} tasks/s, {remote['ms_per_task']:.3f} ms/task, "
          f"round trip {remote['round_trip_ms']:.2f} ms (connect {remote['connect_s']:.2f} s)")
    print(f"Ray overhead: {summary['ray_overhead_ms_per_task']:+.3f} ms/task "
          f"({summary['ray_to_local_ms_per_task_ratio']:.1f}x the local pool); wrote {args.out}")


if __name__ == "__main__":
    main()
