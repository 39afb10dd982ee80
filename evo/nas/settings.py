"""The ``[evaluator]`` section of an architecture run: its schema and checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evo.checks import bad, check_keys
from evo.errors import ConfigError
from evo.nas.evaluator import ArchEvaluator
from graphs.core.errors import is_real


@dataclass(frozen=True)
class ArchEvaluatorSection:
    """``[evaluator]`` of an architecture run (see :class:`evo.nas.evaluator.ArchEvaluator`)."""

    accuracy: str = "nb201"  # the NB201 table, or "module:function"
    cost: str = "latency"  # "latency" (simulated ms) or "macs"
    hardware: str = "edgetpu"  # a preset or a TOML file
    reward: str = "accuracy"
    target: float | None = None  # ms for latency, MACs for macs
    alpha: float | None = None
    beta: float | None = None
    bonus: float | None = None
    bonus_mode: str | None = None


def make_arch_evaluator(section: Any, space: Any) -> ArchEvaluator:
    """The :class:`ArchEvaluator` an ``[evaluator]`` section (a dataclass) describes,
    for the dataset of the ``[space]`` section."""
    table = {k: v for k, v in dataclasses.asdict(section).items() if v is not None}
    table["dataset"] = space.dataset
    return ArchEvaluator.from_config(table)


def evaluator_section(raw: Mapping[str, Any], space: Any) -> ArchEvaluatorSection:
    """Validate an architecture run's ``[evaluator]`` by building the evaluator once."""
    allowed = [f.name for f in dataclasses.fields(ArchEvaluatorSection)]
    check_keys(raw, allowed, "evaluator")
    text = ("accuracy", "cost", "hardware", "reward", "bonus_mode")
    for key, value in raw.items():
        if key in text and not isinstance(value, str):
            raise bad(f"evaluator.{key}", value, "must be a string")
        if key not in text and not is_real(value, finite=True):
            raise bad(f"evaluator.{key}", value, "must be a number")
    values = {k: (v if k in text else float(v)) for k, v in raw.items()}
    section = ArchEvaluatorSection(**values)
    if space.kind == "mobilenet" and section.accuracy == "nb201":
        raise bad("evaluator.accuracy", "nb201", "is the NB201 table, which scores NB201 "
                   "cells only; give your own accuracy function as \"module:function\"")
    try:
        make_arch_evaluator(section, space)
    except ConfigError as err:
        raise ConfigError(f"evaluator: {err}") from None
    return section
