"""Running a program: the forward pass and the reverse-mode (backward) pass.

The backward pass returns d(mean loss)/d(output of every trainable parameter
application), e.g. dL/dQ(s_t, .) and dL/dQ(s_t+1, .), so an evaluator can chain it
into the network's own backprop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graphs.opset import Probe
from graphs.program import Program


class Trace:
    """The values of one forward pass, kept for the backward pass."""

    __slots__ = ("program", "values")

    def __init__(self, program: Program, values: list[Any]) -> None:
        self.program = program
        self.values = values

    @property
    def output(self) -> np.ndarray:
        """Per-sample loss, shape ``(B,1)`` or ``(1,1)``."""
        return self.values[self.program.output]

    @property
    def loss(self) -> float:
        """The training loss: the batch mean of the output."""
        return float(np.mean(self.output))


def forward(
    program: Program,
    feed: Mapping[str, Any],
    net_outputs: Mapping[tuple[str, str], np.ndarray] | None = None,
    rng: np.random.Generator | None = None,
    known: Sequence[Any] | None = None,
) -> Trace:
    """Evaluate the live nodes of ``program``.

    Args:
        feed: a value for each input the program uses, by input name; parameter
            inputs are callables (e.g. a Q-network mapping states to per-action values).
        net_outputs: precomputed parameter applications by ``(param, arg)`` name; the
            feed's callable is used for any application not given here.
        rng: source for random-constant ops (a fixed default if omitted).
        known: values already known by index (None where not), e.g. from a parent
            program that shares those nodes; they are used instead of recomputing.
    """
    values = [None] * len(program) if known is None else list(known)
    with np.errstate(all="ignore"):
        return Trace(program, _forward(program, feed, net_outputs, rng, values))


def _forward(program, feed, net_outputs, rng, values: list[Any], seed: int = 0) -> list[Any]:
    """Fill in ``values`` (None where not known yet) for every live index."""
    ids = program.ids
    for i, inp in enumerate(program.inputs):
        if program.live[i]:
            try:
                values[i] = feed[inp.name]
            except KeyError:
                raise KeyError(f"no value fed for input {inp.name!r}") from None
    outs = net_outputs or {}
    for idx, op, args in program.plan:
        if values[idx] is not None:
            continue
        kind = op.kind
        if kind == "compute":
            if len(args) == 2:
                values[idx] = op.forward(values[args[0]], values[args[1]])
            else:
                values[idx] = op.forward(*[values[a] for a in args])
        elif kind == "apply":
            val = outs.get((ids[args[0]], ids[args[1]]))
            values[idx] = val if val is not None else op.forward(
                values[args[0]], values[args[1]]
            )
        else:
            if rng is None:  # created on demand: most programs draw nothing
                rng = np.random.default_rng(seed)
            values[idx] = op.forward(rng)
    return values


def backward(
    trace: Trace, seed: float | None = None
) -> dict[tuple[str, str], np.ndarray]:
    """d(mean loss)/d(each trainable parameter application's output).

    ``seed`` is the cotangent of each output element (default ``1/size``, the batch
    mean); e.g. ``1/B`` when the trace holds several stacked batches of size ``B``.
    """
    with np.errstate(all="ignore"):
        return _backward(trace.program, trace.values, seed)


def _backward(program: Program, values: list[Any], seed: float | None
              ) -> dict[tuple[str, str], np.ndarray]:
    carries, ids = program.carries_gradient, program.ids
    grads: list[Any] = [None] * len(program)
    out = np.asarray(values[program.output])
    scale = 1.0 / out.size if seed is None else seed
    grads[program.output] = np.full(out.shape, scale)
    result: dict[tuple[str, str], np.ndarray] = {}
    missed = False  # a trainable application that no gradient reached
    for idx, op, args in reversed(program.plan):
        g = grads[idx]
        if g is None:
            if op.kind == "apply":
                missed = missed or carries[idx]
            continue
        if op.kind == "apply":
            key = (ids[args[0]], ids[args[1]])
            prev = result.get(key)
            result[key] = g if prev is None else prev + g
            continue
        if op.backward is None:
            continue
        if len(args) == 2:
            arg_grads = op.backward(g, values[idx], values[args[0]], values[args[1]])
        else:
            arg_grads = op.backward(g, values[idx], *[values[a] for a in args])
        for a, ga, flows in zip(args, arg_grads, op.grad_args):
            if flows and ga is not None and carries[a]:
                prev = grads[a]
                grads[a] = ga if prev is None else prev + ga
    if missed and len(result) < len(program.gradient_calls):  # e.g. cut by None
        for idx, op, args in program.plan:
            key = (ids[args[0]], ids[args[1]]) if op.kind == "apply" else None
            if key in program.gradient_calls and key not in result:
                result[key] = np.zeros(np.shape(values[idx]))
    return result


def gradients(program: Program, probe: Probe) -> dict[tuple[str, str], np.ndarray]:
    """Gradients of the mean loss on a probe (see :func:`backward`)."""
    with np.errstate(all="ignore"):
        values = _forward(program, probe.feed, probe.net_outputs, None, [None] * len(program),
                          probe.seed)
        return _backward(program, values, None)


def probe_trace(program: Program, which: int = 0) -> Trace:
    """The forward pass on the op set's probe number ``which``, cached on the program.

    After a point edit (see :meth:`Program.derive`) only the nodes the edit can
    affect are recomputed; the rest come from the parent's cached values, so the
    result is the same as a full pass.
    """
    with np.errstate(all="ignore"):
        return Trace(program, _probe_values(program, which))


def probe_gradients(program: Program, which: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """Gradients on the op set's probe number ``which``, cached on the program (the
    validity check and the training-mode fingerprint both need them)."""
    grads = program._cache.get(("probe_grads", which))
    if grads is None:
        with np.errstate(all="ignore"):
            grads = _probe_gradients(program, which)
    return grads


# The two below leave numpy's error state to the caller (entering np.errstate costs
# more than a small op): callers that run several passes enter it once.
def _probe_values(program: Program, which: int) -> list[Any]:
    probe = program.opset.probes()[which]

    def compute(known: list[Any] | None) -> list[Any]:
        values = [None] * len(program) if known is None else known
        return _forward(program, probe.feed, probe.net_outputs, None, values, probe.seed)

    return program.per_node(("probe", which), compute)


def _probe_gradients(program: Program, which: int) -> dict[tuple[str, str], np.ndarray]:
    key = ("probe_grads", which)
    grads = program._cache.get(key)
    if grads is None:
        grads = program._cache[key] = _backward(program, _probe_values(program, which), None)
    return grads
