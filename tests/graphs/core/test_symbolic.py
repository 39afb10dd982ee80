"""Tests for graphs.core.symbolic: PyGlove twins of programs and search spaces over them."""

from __future__ import annotations

import itertools
import re

import pyglove as pg
import pytest

import graphs.core.symbolic
from graphs.core.errors import ProgramError
from graphs.core.program import Input, Node, Program
from graphs.core.symbolic import (
    SymbolicInput,
    SymbolicNode,
    SymbolicProgram,
    from_symbolic,
    node_choices,
    node_choices_space,
    to_symbolic,
)
from graphs.rl_loss.library import BUILTINS, builtin
from graphs.rl_loss.ops import FLOAT, RL_LOSS

NAMES = sorted(BUILTINS)


# -- conversion ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_is_exact(name):
    p = builtin(name)
    s = to_symbolic(p)
    q = from_symbolic(s)
    assert q == p and hash(q) == hash(p)
    # Beyond the structural key: the inputs keep their symbols and docs, and the
    # nodes are the very same op objects.
    assert q.inputs == p.inputs
    assert q.nodes == p.nodes
    assert q.ids == p.ids and q.output == p.output and q.types == p.types
    assert s.to_program() == p


@pytest.mark.parametrize("name", NAMES)
def test_json_round_trip(name):
    p = builtin(name)
    s = to_symbolic(p)
    text = pg.to_json_str(s)
    back = pg.from_json_str(text)
    assert isinstance(back, SymbolicProgram)
    assert pg.eq(back, s)
    assert from_symbolic(back) == p
    assert from_symbolic(pg.from_json(pg.to_json(s))) == p


def test_two_conversions_are_symbolically_equal():
    a, b = to_symbolic(builtin("dqn")), to_symbolic(builtin("dqn"))
    assert a is not b
    assert pg.eq(a, b) and a.sym_hash() == b.sym_hash() == pg.hash(a)
    c = to_symbolic(builtin("ddqn"))
    assert not pg.eq(a, c) and a.sym_hash() != c.sym_hash()


def test_symbolic_value_is_readable():
    s = to_symbolic(builtin("dqn"))
    assert s.opset == RL_LOSS.name
    assert [i.name for i in s.inputs] == [i.name for i in RL_LOSS.inputs]
    assert s.inputs[0] == SymbolicInput("Q", "PARAM", True)
    assert s.nodes[0] == SymbolicNode("n0", "QValues", ["Q", "s_t"])
    assert s.nodes[-1].op == "SqDist" and list(s.nodes[-1].args) == ["n1", "n5"]
    assert s.output == "n6"
    text = pg.format(s, compact=True, hide_default_values=True)
    assert "SymbolicNode(id='n6', op='SqDist', args=[0: 'n1', 1: 'n5'])" in text
    assert "symbol" not in text  # standard inputs stay terse


def test_frozen_nodes_and_non_default_output_round_trip():
    p = builtin("skeleton")
    s = to_symbolic(p)
    assert all(n.frozen for n in s.nodes)
    assert s.output == p.ids[p.output] != s.nodes[-1].id
    assert from_symbolic(s) == p


def test_custom_inputs_and_ids_round_trip():
    inputs = (
        Input("x", FLOAT, symbol="ξ", doc="a custom input"),
        Input("Q", RL_LOSS.inputs[0].type, trainable=False),  # non-standard variant
        Input("y", FLOAT),
    )
    nodes = [Node(RL_LOSS.op("Add"), (0, 2)), Node(RL_LOSS.op("Square"), (3,))]
    p = Program(RL_LOSS, nodes, inputs, ids=["sum", "out"])
    s = to_symbolic(p)
    assert s.inputs[0].symbol == "ξ" and s.inputs[1].symbol == ""
    assert list(s.nodes[1].args) == ["sum"] and s.output == "out"
    q = from_symbolic(pg.from_json_str(pg.to_json_str(s)))
    assert q == p and q.inputs == p.inputs


def test_hand_written_value_takes_standard_input_labels():
    s = SymbolicProgram(
        opset="rl_loss",
        inputs=[SymbolicInput("r_t", "FLOAT"), SymbolicInput("gamma", "FLOAT")],
        nodes=[SymbolicNode("y", "Mul", ["gamma", "r_t"])],
        output="y",
    )
    p = s.to_program()
    assert p.inputs == (RL_LOSS.inputs[5], RL_LOSS.inputs[6])
    assert p.inputs[1].label == "γ"
    assert to_symbolic(p) == s


