"""PyGlove twins of programs: lossless conversion to and from symbolic values.

A :class:`~graphs.program.Program` is a plain, immutable Python object because the
search builds, mutates and hashes millions of them: constructing a ``pg.Object``
costs tens to hundreds of microseconds (schema validation, parent links, change
notifications), while mutation must run at more than 20k programs per second. So the
engine never uses PyGlove internally; instead every program has a *symbolic twin*,
a :class:`SymbolicProgram`, that a PyGlove user can format, serialize, clone, patch
and put into a search space with ``pg.oneof``. Ops, types and argument references are
plain strings (op names, type names, input names and node ids), so the twin reads
like the program and round-trips through JSON::

    import pyglove as pg
    from graphs.library import builtin
    from graphs.symbolic import from_symbolic, to_symbolic

    space = pg.oneof([to_symbolic(builtin("dqn")), to_symbolic(builtin("ddqn"))])
    programs = [from_symbolic(s) for s in pg.iter(space)]

:func:`node_choices_space` turns one node into a ``pg.oneof`` over every type-valid
replacement, so ``pg.iter`` enumerates that node's point-mutation neighbourhood.
"""

from __future__ import annotations

import itertools
from typing import Any

import pyglove as pg

from graphs.errors import ProgramError
from graphs.opset import OpSet, get_opset
from graphs.program import Input, Node, Program

__all__ = [
    "SymbolicInput",
    "SymbolicNode",
    "SymbolicProgram",
    "from_symbolic",
    "node_choices",
    "node_choices_space",
    "to_symbolic",
]


@pg.members([
    ("name", pg.typing.Str(), "Input name; nodes refer to the input by it."),
    ("type", pg.typing.Str(), "Name of the input's value type in the op set, e.g. 'FLOAT'."),
    ("trainable", pg.typing.Bool(default=False),
     "Whether the input is a trained parameter (e.g. the online Q-network)."),
    ("symbol", pg.typing.Str().noneable(),
     "How the input appears in formulas; None takes it from the op set's standard "
     "input of the same name (or leaves it empty)."),
    ("doc", pg.typing.Str().noneable(),
     "A description of the input; None takes it from the op set, like `symbol`."),
])
class SymbolicInput(pg.Object):
    """A program input: a name, a value type (by name) and whether it is trainable."""


@pg.members([
    ("id", pg.typing.Str(), "Node id; later nodes and the output refer to the node by it."),
    ("op", pg.typing.Str(), "Name of the operator in the op set, e.g. 'Add'."),
    ("args", pg.typing.List(pg.typing.Str(), default=[]),
     "Argument references: names of inputs or ids of earlier nodes."),
    ("frozen", pg.typing.Bool(default=False), "Whether mutation leaves the node alone."),
])
class SymbolicNode(pg.Object):
    """An operator node: ``op`` applied to the inputs or earlier nodes named in ``args``."""


@pg.members([
    ("opset", pg.typing.Str(), "Name of the registered op set, e.g. 'rl_loss'."),
    ("inputs", pg.typing.List(pg.typing.Object(SymbolicInput)), "The program's inputs."),
    ("nodes", pg.typing.List(pg.typing.Object(SymbolicNode)),
     "Operator nodes in topological order."),
    ("output", pg.typing.Str(), "Id of the output node."),
])
class SymbolicProgram(pg.Object):
    """The PyGlove twin of a :class:`~graphs.program.Program`."""

    def to_program(self) -> Program:
        """The plain program; see :func:`from_symbolic`."""
        return from_symbolic(self)


def to_symbolic(program: Program) -> SymbolicProgram:
    """The symbolic twin of ``program``; ``from_symbolic`` inverts it exactly.

    Raises:
        ProgramError: if two inputs or nodes share a name, so that string references
            would be ambiguous.
    """
    _check_unique(program.ids, [f"inputs[{i}].name" for i in range(program.n_inputs)]
                  + [f"nodes[{i}].id" for i in range(len(program.nodes))])
    standard = {i.name: i for i in program.opset.inputs}
    inputs = []
    for inp in program.inputs:
        same = standard.get(inp.name) == inp
        inputs.append(SymbolicInput(
            inp.name, inp.type.name, inp.trainable,
            None if same else inp.symbol, None if same else inp.doc,
        ))
    return SymbolicProgram(
        program.opset.name,
        inputs,
        [_symbolic_node(program, program.n_inputs + i) for i in range(len(program.nodes))],
        program.ids[program.output],
    )


def _symbolic_node(program: Program, index: int, op: str | None = None,
                   args: tuple[int, ...] | None = None) -> SymbolicNode:
    node = program.node(index)
    return SymbolicNode(
        program.ids[index],
        node.op.name if op is None else op,
        [program.ids[a] for a in (node.args if args is None else args)],
        node.frozen,
    )


