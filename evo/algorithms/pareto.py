"""Multi-objective search over (accuracy, cost): Pareto fronts, hypervolume, NSGA-II.

The functions work on an ``(n, m)`` array of objectives that are all *minimized*
(pass ``-accuracy``); :func:`objectives` builds it from accuracies and costs.

* :func:`nondominated_ranks`: front index of every point (0 = non-dominated),
  O(n log n) for two objectives, O(m n^2) vectorized otherwise.
* :func:`crowding_distance`: NSGA-II's diversity measure within each front.
* :func:`hypervolume`: the exact area that a set of (accuracy, cost) points
  dominates up to a reference point (higher is better).
* :class:`ParetoEvolution`: a :class:`~evo.algorithms.base.SearchAlgorithm` with
  NSGA-II selection (Deb et al., 2002), steady state like regularized evolution:
  each proposal mutates the winner of a binary tournament by (front, crowding),
  and each observed child joins the population; above ``population_size`` the
  worst member (last front, most crowded) leaves (``survival="nsga2"``, elitist,
  a (mu+1) NSGA-II) or the oldest one does (``survival="aging"``).

Objectives come from the evaluator's result: ``result["objectives"] =
{"accuracy": ..., "latency_ms": ...}`` (the cost key is configurable, e.g.
``"macs"``). Failed evaluations (no objectives, or non-finite ones) do not join
the population.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evo.algorithms.base import Candidate, SearchAlgorithm
from evo.checks import choice
from evo.errors import ConfigError
from evo.results import scored
from graphs.core.program import Program

SURVIVALS = ("nsga2", "aging")


# -- fronts --------------------------------------------------------------------------------
def objectives(accuracy: Sequence[float] | np.ndarray,
               cost: Sequence[float] | np.ndarray) -> np.ndarray:
    """The ``(n, 2)`` minimization array ``[-accuracy, cost]``."""
    acc = np.asarray(accuracy, dtype=np.float64).reshape(-1)
    c = np.asarray(cost, dtype=np.float64).reshape(-1)
    if acc.shape != c.shape:
        raise ValueError(f"{acc.size} accuracies but {c.size} costs")
    return np.stack([-acc, c], axis=1)


def _check(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    f = np.asarray(points, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"objectives must be an (n, m) array, got shape {f.shape}")
    if np.isnan(f).any():
        raise ValueError("objectives contain NaN; drop failed evaluations first")
    return f


def nondominated_ranks(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """The front of every point (0: non-dominated; k: dominated only by fronts < k).

    ``points`` is ``(n, m)``, every objective minimized. A point dominates another
    if it is no worse in every objective and better in at least one; identical
    points share a front.
    """
    f = _check(points)
    n, m = f.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if m == 2:
        return _ranks_2d(f)
    return _ranks_nd(f)


def _ranks_2d(f: np.ndarray) -> np.ndarray:
    # Sweep in (f0, f1) order: a point joins the first front whose latest member (the one
    # with the lowest f1 so far) does not dominate it. Those f1 values never decrease
    # with the front index, so the front is found by bisection.
    order = np.lexsort((f[:, 1], f[:, 0]))
    ranks = np.empty(len(f), dtype=np.int64)
    last_f1: list[float] = []  # per front: f1 of its latest member
    last_f0: list[float] = []
    for i in order:
        x0, x1 = f[i, 0], f[i, 1]
        k = bisect.bisect_right(last_f1, x1)
        if k and last_f1[k - 1] == x1 and last_f0[k - 1] == x0:
            k -= 1  # identical to that front's latest member: same front
        if k == len(last_f1):
            last_f1.append(x1)
            last_f0.append(x0)
        else:
            last_f1[k], last_f0[k] = x1, x0
        ranks[i] = k
    return ranks


def _ranks_nd(f: np.ndarray) -> np.ndarray:
    le = (f[:, None, :] <= f[None, :, :]).all(axis=2)
    lt = (f[:, None, :] < f[None, :, :]).any(axis=2)
    dominates = le & lt  # [i, j]: i dominates j
    count = dominates.sum(axis=0)
    ranks = np.full(len(f), -1, dtype=np.int64)
    rank = 0
    current = np.flatnonzero(count == 0)
    while current.size:
        ranks[current] = rank
        count = count - dominates[current].sum(axis=0)
        count[ranks >= 0] = -1
        current = np.flatnonzero(count == 0)
        rank += 1
    return ranks


def crowding_distance(points: np.ndarray | Sequence[Sequence[float]],
                      ranks: np.ndarray | None = None) -> np.ndarray:
    """NSGA-II crowding distance of every point within its front.

    The extremes of each objective get ``inf``; an interior point gets the sum over
    objectives of the gap between its neighbours, divided by that front's range.
    """
    f = _check(points)
    if ranks is None:
        ranks = nondominated_ranks(f)
    dist = np.zeros(len(f))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        if len(members) <= 2:
            dist[members] = math.inf
            continue
        for j in range(f.shape[1]):
            values = f[members, j]
            order = np.argsort(values, kind="stable")
            sorted_members, sorted_values = members[order], values[order]
            span = sorted_values[-1] - sorted_values[0]
            dist[sorted_members[0]] = dist[sorted_members[-1]] = math.inf
            if span > 0 and np.isfinite(span):
                gaps = (sorted_values[2:] - sorted_values[:-2]) / span
                dist[sorted_members[1:-1]] += gaps
    return dist


def pareto_front(accuracy: Sequence[float] | np.ndarray,
                 cost: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices of the non-dominated (accuracy max, cost min) points, by cost."""
    f = objectives(accuracy, cost)
    front = np.flatnonzero(nondominated_ranks(f) == 0)
    return front[np.lexsort((f[front, 0], f[front, 1]))]


