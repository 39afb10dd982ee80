"""An op set: the language a family of programs is written in.

It bundles the value types, the operators, the standard inputs, what a valid
output is, and the probe inputs used for numeric checks and fingerprints. The RL
loss language is one op set; architectures are another.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphs.errors import ProgramError
from graphs.op import Op, Signature
from graphs.program import Input, Program
from graphs.types import ValueType

# A gradient entry at or below this magnitude counts as zero.
ZERO_GRADIENT_TOL = 1e-9


@dataclass(frozen=True)
class Probe:
    """Fixed inputs on which programs are executed for checks and fingerprints.

    ``net_outputs`` holds every parameter application precomputed, keyed by
    ``(parameter input, argument input)``; ``seed`` seeds the random-constant ops.

    A *stacked* probe (see :func:`stack_probes`) holds several probes' batches one
    after another, ``rows`` rows each, and one draw seed per batch in ``seeds``: a
    program is evaluated on all of them in one pass, with each batch's random
    constants drawn from its own seed and batch reductions (MeanBatch, StdBatch)
    taken batch by batch (see :mod:`graphs.execute`).
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


class OpSet:
    """Types, operators and standard inputs of one program language."""

    def __init__(
        self,
        name: str,
        types: Sequence[ValueType],
        ops: Sequence[Op],
        inputs: Sequence[Input],
        output_type: ValueType,
        probes: Callable[[], list[Probe]] | None = None,
        doc: str = "",
    ) -> None:
        self.name = name
        self.types = tuple(types)
        self.ops = tuple(ops)
        self.inputs = tuple(inputs)
        self.output_type = output_type
        self.doc = doc
        self._make_probes = probes
        self._probes: list[Probe] | None = None
        self._stacked: tuple[list[Probe], Probe | None] | None = None
        self._ops_by_name = {op.name: op for op in self.ops}
        self._types_by_name = {t.name: t for t in self.types}
        self.type_positions = {t: i for i, t in enumerate(self.types)}
        if len(self._ops_by_name) != len(self.ops):
            raise ValueError(f"op set {name}: duplicate op names")
        self.signature_table: dict[tuple[str, tuple[ValueType, ...]], ValueType] = {
            (op.name, sig.args): sig.out for op in self.ops for sig in op.signatures
        }
        self.trains = any(i.trainable for i in self.inputs)
        self._nonzero_memo: dict[int, bool] = {}
        self._checked_inputs: dict[int, tuple[Input, ...]] = {}

    def __repr__(self) -> str:
        return f"OpSet({self.name}: {len(self.ops)} ops)"

    def op(self, name: str) -> Op:
        """The op called ``name``; the error lists close matches."""
        try:
            return self._ops_by_name[name]
        except (KeyError, TypeError):
            raise ProgramError(_unknown("op", name, self._ops_by_name)) from None

    def type(self, name: str) -> ValueType:
        """The value type called ``name``."""
        try:
            return self._types_by_name[name]
        except (KeyError, TypeError):
            raise ProgramError(_unknown("type", name, self._types_by_name)) from None

    def choices(self, ops: Sequence[Op] | None = None) -> list[tuple[Op, Signature]]:
        """Every (op, signature) pair, optionally restricted to ``ops``."""
        allowed = self.ops if ops is None else ops
        return [(op, sig) for op in allowed for sig in op.signatures]

    def probes(self) -> list[Probe]:
        """The op set's fixed probe inputs (computed once)."""
        if self._probes is None:
            self._probes = self._make_probes() if self._make_probes else []
        return self._probes

    def stacked_probe(self) -> Probe | None:
        """All probes' batches in one (:func:`stack_probes`; computed once), or None
        without probes."""
        stacked = self._stacked
        if stacked is None or stacked[0] is not self._probes:
            probes = self.probes()
            stacked = self._stacked = (probes, stack_probes(probes) if probes else None)
        return stacked[1]

    def check(self, program: Program, numeric: bool = True) -> None:
        """Raise :class:`ProgramError` unless ``program`` is a valid program of this set."""
        out_type = program.types[program.output]
        if out_type != self.output_type:
            raise ProgramError(
                f"the output must be {self.output_type.name}, but it is {out_type.name}",
                program.describe(program.output),
            )
        if not self.trains:
            return
        trainable = ", ".join(i.name for i in program.inputs if i.trainable) or "(none)"
        if not program.carries_gradient[program.output]:
            raise ProgramError(
                f"the output does not depend on the trainable input(s) {trainable} through "
                "any path that carries a gradient (paths through e.g. ArgMax carry none)",
                program.describe(program.output),
            )
        if numeric and not self._has_gradient(program):
            raise ProgramError(
                f"the gradient with respect to the outputs of {trainable} is identically "
                "zero (or NaN) on the probe inputs, so training with this loss changes "
                "nothing",
                program.describe(program.output),
            )

    def _has_gradient(self, program: Program) -> bool:
        """The numeric half of the check: the memo first (in a search most children
        repeat a known structure), then the cheap proof, then the probes."""
        from graphs.equivalence import structural_hash

        # Structural hashes name inputs by position: only standard inputs share them.
        standard = self._standard_inputs(program.inputs)
        key = structural_hash(program) if standard else None
        known = self._nonzero_memo.get(key) if standard else None
        if known:
            return True
        if program.gradient_provably_nonzero:
            if known is None and standard:
                self._remember(key, True)
            return True
        if known is False:
            return False
        self._check_probe_inputs(program)
        return gradient_is_nonzero(program)

    def _remember(self, key: int, nonzero: bool) -> None:
        """Memoize whether programs with this structural hash have a gradient."""
        if len(self._nonzero_memo) > 200_000:
            self._nonzero_memo.clear()
        self._nonzero_memo[key] = nonzero

    def _standard_inputs(self, inputs: tuple[Input, ...]) -> bool:
        """Whether ``inputs`` are this op set's standard inputs (cached by identity:
        mutation shares the inputs tuple between parent and child)."""
        if self._checked_inputs.get(id(inputs)) is inputs:
            return True
        if self._nonstandard(inputs):
            return False
        if len(self._checked_inputs) > 1000:
            self._checked_inputs.clear()
        self._checked_inputs[id(inputs)] = inputs
        return True

    def _nonstandard(self, inputs: tuple[Input, ...]) -> list[int]:
        standard = {i.name: i for i in self.inputs}
        return [
            i for i, inp in enumerate(inputs)
            if (std := standard.get(inp.name)) is None
            or std.type is not inp.type or std.trainable != inp.trainable
        ]

    def _check_probe_inputs(self, program: Program) -> None:
        """The probes feed the standard inputs only; anything else can't be checked."""
        inputs = program.inputs
        if self._standard_inputs(inputs):
            return
        for i in self._nonstandard(inputs):
            if program.live[i]:
                known = ", ".join(f"{s.name}: {s.type.name}" for s in self.inputs)
                raise ProgramError(
                    f"input {inputs[i].name!r} ({inputs[i].type.name}) is not one of the "
                    f"{self.name} op set's inputs ({known}), so its gradient cannot be "
                    "checked numerically",
                    program.describe(i),
                )