def from_symbolic(value: SymbolicProgram) -> Program:
    """The plain program that the symbolic value ``value`` describes.

    Raises:
        ProgramError: if ``value`` is not a concrete :class:`SymbolicProgram` (e.g. it
            still holds a ``pg.oneof``), names an unknown op set, type or op, refers to
            an unknown or later node, reuses a name, or fails the program's own type
            checks. ``where`` names the offending field, e.g. ``"nodes[3].args[1]"``.
    """
    if not isinstance(value, SymbolicProgram):
        raise ProgramError(f"expected a SymbolicProgram, got {type(value).__name__}")
    if not pg.is_deterministic(value) or pg.is_abstract(value):
        raise ProgramError(
            "the symbolic program is not concrete: it still contains choices (e.g. "
            "pg.oneof) or missing fields; materialize it first, e.g. with "
            "pg.random_sample(space, seed=...) or pg.iter(space)"
        )
    opset = _field(lambda: get_opset(value.opset), "opset")
    inputs = [_input(opset, i, inp) for i, inp in enumerate(value.inputs)]
    names = [inp.name for inp in value.inputs] + [n.id for n in value.nodes]
    _check_unique(names, [f"inputs[{i}].name" for i in range(len(value.inputs))]
                  + [f"nodes[{i}].id" for i in range(len(value.nodes))])
    index = {name: i for i, name in enumerate(names)}
    nodes = []
    for i, node in enumerate(value.nodes):
        op = _field(lambda node=node: opset.op(node.op), f"nodes[{i}].op")
        own = len(inputs) + i
        args = []
        for j, ref in enumerate(node.args):
            where = f"nodes[{i}].args[{j}]"
            a = index.get(ref)
            if a is None:
                raise ProgramError(f"unknown reference {ref!r}; {_known(names[:own])}", where)
            if a >= own:
                what = "the node itself" if a == own else f"the later node {ref!r}"
                raise ProgramError(
                    f"argument refers to {what}; arguments must be inputs or earlier "
                    "nodes (programs are acyclic and listed in topological order)",
                    where,
                )
            args.append(a)
        nodes.append(Node(op, tuple(args), node.frozen))
    output = index.get(value.output)
    if output is None:
        raise ProgramError(f"unknown output {value.output!r}; {_known(names)}", "output")
    return Program(opset, nodes, inputs, output, [n.id for n in value.nodes])


def _input(opset: OpSet, i: int, inp: SymbolicInput) -> Input:
    vtype = _field(lambda: opset.type(inp.type), f"inputs[{i}].type")
    standard = next((s for s in opset.inputs if s.name == inp.name), None)
    symbol, doc = inp.symbol, inp.doc
    if symbol is None:
        symbol = standard.symbol if standard is not None else ""
    if doc is None:
        doc = standard.doc if standard is not None else ""
    return Input(inp.name, vtype, inp.trainable, symbol, doc)


def _field(get: Any, where: str) -> Any:
    """Call ``get`` and tag a ProgramError it raises with the symbolic field ``where``."""
    try:
        return get()
    except ProgramError as e:
        raise ProgramError(e.reason, where) from None


def _check_unique(names: list[str] | tuple[str, ...], wheres: list[str]) -> None:
    seen: set[str] = set()
    for name, where in zip(names, wheres):
        if name in seen:
            raise ProgramError(
                f"name {name!r} is used twice; inputs and nodes need distinct names so "
                "that references are unambiguous",
                where,
            )
        seen.add(name)


def _known(names: list[str]) -> str:
    return f"known here: {', '.join(names)}" if names else "nothing is defined here"


# -- search spaces ------------------------------------------------------------------------
def node_choices(program: Program, index: int) -> list[tuple[str, tuple[int, ...]]]:
    """Every type-valid ``(op name, argument indices)`` for the node at ``index``.

    Arguments range over the inputs and earlier nodes, and the op's output type must
    equal the node's current one, so every later node stays well typed. The node's
    current choice is included. Order: op set order, then signature order, then
    arguments lexicographically.
    """
    n_in = program.n_inputs
    if not n_in <= index < len(program):
        raise ProgramError(f"index {index} is not an operator node", "index")
    out = program.types[index]
    table = program.opset.signature_table
    by_type: dict[Any, list[int]] = {}
    for i, t in enumerate(program.types[:index]):
        by_type.setdefault(t, []).append(i)
    choices: dict[tuple[str, tuple[int, ...]], None] = {}
    for op, sig in program.opset.choices():
        # The table resolves argument types to one output type, as Program does.
        if table.get((op.name, sig.args)) != out:
            continue
        for args in itertools.product(*(by_type.get(t, []) for t in sig.args)):
            choices[(op.name, args)] = None
    return list(choices)


def node_choices_space(program: Program, index: int) -> SymbolicProgram:
    """``to_symbolic(program)`` with the node at ``index`` replaced by a ``pg.oneof``.

    The candidates are :class:`SymbolicNode` values with the node's id and frozen flag
    and every choice of :func:`node_choices` as ``op`` and ``args``, so ``pg.iter``
    enumerates the node's point-mutation neighbourhood (including the node itself)
    and every sample converts back into a well-typed program.

    Raises:
        ProgramError: if ``index`` is not an operator node or the node is frozen.
    """
    n_in = program.n_inputs
    if n_in <= index < len(program) and program.node(index).frozen:
        raise ProgramError("the node is frozen, so it has no mutations", program.describe(index))
    choices = node_choices(program, index)
    space = to_symbolic(program)
    candidates = [_symbolic_node(program, index, op, args) for op, args in choices]
    space.rebind({f"nodes[{index - n_in}]": pg.oneof(candidates)})
    return space
