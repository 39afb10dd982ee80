"""Mutation (reference.md section 1.3).

With probability ``p`` a point mutation: pick a non-frozen operator node uniformly
and redraw its (op, arguments) uniformly among the type-valid choices; a node that
other nodes consume keeps its output type, a leaf may change type. Otherwise
(probability ``1 - p``) a brand-new random program of the same shape. Draws repeat
until the child is valid, so every child is valid.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graphs.core.errors import ProgramError
from graphs.core.generate import resample_free_nodes
from graphs.core.op import Op
from graphs.core.opset import OpSet
from graphs.core.program import Program
from graphs.core.sampling import ChoiceSampler, Pool, as_rng, shared_sampler


@dataclass(frozen=True)
class Mutation:
    """What a mutation did, for lineage records: ``kind`` is ``"point"`` or
    ``"fresh"``; ``node`` is the id of the changed node (point mutations)."""

    kind: str
    node: str | None = None
    before: str | None = None
    after: str | None = None

    def __str__(self) -> str:
        if self.kind == "point":
            return f"point {self.node}: {self.before} -> {self.after}"
        return self.kind


def _describe(program: Program, index: int) -> str:
    node = program.node(index)
    return f"{node.op.name}({', '.join(program.ids[a] for a in node.args)})"


class Mutator:
    """Produces valid children of valid programs.

    Args:
        p: probability of a point mutation (the paper's 0.95); otherwise a fresh
            random program of the same shape.
        ops: restrict the ops that mutation may introduce (default: the whole op set).
        max_tries: point-mutation draws before falling back to a fresh program.
        fresh: draws a brand-new program, e.g. the search space's initial
            distribution (``lambda rng: seeded_program("dqn", 14, rng)``). By default
            every non-frozen node of the parent is redrawn.
    """

    def __init__(
        self,
        p: float = 0.95,
        ops: Sequence[Op | str] | None = None,
        max_tries: int = 200,
        fresh: Callable[[random.Random], Program] | None = None,
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise ProgramError(f"mutation probability must be in [0, 1], got {p}", "p")
        self.p = p
        self.ops = None if ops is None else tuple(ops)
        self.max_tries = max_tries
        self.fresh = fresh

    def __repr__(self) -> str:
        ops = "all" if self.ops is None else len(self.ops)
        return f"Mutator(p={self.p}, ops={ops})"

    def sampler(self, opset: OpSet) -> ChoiceSampler:
        return shared_sampler(opset, self.ops)

    def __call__(self, parent: Program, seed: int | random.Random | None = None) -> Program:
        """A valid child of ``parent``."""
        return self.mutate(parent, seed)[0]

    def mutate(
        self, parent: Program, seed: int | random.Random | None = None
    ) -> tuple[Program, Mutation]:
        """A valid child of ``parent`` and a record of the mutation."""
        rng = as_rng(seed)
        if rng.random() < self.p:
            child = self.point(parent, rng)
            if child is not None:
                return child
        if self.fresh is not None:
            return self.fresh(rng), Mutation("fresh")
        return resample_free_nodes(parent, rng, self.sampler(parent.opset)), Mutation("fresh")

    def point(self, parent: Program, rng: random.Random) -> tuple[Program, Mutation] | None:
        """A valid point mutation of ``parent``, or None if ``max_tries`` draws failed."""
        n_in = parent.n_inputs
        free = [n_in + k for k, n in enumerate(parent.nodes) if not n.frozen]
        if not free:
            return None
        sampler = self.sampler(parent.opset)
        consumed = parent.memo("consumed", lambda: _consumed(parent))
        parent_valid = parent.remember("valid", parent.recall("valid") or parent.is_valid())
        live = parent.live
        trains = parent.opset.trains
        for _ in range(self.max_tries):
            idx = rng.choice(free)
            need = parent.types[idx] if consumed[idx] else None
            # Only an output of the op set's output type with a gradient-carrying
            # argument can be valid; drawing among those directly is the same as
            # drawing among all choices and rejecting the rest.
            is_out = idx == parent.output
            if is_out:
                need = parent.opset.output_type
            pool = Pool.prefix(parent, idx, carrying=is_out)
            try:
                node, out = sampler.sample(pool, rng, need, carry=is_out and trains)
            except ProgramError:
                continue
            old = parent.node(idx)
            if node.op is old.op and node.args == old.args:
                continue
            types = parent.types if out == parent.types[idx] else (
                parent.types[:idx] + (out,) + parent.types[idx + 1:])
            nodes = list(parent.nodes)
            nodes[idx - n_in] = node
            child = parent.derive(nodes, types, edited=idx)
            # A dead node stays dead whatever it computes, so the child of a valid
            # parent is then valid without re-checking, and computes what it does.
            if not live[idx]:
                child.shares_function_with(parent)
            if (parent_valid and not live[idx]) or child.is_valid():
                child.remember("valid", True)
                return child, Mutation("point", parent.ids[idx], _describe(parent, idx),
                                       _describe(child, idx))
        return None


def _consumed(program: Program) -> tuple[bool, ...]:
    used = [False] * len(program)
    for n in program.nodes:
        for a in n.args:
            used[a] = True
    return tuple(used)
