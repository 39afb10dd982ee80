"""Search algorithms: the interface (:mod:`~evo.algorithms.base`), random search,
regularized evolution, LayerNAS, NSGA-II/Pareto evolution, the PyGlove adapter, and
the registry that configs select them from (:mod:`~evo.algorithms.registry`).

The built-in algorithms are registered here, in the order configs list them.
"""

from __future__ import annotations

from typing import Any

from evo.algorithms import layernas, pareto
from evo.algorithms.base import Candidate, SearchAlgorithm, SeedSpace, Space
from evo.algorithms.evolution import RegularizedEvolution
from evo.algorithms.random_search import RandomSearch
from evo.algorithms.registry import ALGORITHMS, get_algorithm, register_algorithm


def _regularized_evolution(config: Any, space: Any) -> RegularizedEvolution:
    s = config.search
    return RegularizedEvolution(s.population_size, s.tournament_size, s.mutation_p, space,
                                seed=config.run.seed)


def _random(config: Any, space: Any) -> RandomSearch:
    return RandomSearch(space, seed=config.run.seed)


def _layernas(config: Any, space: Any) -> Any:
    ln, ev = config.layernas, config.evaluator
    cost_name = ln.cost or ev.cost
    target = ln.target if ln.target is not None else (
        ev.target if cost_name == ev.cost else None)
    return layernas.LayerNAS(space, cost=cost_of(config, cost_name), target=target,
                    buckets=ln.buckets, base=ln.base, passes=ln.passes,
                    order="random" if ln.order == "random" else None, dedupe=ln.dedupe,
                    seed=config.run.seed)


def cost_of(config: Any, cost: str) -> Any:
    """An architecture's cost (``"latency"`` ms or ``"macs"``), exactly as the run's
    evaluator measures it with that cost."""
    from evo.problem import get_problem

    changed = config if config.evaluator.cost == cost else config.replace(
        **{"evaluator.cost": cost})
    return get_problem(config.space.kind).evaluator(changed).cost_of


def _pareto(config: Any, space: Any) -> Any:
    cost_key = "macs" if config.evaluator.cost == "macs" else "latency_ms"
    return pareto.ParetoEvolution(space, config.search.population_size, config.pareto.survival,
                           cost_key, seed=config.run.seed)


register_algorithm("regularized_evolution", _regularized_evolution,
                   description="aging evolution with tournament selection")
register_algorithm("random", _random, description="fresh draws from the space")
register_algorithm("layernas", _layernas, architectures_only=True,
                   description="LayerNAS: layer by layer, bucketed by cost",
                   options=layernas.LayerNASOptions, checks=layernas.OPTION_CHECKS)
register_algorithm("pareto", _pareto, architectures_only=True,
                   description="NSGA-II / aging Pareto evolution over accuracy and cost",
                   options=pareto.ParetoOptions, checks=pareto.OPTION_CHECKS)

__all__ = ["ALGORITHMS", "Candidate", "RandomSearch", "RegularizedEvolution", "SearchAlgorithm",
           "SeedSpace", "Space", "get_algorithm", "register_algorithm"]
