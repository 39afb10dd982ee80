"""Search algorithms: seeding, tournaments, aging, exact state round trips, validation."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from evo.algorithms.base import Candidate, SeedSpace
from evo.algorithms.evolution import RegularizedEvolution
from evo.algorithms.random_search import RandomSearch
from evo.errors import ConfigError
from graphs.core.errors import ProgramError
from graphs.core.program import Program
from graphs.core.render import formula
from graphs.rl_loss.generation import seeded_program

SPACE = SeedSpace("dqn", 5)  # small programs keep the tests fast


def fitness_of(program: Program) -> float:
    """Deterministic and (almost surely) distinct per program."""
    h = int(hashlib.blake2b(formula(program).encode(), digest_size=8).hexdigest(), 16)
    return sum(program.live) + (h % 10_007) / 10_007


class CountingSpace:
    """The small seed space, counting its draws."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, rng: random.Random) -> Program:
        self.calls += 1
        return SPACE(rng)


def differing_nodes(a: Program, b: Program) -> int:
    assert len(a.nodes) == len(b.nodes)
    return sum((x.op, x.args) != (y.op, y.args) for x, y in zip(a.nodes, b.nodes))


# -- regularized evolution ----------------------------------------------------------------
def test_first_population_size_proposals_are_seeds_from_the_space():
    space = CountingSpace()
    algo = RegularizedEvolution(population_size=8, tournament_size=3, space=space, seed=5)
    seeds = [algo.propose() for _ in range(8)]
    assert space.calls == 8
    assert all(c.mutation == "seed" and c.parent is None and c.generation == 0 for c in seeds)
    # They are exactly the space's draws; proposal n draws from a generator seeded "seed:n".
    assert [c.program for c in seeds] == [SPACE(random.Random(f"5:{n}")) for n in range(1, 9)]
    for tid, c in enumerate(seeds, 1):
        algo.observe(tid, c, fitness_of(c.program))
    child = algo.propose()
    assert child.parent in range(1, 9) and child.mutation != "seed" and child.generation == 1


def test_proposals_before_any_observation_stay_seeds():
    algo = RegularizedEvolution(population_size=2, tournament_size=1, space=SPACE, seed=0)
    cands = [algo.propose() for _ in range(5)]  # asynchronous: nothing finished yet
    assert [c.mutation for c in cands] == ["seed"] * 5


def test_parent_is_the_best_of_its_tournament():
    algo = RegularizedEvolution(population_size=12, tournament_size=4, space=SPACE, seed=1)
    tid = 0
    for _ in range(12):
        c = algo.propose()
        tid += 1
        algo.observe(tid, c, fitness_of(c.program))
    drawn: list[list[int]] = []
    sample = algo.rng.sample

    def recording_sample(population, k):
        out = sample(population, k)
        drawn.append(list(out))
        return out

    algo.rng.sample = recording_sample
    parents_not_best_overall = 0
    for _ in range(60):
        members = list(algo.population)
        c = algo.propose()
        contestants = drawn.pop()
        assert not drawn and len(contestants) == 4 and len(set(contestants)) == 4
        pool = [members[i] for i in contestants]
        best_fitness = max(m[1] for m in pool)
        (parent,) = [m for m in pool if m[0] == c.parent]  # a contestant ...
        assert parent[1] == best_fitness  # ... with the best fitness (equal ones may tie)
        assert c.generation == parent[2] + 1
        parents_not_best_overall += parent[1] < max(m[1] for m in members)
        if c.mutation.startswith("point"):
            assert differing_nodes(parent[3], c.program) == 1
        tid += 1
        algo.observe(tid, c, fitness_of(c.program))
    # A tournament is a sample, not the whole population: weaker parents happen.
    assert parents_not_best_overall > 0


def test_tournament_of_the_whole_population_always_picks_the_best_member():
    algo = RegularizedEvolution(population_size=6, tournament_size=6, space=SPACE, seed=2)
    tid = 0
    for _ in range(6):
        c = algo.propose()
        tid += 1
        algo.observe(tid, c, fitness_of(c.program))
    kinds = set()
    for _ in range(40):
        best = max(m[1] for m in algo.population)
        c = algo.propose()
        assert [m[1] for m in algo.population if m[0] == c.parent] == [best]
        kinds.add(c.mutation.split()[0])
        tid += 1
        algo.observe(tid, c, fitness_of(c.program))
    assert "point" in kinds


def test_aging_removes_the_oldest_member_not_the_worst():
    algo = RegularizedEvolution(population_size=3, tournament_size=2, space=SPACE, seed=0)
    prog = seeded_program("dqn", 5, seed=0)
    for tid, fit in [(1, 10.0), (2, 0.0), (3, 5.0)]:
        algo.observe(tid, Candidate(prog), fit)
    algo.observe(4, Candidate(prog), 1.0)
    assert [m[0] for m in algo.population] == [2, 3, 4]  # the best (1) aged out
    algo.observe(5, Candidate(prog), 2.0)
    assert [m[0] for m in algo.population] == [3, 4, 5]  # the worst (2) aged out
    assert [m[1] for m in algo.population] == [5.0, 1.0, 2.0]


