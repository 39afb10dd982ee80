"""Random search: every proposal is a fresh draw from the space (the baseline)."""

from __future__ import annotations

from evo.algorithms.base import Candidate, SearchAlgorithm, SeedSpace, Space, sampler


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
