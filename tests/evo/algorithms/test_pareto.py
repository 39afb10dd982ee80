"""Pareto fronts, crowding, hypervolume and the NSGA-II-style search."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest

from evo.algorithms.base import Candidate
from evo.algorithms.pareto import (
    ParetoEvolution,
    crowding_distance,
    hypervolume,
    nondominated_ranks,
    objectives,
    pareto_front,
)
from evo.errors import ConfigError
from evo.nas.nb201_table import NB201Table
from graphs.arch import nb201
from graphs.arch.layers import count_macs


def brute_ranks(f: np.ndarray) -> list[int]:
    """Front peeling straight from the definition of dominance."""
    left, ranks, rank = set(range(len(f))), [-1] * len(f), 0
    while left:
        front = [i for i in left if not any(
            (f[j] <= f[i]).all() and (f[j] < f[i]).any() for j in left)]
        for i in front:
            ranks[i] = rank
        left -= set(front)
        rank += 1
    return ranks


def test_hand_made_fronts() -> None:
    acc = [0.90, 0.80, 0.85, 0.70, 0.90, 0.60]
    lat = [10.0, 5.00, 12.0, 5.00, 10.0, 20.0]
    # A=(.9,10) B=(.8,5) non-dominated; C by A; D by B; E identical to A; F by C and D
    assert nondominated_ranks(objectives(acc, lat)).tolist() == [0, 0, 1, 1, 0, 2]
    assert pareto_front(acc, lat).tolist() == [1, 0, 4]


@pytest.mark.parametrize("m", [2, 3])
def test_ranks_match_the_definition(m: int) -> None:
    rng = np.random.default_rng(m)
    for n in (1, 2, 7, 60):
        f = rng.integers(0, 6, size=(n, m)).astype(float)  # many ties and duplicates
        assert nondominated_ranks(f).tolist() == brute_ranks(f)
    f = rng.integers(0, 6, size=(40, 2)).astype(float)
    assert nondominated_ranks(f).tolist() == nondominated_ranks(
        np.column_stack([f, np.zeros(40)])).tolist()  # the O(n^2) path agrees


def test_crowding_distance() -> None:
    f = np.array([[1.0, 4.0], [2.0, 3.0], [3.0, 2.0], [4.0, 1.0], [5.0, 5.0]])
    d = crowding_distance(f)
    assert np.isinf(d[[0, 3]]).all()
    # interior: (3-1)/3 + (4-2)/3 for point 1, (4-2)/3 + (3-1)/3 for point 2
    assert d[1] == pytest.approx(4 / 3) and d[2] == pytest.approx(4 / 3)
    assert np.isinf(d[4])  # alone in its front


def test_hypervolume_of_known_sets() -> None:
    ref = (0.0, 20.0)
    assert hypervolume([0.9], [10.0], ref) == pytest.approx(9.0)
    # union of 0.9 x 10 and 0.8 x 15 minus their 0.8 x 10 overlap
    assert hypervolume([0.9, 0.8], [10.0, 5.0], ref) == pytest.approx(13.0)
    # a dominated point, a duplicate and points beyond the reference add nothing
    assert hypervolume([0.9, 0.8, 0.7, 0.9, 0.95, -0.1], [10.0, 5.0, 8.0, 10.0, 25.0, 1.0],
                       ref) == pytest.approx(13.0)
    assert hypervolume([], [], ref) == 0.0
    with pytest.raises(ValueError, match="finite"):
        hypervolume([0.5], [1.0], (0.0, float("inf")))


def test_hypervolume_matches_a_grid_count() -> None:
    rng = np.random.default_rng(3)
    acc = rng.integers(1, 20, 12) / 20
    lat = rng.integers(1, 20, 12).astype(float)
    # count unit cells of a fine grid dominated by some point
    xs = (np.arange(400) + 0.5) / 400  # accuracy in (0, 1)
    ys = (np.arange(400) + 0.5) * 20 / 400  # cost in (0, 20)
    covered = np.zeros((400, 400), dtype=bool)
    for a, c in zip(acc, lat):
        covered |= (xs[:, None] <= a) & (ys[None, :] >= c)
    assert hypervolume(acc, lat, (0.0, 20.0)) == pytest.approx(
        covered.mean() * 20, rel=1e-9)


# -- the algorithm on a small NB201 space (codes as programs) ---------------------------
class CodeSpace:
    """NB201 as 6-tuples of op indices; mutation changes one edge's op."""

    name = "nb201-codes"

    def sample(self, rng: random.Random) -> tuple[int, ...]:
        return tuple(rng.randrange(5) for _ in range(6))

    def mutate(self, code: tuple[int, ...], rng: random.Random) -> tuple[tuple[int, ...], str]:
        pos = rng.randrange(6)
        op = rng.choice([o for o in range(5) if o != code[pos]])
        return code[:pos] + (op,) + code[pos + 1:], f"edge {pos} -> {nb201.OPS[op]}"


_MACS: dict[tuple[int, ...], float] = {}


def evaluate(code: tuple[int, ...]) -> dict:
    if code not in _MACS:
        _MACS[code] = count_macs(nb201.network_layers(code)) / 1e6
    acc = NB201Table.load().val12(code, "cifar10") / 100
    return {"status": "ok", "fitness": acc,
            "objectives": {"accuracy": acc, "macs": _MACS[code]}}