def _drive(algo, steps: int, start_tid: int, log: list | None = None) -> int:
    """Propose and observe in a fixed asynchronous pattern (two in flight)."""
    tid = start_tid
    in_flight: list[tuple[int, Candidate]] = []
    for _ in range(steps):
        tid += 1
        c = algo.propose()
        if log is not None:
            log.append((c.program, c.parent, c.mutation, c.generation))
        in_flight.append((tid, c))
        if len(in_flight) == 2:
            t, done = in_flight.pop(0)
            algo.observe(t, done, fitness_of(done.program))
    for t, done in in_flight:
        algo.observe(t, done, fitness_of(done.program))
    return tid


@pytest.mark.parametrize("interrupt_at", [5, 30])  # during seeding and during evolution
def test_state_restore_continues_the_exact_proposal_sequence(interrupt_at):
    def make():
        return RegularizedEvolution(population_size=10, tournament_size=3, space=SPACE,
                                    seed=11)

    a = make()
    programs: dict[int, Program] = {}
    tid = 0
    for _ in range(interrupt_at):
        c = a.propose()
        tid += 1
        programs[tid] = c.program
        a.observe(tid, c, fitness_of(c.program))
    saved = json.loads(json.dumps(a.state()))  # the store keeps it as JSON
    b = make()
    b.restore(saved, {int(m[0]): programs[int(m[0])] for m in saved["population"]})
    assert b.state() == a.state()
    log_a: list = []
    log_b: list = []
    _drive(a, 50, tid, log_a)
    _drive(b, 50, tid, log_b)
    assert len(log_a) == 50 and log_a == log_b
    assert any(m != "seed" for _, _, m, _ in log_a)
    assert b.state() == a.state()


def test_restore_without_interruption_differs_from_a_fresh_start():
    # Guard for the round-trip test: the continuation depends on the restored state.
    a = RegularizedEvolution(population_size=10, tournament_size=3, space=SPACE, seed=11)
    _drive(a, 30, 0)
    fresh = RegularizedEvolution(population_size=10, tournament_size=3, space=SPACE, seed=11)
    log_a: list = []
    log_f: list = []
    _drive(a, 10, 30, log_a)
    _drive(fresh, 10, 30, log_f)
    assert log_a != log_f


# -- random search ------------------------------------------------------------------------
def test_random_search_proposes_fresh_draws_and_learns_nothing():
    algo = RandomSearch(SPACE, seed=3)
    cands = []
    for tid in range(1, 21):
        c = algo.propose()
        cands.append(c)
        algo.observe(tid, c, 1000.0 if tid == 1 else 0.0)  # a great first draw changes nothing
    assert all(c.mutation == "random" and c.parent is None and c.generation == 0
               for c in cands)
    assert [c.program for c in cands] == [SPACE(random.Random(f"3:{n}")) for n in range(1, 21)]
    assert len({c.program for c in cands}) == 20
    saved = json.loads(json.dumps(algo.state()))
    other = RandomSearch(SPACE, seed=99)
    other.restore(saved, {})
    assert [other.propose().program for _ in range(5)] == [algo.propose().program
                                                           for _ in range(5)]


def test_default_space_is_the_papers_seeded_setting():
    c = RandomSearch(seed=0).propose()
    assert len(c.program.nodes) == len(seeded_program("dqn", 14, seed=0).nodes)
    assert "SeedSpace(dqn + 14 nodes)" in repr(RegularizedEvolution())


# -- validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "name"), [
    ({"population_size": 0}, "population_size"),
    ({"population_size": -3}, "population_size"),
    ({"population_size": 2.5}, "population_size"),
    ({"population_size": 10, "tournament_size": 11}, "tournament_size"),
    ({"population_size": 10, "tournament_size": 0}, "tournament_size"),
])
def test_invalid_settings_name_the_parameter(kwargs, name):
    with pytest.raises(ConfigError, match=name) as err:
        RegularizedEvolution(space=SPACE, **kwargs)
    assert isinstance(err.value, ValueError)


def test_tournament_error_names_the_population_size_bound():
    with pytest.raises(ConfigError, match=r"population_size = 10"):
        RegularizedEvolution(population_size=10, tournament_size=20, space=SPACE)


def test_seed_space_validation():
    with pytest.raises(ConfigError, match="extra_nodes"):
        SeedSpace("dqn", 0)
    with pytest.raises(ProgramError, match="dqm|dqn"):
        SeedSpace("dqm", 5)
    assert len(SeedSpace(None, 7)(random.Random(0)).nodes) > 7  # skeleton + 7 free nodes
