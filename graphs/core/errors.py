"""The one error type that program code raises for bad programs and bad files, and the
small dependency-free helpers that error checks share (close-match hints, number tests)."""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable


class ProgramError(ValueError):
    """A program (or a program file) is malformed or invalid.

    ``where`` names the offending node, input or field (e.g. ``"nodes[3].args[1]"``
    or ``"node 'n5'"``) so that a user can find and fix it.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        self.reason = message
        super().__init__(f"{where}: {message}" if where else message)


def close_matches(name: object, known: Iterable[str], n: int = 3,
                  cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` entries of ``known`` closest to a misspelt ``name``, best first."""
    return difflib.get_close_matches(str(name), list(known), n=n, cutoff=cutoff)


def did_you_mean(name: object, known: Iterable[str], n: int = 3, cutoff: float = 0.6, *,
                 quote: bool = True, joiner: str = ", ",
                 template: str = "; did you mean {}?") -> str:
    """A hint naming the entries of ``known`` closest to ``name``, or ``""`` if none is.

    By default ``"; did you mean 'a', 'b'?"``: the matches, ``quote``-d with ``repr``
    and joined by ``joiner``, put into ``template`` at ``{}``.
    """
    close = close_matches(name, known, n, cutoff)
    if not close:
        return ""
    return template.format(joiner.join(repr(c) if quote else c for c in close))


def unknown_name(kind: str, name: object, known: Iterable[str]) -> str:
    """``"unknown op 'Ad'; did you mean Add? (known: Add, Sub, ...)"``: the message for
    a name that is not one of ``known``."""
    known = list(known)
    hint = did_you_mean(name, known, quote=False)
    return f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})"


def is_int(value: object) -> bool:
    """Whether ``value`` is a Python ``int`` (a ``bool`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object, finite: bool = False) -> bool:
    """Whether ``value`` is a real number (:class:`numbers.Real`, e.g. an int, a float
    or a numpy float; a ``bool`` is not), and with ``finite`` also not infinite or NaN."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return not finite or isinstance(value, numbers.Integral) or math.isfinite(value)
