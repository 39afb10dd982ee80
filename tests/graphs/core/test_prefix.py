"""The conditioned prefix sampler draws exactly what rejection would: uniform
node-by-node draws conditioned on some node carrying a gradient. Checked against
the exact distribution, enumerated independently of the sampler."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from graphs.core.generate import resample_free_nodes
from graphs.core.prefix import prefix_sampler
from graphs.core.sampling import ChoiceSampler, Pool
from graphs.rl_loss.library import builtin
from graphs.rl_loss.ops import RL_LOSS

INPUTS = RL_LOSS.inputs
N_IN = len(INPUTS)


def _choices(types, flags):
    """Every type-valid (op, args, out type, carries) choice for a pool."""
    out = []
    for op in RL_LOSS.ops:
        for (name, argtypes), result in RL_LOSS.signature_table.items():
            if name != op.name:
                continue
            slots = [[i for i, t in enumerate(types) if t is want] for want in argtypes]
            for args in itertools.product(*slots):
                if op.kind == "apply":
                    carries = args[0] < N_IN and INPUTS[args[0]].trainable
                else:
                    carries = any(g and flags[a] for g, a in zip(op.grad_args, args))
                out.append((op.name, args, result, carries))
    return out


def _exact(length: int):
    """P(sequence | some node carries) for every sequence of ``length`` uniform draws."""
    probs = {}

    def walk(types, flags, seq, p):
        if len(seq) == length:
            if any(c for *_, c in seq):
                probs[tuple(seq)] = p
            return
        options = _choices(types, flags)
        for choice in options:
            walk(types + [choice[2]], flags + [choice[3]], seq + [choice], p / len(options))

    walk([i.type for i in INPUTS], [False] * N_IN, [], 1.0)
    total = sum(probs.values())
    return {k: v / total for k, v in probs.items()}


def _draw(length: int, rng: random.Random):
    sampler = ChoiceSampler(RL_LOSS)
    prefix = prefix_sampler(sampler, INPUTS)
    pool = Pool(RL_LOSS)
    for inp in INPUTS:
        pool.add(inp.type, False)
    seq, carried = [], False
    for k in range(length):
        if not carried:
            node, out, carries = prefix.draw(pool, rng, length - k)
            carried = carries
        else:
            node, out = sampler.sample(pool, rng)
            op = node.op
            if op.kind == "apply":
                carries = node.args[0] < N_IN and INPUTS[node.args[0]].trainable
            else:
                carries = any(g and pool.flags[a] for g, a in zip(op.grad_args, node.args))
        pool.add(out, carries)
        seq.append((node.op.name, node.args, out, carries))
    return tuple(seq)


def _chi2_ok(observed: Counter, expected: dict, n: int) -> None:
    """Pearson chi-square over categories with expected count >= 5 (the rest pooled):
    below df + 5 sd (p < 1e-5 under the null)."""
    big = {k: p * n for k, p in expected.items() if p * n >= 5}
    rest_e = n - sum(big.values())
    rest_o = n - sum(observed[k] for k in big)
    chi2 = sum((observed[k] - e) ** 2 / e for k, e in big.items())
    df = len(big) - 1
    if rest_e >= 5:
        chi2 += (rest_o - rest_e) ** 2 / rest_e
        df += 1
    assert set(observed) <= set(expected), "drew a sequence without a carrying node"
    assert chi2 < df + 5 * math.sqrt(2 * df), (chi2, df)


def _marginal(dist: dict, key) -> dict:
    out: dict = {}
    for seq, p in dist.items():
        out[key(seq)] = out.get(key(seq), 0.0) + p
    return out


def test_one_draw_must_apply_the_trainable_network():
    rng = random.Random(0)
    seen = Counter(_draw(1, rng) for _ in range(2000))
    exact = _exact(1)
    assert set(seen) == set(exact)  # Q(s_t) and Q(s_tp1), nothing else
    assert len(exact) == 2
    _chi2_ok(seen, exact, 2000)


def test_two_draws_match_the_exact_conditional_distribution():
    exact = _exact(2)
    n = 40_000
    rng = random.Random(1)
    draws = [_draw(2, rng) for _ in range(n)]
    for key in (lambda s: s[0][:2], lambda s: s[1][0], lambda s: (s[0][3], s[1][3])):
        _chi2_ok(Counter(key(s) for s in draws), _marginal(exact, key), n)


def test_where_the_first_carrying_node_falls_matches_three_draws_exactly():
    exact = _exact(3)
    n = 20_000
    rng = random.Random(2)
    first = lambda s: next(k for k, node in enumerate(s) if node[3])  # noqa: E731
    types = lambda s: tuple(node[2].name for node in s)  # noqa: E731
    draws = [_draw(3, rng) for _ in range(n)]
    for key in (first, types):
        _chi2_ok(Counter(key(s) for s in draws), _marginal(exact, key), n)


@pytest.mark.parametrize("name", ["dqnclipped", "cql", "dqnreg"])
def test_fresh_all_free_programs_are_valid_and_deterministic(name):
    parent = builtin(name)
    a = [resample_free_nodes(parent, seed) for seed in range(50)]
    b = [resample_free_nodes(parent, seed) for seed in range(50)]
    assert a == b
    for p in a:
        p.check()
        assert len(p.nodes) == len(parent.nodes)
    assert len(set(a)) > 45