def run(algorithm, n: int) -> list[tuple[float, float]]:
    seen = []
    for tid in range(n):
        cand = algorithm.propose()
        result = evaluate(cand.program)
        algorithm.observe(tid, cand, result["fitness"], result)
        seen.append((result["objectives"]["accuracy"], result["objectives"]["macs"]))
    return seen


def test_pareto_search_beats_random_sampling_in_hypervolume() -> None:
    # Reference: 80% validation accuracy (the interesting part of the front) and 230
    # MMACs (the largest NB201 network has 220).
    ref = (0.8, 230.0)
    hv_e, hv_r = [], []
    for seed in range(6):
        evolved = run(ParetoEvolution(CodeSpace(), population_size=30, cost="macs",
                                      seed=seed), 300)
        rng = random.Random(1000 + seed)
        sampled = [tuple(evaluate(CodeSpace().sample(rng))["objectives"].values())
                   for _ in range(300)]
        hv_e.append(hypervolume(*zip(*evolved), ref))
        hv_r.append(hypervolume(*zip(*sampled), ref))
    wins = sum(e > r for e, r in zip(hv_e, hv_r))
    assert wins >= 5 and np.mean(hv_e) > 1.05 * np.mean(hv_r), (hv_e, hv_r)


def test_population_keeps_the_front_and_failures_stay_out() -> None:
    algo = ParetoEvolution(CodeSpace(), population_size=5, cost="macs", seed=1)
    points = [(0.5, 10.0), (0.6, 20.0), (0.7, 30.0), (0.4, 40.0), (0.3, 50.0), (0.8, 60.0)]
    for tid, (a, c) in enumerate(points):
        algo.observe(tid, Candidate((0,) * 6), a, {"status": "ok", "objectives": {
            "accuracy": a, "macs": c}})
    # six members for five places: a dominated one (0.4@40 or 0.3@50) leaves, the front stays
    assert [m[0] for m in algo.front()] == [0, 1, 2, 5]
    assert len(algo.population) == 5 and {m[0] for m in algo.population} >= {0, 1, 2, 5}
    for result in ({"status": "error", "fitness": 0.0}, {"status": "nan"},
                   {"status": "ok", "objectives": {"accuracy": float("nan"), "macs": 1.0}},
                   {"status": "ok", "objectives": {"accuracy": 0.9}}, None):
        algo.observe(99, Candidate((1,) * 6), 0.0, result)
    assert 99 not in {m[0] for m in algo.population}


def test_aging_survival_drops_the_oldest() -> None:
    algo = ParetoEvolution(CodeSpace(), population_size=3, survival="aging", cost="macs")
    for tid in range(5):
        algo.observe(tid, Candidate((0,) * 6), 0.0, {"objectives": {
            "accuracy": 0.9 - tid / 10, "macs": 1.0 + tid}})
    assert [m[0] for m in algo.population] == [2, 3, 4]


def test_state_and_restore_continue_exactly() -> None:
    def make() -> ParetoEvolution:
        return ParetoEvolution(CodeSpace(), population_size=8, cost="macs", seed=5)

    a = make()
    programs = {}
    for tid in range(30):
        cand = a.propose()
        programs[tid] = cand.program
        result = evaluate(cand.program)
        a.observe(tid, cand, result["fitness"], result)
    state = json.loads(json.dumps(a.state()))
    b = make()
    b.restore(state, programs)
    assert b.state() == a.state()
    for _ in range(10):
        ca, cb = a.propose(), b.propose()
        assert (ca.program, ca.parent, ca.mutation, ca.generation) == (
            cb.program, cb.parent, cb.mutation, cb.generation)


def test_children_come_from_tournaments_after_the_initial_population() -> None:
    algo = ParetoEvolution(CodeSpace(), population_size=4, cost="macs", seed=2)
    cands = [algo.propose() for _ in range(4)]
    assert all(c.mutation == "seed" for c in cands)
    for tid, cand in enumerate(cands):
        result = evaluate(cand.program)
        algo.observe(tid, cand, result["fitness"], result)
    child = algo.propose()
    assert child.parent in range(4) and child.generation == 1
    parent = cands[child.parent].program
    assert sum(x != y for x, y in zip(parent, child.program)) == 1


@pytest.mark.parametrize("kwargs, words", [
    ({"space": object()}, "sample"),
    ({"population_size": 1}, ">= 2"),
    ({"survival": "oldest"}, "survival"),
    ({"cost": ""}, "cost"),
])
def test_bad_settings(kwargs: dict, words: str) -> None:
    args = {"space": CodeSpace(), **kwargs}
    with pytest.raises(ConfigError, match=words):
        ParetoEvolution(**args)


def test_front_of_all_nb201_architectures() -> None:
    """The whole space in one call: the 2-D sweep handles 15,625 points quickly."""
    table = NB201Table.load()
    codes = list(itertools.product(range(5), repeat=6))
    acc = np.array([table.val12(c, "cifar10") for c in codes])
    n_conv = np.array([sum(op in (2, 3) for op in c) for c in codes], dtype=float)
    ranks = nondominated_ranks(objectives(acc, n_conv))
    front = np.flatnonzero(ranks == 0)
    assert acc[front].max() == acc.max()
    # one point per conv count 0..6 at most (isomorphic cells share their accuracy)
    assert len({(acc[i], n_conv[i]) for i in front}) <= 7
    assert all(ranks[i] > 0 for i in range(len(codes)) if acc[i] < acc[front].min())
