"""Value types carried on the edges of a program graph.

A type is a name plus a description of the runtime value's shape. The core does
not know any particular type; each op set (RL losses, architectures) declares its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class ValueType:
    """A value type, e.g. FLOAT ``(B,1)`` or LIST ``(B,A)``.

    Each type is defined once by its op set, so identity is equality (and hashing
    stays a C-level pointer hash on hot paths).
    """

    name: str
    shape: str = ""
    doc: str = ""

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__
