"""Formulas, node tables, networkx graphs and DOT output."""

from __future__ import annotations

import re

import networkx as nx
import pytest

from graphs.core.render import formula, node_table, to_dot, to_networkx
from graphs.rl_loss.library import BUILTINS, builtin
from graphs.rl_loss.library import from_steps as build
from graphs.rl_loss.ops import RL_LOSS

N_IN = len(RL_LOSS.inputs)
TARGET = "r + γ*max_a' Qt(s',a')"




# -- formulas ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("dqnreg", f"0.1*Q(s,a) + (Q(s,a) - ({TARGET}))^2"),
    ("dqn", f"0.5*(Q(s,a) - ({TARGET}))^2"),
    ("ddqn", "0.5*(Q(s,a) - (r + γ*Qt(s',argmax_a' Q(s',a'))))^2"),
    ("cql", f"(Q(s,a) - ({TARGET}))^2 + 0.1*(logsumexp_a' Q(s,a') - Q(s,a))"),
    ("dqnclipped", f"max(Q(s,a), (Q(s,a) - ({TARGET}))^2 + {TARGET}) + "
                   f"max(Q(s,a) - ({TARGET}), γ*(max_a' Qt(s',a'))^2)"),
    ("skeleton", "Q(s,a)"),
])
def test_builtin_formulas(name, expected):
    assert formula(builtin(name)) == expected


def test_formula_of_an_inner_node():
    p = builtin("dqn")
    assert formula(p, N_IN + 0) == "Q(s,·)"
    assert formula(p, N_IN + 3) == "max_a' Qt(s',a')"
    assert formula(p, N_IN + 5) == TARGET
    assert formula(p, 0) == "Q"
    assert repr(p) == f"Program({formula(p)})"


@pytest.mark.parametrize("steps, expected", [
    ([("Sub", "gamma", "r_t"), ("Sub", "r_t", 0)], "r - (γ - r)"),
    ([("Sub", "r_t", "gamma"), ("Sub", 0, "r_t")], "r - γ - r"),
    ([("Add", "gamma", "r_t"), ("Sub", "r_t", 0)], "r - (γ + r)"),
    ([("Sub", "gamma", "r_t"), ("Add", "r_t", 0)], "r + γ - r"),
    ([("Mul", "gamma", "r_t"), ("Div", "r_t", 0)], "r/(γ*r)"),
    ([("Div", "gamma", "r_t"), ("Div", "r_t", 0)], "r/(γ/r)"),
    ([("Div", "gamma", "r_t"), ("Div", 0, "r_t")], "γ/r/r"),
    ([("Mul", "gamma", "r_t"), ("Div", 0, "r_t")], "γ*r/r"),
    ([("Add", "gamma", "r_t"), ("Div", 0, "r_t")], "(γ + r)/r"),
    ([("Add", "gamma", "r_t"), ("Mul", 0, "r_t")], "(γ + r)*r"),
    ([("Sub", "gamma", "r_t"), ("Square", 0)], "(γ - r)^2"),
    ([("Square", "r_t"), ("Square", 0)], "(r^2)^2"),
    ([("Add", "gamma", "r_t"), ("Tenth", 0)], "0.1*(γ + r)"),
    ([("Abs", "r_t"), ("Log", 0)], "log||r||"),
    ([("Const0.5",), ("Sub", "r_t", 0)], "r - 0.5"),
    ([("QValues", "Q", "s_t"), ("ArgMax", 0), ("Select", 0, 1)], "Q(s,argmax_a' Q(s,a'))"),
    ([("QValues", "Q", "s_t"), ("Mean", 0)], "mean_a' Q(s,a')"),
    ([("QValues", "Q", "s_t"), ("MulFloat", "gamma", 0), ("Sum", 1)], "sum_a'(γ*Q(s,a'))"),
    ([("Add", "r_t", "gamma"), ("QValues", "Q", "s_t"), ("MulFloat", 0, 1)], "(r + γ)*Q(s,·)"),
    ([("QValues", "Q", "s_t"), ("MeanBatch", 0), ("Max", 1)], "max_a' mean_batch(Q(s,a'))"),
    ([("QValues", "Q", "s_t"), ("QValues", "Q_targ", "s_t"), ("SqDist", 0, 1)],
     "0.5*sum_a'(Q(s,a') - Qt(s,a'))^2"),
    ([("QValues", "Q", "s_t"), ("Softmax", 0), ("Softmax", 0), ("KL", 1, 2)],
     "KL(softmax(Q(s,·)) || softmax(Q(s,·)))"),
])
def test_parenthesization(steps, expected):
    assert formula(build(steps)) == expected


@pytest.mark.parametrize("op, sym", [("Max", " + "), ("Std", " - ")])
def test_reduction_over_a_sum_is_parenthesized(op, sym):
    combine = "Add" if sym == " + " else "Sub"
    steps = [("QValues", "Q", "s_t"), ("QValues", "Q_targ", "s_tp1"), (combine, 0, 1), (op, 2),
             ("Sub", "r_t", 3)]
    text = formula(build(steps))
    assert f"(Q(s,a'){sym}Qt(s',a'))" in text, text


# -- node table -------------------------------------------------------------------------------
def test_node_table_lists_every_node():
    p = builtin("dqn")
    lines = node_table(p).splitlines()
    assert len(lines) == len(p)
    for line, name in zip(lines, p.ids):
        assert line.split()[0] == name
    assert "input trainable" in lines[0]
    assert lines[-1].split()[1] == "FLOAT"
    assert "SqDist(n1, n5) [output]" in lines[-1]
    assert lines[-1].endswith(formula(p))
    assert "QValues(Q, s_t)" in lines[N_IN]


