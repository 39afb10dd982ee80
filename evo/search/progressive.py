"""Progressive Dynamic Hurdles (So et al., 2019): more budget for the strong.

Every child first trains with budget level 0 (``increments[0]`` times the default
budget). After every ``batch`` children have finished level ``L``, the hurdle
``h_L`` becomes the mean fitness of the population members that reached level
``L``; from then on a child whose level-``L`` fitness exceeds ``h_L`` trains again
at level ``L+1`` with the cumulative budget ``increments[0] + ... + increments[L+1]``
(agents are retrained from scratch with the larger budget). The fitness a child
enters the population with is the one at the highest level it reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evo.errors import ConfigError


class ProgressiveHurdles:
    """The hurdle state of a run; persisted with the run store."""

    def __init__(self, increments: Sequence[float] = (0.25, 0.25, 0.5), batch: int = 50) -> None:
        if len(increments) < 1 or any(not x > 0 for x in increments):
            raise ConfigError(f"increments = {list(increments)!r}: give one or more positive "
                              "budget fractions, e.g. [0.25, 0.25, 0.5]")
        if not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"batch = {batch!r}: must be a positive integer")
        self.increments = [float(x) for x in increments]
        self.batch = batch
        self.hurdles: list[float | None] = [None] * (len(increments) - 1)
        self.finished_at: list[int] = [0] * len(increments)

    def __repr__(self) -> str:
        return f"ProgressiveHurdles(increments={self.increments}, batch={self.batch})"

    @property
    def levels(self) -> int:
        return len(self.increments)

    def budget_scale(self, level: int) -> float:
        """Cumulative budget fraction at ``level``."""
        return sum(self.increments[: level + 1])

    def after(self, level: int, fitness: float, population: Sequence[tuple[float, int]]) -> bool:
        """Record a level-``level`` result; return whether the child trains on at the
        next level. ``population`` holds (fitness, level) of the current members."""
        self.finished_at[level] += 1
        if level < self.levels - 1 and self.finished_at[level] % self.batch == 0:
            reached = [f for f, lv in population if lv >= level]
            if reached:
                self.hurdles[level] = sum(reached) / len(reached)
        if level >= self.levels - 1:
            return False
        hurdle = self.hurdles[level]
        return hurdle is not None and fitness > hurdle

    def state(self) -> dict:
        return {"hurdles": self.hurdles, "finished_at": self.finished_at}

    def restore(self, state: Mapping) -> None:
        self.hurdles = list(state["hurdles"])
        self.finished_at = list(state["finished_at"])