def hypervolume(accuracy: Sequence[float] | np.ndarray, cost: Sequence[float] | np.ndarray,
                reference: tuple[float, float]) -> float:
    """Exact area dominated by the (accuracy max, cost min) points up to ``reference``.

    ``reference = (accuracy_ref, cost_ref)``: the worst corner (e.g. accuracy 0 and
    the largest acceptable cost). Points no better than the reference in both
    objectives contribute nothing.
    """
    f = objectives(accuracy, cost)
    ref = np.array([-float(reference[0]), float(reference[1])])
    if not np.isfinite(ref).all():
        raise ValueError(f"reference point {reference!r} must be finite")
    f = f[np.isfinite(f).all(axis=1)]
    f = f[(f[:, 0] < ref[0]) & (f[:, 1] < ref[1])]
    if not len(f):
        return 0.0
    f = f[np.lexsort((f[:, 1], f[:, 0]))]
    volume, best1 = 0.0, ref[1]
    # Sweep by increasing f0; each point that improves f1 adds a slab up to the next f0.
    xs = np.append(f[1:, 0], ref[0])
    for (x0, x1), nxt in zip(f, xs):
        best1 = min(best1, x1)
        volume += (nxt - x0) * (ref[1] - best1)
    return float(volume)


# -- the algorithm ---------------------------------------------------------------------------
class ParetoEvolution(SearchAlgorithm):
    """NSGA-II-style steady-state evolution on (accuracy, cost).

    Args:
        space: an architecture space with ``sample(rng)`` and ``mutate(program, rng)``
            (the :class:`graphs.arch.ops.ArchSpace` protocol).
        population_size: members kept (the first this many proposals are samples).
        survival: ``"nsga2"`` (drop the worst by front and crowding) or ``"aging"``
            (drop the oldest, as regularized evolution does).
        cost: the cost key of ``result["objectives"]`` (``"latency_ms"`` or ``"macs"``).
        seed: proposals are deterministic given the seed and the observations.
    """

    name = "pareto"
    uses_results = True  # objectives come from the result dict, duplicates' included

    def __init__(self, space: Any, population_size: int = 50, survival: str = "nsga2",
                 cost: str = "latency_ms", seed: int = 0) -> None:
        super().__init__(seed)
        if not (callable(getattr(space, "sample", None))
                and callable(getattr(space, "mutate", None))):
            raise ConfigError(f"search space {space!r}: the Pareto search needs an "
                              "architecture space with sample(rng) and mutate(program, rng)")
        if (isinstance(population_size, bool) or not isinstance(population_size, int)
                or population_size < 2):
            raise ConfigError(f"population_size = {population_size!r}: must be an integer "
                              ">= 2 (binary tournaments)")
        if survival not in SURVIVALS:
            raise ConfigError(f"survival = {survival!r}: must be one of {', '.join(SURVIVALS)}")
        if not isinstance(cost, str) or not cost:
            raise ConfigError(f"cost = {cost!r}: must be the name of an objective, e.g. "
                              "'latency_ms' or 'macs'")
        self.space = space
        self.population_size = population_size
        self.survival = survival
        self.cost = cost
        # (trial id, accuracy, cost, generation, program), oldest first
        self.population: list[tuple[int, float, float, int, Program]] = []
        self._ranking: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return (f"ParetoEvolution(P={self.population_size}, survival={self.survival}, "
                f"cost={self.cost}, {self.space!r})")

    # -- selection ------------------------------------------------------------------------
    def _points(self) -> np.ndarray:
        return objectives([m[1] for m in self.population], [m[2] for m in self.population])

    def ranking(self) -> tuple[np.ndarray, np.ndarray]:
        """Front index and crowding distance of every population member."""
        if self._ranking is None:
            f = self._points()
            ranks = nondominated_ranks(f)
            self._ranking = ranks, crowding_distance(f, ranks)
        return self._ranking

    def _better(self, i: int, j: int) -> bool:
        ranks, crowd = self.ranking()
        return (ranks[i], -crowd[i]) < (ranks[j], -crowd[j])

    def propose(self) -> Candidate:
        rng = self._next()
        if self.proposed <= self.population_size or len(self.population) < 2:
            return Candidate(self.space.sample(rng), mutation="seed")
        a, b = rng.sample(range(len(self.population)), 2)
        winner = b if self._better(b, a) else a
        parent_id, _, _, generation, parent = self.population[winner]
        child, what = self.space.mutate(parent, rng)
        return Candidate(child, parent_id, str(what), generation + 1)

    # -- learning -------------------------------------------------------------------------
    def read_objectives(self, result: Mapping[str, Any] | None) -> tuple[float, float] | None:
        """(accuracy, cost) of a result, or None if it has no finite objectives."""
        if not result or not scored(result.get("status", "ok")):
            return None
        objs = result.get("objectives")
        if not isinstance(objs, Mapping):
            return None
        try:
            acc, cost = float(objs["accuracy"]), float(objs[self.cost])
        except (KeyError, TypeError, ValueError):
            return None
        if not (math.isfinite(acc) and math.isfinite(cost)):
            return None
        return acc, cost

    def observe(self, trial_id: int, candidate: Candidate, fitness: float,
                result: Mapping[str, Any] | None = None) -> None:
        objs = self.read_objectives(result)
        if objs is None:
            return  # a failed evaluation does not join the population
        self.population.append((trial_id, objs[0], objs[1], candidate.generation,
                                candidate.program))
        self._ranking = None
        if len(self.population) > self.population_size:
            self.population.pop(self._leaver())
            self._ranking = None

    def _leaver(self) -> int:
        if self.survival == "aging":
            return 0
        ranks, crowd = self.ranking()
        worst = np.flatnonzero(ranks == ranks.max())
        # Most crowded member of the last front; the oldest among ties.
        return int(worst[np.argmin(crowd[worst])])

    def front(self) -> list[tuple[int, float, float]]:
        """The population's non-dominated members as (trial id, accuracy, cost), by cost."""
        if not self.population:
            return []
        ranks, _ = self.ranking()
        members = [self.population[i] for i in np.flatnonzero(ranks == 0)]
        return sorted(((m[0], m[1], m[2]) for m in members), key=lambda m: (m[2], -m[1]))

    # -- persistence ----------------------------------------------------------------------
    def state(self) -> dict:
        state = super().state()
        state["population"] = [[tid, acc, cost, gen] for tid, acc, cost, gen, _ in
                               self.population]
        return state

    def restore(self, state: Mapping, programs: Mapping[int, Program]) -> None:
        super().restore(state, programs)
        self.population = [(int(tid), float(acc), float(cost), int(gen), programs[int(tid)])
                           for tid, acc, cost, gen in state["population"]]
        self._ranking = None


@dataclass(frozen=True)
class ParetoOptions:
    """The ``[pareto]`` section of a run config."""

    survival: str = "nsga2"  # NSGA-II survival, or "aging" (the oldest member leaves)


OPTION_CHECKS = {"survival": choice(("nsga2", "aging"))}
