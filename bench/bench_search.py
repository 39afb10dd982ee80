"""Benchmarks for the search engine (issue: search engine).

Three measurements, each compared with a peer measured in the same run:

* **Engine overhead per candidate** (propose + fingerprint + store + select) with a
  trivial evaluator, in-process: ``Search`` driven by a synchronous backend that
  evaluates at once (fitness = live nodes + a deterministic jitter), run store on
  disk. Side by side, in alternating repetitions, PyGlove's own loop on the same
  search space with the same fitness: ``pg.sample(program_space(...),
  pg.evolution.regularized_evolution(...))``. The space is the adapter's
  ``ProgramSpace`` (a custom hyper whose DNA is the program JSON); PyGlove's default
  ``Uniform`` mutator calls its ``random_dna(previous_dna=...)``, i.e. the engine's
  point mutation with the same p = 0.95 and the same fresh-draw fallback, so both
  loops search the same space with the same operator, population and tournament.
  PyGlove's loop has no equivalence cache and no store; ours does both. For
  information, our algorithm driven through ``pg.sample`` (``EvoDNAGenerator``)
  is timed too.
* **Parallel efficiency** with 2 local workers on CPU-bound evaluations of about
  1 s (a calibrated busy loop): (serial time / 2) / parallel time, for the same
  ~20 candidates through ``Search`` + ``LocalPool`` with 1 and with 2 workers.
  Also reported: worker-slot utilization (time spent evaluating / (2 x wall)),
  which is what the engine controls when the machine is shared.
* **Recovery**: a driver process is SIGKILLed (with its workers) at random moments
  and resumed each time; per kill, the trials finished before it, none lost after
  resume, and the re-done work (evaluations in flight at the kill).

Figures are medians over repetitions. Run: ``.venv/bin/python bench/bench_search.py
[--quick]``; results go to ``results/bench/search.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pyglove as pg  # noqa: E402

from evo.algorithms.base import SeedSpace  # noqa: E402
from evo.algorithms.evolution import RegularizedEvolution  # noqa: E402
from evo.algorithms.pyglove_adapter import EvoDNAGenerator, program_space  # noqa: E402
from evo.algorithms.random_search import RandomSearch  # noqa: E402
from evo.search.loop import Search  # noqa: E402
from evo.search.store import RunStore  # noqa: E402
from evo.workers.base import Backend, LocalPool, Outcome  # noqa: E402
from graphs.core.equivalence import FEC  # noqa: E402
from graphs.core.program import Program  # noqa: E402
from graphs.core.render import formula  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def jitter(program: Program) -> float:
    h = int(hashlib.blake2b(formula(program).encode(), digest_size=8).hexdigest(), 16)
    return (h % 1000) / 10_000


def trivial_fitness(program: Program) -> float:
    return float(sum(program.live)) + jitter(program)


# -- 1. engine overhead ------------------------------------------------------------------------
class SyncBackend(Backend):
    """Evaluates every task at once, in-process, from the search's own candidate (no
    worker, no IPC, no program parsing): what remains is the engine."""

    name = "sync"

    def __init__(self) -> None:
        self.search: Search | None = None
        self.queue: list = []

    @property
    def capacity(self) -> int:
        return 1

    @property
    def running(self) -> int:
        return len(self.queue)

    def submit(self, task) -> None:
        self.queue.append(task)

    def poll(self, timeout: float) -> list[Outcome]:
        out = []
        for task in self.queue:
            program = self.search.candidates[task.trial_id].program
            out.append(Outcome(task.trial_id, {"status": "ok",
                                               "fitness": trivial_fitness(program)}, "sync"))
        self.queue = []
        return out


def run_ours(n: int, population: int, tournament: int, seed: int, tmp: Path,
             breakdown: bool = False) -> tuple[float, dict]:
    store = RunStore.create(tmp / f"ours-{seed}-{time.monotonic_ns()}.evo", {"bench": True})
    backend = SyncBackend()
    algo = RegularizedEvolution(population, tournament, space=SeedSpace("dqn", 14), seed=seed)
    search = Search(algo, store, backend, n, fec=FEC())
    backend.search = search
    spent: dict[str, float] = {}
    if breakdown:
        _instrument(search, spent)
    start = time.perf_counter()
    progress = search.run()
    seconds = time.perf_counter() - start
    store.close()
    info = {"duplicates": progress.duplicates, "evaluated": progress.evaluated,
            "best": progress.best_fitness}
    if breakdown:
        info["breakdown_us_per_candidate"] = {k: round(v / n * 1e6, 1)
                                              for k, v in sorted(spent.items())}
        info["breakdown_us_per_candidate"]["total"] = round(seconds / n * 1e6, 1)
    return seconds / n, info


def _instrument(search: Search, spent: dict[str, float]) -> None:
    """Wrap the pieces of the loop with timers (adds ~1 us per call)."""

    def timed(obj, attr, key):
        inner = getattr(obj, attr)

        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return inner(*args, **kw)
            finally:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - t

        setattr(obj, attr, wrapper)

    timed(search.algorithm, "propose", "propose (algorithm + mutation)")
    timed(search.algorithm, "observe", "select (observe)")
    timed(search, "fec", "fingerprint (FEC)")
    for method in ("add_trial", "start", "finish", "fec_lookup", "save_state"):
        timed(search.store, method, "store (SQLite transactions)")
    timed(search.backend, "poll", "trivial evaluation (sync backend)")


def run_ours_scaling(n: int, block: int, population: int, tournament: int,
                     tmp: Path) -> list[float]:
    """Microseconds per candidate in consecutive blocks of one long run."""
    store = RunStore.create(tmp / f"scaling-{time.monotonic_ns()}.evo", {"bench": True})
    backend = SyncBackend()
    algo = RegularizedEvolution(population, tournament, space=SeedSpace("dqn", 14), seed=0)
    marks: list[float] = []

    def mark(p) -> None:
        if p.trials % block == 0:
            marks.append(time.perf_counter())

    search = Search(algo, store, backend, n, fec=FEC(), on_progress=mark)
    backend.search = search
    start = time.perf_counter()
    search.run()
    store.close()
    edges = [start] + marks
    return [round((b - a) / block * 1e6, 1) for a, b in zip(edges, edges[1:])]


def run_pyglove(n: int, population: int, tournament: int, seed: int) -> tuple[float, dict]:
    space = program_space("dqn", 14)
    algo = pg.evolution.regularized_evolution(population_size=population,
                                              tournament_size=tournament, seed=seed)
    random.seed(seed)  # the Uniform mutator's own draws use PyGlove's generator
    best = float("-inf")
    start = time.perf_counter()
    for program, feedback in pg.sample(space, algo, num_examples=n):
        f = trivial_fitness(program)
        best = max(best, f)
        feedback(f)
    return (time.perf_counter() - start) / n, {"best": best}


def run_adapter(n: int, population: int, tournament: int, seed: int) -> tuple[float, dict]:
    algo = RegularizedEvolution(population, tournament, space=SeedSpace("dqn", 14), seed=seed)
    best = float("-inf")
    start = time.perf_counter()
    for program, feedback in pg.sample(program_space("dqn", 14), EvoDNAGenerator(algo),
                                       num_examples=n):
        f = trivial_fitness(program)
        best = max(best, f)
        feedback(f)
    return (time.perf_counter() - start) / n, {"best": best}


def bench_overhead(n: int, reps: int, population: int, tournament: int, tmp: Path) -> dict:
    ours, peer, adapter, infos = [], [], [], []
    for rep in range(reps):  # alternate, so both see the same machine load
        t, info = run_ours(n, population, tournament, rep, tmp)
        ours.append(t)
        infos.append(info)
        peer.append(run_pyglove(n, population, tournament, rep)[0])
        print(f"  rep {rep}: ours {t * 1e6:.0f} us, PyGlove {peer[-1] * 1e6:.0f} us per "
              f"candidate", flush=True)
    for rep in range(max(1, reps // 2)):
        adapter.append(run_adapter(n // 2, population, tournament, rep)[0])
    _, detail = run_ours(n, population, tournament, 99, tmp, breakdown=True)
    scaling_n = 4 * n
    scaling = run_ours_scaling(scaling_n, n // 2, population, tournament, tmp)
    print(f"  ours per candidate in blocks of {n // 2} over {scaling_n} trials: {scaling}",
          flush=True)
    med_ours, med_peer = statistics.median(ours), statistics.median(peer)
    return {
        "candidates_per_rep": n, "reps": reps,
        "population": population, "tournament": tournament,
        "space": "DQN + 14 random nodes (SeedSpace('dqn', 14)), mutation p = 0.95",
        "ours_us_per_candidate_median": round(med_ours * 1e6, 1),
        "ours_us_per_candidate_all": [round(x * 1e6, 1) for x in ours],
        "pyglove_us_per_candidate_median": round(med_peer * 1e6, 1),
        "pyglove_us_per_candidate_all": [round(x * 1e6, 1) for x in peer],
        "speedup_pyglove_over_ours": round(med_peer / med_ours, 2),
        "target_ours_us": 1000, "target_speedup": 10,
        "ours_duplicate_rate_median": statistics.median(i["duplicates"] / n for i in infos),
        "ours_breakdown": detail["breakdown_us_per_candidate"],
        "ours_scaling": {"trials": scaling_n, "block": n // 2, "us_per_candidate": scaling,
                         "why": "store.finish and Search._finish look up waiting "
                                "duplicates with WHERE status='duplicate' AND duplicate_of=?, "
                                "which SQLite answers from the status index: a scan of all "
                                "duplicate rows per finished evaluation (no index on "
                                "duplicate_of)"},
        "adapter_pg_sample_us_per_candidate_median": round(statistics.median(adapter) * 1e6, 1),
        "adapter_candidates_per_rep": n // 2,
        "compared": (
            "ours: Search(RegularizedEvolution) with a synchronous in-process backend, FEC "
            "fingerprint and an on-disk SQLite run store, trivial fitness. PyGlove: pg.sample"
            "(program_space('dqn', 14), pg.evolution.regularized_evolution(P, T)) with the "
            "same fitness; its Uniform mutator mutates through the adapter's ProgramSpace."
            "random_dna(previous_dna), i.e. the same point mutation; no dedup, no store. "
            "adapter: our RegularizedEvolution driven through pg.sample (EvoDNAGenerator)."),
    }


# -- 2. parallel efficiency ------------------------------------------------------------------
def _spin(n: int) -> float:
    x = 0.0
    for i in range(n):
        x += (i & 7) * 1e-9
    return x


def calibrate_spin(target_cpu_s: float) -> int:
    n = 200_000
    while True:
        t = time.process_time()
        _spin(n)
        dt = time.process_time() - t
        if dt > 0.2:
            return int(n * target_cpu_s / dt)
        n *= 2


class BusyEvaluator:
    """About 1 s of CPU per evaluation; reports its own wall and CPU time."""

    def __init__(self, iterations: int) -> None:
        self.iterations = iterations

    def __call__(self, program: Program) -> dict:
        t, c = time.perf_counter(), time.process_time()
        _spin(self.iterations)
        return {"status": "ok", "fitness": trivial_fitness(program),
                "eval_wall": time.perf_counter() - t, "eval_cpu": time.process_time() - c}


def run_pool(workers: int, trials: int, iterations: int, tmp: Path, seed: int) -> dict:
    store = RunStore.create(tmp / f"par-{workers}-{seed}-{time.monotonic_ns()}.evo", {})
    algo = RandomSearch(SeedSpace("dqn", 14), seed=seed)
    with LocalPool(BusyEvaluator(iterations), workers=workers) as pool:
        start = time.perf_counter()
        progress = Search(algo, store, pool, trials).run()
        wall = time.perf_counter() - start
    results = [json.loads(r[0]) for r in store.db.execute(
        "SELECT result FROM trials WHERE status='done'")]
    store.close()
    return {"wall": wall, "evaluated": progress.evaluated,
            "eval_wall": sum(r["eval_wall"] for r in results),
            "eval_cpu": sum(r["eval_cpu"] for r in results)}


def bench_parallel(trials: int, reps: int, tmp: Path) -> dict:
    iterations = calibrate_spin(1.0)
    serial, parallel, efficiency, utilization = [], [], [], []
    for rep in range(reps):
        s = run_pool(1, trials, iterations, tmp, rep)
        p = run_pool(2, trials, iterations, tmp, rep)
        assert s["evaluated"] == p["evaluated"]
        serial.append(s)
        parallel.append(p)
        efficiency.append((s["wall"] / 2) / p["wall"])
        utilization.append(p["eval_wall"] / (2 * p["wall"]))
        print(f"  rep {rep}: serial {s['wall']:.1f} s, 2 workers {p['wall']:.1f} s, "
              f"efficiency {efficiency[-1]:.1%}, slot utilization {utilization[-1]:.1%}",
              flush=True)
    n_eval = serial[0]["evaluated"]
    return {
        "evaluations": n_eval, "reps": reps, "busy_loop_iterations": iterations,
        "eval_cpu_s_median": round(statistics.median(s["eval_cpu"] / n_eval for s in serial), 3),
        "serial_s_median": round(statistics.median(s["wall"] for s in serial), 2),
        "parallel_s_median": round(statistics.median(p["wall"] for p in parallel), 2),
        "efficiency_median": round(statistics.median(efficiency), 3),
        "efficiency_all": [round(e, 3) for e in efficiency],
        "slot_utilization_median": round(statistics.median(utilization), 3),
        "parallel_eval_wall_over_cpu": round(statistics.median(
            p["eval_wall"] / p["eval_cpu"] for p in parallel), 3),
        "target_efficiency": 0.85,
        "definition": ("efficiency = (serial wall / 2) / parallel wall for the same "
                       "candidates through Search + LocalPool with 1 and 2 workers; slot "
                       "utilization = sum of evaluation wall time / (2 x parallel wall); "
                       "parallel_eval_wall_over_cpu > 1 means the evaluations waited for a "
                       "CPU (shared machine)"),
    }


# -- 3. recovery ---------------------------------------------------------------------------------
DRIVER = textwrap.dedent("""
    import hashlib, os, sys, time
    sys.path.insert(0, {root!r})
    from evo.algorithms.base import SeedSpace
    from evo.algorithms.evolution import RegularizedEvolution
    from evo.search.loop import Search
    from evo.search.store import RunStore
    from evo.workers.base import LocalPool
    from graphs.core.equivalence import FEC
    from graphs.core.render import formula

    path, log, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fec = FEC()

    def evaluate(program):
        h = int(hashlib.blake2b(formula(program).encode(), digest_size=8).hexdigest(), 16)
        time.sleep(0.05 + (h % 51) / 1000)  # 50-100 ms
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, (fec(program) + "\\n").encode())
        os.close(fd)
        return {{"status": "ok", "fitness": sum(program.live) + (h % 1000) / 10_000}}

    if not os.path.exists(path):
        tmp = path + ".new"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(tmp + suffix):
                os.remove(tmp + suffix)
        RunStore.create(tmp, {{"trials": trials}}).close()
        os.replace(tmp, path)
    store = RunStore.open(path)
    algorithm = RegularizedEvolution(population_size=20, tournament_size=5,
                                     space=SeedSpace("dqn", 14), seed=0)
    with LocalPool(evaluate, workers=2) as pool:
        progress = Search(algorithm, store, pool, trials).run()
    print("finished", progress.trials, flush=True)
