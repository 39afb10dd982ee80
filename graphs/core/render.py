"""Looking at a program: a readable formula, a node table, networkx and Graphviz DOT.

Formulas expand shared subexpressions inline while that stays short. A program whose
expansion would be long (e.g. a chain of ``x + x`` doubles its text at every node)
is written with its shared subexpressions named once instead::

    {n9} + {n9}  where {n3} = Q(s,a) - ...; {n9} = {n3}*{n3} + ...

Every walk is a loop over the nodes in their stored (topological) order, so deep
programs never hit Python's recursion limit, and every text is capped in length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from graphs.core.program import Program

# A program's expansion up to this many characters (per node) is written out in full.
EXPAND_LIMIT = 600
# Otherwise, shared subexpressions longer than this are named once ({id}) ...
SHARE_MIN = 24
# ... and so is any subexpression longer than this, shared or not.
PIECE_MAX = 400
# Formulas are cut to this many characters (an ellipsis says how many more there were).
MAX_FORMULA = 4000
# The formula column of the node table is cut to this many characters.
MAX_TABLE_CELL = 160
ATOM = 100


def _reached(program: Program, root: int | None) -> list[bool]:
    """For every index, whether ``root`` depends on it (every index if root is None)."""
    if root is None:
        return [True] * len(program)
    reach = [False] * len(program)
    reach[root] = True
    n_in = program.n_inputs
    for idx in range(root, n_in - 1, -1):
        if reach[idx]:
            for a in program.nodes[idx - n_in].args:
                reach[a] = True
    return reach


def _expanded(program: Program, upto: int) -> list[tuple[str, int]] | None:
    """(text, precedence) of every index up to ``upto``, shared subexpressions written
    out in full; None as soon as one text would exceed :data:`EXPAND_LIMIT`."""
    out: list[tuple[str, int]] = [(i.label, ATOM) for i in program.inputs]
    n_in, types = program.n_inputs, program.types
    for node in program.nodes[: max(upto + 1 - n_in, 0)]:
        op = node.op
        parts = []
        size = 0
        for a, need in zip(node.args, op.arg_precedence):
            text, prec = out[a]
            size += len(text)
            parts.append(f"({text})" if prec < need else text)
        if size > EXPAND_LIMIT:
            return None
        text = op.format(parts, tuple(types[a] for a in node.args))
        if len(text) > EXPAND_LIMIT:
            return None
        out.append((text, op.precedence))
    return out


class _Named:
    """Texts of every index with long shared subexpressions named once."""

    def __init__(self, program: Program, root: int | None) -> None:
        reach = _reached(program, root)
        last = len(program) - 1 if root is None else root
        n_in, types = program.n_inputs, program.types
        uses = [0] * len(program)
        for k, node in enumerate(program.nodes[: max(last + 1 - n_in, 0)]):
            if reach[n_in + k]:
                for a in node.args:
                    uses[a] += 1
        self.ids = program.ids
        self.texts: list[tuple[str, int]] = [(i.label, ATOM) for i in program.inputs]
        self.named = [False] * len(program)
        self.refs: list[tuple[int, ...]] = [()] * len(program)  # named args used
        for k, node in enumerate(program.nodes[: max(last + 1 - n_in, 0)]):
            op = node.op
            parts, refs = [], []
            for a, need in zip(node.args, op.arg_precedence):
                text, prec = self.texts[a]
                if a >= n_in and (len(text) > PIECE_MAX
                                  or (uses[a] > 1 and len(text) > SHARE_MIN)):
                    self.named[a] = True
                    text, prec = self.ref(a), ATOM
                    refs.append(a)
                elif a >= n_in:
                    refs.extend(self.refs[a])
                parts.append(f"({text})" if prec < need else text)
            self.texts.append((op.format(parts, tuple(types[a] for a in node.args)),
                               op.precedence))
            self.refs[n_in + k] = tuple(dict.fromkeys(refs))

    def ref(self, index: int) -> str:
        return "{" + self.ids[index] + "}"

    def formula(self, index: int) -> str:
        """The text of ``index`` followed by the definitions it uses, in node order."""
        needed: set[int] = set()
        stack = list(self.refs[index])
        while stack:
            a = stack.pop()
            if a not in needed:
                needed.add(a)
                stack.extend(self.refs[a])
        text = self.texts[index][0]
        if not needed:
            return text
        defs = "; ".join(f"{self.ref(a)} = {self.texts[a][0]}" for a in sorted(needed))
        return f"{text}  where {defs}"


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def formula(program: Program, index: int | None = None,
            max_length: int | None = MAX_FORMULA) -> str:
    """The program's output (or the node at ``index``) as a formula, e.g.
    ``0.1*Q(s,a) + (Q(s,a) - (r + γ*max_a' Qt(s',a')))^2``.

    Shared subexpressions are written out in full while the formula stays short;
    otherwise each long one is named once (``{n3}``) and defined after ``where``.
    The text is cut after ``max_length`` characters (None: never).
    """
    if index is None and max_length == MAX_FORMULA:
        return program.memo("formula", lambda: _formula(program, program.output, max_length))
    return _formula(program, program.output if index is None else index, max_length)


def _formula(program: Program, root: int, max_length: int | None) -> str:
    expanded = _expanded(program, root)
    text = expanded[root][0] if expanded is not None else _Named(program, root).formula(root)
    return _cut(text, max_length)


def _node_texts(program: Program) -> list[str]:
    """Each index's formula for the node table: in full when the program is small,
    otherwise in terms of the named subexpressions (whose ids are in the table)."""
    expanded = _expanded(program, len(program) - 1)
    if expanded is not None:
        return [t for t, _ in expanded]
    named = _Named(program, None)
    return [t for t, _ in named.texts]


def node_table(program: Program) -> str:
    """One line per node: id, type, op and arguments, flags and its formula."""
    rendered = _node_texts(program)
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
        rows.append((program.ids[idx], program.types[idx].name, text,
                     _cut(rendered[idx], MAX_TABLE_CELL)))
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
    """A one-line description: what the program's op set says (its ``describe``; the
    arch language gives an NB201 network's arch string, or another network's size),
    else its formula."""
    describe_program = program.opset.describe
    return formula(program) if describe_program is None else describe_program(program)
