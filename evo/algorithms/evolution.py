"""Regularized (aging) evolution, steady state and asynchronous (Real et al., 2019)."""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from evo.algorithms.base import Candidate, SearchAlgorithm, SeedSpace, Space, sampler
from evo.errors import ConfigError
from graphs.core.mutation import Mutator
from graphs.core.program import Program


class RegularizedEvolution(SearchAlgorithm):
    """Aging evolution (Real et al., 2019), steady state and asynchronous.

    The first ``population_size`` proposals are draws from ``space`` (the initial
    population). Afterwards each proposal mutates the fittest of
    ``tournament_size`` members drawn at random from the current population; every
    observed child joins the population and the oldest member leaves.

    Loss programs mutate with :class:`~graphs.core.mutation.Mutator` (with probability
    ``1 - mutation_p`` a fresh program); architecture spaces mutate with their own
    ``mutate`` (one decision changes, as in NATS-Bench), ignoring ``mutation_p``.
    """

    name = "regularized_evolution"

    def __init__(
        self,
        population_size: int = 300,
        tournament_size: int = 25,
        mutation_p: float = 0.95,
        space: Space | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if not isinstance(population_size, int) or population_size < 1:
            raise ConfigError(f"population_size = {population_size!r}: must be a positive "
                              "integer (the paper uses 300)")
        if not isinstance(tournament_size, int) or not 1 <= tournament_size <= population_size:
            raise ConfigError(f"tournament_size = {tournament_size!r}: must be an integer in "
                              f"[1, population_size = {population_size}] (the paper uses 25)")
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.space = space or SeedSpace()
        self._sample = sampler(self.space)
        self.mutation_p = mutation_p
        own = getattr(self.space, "mutate", None)
        if callable(own):
            self._mutate = own
        else:  # a brand-new program (probability 1 - p) is a fresh draw from the same space
            self._mutate = Mutator(p=mutation_p, fresh=self._sample).mutate
        self.population: deque[tuple[int, float, int, Program]] = deque()
        self._encoded: deque[str] = deque()  # each member as JSON, for state_json()

    def __repr__(self) -> str:
        return (f"RegularizedEvolution(P={self.population_size}, T={self.tournament_size}, "
                f"p={self.mutation_p}, {self.space!r})")

    def propose(self) -> Candidate:
        rng = self._next()
        if self.proposed <= self.population_size or not self.population:
            return Candidate(self._sample(rng), mutation="seed")
        k = min(self.tournament_size, len(self.population))
        contestants = rng.sample(range(len(self.population)), k)
        parent_id, _, generation, parent = max(
            (self.population[i] for i in contestants), key=lambda m: m[1])
        child, what = self._mutate(parent, rng)
        return Candidate(child, parent_id, str(what), generation + 1)

    def observe(self, trial_id: int, candidate: Candidate, fitness: float,
                result: Mapping[str, Any] | None = None) -> None:
        self.population.append((trial_id, float(fitness), candidate.generation,
                                candidate.program))
        self._encoded.append(_member_json(trial_id, float(fitness), candidate.generation))
        if len(self.population) > self.population_size:
            self.population.popleft()
            self._encoded.popleft()

    def state(self) -> dict:
        state = super().state()
        state["population"] = [[tid, fit, gen] for tid, fit, gen, _ in self.population]
        return state

    def state_json(self) -> str:
        return (f'{{"seed": {json.dumps(self.seed)}, "proposed": {self.proposed}, '
                f'"population": [{", ".join(self._encoded)}]}}')

    def restore(self, state: Mapping, programs: Mapping[int, Program]) -> None:
        super().restore(state, programs)
        self.population = deque(
            (int(tid), float(fit), int(gen), programs[int(tid)])
            for tid, fit, gen in state["population"]
        )
        self._encoded = deque(_member_json(*m[:3]) for m in self.population)


def _member_json(trial_id: int, fitness: float, generation: int) -> str:
    fit = repr(fitness) if math.isfinite(fitness) else json.dumps(fitness)
    return f"[{int(trial_id)}, {fit}, {int(generation)}]"
