"""What an evaluation returns, and the one vocabulary of statuses.

An evaluator returns a fitness (a number), a mapping, or an object with ``to_dict()``;
:meth:`Result.coerce` turns any of them into a :class:`Result`. The rules live here
and nowhere else:

* an evaluation's :class:`Status` is one of ``ok``, ``hurdle``, ``nan``, ``timeout``,
  ``error``;
* its fitness counts only when it is :func:`scored` (``ok`` or ``hurdle``); any other
  status scores 0;
* a scored result whose fitness is missing or not a finite number becomes an
  ``error`` with a reason;
* ``ok``, ``hurdle`` and ``nan`` are :func:`cacheable`: a property of the program, valid
  for every equivalent one; timeouts and errors may be the machine's fault.

A trial in a run store has a :class:`TrialStatus` (``proposed`` ... ``duplicate``).
Both enums are ``str`` subclasses, so they compare equal to, and serialize as, the
plain strings that run stores and result files have always held.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any

from graphs.core.errors import is_real


class Status(StrEnum):
    """How one evaluation ended."""

    OK = "ok"
    HURDLE = "hurdle"  # stopped by the hurdle; its fitness still counts
    NAN = "nan"  # training diverged
    TIMEOUT = "timeout"
    ERROR = "error"


class TrialStatus(StrEnum):
    """Where a trial of a run store stands."""

    PROPOSED = "proposed"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DUPLICATE = "duplicate"


SCORED = frozenset({Status.OK, Status.HURDLE})
CACHEABLE = frozenset({Status.OK, Status.HURDLE, Status.NAN})


def scored(status: object) -> bool:
    """Whether a result with this status has a fitness that counts."""
    return status in SCORED


def cacheable(status: object) -> bool:
    """Whether this status holds for every program equivalent to the evaluated one."""
    return status in CACHEABLE


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Result(Mapping):
    """One evaluation's outcome, a read-only mapping over its dict form: ``status``,
    ``fitness``, an optional ``reason``, and whatever else the evaluator reported
    (scores, hurdle, accuracy, latency, seconds), in the order it reported them."""

    __slots__ = ("data",)

    def __init__(self, status: str = Status.OK, fitness: float = 0.0,
                 reason: str | None = None, **extra: Any) -> None:
        self.data: dict[str, Any] = {"status": str(status), "fitness": fitness, **extra}
        if reason is not None:
            self.data["reason"] = reason

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def fitness(self) -> float:
        return self.data["fitness"]

    @property
    def reason(self) -> str | None:
        return self.data.get("reason")

    @property
    def scored(self) -> bool:
        return scored(self.status)

    @property
    def cacheable(self) -> bool:
        return cacheable(self.status)

    @property
    def counted_fitness(self) -> float:
        """The fitness selection sees: the fitness if scored, else 0."""
        return float(self.fitness) if self.scored else 0.0

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain dict (what workers send and stores record)."""
        return dict(self.data)

    def __repr__(self) -> str:
        return f"Result({self.data!r})"

    @classmethod
    def _of(cls, data: dict[str, Any]) -> Result:
        out = cls.__new__(cls)
        out.data = data
        return out

    @classmethod
    def coerce(cls, result: Any) -> Result:
        """Any evaluator return value as a checked result.

        A plain number is the fitness of an ``ok`` evaluation; a mapping (or an object
        with ``to_dict()``) is taken as is, with ``status`` defaulting to ``ok``. A scored
        result whose fitness is missing, not a number, NaN or infinite becomes an
        ``error`` result with fitness 0 and a reason; an unscored one gets fitness 0
        unless it carries a finite number."""
        if isinstance(result, Result):
            data = result.to_dict()
        elif is_real(result):
            data = {"status": "ok", "fitness": result}
        elif hasattr(result, "to_dict"):
            data = dict(result.to_dict())
        elif isinstance(result, Mapping):
            data = dict(result)
        else:
            return cls(Status.ERROR, 0.0,
                       reason=f"the evaluator returned {type(result).__name__} "
                       f"{_clip(repr(result))}; return a fitness (a number) or a dict "
                       "with 'fitness' (and optionally 'status', 'scores', 'reason')")
        data.setdefault("status", "ok")
        if scored(data["status"]):
            fitness = data.get("fitness")
            if not is_real(fitness) or not math.isfinite(fitness):
                what = "no fitness" if fitness is None else f"fitness {_clip(repr(fitness))}"
                data.update(status="error", fitness=0.0, evaluator_status=data["status"],
                            reason=f"the evaluator returned {what}: a fitness must be a "
                                   "finite number")
            else:
                data["fitness"] = float(fitness)
        else:
            fitness = data.get("fitness", 0.0)
            data["fitness"] = float(fitness) if is_real(fitness) and math.isfinite(
                fitness) else 0.0
        return cls._of(data)