def test_node_table_marks_dead_frozen_and_output():
    lines = node_table(builtin("skeleton")).splitlines()[N_IN:]
    assert "[frozen]" in lines[0]
    assert "[frozen, output]" in lines[1]
    assert "[frozen, dead]" in lines[2] and "[frozen, dead]" in lines[3]
    assert lines[3].endswith("max_a' Qt(s',a')")
    plain = node_table(builtin("dqn")).splitlines()[N_IN:]
    assert not any("frozen" in line or "dead" in line for line in plain)
    assert sum("output" in line for line in plain) == 1


# -- networkx ---------------------------------------------------------------------------------
def edges_of(p):
    return {(p.ids[a], p.ids[p.n_inputs + k]) for k, n in enumerate(p.nodes) for a in n.args}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_to_networkx(name):
    p = builtin(name)
    g = to_networkx(p)
    assert nx.is_directed_acyclic_graph(g)
    assert set(g.nodes) == set(p.ids) and g.number_of_nodes() == len(p)
    assert set(g.edges) == edges_of(p)
    assert g.graph["name"] == formula(p)
    assert g.graph["opset"] == "rl_loss"
    for i, inp in enumerate(p.inputs):
        attrs = g.nodes[p.ids[i]]
        assert attrs["kind"] == "input" and attrs["type"] == inp.type.name
        assert attrs["trainable"] == (inp.name == "Q")
        assert attrs["label"] == inp.label
    for k, n in enumerate(p.nodes):
        idx = p.n_inputs + k
        attrs = g.nodes[p.ids[idx]]
        assert attrs["kind"] == "op" and attrs["op"] == n.op.name
        assert attrs["type"] == p.types[idx].name
        assert attrs["frozen"] == n.frozen
        assert attrs["live"] == p.live[idx]
        assert attrs["output"] == (idx == p.output)
        for pos, a in enumerate(n.args):
            assert g.edges[p.ids[a], p.ids[idx]]["position"] == n.args.index(a) <= pos
    outputs = [v for v, d in g.nodes(data=True) if d.get("output")]
    assert outputs == [p.ids[p.output]]


def test_to_networkx_repeated_argument():
    p = build([("QValues", "Q", "s_t"), ("Select", 0, "a_t"), ("SqDist", 1, 1)])
    g = to_networkx(p)
    assert g.number_of_edges() == 5
    assert g.edges["n1", "n2"]["position"] == 0


# -- DOT --------------------------------------------------------------------------------------
EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[label="(\d+)"\];$')
VERTEX = re.compile(r'^\s*"([^"]+)" \[(.*)\];$')


def parse_dot(text):
    vertices, edges = {}, []
    for line in text.splitlines():
        if m := EDGE.match(line):
            edges.append((m[1], m[2], int(m[3])))
        elif m := VERTEX.match(line):
            vertices[m[1]] = m[2]
    return vertices, edges


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_to_dot_looks_like_dot(name):
    p = builtin(name)
    text = to_dot(p)
    assert text.startswith("digraph")
    assert text.rstrip().endswith("}")
    assert text.count("{") == text.count("}") == 1
    assert text.count('"') % 2 == 0
    vertices, edges = parse_dot(text)
    assert text.count("->") == len(edges)
    live_edges = [(p.ids[a], p.ids[p.n_inputs + k], pos)
                  for k, n in enumerate(p.nodes) if p.live[p.n_inputs + k]
                  for pos, a in enumerate(n.args)]
    for e in live_edges:
        assert edges.count(e) == 1, e
    assert {e for e in edges if vertices.get(e[1], "").find("grey") < 0} == set(live_edges)
    for i, live in enumerate(p.live):
        if live:
            assert p.ids[i] in vertices
    assert f'label="{formula(p)}"' in text


def test_to_dot_edge_count_for_dqn():
    p = builtin("dqn")
    text = to_dot(p)
    assert text.count("->") == sum(len(n.args) for n in p.nodes) == 13
    vertices, _ = parse_dot(text)
    assert len(vertices) == len(p)
    assert "style=bold" in vertices["n6"]
    assert "peripheries=2" not in text


def test_to_dot_styles_skeleton():
    p = builtin("skeleton")
    vertices, edges = parse_dot(to_dot(p))
    assert "peripheries=2" in vertices["n0"] and "style=bold" in vertices["n1"]
    for dead in ("n2", "n3"):
        assert "peripheries=2" in vertices[dead] and "color=grey" in vertices[dead]
    assert "color=grey" not in vertices["n0"]
    assert ("Q", "n0", 0) in edges and ("a_t", "n1", 1) in edges


def test_to_dot_declares_every_edge_endpoint():
    vertices, edges = parse_dot(to_dot(builtin("skeleton")))
    for src, dst, _ in edges:
        assert src in vertices and dst in vertices


def test_to_dot_quotes_vertex_names():
    p = build([("QValues", "Q", "s_t"), ("Select", 0, "a_t")], ids=["q all", "out"])
    text = to_dot(p)
    assert '"q all" -> "out" [label="0"];' in text


def unescaped_quotes(line):
    return len(re.findall(r'(?<!\\)"', line))


def test_to_dot_escapes_quotes_in_ids():
    p = build([("QValues", "Q", "s_t"), ("Select", 0, "a_t")], ids=['q"all', "out"])
    text = to_dot(p)
    assert '"q\\"all" -> "out"' in text
    for line in text.splitlines():
        assert unescaped_quotes(line) % 2 == 0, line
