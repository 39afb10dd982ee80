"""The environment package's error and the value checks its modules share."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from graphs.core.errors import close_matches, did_you_mean, is_real

__all__ = ["EnvError", "close_names", "is_real", "positive_whole", "quoted", "unknown"]


class EnvError(ValueError):
    """An environment name, registration, budget or environment is unusable.

    ``where`` names the offending argument (e.g. ``"r_max"``) when there is one.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        self.reason = message
        super().__init__(f"{where}: {message}" if where else message)


def quoted(names: Iterable[str]) -> str:
    """``'a', 'b'``."""
    return ", ".join(repr(n) for n in names)


def close_names(name: str, candidates: Iterable[str], n: int = 4) -> list[str]:
    """The ``candidates`` closest to ``name``, ignoring case (as written in ``candidates``)."""
    by_lower = {c.lower(): c for c in candidates}
    return [by_lower[c] for c in close_matches(name.lower(), by_lower, n)]


def unknown(kind: str, name: object, known: Sequence[str]) -> str:
    """``"unknown family 'clasic'; did you mean 'classic'? (known: ...)"``."""
    return f"unknown {kind} {name!r}{did_you_mean(name, known)} (known: {quoted(known)})"


def positive_whole(name: str, value: object) -> int | None:
    """A positive whole number (``6e5`` is accepted as 600000), or None."""
    if value is None:
        return None
    if is_real(value) and math.isfinite(value) and float(value).is_integer() and value > 0:
        return int(value)
    raise EnvError(f"must be a positive whole number or None, got {value!r}", where=name)
