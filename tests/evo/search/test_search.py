"""The search loop end to end: local workers, the equivalence cache, failures, hurdles,
and resuming from the store."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from searchkit import SPACE, Evaluator, RecordingRE, check_consistent, rows

from evo.algorithms.base import Candidate, SearchAlgorithm
from evo.algorithms.evolution import RegularizedEvolution
from evo.search.loop import Progress, Search
from evo.search.progressive import ProgressiveHurdles
from evo.search.store import RunStore
from evo.workers.base import Backend, LocalPool, Outcome, Task, run_task


def test_end_to_end_with_two_local_workers(tmp_path):
    trials, pop = 200, 20
    ev = Evaluator(tmp_path / "evals.log")
    algo = RecordingRE(population_size=pop, tournament_size=5, space=SPACE, seed=0)
    store = RunStore.create(tmp_path / "run.evo", {"trials": trials})
    progress_calls: list[int] = []
    with LocalPool(ev, workers=2) as pool:
        search = Search(algo, store, pool, trials,
                        on_progress=lambda p: progress_calls.append(p.trials))
        p = search.run()
    counts = check_consistent(store, trials)
    assert counts["failed"] == 0 and counts["done"] > pop

    # Progress agrees with the store.
    assert isinstance(p, Progress) and p.trials == trials == p.target
    assert p.duplicates == counts["duplicate"] > 0 and p.evaluated == counts["done"]
    assert p.duplicate_rate == pytest.approx(counts["duplicate"] / trials)
    assert progress_calls == list(range(1, trials + 1))

    # Duplicates never reached the evaluator: one call per evaluated fingerprint.
    calls = ev.lines()
    assert len(calls) == counts["done"]
    done_fps = {r["fingerprint"] for r in rows(store) if r["status"] == "done"}
    assert Counter(fp for fp, _ in calls) == Counter(done_fps)
    assert all(scale == 1.0 for _, scale in calls)

    # Every trial, duplicates included, was observed once and entered the population.
    all_ids = [r["id"] for r in rows(store)]
    assert sorted(algo.observed) == all_ids
    dup_ids = {r["id"] for r in rows(store) if r["status"] == "duplicate"}
    assert dup_ids & algo.population_ids_seen
    assert len(algo.population) == pop

    # Selection works: the best is better than any initial (seed) program.
    fit = {r["id"]: r["fitness"] for r in rows(store)}
    seeds = [r for r in rows(store) if r["mutation"] == "seed"]
    assert len(seeds) == pop and all(r["parent"] is None for r in seeds)
    assert p.best_fitness == max(fit.values()) and fit[p.best_trial] == p.best_fitness
    assert p.best_fitness > max(r["fitness"] for r in seeds)
    final_mean = sum(m[1] for m in algo.population) / pop
    assert final_mean > sum(r["fitness"] for r in seeds) / pop
    # Lineage: children name an earlier parent and one generation more.
    by_id = {r["id"]: r for r in rows(store)}
    for r in by_id.values():
        if r["parent"] is not None:
            assert r["parent"] < r["id"]
            assert r["generation"] == by_id[r["parent"]]["generation"] + 1
    # Worker and timing columns are filled for evaluations.
    for r in by_id.values():
        if r["status"] == "done":
            assert r["worker"] in ("local-0", "local-1") and r["seconds"] >= 0
            assert r["attempts"] == 1


def test_failures_are_recorded_and_the_run_continues(tmp_path):
    trials = 120
    ev = Evaluator(tmp_path / "evals.log", fail_every=5, hurdle_every=7)
    algo = RecordingRE(population_size=15, tournament_size=4, space=SPACE, seed=1)
    store = RunStore.create(tmp_path / "run.evo", {})
    with LocalPool(ev, workers=2) as pool:
        p = Search(algo, store, pool, trials).run()
    counts = check_consistent(store, trials)
    failed = [r for r in rows(store) if r["status"] == "failed"]
    assert failed and counts["done"] > 0
    for r in failed:
        assert r["fitness"] == 0.0
        assert r["reason"].startswith("ValueError: unlucky program")
        assert json.loads(r["result"])["status"] == "error"
    assert p.failed == len(failed) and p.trials == trials
    # An error is not cached: no cache entry points at a failed trial (an equivalent
    # program that evaluated fine may have cached the fingerprint since).
    failed_ids = {r["id"] for r in failed}
    assert not any((store.fec_lookup(r["fingerprint"]) or (0, None))[1] in failed_ids
                   for r in failed)
    assert p.evaluated == counts["done"] + counts["failed"]
    cut = store.db.execute("SELECT COUNT(*) FROM trials WHERE json_extract(result, "
                           "'$.status')='hurdle'").fetchone()[0]
    assert cut > 0 and p.hurdle_cut == cut
    assert p.hurdle_rate == pytest.approx(cut / p.evaluated)
    assert sorted(algo.observed) == [r["id"] for r in rows(store)]  # failures observed too


def test_progressive_hurdles_give_the_strong_a_second_budget(tmp_path):
    trials = 80
    ev = Evaluator(tmp_path / "evals.log")
    hurdles = ProgressiveHurdles(increments=(0.5, 0.5), batch=5)
    algo = RegularizedEvolution(population_size=10, tournament_size=3, space=SPACE, seed=2)
    store = RunStore.create(tmp_path / "run.evo", {})
    with LocalPool(ev, workers=2) as pool:
        Search(algo, store, pool, trials, hurdles=hurdles).run()
    check_consistent(store, trials)
    done = [r for r in rows(store) if r["status"] == "done"]
    level1 = [r for r in done if r["level"] == 1]
    level0 = [r for r in done if r["level"] == 0]
    assert level1 and level0
    calls: dict[str, list[float]] = {}
    for fp, scale in ev.lines():
        calls.setdefault(fp, []).append(scale)
    for r in level1:
        assert calls[r["fingerprint"]] == [0.5, 1.0]
        assert json.loads(r["result"])["budget_scale"] == 1.0
        assert json.loads(r["result"])["level"] == 1
    for r in level0:
        assert calls[r["fingerprint"]] == [0.5]
        assert json.loads(r["result"])["budget_scale"] == 0.5
    saved = store.get("algorithm")["hurdles"]
    assert saved["hurdles"][0] is not None
    assert saved["finished_at"] == [len(done), len(level1)]


# -- resume ---------------------------------------------------------------------------------
class Interrupted(Exception):
    """Stands in for a kill of the driver."""


class InlineBackend(Backend):
    """Evaluates in-process when polled; can 'crash' on a chosen submit."""

    name = "inline"

    def __init__(self, evaluate, capacity: int = 2, crash_on=None) -> None:
        self.evaluate = evaluate
        self._capacity = capacity
        self.crash_on = crash_on
        self.queue: list[Task] = []
        self.submitted: list[Task] = []

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def running(self) -> int:
        return len(self.queue)

    def submit(self, task: Task) -> None:
        self.submitted.append(task)
        if self.crash_on is not None and self.crash_on(task):
            raise Interrupted(task.trial_id)
        self.queue.append(task)

    def poll(self, timeout: float) -> list[Outcome]:
        task = self.queue.pop(0)  # one at a time, the oldest first
        return [Outcome(task.trial_id, run_task(self.evaluate, task), "inline-0")]


def test_resume_reissues_in_flight_trials_and_finishes_each_once(tmp_path):
    trials = 90
    ev = Evaluator(tmp_path / "evals.log")
    path = tmp_path / "run.evo"

    def make_algo():
        return RegularizedEvolution(population_size=10, tournament_size=3, space=SPACE, seed=3)

    stopped_at: list[int] = []
    store = RunStore.create(path, {})
    with LocalPool(ev, workers=2) as pool, pytest.raises(Interrupted):

        def stop_with_work_in_flight(p: Progress) -> None:
            if p.trials >= 40 and pool.running:
                stopped_at.append(p.trials)
                raise Interrupted

        Search(make_algo(), store, pool, trials, on_progress=stop_with_work_in_flight).run()
    store.close()
    store = RunStore.open(path)
    assert 40 <= store.finished() == stopped_at[0] < trials - 10
    in_flight = [r["id"] for r in store.in_flight()]
    assert in_flight  # the workers were busy when the driver stopped
    n_rows = len(rows(store))
    saved = store.get("algorithm")["algorithm"]

    algo = make_algo()
    with LocalPool(ev, workers=2) as pool:
        p = Search(algo, store, pool, trials).run()
    assert p.trials == trials
    counts = check_consistent(store, trials)
    # The algorithm continued from its saved state, not from scratch.
    assert algo.proposed == saved["proposed"] + trials - n_rows
    for tid in in_flight:
        row = store.trial(tid)
        assert row["status"] in ("done", "failed") and row["attempts"] >= 1
    # Work re-done: at most the evaluations that were in flight at the stop.
    redone = len(ev.lines()) - counts["done"] - counts["failed"]
    assert 0 <= redone <= len(in_flight)


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    ev = Evaluator(tmp_path / "evals.log")
    store = RunStore.create(tmp_path / "run.evo", {})
    algo = RegularizedEvolution(population_size=5, tournament_size=2, space=SPACE, seed=4)
    Search(algo, store, InlineBackend(ev), 30).run()
    n_calls = len(ev.lines())
    before = rows(store)
    again = RegularizedEvolution(population_size=5, tournament_size=2, space=SPACE, seed=4)
    p = Search(again, store, InlineBackend(ev), 30).run()
    assert p.trials == 30 and rows(store) == before and len(ev.lines()) == n_calls
    assert again.state() == algo.state()


def test_resume_continues_a_promoted_trial_at_its_level(tmp_path):
    ev = Evaluator(tmp_path / "evals.log")
    path = tmp_path / "run.evo"

    def make():
        return (RegularizedEvolution(population_size=10, tournament_size=3, space=SPACE,
                                     seed=5),
                ProgressiveHurdles(increments=(0.5, 0.5), batch=1))

    algo, hurdles = make()
    store = RunStore.create(path, {})
    backend = InlineBackend(ev, crash_on=lambda t: t.budget_scale == 1.0)
    with pytest.raises(Interrupted) as stop:
        Search(algo, store, backend, 40, hurdles=hurdles).run()
    promoted = stop.value.args[0]
    finished_at = store.get("algorithm")["hurdles"]["finished_at"]
    store.close()

    store = RunStore.open(path)
    algo, hurdles = make()
    backend = InlineBackend(ev, crash_on=lambda t: t.trial_id == promoted)
    with pytest.raises(Interrupted):  # stop when the promoted trial is re-issued
        Search(algo, store, backend, 40, hurdles=hurdles).run()
    assert hurdles.finished_at == finished_at  # the hurdle state was restored
    assert backend.submitted[-1].budget_scale == 1.0


class Scripted(SearchAlgorithm):
    """Proposes a fixed list of candidates; remembers what it observed."""

    name = "scripted"

    def __init__(self, script: list[Candidate]) -> None:
        super().__init__(0)
        self.script = script
        self.observed: dict[int, Candidate] = {}

    def propose(self) -> Candidate:
        self.proposed += 1
        return self.script[self.proposed - 1]

    def observe(self, trial_id, candidate, fitness, result=None) -> None:
        self.observed[trial_id] = candidate


class CrashOnPoll(InlineBackend):
    def poll(self, timeout: float) -> list[Outcome]:
        raise Interrupted


def test_resume_keeps_the_lineage_of_a_waiting_duplicate(tmp_path):
    ev = Evaluator(tmp_path / "evals.log")
    a, b = SPACE(random.Random(0)), SPACE(random.Random(1))
    script = [Candidate(a, None, "seed", 0), Candidate(a, 1, "point n3: x -> y", 3),
              Candidate(b, None, "seed", 0)]
    path = tmp_path / "run.evo"
    store = RunStore.create(path, {})
    with pytest.raises(Interrupted):  # the driver dies before anything finished
        Search(Scripted(script), store, CrashOnPoll(ev), 3).run()
    assert store.trial(2)["status"] == "duplicate" and store.trial(2)["duplicate_of"] == 1
    store.close()
    store = RunStore.open(path)
    algo = Scripted(script)
    Search(algo, store, InlineBackend(ev), 3).run()
    assert store.trial(2)["fitness"] == store.trial(1)["fitness"]
    assert (algo.observed[2].generation, algo.observed[2].parent) == (3, 1)


class InBatches(SearchAlgorithm):
    """Proposes batches of 3 and waits until each batch is observed; stops after
    ``batches`` batches. Records the result dict of every observation."""

    uses_results = True

    def __init__(self, batches: int) -> None:
        super().__init__(0)
        self.batches = batches
        self.results: dict[int, dict | None] = {}

    def propose(self) -> Candidate | None:
        batch_full = self.proposed % 3 == 0 and len(self.results) < self.proposed
        if batch_full or self.proposed >= 3 * self.batches:
            return None
        self.max_open = max(getattr(self, "max_open", 0), self.proposed + 1 - len(self.results))
        return Candidate(SPACE(self._next()), mutation="seed")

    def observe(self, trial_id, candidate, fitness, result=None) -> None:
        self.results[trial_id] = result


def test_an_algorithm_can_wait_for_results_and_finish_early(tmp_path):
    ev = Evaluator(tmp_path / "evals.log")
    store = RunStore.create(tmp_path / "run.evo", {})
    algo = InBatches(batches=4)
    backend = InlineBackend(ev, capacity=5)
    p = Search(algo, store, backend, trials=100).run()
    # Never more than one batch in flight, and the run ends when the algorithm is done.
    assert p.trials == 12 < 100 and algo.max_open == 3
    assert all(r is not None and "fitness" in r for r in algo.results.values())
    # Duplicates observe the result of the evaluation they reuse.
    for r in rows(store):
        if r["status"] == "duplicate" and r["fitness"] is not None:
            original = algo.results[r["duplicate_of"]]
            assert algo.results[r["id"]] == original
