"""Batched search: proposals gathered into batches, one task per batch, every trial
recorded on its own (the path the population trainer takes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from searchkit import SPACE, BatchEvaluator, Evaluator, RecordingRE, check_consistent

from evo.search.loop import Search
from evo.search.store import RunStore
from evo.workers.base import LocalPool, Task, run_task
from graphs.core.equivalence import FEC
from graphs.core.fileformat import dumps, loads
from graphs.rl_loss.generation import seeded_program


def test_batches_form_run_on_one_worker_and_record_each_trial(tmp_path):
    trials = 120
    ev = BatchEvaluator(tmp_path / "evals.log", fail_every=17)
    algo = RecordingRE(population_size=20, tournament_size=5, space=SPACE, seed=0)
    store = RunStore.create(tmp_path / "run.evo", {"trials": trials})
    with LocalPool(ev, workers=2) as pool:
        Search(algo, store, pool, trials, batch_size=8).run()
    counts = check_consistent(store, trials)
    sizes = ev.batches()
    # Every evaluation ran once, in a batch or, for a lone candidate (the run's last, or
    # a duplicate re-issued after its twin failed: timing decides), as a plain task.
    evaluated = counts["done"] + counts["failed"]
    assert sum(sizes) + ev.plain() == evaluated == len(ev.lines())
    assert max(sizes) == 8 and len(sizes) < counts["done"]  # batched, not one by one
    assert sum(sizes) >= 0.8 * evaluated, (sizes, ev.plain())
    assert counts["failed"] > 0  # a failing member fails alone
    failed = [json.loads(r[0]) for r in store.db.execute(
        "SELECT result FROM trials WHERE status='failed'")]
    assert all("unlucky program" in r["reason"] for r in failed)
    assert sorted(algo.observed) == list(range(1, trials + 1))


def test_a_plain_evaluator_gets_a_batch_one_candidate_at_a_time(tmp_path):
    ev = Evaluator(tmp_path / "evals.log")
    members = [(i, dumps(seeded_program("dqn", 3, seed=i), compact=True)) for i in (1, 2, 3)]
    out = run_task(ev, Task(1, members[0][1], batch=members))
    assert [r["status"] for r in out["batch"]] == ["ok"] * 3
    assert len(ev.lines()) == 3


def test_a_bad_member_file_fails_alone(tmp_path):
    ev = BatchEvaluator(tmp_path / "evals.log")
    good = dumps(seeded_program("dqn", 3, seed=0), compact=True)
    out = run_task(ev, Task(1, good, batch=[(1, good), (2, "{not json"), (3, good)]))
    statuses = [r["status"] for r in out["batch"]]
    assert statuses == ["ok", "error", "ok"]
    assert ev.batches() == [2]


def test_a_killed_batched_run_resumes_without_losing_finished_trials(tmp_path):
    """Kill the driver mid-run; resume finishes every trial exactly once."""
    store_path = tmp_path / "run.evo"
    log = tmp_path / "evals.log"
    repo = Path(__file__).resolve().parents[3]
    helpers = repo / "tests" / "helpers"
    script = f"""
import sys, time
sys.path[:0] = [{str(repo)!r}, {str(helpers)!r}]
from evo.search.loop import Search
from evo.search.store import RunStore
from evo.workers.base import LocalPool
from searchkit import BatchEvaluator, SPACE, RecordingRE

class Slow(BatchEvaluator):
    def evaluate_batch(self, programs, budget_scale=1.0):
        time.sleep(0.3)
        return super().evaluate_batch(programs, budget_scale)

import os
path = {str(store_path)!r}
store = RunStore.open(path) if os.path.exists(path) else RunStore.create(path, {{"trials": 80}})
algo = RecordingRE(population_size=10, tournament_size=3, space=SPACE, seed=1)
with LocalPool(Slow({str(log)!r}), workers=2) as pool:
    Search(algo, store, pool, 80, batch_size=4).run()
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.5)
        if store_path.exists():
            try:
                s = RunStore.open(store_path)
                done = s.counts()["done"]
                s.close()
            except Exception:
                continue
            if done >= 10:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    s = RunStore.open(store_path)
    before = {r[0]: r[1] for r in s.db.execute(
        "SELECT id, fitness FROM trials WHERE status='done'")}
    s.close()
    assert before
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120,
                   env=dict(os.environ))
    s = RunStore.open(store_path)
    check_consistent(s, 80)
    after = {r[0]: r[1] for r in s.db.execute("SELECT id, fitness FROM trials")}
    assert all(after[tid] == fit for tid, fit in before.items())  # nothing finished was lost
    s.close()


