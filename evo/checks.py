"""Checks of config values: each names the key path and what is allowed, e.g.
``search.population_size = 0: must be an integer >= 1``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from evo.errors import ConfigError
from graphs.core.errors import did_you_mean, is_int, is_real

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

Check = Callable[[Any, str], Any]


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def bad(path: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{path} = {show(value)}: {why}")


def quoted(names: Any) -> str:
    return ", ".join(repr(n) for n in names)


def unknown_key(key: str, allowed: list[str], path: str, kind: str, listing: str) -> str:
    hint = did_you_mean(key, allowed, 2)
    return f"{path}: unknown {kind}{hint} ({listing}: {', '.join(allowed)})"


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any, path: str) -> int:
        if not is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            if hi is not None:
                why = f"must be an integer in [{lo}, {hi}]"
            else:
                why = f"must be an integer >= {lo}"
            raise bad(path, v, why)
        return v
    return check


def upto(lo: int, hi: int) -> Check:
    """An integer >= ``lo`` with a sanity cap ``hi`` (named separately in the message)."""
    def check(v: Any, path: str) -> int:
        if not is_int(v) or v < lo:
            raise bad(path, v, f"must be an integer >= {lo}")
        if v > hi:
            raise bad(path, v, f"must be at most {hi:,} (an integer >= {lo}); larger values "
                       "would run without end or exhaust memory")
        return v
    return check


def real(lo: float, hi: float | None = None, open_lo: bool = False) -> Check:
    def check(v: Any, path: str) -> float:
        ok = (is_real(v, finite=True) and (v > lo if open_lo else v >= lo)
              and (hi is None or v <= hi))
        if not ok:
            if hi is not None:
                why = f"must be a number in [{lo:g}, {hi:g}]"
            else:
                why = f"must be a number {'>' if open_lo else '>='} {lo:g}"
            raise bad(path, v, why)
        return float(v)
    return check


def choice(choices: tuple[str, ...]) -> Check:
    def check(v: Any, path: str) -> str:
        if v not in choices:
            hint = did_you_mean(str(v), choices, 1, quote=False, template='; did you mean "{}"?')
            raise bad(path, v, f"must be one of {', '.join(show(c) for c in choices)}{hint}")
        return v
    return check


def boolean(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise bad(path, v, "must be true or false")
    return v


def run_name(v: Any, path: str) -> str:
    if not isinstance(v, str) or not _NAME.fullmatch(v):
        raise bad(path, v, "must be a name of letters, digits, '_', '.' and '-' (it names "
                            "the run's files), at most 64 characters")
    return v


def address(v: Any, path: str) -> str:
    if not isinstance(v, str) or not (v == "auto" or re.fullmatch(r"[^\s:]+:\d{1,5}", v)
                                      or v.startswith("ray://")):
        raise bad(path, v, 'must be "auto" or "HOST:PORT" of a Ray cluster\'s head')
    return v


def list_of(item: Check, what: str, min_len: int = 1) -> Check:
    def check(v: Any, path: str) -> tuple:
        if not isinstance(v, list | tuple) or len(v) < min_len:
            raise bad(path, v, f"must be a list of {what} (at least {min_len})")
        return tuple(item(x, f"{path}[{i}]") for i, x in enumerate(v))
    return check


def check_keys(raw: Mapping[str, Any], allowed: list[str], section: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(unknown_key(key, allowed, f"{section}.{key}", "key",
                                       f"allowed keys in [{section}]"))


def validate(cls: type, raw: Mapping[str, Any], section: str, checks: dict[str, Check]) -> Any:
    check_keys(raw, list(checks), section)
    values = {k: checks[k](v, f"{section}.{k}") for k, v in raw.items()}
    return cls(**values)
