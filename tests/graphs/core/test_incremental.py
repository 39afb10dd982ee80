"""Point-edited children reuse their parent's per-node results (probe values, node
hashes, compact file text); every reused result must equal a from-scratch one."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from graphs.core.equivalence import FEC, node_hashes
from graphs.core.execute import probe_gradients, probe_trace
from graphs.core.fileformat import dumps, to_dict
from graphs.core.mutation import Mutator
from graphs.core.program import Program
from graphs.rl_loss.generation import from_scratch, seeded_program


def scratch(p: Program) -> Program:
    """The same program with nothing cached and no parent to reuse from."""
    return Program(p.opset, p.nodes, p.inputs, p.output, p.ids[p.n_inputs:])


def same_values(a: list, b: list) -> bool:
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif x is not y and x != y:
            return False
    return len(a) == len(b)


def walk(start: Program, steps: int, seed: int) -> list[tuple[Program, Program]]:
    """(parent, child) pairs along a random walk; each parent has computed its probe
    results before its child is drawn, as in a search (fingerprinted members)."""
    mutator, rng, cur, pairs = Mutator(p=1.0), random.Random(seed), start, []
    fec = FEC()
    for _ in range(steps):
        fec(cur)
        probe_trace(cur, 1)
        child = mutator(cur, rng)
        pairs.append((cur, child))
        cur = child
    return pairs


@pytest.mark.parametrize("seed", range(4))
def test_reused_results_equal_fresh_ones(seed):
    start = seeded_program("dqn", 14, seed=seed) if seed % 2 else from_scratch(7, seed=seed)
    reused = shared = 0
    for parent, child in walk(start, 300, seed):
        fresh = scratch(child)
        if child.edited is None:  # a dead node changed: same function, results shared
            assert child.recall("reuse") is parent.recall("reuse")
            assert child.plan == parent.plan
            shared += 1
        assert node_hashes(child) == node_hashes(fresh)
        for which in (0, 1):
            assert same_values(probe_trace(child, which).values,
                               probe_trace(fresh, which).values)
            g, h = probe_gradients(child, which), probe_gradients(fresh, which)
            assert g.keys() == h.keys()
            assert all(np.array_equal(g[k], h[k], equal_nan=True) for k in g)
        for mode in ("training", "output"):
            assert FEC(mode)(child) == FEC(mode, memo_size=0)(fresh)
        assert dumps(child, compact=True) == json.dumps(to_dict(fresh), ensure_ascii=False,
                                                        allow_nan=False)
        if child.edited is not None:
            keep = child._unaffected(child.edited)
            reused += sum(keep[i] for i, _, _ in child.plan)
    assert reused > 0 and shared > 0  # both shortcuts were exercised


def test_random_draws_are_never_reused():
    """Draws depend on their order in the plan, so they and their consumers are
    always recomputed, and still match a from-scratch pass."""
    seen = 0
    for seed in range(40):
        for _parent, child in walk(seeded_program("dqn", 14, seed=seed), 30, seed):
            if child.edited is None:
                continue
            keep = child._unaffected(child.edited)
            for idx, op, _ in child.plan:
                if op.kind == "random":
                    seen += 1
                    assert not keep[idx]
            assert same_values(probe_trace(child, 0).values,
                               probe_trace(scratch(child), 0).values)
    assert seen > 0


def test_edit_keeps_no_ancestor_alive():
    """A child holds its parent's per-node lists, never a program, so a long walk
    does not keep its ancestors alive."""
    pairs = walk(seeded_program("dqn", 14, seed=0), 50, 0)
    child = pairs[-1][1]
    probe_trace(child, 0)
    seen, todo, found = set(), [dict(child.memos())], []
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Program):
            found.append(obj)
        elif isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple)):
            todo.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            todo.append(vars(obj))
    assert found == []
