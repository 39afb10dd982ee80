"""Mutation: every child is valid, frozen nodes stay, point vs fresh, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphs.core.validity
from graphs.core.errors import ProgramError
from graphs.core.execute import gradients
from graphs.core.mutation import Mutation, Mutator
from graphs.core.program import Program
from graphs.core.validity import ZERO_GRADIENT_TOL, gradient_is_nonzero
from graphs.rl_loss.generation import from_scratch, seeded_program
from graphs.rl_loss.library import BUILTINS, builtin
from graphs.rl_loss.library import from_steps as build
from graphs.rl_loss.ops import FLOAT, RL_LOSS

N_IN = len(RL_LOSS.inputs)
N_MUTATIONS = 2_000
RESTRICTED = ["QValues", "Select", "Sub", "Square", "Add", "Mul", "Max"]




def fresh_gradient_nonzero(program: Program) -> bool:
    """A numeric check that uses neither the memo nor the provable shortcut."""
    for probe in RL_LOSS.probes():
        for g in gradients(program, probe).values():
            mag = np.abs(g)
            if np.any((mag > ZERO_GRADIENT_TOL) & np.isfinite(mag)):
                return True
    return False


def assert_valid_child(parent: Program, child: Program) -> None:
    child.check(numeric=True)
    # rebuilding type-checks the nodes from scratch (derive() skips inference)
    rebuilt = Program(RL_LOSS, child.nodes, child.inputs, child.output,
                      child.ids[child.n_inputs:])
    assert rebuilt.types == child.types
    assert child.types[child.output] is FLOAT
    assert child.carries_gradient[child.output]
    # Valid means a gradient that is not identically zero: numerically above the
    # tolerance, or proven (a single faithful path; e.g. Q/(x/(r - r)) has a true
    # gradient of ~1e-12, below the tolerance).
    assert fresh_gradient_nonzero(child) or child.gradient_provably_nonzero, child
    assert len(child.nodes) == len(parent.nodes)
    assert child.inputs == parent.inputs
    assert child.ids == parent.ids
    assert child.output == parent.output
    for old, new in zip(parent.nodes, child.nodes):
        if old.frozen:
            assert new == old
        assert new.frozen == old.frozen


def changed(parent: Program, child: Program) -> list[int]:
    return [parent.n_inputs + k for k, (a, b) in enumerate(zip(parent.nodes, child.nodes))
            if a != b]


def consumed(program: Program) -> set[int]:
    return {a for n in program.nodes for a in n.args}


# -- every child is valid ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_mutations_of_builtins_are_valid(name):
    parent = builtin(name)
    mutator = Mutator()
    kinds = set()
    for seed in range(N_MUTATIONS):
        child, record = mutator.mutate(parent, seed)
        kinds.add(record.kind)
        assert_valid_child(parent, child)
    if name != "skeleton":
        assert kinds == {"point", "fresh"}


def test_mutations_along_a_random_walk_are_valid():
    parent = seeded_program("dqn", 14, seed=0)
    mutator = Mutator()
    independent = 0
    for seed in range(N_MUTATIONS):
        child, record = mutator.mutate(parent, seed)
        assert_valid_child(parent, child)
        if seed % 10 == 0:  # the op set's own numeric check, bypassing the shortcut
            independent += 1
            assert gradient_is_nonzero(child) or child.gradient_provably_nonzero, child
        if record.kind == "point":
            assert len(changed(parent, child)) == 1
        parent = child
    assert independent == N_MUTATIONS // 10


def test_mutations_of_from_scratch_programs_keep_the_frozen_skeleton():
    skel = builtin("skeleton")
    parent = from_scratch(seed=0)
    mutator = Mutator()
    for seed in range(N_MUTATIONS):
        child = mutator(parent, seed)
        assert_valid_child(parent, child)
        assert child.nodes[:4] == skel.nodes
        assert all(n.frozen for n in child.nodes[:4])
        assert not any(n.frozen for n in child.nodes[4:])
        parent = child


def test_restricted_mutator_only_introduces_allowed_ops():
    parent = seeded_program("dqn", 14, seed=1, ops=RESTRICTED)
    mutator = Mutator(ops=RESTRICTED)
    for seed in range(300):
        child = mutator(parent, seed)
        assert_valid_child(parent, child)
        new_ops = {child.node(i).op.name for i in changed(parent, child)}
        assert new_ops <= set(RESTRICTED), new_ops
        parent = child


# -- point mutations --------------------------------------------------------------------------
def test_point_mutation_changes_exactly_one_node():
    parent = seeded_program("dqn", 14, seed=2)
    mutator = Mutator(p=1.0)
    for seed in range(500):
        child, record = mutator.mutate(parent, seed)
        assert record.kind == "point"
        (idx,) = changed(parent, child)
        assert record.node == parent.ids[idx]
        assert record.before != record.after
        assert not parent.node(idx).frozen


def test_point_mutation_keeps_types_of_consumed_nodes_and_the_float_output():
    mutator = Mutator(p=1.0)
    leaf_type_changes = 0
    for start in range(5):
        parent = seeded_program("dqn", 14, seed=start)
        for seed in range(300):
            child, _ = mutator.mutate(parent, seed)
            (idx,) = changed(parent, child)
            used = consumed(parent)
            for i in used:
                assert child.types[i] is parent.types[i]
            assert child.types[child.output] is FLOAT
            if idx not in used and idx != parent.output:
                leaf_type_changes += child.types[idx] is not parent.types[idx]
            else:
                assert child.types[idx] is parent.types[idx]
            parent = child
    assert leaf_type_changes > 0


def test_leaves_of_a_parent_exist_so_the_type_change_test_is_meaningful():
    parent = seeded_program("dqn", 14, seed=0)
    leaves = [i for i in range(N_IN, len(parent))
              if i not in consumed(parent) and i != parent.output]
    assert leaves


# -- point vs fresh ---------------------------------------------------------------------------
def test_p_one_gives_only_point_mutations():
    mutator = Mutator(p=1.0)
    for name in ("dqn", "ddqn", "dqnreg", "cql", "dqnclipped"):
        parent = builtin(name)
        for seed in range(200):
            _, record = mutator.mutate(parent, seed)
            assert record.kind == "point"


def test_p_zero_gives_only_fresh_programs():
    mutator = Mutator(p=0.0)
    parent = seeded_program("dqn", 14, seed=0)
    fresh_children = set()
    for seed in range(200):
        child, record = mutator.mutate(parent, seed)
        assert record == Mutation("fresh")
        assert record.node is None
        fresh_children.add(child)
    # a fresh program redraws every free node, so children rarely repeat
    assert len(fresh_children) > 190
    assert max(len(changed(parent, c)) for c in fresh_children) > 1


def test_fresh_mutation_keeps_frozen_nodes_and_redraws_the_rest():
    parent = from_scratch(seed=3)
    mutator = Mutator(p=0.0)
    for seed in range(200):
        child = mutator(parent, seed)
        assert child.nodes[:4] == parent.nodes[:4]
        assert_valid_child(parent, child)


@pytest.mark.parametrize("p", [-0.01, 1.01, 2.0, float("nan")])
def test_p_outside_unit_interval_raises(p):
    with pytest.raises(ProgramError, match="probability"):
        Mutator(p=p)


def test_fresh_fraction_at_default_p_is_five_percent():
    mutator = Mutator()
    assert mutator.p == 0.95
    parent = seeded_program("dqn", 14, seed=4)
    n = 4_000
    fresh = sum(mutator.mutate(parent, seed)[1].kind == "fresh" for seed in range(n))
    sd = math.sqrt(n * 0.05 * 0.95)
    assert abs(fresh - 0.05 * n) < 5 * sd, fresh


# -- determinism ------------------------------------------------------------------------------
def test_mutation_is_deterministic_given_a_seed():
    mutator = Mutator()
    for name in ("dqn", "cql"):
        parent = seeded_program(name, 14, seed=5)
        for seed in range(100):
            a = mutator.mutate(parent, seed)
            b = Mutator().mutate(parent, seed)
            assert a[0] == b[0]
            assert a[1] == b[1]


def test_different_seeds_give_different_children():
    parent = seeded_program("dqn", 14, seed=6)
    mutator = Mutator()
    children = {mutator(parent, seed) for seed in range(100)}
    assert len(children) > 50


# -- dead nodes -------------------------------------------------------------------------------
def _frozen_dqn_with_free_dead_leaf() -> Program:
    steps = [
        ("QValues", "Q", "s_t"), ("Select", 0, "a_t"), ("QValues", "Q_targ", "s_tp1"),
        ("Max", 2), ("Mul", "gamma", 3), ("Add", "r_t", 4), ("SqDist", 1, 5),
        ("Tenth", "r_t"),  # the only free node: dead
    ]
    return build(steps, output=6, frozen=range(7))


def test_point_mutation_of_a_dead_node_skips_the_validity_check(monkeypatch):
    parent = _frozen_dqn_with_free_dead_leaf()
    parent.check()
    assert not parent.live[N_IN + 7]
    parent.remember("valid", True)

    def forbidden(*args, **kwargs):
        raise AssertionError("validity was re-checked")

    monkeypatch.setattr(graphs.core.validity, "gradient_is_nonzero", forbidden)
    monkeypatch.setattr(Program, "check", forbidden)
    children = []
    for seed in range(50):
        child, record = Mutator(p=1.0).mutate(parent, seed)
        assert record.kind == "point"
        assert record.node == parent.ids[N_IN + 7]
        children.append(child)
    monkeypatch.undo()
    for child in children:
        assert_valid_child(parent, child)


def test_dead_node_shortcut_needs_a_parent_known_to_be_valid(monkeypatch):
    # Without the cached verdict the parent itself is checked: the patch is effective.
    parent = _frozen_dqn_with_free_dead_leaf()

    def forbidden(*args, **kwargs):
        raise AssertionError("validity was re-checked")

    monkeypatch.setattr(Program, "check", forbidden)
    with pytest.raises(AssertionError, match="re-checked"):
        Mutator(p=1.0).mutate(parent, 0)
