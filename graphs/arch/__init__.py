"""The architecture language: layers, ops, NAS-Bench-201 cells and MobileNet networks.

Importing it registers the ``arch`` op set (:data:`graphs.arch.ops.ARCH`) and how it
describes a program in one line (:func:`describe`, used by
:func:`graphs.core.render.describe`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphs.arch import nb201
from graphs.arch.ops import ARCH, summary
from graphs.core.errors import ProgramError

if TYPE_CHECKING:
    from graphs.core.program import Program


def describe(program: Program) -> str:
    """An NB201 network's arch string; for other architectures, their size (the
    program file holds every layer)."""
    try:
        return nb201.arch_string(nb201.from_program(program))
    except ProgramError:
        pass
    s = summary(program)
    n_layers = sum(1 for node in program.nodes if not node.op.name.startswith("image"))
    return (f"{n_layers}-node network: {s['macs'] / 1e6:.1f}M MACs, "
            f"{s['params'] / 1e6:.2f}M parameters")


ARCH.describe = describe
