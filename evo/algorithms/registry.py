"""Search algorithms by name: what ``[search] algorithm`` selects.

An entry builds its algorithm from a validated run config and the problem's search
space. Registering one is all it takes for configs, the CLI and the runner to use it
(``docs/extending.md`` has a worked example)::

    register_algorithm("my_search", lambda config, space: MySearch(space, seed=config.run.seed))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evo.algorithms.base import SearchAlgorithm
from evo.registry import Registry


@dataclass(frozen=True)
class AlgorithmEntry:
    """How to build a registered algorithm."""

    name: str
    build: Callable[[Any, Any], SearchAlgorithm]  # (run config, space) -> algorithm
    architectures_only: bool = False  # needs an architecture space (sample + mutate)
    description: str = ""
    # The config section [<name>] that configures it: a frozen dataclass whose fields
    # all have defaults, and a check per field (see evo.checks); None: no section.
    options: type | None = None
    checks: Mapping[str, Callable[[Any, str], Any]] | None = None


ALGORITHMS: Registry[AlgorithmEntry] = Registry("algorithm", "search.algorithm")


def register_algorithm(name: str, build: Callable[[Any, Any], SearchAlgorithm], *,
                       architectures_only: bool = False, description: str = "",
                       options: type | None = None,
                       checks: Mapping[str, Callable[[Any, str], Any]] | None = None,
                       replace: bool = False) -> AlgorithmEntry:
    """Make ``[search] algorithm = name`` build ``build(config, space)``.

    ``options`` (with ``checks``) adds a config section ``[name]``; ``build`` reads it
    as ``config.<name>`` (its defaults when the config has no such section)."""
    if (options is None) != (checks is None):
        raise ValueError(f"algorithm {name!r}: give options and checks together")
    if checks is not None:
        fields = {f.name for f in dataclasses.fields(options)}
        if set(checks) != fields:
            raise ValueError(f"algorithm {name!r}: checks {sorted(checks)} do not match the "
                             f"options' fields {sorted(fields)}")
    return ALGORITHMS.register(
        name, AlgorithmEntry(name, build, architectures_only, description, options, checks),
        replace=replace)


def get_algorithm(name: str) -> AlgorithmEntry:
    """The entry registered as ``name`` (a ConfigError naming the known ones if none)."""
    return ALGORITHMS.get(name)


def build_algorithm(config: Any, space: Any) -> SearchAlgorithm:
    """The algorithm that ``config``'s ``[search] algorithm`` names, over ``space``."""
    return get_algorithm(config.search.algorithm).build(config, space)