# -- errors ----------------------------------------------------------------------------------
def _dqn(**changes) -> SymbolicProgram:
    s = to_symbolic(builtin("dqn"))
    if changes:
        s.rebind(changes)
    return s


@pytest.mark.parametrize(
    "changes, where, words",
    [
        ({"nodes[6].op": "SqDistt"}, "nodes[6].op", ["unknown op 'SqDistt'", "SqDist"]),
        ({"inputs[5].type": "FLOT"}, "inputs[5].type", ["unknown type 'FLOT'", "FLOAT"]),
        ({"opset": "nope"}, "opset", ["unknown op set 'nope'", "rl_loss"]),
        ({"nodes[6].args[1]": "n9"}, "nodes[6].args[1]", ["unknown reference 'n9'", "n5"]),
        ({"nodes[1].args[0]": "n4"}, "nodes[1].args[0]", ["later node 'n4'"]),
        ({"nodes[1].args[0]": "n1"}, "nodes[1].args[0]", ["node itself"]),
        ({"nodes[3].id": "n0"}, "nodes[3].id", ["'n0' is used twice"]),
        ({"nodes[0].id": "r_t"}, "nodes[0].id", ["'r_t' is used twice"]),
        ({"output": "loss"}, "output", ["unknown output 'loss'"]),
        # Program's own validation: arity, argument types, output index.
        ({"nodes[6].args": ["n1"]}, "node 'n6'", ["SqDist takes 2 argument(s), got 1"]),
        ({"nodes[6].op": "Select"}, "node 'n6'", ["Select does not accept (FLOAT, FLOAT)"]),
        ({"output": "r_t"}, "output", ["not an operator node"]),
    ],
)
def test_bad_values_raise_program_error(changes, where, words):
    with pytest.raises(ProgramError) as info:
        from_symbolic(_dqn(**changes))
    assert info.value.where == where
    for w in words:
        assert w in str(info.value)


def test_unmaterialized_space_is_rejected():
    s = _dqn(**{"nodes[6].op": pg.oneof(["SqDist", "Sub"])})
    with pytest.raises(ProgramError, match="not concrete.*pg.random_sample"):
        from_symbolic(s)
    with pytest.raises(ProgramError, match="not concrete"):
        from_symbolic(SymbolicProgram.partial(opset="rl_loss"))


def test_non_symbolic_value_is_rejected():
    with pytest.raises(ProgramError, match="expected a SymbolicProgram, got Program"):
        from_symbolic(builtin("dqn"))


def test_schema_rejects_wrongly_typed_fields():
    with pytest.raises(TypeError):
        SymbolicNode("n0", 3, [])
    with pytest.raises(TypeError):
        SymbolicNode("n0", "Add", [0, 1])


def test_module_docstring_example_runs():
    doc = graphs.core.symbolic.__doc__
    assert "20k" in doc and "microseconds" in doc
    code = re.search(r"Usage::\n\n((?:    .*\n|\n)+)", doc).group(1)
    namespace: dict = {}
    exec(compile("\n".join(line[4:] for line in code.splitlines()), "doc", "exec"), namespace)
    assert namespace["program"] in (builtin("dqn"), builtin("ddqn"))


# -- search spaces ---------------------------------------------------------------------------
def test_oneof_over_builtins():
    space = pg.oneof([to_symbolic(builtin(n)) for n in NAMES])
    programs = [from_symbolic(s) for s in pg.iter(space)]
    assert programs == [builtin(n) for n in NAMES]
    samples = [from_symbolic(s) for s in pg.random_sample(space, 8, seed=3)]
    again = [from_symbolic(s) for s in pg.random_sample(space, 8, seed=3)]
    assert samples == again
    assert all(s in programs for s in samples)
    assert len(set(samples)) > 1


def _last_node_space() -> tuple[SymbolicProgram, list[str], list[str]]:
    """dqn with the loss node's op and both arguments as independent choices."""
    p = builtin("dqn")
    idx = len(p) - 1
    binary = [
        op.name for op in RL_LOSS.ops
        if RL_LOSS.signature_table.get((op.name, (FLOAT, FLOAT))) == FLOAT
    ]
    refs = [p.ids[i] for i in range(idx) if p.types[i] == FLOAT]
    space = to_symbolic(p)
    space.rebind({
        "nodes[6].op": pg.oneof(binary),
        "nodes[6].args": [pg.oneof(refs), pg.oneof(refs)],
    })
    return space, binary, refs


