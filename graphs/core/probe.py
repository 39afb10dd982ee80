"""Probe inputs: fixed inputs on which programs are executed for numeric checks and
fingerprints, and the stacking of several probes into one batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Probe:
    """Fixed inputs on which programs are executed for checks and fingerprints.

    ``net_outputs`` holds every parameter application precomputed, keyed by
    ``(parameter input, argument input)``; ``seed`` seeds the random-constant ops.

    A *stacked* probe (see :func:`stack_probes`) holds several probes' batches one
    after another, ``rows`` rows each, and one draw seed per batch in ``seeds``: a
    program is evaluated on all of them in one pass, with each batch's random
    constants drawn from its own seed and batch reductions (MeanBatch, StdBatch)
    taken batch by batch (see :mod:`graphs.core.execute`).
    """

    feed: dict[str, Any]
    net_outputs: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    seed: int = 0
    name: str = ""
    seeds: tuple[int, ...] = ()
    rows: int = 0


class _StackedNet:
    """A parameter input of a stacked probe: each batch's rows go through that
    batch's own network."""

    def __init__(self, nets: Sequence[Callable[[np.ndarray], np.ndarray]], rows: int) -> None:
        self.nets, self.rows = tuple(nets), rows

    def __call__(self, x: np.ndarray) -> np.ndarray:
        r = self.rows
        return np.concatenate([net(x[k * r:(k + 1) * r]) for k, net in enumerate(self.nets)])


def probe_rows(probe: Probe) -> int:
    """The batch size of ``probe`` (of one batch, for a stacked probe)."""
    if probe.rows:
        return probe.rows
    return max((len(v) for v in probe.feed.values() if isinstance(v, np.ndarray)), default=1)


def stack_probes(probes: Sequence[Probe]) -> Probe:
    """One probe holding the batches of ``probes`` one after another (all of the same
    batch size), to evaluate a program on all of them in one pass."""
    rows = {probe_rows(p) for p in probes}
    if len(rows) != 1:
        raise ValueError(f"probes of different batch sizes ({sorted(rows)}) cannot be stacked")
    (n,) = rows
    feed: dict[str, Any] = {}
    for key, value in probes[0].feed.items():
        parts = [p.feed[key] for p in probes]
        feed[key] = np.concatenate(parts) if isinstance(value, np.ndarray) else _StackedNet(
            parts, n)
    outputs = {key: np.concatenate([p.net_outputs[key] for p in probes])
               for key in probes[0].net_outputs}
    return Probe(feed, outputs, probes[0].seed, "+".join(p.name for p in probes),
                 tuple(p.seed for p in probes), n)
