"""Errors raised by the search side of the project (configs, runs, evaluations)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EvoError(Exception):
    """Base class: a problem the user can fix, reported as one clear line."""


class ConfigError(EvoError, ValueError):
    """An invalid setting; the message names the setting and the allowed values."""


def did_you_mean(word: object, choices: Iterable[str], n: int = 1) -> str:
    """``" (did you mean 'x'?)"`` for the choices closest to a misspelt ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=n, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
