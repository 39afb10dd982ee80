"""A problem: one kind of program that evo searches, and everything specific to it.

The search loop, the config, ``evo status`` and ``evo export`` know programs only
through a :class:`Problem`; they hold no "loss or architecture?" branches. Each
problem is registered under the name a config selects it by (``[space] kind``):

* ``"loss"``: RL loss programs trained on environments (:mod:`evo.rl.problem`);
* ``"nb201"``, ``"mobilenet"``: architectures scored by accuracy and simulated
  latency (:mod:`evo.nas.problem`).

A new problem is one module that subclasses :class:`Problem` and calls
:func:`register_problem` (``docs/extending.md`` has a worked example).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from evo.registry import Registry


class CardParts(NamedTuple):
    """The parts of a dataset card that every problem shares, rendered by the export."""

    config_error: str  # why the recorded config is not a valid run config ('' if it is)
    resolved: dict[str, Any] | None  # the valid config with its defaults filled in
    fields_table: str  # the rows of the card's field table (markdown)
    config_section: list[str]  # the card's closing section: the run's config


class Problem(ABC):
    """One kind of program: its space, evaluator, fingerprint and how it is shown.

    ``config`` arguments are validated :class:`~evo.app.config.RunConfig` objects;
    ``recorded`` arguments are the config dicts that run stores record (which may
    come from older versions, so they are read with ``.get``)."""

    name: str = ""  # the [space] kind that selects it
    noun: str = "programs"  # what its candidates are called in reports
    uses_fec: bool = False  # whether [fec] applies (else the space deduplicates)
    # The config schema around the problem:
    space_mutates: bool = True  # its space has sample + mutate (else: programs)
    grows_budgets: bool = False  # whether progressive hurdles can grow its budgets
    records_space: bool = True  # whether a config records its [space] section
    unused_search_keys: tuple[str, ...] = ()  # [search] keys that do not apply

    @abstractmethod
    def evaluator_section(self, raw: Mapping[str, Any], space: Any) -> Any:
        """Validate the ``[evaluator]`` table (for the ``[space]`` section ``space``):
        a frozen dataclass, or a :class:`~evo.errors.ConfigError` naming the key."""

    def evaluator_dict(self, section: Any) -> dict[str, Any]:
        """``section`` as TOML-compatible data (unset keys left out)."""
        return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)
                if getattr(section, f.name) is not None}

    @abstractmethod
    def space(self, config: Any) -> Any:
        """The search space: ``sample(rng)`` and ``mutate(program, rng)``."""

    @abstractmethod
    def evaluator(self, config: Any) -> Any:
        """The evaluator of ``config``'s ``[evaluator]`` section."""

    def task_evaluator(self, evaluator: Any) -> Callable[..., Any]:
        """What worker processes call for each candidate (default: the evaluator)."""
        return evaluator

    @abstractmethod
    def fingerprint(self, config: Any, space: Any) -> Callable[[Any], str]:
        """Equal fingerprints mean equivalent candidates (scored once)."""

    @abstractmethod
    def status_lines(self, recorded: Mapping[str, Any], trainers: Mapping[str, int]
                     ) -> list[str]:
        """``evo status``'s ``search:`` and ``evaluator:`` lines for a run store."""

    def card_fields(self, fields: tuple[tuple[str, str, str], ...]
                    ) -> tuple[tuple[str, str, str], ...]:
        """The dataset's columns as (name, type, meaning), given the export's generic
        ones: a problem rewords what its rows hold (default: as given)."""
        return fields

    @abstractmethod
    def card(self, recorded: Mapping[str, Any], info: Mapping[str, Any],
             rows: list[dict[str, Any]], store_name: str, top: int, parts: CardParts
             ) -> str:
        """The dataset card (README.md) of an exported top-k dataset: ``info`` holds the
        store's counts, ``rows`` the dataset's rows, ``parts`` what all cards share."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


PROBLEMS: Registry[Problem] = Registry("problem", "[space] kind")


def register_problem(problem: Problem) -> Problem:
    """Make ``problem`` selectable by ``[space] kind = problem.name``."""
    PROBLEMS.register(problem.name, problem)
    return problem


def get_problem(name: str) -> Problem:
    """The problem registered as ``name`` (a clear error naming the known ones if none)."""
    return PROBLEMS.get(name)


def problem_of(recorded: Mapping[str, Any]) -> Problem:
    """The problem of a config dict (a run store's record): ``[space] kind``, else loss."""
    space = recorded.get("space") or {}
    return get_problem(space.get("kind", "loss") if isinstance(space, Mapping) else "loss")
