"""PyGlove twins of programs: lossless conversion to and from symbolic values.

Why two classes: a :class:`~graphs.core.program.Program` is a plain, immutable Python
object because the search builds, mutates, hashes and caches enormous numbers of
them, and mutation must run at more than 20k programs per second. Constructing a
``pg.Object`` costs tens to hundreds of microseconds *per object* (schema validation,
parent links, change notifications; about 0.2 ms per :class:`SymbolicNode` here), so
a symbolic program would be orders of magnitude too slow in that loop. The engine
therefore never uses PyGlove internally; instead every program has a *symbolic
twin*, a :class:`SymbolicProgram`, that a PyGlove user can format, serialize, clone,
patch and put into a search space. Ops, types and argument references are plain
strings (op names, type names, input names and node ids), so the twin reads like the
program and round-trips exactly through ``pg.to_json_str``/``pg.from_json_str``.

Usage::

    import pyglove as pg
    from graphs.rl_loss.library import builtin
    from graphs.core.symbolic import from_symbolic, to_symbolic

    space = pg.oneof([to_symbolic(builtin("dqn")), to_symbolic(builtin("ddqn"))])
    program = from_symbolic(next(pg.random_sample(space, seed=0)))

:func:`node_choices_space` turns one node into a choice over every type-valid
replacement, so ``pg.iter`` enumerates that node's point-mutation neighbourhood.
"""

from __future__ import annotations

import itertools
from typing import Any

import pyglove as pg

from graphs.core.errors import ProgramError
from graphs.core.opset import OpSet, get_opset
from graphs.core.program import Input, Node, Program

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
    """The PyGlove twin of a :class:`~graphs.core.program.Program`."""

    def to_program(self) -> Program:
        """The plain program; see :func:`from_symbolic`."""
        return from_symbolic(self)


def to_symbolic(program: Program) -> SymbolicProgram:
    """The symbolic twin of ``program``; ``from_symbolic`` inverts it exactly.

    References become names, which are unambiguous because a Program's ids are unique.
    """
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


def _symbolic_node(program: Program, index: int) -> SymbolicNode:
    node = program.node(index)
    ids = program.ids
    return SymbolicNode(ids[index], node.op.name, [ids[a] for a in node.args], node.frozen)


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
def _node_signatures(program: Program, index: int) -> list[tuple[str, list[list[int]]]]:
    """``(op name, candidate argument indices per position)`` for every signature that
    could replace the node at ``index`` while keeping its output type.

    For a fixed signature the argument positions are independent, so the valid
    ``(op, args)`` choices are exactly the union over these entries of the products of
    their positions' candidates (entries with an empty position are left out).
    """
    n_in = program.n_inputs
    if not n_in <= index < len(program):
        raise ProgramError(f"index {index} is not an operator node", "index")
    out = program.types[index]
    table = program.opset.signature_table
    by_type: dict[Any, list[int]] = {}
    for i, t in enumerate(program.types[:index]):
        by_type.setdefault(t, []).append(i)
    entries: dict[tuple[str, tuple[Any, ...]], list[list[int]]] = {}
    for op, sig in program.opset.choices():
        # The table resolves argument types to one output type, as Program does.
        if table.get((op.name, sig.args)) != out:
            continue
        positions = [by_type.get(t, []) for t in sig.args]
        if all(positions):
            entries.setdefault((op.name, sig.args), positions)
    return [(name, positions) for (name, _), positions in entries.items()]


def node_choices(program: Program, index: int) -> list[tuple[str, tuple[int, ...]]]:
    """Every type-valid ``(op name, argument indices)`` for the node at ``index``.

    Arguments range over the inputs and earlier nodes, and the op's output type must
    equal the node's current one, so every later node stays well typed. The node's
    current choice is included. Order: op set order, then signature order, then
    arguments lexicographically.
    """
    return [
        (name, args)
        for name, positions in _node_signatures(program, index)
        for args in itertools.product(*positions)
    ]


def node_choices_space(program: Program, index: int) -> SymbolicProgram:
    """``to_symbolic(program)`` with the node at ``index`` turned into a choice.

    The node becomes ``pg.oneof`` over one :class:`SymbolicNode` per (op, signature)
    that keeps the node's output type, each keeping the node's id and holding a
    ``pg.oneof`` over the type-valid references at every argument position (a plain
    reference when there is only one). ``pg.iter`` therefore enumerates exactly
    :func:`node_choices`, in the same order: the node's point-mutation neighbourhood
    including the node itself. Every sample converts back into a well-typed program
    (that may still fail :meth:`Program.check`, e.g. by losing its gradient path).

    The factored form keeps the space small: PyGlove deep-copies the whole space for
    every sample, so with a flat ``pg.oneof`` over all (op, args) pairs each sample
    would cost time proportional to the number of choices. Even so a sample costs
    tens of milliseconds, so this is for inspection and PyGlove experiments, not for
    the search loop.

    Raises:
        ProgramError: if ``index`` is not an operator node or the node is frozen.
    """
    n_in = program.n_inputs
    signatures = _node_signatures(program, index)  # checks the index
    if program.node(index).frozen:
        raise ProgramError("the node is frozen, so it has no mutations", program.describe(index))
    ids = program.ids
    candidates = [
        SymbolicNode(
            ids[index],
            name,
            [ids[p[0]] if len(p) == 1 else pg.oneof([ids[a] for a in p]) for p in positions],
        )
        for name, positions in signatures
    ]
    space = to_symbolic(program)
    space.rebind({f"nodes[{index - n_in}]": pg.oneof(candidates)})
    return space
