"""Errors raised by the search side of the project (configs, runs, evaluations)."""

from __future__ import annotations

from collections.abc import Iterable

from graphs.core.errors import did_you_mean as hint_close_matches


class EvoError(Exception):
    """Base class: a problem the user can fix, reported as one clear line."""


class ConfigError(EvoError, ValueError):
    """An invalid setting; the message names the setting and the allowed values."""


def did_you_mean(word: object, choices: Iterable[str], n: int = 1) -> str:
    """``" (did you mean 'x'?)"`` for the choices closest to a misspelt ``word``, or ``""``
    (:func:`graphs.core.errors.did_you_mean` in evo's wording)."""
    return hint_close_matches(word, choices, n, 0.6, joiner=" or ", template=" (did you mean {}?)")