def gradient_is_nonzero(program: Program, memo: bool = True) -> bool:
    """Whether the loss gradient is finite and non-zero somewhere on some probe.

    Memoized by structural hash (structurally equal programs have equal gradients);
    ``memo=False`` recomputes everything from scratch.
    """
    from graphs.equivalence import structural_hash
    from graphs.execute import STACKED, _probe_gradients, gradients, stackable

    opset = program.opset
    key = structural_hash(program) if memo else None
    known = opset._nonzero_memo.get(key) if memo else None
    if known is not None:
        return known
    result = False
    # All probes in one pass on the stacked probe (the fingerprint then reuses it);
    # else (an op that mixes rows without reducing them) one probe at a time.
    n_probes = len(opset.probes())
    which_probes = [STACKED] if memo and n_probes > 1 and stackable(program) else range(n_probes)
    with np.errstate(all="ignore"):
        for which in which_probes:
            grads = (_probe_gradients(program, which) if memo
                     else gradients(program, opset.probes()[which]))
            for g in grads.values():
                mag = np.abs(g)
                if ((mag > ZERO_GRADIENT_TOL) & (mag < np.inf)).any():  # NaN fails both
                    result = True
                    break
            if result:
                break
    if memo:
        opset._remember(key, result)
    return result


def _unknown(kind: str, name: object, known: dict[str, Any]) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})"


_REGISTRY: dict[str, OpSet] = {}


def register_opset(opset: OpSet) -> OpSet:
    """Make ``opset`` loadable by name from program files."""
    _REGISTRY[opset.name] = opset
    return opset


def get_opset(name: str) -> OpSet:
    """The registered op set called ``name``."""
    import graphs.arch  # noqa: F401  (registers the built-in op sets)
    import graphs.rl_loss  # noqa: F401

    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ProgramError(_unknown("op set", name, _REGISTRY)) from None
