"""The hurdle environment (:class:`Hurdle`): a cheap first environment whose score a
program must reach to be trained further."""

from __future__ import annotations

import math
from dataclasses import dataclass

from envs.errors import EnvError, is_real
from envs.registry import get


@dataclass(frozen=True)
class Hurdle:
    """Train on ``env`` first; a normalized score below ``threshold`` stops the evaluation.

    The paper's hurdle is CartPole at 0.6, which cut about 40% of the non-duplicate
    programs (reference.md §1.3). ``env`` may be any name :func:`envs.get` accepts and
    is stored as the canonical short id.
    """

    env: str = "CartPole"
    threshold: float = 0.6

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", get(self.env).id)
        if not is_real(self.threshold) or not 0.0 <= self.threshold <= 1.0:
            raise EnvError(
                f"must be a normalized score in [0, 1], got {self.threshold!r}",
                where="threshold",
            )
        object.__setattr__(self, "threshold", float(self.threshold))

    def passed(self, score: float) -> bool:
        """Whether a normalized ``score`` clears the hurdle (reaching the threshold counts)."""
        return not math.isnan(score) and score >= self.threshold


DEFAULT_HURDLE = Hurdle()
