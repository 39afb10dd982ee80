"""The numeric half of the validity check: a gradient that is not identically zero.

A program of an op set that trains something is valid only if the gradient of its
loss with respect to the trainable inputs' outputs is finite and non-zero somewhere
on the op set's probe inputs (see :meth:`graphs.core.opset.OpSet.check`). The result
depends only on the program's structure, so it is memoized by structural hash, per
op set (:class:`GradientCheck`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from graphs.core.equivalence import structural_hash
from graphs.core.errors import ProgramError
from graphs.core.execute import (
    STACKED,
    ZERO_GRADIENT_TOL,
    gradients,
    probe_gradients,
    stackable,
)

if TYPE_CHECKING:
    from graphs.core.opset import OpSet
    from graphs.core.program import Input, Program

__all__ = ["ZERO_GRADIENT_TOL", "GradientCheck", "gradient_is_nonzero"]


class GradientCheck:
    """The numeric validity check of one op set, with its memo of results by
    structural hash (each op set holds one, as ``opset.gradient_check``)."""

    def __init__(self, opset: OpSet) -> None:
        self.opset = opset
        self.memo: dict[int, bool] = {}
        self._checked_inputs: dict[int, tuple[Input, ...]] = {}

    def __call__(self, program: Program) -> bool:
        """Whether ``program`` has a finite, non-zero gradient on the probes: the memo
        first (in a search most children repeat a known structure), then the probes.

        Every program gets this one verdict. (A structural proof that the gradient is
        not identically zero, ``program.gradient_provably_nonzero``, does not make it
        finite: a chain of 16 Squares overflows on every probe, and training with it
        gives NaN at once.)

        Raises:
            ProgramError: if the probes cannot feed a live input of ``program``.
        """
        # Structural hashes name inputs by position: only standard inputs share them.
        standard = self.standard_inputs(program.inputs)
        known = self.memo.get(structural_hash(program)) if standard else None
        if known is not None:
            return known
        self._check_probe_inputs(program)
        return gradient_is_nonzero(program)

    def remember(self, key: int, nonzero: bool) -> None:
        """Memoize whether programs with this structural hash have a gradient."""
        if len(self.memo) > 200_000:
            self.memo.clear()
        self.memo[key] = nonzero

    def standard_inputs(self, inputs: tuple[Input, ...]) -> bool:
        """Whether ``inputs`` are the op set's standard inputs (cached by identity:
        mutation shares the inputs tuple between parent and child)."""
        if self._checked_inputs.get(id(inputs)) is inputs:
            return True
        if self._nonstandard(inputs):
            return False
        if len(self._checked_inputs) > 1000:
            self._checked_inputs.clear()
        self._checked_inputs[id(inputs)] = inputs
        return True

    def _nonstandard(self, inputs: tuple[Input, ...]) -> list[int]:
        standard = {i.name: i for i in self.opset.inputs}
        return [
            i for i, inp in enumerate(inputs)
            if (std := standard.get(inp.name)) is None
            or std.type is not inp.type or std.trainable != inp.trainable
        ]

    def _check_probe_inputs(self, program: Program) -> None:
        """The probes feed the standard inputs only; anything else can't be checked."""
        inputs = program.inputs
        if self.standard_inputs(inputs):
            return
        opset = self.opset
        for i in self._nonstandard(inputs):
            if program.live[i]:
                known = ", ".join(f"{s.name}: {s.type.name}" for s in opset.inputs)
                raise ProgramError(
                    f"input {inputs[i].name!r} ({inputs[i].type.name}) is not one of the "
                    f"{opset.name} op set's inputs ({known}), so its gradient cannot be "
                    "checked numerically",
                    program.describe(i),
                )


def gradient_is_nonzero(program: Program, memo: bool = True) -> bool:
    """Whether the loss gradient is finite and non-zero somewhere on some probe.

    Memoized by structural hash (structurally equal programs have equal gradients);
    ``memo=False`` recomputes everything from scratch.
    """
    opset = program.opset
    check = opset.gradient_check
    key = structural_hash(program) if memo else None
    known = check.memo.get(key) if memo else None
    if known is not None:
        return known
    result = False
    # All probes in one pass on the stacked probe (the fingerprint then reuses it);
    # else (an op that mixes rows without reducing them) one probe at a time.
    n_probes = len(opset.probes())
    which_probes = [STACKED] if memo and n_probes > 1 and stackable(program) else range(n_probes)
    with np.errstate(all="ignore"):
        for which in which_probes:
            grads = (probe_gradients(program, which) if memo
                     else gradients(program, opset.probes()[which]))
            for g in grads.values():
                mag = np.abs(g)
                if ((mag > ZERO_GRADIENT_TOL) & (mag < np.inf)).any():  # NaN fails both
                    result = True
                    break
            if result:
                break
    if memo:
        check.remember(key, result)
    return result
