"""LayerNAS: exact on additive spaces with fine buckets, cost targets, async, persistence."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from evo.algorithms.layernas import LayerNAS, run_offline
from evo.errors import ConfigError


class AdditiveSpace:
    """A toy product space whose "programs" are their codes; score and cost add up."""

    name = "additive"

    def __init__(self, layers: int, options: int, seed: int, max_cost: int = 3) -> None:
        rng = random.Random(seed)
        self.choices = tuple(tuple(f"L{i}o{o}" for o in range(options)) for i in range(layers))
        self.gain = [[rng.random() for _ in range(options)] for _ in range(layers)]
        # Integer costs; option 0 is free, so the all-zero code is the cheapest.
        self.weight = [[0] + [rng.randint(1, max_cost) for _ in range(options - 1)]
                       for _ in range(layers)]
        self.decoded = 0

    def encode(self, program) -> tuple[int, ...]:
        return tuple(program)

    def decode(self, code) -> tuple[int, ...]:
        self.decoded += 1
        return tuple(code)

    def sample(self, rng: random.Random) -> tuple[int, ...]:
        return tuple(rng.randrange(len(c)) for c in self.choices)

    def score(self, code) -> float:
        return sum(self.gain[i][o] for i, o in enumerate(code))

    def cost(self, code) -> float:
        return float(sum(self.weight[i][o] for i, o in enumerate(code)))

    def brute_force(self, target: float) -> tuple[tuple[int, ...], float]:
        codes = itertools.product(*(range(len(c)) for c in self.choices))
        best = max((c for c in codes if self.cost(c) <= target), key=self.score)
        return best, self.score(best)


@pytest.mark.parametrize("instance", range(6))
def test_fine_buckets_find_the_brute_force_optimum_in_one_pass(instance):
    space = AdditiveSpace(layers=5, options=4, seed=instance)
    target = 6.0
    best, best_score = space.brute_force(target)
    # One bucket per integer cost in [0, target]: LayerNAS is then the exact knapsack DP.
    algo = LayerNAS(space, cost=space.cost, target=target, buckets=int(target) + 1, passes=1,
                    seed=instance)
    trials = run_offline(algo, space.score, budget=10_000)
    assert algo.exhausted  # the pass ended on its own, well inside the budget
    n_codes = 4 ** 5
    assert len(trials) <= 7 * 4 * 5 < n_codes  # at most H * |S| * L evaluations
    code, fitness, cost = algo.best()
    assert code == best and fitness == pytest.approx(best_score) and cost <= target
    assert max(trials, key=lambda t: t[1])[0].program == best


def test_every_proposal_meets_the_target_and_is_new():
    space = AdditiveSpace(layers=5, options=4, seed=11)
    algo = LayerNAS(space, cost=space.cost, target=5.0, buckets=3, seed=2)
    trials = run_offline(algo, space.score, budget=300)
    codes = [c.program for c, _ in trials]
    assert all(space.cost(c) <= 5.0 for c in codes)
    assert len(set(codes)) == len(codes)  # a scored code is never proposed again
    assert algo.pass_no >= 2  # the budget outlasts one pass: later passes keep going
    feasible = sum(1 for c in itertools.product(range(4), repeat=5) if space.cost(c) <= 5.0)
    assert len(codes) == min(300, feasible) or algo.exhausted


def test_coarse_buckets_with_more_passes_still_reach_the_optimum():
    space = AdditiveSpace(layers=5, options=4, seed=3)
    best, _ = space.brute_force(7.0)
    algo = LayerNAS(space, cost=space.cost, target=7.0, buckets=2, seed=0)
    trials = run_offline(algo, space.score, budget=400)
    assert algo.best()[0] == best
    first = next(i for i, (c, _) in enumerate(trials) if c.program == best)
    assert first < 400


def test_propose_waits_for_all_children_of_a_layer():
    space = AdditiveSpace(layers=3, options=3, seed=0)
    algo = LayerNAS(space, cost=space.cost, buckets=4, base=(0, 0, 0))
    first_layer = []
    while (cand := algo.propose()) is not None:
        first_layer.append(cand)
    # Layer 0 of the base (0, 0, 0): its three options.
    assert sorted(c.program for c in first_layer) == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
    assert algo.propose() is None
    for tid, cand in enumerate(first_layer[:-1]):
        algo.observe(tid, cand, space.score(cand.program))
    assert algo.propose() is None  # one child still pending
    algo.observe(2, first_layer[-1], space.score(first_layer[-1].program))
    nxt = algo.propose()
    assert nxt is not None and "layer 1" in nxt.mutation
    assert nxt.program[1] != 0 or nxt.program[0] != 0


def test_children_over_target_are_never_proposed_and_parents_are_memo_entries():
    space = AdditiveSpace(layers=4, options=4, seed=5)
    algo = LayerNAS(space, cost=space.cost, target=4.0, buckets=3, passes=1)
    trials = run_offline(algo, space.score, budget=1000, parallel=4)
    ids = {c.program: i for i, (c, _) in enumerate(trials)}
    for cand, _ in trials:
        assert space.cost(cand.program) <= 4.0
        if cand.parent is not None:  # a parent differs from its child in one decision
            parent = trials[cand.parent][0].program
            assert sum(a != b for a, b in zip(parent, cand.program)) == 1
            assert ids[parent] < ids[cand.program]
    assert len(algo.memo()) <= 3


def test_deterministic_given_the_seed_and_restart_depends_on_it():
    space = AdditiveSpace(layers=4, options=3, seed=1)
    runs = [[c.program for c, _ in run_offline(
        LayerNAS(space, cost=space.cost, buckets=2, seed=s), space.score, 60)]
        for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # the first pass is seed-free; the restarts are not


def test_state_round_trip_through_json_continues_exactly():
    space = AdditiveSpace(layers=5, options=3, seed=4)

    def make() -> LayerNAS:
        return LayerNAS(space, cost=space.cost, target=6.0, buckets=3, seed=9)

    whole = [c.program for c, _ in run_offline(make(), space.score, 120, parallel=3)]
    algo = make()
    done = run_offline(algo, space.score, 50, parallel=3)
    saved = json.loads(json.dumps(algo.state()))
    again = make()
    again.restore(saved, {})
    assert again.state() == algo.state()
    rest = run_offline(again, space.score, 70, parallel=3)
    assert [c.program for c, _ in done + rest] == whole


def test_resume_with_proposals_after_the_saved_state_does_not_repeat_them():
    """As evo.search.loop resumes: the state of the last finished trial, a larger proposal
    count from the store, and the in-flight candidates observed afterwards."""
    space = AdditiveSpace(layers=4, options=3, seed=2)
    algo = LayerNAS(space, cost=space.cost, buckets=3, seed=1)
    ref = LayerNAS(space, cost=space.cost, buckets=3, seed=1)
    expected = [c.program for c, _ in run_offline(ref, space.score, 40)]
    trials = []
    for _ in range(2):  # two whole layers, all observed: the state is saved at the boundary
        batch = []
        while (cand := algo.propose()) is not None:
            batch.append(cand)
        for cand in batch:
            algo.observe(len(trials), cand, space.score(cand.program))
            trials.append((cand, space.score(cand.program)))
    saved = json.loads(json.dumps(algo.state()))
    in_flight = []
    while (cand := algo.propose()) is not None:  # proposed, then the process dies
        in_flight.append(cand)
    assert in_flight
    resumed = LayerNAS(space, cost=space.cost, buckets=3, seed=1)
    resumed.restore(saved, {})
    resumed.proposed = len(trials) + len(in_flight)  # the store's proposal count
    assert resumed.propose() is None  # the in-flight children are not proposed again
    for i, cand in enumerate(in_flight):
        resumed.observe(len(trials) + i, cand, space.score(cand.program))
    more = [c.program for c, _ in run_offline(resumed, space.score,
                                             40 - len(trials) - len(in_flight))]
    got = [c.program for c, _ in trials] + [c.program for c in in_flight] + more
    assert got == expected


def test_exhausts_a_small_space_and_stops():
    space = AdditiveSpace(layers=2, options=3, seed=0)
    algo = LayerNAS(space, cost=space.cost, buckets=4, seed=0)
    trials = run_offline(algo, space.score, 1000)
    assert sorted(c.program for c, _ in trials) == sorted(itertools.product(range(3), repeat=2))
    assert algo.exhausted and algo.propose() is None


def test_failed_evaluations_count_as_worst():
    space = AdditiveSpace(layers=3, options=3, seed=0)
    algo = LayerNAS(space, cost=space.cost, buckets=4, passes=1)
    trials = run_offline(algo, lambda c: math.nan if c[0] == 2 else space.score(c), 100)
    assert algo.best()[0][0] != 2 and len(trials) > 3


def test_bad_settings_are_clear_errors():
    space = AdditiveSpace(layers=3, options=3, seed=0)
    with pytest.raises(ConfigError, match="below the cheapest"):
        LayerNAS(space, cost=lambda c: 10.0 + space.cost(c), target=5.0).propose()
    with pytest.raises(ConfigError, match="buckets"):
        LayerNAS(space, cost=space.cost, buckets=0)
    with pytest.raises(ConfigError, match="base"):
        LayerNAS(space, cost=space.cost, base=(0, 5, 0))
    with pytest.raises(ConfigError, match="base"):
        LayerNAS(space, cost=space.cost, base="smallest")
    with pytest.raises(ConfigError, match="order"):
        LayerNAS(space, cost=space.cost, order=(0, 0, 1))
    with pytest.raises(ConfigError, match="ArchSpace"):
        LayerNAS(object())
    with pytest.raises(ConfigError, match="over the target"):
        LayerNAS(space, cost=space.cost, target=1.0, base=(2, 2, 2)).propose()
    with pytest.raises(ConfigError, match="LayerNAS state"):
        LayerNAS(space, cost=space.cost).restore({"seed": 0, "proposed": 0}, {})
    with pytest.raises(ConfigError, match="budget"):
        run_offline(LayerNAS(space, cost=space.cost), space.score, -1)


def test_infinite_cost_restricts_the_search_to_a_subset():
    space = AdditiveSpace(layers=4, options=4, seed=6)
    rng = random.Random(0)
    allowed = {c for c in itertools.product(range(4), repeat=4) if rng.random() < 0.3}
    allowed.discard((0, 0, 0, 0))  # the cheapest code is outside: the span must cope

    def cost(code) -> float:
        return space.cost(code) if tuple(code) in allowed else math.inf

    algo = LayerNAS(space, cost=cost, target=6.0, buckets=4, base="random", seed=3)
    trials = run_offline(algo, space.score, 60)
    feasible = {c for c in allowed if space.cost(c) <= 6.0}
    assert {c.program for c, _ in trials} == feasible  # all of them, each once, then stop
    assert len(trials) == len(feasible) < 60 and algo.exhausted
    assert all(c.program in allowed and space.cost(c.program) <= 6.0 for c, _ in trials)
    with pytest.raises(ConfigError, match="finite cost"):
        LayerNAS(space, cost=lambda c: math.inf).propose()


def test_nb201_edges_as_layers_under_a_mac_target():
    from evo.algorithms.layernas import macs_cost
    from evo.nas.nb201_table import NB201Table
    from graphs.arch import nb201

    space = nb201.NB201Space("cifar10")
    val = NB201Table.load().val12_all("cifar10")
    macs = macs_cost(space)
    target = 47.1e6  # about the median MAC count of the space

    def score(program) -> float:
        return float(val[space.index(program)])

    one = LayerNAS(space, target=target, passes=1)
    first = run_offline(one, score, 1000)
    assert len(first) <= 8 * 5 * 6  # H * |S| * L
    algo = LayerNAS(space, target=target, seed=1)
    trials = run_offline(algo, score, 300)
    assert [c.program for c, _ in trials[:len(first)]] == [c.program for c, _ in first]
    codes = [space.encode(c.program) for c, _ in trials]
    assert len(set(codes)) == len(codes) == 300
    assert all(macs(c.program) <= target for c, _ in trials)
    code, fitness, cost = algo.best()
    assert cost <= target and fitness == max(f for _, f in trials)
    # Rank of the find among all architectures under the target: random search with
    # the same 300 evaluations expects rank ~ 7,984 / 301 = 26.
    better = [i for i in range(nb201.N_ARCHS) if val[i] > fitness]
    rank = sum(macs(space.decode(nb201.from_index(i))) <= target for i in better)
    assert rank <= 5


class TwinSpace(AdditiveSpace):
    """Option 3 of every layer is an equivalent spelling of option 2."""

    def __init__(self, seed: int) -> None:
        super().__init__(layers=4, options=4, seed=seed)
        for i in range(4):
            self.gain[i][3], self.weight[i][3] = self.gain[i][2], self.weight[i][2]

    def fingerprint(self, program) -> str:
        return "".join(str(min(o, 2)) for o in program)


def test_equivalent_architectures_are_proposed_once():
    space = TwinSpace(seed=2)
    best, best_score = space.brute_force(5.0)
    algo = LayerNAS(space, cost=space.cost, target=5.0, buckets=6, passes=1)
    trials = run_offline(algo, space.score, 1000, parallel=2)
    fps = [space.fingerprint(c.program) for c, _ in trials]
    assert len(set(fps)) == len(fps)
    assert algo.best()[1] == pytest.approx(best_score)
    plain = LayerNAS(space, cost=space.cost, target=5.0, buckets=6, passes=1, dedupe=False)
    assert len(run_offline(plain, space.score, 1000)) > len(trials)
    # The equivalence cache survives a state round trip.
    again = LayerNAS(space, cost=space.cost, target=5.0, buckets=6, passes=1)
    again.restore(json.loads(json.dumps(algo.state())), {})
    assert again.by_fp == algo.by_fp


# -- through the engine ---------------------------------------------------------------------
class Stop(Exception):
    """Stands in for a kill of the driver."""


def _engine_run(tmp_path, name: str, trials: int, stop_at: int | None = None):
    """LayerNAS on NB201 through evo.search.loop.Search, a RunStore and an in-process
    backend that keeps 3 evaluations in flight (finishing the oldest first)."""
    from evo.nas.evaluator import ArchEvaluator
    from evo.search.loop import Search
    from evo.search.store import RunStore
    from evo.workers.base import Backend, Outcome, run_task
    from graphs.arch.nb201 import NB201Space

    class Inline(Backend):
        name = "inline"

        def __init__(self, evaluate) -> None:
            self.evaluate, self.queue = evaluate, []

        @property
        def capacity(self) -> int:
            return 3

        @property
        def running(self) -> int:
            return len(self.queue)

        def submit(self, task) -> None:
            self.queue.append(task)

        def poll(self, timeout: float):
            task = self.queue.pop(0)
            return [Outcome(task.trial_id, run_task(self.evaluate, task), "inline-0")]

    space = NB201Space("cifar10")
    evaluator = ArchEvaluator("nb201", cost="macs", hardware=None)

    def make() -> LayerNAS:
        return LayerNAS(space, cost=evaluator.cost_of, target=30e6, buckets=4, seed=5)

    path = tmp_path / f"{name}.db"
    store = RunStore.create(path, {})
    algo = make()

    def stop(p) -> None:
        if stop_at is not None and p.trials >= stop_at:
            raise Stop

    try:
        Search(algo, store, Inline(evaluator), trials, fec=space.fingerprint,
               on_progress=stop).run()
    except Stop:
        store.close()
        store = RunStore.open(path)
        assert store.in_flight()  # killed with evaluations in flight
        algo = make()
        Search(algo, store, Inline(evaluator), trials, fec=space.fingerprint).run()
    rows = store.db.execute("SELECT program, status, fitness FROM trials ORDER BY id").fetchall()
    store.close()
    return algo, rows


def test_engine_run_killed_and_resumed_proposes_exactly_as_an_uninterrupted_one(tmp_path):
    whole_algo, whole = _engine_run(tmp_path, "whole", 70)
    algo, resumed = _engine_run(tmp_path, "resumed", 70, stop_at=31)
    assert len(whole) == len(resumed) == 70
    assert [r["program"] for r in resumed] == [r["program"] for r in whole]
    assert all(r["fitness"] is not None for r in resumed)
    # Equivalent architectures are not proposed twice, so the engine sees no duplicates.
    assert {r["status"] for r in resumed} == {"done"}
    assert algo.state() == whole_algo.state()
    assert algo.best()[2] <= 30e6


def test_mobilenet_layerwise_space_under_a_mac_target():
    """LayerNAS on the MobileNet-style space (blocks' choices as layers): every proposal is
    a valid network under the MAC target, decisions are searched one after another
    (inactive ones, e.g. of unused layer slots, collapse), and the kept best improves."""
    from evo.algorithms.layernas import macs_cost
    from graphs.arch.mobilenet import MobileNetSpace
    from graphs.arch.ops import summary

    space = MobileNetSpace()
    cost = macs_cost(space)
    target = 200e6
    # A stand-in for accuracy that rewards capacity: parameters (millions).
    score = lambda p: summary(p)["params"] / 1e6  # noqa: E731
    algo = LayerNAS(space, cost=cost, target=target, buckets=4, base="random", seed=0)
    trials = run_offline(algo, score, 150)
    assert len(trials) == 150
    assert all(cost(c.program) <= target for c, _ in trials)
    layers = {int(c.mutation.split(" layer ")[1].split(" =")[0]) for c, _ in trials}
    assert len(layers) >= 10
    assert len({space.encode(c.program) for c, _ in trials}) == 150  # nothing proposed twice
    first = trials[0][1]
    assert max(f for _, f in trials) > first
    best = algo.best()
    assert best is not None and best[2] <= target and best[1] == max(f for _, f in trials)
