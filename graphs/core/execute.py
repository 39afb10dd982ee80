"""Running a program: the forward pass and the reverse-mode (backward) pass.

The backward pass returns d(mean loss)/d(output of every trainable parameter
application), e.g. dL/dQ(s_t, .) and dL/dQ(s_t+1, .), so an evaluator can chain it
into the network's own backprop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graphs.core.probe import Probe, probe_rows
from graphs.core.program import Program

# ``which`` of the op set's stacked probe: every probe's batch, one after another
# (see :meth:`graphs.core.opset.OpSet.stacked_probe`).
STACKED = -1
# A gradient entry at or below this magnitude counts as zero (in the validity check
# and in training-mode fingerprints).
ZERO_GRADIENT_TOL = 1e-9


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


def _forward(program, feed, net_outputs, rng, values: list[Any], seed: int = 0,
             rows: int = 0) -> list[Any]:
    """Fill in ``values`` (None where not known yet) for every live index.

    With ``rows``, the feed is a stacked probe: ``seed`` is then a tuple with one
    draw seed per batch of ``rows`` rows; each random-constant op draws once per
    batch and each batch-mixing op reduces each batch on its own (a column: each
    batch's value repeated over its rows)."""
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
            if rows and op.mixes_rows:
                per_row = _per_row(program)
                values[idx] = np.repeat(np.concatenate([
                    op.forward(*_batch_args(per_row, args, values, k * rows, rows))
                    for k in range(len(seed))]), rows, axis=0)
            elif len(args) == 2:
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
                rng = ([np.random.default_rng(s) for s in seed] if rows
                       else np.random.default_rng(seed))
            if rows:  # stacked batches: each draws from its own stream
                values[idx] = np.repeat(np.concatenate([op.forward(r) for r in rng]), rows,
                                        axis=0)
            else:
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


def _backward(program: Program, values: list[Any], seed: float | None, rows: int = 0,
              batches: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """With ``rows``, ``values`` come from a stacked probe of ``batches`` batches
    (``seed`` is then ``1/rows``)."""
    carries, ids = program.carries_gradient, program.ids
    grads: list[Any] = [None] * len(program)
    out = np.asarray(values[program.output])
    scale = 1.0 / out.size if seed is None else seed
    if rows and out.shape[0] == rows * batches:  # each batch's mean, also of a LIST
        scale = seed * out.shape[0] / out.size
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
        if rows and op.mixes_rows:
            arg_grads = _batchwise_backward(program, op, idx, args, values, g, rows, batches)
        elif len(args) == 2:
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


def _per_row(program: Program) -> list[bool]:
    """For every index, whether its value on a stacked probe varies row by row; if
    not, it holds one value per batch (repeated over the batch's rows: a batch
    reduction, a draw, what is computed from those) or one for all (a constant)."""
    return program.memo("per_row", lambda: _compute_per_row(program))


def _compute_per_row(program: Program) -> list[bool]:
    per_row = [True] * len(program)
    for idx, op, args in program.plan:
        if op.kind == "random" or op.mixes_rows:
            per_row[idx] = False
        elif op.kind == "compute":
            per_row[idx] = any(per_row[a] for a in args)
    return per_row


def _batch_args(per_row: list[bool], args: tuple[int, ...], values: list[Any], lo: int,
                rows: int) -> list[Any]:
    """The arguments of a batch-mixing op for the stacked batch starting at row
    ``lo``, as that batch's own probe gives them."""
    out = []
    for a in args:
        x = values[a]
        if per_row[a]:
            out.append(x[lo:lo + rows])
        elif x.shape[0] == 1:
            out.append(x)  # one value for all batches
        else:
            out.append(x[lo:lo + 1])  # the batch's value, once
    return out


def _batchwise_backward(program: Program, op: Any, idx: int, args: tuple[int, ...],
                        values: list[Any], g: np.ndarray, rows: int, batches: int
                        ) -> list[Any]:
    """The backward rule of a batch-mixing op on a stacked probe, batch by batch.

    A value that holds one value per batch gets, on each batch's first row, the
    gradient with respect to that one value (the rest of the batch's rows 0), so
    summing a batch's rows gives that gradient, as for the value computed from it.
    """
    per_row = _per_row(program)
    parts: list[list[Any]] = [[] for _ in args]
    out = values[idx]
    for k in range(batches):
        lo = k * rows
        xs = _batch_args(per_row, args, values, lo, rows)
        gk = g[lo:lo + rows].sum(axis=0, keepdims=True)  # the op's output: one row
        for part, ga in zip(parts, op.backward(gk, out[lo:lo + 1], *xs)):
            part.append(ga)
    result: list[Any] = []
    for a, part in zip(args, parts):
        x = values[a]
        if any(ga is None for ga in part):
            result.append(None)
        elif per_row[a]:
            result.append(np.concatenate(part))
        elif x.shape[0] == 1:
            result.append(sum(part[1:], part[0]))
        else:
            ga = np.zeros(x.shape)
            ga[::rows] = np.concatenate(part)
            result.append(ga)
    return result


def gradients(program: Program, probe: Probe) -> dict[tuple[str, str], np.ndarray]:
    """Gradients of the mean loss on a probe (see :func:`backward`); on a stacked
    probe, of each batch's mean, stacked."""
    with np.errstate(all="ignore"):
        values = _forward(program, probe.feed, probe.net_outputs, None, [None] * len(program),
                          *_draws(probe))
        return _backward(program, values, *_cotangent(probe))


def _draws(probe: Probe) -> tuple[Any, int]:
    """``seed`` and ``rows`` for :func:`_forward` on ``probe``."""
    return (probe.seeds, probe.rows) if probe.rows else (probe.seed, 0)


def _cotangent(probe: Probe) -> tuple[float | None, int, int]:
    """``seed``, ``rows`` and ``batches`` for :func:`_backward` on ``probe``: on a
    stacked probe, the gradient of each batch's mean."""
    return (1.0 / probe.rows, probe.rows, len(probe.seeds)) if probe.rows else (None, 0, 0)


def _probe(program: Program, which: int) -> Probe:
    opset = program.opset
    return opset.stacked_probe() if which == STACKED else opset.probes()[which]


def stackable(program: Program) -> bool:
    """Whether the program's results on the stacked probe are its results on each
    probe, one after another: every live op that mixes batch rows reduces them to
    one row (as MeanBatch and StdBatch do), so it is applied batch by batch; each
    batch also draws random constants from its own seed."""
    return program.memo("stackable", lambda: all(
        _reduces_rows(op) for _, op, _ in program.plan if op.mixes_rows))


_REDUCES_ROWS: dict[Any, bool] = {}  # by op (ops compare by identity)


def _reduces_rows(op: Any) -> bool:
    """Whether a batch-mixing op maps a batch to one row (tried once per op)."""
    known = _REDUCES_ROWS.get(op)
    if known is None:
        try:
            with np.errstate(all="ignore"):
                out = op.forward(*[np.arange(6.0).reshape(3, 2) + i
                                   for i in range(len(op.signatures[0].args))])
            known = np.shape(out) == (1, 2) and op.backward is not None
        except Exception:  # noqa: BLE001 (an op that can't take this: not stacked)
            known = False
        _REDUCES_ROWS[op] = known
    return known


def probe_trace(program: Program, which: int = 0) -> Trace:
    """The forward pass on the op set's probe number ``which`` (or :data:`STACKED`),
    cached on the program.

    After a point edit (see :meth:`Program.derive`) only the nodes the edit can
    affect are recomputed; the rest come from the parent's cached values, so the
    result is the same as a full pass.
    """
    with np.errstate(all="ignore"):
        return Trace(program, _probe_values(program, which))


def probe_gradients(program: Program, which: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """Gradients on the op set's probe number ``which``, cached on the program (the
    validity check and the training-mode fingerprint both need them)."""
    grads = program.recall(("probe_grads", which))
    if grads is None:
        with np.errstate(all="ignore"):
            grads = _probe_gradients(program, which)
    return grads


# The functions below leave numpy's error state to the caller (entering np.errstate
# costs more than a small op): callers that run several passes enter it once.
def _probe_values(program: Program, which: int) -> list[Any]:
    probe = _probe(program, which)

    def compute(known: list[Any] | None) -> list[Any]:
        values = [None] * len(program) if known is None else known
        return _forward(program, probe.feed, probe.net_outputs, None, values, *_draws(probe))

    return program.per_node(("probe", which), compute)


def _probe_gradients(program: Program, which: int) -> dict[tuple[str, str], np.ndarray]:
    return program.memo(("probe_grads", which), lambda: _backward(
        program, _probe_values(program, which), *_cotangent(_probe(program, which))))


def probe_set_gradients(program: Program) -> dict[tuple[str, str], np.ndarray]:
    """Gradients on every probe of the op set, each batch's rows one after another
    (the stacked probe's layout), cached on the program: one pass on the stacked
    probe when the program is :func:`stackable`, else one pass per probe. Leaves
    numpy's error state to the caller."""
    return program.memo("probe_set_grads", lambda: _probe_set_gradients(program))


def _probe_set_gradients(program: Program) -> dict[tuple[str, str], np.ndarray]:
    n = len(program.opset.probes())
    if n > 1 and stackable(program):
        return _probe_gradients(program, STACKED)
    parts = [_probe_gradients(program, k) for k in range(n)]
    grads = {}
    for key in dict.fromkeys(k for part in parts for k in part):
        like = next(part[key] for part in parts if key in part)
        grads[key] = np.concatenate([
            part[key] if key in part else np.zeros_like(like) for part in parts])
    return grads


def probe_set_outputs(program: Program) -> np.ndarray:
    """The per-sample output on every probe, the batches one after another, shape
    ``(total rows, 1)``. Leaves numpy's error state to the caller."""
    opset = program.opset
    probes = opset.probes()
    out = program.output
    if len(probes) > 1 and stackable(program):
        stacked = opset.stacked_probe()
        return np.broadcast_to(_probe_values(program, STACKED)[out],
                               (stacked.rows * len(probes), 1))
    return np.concatenate([
        np.broadcast_to(_probe_values(program, k)[out], (probe_rows(p), 1))
        for k, p in enumerate(probes)])
