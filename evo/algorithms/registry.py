"""Search algorithms by name: what ``[search] algorithm`` selects.

An entry builds its algorithm from a validated run config and the problem's search
space. Registering one is all it takes for configs, the CLI and the runner to use it
(``docs/extending.md`` has a worked example)::

    register_algorithm("my_search", lambda config, space: MySearch(space, seed=config.run.seed))
"""

from __future__ import annotations

from collections.abc import Callable
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


ALGORITHMS: Registry[AlgorithmEntry] = Registry("algorithm", "search.algorithm")


def register_algorithm(name: str, build: Callable[[Any, Any], SearchAlgorithm], *,
                       architectures_only: bool = False, description: str = "",
                       replace: bool = False) -> AlgorithmEntry:
    """Make ``[search] algorithm = name`` build ``build(config, space)``."""
    return ALGORITHMS.register(
        name, AlgorithmEntry(name, build, architectures_only, description), replace=replace)


def get_algorithm(name: str) -> AlgorithmEntry:
    """The entry registered as ``name`` (a ConfigError naming the known ones if none)."""
    return ALGORITHMS.get(name)


def build_algorithm(config: Any, space: Any) -> SearchAlgorithm:
    """The algorithm that ``config``'s ``[search] algorithm`` names, over ``space``."""
    return get_algorithm(config.search.algorithm).build(config, space)
