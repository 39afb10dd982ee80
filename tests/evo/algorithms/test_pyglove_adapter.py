"""Driving evo algorithms through PyGlove: the program hyper value and the DNA generator."""

from __future__ import annotations

import hashlib
import random

import pyglove as pg
import pytest

from evo.algorithms.base import SeedSpace
from evo.algorithms.evolution import RegularizedEvolution
from evo.algorithms.pyglove_adapter import EvoDNAGenerator, ProgramSpace, program_space
from evo.algorithms.random_search import RandomSearch
from graphs.core.fileformat import dumps, loads
from graphs.core.program import Program
from graphs.core.render import formula
from graphs.core.symbolic import SymbolicProgram, to_symbolic
from graphs.rl_loss.library import builtin


def score(program: Program) -> float:
    """Live nodes plus a deterministic jitter (the same in every process)."""
    h = int(hashlib.blake2b(formula(program).encode(), digest_size=8).hexdigest(), 16)
    return float(sum(program.live)) + (h % 1000) / 10_000


def differing_nodes(a: Program, b: Program) -> int:
    return sum((x.op, x.args) != (y.op, y.args) for x, y in zip(a.nodes, b.nodes))


def test_pg_sample_drives_regularized_evolution():
    algo = RegularizedEvolution(population_size=10, tournament_size=3,
                                space=SeedSpace("dqn", 5), seed=0)
    seen: list[tuple[Program, dict]] = []
    for program, feedback in pg.sample(program_space("dqn", 5), EvoDNAGenerator(algo),
                                       num_examples=60):
        assert isinstance(program, Program)
        program.check()  # valid
        seen.append((program, dict(feedback.dna.metadata)))
        feedback(score(program))
    assert len(seen) == 60
    meta = [m for _, m in seen]
    assert [m["evo_trial"] for m in meta] == list(range(1, 61))
    assert [m["evo_mutation"] for m in meta[:10]] == ["seed"] * 10
    # Evolution happened: later proposals are mutations of earlier, observed ones.
    children = [(p, m) for p, m in seen[10:] if m["evo_parent"] is not None]
    assert len(children) == 50
    programs = {m["evo_trial"]: p for p, m in seen}
    points = 0
    for child, m in children:
        assert m["evo_parent"] < m["evo_trial"]
        if m["evo_mutation"].startswith("point"):
            points += 1
            assert differing_nodes(programs[m["evo_parent"]], child) == 1
    assert points >= 40  # p = 0.95
    assert algo.proposed == 60 and len(algo.population) == 10
    # Every reward reached the algorithm, under the trial id PyGlove's loop reported.
    assert [m[0] for m in algo.population] == list(range(51, 61))
    assert all(m[1] == pytest.approx(score(programs[m[0]])) for m in algo.population)


def test_selection_pressure_through_pg_sample():
    algo = RegularizedEvolution(population_size=10, tournament_size=5,
                                space=SeedSpace("dqn", 5), seed=1)
    rewards = []
    for program, feedback in pg.sample(program_space("dqn", 5), EvoDNAGenerator(algo),
                                       num_examples=150):
        rewards.append(score(program))
        feedback(rewards[-1])
    assert max(rewards) > max(rewards[:10])  # better than every seed
    assert sum(rewards[-50:]) / 50 > sum(rewards[:10]) / 10
    assert sum(m[1] for m in algo.population) / 10 > sum(rewards[:10]) / 10


def test_symbolic_decoding_gives_the_pyglove_twin():
    algo = RandomSearch(SeedSpace("dqn", 3), seed=2)
    for value, feedback in pg.sample(program_space("dqn", 3, symbolic=True),
                                     EvoDNAGenerator(algo), num_examples=3):
        assert isinstance(value, SymbolicProgram)
        assert dumps(value.to_program()) == feedback.dna.value
        feedback(1.0)


def test_space_draws_and_mutates_for_pyglove_algorithms():
    space = program_space("dqn", 5)
    spec = pg.dna_spec(space)
    fresh = space.random_dna(random.Random(0))
    assert loads(fresh.value) == SeedSpace("dqn", 5)(random.Random(0))
    child = space.random_dna(random.Random(1), previous_dna=fresh)
    assert child.value != fresh.value
    assert len(loads(child.value).nodes) == len(loads(fresh.value).nodes)
    fresh.use_spec(spec)
    assert pg.materialize(space, fresh) == loads(fresh.value)
    # PyGlove's own regularized evolution runs on the space (its Uniform mutator calls
    # random_dna(previous_dna=...), which mutates the program).
    for program, feedback in pg.sample(space, pg.evolution.regularized_evolution(
            population_size=5, tournament_size=2, seed=0), num_examples=12):
        program.check()
        feedback(score(program))


def test_encode_round_trip():
    space = ProgramSpace(base=None, extra_nodes=7)
    dqn = builtin("dqn")
    assert loads(space.encode(dqn).value) == dqn
    assert loads(space.encode(to_symbolic(dqn)).value) == dqn
    with pytest.raises(TypeError, match="cannot encode"):
        space.encode("not a program")
    assert len(space.seed_space(random.Random(0)).nodes) > 7


def test_generator_needs_an_algorithm_and_a_program_space():
    with pytest.raises(TypeError, match="SearchAlgorithm"):
        EvoDNAGenerator(algorithm="re")
    gen = EvoDNAGenerator(RandomSearch(SeedSpace("dqn", 3)))
    with pytest.raises(ValueError, match="one program decision point"):
        next(iter(pg.sample(pg.Dict(x=pg.oneof([1, 2])), gen, num_examples=1)))
