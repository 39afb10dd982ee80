"""An op set: the language a family of programs is written in.

It bundles the value types, the operators, the standard inputs, what a valid
output is, and the probe inputs used for numeric checks and fingerprints. The RL
loss language is one op set; architectures are another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from graphs.core.errors import ProgramError, unknown_name
from graphs.core.op import Op, Signature
from graphs.core.probe import Probe, stack_probes
from graphs.core.types import ValueType
from graphs.core.validity import GradientCheck

if TYPE_CHECKING:
    from graphs.core.program import Input, Program


class OpSet:
    """Types, operators and standard inputs of one program language.

    ``probes`` makes the probe inputs (see :mod:`graphs.core.probe`); ``describe``, if
    given, is how :func:`graphs.core.render.describe` sums up one of its programs in
    one line (by default, its formula). ``gradient_check`` is the numeric half of
    :meth:`check` (see :mod:`graphs.core.validity`).
    """

    def __init__(
        self,
        name: str,
        types: Sequence[ValueType],
        ops: Sequence[Op],
        inputs: Sequence[Input],
        output_type: ValueType,
        probes: Callable[[], list[Probe]] | None = None,
        doc: str = "",
        describe: Callable[[Program], str] | None = None,
    ) -> None:
        self.name = name
        self.types = tuple(types)
        self.ops = tuple(ops)
        self.inputs = tuple(inputs)
        self.output_type = output_type
        self.doc = doc
        self.describe = describe
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
        self.gradient_check = GradientCheck(self)

    def __repr__(self) -> str:
        return f"OpSet({self.name}: {len(self.ops)} ops)"

    def op(self, name: str) -> Op:
        """The op called ``name``; the error lists close matches."""
        try:
            return self._ops_by_name[name]
        except (KeyError, TypeError):
            raise ProgramError(unknown_name("op", name, self._ops_by_name)) from None

    def type(self, name: str) -> ValueType:
        """The value type called ``name``."""
        try:
            return self._types_by_name[name]
        except (KeyError, TypeError):
            raise ProgramError(unknown_name("type", name, self._types_by_name)) from None

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
        if numeric and not self.gradient_check(program):
            raise ProgramError(
                f"the gradient with respect to the outputs of {trainable} is identically "
                "zero (or NaN) on the probe inputs, so training with this loss changes "
                "nothing",
                program.describe(program.output),
            )


_REGISTRY: dict[str, OpSet] = {}


def register_opset(opset: OpSet) -> OpSet:
    """Make ``opset`` loadable by name from program files."""
    _REGISTRY[opset.name] = opset
    return opset


def get_opset(name: str) -> OpSet:
    """The registered op set called ``name`` (importing :mod:`graphs` registers the
    built-in languages)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ProgramError(unknown_name("op set", name, _REGISTRY)) from None
