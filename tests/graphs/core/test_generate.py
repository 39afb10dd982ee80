"""Random program generation: seeding, validity, determinism and uniform node choices."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from graphs.core.errors import ProgramError
from graphs.core.generate import fill, random_program
from graphs.core.sampling import ChoiceSampler, Pool
from graphs.core.validity import gradient_is_nonzero
from graphs.rl_loss.generation import from_scratch, seeded_program
from graphs.rl_loss.library import builtin
from graphs.rl_loss.library import from_steps as build
from graphs.rl_loss.ops import FLOAT, LIST, RL_LOSS

N_IN = len(RL_LOSS.inputs)
RESTRICTED = ["QValues", "Select", "Sub", "Square", "Add", "Mul", "Max"]






# -- shapes of seeded and from-scratch programs ----------------------------------------------
def test_seeded_program_is_dqn_plus_14_random_nodes():
    dqn = builtin("dqn")
    for seed in range(20):
        p = seeded_program("dqn", 14, seed)
        assert len(p.nodes) == 21
        assert p.nodes[:7] == dqn.nodes
        assert not any(n.frozen for n in p.nodes)
        assert p.output == len(p) - 1
        assert p.types[p.output] is FLOAT
        p.check(numeric=True)
        assert gradient_is_nonzero(p, memo=False)


def test_seeded_program_default_arguments_are_dqn_plus_14():
    p = seeded_program(seed=3)
    assert len(p.nodes) == 21
    assert p.nodes[:7] == builtin("dqn").nodes


def test_seeded_program_accepts_a_program_as_base():
    base = builtin("ddqn")
    p = seeded_program(base, 5, seed=1)
    assert len(p.nodes) == len(base.nodes) + 5
    assert p.nodes[: len(base.nodes)] == base.nodes
    p.check()


def test_from_scratch_is_frozen_skeleton_plus_7_free_nodes():
    skel = builtin("skeleton")
    for seed in range(20):
        p = from_scratch(seed=seed)
        assert len(p.nodes) == 11
        assert p.nodes[:4] == skel.nodes
        assert all(n.frozen for n in p.nodes[:4])
        assert not any(n.frozen for n in p.nodes[4:])
        assert p.output == len(p) - 1
        p.check(numeric=True)


def test_many_seeds_all_valid():
    for seed in range(300):
        for p in (seeded_program("dqn", 14, seed), from_scratch(seed=seed)):
            p.check(numeric=True)
            assert p.types[p.output] is FLOAT
            assert p.carries_gradient[p.output]
            assert gradient_is_nonzero(p, memo=False), p


def test_random_program_keeps_base_ids_and_adds_fresh_unique_ones():
    p = random_program(builtin("dqn"), 3, seed=0)
    assert p.ids[: N_IN + 7] == builtin("dqn").ids
    assert len(set(p.ids)) == len(p.ids)


# -- determinism ------------------------------------------------------------------------------
def test_same_seed_gives_equal_programs():
    for seed in range(10):
        assert seeded_program("dqn", 14, seed) == seeded_program("dqn", 14, seed)
        assert from_scratch(seed=seed) == from_scratch(seed=seed)


def test_different_seeds_give_different_programs():
    seeded = {seeded_program("dqn", 14, s) for s in range(50)}
    scratch = {from_scratch(seed=s) for s in range(50)}
    assert len(seeded) >= 49
    assert len(scratch) >= 45


def test_random_instance_works_as_seed():
    assert seeded_program("dqn", 14, random.Random(42)) == seeded_program("dqn", 14, 42)
    assert from_scratch(seed=random.Random(7)) == from_scratch(seed=7)
    rng = random.Random(1)
    a, b = from_scratch(seed=rng), from_scratch(seed=rng)  # the generator advances
    assert a != b
    a.check()
    b.check()


# -- uniformity of ChoiceSampler --------------------------------------------------------------
def _pool(extra=()):
    """The standard inputs plus ``extra`` nodes given as ``(type, carries)``."""
    pool = Pool(RL_LOSS)
    types = [inp.type for inp in RL_LOSS.inputs]
    flags = [False] * N_IN
    for t in types:
        pool.add(t, False)
    for t, carries in extra:
        pool.add(t, carries)
        types.append(t)
        flags.append(carries)
    return pool, types, flags


def _enumerate(types, flags, ops=None, out=None, carry=False):
    """Every type-valid (op name, args) choice, independently of the sampler."""
    allowed = RL_LOSS.ops if ops is None else [RL_LOSS.op(o) for o in ops]
    choices = set()
    for op in allowed:
        for argtypes in (k[1] for k in RL_LOSS.signature_table if k[0] == op.name):
            result = RL_LOSS.signature_table[(op.name, argtypes)]
            if out is not None and result is not out:
                continue
            slots = [[i for i, t in enumerate(types) if t is want] for want in argtypes]
            for args in itertools.product(*slots):
                if carry and not any(g and flags[a] for g, a in zip(op.grad_args, args)):
                    continue
                choices.add((op.name, args))
    return choices


def _assert_uniform(sampler, pool, expected, n, seed, **kw):
    rng = random.Random(seed)
    counts = Counter()
    for _ in range(n):
        node, out = sampler.sample(pool, rng, **kw)
        counts[(node.op.name, node.args)] += 1
    assert set(counts) <= expected, set(counts) - expected
    assert set(counts) == expected, expected - set(counts)
    assert sampler.count(pool, kw.get("out"), kw.get("carry", False)) == len(expected)
    k = len(expected)
    mean = n / k
    chi2 = sum((counts[c] - mean) ** 2 / mean for c in expected)
    df = k - 1
    # chi-square with df degrees of freedom: mean df, sd sqrt(2 df); 5 sd is p < 1e-5
    assert chi2 < df + 5 * math.sqrt(2 * df), (chi2, df)
    worst = max(abs(counts[c] - mean) / mean for c in expected)
    assert worst < 6 / math.sqrt(mean), worst


N_SAMPLES = 60_000
BIG_POOL = [(LIST, True), (FLOAT, True), (LIST, False), (RL_LOSS.type("PROB"), False)]


def test_sampler_is_uniform_over_inputs_only():
    pool, types, flags = _pool()
    expected = _enumerate(types, flags)
    assert len(expected) == 52  # 4 QValues + 7 binary ops x 4 + 7 unary x 2 + 6 nullary
    _assert_uniform(ChoiceSampler(RL_LOSS), pool, expected, N_SAMPLES, seed=0)


def test_sampler_is_uniform_over_a_mixed_pool():
    pool, types, flags = _pool(BIG_POOL)
    expected = _enumerate(types, flags)
    assert len(expected) > 150
    _assert_uniform(ChoiceSampler(RL_LOSS), pool, expected, N_SAMPLES, seed=1)


def test_sampler_is_uniform_with_output_type_restriction():
    pool, types, flags = _pool(BIG_POOL)
    expected = _enumerate(types, flags, out=LIST)
    _assert_uniform(ChoiceSampler(RL_LOSS), pool, expected, N_SAMPLES // 2, seed=2, out=LIST)


def test_sampler_is_uniform_among_gradient_carrying_choices():
    pool, types, flags = _pool(BIG_POOL)
    expected = _enumerate(types, flags, out=FLOAT, carry=True)
    assert len(expected) < len(_enumerate(types, flags, out=FLOAT))
    _assert_uniform(ChoiceSampler(RL_LOSS), pool, expected, N_SAMPLES // 2, seed=3,
                    out=FLOAT, carry=True)
    expected = _enumerate(types, flags, carry=True)
    _assert_uniform(ChoiceSampler(RL_LOSS), pool, expected, N_SAMPLES // 2, seed=4,
                    carry=True)


def test_sampler_with_restricted_ops_is_uniform_over_those_ops():
    pool, types, flags = _pool(BIG_POOL)
    expected = _enumerate(types, flags, ops=RESTRICTED)
    _assert_uniform(ChoiceSampler(RL_LOSS, RESTRICTED), pool, expected, N_SAMPLES // 2, seed=5)


def test_sampler_without_any_valid_choice_raises():
    pool, _, _ = _pool()
    with pytest.raises(ProgramError, match="carries a gradient"):
        ChoiceSampler(RL_LOSS).sample(pool, random.Random(0), FLOAT, carry=True)
    with pytest.raises(ProgramError, match="of type LIST"):
        ChoiceSampler(RL_LOSS, ["Add"]).sample(pool, random.Random(0), LIST)


# -- restricted op sets -----------------------------------------------------------------------
def test_restricted_ops_only_appear_in_new_nodes():
    seen = Counter()
    for seed in range(100):
        p = seeded_program("dqn", 14, seed, ops=RESTRICTED)
        for n in p.nodes[7:]:
            seen[n.op.name] += 1
        p.check()
        q = from_scratch(seed=seed, ops=RESTRICTED)
        for n in q.nodes[4:]:
            seen[n.op.name] += 1
        q.check()
    assert set(seen) <= set(RESTRICTED), set(seen) - set(RESTRICTED)
    assert len(seen) >= 5


def test_ops_that_cannot_reach_q_raise_instead_of_looping():
    base = build([("Tenth", "r_t")])  # no node applies the Q-network
    with pytest.raises(ProgramError, match="no valid program"):
        random_program(base, 4, seed=0, ops=["Add", "Sub"])
    template = random_program(builtin("dqn"), 3, seed=0)
    free = [False] * 7 + [True] * 3
    with pytest.raises(ProgramError, match="in 5 random draws"):
        fill(template, free, random.Random(0), ChoiceSampler(RL_LOSS, ["Normal"]), max_tries=5)


@pytest.mark.parametrize("n", [0, -1, 1.5, None])
def test_n_nodes_below_one_raises(n):
    with pytest.raises(ProgramError, match="n_nodes"):
        random_program(builtin("dqn"), n, seed=0)


def test_zero_extra_or_free_nodes_raise():
    with pytest.raises(ProgramError):
        seeded_program("dqn", 0, seed=0)
    with pytest.raises(ProgramError):
        from_scratch(0, seed=0)
