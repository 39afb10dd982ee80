"""Looking at a program: a readable formula, a node table, networkx and Graphviz DOT."""

from __future__ import annotations

import networkx as nx

from graphs.program import Program


def _render_all(program: Program) -> list[tuple[str, int]]:
    """(text, precedence) for every index, expanding shared subexpressions."""
    out: list[tuple[str, int]] = [(i.label, 100) for i in program.inputs]
    for node in program.nodes:
        op = node.op
        parts = []
        for a, need in zip(node.args, op.arg_precedence):
            text, prec = out[a]
            parts.append(f"({text})" if prec < need else text)
        types = tuple(program.types[a] for a in node.args)
        out.append((op.format(parts, types), op.precedence))
    return out


def formula(program: Program, index: int | None = None) -> str:
    """The program's output (or the node at ``index``) as a formula, e.g.
    ``0.1*Q(s,a) + (Q(s,a) - (r + γ*max_a' Qt(s',a')))^2``."""
    return _render_all(program)[program.output if index is None else index][0]


def node_table(program: Program) -> str:
    """One line per node: id, type, op and arguments, flags and its formula."""
    rendered = _render_all(program)
    rows = []
    for i, inp in enumerate(program.inputs):
        flag = " trainable" if inp.trainable else ""
        rows.append((program.ids[i], inp.type.name, f"input{flag}", inp.doc))
    live = program.live
    for k, node in enumerate(program.nodes):
        idx = program.n_inputs + k
        args = ", ".join(program.ids[a] for a in node.args)
        flags = [f for f, on in (("frozen", node.frozen), ("dead", not live[idx]),
                                  ("output", idx == program.output)) if on]
        text = f"{node.op.name}({args})" + (f" [{', '.join(flags)}]" if flags else "")
        rows.append((program.ids[idx], program.types[idx].name, text, rendered[idx][0]))
    w = [max(len(r[c]) for r in rows) for c in range(3)]
    return "\n".join(
        f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}".rstrip() for r in rows
    )


def to_networkx(program: Program) -> nx.DiGraph:
    """A DiGraph with one vertex per input and node (keyed by id) and an edge per
    argument; edges carry ``position`` (argument index)."""
    g = nx.DiGraph(name=formula(program), opset=program.opset.name)
    for i, inp in enumerate(program.inputs):
        g.add_node(program.ids[i], kind="input", type=inp.type.name,
                   trainable=inp.trainable, label=inp.label)
    for k, node in enumerate(program.nodes):
        idx = program.n_inputs + k
        g.add_node(program.ids[idx], kind="op", op=node.op.name,
                   type=program.types[idx].name, frozen=node.frozen,
                   live=program.live[idx], output=idx == program.output)
        for pos, a in enumerate(node.args):
            # A node may use the same argument twice (e.g. Sub(x, x)); keep the first.
            if not g.has_edge(program.ids[a], program.ids[idx]):
                g.add_edge(program.ids[a], program.ids[idx], position=pos)
    return g


def _dot_quote(text: str) -> str:
    # Backslashes are kept: labels use DOT's own "\n" escape for line breaks.
    return '"' + text.replace('"', '\\"') + '"'


def to_dot(program: Program) -> str:
    """Graphviz DOT source; dead nodes are grey, frozen nodes are boxed twice."""
    q = _dot_quote
    lines = ["digraph program {", "  rankdir=LR;", f"  label={q(formula(program))};"]
    used = {a for n in program.nodes for a in n.args}
    for i, inp in enumerate(program.inputs):
        if i in used or program.live[i]:
            grey = "" if program.live[i] else ", color=grey, fontcolor=grey"
            label = q(f"{inp.label}\\n{inp.type.name}")
            lines.append(f"  {q(program.ids[i])} [shape=ellipse, label={label}{grey}];")
    for k, node in enumerate(program.nodes):
        idx = program.n_inputs + k
        label = q(f"{program.ids[idx]}: {node.op.name}\\n{program.types[idx].name}")
        attrs = [f"label={label}", "shape=box"]
        if node.frozen:
            attrs.append("peripheries=2")
        if not program.live[idx]:
            attrs.append("color=grey, fontcolor=grey")
        if idx == program.output:
            attrs.append("style=bold")
        lines.append(f"  {q(program.ids[idx])} [{', '.join(attrs)}];")
        for pos, a in enumerate(node.args):
            lines.append(f"  {q(program.ids[a])} -> {q(program.ids[idx])} [label=\"{pos}\"];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def describe(program: Program) -> str:
    """A one-line description: a loss program's formula; an NB201 network's arch string;
    for other architectures, their size (the program file holds every layer)."""
    if program.opset.name != "arch":
        return formula(program)
    from graphs import nb201
    from graphs.arch import summary
    from graphs.errors import ProgramError

    try:
        return nb201.arch_string(nb201.from_program(program))
    except ProgramError:
        pass
    s = summary(program)
    n_layers = sum(1 for node in program.nodes if not node.op.name.startswith("image"))
    return (f"{n_layers}-node network: {s['macs'] / 1e6:.1f}M MACs, "
            f"{s['params'] / 1e6:.2f}M parameters")
