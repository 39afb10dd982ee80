"""Thread oversubscription on a loaded machine (issue 11, section 1).

Every evaluation process now caps its BLAS/OpenMP threads (``[workers]
threads_per_worker``, default 1). Beside one busy process per core (``while True:
pass``), this measures wall and CPU time of:

* ``evo eval dqn --env CartPole --steps 4000`` as shipped (one BLAS thread), and with
  ``--threads <cores>``, which is what numpy's OpenBLAS used before the fix (one
  thread per core); runs alternate, figures are medians;
* a small ``evo run`` (CartPole, 64-64 agent, 1,500 steps per evaluation) with the
  default worker count (one per core) and with one worker alone: seconds per
  evaluation (mean of the store's ``seconds``) and wall time per evaluation.

The child processes get an environment without any thread variable
(``OPENBLAS_NUM_THREADS``, ...), so the figures show evo's own defaults.

Run: ``.venv/bin/python bench/bench_threads.py [--reps N] [--steps N] [--trials N]``
(about 3 minutes on 2 busy cores with the defaults); writes
``results/bench/threads.json``.

``--section xla`` measures JAX's own CPU thread pool (the population trainer), which
the BLAS variables do not reach: XLA's CPU client starts one pool per process with a
thread per core it may use, unless ``PJRT_NPROC`` says otherwise. A child process trains
16 DQN agents on CartPole (64-64, interpreted losses) once to compile, then again,
timed, with the environment evo's workers get now (``PJRT_NPROC=1``) and the one they
got before (the same without it), alternating, medians of ``--reps``: two children at
once on a quiet machine (two workers), one child beside a busy process per core, and
one child alone. Writes ``results/bench/threads_xla.json`` (about 4 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVO = [sys.executable, "-m", "evo"]
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
               "PJRT_NPROC", "XLA_FLAGS")

RUN_CONFIG = """
[run]
name = "bench-threads"
trials = {trials}
seed = 0

[search]
population_size = 4
tournament_size = 2

[evaluator]
envs = ["CartPole"]
steps = {steps}
hurdle = false

[evaluator.agent]
hidden = [64, 64]
learning_rate = 1e-3
learning_starts = 500

[workers]
{workers}
"""


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = str(ROOT)
    return env


def timed(cmd: list[str], cwd: Path) -> dict[str, float]:
    """Wall and CPU (user + system, of the child and its workers) seconds of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def start_busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}


def bench_eval(cores: int, reps: int, steps: int, tmp: Path) -> dict:
    variants = {
        "default (1 BLAS thread)": [],
        f"--threads {cores} (BLAS default before the fix)": ["--threads", str(cores)],
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, extra in variants.items():  # alternating
            cmd = [*EVO, "eval", "dqn", "--env", "CartPole", "--steps", str(steps), *extra]
            runs[name].append(timed(cmd, tmp))
    out = {name: {"median": median_of(r), "runs": r} for name, r in runs.items()}
    fixed, old = (out[n]["median"] for n in variants)
    out["old/new"] = {"wall": round(old["wall_s"] / fixed["wall_s"], 2),
                      "cpu": round(old["cpu_s"] / fixed["cpu_s"], 2)}
    return out


def bench_run(cores: int, trials: int, steps: int, tmp: Path) -> dict:
    out = {}
    for name, workers in (("default workers (one per core)", ""),
                          ("one worker alone", "workers = 1")):
        config = tmp / f"run-{len(out)}.toml"
        config.write_text(RUN_CONFIG.format(trials=trials, steps=steps, workers=workers))
        store = tmp / f"run-{len(out)}.db"
        times = timed([*EVO, "run", str(config), "--store", str(store), "-q"], tmp)
        db = sqlite3.connect(store)
        evaluated, mean_s = db.execute(
            "SELECT COUNT(*), AVG(seconds) FROM trials WHERE status IN ('done','failed')"
        ).fetchone()
        failed = db.execute("SELECT COUNT(*) FROM trials WHERE status='failed'").fetchone()[0]
        db.close()
        out[name] = {**times, "evaluations": evaluated, "failed": failed,
                     "seconds_per_evaluation": round(mean_s, 2),
                     "wall_per_evaluation_s": round(times["wall_s"] / evaluated, 2)}
    many, one = out.values()
    out["default/one: seconds per evaluation"] = round(
        many["seconds_per_evaluation"] / one["seconds_per_evaluation"], 2)
    out["default/one: wall per evaluation"] = round(
        many["wall_per_evaluation_s"] / one["wall_per_evaluation_s"], 2)
    return out


XLA_CHILD = """
import json, os, sys, time
import envs
from evo.rl.dqn import DQNConfig
from evo.rl.population import train_population
from graphs.rl_loss.library import builtin
steps, k = int(sys.argv[1]), 16
config = DQNConfig(hidden=(64, 64), learning_rate=1e-3, learning_starts=500)
args = ([builtin("dqn")] * k, envs.get("CartPole"), list(range(k)), config,
        envs.Budget(steps=steps))
train_population(*args, loss_mode="interpret")  # compiles (or loads from the cache)
wall, cpu = time.perf_counter(), time.process_time()
train_population(*args, loss_mode="interpret")
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
tasks = os.listdir(f"/proc/{os.getpid()}/task")
names = [open(f"/proc/{os.getpid()}/task/{t}/comm").read().strip() for t in tasks]
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "agent_steps_per_s": k * steps / wall,
                  "xla_pool_threads": sum("XLAEigen" in n for n in names)}))
"""


def _xla_env(pool_capped: bool) -> dict[str, str]:
    from evo.workers.base import thread_env

    env = {**clean_env(), **thread_env(1)}  # what evo's workers get now ...
    if not pool_capped:
        del env["PJRT_NPROC"]  # ... and what they got before
    return env


def _xla_children(n: int, pool_capped: bool, steps: int, tmp: Path) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, "-c", XLA_CHILD, str(steps)], cwd=tmp,
                              env=_xla_env(pool_capped), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"the XLA child failed:\n{stderr[-2000:]}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def bench_xla(cores: int, reps: int, steps: int, tmp: Path) -> dict:
    """Agent-steps/s of the population trainer with JAX's thread pool capped at one
    thread (evo's workers now) and uncapped (before), in the three situations above."""
    out: dict = {"steps_per_agent": steps, "agents_per_process": 16, "reps": reps}
    for label, n, busy in ((f"{cores} trainers at once, quiet", cores, 0),
                           ("1 trainer beside a busy process per core", 1, cores),
                           ("1 trainer alone, quiet", 1, 0)):
        got: dict[bool, list[list[dict]]] = {True: [], False: []}
        procs = start_busy(busy)
        try:
            for rep in range(reps):
                for capped in ((True, False) if rep % 2 == 0 else (False, True)):
                    got[capped].append(_xla_children(n, capped, steps, tmp))
        finally:
            stop_busy(procs)
        entry = {}
        for capped, name in ((True, "PJRT_NPROC=1 (now)"), (False, "uncapped (before)")):
            summed = [sum(c["agent_steps_per_s"] for c in run) for run in got[capped]]
            entry[name] = {
                "agent_steps_per_s_summed": round(statistics.median(summed)),
                "cpu_s_per_process": round(statistics.median(
                    c["cpu_s"] for run in got[capped] for c in run), 2),
                "wall_s_per_process": round(statistics.median(
                    c["wall_s"] for run in got[capped] for c in run), 2),
                "xla_pool_threads": got[capped][0][0]["xla_pool_threads"],
                "reps_summed": [round(x) for x in summed]}
        now, before = entry.values()
        entry["now/before agent-steps/s"] = round(
            now["agent_steps_per_s_summed"] / before["agent_steps_per_s_summed"], 2)
        out[label] = entry
        print(f"  {label}: {json.dumps(entry)}", flush=True)
    return out