class SlowEvaluator(BatchEvaluator):
    """Each evaluation takes a fixed wall-clock time."""

    def __call__(self, program, budget_scale: float = 1.0) -> dict:
        time.sleep(0.05)
        return super().__call__(program, budget_scale)


def test_hours_stops_proposing_finishes_in_flight_and_resume_continues(tmp_path):
    trials = 400
    ev = SlowEvaluator(tmp_path / "evals.log")
    store = RunStore.create(tmp_path / "run.evo", {"trials": trials})
    algo = RecordingRE(population_size=20, tournament_size=5, space=SPACE, seed=0)
    t0 = time.time()
    with LocalPool(ev, workers=2) as pool:
        progress = Search(algo, store, pool, trials, batch_size=4, hours=1.5 / 3600).run()
    assert time.time() - t0 < 30
    assert 0 < progress.trials < trials  # stopped early ...
    counts = store.counts()
    assert counts["proposed"] == counts["running"] == 0  # ... with nothing left in flight
    assert store.finished() == progress.trials
    algo = RecordingRE(population_size=20, tournament_size=5, space=SPACE, seed=0)
    with LocalPool(ev, workers=2) as pool:  # resumable up to the run's own target
        Search(algo, store, pool, trials, batch_size=4).run()
    check_consistent(store, trials)


def test_fec_off_trains_every_proposal(tmp_path):
    from evo.rl.problem import NoFEC

    trials = 150
    ev = BatchEvaluator(tmp_path / "evals.log")
    store = RunStore.create(tmp_path / "run.evo", {"trials": trials})
    algo = RecordingRE(population_size=10, tournament_size=5, space=SPACE, seed=0)
    with LocalPool(ev, workers=2) as pool:
        Search(algo, store, pool, trials, fec=NoFEC(), batch_size=8).run()
    counts = store.counts()
    assert counts["duplicate"] == 0 and counts["done"] == trials == len(ev.lines())
    fec = FEC()  # what the default check would have skipped was trained again
    fps = [fec(loads(r[0])) for r in store.db.execute("SELECT program FROM trials")]
    assert len(set(fps)) < trials


def test_hours_must_be_positive():
    import pytest

    with pytest.raises(ValueError, match="positive number of hours"):
        Search(None, None, None, 10, hours=0)


class ScaleLoggingEvaluator(BatchEvaluator):
    """Logs each batch's size and budget scale."""

    def evaluate_batch(self, programs, budget_scale: float = 1.0) -> list:
        with open(self.log + ".scales", "a") as f:
            f.write(f"{len(programs)} {budget_scale}\n")
        return super().evaluate_batch(programs, budget_scale)


def test_progressive_hurdles_batch_each_level_and_respect_capacity(tmp_path):
    from evo.search.progressive import ProgressiveHurdles

    trials = 80
    ev = ScaleLoggingEvaluator(tmp_path / "evals.log")
    algo = RecordingRE(population_size=10, tournament_size=3, space=SPACE, seed=0)
    store = RunStore.create(tmp_path / "run.evo", {"trials": trials})
    with LocalPool(ev, workers=2) as pool:
        search = Search(algo, store, pool, trials, batch_size=4,
                        hurdles=ProgressiveHurdles([0.5, 0.5], batch=10))
        search.run()
    check_consistent(store, trials)
    logged = [line.split() for line in Path(ev.log + ".scales").read_text().splitlines()]
    sizes = {float(scale): [] for _, scale in logged}
    for n, scale in logged:
        sizes[float(scale)].append(int(n))
    assert max(sizes[0.5]) == 4  # level 0 is batched (it went one by one, unbounded)
    assert 1.0 in sizes  # promoted candidates trained again at the full budget
    scales = {float(s) for _, s in ev.lines()}
    assert scales == {0.5, 1.0}
