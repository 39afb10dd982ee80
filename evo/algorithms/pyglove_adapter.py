"""Drive the engine's search algorithms from PyGlove's ``pg.sample``.

Two pieces make an evo algorithm usable as a PyGlove search:

* :class:`ProgramSpace` (made by :func:`program_space`), a custom hyper value
  (``pg.hyper.CustomHyper``): one decision point whose DNA value is a string, the
  program in the JSON file format (``graphs.core.fileformat``). Materializing a DNA
  gives the :class:`~graphs.core.program.Program` (or, with ``symbolic=True``, its
  PyGlove twin :class:`~graphs.core.symbolic.SymbolicProgram`). Its ``random_dna``
  draws from the seed space (a built-in plus random nodes, or the frozen skeleton)
  and, given a ``previous_dna``, returns a mutation of it, so PyGlove's own
  algorithms (``pg.geno.Random``, ``pg.evolution.regularized_evolution`` with its
  default ``Uniform`` mutator) also work on the space.
* :class:`EvoDNAGenerator`, a ``pg.DNAGenerator`` wrapping any
  :class:`~evo.algorithms.base.SearchAlgorithm`: ``propose`` asks the algorithm for a
  candidate and returns a DNA holding its program JSON; ``feedback(dna, reward)``
  reports the reward to the algorithm (``observe``). Lineage travels with the DNA
  as metadata (``evo_trial``, ``evo_parent``, ``evo_mutation``, ``evo_generation``).

Usage::

    import pyglove as pg
    from evo.algorithms.base import SeedSpace
    from evo.algorithms.evolution import RegularizedEvolution
    from evo.algorithms.pyglove_adapter import EvoDNAGenerator, program_space

    space = program_space("dqn", extra_nodes=14)      # DQN + 14 random nodes
    algorithm = RegularizedEvolution(population_size=50, tournament_size=10,
                                     space=SeedSpace("dqn", 14), seed=0)
    for program, feedback in pg.sample(space, EvoDNAGenerator(algorithm),
                                       num_examples=500):
        feedback(my_score(program))                   # any float, higher is better
        print(feedback.dna.metadata["evo_mutation"])  # "seed" or the point mutation

    best = max(algorithm.population, key=lambda member: member[1])  # (trial, fitness, ..)

``feedback.dna.metadata["evo_trial"]`` is the id the algorithm knows the trial by
(1, 2, ... in proposal order). Within ``pg.sample`` the engine adds no equivalence
cache, hurdles or run store: that loop is PyGlove's. For durable, deduplicated,
parallel runs use :class:`evo.search.loop.Search` with the same algorithm object.
"""

from __future__ import annotations

import random
import types
from typing import Any

import pyglove as pg

from evo.algorithms.base import Candidate, SearchAlgorithm, SeedSpace
from graphs.core.fileformat import dumps, loads
from graphs.core.mutation import Mutator
from graphs.core.program import Program
from graphs.core.symbolic import SymbolicProgram, from_symbolic, to_symbolic

__all__ = ["EvoDNAGenerator", "ProgramSpace", "program_space"]


@pg.members([
    ("base", pg.typing.Str().noneable(),
     "Built-in program the random nodes follow (e.g. 'dqn'); None for the from-scratch "
     "setting (frozen skeleton plus free nodes)."),
    ("extra_nodes", pg.typing.Int(min_value=1, default=14), "Random nodes of a fresh draw."),
    ("mutation_p", pg.typing.Float(min_value=0.0, max_value=1.0, default=0.95),
     "Point-mutation probability of random_dna(previous_dna=...); otherwise a fresh draw."),
    ("symbolic", pg.typing.Bool(default=False),
     "Decode DNA to a SymbolicProgram (the PyGlove twin) instead of a Program."),
])
class ProgramSpace(pg.hyper.CustomHyper):
    """A search space of programs: one decision point whose DNA is the program JSON."""

    def _on_bound(self) -> None:
        super()._on_bound()
        self._seed_space = SeedSpace(self.base, self.extra_nodes)
        self._mutator = Mutator(p=self.mutation_p, fresh=self._seed_space)

    @property
    def seed_space(self) -> SeedSpace:
        """The same initial distribution as an engine :class:`SeedSpace`."""
        return self._seed_space

    def custom_decode(self, dna: pg.DNA) -> Program | SymbolicProgram:
        program = loads(dna.value, check=False)
        return to_symbolic(program) if self.symbolic else program

    def custom_encode(self, value: Any) -> pg.DNA:
        if isinstance(value, SymbolicProgram):
            value = from_symbolic(value)
        if not isinstance(value, Program):
            raise TypeError(f"cannot encode {type(value).__name__} as a program DNA")
        return pg.DNA(dumps(value))

    def random_dna(self, random_generator: types.ModuleType | random.Random | None = None,
                   previous_dna: pg.DNA | None = None) -> pg.DNA:
        """A fresh program, or, given ``previous_dna``, a mutation of that program."""
        rng = _as_random(random_generator)
        if previous_dna is not None and isinstance(previous_dna.value, str):
            child, _ = self._mutator.mutate(loads(previous_dna.value, check=False), rng)
            return pg.DNA(dumps(child))
        return pg.DNA(dumps(self._seed_space(rng)))


