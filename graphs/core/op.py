"""Operators: type signature, numpy forward and backward rule, kept side by side.

An :class:`Op` is everything the engine knows about one operator. Adding an op is
one definition in one place: its accepted input types and output type, whether it
broadcasts or is commutative, its forward function, its vector-Jacobian product,
and how it renders in a formula.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphs.core.types import ValueType

# backward(g, out, *args) -> one gradient per argument (None where no gradient flows)
Backward = Callable[..., tuple[Any, ...]]


@dataclass(frozen=True)
class Signature:
    """One accepted combination of argument types and the resulting output type."""

    args: tuple[ValueType, ...]
    out: ValueType

    def __repr__(self) -> str:
        return f"({', '.join(t.name for t in self.args)}) -> {self.out.name}"


@dataclass(frozen=True, eq=False)
class Op:
    """A typed operator.

    Attributes:
        name: unique name within its op set; used in program files.
        signatures: every accepted argument-type tuple with its output type.
        forward: numpy function of the argument values (or of an ``rng`` for
            ``kind == "random"``; not called for ``kind == "apply"``).
        backward: vector-Jacobian product ``backward(g, out, *args)`` returning one
            gradient per argument, or ``None`` when the op carries no gradient.
        kind: ``"compute"``; ``"apply"`` (applies a parameter input, e.g. a
            Q-network, to its second argument); or ``"random"`` (draws a value).
        commutative: ``f(x, y) == f(y, x)`` whenever both orders type-check.
        broadcasts: arguments of different shapes broadcast numpy-style.
        render: formats the rendered arguments (and their types) into formula text.
        precedence: binding strength of the rendered text (higher binds tighter).
        arg_precedence: minimum precedence each rendered argument needs to appear
            without parentheses.
        grad_args: per argument, whether a gradient flows through it.
        mixes_rows: the output for one sample depends on other samples of the batch
            (e.g. a mean over the batch). Programs free of such ops (and of random
            draws) can evaluate several independent batches stacked as one.
        faithful: per argument, whether the VJP never maps a non-zero cotangent to
            zero (whatever the argument values): e.g. Add and Select are faithful,
            Mul is not (the other factor may be zero), nor are shift-invariant ops
            such as Softmax and Std. Used to prove a gradient non-zero cheaply.
    """

    name: str
    signatures: tuple[Signature, ...]
    forward: Callable[..., Any]
    backward: Backward | None
    doc: str = ""
    kind: str = "compute"
    commutative: bool = False
    broadcasts: bool = False
    render: Callable[[tuple[str, ...], tuple[ValueType, ...]], str] | None = None
    precedence: int = 100
    arg_precedence: tuple[int, ...] = ()
    grad_args: tuple[bool, ...] = field(default=())
    faithful: tuple[bool, ...] = field(default=())
    mixes_rows: bool = False

    def __post_init__(self) -> None:
        arities = {len(s.args) for s in self.signatures}
        if len(arities) != 1:
            raise ValueError(f"op {self.name}: all signatures need the same arity")
        arity = arities.pop()
        object.__setattr__(self, "arity", arity)
        if not self.grad_args:
            carries = self.backward is not None and self.kind == "compute"
            object.__setattr__(self, "grad_args", (carries,) * arity)
        object.__setattr__(
            self, "grad_positions", tuple(i for i, g in enumerate(self.grad_args) if g)
        )
        if not self.faithful:
            object.__setattr__(self, "faithful", (False,) * arity)
        if not self.arg_precedence:
            object.__setattr__(self, "arg_precedence", (0,) * arity)

    arity: int = field(init=False, default=0)
    grad_positions: tuple[int, ...] = field(init=False, default=())

    def __repr__(self) -> str:
        return f"Op({self.name})"

    def format(self, args: Sequence[str], types: Sequence[ValueType] = ()) -> str:
        """Render this op applied to already-rendered arguments of the given types."""
        if self.render is not None:
            return self.render(tuple(args), tuple(types))
        return f"{self.name}({', '.join(args)})"


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a gradient over the axes along which an argument of ``shape`` was broadcast."""
    if g.shape == shape:
        return g
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g
