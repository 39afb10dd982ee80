"""Errors raised by the search side of the project (configs, runs, evaluations)."""

from __future__ import annotations


class EvoError(Exception):
    """Base class: a problem the user can fix, reported as one clear line."""


class ConfigError(EvoError, ValueError):
    """An invalid setting; the message names the setting and the allowed values."""
