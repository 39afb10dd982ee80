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
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evo.errors import ConfigError
from graphs.core.program import Program
from graphs.rl_loss.generation import from_scratch, seeded_program


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
            from graphs.rl_loss.library import builtin

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
``mutate(program, rng)`` (the :class:`graphs.arch.ops.ArchSpace` protocol)."""


def sampler(space: Space) -> Callable[[random.Random], Program]:
    """The function that draws a fresh program from ``space``."""
    sample = getattr(space, "sample", None)
    if callable(sample):
        return sample
    if callable(space):
        return space
    raise ConfigError(f"{space!r} is not a search space: it must be callable (rng -> program) "
                      "or have a sample(rng) method")
