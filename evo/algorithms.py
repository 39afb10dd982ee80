"""Search algorithms: small values that propose programs and learn from fitness.

Every algorithm has the same interface, so the search loop knows none of them:

* ``propose()`` returns the next :class:`Candidate` (a program and its lineage), or
  ``None`` when it has nothing to propose until pending evaluations finish (e.g.
  LayerNAS scores all children of one layer before extending the next);
* ``observe(trial_id, candidate, fitness, result)`` reports a finished evaluation
  (``result`` is the evaluator's result dict: multi-objective algorithms read
  ``result["objectives"]`` from it);
* ``state()`` / ``restore(state, programs)`` persist and reload the algorithm
  exactly (population by trial id and counters). Each proposal draws from a
  generator seeded by (seed, proposal number), so no generator state needs saving.

Proposals and observations may interleave freely: the loop is steady-state and
asynchronous, and a free worker gets the next child at once.
"""

from __future__ import annotations

import json
import math
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evo.errors import ConfigError
from graphs.generate import from_scratch, seeded_program
from graphs.mutation import Mutator
from graphs.program import Program


@dataclass
class Candidate:
    """A proposed program with its lineage."""

    program: Program
    parent: int | None = None  # trial id of the parent
    mutation: str = "seed"  # "seed", "random", or what the mutation did
    generation: int = 0  # mutations since the initial population


class SeedSpace:
    """Where initial (and brand-new) programs come from.

    ``SeedSpace("dqn", 14)`` is the paper's seeded setting (a built-in followed by
    14 random nodes); ``SeedSpace(None, 7)`` the from-scratch setting (frozen
    skeleton plus 7 free nodes).
    """

    def __init__(self, base: str | None = "dqn", extra_nodes: int = 14) -> None:
        if not isinstance(extra_nodes, int) or extra_nodes < 1:
            raise ConfigError(f"extra_nodes = {extra_nodes!r}: must be a positive integer")
        self.base, self.extra_nodes = base, extra_nodes
        if base is not None:
            from graphs.library import builtin

            builtin(base)  # unknown names fail now, with close matches

    def __call__(self, rng: random.Random) -> Program:
        if self.base is None:
            return from_scratch(self.extra_nodes, rng)
        return seeded_program(self.base, self.extra_nodes, rng)

    def __repr__(self) -> str:
        what = "skeleton" if self.base is None else self.base
        return f"SeedSpace({what} + {self.extra_nodes} nodes)"


class SearchAlgorithm(ABC):
    """The interface the search loop uses."""

    name = "algorithm"
    # Whether observe() reads the result dict; if not, the search loop does not load
    # the cached result of a duplicate from the store.
    uses_results = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.proposed = 0

    def _next(self) -> random.Random:
        """Count a proposal and reseed the generator for it."""
        self.proposed += 1
        self.rng.seed(f"{self.seed}:{self.proposed}")
        return self.rng

    @abstractmethod
    def propose(self) -> Candidate | None: ...

    def observe(self, trial_id: int, candidate: Candidate, fitness: float,
                result: Mapping[str, Any] | None = None) -> None:
        """A finished evaluation (default: nothing to learn)."""
        return None

    def state(self) -> dict:
        """Everything needed to continue exactly, as JSON-serializable values."""
        return {"seed": self.seed, "proposed": self.proposed}

    def state_json(self) -> str:
        """:meth:`state` encoded as JSON (the run store saves it after every trial;
        algorithms with large states override this to encode incrementally)."""
        return json.dumps(self.state())

    def restore(self, state: Mapping, programs: Mapping[int, Program]) -> None:
        """Continue from ``state``; ``programs`` maps trial ids to their programs."""
        self.seed = state["seed"]
        self.proposed = int(state["proposed"])


Space = Callable[[random.Random], Program] | Any
"""Where programs come from: a callable ``space(rng) -> Program`` (loss programs,
e.g. :class:`SeedSpace`), or an architecture space with ``sample(rng)`` and
``mutate(program, rng)`` (the :class:`graphs.arch.ArchSpace` protocol)."""


def sampler(space: Space) -> Callable[[random.Random], Program]:
    """The function that draws a fresh program from ``space``."""
    sample = getattr(space, "sample", None)
    if callable(sample):
        return sample
    if callable(space):
        return space
    raise ConfigError(f"{space!r} is not a search space: it must be callable (rng -> program) "
                      "or have a sample(rng) method")


class RandomSearch(SearchAlgorithm):
    """The baseline: every proposal is a fresh draw from the search space."""

    name = "random"

    def __init__(self, space: Space | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        self.space = space or SeedSpace()
        self._sample = sampler(self.space)

    def __repr__(self) -> str:
        return f"RandomSearch({self.space!r})"

    def propose(self) -> Candidate:
        return Candidate(self._sample(self._next()), mutation="random")


class RegularizedEvolution(SearchAlgorithm):
    """Aging evolution (Real et al., 2019), steady state and asynchronous.

    The first ``population_size`` proposals are draws from ``space`` (the initial
    population). Afterwards each proposal mutates the fittest of
    ``tournament_size`` members drawn at random from the current population; every
    observed child joins the population and the oldest member leaves.

    Loss programs mutate with :class:`~graphs.mutation.Mutator` (with probability
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