""")


def _store_counts(path: Path) -> dict:
    db = sqlite3.connect(path)
    try:
        q = lambda sql: db.execute(sql).fetchone()[0]
        return {
            "finished": q("SELECT COUNT(*) FROM trials WHERE status IN ('done','failed') OR "
                          "(status='duplicate' AND fitness IS NOT NULL)"),
            "recorded_evaluations": q("SELECT COUNT(*) FROM trials WHERE status IN "
                                      "('done','failed')"),
            "in_flight": q("SELECT COUNT(*) FROM trials WHERE status IN "
                           "('proposed','running')"),
        }
    finally:
        db.close()


def _group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def bench_recovery(kills: int, trials: int, tmp: Path, seed: int = 7) -> dict:
    driver = tmp / "driver.py"
    driver.write_text(DRIVER.format(root=str(ROOT)))
    path, log = tmp / "recovery.evo", tmp / "evaluations.log"
    cmd = [sys.executable, str(driver), str(path), str(log), str(trials)]
    rng = random.Random(seed)
    events = []
    wasted = 0
    warm = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)
    while not path.exists():  # the first start creates the store; kill after it has
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(warm.pid, signal.SIGKILL)
    warm.wait()
    for k in range(kills):
        before = _store_counts(path)
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)
        delay = rng.uniform(0.5, 2.0)
        time.sleep(delay)
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        while _group_alive(proc.pid):
            time.sleep(0.02)
        at_kill = _store_counts(path)
        logged = len(log.read_text().splitlines()) if log.exists() else 0
        redone = logged - at_kill["recorded_evaluations"] - wasted
        wasted = logged - at_kill["recorded_evaluations"]
        events.append({"kill": k + 1, "after_s": round(delay, 2),
                       "finished_before_restart": before["finished"],
                       "finished_at_kill": at_kill["finished"],
                       "in_flight_at_kill": at_kill["in_flight"],
                       "completed_evaluations_lost": redone})
        assert at_kill["finished"] >= before["finished"], "a kill lost finished trials"
    start = time.perf_counter()
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    end = _store_counts(path)
    db = sqlite3.connect(path)
    done_fps = [r[0] for r in db.execute("SELECT fingerprint FROM trials WHERE status='done'")]
    rows = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    logged = len(log.read_text().splitlines())
    return {
        "trials": trials, "kills": len(events), "events": events,
        "final_rows": rows, "final_finished": end["finished"],
        "none_lost": end["finished"] == trials == rows and
        all(e["finished_at_kill"] >= e["finished_before_restart"] for e in events),
        "evaluations_recorded_once": len(done_fps) == len(set(done_fps)),
        "evaluations_performed": logged, "evaluations_recorded": len(done_fps),
        "worst_redone_completed_evaluations_per_kill": max(
            e["completed_evaluations_lost"] for e in events),
        "worst_in_flight_trials_reissued_per_kill": max(e["in_flight_at_kill"] for e in events),
        "final_resume_to_finish_s": round(time.perf_counter() - start, 2),
        "integrity_check": integrity,
        "note": ("driver = Search(RegularizedEvolution(P=20, T=5), LocalPool(2 workers), "
                 "evaluations sleep 50-100 ms), SIGKILLed with its process group after "
                 "0.5-2 s each start. 'completed_evaluations_lost' = evaluations that "
                 "finished in a worker but were not yet recorded when the kill came; "
                 "'in_flight' trials (proposed/running) are re-issued on resume."),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and trials")
    parser.add_argument("--only", choices=("overhead", "parallel", "recovery"), nargs="*")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench" / "search.json"))
    args = parser.parse_args()
    only = set(args.only or ("overhead", "parallel", "recovery"))
    n, reps = (500, 3) if args.quick else (2000, 5)
    out = {
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "pyglove": pg.__version__,
                    "loadavg_at_start": list(os.getloadavg())},
        "note": "The machine is shared (other benchmarks run on both cores); ratios "
                "compare peers measured in alternation in the same run.",
    }
    print(f"command: {out['command']}", flush=True)
    cores = sorted(os.sched_getaffinity(0))
    out["machine"]["cores_available"] = cores
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmpdir:
        tmp = Path(tmpdir)
        if "overhead" in only:
            # Single-threaded: pinned to one core; the sections below get them all back.
            os.sched_setaffinity(0, {cores[-1]})
            print(f"engine overhead per candidate (pinned to core {cores[-1]}) ...", flush=True)
            out["overhead"] = bench_overhead(n, reps, 100, 10, tmp)
            out["overhead"]["pinned_to_core"] = cores[-1]
            os.sched_setaffinity(0, set(cores))
            o = out["overhead"]
            print(f"  ours {o['ours_us_per_candidate_median']} us, PyGlove "
                  f"{o['pyglove_us_per_candidate_median']} us: {o['speedup_pyglove_over_ours']}x"
                  f"\n  breakdown {o['ours_breakdown']}", flush=True)
        if "parallel" in only:
            if len(cores) < 2:
                print("warning: fewer than 2 cores available; efficiency is capped at 50%")
            print("parallel efficiency (2 workers, ~1 s CPU-bound evaluations) ...", flush=True)
            out["parallel"] = bench_parallel(10 if args.quick else 20, 1 if args.quick else 3,
                                             tmp)
        if "recovery" in only:
            print("recovery after SIGKILL ...", flush=True)
            out["recovery"] = bench_recovery(4 if args.quick else 10, 600, tmp)
            r = out["recovery"]
            print(f"  {r['kills']} kills, none lost: {r['none_lost']}, worst re-done "
                  f"{r['worst_redone_completed_evaluations_per_kill']} completed evaluations, "
                  f"{r['worst_in_flight_trials_reissued_per_kill']} in-flight trials",
                  flush=True)
    out["machine"]["loadavg_at_end"] = list(os.getloadavg())
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and args.only:  # keep the sections not re-run
        old = json.loads(path.read_text())
        old.update(out)
        out = old
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
