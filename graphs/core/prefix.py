"""Random-program prefixes drawn conditioned on containing a gradient-carrying node.

A fresh program whose nodes are all drawn at random is valid only if its output
can take a gradient-carrying argument, i.e. if some earlier node carries a gradient.
Drawn node by node, that is rare (about one prefix in twelve for a 14-node loss), so
rejecting whole prefixes wastes most of the work.

Before the first carrying node, only an application of a trainable input (e.g.
``Q(s,·)``) can carry, and whether one appears in the remaining draws depends only
on how many nodes of each type the pool holds. A dynamic program over those counts
gives, for every state, the probability that no carrying node appears in the
remaining draws. Weighting each choice by the probability that the condition can
still be met then draws a prefix from exactly the distribution that rejection gives
(uniform node-by-node draws, conditioned on a carrying node), without rejecting any.
After the first carrying node, draws are the ordinary unconditioned ones.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

import numpy as np

from graphs.core.program import Input, Node
from graphs.core.sampling import ChoiceSampler, Pool
from graphs.core.types import ValueType


class PrefixSampler:
    """Draws the nodes before the first gradient-carrying one, conditioned on a carrying
    node appearing within a given number of draws.

    Args:
        sampler: the uniform choice sampler whose distribution is conditioned.
        inputs: the programs' inputs (which of them are trainable matters).
    """

    def __init__(self, sampler: ChoiceSampler, inputs: Sequence[Input]) -> None:
        self.sampler = sampler
        pos = sampler.opset.type_positions
        self.n_types = n_types = len(pos)
        slots = sampler._slots
        self._slots = slots
        self._out = np.array([pos[sig.out] for _, sig in sampler.choices], dtype=np.int64)
        self._apply = np.array([op.kind == "apply" for op, _ in sampler.choices])
        trainable = np.zeros(n_types + 1, dtype=np.int64)  # last: unused slots
        for inp in inputs:
            if inp.trainable:
                trainable[pos[inp.type]] += 1
        self._trainable = trainable
        self._is_trainable = tuple(inp.trainable for inp in inputs)
        self._none: dict[tuple, float] = {}
        self._tables: dict[tuple, tuple[list[float], list[int], list[float]]] = {}

    def _weights(self, counts: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per choice: all argument tuples, and those that carry (a trainable input
        applied, while no other node carries yet)."""
        c = np.array(counts + (1,), dtype=np.int64)
        per_slot = c[self._slots]
        total = per_slot.prod(axis=1)
        rest = per_slot[:, 1:].prod(axis=1) if per_slot.shape[1] > 1 else np.ones_like(total)
        carrying = np.where(self._apply, self._trainable[self._slots[:, 0]] * rest, 0)
        return total.astype(float), carrying.astype(float)

    def p_none(self, draws: int, counts: tuple[int, ...]) -> float:
        """Probability that ``draws`` more uniform draws from a pool with these type
        counts (and no carrying node) produce no carrying node."""
        if draws == 0:
            return 1.0
        key = (draws, counts)
        known = self._none.get(key)
        if known is not None:
            return known
        total, carrying = self._weights(counts)
        mass = total.sum()
        if mass == 0:
            value = 1.0  # nothing can be drawn at all
        else:
            by_type = np.bincount(self._out, weights=total - carrying, minlength=self.n_types)
            value = 0.0
            for t in np.flatnonzero(by_type):
                nxt = counts[:t] + (counts[t] + 1,) + counts[t + 1:]
                value += by_type[t] / mass * self.p_none(draws - 1, nxt)
        if len(self._none) > 200_000:
            self._none.clear()
        self._none[key] = value
        return value

    def _table(self, draws: int, counts: tuple[int, ...]) -> tuple[list[float], list[int],
                                                                      list[float]]:
        key = (draws, counts)
        hit = self._tables.get(key)
        if hit is not None:
            return hit
        total, carrying = self._weights(counts)
        still = np.zeros(self.n_types)  # P(a carrying node later | this output type)
        for t in np.unique(self._out):
            nxt = counts[:t] + (counts[t] + 1,) + counts[t + 1:]
            still[t] = 1.0 - self.p_none(draws - 1, nxt)
        weight = carrying + (total - carrying) * still[self._out]
        which = np.flatnonzero(weight > 0)
        w = weight[which]
        table = (np.cumsum(w).tolist(), which.tolist(), (carrying[which] / w).tolist())
        if len(self._tables) > 100_000:
            self._tables.clear()
        self._tables[key] = table
        return table

    def draw(self, pool: Pool, rng: random.Random, draws: int
             ) -> tuple[Node, ValueType, bool] | None:
        """The next node, given that no node in ``pool`` carries and a carrying node
        must appear within ``draws`` draws (this one included): the node, its type and
        whether it carries. None if that is impossible."""
        cum, which, p_carry = self._table(draws, tuple(pool.counts))
        if not cum:
            return None
        k = bisect.bisect_right(cum, rng.random() * cum[-1])
        op, sig = self.sampler.choices[which[k]]
        carries = rng.random() < p_carry[k]
        rand, by_type = rng.random, pool.by_type
        args = []
        for slot, t in enumerate(sig.args):
            members = by_type[t]
            if slot == 0 and op.kind == "apply":
                flags = self._is_trainable
                n_in = len(flags)
                members = [m for m in members if (m < n_in and flags[m]) == carries]
            args.append(members[int(rand() * len(members))])
        return Node(op, tuple(args)), sig.out, carries


def prefix_sampler(sampler: ChoiceSampler, inputs: Sequence[Input]) -> PrefixSampler:
    """The (cached) prefix sampler of ``sampler`` for programs with these inputs."""
    cache = sampler.__dict__.setdefault("_prefix_samplers", {})
    key = tuple(inputs)
    ps = cache.get(key)
    if ps is None:
        ps = cache[key] = PrefixSampler(sampler, inputs)
    return ps