def test_op_and_argument_choices():
    space, binary, refs = _last_node_space()
    assert {"Add", "Sub", "SqDist", "Max2"} <= set(binary)
    assert refs == ["r_t", "gamma", "n1", "n3", "n4", "n5"]
    assert pg.dna_spec(space).space_size == len(binary) * len(refs) ** 2
    p = builtin("dqn")
    for s in pg.random_sample(space, 25, seed=0):
        q = from_symbolic(s)
        assert q.types[q.output] == FLOAT and q.nodes[:-1] == p.nodes[:-1]
        assert q.node(q.output).op.name in binary
    first = [from_symbolic(s) for s in pg.iter(space, 12)]
    assert len(set(first)) == 12
    assert all(q.node(q.output).op.name == binary[0] for q in first)


def test_clone_rebind_and_patch():
    p = builtin("dqn")
    s = to_symbolic(p)
    c = pg.clone(s, deep=True)
    c.rebind({"nodes[6].op": "Sub"})
    assert s.nodes[6].op == "SqDist"  # the original is untouched
    assert from_symbolic(c) == p.replace_node(13, Node(RL_LOSS.op("Sub"), (8, 12)))

    patched = pg.patch(s.clone(deep=True), {"nodes[4].args[0]": "r_t", "output": "n5"})
    q = from_symbolic(patched)
    assert q.node(11).args == (5, 10) and q.output == 12

    def max_to_mean(k, v, parent):
        # A rule-based rebind: every 'Max' reduction becomes 'Mean'.
        return "Mean" if v == "Max" and k.key == "op" else v

    r = from_symbolic(pg.patch(s.clone(deep=True), max_to_mean))
    assert [n.op.name for n in r.nodes] == ["Mean" if n.op.name == "Max" else n.op.name
                                             for n in p.nodes]

    bad = s.clone(deep=True).rebind({"nodes[6].op": "ArgMax"})
    with pytest.raises(ProgramError, match="ArgMax takes 1 argument"):
        from_symbolic(bad)


def _brute_force_choices(p: Program, index: int) -> set[tuple[str, tuple[int, ...]]]:
    """Every (op, args) that Program accepts at ``index`` with the same output type."""
    found = set()
    for op in RL_LOSS.ops:
        for args in itertools.product(range(index), repeat=op.arity):
            try:
                q = p.replace_node(index, Node(op, args))
            except ProgramError:
                continue
            if q.types[index] == p.types[index]:
                found.add((op.name, args))
    return found


@pytest.mark.parametrize("name, index", [("dqn", 7), ("dqn", 8), ("dqn", 9), ("ddqn", 9)])
def test_node_choices_space_enumerates_the_neighbourhood(name, index):
    p = builtin(name)
    expected = _brute_force_choices(p, index)
    assert (p.node(index).op.name, p.node(index).args) in expected
    space = node_choices_space(p, index)
    assert pg.dna_spec(space).space_size == len(expected)
    seen = []
    for s in pg.iter(space):
        q = from_symbolic(s)
        assert q.types[index] == p.types[index]
        assert q.ids == p.ids and q.output == p.output
        assert all(q.node(i) == p.node(i) for i in range(p.n_inputs, len(p)) if i != index)
        seen.append((q.node(index).op.name, q.node(index).args))
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected
    assert seen == node_choices(p, index)


@pytest.mark.parametrize("name", ["dqn", "dqnclipped"])
def test_node_choices_counts_match_brute_force_on_every_node(name):
    p = builtin(name)
    for index in range(p.n_inputs, len(p)):
        choices = node_choices(p, index)
        assert len(choices) == len(set(choices))
        assert set(choices) == _brute_force_choices(p, index)


def test_node_choices_space_random_samples_on_a_late_node():
    p = builtin("dqnclipped")
    index = len(p) - 1
    space = node_choices_space(p, index)
    assert pg.dna_spec(space).space_size == len(node_choices(p, index))
    for s in pg.random_sample(space, 10, seed=1):
        assert from_symbolic(s).types[index] == FLOAT
    assert "oneof" in pg.format(space).lower()


def test_node_choices_space_rejects_inputs_and_frozen_nodes():
    with pytest.raises(ProgramError, match="not an operator node"):
        node_choices_space(builtin("dqn"), 3)
    with pytest.raises(ProgramError, match="not an operator node"):
        node_choices_space(builtin("dqn"), 14)
    with pytest.raises(ProgramError, match="frozen") as info:
        node_choices_space(builtin("skeleton"), 8)
    assert info.value.where == "node 'n1'"
