"""Uniform sampling of a node's (op, arguments) among all type-valid choices.

Given the nodes available as arguments, every (op, signature, argument tuple)
that type-checks is one choice; :class:`ChoiceSampler` draws one uniformly without
enumerating them, by weighting each signature with the number of argument tuples
that fit it. Weights depend only on how many nodes of each type are available, so
they are cached per count vector.

For an output node the draw can be restricted to choices that take at least one
gradient-carrying argument in a position that passes gradients (``carrying``);
it is still uniform among those choices.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

import numpy as np

from graphs.core.errors import ProgramError
from graphs.core.op import Op, Signature
from graphs.core.opset import OpSet
from graphs.core.program import Node, Program
from graphs.core.types import ValueType


def as_rng(seed: int | random.Random | None) -> random.Random:
    """A ``random.Random`` from a seed (or the generator itself)."""
    return seed if isinstance(seed, random.Random) else random.Random(seed)


class Pool:
    """The nodes available as arguments: grouped by type, counted per type (in the
    op set's type order) and flagged where they carry a gradient."""

    __slots__ = ("by_type", "flags", "counts", "carrying", "_pos")

    def __init__(self, opset: OpSet) -> None:
        self._pos = opset.type_positions
        self.by_type: dict[ValueType, list[int]] = {}
        self.flags: list[bool] = []
        self.counts = [0] * len(self._pos)
        self.carrying = [0] * len(self._pos)

    @classmethod
    def of(
        cls, opset: OpSet, types: Sequence[ValueType], carries: Sequence[bool], end: int
    ) -> Pool:
        pool = cls(opset)
        for i in range(end):
            pool.add(types[i], carries[i])
        return pool

    @classmethod
    def prefix(cls, program: Program, end: int, carrying: bool = False) -> Pool:
        """The pool of ``program``'s indices below ``end`` (per-type index lists are
        cached on the program, so this costs a few slices). Gradient-carrying counts
        are only filled in with ``carrying`` (they matter for output nodes only)."""
        groups = program.memo("type_groups", lambda: _type_groups(program))
        pool = cls.__new__(cls)
        pool._pos = pos = program.opset.type_positions
        pool.flags = flags = program.carries_gradient
        pool.by_type = {}
        pool.counts = [0] * len(pos)
        pool.carrying = [0] * len(pos)
        for t, members in groups.items():
            k = bisect.bisect_left(members, end)
            if k:
                group = pool.by_type[t] = members[:k]
                pool.counts[pos[t]] = k
                if carrying:
                    pool.carrying[pos[t]] = sum(flags[i] for i in group)
        return pool

    def copy(self) -> Pool:
        """An independent copy (to start several draws from the same nodes)."""
        pool = Pool.__new__(Pool)
        pool._pos = self._pos
        pool.by_type = {t: list(g) for t, g in self.by_type.items()}
        pool.flags = list(self.flags)
        pool.counts = list(self.counts)
        pool.carrying = list(self.carrying)
        return pool

    def add(self, t: ValueType, carries: bool) -> None:
        group = self.by_type.get(t)
        if group is None:
            group = self.by_type[t] = []
        group.append(len(self.flags))
        p = self._pos[t]
        self.counts[p] += 1
        if carries:
            self.carrying[p] += 1
        self.flags.append(carries)


_SHARED: dict[tuple, ChoiceSampler] = {}


def shared_sampler(opset: OpSet, ops: Sequence[Op | str] | None = None) -> ChoiceSampler:
    """One sampler per (op set, allowed ops), so its weight tables are reused."""
    key = (opset.name, id(opset), None if ops is None else tuple(
        o.name if isinstance(o, Op) else o for o in ops))
    sampler = _SHARED.get(key)
    if sampler is None:
        sampler = _SHARED[key] = ChoiceSampler(opset, ops)
    return sampler


def _type_groups(program: Program) -> dict[ValueType, list[int]]:
    """Per type, the indices of that type in ascending order."""
    types = program.types
    return {t: [i for i, x in enumerate(types) if x is t] for t in set(types)}


class ChoiceSampler:
    """Draws type-valid (op, args) choices uniformly, optionally for a required type."""

    def __init__(self, opset: OpSet, ops: Sequence[Op | str] | None = None) -> None:
        self.opset = opset
        chosen = None if ops is None else [o if isinstance(o, Op) else opset.op(o) for o in ops]
        self.choices: list[tuple[Op, Signature]] = opset.choices(chosen)
        pos = opset.type_positions
        n_types = len(pos)
        arity = max((len(sig.args) for _, sig in self.choices), default=0)
        # Per choice and argument slot: the type's position, or n_types (a count of 1)
        # for unused slots; and whether the slot passes gradients.
        self._slots = np.full((len(self.choices), max(arity, 1)), n_types, dtype=np.int64)
        self._grad = np.zeros(self._slots.shape, dtype=bool)
        for k, (op, sig) in enumerate(self.choices):
            for j, t in enumerate(sig.args):
                self._slots[k, j] = pos[t]
                self._grad[k, j] = op.grad_args[j]
        self._out = {t: np.array([sig.out is t for _, sig in self.choices]) for t in pos}
        self._cache: dict[tuple, tuple[list[int], list[int]]] = {}

    def _table(self, pool: Pool, out: ValueType | None, carry: bool) -> tuple[list[int], list[int]]:
        counts = tuple(pool.counts)
        ccounts = tuple(pool.carrying) if carry else ()
        key = (counts, ccounts, out)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        c = np.array(counts + (1,), dtype=np.int64)
        w = c[self._slots].prod(axis=1)
        if carry:
            # minus the tuples with no gradient-carrying argument in a gradient slot
            free = c - np.array(ccounts + (0,), dtype=np.int64)
            w = w - np.where(self._grad, free[self._slots], c[self._slots]).prod(axis=1)
        if out is not None:
            w = np.where(self._out[out], w, 0)
        which = np.flatnonzero(w)
        table = (np.cumsum(w[which]).tolist(), which.tolist())
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = table
        return table

    def count(self, pool: Pool, out: ValueType | None = None, carry: bool = False) -> int:
        """How many type-valid choices there are."""
        cum, _ = self._table(pool, out, carry)
        return cum[-1] if cum else 0

    def sample(
        self, pool: Pool, rng: random.Random, out: ValueType | None = None, carry: bool = False
    ) -> tuple[Node, ValueType]:
        """One uniformly drawn choice, as a new node and its output type.

        ``out`` restricts the output type; ``carry`` requires a gradient-carrying
        argument in a position that passes gradients.
        """
        drawn = self.try_sample(pool, rng, out, carry)
        if drawn is None:
            need = f" of type {out.name}" if out is not None else ""
            grad = " that carries a gradient" if carry else ""
            raise ProgramError(
                f"no operator can produce a node{need}{grad} from the available nodes"
            )
        return drawn

    def try_sample(
        self, pool: Pool, rng: random.Random, out: ValueType | None = None, carry: bool = False
    ) -> tuple[Node, ValueType] | None:
        """:meth:`sample`, or None when there is no valid choice (without raising)."""
        cum, which = self._table(pool, out, carry)
        if not cum:
            return None
        op, sig = self.choices[which[bisect.bisect_right(cum, rng.random() * cum[-1])]]
        by_type, flags, rand = pool.by_type, pool.flags, rng.random
        while True:
            args = tuple([(g := by_type[t])[int(rand() * len(g))] for t in sig.args])
            if not carry or any(flags[args[p]] for p in op.grad_positions):
                return Node(op, args), sig.out
