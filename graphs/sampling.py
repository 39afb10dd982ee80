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

from graphs.errors import ProgramError
from graphs.op import Op, Signature
from graphs.opset import OpSet
from graphs.program import Node
from graphs.types import ValueType


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


class ChoiceSampler:
    """Draws type-valid (op, args) choices uniformly, optionally for a required type."""

    def __init__(self, opset: OpSet, ops: Sequence[Op | str] | None = None) -> None:
        self.opset = opset
        chosen = None if ops is None else [o if isinstance(o, Op) else opset.op(o) for o in ops]
        self.choices: list[tuple[Op, Signature]] = opset.choices(chosen)
        self._types = opset.types
        self._cache: dict[tuple, tuple[list[int], list[int]]] = {}

    def _table(self, pool: Pool, out: ValueType | None, carry: bool) -> tuple[list[int], list[int]]:
        counts = tuple(pool.counts)
        ccounts = tuple(pool.carrying) if carry else ()
        key = (counts, ccounts, out)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        pos = self.opset.type_positions
        cum: list[int] = []
        which: list[int] = []
        total = 0
        for k, (op, sig) in enumerate(self.choices):
            if out is not None and sig.out != out:
                continue
            w = 1
            for t in sig.args:
                w *= counts[pos[t]]
            if carry and w:
                # tuples with no gradient-carrying argument in a gradient position
                w_none = 1
                for t, g in zip(sig.args, op.grad_args):
                    w_none *= counts[pos[t]] - (ccounts[pos[t]] if g else 0)
                w -= w_none
            if w:
                total += w
                cum.append(total)
                which.append(k)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = (cum, which)
        return cum, which

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
        cum, which = self._table(pool, out, carry)
        if not cum:
            need = f" of type {out.name}" if out is not None else ""
            grad = " that carries a gradient" if carry else ""
            raise ProgramError(
                f"no operator can produce a node{need}{grad} from the available nodes"
            )
        op, sig = self.choices[which[bisect.bisect_right(cum, rng.random() * cum[-1])]]
        by_type, flags, rand = pool.by_type, pool.flags, rng.random
        while True:
            args = tuple((g := by_type[t])[int(rand() * len(g))] for t in sig.args)
            if not carry or any(g and flags[a] for g, a in zip(op.grad_args, args)):
                return Node(op, args), sig.out