def main_xla(args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        figures = bench_xla(cores, args.reps, args.xla_steps, Path(tmp))
        total = time.perf_counter() - t0
    import jax

    result = {"command": "python bench/bench_threads.py " + " ".join(sys.argv[1:]),
              "machine": {"cores": cores, "platform": platform.platform(),
                          "python": platform.python_version(), "jax": jax.__version__},
              **figures, "seconds": round(total, 1)}
    output = args.output or str(ROOT / "results/bench/threads_xla.json")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=None,
                        help="alternating repetitions (default 1; xla: 3)")
    parser.add_argument("--steps", type=int, default=4000, help="evo eval's --steps")
    parser.add_argument("--trials", type=int, default=8, help="evo run's trials")
    parser.add_argument("--run-steps", type=int, default=1500, help="steps per evo run evaluation")
    parser.add_argument("--busy", type=int, default=None,
                        help="busy processes beside (default: one per core)")
    parser.add_argument("--section", choices=("blas", "xla"), default="blas",
                        help="blas: evo eval and evo run (default); xla: JAX's thread pool")
    parser.add_argument("--xla-steps", type=int, default=3000,
                        help="steps per agent in the xla section")
    parser.add_argument("-o", "--output", default=None,
                        help="default results/bench/threads.json (xla: threads_xla.json)")
    args = parser.parse_args()
    if args.section == "xla":
        args.reps = args.reps or 3
        main_xla(args)
        return
    args.reps = args.reps or 1
    args.output = args.output or str(ROOT / "results/bench/threads.json")
    cores = os.cpu_count() or 1
    busy = start_busy(cores if args.busy is None else args.busy)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            eval_figures = bench_eval(cores, args.reps, args.steps, Path(tmp))
            run_figures = bench_run(cores, args.trials, args.run_steps, Path(tmp))
            total = time.perf_counter() - t0
    finally:
        stop_busy(busy)
    result = {
        "command": "python bench/bench_threads.py " + " ".join(sys.argv[1:]),
        "machine": {"cores": cores, "platform": platform.platform(),
                    "python": platform.python_version(),
                    "busy_processes_beside": len(busy),
                    "load_average_at_end": os.getloadavg()},
        "evo_eval": {"command": f"evo eval dqn --env CartPole --steps {args.steps}",
                     "reps": args.reps, **eval_figures},
        "evo_run": {"config": "CartPole, population 4, 64-64 agent, "
                              f"{args.run_steps} steps per evaluation, {args.trials} trials",
                    **run_figures},
        "seconds": round(total, 1),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
