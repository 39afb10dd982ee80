"""The search loop: propose, deduplicate, evaluate, select — durably.

It knows algorithms, evaluators and workers only through their interfaces
(:class:`~evo.algorithms.base.SearchAlgorithm`, a callable evaluator, and
:class:`~evo.workers.base.Backend`), and records everything in a
:class:`~evo.search.store.RunStore`, from which a killed run resumes where it stopped.

Every finished evaluation is committed at once, in one transaction with the
proposals made since the previous commit: a proposal lost to a crash before that
is simply proposed again on resume (proposals are deterministic given the saved
algorithm state and the proposal count), so no finished work is ever lost.

Each proposal is fingerprinted first. A fingerprint already evaluated reuses the
cached fitness without training (the child still enters the population, as in the
paper); one currently being evaluated waits for that evaluation.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from evo.algorithms.base import Candidate, SearchAlgorithm
from evo.results import Result, Status
from evo.search.progressive import ProgressiveHurdles
from evo.search.store import Encoded, RunStore
from evo.workers.base import Backend, Outcome, Task
from graphs.core.equivalence import FEC
from graphs.core.fileformat import dumps, loads


@dataclass
class Progress:
    """Live and final statistics of a run."""

    trials: int = 0  # candidates with a fitness (evaluated, failed or duplicate)
    target: int = 0
    evaluated: int = 0
    duplicates: int = 0
    hurdle_cut: int = 0
    failed: int = 0
    best_fitness: float = float("-inf")
    best_trial: int | None = None
    started: float = 0.0

    @property
    def duplicate_rate(self) -> float:
        return self.duplicates / self.trials if self.trials else 0.0

    @property
    def hurdle_rate(self) -> float:
        """Share of evaluated (non-duplicate) candidates cut by the hurdle."""
        return self.hurdle_cut / self.evaluated if self.evaluated else 0.0


class Search:
    """A durable, asynchronous, steady-state search.

    Args:
        algorithm: proposes candidates and learns from their fitness.
        store: the run store (new, or an existing one to resume).
        backend: where evaluations run (local pool or Ray).
        trials: total number of candidates (including duplicates) to finish.
        fec: fingerprints programs (training mode by default).
        hurdles: optional Progressive Dynamic Hurdles.
        on_progress: called after every finished trial with a :class:`Progress`.
        batch_size: candidates per worker task. Proposals that need an evaluation
            (not duplicates) are gathered into batches of up to this many, and each
            batch goes to one worker, where a batching evaluator (the population
            trainer) trains them together; every trial is still recorded on its own.
        hours: stop proposing after this many hours of wall-clock time in this session,
            finish what is in flight, and return (the run stays resumable). Runs of
            equal ``hours`` on the same dedicated core get equal compute.
    """

    def __init__(self, algorithm: SearchAlgorithm, store: RunStore, backend: Backend,
                 trials: int, fec: FEC | None = None,
                 hurdles: ProgressiveHurdles | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 batch_size: int = 1, hours: float | None = None) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size = {batch_size!r}: must be a positive integer")
        if hours is not None and not (isinstance(hours, (int, float)) and 0 < hours < 1e6):
            raise ValueError(f"hours = {hours!r}: must be a positive number of hours")
        self.batch_size = batch_size
        self.hours = hours
        # The next batches, by budget scale: (trial id, program) pairs. Progressive
        # hurdles train each level's candidates at that level's budget, so a batch
        # holds one level.
        self.forming: dict[float, list[tuple[int, str]]] = {}
        self.batches: dict[int, list[int]] = {}  # batch task id -> its trials, in order
        self.algorithm = algorithm
        self.store = store
        self.backend = backend
        self.target = trials
        self.fec = fec or FEC()
        self.hurdles = hurdles
        self.on_progress = on_progress
        self.candidates: dict[int, Candidate] = {}
        self.fingerprints: dict[int, str] = {}
        self.levels: dict[int, int] = {}
        self.pending: dict[str, int] = {}  # fingerprint -> in-flight trial
        self.waiters: dict[int, list[int]] = {}  # in-flight trial -> duplicates waiting for it
        self.progress = Progress(target=trials)

    # -- state -----------------------------------------------------------------------------
    def _state(self) -> Encoded:
        """The state to save with every trial, as JSON."""
        text = '{"algorithm": ' + self.algorithm.state_json()
        if self.hurdles is not None:
            text += ', "hurdles": ' + json.dumps(self.hurdles.state())
        return Encoded(text + "}")

    def _resume(self) -> None:
        saved = self.store.get("algorithm")
        if saved:
            ids = [int(m[0]) for m in saved["algorithm"].get("population", [])]
            self.algorithm.restore(saved["algorithm"], self.store.programs(ids))
            if self.hurdles is not None and "hurdles" in saved:
                self.hurdles.restore(saved["hurdles"])
        self.algorithm.proposed = self.store.proposals()
        for row in self.store.in_flight():
            cand = Candidate(loads(row["program"], check=False), row["parent"],
                             row["mutation"] or "", row["generation"])
            self._dispatch(row["id"], cand, row["fingerprint"], row["level"])
        self._flush()
        for tid, waits_for in self.store.waiting_duplicates():
            self.waiters.setdefault(waits_for, []).append(tid)
        self._load_progress()

    def _load_progress(self) -> None:
        started = self.progress.started  # rates are per session, not since the first trial
        self.progress = store_progress(self.store, self.target)
        self.progress.started = started

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> Progress:
        """Run (or resume) until ``trials`` candidates have finished."""
        self.progress.started = time.time()
        self.store.defer_commits = True
        try:
            return self._run()
        finally:
            self.store.commit()
            self.store.defer_commits = False

    def _run(self) -> Progress:
        self._resume()
        proposed = self.store.proposals()
        deadline = None if self.hours is None else self.progress.started + self.hours * 3600
        while self.progress.trials < self.target:
            if deadline is not None and time.time() >= deadline and proposed < self.target:
                self.target = self.progress.target = proposed  # finish what is in flight
                continue
            waiting = False  # the algorithm has nothing to propose until results come in
            while self.backend.running < self.backend.capacity and proposed < self.target:
                # One batch: proposals until batch_size of them need an evaluation.
                while self._forming() < self.batch_size and proposed < self.target:
                    if not self._propose():
                        waiting = True
                        break
                    proposed += 1
                self._flush()
                if waiting:
                    break
            if self.progress.trials >= self.target:
                break
            if not self.backend.running:
                if waiting:  # nothing in flight and nothing to propose: the algorithm is done
                    break
                if proposed >= self.target and self.progress.trials < self.target:
                    raise RuntimeError("nothing in flight but the run is unfinished")
                continue
            if self.store.uncommitted_for > 0.5:  # let readers see proposals in flight
                self.store.commit()
            for outcome in self.backend.poll(timeout=1.0):
                self._finish(outcome)
        return self.progress

    def _propose(self) -> bool:
        """Propose one candidate; ``False`` if the algorithm has none to give now."""
        cand = self.algorithm.propose()
        if cand is None:
            return False
        fp = self.fec(cand.program)
        text = ""  # rendered when read (status, export): most candidates are never shown
        cached = self.store.fec_lookup(fp)
        if cached is not None:
            fitness, original = cached
            result = self.store.result(original) if self.algorithm.uses_results else None

            def observed(tid: int) -> dict:
                self.algorithm.observe(tid, cand, fitness, result)
                return self._state()

            tid = self.store.add_trial(cand.program, fp, text, cand.parent, cand.mutation,
                                       cand.generation, observed, duplicate_of=original,
                                       fitness=fitness)
            self._count(tid, fitness, duplicate=True)
            return True
        waiting_for = self.pending.get(fp)
        # Only the proposal count changed, and that is the number of trial rows.
        tid = self.store.add_trial(
            cand.program, fp, text, cand.parent, cand.mutation, cand.generation, None,
            duplicate_of=waiting_for, worker=None if waiting_for else self.backend.name)
        if waiting_for is not None:
            self.candidates[tid] = cand
            self.waiters.setdefault(waiting_for, []).append(tid)
            return True
        self._dispatch(tid, cand, fp, 0, started=True)
        return True

    def _dispatch(self, tid: int, cand: Candidate, fp: str, level: int,
                  started: bool = False) -> None:
        self.candidates[tid] = cand
        self.fingerprints[tid] = fp
        self.levels[tid] = level
        self.pending.setdefault(fp, tid)
        scale = self.hurdles.budget_scale(level) if self.hurdles is not None else 1.0
        if not started:
            self.store.start(tid, self.backend.name)
        text = dumps(cand.program, compact=True)
        self.forming.setdefault(scale, []).append((tid, text))  # submitted by _flush

    def _forming(self) -> int:
        return sum(len(members) for members in self.forming.values())

    def _flush(self) -> None:
        """Submit the forming batches, one task per budget scale (a lone candidate as a
        plain task)."""
        forming, self.forming = self.forming, {}
        for scale, members in forming.items():
            if len(members) == 1:
                self.backend.submit(Task(members[0][0], members[0][1], scale))
            elif members:
                self.batches[members[0][0]] = [tid for tid, _ in members]
                self.backend.submit(Task(members[0][0], members[0][1], scale, batch=members))

    def _finish(self, outcome: Outcome) -> None:
        tids = self.batches.pop(outcome.trial_id, None)
        if tids is not None:  # a batch: each member is finished on its own
            results = outcome.result.get("batch") if isinstance(outcome.result, dict) else None
            if not isinstance(results, list) or len(results) != len(tids):
                # the whole task failed (a killed worker, a timeout): so did each member
                results = [dict(outcome.result) for _ in tids]
            for tid, result in zip(tids, results):
                self._finish_one(Outcome(tid, result, outcome.worker, outcome.retried))
        else:
            self._finish_one(outcome)
        self._flush()  # duplicates re-issued after a failure

    def _finish_one(self, outcome: Outcome) -> None:
        tid = outcome.trial_id
        cand = self.candidates[tid]
        # Any backend's result: a non-finite fitness fails here, before the algorithm
        # or the store sees it.
        result = Result.coerce(outcome.result)
        ok = result.scored
        fitness = result.counted_fitness
        level = self.levels.get(tid, 0)
        result.data["level"] = level
        if ok and self.hurdles is not None:
            population = [(f, lv) for f, lv in self._population_levels()]
            if self.hurdles.after(level, fitness, population):
                self.levels[tid] = level + 1
                self.store.promote(tid, level + 1, self._state())
                self.store.commit()
                scale = self.hurdles.budget_scale(level + 1)  # batched with its level by _flush
                self.forming.setdefault(scale, []).append((tid, dumps(cand.program,
                                                                      compact=True)))
                return
        self.algorithm.observe(tid, cand, fitness, result)
        waiting = self.waiters.pop(tid, []) if result.cacheable else []
        for wid in waiting:
            self.algorithm.observe(wid, self._candidate(wid, pop=True), fitness, result)
        self.store.finish(tid, result, self._state(), outcome.worker, waiting=waiting)
        fp = self.fingerprints.pop(tid, "")
        self.pending.pop(fp, None)
        self.candidates.pop(tid, None)
        self.levels.pop(tid, None)
        if not result.cacheable:
            others = self.waiters.pop(tid, [])
            first = self.store.reissue_waiting(tid)
            if first is not None:  # the waiting duplicates get an evaluation of their own
                if others[1:]:
                    self.waiters[first] = others[1:]
                self._dispatch(first, self._candidate(first, pop=True), fp, 0)
        # A finished evaluation is durable at once (with the proposals before it).
        self.store.commit()
        self._count(tid, fitness, duplicate=False, result=result)
        for wid in waiting:
            self._count(wid, fitness, duplicate=True)

    def _candidate(self, tid: int, pop: bool = False) -> Candidate:
        """The candidate of trial ``tid``, from memory or (after a resume) the store."""
        cand = self.candidates.pop(tid, None) if pop else self.candidates.get(tid)
        if cand is None:
            row = self.store.trial(tid)
            cand = Candidate(loads(row["program"], check=False), row["parent"],
                             row["mutation"] or "", row["generation"])
        return cand

    def _population_levels(self) -> list[tuple[float, int]]:
        pop = getattr(self.algorithm, "population", [])
        ids = [m[0] for m in pop]
        if not ids:
            return []
        levels = self.store.levels(ids)
        return [(m[1], levels.get(m[0], 0)) for m in pop]

    def _count(self, tid: int, fitness: float, duplicate: bool,
               result: Result | None = None) -> None:
        p = self.progress
        p.trials += 1
        if duplicate:
            p.duplicates += 1
        else:
            p.evaluated += 1
            status = result.status if result is not None else None
            if status == Status.HURDLE:
                p.hurdle_cut += 1
            elif status not in (Status.OK, None):
                p.failed += 1
        if fitness > p.best_fitness:
            p.best_fitness, p.best_trial = fitness, tid
        if self.on_progress is not None:
            self.on_progress(p)


def store_progress(store: RunStore, target: int | None = None) -> Progress:
    """A run's statistics, counted from its store (for resuming and for readers);
    ``target`` defaults to the trials its config asks for."""
    if target is None:
        try:
            target = int(store.config["run"]["trials"])
        except (KeyError, TypeError, ValueError):
            target = 0
    s = store.statistics()
    p = Progress(target=target, trials=s["finished"], evaluated=s["evaluated"],
                 duplicates=s["duplicates"], hurdle_cut=s["hurdle_cut"], failed=s["failed"],
                 started=s["started"])
    if s["best"] is not None:
        p.best_fitness, p.best_trial = s["best"]
    return p


def print_progress(p: Progress, stream=sys.stderr) -> None:
    """A one-line summary (used when no terminal progress bar is shown)."""
    print(f"{p.trials}/{p.target} trials, best {p.best_fitness:.3f} (trial {p.best_trial}), "
          f"duplicates {p.duplicate_rate:.1%}, hurdle cut {p.hurdle_rate:.1%}, "
          f"failed {p.failed}", file=stream)
