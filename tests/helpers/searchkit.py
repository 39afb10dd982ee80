"""Shared by the search-loop tests (tests/evo/search/): a deterministic test evaluator
(with a batching variant), a recording regularized evolution, and the invariants every
finished run store satisfies. Importable by worker processes (tests/helpers/ is on sys.path)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from evo.algorithms.base import SeedSpace
from evo.algorithms.evolution import RegularizedEvolution
from evo.results import CACHEABLE
from evo.search.store import RunStore
from graphs.core.equivalence import FEC
from graphs.core.render import formula

SPACE = SeedSpace("dqn", 8)


def noise(program) -> int:
    return int(hashlib.blake2b(formula(program).encode(), digest_size=8).hexdigest(), 16)


class Evaluator:
    """Fitness = live nodes + a little deterministic noise; one log line per call
    (written in the worker, append-only): fingerprint and budget scale."""

    def __init__(self, log: Path, fail_every: int = 0, hurdle_every: int = 0) -> None:
        self.log = str(log)
        self.fail_every = fail_every
        self.hurdle_every = hurdle_every
        self.fec = FEC()

    def __call__(self, program, budget_scale: float = 1.0) -> dict:
        h = noise(program)
        with open(self.log, "a") as f:
            f.write(f"{self.fec(program)} {budget_scale}\n")
        if self.fail_every and h % self.fail_every == 0:
            raise ValueError(f"unlucky program {h % 1000}")
        fitness = sum(program.live) + (h % 1000) / 10_000
        status = "hurdle" if self.hurdle_every and h % self.hurdle_every == 1 else "ok"
        return {"status": status, "fitness": fitness, "budget_scale": budget_scale}

    def lines(self) -> list[tuple[str, float]]:
        if not Path(self.log).exists():
            return []
        return [(fp, float(s)) for fp, s in
                (line.split() for line in Path(self.log).read_text().splitlines())]


class RecordingRE(RegularizedEvolution):
    """Regularized evolution that remembers every trial id it observed."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.observed: list[int] = []
        self.population_ids_seen: set[int] = set()

    def observe(self, trial_id, candidate, fitness, result=None) -> None:
        super().observe(trial_id, candidate, fitness, result)
        self.observed.append(trial_id)
        self.population_ids_seen.update(m[0] for m in self.population)


def rows(store: RunStore) -> list[dict]:
    return [dict(r) for r in store.db.execute("SELECT * FROM trials ORDER BY id")]


def check_consistent(store: RunStore, trials: int) -> dict[str, int]:
    """Invariants every finished run satisfies; returns the status counts."""
    all_rows = rows(store)
    assert len(all_rows) == trials
    assert all(r["fitness"] is not None for r in all_rows)
    counts = store.counts()
    assert counts["proposed"] == counts["running"] == 0
    assert counts["done"] + counts["failed"] + counts["duplicate"] == trials
    by_id = {r["id"]: r for r in all_rows}
    # Results that belong to the program (not errors or timeouts, which may be the
    # machine's fault) are cached: such a fingerprint is evaluated once, and every repeat
    # is a duplicate.
    cached = [r for r in all_rows if r["status"] in ("done", "failed")
              and json.loads(r["result"])["status"] in CACHEABLE]
    assert len({r["fingerprint"] for r in cached}) == len(cached)
    for r in all_rows:
        if r["status"] == "duplicate":
            original = by_id[r["duplicate_of"]]
            assert original in cached
            assert original["fingerprint"] == r["fingerprint"]
            assert r["fitness"] == original["fitness"]
    hits = dict(store.db.execute("SELECT fingerprint, hits FROM fec").fetchall())
    assert set(hits) == {r["fingerprint"] for r in cached}
    assert sum(hits.values()) == counts["duplicate"]
    state = store.get("algorithm")["algorithm"]
    for tid, fit, _ in state["population"]:
        assert by_id[tid]["fitness"] == pytest.approx(fit)
    return counts


class BatchEvaluator(Evaluator):
    """The test evaluator, with ``evaluate_batch``: logs each batch's size, and each
    candidate evaluated on its own (a lone candidate goes as a plain task)."""

    batching = False  # inside evaluate_batch (a worker runs one task at a time)

    def __call__(self, program, budget_scale: float = 1.0) -> dict:
        if not self.batching:
            with open(self.log + ".plain", "a") as f:
                f.write("1\n")
        return super().__call__(program, budget_scale)

    def evaluate_batch(self, programs, budget_scale: float = 1.0) -> list:
        with open(self.log + ".batches", "a") as f:
            f.write(f"{len(programs)}\n")
        out = []
        self.batching = True
        try:
            for p in programs:
                try:
                    out.append(self(p, budget_scale))
                except ValueError as err:  # as an evaluator would: this one fails, not all
                    out.append({"status": "error", "fitness": 0.0, "reason": str(err)})
        finally:
            self.batching = False
        return out

    def batches(self) -> list[int]:
        path = Path(self.log + ".batches")
        return [int(x) for x in path.read_text().split()] if path.exists() else []

    def plain(self) -> int:
        """Candidates evaluated outside a batch."""
        path = Path(self.log + ".plain")
        return len(path.read_text().split()) if path.exists() else 0