def program_space(base: str | None = "dqn", extra_nodes: int = 14, mutation_p: float = 0.95,
                  symbolic: bool = False) -> ProgramSpace:
    """The program search space: ``program_space("dqn", 14)`` is the paper's seeded
    setting, ``program_space(None, 7)`` the from-scratch one."""
    return ProgramSpace(base=base, extra_nodes=extra_nodes, mutation_p=mutation_p,
                        symbolic=symbolic)


def _as_random(generator: Any) -> random.Random:
    if isinstance(generator, random.Random):
        return generator
    # The `random` module (PyGlove's default) or None: draw from the global generator.
    return random.Random(random.getrandbits(64))


@pg.members([
    ("algorithm", pg.typing.Any(), "The engine algorithm (an evo SearchAlgorithm)."),
])
class EvoDNAGenerator(pg.DNAGenerator):
    """A ``pg.DNAGenerator`` that proposes what an evo algorithm proposes.

    The search space must be a single :class:`ProgramSpace` (the DNA value is the
    program JSON). Rewards are floats, higher is better; each proposal must get
    its feedback (or be skipped) — the algorithm learns from every observed one.
    """

    def _on_bound(self) -> None:
        super()._on_bound()
        if not isinstance(self.algorithm, SearchAlgorithm):
            raise TypeError(f"algorithm must be an evo SearchAlgorithm, got "
                            f"{type(self.algorithm).__name__}")
        self._pending: dict[int, Candidate] = {}
        self._trials = 0

    def _setup(self) -> None:
        spec = self.dna_spec
        points = spec.decision_points if spec is not None else []
        if len(points) != 1 or not isinstance(points[0], pg.geno.CustomDecisionPoint):
            raise ValueError("EvoDNAGenerator needs a search space that is one program "
                             "decision point (evo.algorithms.pyglove_adapter.program_space()); got "
                             f"{len(points)} decision point(s)")

    def _propose(self) -> pg.DNA:
        cand = self.algorithm.propose()
        self._trials += 1
        tid = self._trials
        self._pending[tid] = cand
        dna = pg.DNA(dumps(cand.program))
        for key, value in (("evo_trial", tid), ("evo_parent", cand.parent),
                           ("evo_mutation", cand.mutation),
                           ("evo_generation", cand.generation)):
            dna.set_metadata(key, value, cloneable=True)
        if self.dna_spec is not None:
            dna.use_spec(self.dna_spec)
        return dna

    def _feedback(self, dna: pg.DNA, reward: float) -> None:
        tid = dna.metadata.get("evo_trial")
        cand = self._pending.pop(tid, None) if tid is not None else None
        if cand is None:  # a DNA this generator did not propose (e.g. replayed history)
            self._trials += 1
            tid = self._trials
            cand = Candidate(loads(dna.value, check=False), dna.metadata.get("evo_parent"),
                             dna.metadata.get("evo_mutation") or "external",
                             int(dna.metadata.get("evo_generation") or 0))
        self.algorithm.observe(tid, cand, float(reward))

    def _replay(self, trial_id: int, dna: pg.DNA, reward: Any) -> None:
        """Recover from PyGlove's history: count the proposal and observe its reward
        (the random-generator state is not recovered; :class:`evo.search.loop.Search`
        resumes exactly)."""
        self.algorithm.proposed += 1
        if reward is not None:
            self._feedback(dna, reward)
