"""The NAS-Bench-201 (NATS-Bench topology) cell space.

A cell is a DAG on 4 nodes with the 6 edges ``j -> i`` (``j < i``); each edge
carries one of :data:`OPS`. Node ``i`` is the sum of its incoming edges and the
cell output is node 3. The arch string lists the edges into nodes 1, 2 and 3::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

Here an architecture is also a tuple of 6 op indices in arch-string order (edges
1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), the *code*, which this module converts to and
from the string, to and from the benchmark's own index (:func:`to_index`), to a
canonical form that identifies cells computing the same function (:func:`canonical`),
and lowers to the layers of the full macro network.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from graphs.arch.layers import Layer
from graphs.arch.ops import ARCH, layer_op, op_spec
from graphs.core.errors import ProgramError, did_you_mean
from graphs.core.op import Op
from graphs.core.program import Node, Program

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) of each code position, in arch-string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
N_ARCHS = len(OPS) ** len(EDGES)  # 15,625

# The benchmark's ordering: the code number (see code_number) of every NB201 index,
# int16; regenerate with bench/make_nb201_data.py.
ORDER_PATH = Path(__file__).resolve().parent / "data" / "nb201_order.npy"

# Input resolution and classes of each NATS-Bench dataset.
DATASETS = {"cifar10": (32, 10), "cifar100": (32, 100), "imagenet16-120": (16, 120)}


def parse(arch: str) -> tuple[int, ...]:
    """The code of an arch string.

    Raises:
        ProgramError: naming the malformed part and showing the expected form.
    """
    if not isinstance(arch, str):
        raise ProgramError(f"an NB201 arch string must be a string, got {type(arch).__name__}")
    text = arch.strip()
    groups = text.split("+")
    form = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2| with op one of " + ", ".join(OPS)
    if len(groups) != 3:
        raise ProgramError(f"{arch!r} has {len(groups)} '+'-separated group(s); an NB201 "
                           f"arch string has 3: {form}")
    code: list[int] = []
    for node, group in enumerate(groups, start=1):
        if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
            raise ProgramError(f"group {node} ({group!r}) must start and end with '|': {form}")
        edges = group[1:-1].split("|")
        if len(edges) != node:
            raise ProgramError(f"group {node} ({group!r}) lists {len(edges)} edge(s); node "
                               f"{node} has {node} incoming edges: {form}")
        for source, edge in enumerate(edges):
            op, sep, src = edge.partition("~")
            if not sep or src != str(source):
                raise ProgramError(f"edge {edge!r} in group {node} must be '<op>~{source}'")
            if op not in OPS:
                hint = did_you_mean(op, OPS, n=1)
                raise ProgramError(f"unknown NB201 op {op!r} in group {node}{hint} "
                                   f"(ops: {', '.join(OPS)})")
            code.append(OPS.index(op))
    return tuple(code)


def arch_string(code: tuple[int, ...] | list[int]) -> str:
    """The arch string of a code (the inverse of :func:`parse`)."""
    code = _check_code(code)
    groups, pos = [], 0
    for node in (1, 2, 3):
        groups.append("|" + "|".join(f"{OPS[code[pos + j]]}~{j}" for j in range(node)) + "|")
        pos += node
    return "+".join(groups)


def _check_code(code: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    if not isinstance(code, tuple | list):
        raise ProgramError(f"an NB201 architecture is an arch string or a code of "
                           f"{len(EDGES)} op indices, got {code!r}")
    code = tuple(code)
    if len(code) != len(EDGES) or not all(isinstance(c, int) and 0 <= c < len(OPS)
                                          for c in code):
        raise ProgramError(f"an NB201 code is {len(EDGES)} op indices in [0, {len(OPS)}), "
                           f"got {code!r}")
    return code


def cell_layers(code: tuple[int, ...], c: int, hw: int, prefix: str = "") -> list[Layer]:
    """The layers of one cell with ``c`` channels at ``hw x hw``.

    Every edge other than ``none`` is computed, as the reference implementation
    does (its ``none`` multiplies by zero, which keeps the source alive); node sums
    of two or more tensors are ``add`` layers.
    """
    return list(_cell_layers(_check_code(code), c, hw, prefix))


@lru_cache(maxsize=8192)
def _cell_layers(code: tuple[int, ...], c: int, hw: int, prefix: str) -> tuple[Layer, ...]:
    out: list[Layer] = []
    incoming = {1: 0, 2: 0, 3: 0}
    for (dst, src), op in zip(EDGES, code):
        name = f"{prefix}edge{dst}<-{src}.{OPS[op]}"
        if OPS[op] == "none":
            continue
        incoming[dst] += 1
        if OPS[op] == "skip_connect":
            continue
        if OPS[op] == "avg_pool_3x3":
            out.append(Layer("avgpool", hw, hw, c, c, k=3, name=name))
        else:
            k = 1 if OPS[op] == "nor_conv_1x1" else 3
            # ReLU-Conv-BN; the leading ReLU is counted as the conv's activation.
            out.append(Layer("conv", hw, hw, c, c, k=k, act="relu", bn=True, name=name))
    for node in (1, 2, 3):
        if incoming[node] >= 2:
            out.append(Layer("add", hw, hw, c, c, inputs=incoming[node],
                             name=f"{prefix}node{node}.sum"))
    return tuple(out)


def network_layers(code: tuple[int, ...] | str, dataset: str = "cifar10", c: int = 16,
                   cells_per_stage: int = 5) -> list[Layer]:
    """The layers of the full NB201 macro network around ``code``.

    Stem conv 3x3 (3 -> C) + BN; three stages of ``cells_per_stage`` cells at C, 2C
    and 4C channels separated by residual reduction blocks (ReLU-Conv-BN 3x3 stride
    2, ReLU-Conv-BN 3x3, and a 2x2 average pool + 1x1 conv shortcut); then BN-ReLU,
    global average pooling and a linear classifier.
    """
    if isinstance(code, str):
        code = parse(code)
    code = _check_code(code)
    hw, classes = DATASETS[_check_dataset(dataset)]
    return list(_network_layers(code, hw, classes, c, cells_per_stage))


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        hint = did_you_mean(dataset, DATASETS, n=1)
        raise ProgramError(f"unknown NB201 dataset {dataset!r}{hint} "
                           f"(datasets: {', '.join(DATASETS)})")
    return dataset


@lru_cache(maxsize=4096)
def _network_layers(code: tuple[int, ...], hw: int, classes: int, c: int,
                    cells: int) -> tuple[Layer, ...]:
    layers = [Layer("conv", hw, hw, 3, c, k=3, bn=True, name="stem")]
    for stage in range(3):
        width = c * 2**stage
        if stage:
            prev = width // 2
            pre = f"reduce{stage}."
            layers += [
                Layer("conv", hw, hw, prev, width, k=3, stride=2, act="relu", bn=True,
                      name=pre + "conv_a"),
                Layer("conv", hw // 2, hw // 2, width, width, k=3, act="relu", bn=True,
                      name=pre + "conv_b"),
                Layer("avgpool", hw, hw, prev, prev, k=2, stride=2, name=pre + "shortcut.pool"),
                Layer("conv", hw // 2, hw // 2, prev, width, k=1, name=pre + "shortcut.conv"),
                Layer("add", hw // 2, hw // 2, width, width, name=pre + "sum"),
            ]
            hw //= 2
        for i in range(cells):
            layers += _cell_layers(code, width, hw, f"stage{stage}.cell{i}.")
    width = c * 4
    layers += [
        Layer("bn", hw, hw, width, width, act="relu", name="head.bn_relu"),
        Layer("gap", hw, hw, width, width, name="head.pool"),
        Layer("fc", 1, 1, width, classes, bias=True, name="head.classifier"),
    ]
    return tuple(layers)


# -- the benchmark's index ---------------------------------------------------------------
def code_number(code: tuple[int, ...] | list[int] | str) -> int:
    """The code read as a base-5 number, edge 1<-0 the most significant digit (0..15,624).

    This is not the NB201 index (see :func:`to_index`), only a compact key.
    """
    number = 0
    for op in _as_code(code):
        number = number * len(OPS) + op
    return number


def code_from_number(number: int) -> tuple[int, ...]:
    """The inverse of :func:`code_number`."""
    if isinstance(number, bool) or not isinstance(number, int | np.integer) \
            or not 0 <= number < N_ARCHS:
        raise ProgramError(f"an NB201 code number is an integer in [0, {N_ARCHS}), "
                           f"got {number!r}")
    digits = []
    number = int(number)
    for _ in EDGES:
        number, op = divmod(number, len(OPS))
        digits.append(op)
    return tuple(reversed(digits))


@lru_cache(maxsize=1)
def _order() -> tuple[np.ndarray, np.ndarray]:
    """(code number by index, index by code number), from the shipped file."""
    try:
        order = np.load(ORDER_PATH, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ProgramError(f"cannot read the NB201 ordering {ORDER_PATH}: {err} "
                           "(regenerate it with bench/make_nb201_data.py)") from None
    if order.shape != (N_ARCHS,) or len(np.unique(order)) != N_ARCHS \
            or order.min() < 0 or order.max() >= N_ARCHS:
        raise ProgramError(f"{ORDER_PATH} is not a permutation of the {N_ARCHS} NB201 codes "
                           "(regenerate it with bench/make_nb201_data.py)")
    inverse = np.empty(N_ARCHS, dtype=np.int64)
    inverse[order] = np.arange(N_ARCHS)
    return order.astype(np.int64), inverse


def to_index(code: tuple[int, ...] | list[int] | str) -> int:
    """The NB201 benchmark index of an architecture (a code or an arch string)."""
    return int(_order()[1][code_number(code)])


def from_index(index: int) -> tuple[int, ...]:
    """The code of the architecture at NB201 benchmark index ``index``."""
    if isinstance(index, bool) or not isinstance(index, int | np.integer) \
            or not 0 <= index < N_ARCHS:
        raise ProgramError(f"an NB201 index is an integer in [0, {N_ARCHS}), got {index!r}")
    return code_from_number(int(_order()[0][index]))


def _as_code(code: tuple[int, ...] | list[int] | str) -> tuple[int, ...]:
    return parse(code) if isinstance(code, str) else _check_code(code)


# -- equivalence -------------------------------------------------------------------------
NONE, SKIP = OPS.index("none"), OPS.index("skip_connect")


def live_edges(code: tuple[int, ...] | list[int] | str) -> tuple[bool, ...]:
    """For each edge, whether it affects the cell output.

    An edge is live when its op is not ``none``, its source node carries a value (node
    0 does; another node does when one of its incoming edges is live-fed) and its
    target reaches node 3 through live edges.
    """
    code = _as_code(code)
    fed = {0: True, 1: False, 2: False, 3: False}
    for (dst, src), op in zip(EDGES, code):
        if op != NONE and fed[src]:
            fed[dst] = True
    reaches = {3: True, 2: False, 1: False, 0: False}
    live = [False] * len(EDGES)
    for pos in range(len(EDGES) - 1, -1, -1):  # targets in decreasing order
        dst, src = EDGES[pos]
        if code[pos] != NONE and fed[src] and reaches[dst]:
            live[pos] = True
            reaches[src] = True
    return tuple(live)


def live_code(code: Sequence[int] | str) -> tuple[int, ...]:
    """An NB201 code with the edges whose result cannot reach the cell output set to
    ``none``: a graph compiler removes those ops, so they cost nothing on hardware.

    (Edges fed only by zeros are kept: the reference ``none`` multiplies by zero, which
    the device still computes.)
    """
    code = parse(code) if isinstance(code, str) else tuple(code)
    reaches = {3}
    keep = [False] * len(code)
    for i in range(len(code) - 1, -1, -1):
        dst, src = EDGES[i]
        if code[i] != 0 and dst in reaches:
            keep[i] = True
            reaches.add(src)
    return tuple(op if k else 0 for op, k in zip(code, keep))


def canonical(code: tuple[int, ...] | list[int] | str) -> tuple[int, ...]:
    """The canonical code of the cells isomorphic to ``code`` once dead edges are removed.

    Dead edges (:func:`live_edges`) become ``none``; then, when no edge 2<-1 remains,
    nodes 1 and 2 are interchangeable and the smaller of the two labellings is kept.
    Codes with equal canonical forms compute the same function (a cell whose output
    is cut off from its input, e.g. through ``none`` edges, is the all-``none`` cell).
    One approximation, shared with NB201's own ``to_unique_str``: a conv edge out of a
    node that is identically zero counts as dead, though its batch norm adds a learned
    per-channel constant.
    """
    code = _as_code(code)
    live = live_edges(code)
    pruned = tuple(op if alive else NONE for op, alive in zip(code, live))
    if pruned[2] != NONE:
        return pruned
    swapped = (pruned[1], pruned[0], NONE, pruned[3], pruned[5], pruned[4])
    return min(pruned, swapped)


def function_key(code: tuple[int, ...] | list[int] | str) -> str:
    """A coarser key than :func:`canonical`: ``skip_connect`` is also the identity.

    Each node is the multiset of the terms it sums (a skip edge passes its source's
    terms through, a conv or pool edge adds ``op(source)``, dead terms vanish), so
    e.g. a conv reached through a skip edge equals the same conv straight from node 0.
    The key is the output node's expression; ``"0"`` is the zero (all-``none``) cell.
    """
    code = _as_code(code)
    terms: dict[int, tuple[str, ...]] = {0: ("x",), 1: (), 2: (), 3: ()}
    for (dst, src), op in zip(EDGES, code):
        inner = tuple(sorted(terms[src]))  # the source node is complete by now
        if op == NONE or not inner:
            continue
        if op == SKIP:
            terms[dst] += inner
        else:
            arg = inner[0] if len(inner) == 1 else "(" + " + ".join(inner) + ")"
            terms[dst] += (f"{OPS[op]}({arg})",)
    return " + ".join(sorted(terms[3])) or "0"


# -- programs ------------------------------------------------------------------------------
# A cell program: edge 1<-0 is node 1 itself; nodes 2 and 3 are sums of their edges.
# Node layout of one cell (after its input): the slot of each edge and sum.
_CELL_SLOTS = ("edge1_0", "edge2_0", "edge2_1", "node2", "edge3_0", "edge3_1", "edge3_2", "node3")
_EDGE_SLOT = (0, 1, 2, 4, 5, 6)  # slot of each code position


@lru_cache(maxsize=64)
def _edge_ops(c: int) -> tuple[Op, ...]:
    """The arch op of each NB201 op at ``c`` channels (``none`` is ``zero``)."""
    return (layer_op("zero"), layer_op("identity"),
            layer_op("conv", k=1, c=c, act="relu", bn=True),
            layer_op("conv", k=3, c=c, act="relu", bn=True),
            layer_op("avgpool", k=3))


def _cell_template() -> tuple[tuple[int, tuple[int, ...]], ...]:
    """Per slot: the code position of an edge (-1 for a sum) and its arguments as slots
    (-1: the cell input)."""
    slot_of_node = {0: -1, 1: 0, 2: 3, 3: 7}
    template = []
    for name in _CELL_SLOTS:
        if name.startswith("node"):
            dst = int(name[-1])
            template.append((-1, tuple(s for s, (d, _) in zip(_EDGE_SLOT, EDGES) if d == dst)))
        else:
            pos = EDGES.index((int(name[4]), int(name[6])))
            template.append((pos, (slot_of_node[EDGES[pos][1]],)))
    return tuple(template)


_CELL_TEMPLATE = _cell_template()


def _cell_nodes(code: tuple[int, ...], c: int, x: int, prefix: str,
                nodes: list[Node], ids: list[str]) -> int:
    """Append one cell on node ``x`` to ``nodes``/``ids``; return its output index."""
    ops = _edge_ops(c)
    base = len(nodes)
    for (pos, refs), name in zip(_CELL_TEMPLATE, _CELL_SLOTS):
        op = ops[code[pos]] if pos >= 0 else _add_op(len(refs))
        nodes.append(Node(op, tuple(x if r < 0 else base + r for r in refs)))
        ids.append(prefix + name)
    return len(nodes) - 1


@lru_cache(maxsize=8)
def _add_op(n: int) -> Op:
    return layer_op("add", n=n)


def to_program(code: tuple[int, ...] | list[int] | str, dataset: str = "cifar10",
               level: str = "network") -> Program:
    """The architecture as a program of the ``arch`` op set (:mod:`graphs.arch.ops`).

    Every edge is a node (``none`` -> ``zero``, ``skip_connect`` -> ``identity``,
    ``nor_conv_KxK`` -> ``conv(k=K,...,act=relu,bn=1)``, ``avg_pool_3x3`` ->
    ``avgpool(k=3)``), node 1 is its one edge, nodes 2 and 3 are ``add`` nodes of
    their edges. ``level="network"`` gives the whole macro network of
    :func:`network_layers` (stem, 3 x 5 cells, reduction blocks, head; node ids
    such as ``stage1.cell4.edge3_1``); ``level="cell"`` one cell on an
    ``image(r=<dataset resolution>,c=16)`` input. :func:`from_program` inverts both.

    ``graphs.arch.ops.to_layers`` of the network has the MACs and parameters of
    :func:`network_layers` for every code and the same layers except sums: it leaves
    out a ``skip_connect`` from a node that is identically zero (it adds zeros),
    which :func:`network_layers` counts as the reference implementation computes it.
    """
    code = _as_code(code)
    hw, classes = DATASETS[_check_dataset(dataset)]
    if level == "cell":
        return _cell_program(code, hw, 16)
    if level != "network":
        raise ProgramError(f"level must be 'network' or 'cell', got {level!r}")
    return _network_program(code, hw, classes, 16, 5)


@lru_cache(maxsize=2048)
def _cell_program(code: tuple[int, ...], hw: int, c: int = 16) -> Program:
    nodes, ids = [Node(layer_op("image", r=hw, c=c), ())], ["node0"]
    _cell_nodes(code, c, 0, "", nodes, ids)
    ids[2] = "node1"  # edge 1<-0 is node 1
    program = Program(ARCH, nodes, (), len(nodes) - 1, ids)
    program.remember("nb201", (code, None, "cell"))
    return program


@lru_cache(maxsize=2048)
def _network_program(code: tuple[int, ...], hw: int, classes: int, c: int = 16,
                     cells: int = 5) -> Program:
    nodes = [Node(layer_op("image", r=hw, c=3), ()),
             Node(layer_op("conv", k=3, c=c, bn=True), (0,))]
    ids = ["image", "stem"]
    x = 1
    for stage in range(3):
        width = c * 2**stage
        if stage:
            pre = f"reduce{stage}."
            conv_a = layer_op("conv", k=3, c=width, s=2, act="relu", bn=True)
            conv_b = layer_op("conv", k=3, c=width, act="relu", bn=True)
            n = len(nodes)
            nodes += [Node(conv_a, (x,)), Node(conv_b, (n,)),
                      Node(layer_op("avgpool", k=2, s=2), (x,)),
                      Node(layer_op("conv", k=1, c=width), (n + 2,)),
                      Node(layer_op("add", n=2), (n + 1, n + 3))]
            ids += [pre + s for s in ("conv_a", "conv_b", "shortcut.pool", "shortcut.conv",
                                      "sum")]
            x = len(nodes) - 1
        for i in range(cells):
            x = _cell_nodes(code, width, x, f"stage{stage}.cell{i}.", nodes, ids)
    n = len(nodes)
    nodes += [Node(layer_op("bn", act="relu"), (x,)), Node(layer_op("gap"), (n,)),
              Node(layer_op("fc", c=classes), (n + 1,))]
    ids += ["head.bn_relu", "head.pool", "head.classifier"]
    program = Program(ARCH, nodes, (), len(nodes) - 1, ids)
    dataset = next((d for d, shape in DATASETS.items() if shape == (hw, classes)), None)
    if c == 16 and cells == 5:
        program.remember("nb201", (code, dataset, "network"))
    return program


def from_program(program: Program) -> tuple[int, ...]:
    """The code of a program made by :func:`to_program` (either level, any dataset).

    The program must have exactly that structure (node ids may differ).

    Raises:
        ProgramError: naming the first node that does not fit.
    """
    return _decode_program(program)[0]


def program_dataset(program: Program) -> tuple[str | None, str]:
    """The dataset (None for a cell program, whose input fits several) and level of an
    NB201 program."""
    return _decode_program(program)[1:]


def _decode_program(program: Program) -> tuple[tuple[int, ...], str | None, str]:
    if not isinstance(program, Program) or program.opset is not ARCH:
        what = program.opset.name if isinstance(program, Program) else type(program).__name__
        raise ProgramError(f"an NB201 program is an arch-op-set program, got {what}")
    cached = program.recall("nb201")
    if cached is not None:
        return cached
    nodes = program.nodes
    first = op_spec(nodes[0].op)
    if first.kind != "image" or program.n_inputs:
        raise ProgramError("an NB201 program starts with an image(r=...,c=...) node",
                           program.describe(program.n_inputs))
    r, c = first.attrs["r"], first.attrs["c"]
    level = "cell" if len(nodes) == 1 + len(_CELL_SLOTS) else "network"
    start = 1 if level == "cell" else 2  # the first cell's slots
    if len(nodes) < start + len(_CELL_SLOTS):
        raise ProgramError(f"{len(nodes)} nodes are too few for an NB201 cell or network")
    width = c if level == "cell" else 16
    ops = {op.name: i for i, op in enumerate(_edge_ops(width))}
    code = []
    for slot in _EDGE_SLOT:
        op = nodes[start + slot].op
        if op.name not in ops:
            raise ProgramError(f"{op.name} is not an NB201 edge op at {width} channels "
                               f"(expected one of {', '.join(ops)})",
                               program.describe(program.n_inputs + start + slot))
        code.append(ops[op.name])
    code = tuple(code)
    if level == "cell":
        dataset, expected = None, _cell_program(code, r, c)
    else:
        last = op_spec(nodes[-1].op)
        if last.kind != "fc":
            raise ProgramError(f"an NB201 network ends with its fc classifier, not {last.kind}",
                               program.describe(len(program) - 1))
        classes = last.attrs["c"]
        dataset = next((d for d, shape in DATASETS.items() if shape == (r, classes)), None)
        if dataset is None:
            known = ", ".join(f"{d} (r={s[0]}, {s[1]} classes)" for d, s in DATASETS.items())
            raise ProgramError(f"an input of r={r} with {classes} classes is no NB201 dataset "
                               f"({known})")
        expected = _network_program(code, r, classes, 16, 5)
    _same_structure(program, expected)
    result = (code, dataset, level)
    program.remember("nb201", result)
    return result


def _same_structure(program: Program, expected: Program) -> None:
    if program is expected:
        return
    if len(program.nodes) != len(expected.nodes):
        raise ProgramError(f"the program has {len(program.nodes)} nodes; an NB201 program "
                           f"of its kind has {len(expected.nodes)}")
    n_in = program.n_inputs
    for i, (got, want) in enumerate(zip(program.nodes, expected.nodes)):
        if got.op is not want.op or tuple(a - n_in for a in got.args) != want.args:
            args = ", ".join(expected.ids[a] for a in want.args)
            raise ProgramError(f"expected {want.op.name}({args}) as in the NB201 network "
                               f"(node {expected.ids[i]!r})", program.describe(n_in + i))
    if program.output - n_in != expected.output:
        raise ProgramError("the output must be the last node, as in the NB201 network")


# -- the search space ---------------------------------------------------------------------
EQUIVALENCES = ("graph", "function")


class NB201Space:
    """The NB201 cell space as an :class:`~graphs.arch.ops.ArchSpace`.

    Programs are whole networks (:func:`to_program`) for ``dataset``; a code is the
    6 op indices in arch-string order. Mutation follows NATS-Bench's regularized
    evolution: pick one of the three cell nodes, one of its incoming edges, and a
    different op, all uniformly (so edge 1<-0 changes in a third of mutations);
    ``uniform_edges=True`` picks the edge uniformly instead. Fingerprints come from
    :func:`canonical` (``equivalence="graph"``) or :func:`function_key`
    (``"function"``, where ``skip_connect`` is the identity too).
    """

    decisions = tuple(f"edge {dst}<-{src}" for dst, src in EDGES)
    choices = tuple(OPS for _ in EDGES)

    def __init__(self, dataset: str = "cifar10", equivalence: str = "graph",
                 uniform_edges: bool = False) -> None:
        self.dataset = _check_dataset(dataset)
        if equivalence not in EQUIVALENCES:
            raise ProgramError(f"equivalence must be one of {', '.join(EQUIVALENCES)}, "
                               f"got {equivalence!r}")
        self.equivalence = equivalence
        self.uniform_edges = bool(uniform_edges)
        self.name = f"nb201-{dataset}"

    def __repr__(self) -> str:
        return (f"NB201Space({self.dataset!r}, equivalence={self.equivalence!r}, "
                f"uniform_edges={self.uniform_edges})")

    def encode(self, program: Program) -> tuple[int, ...]:
        """The code of a network program of this space's dataset."""
        code, dataset, level = _decode_program(program)
        if level != "network" or dataset != self.dataset:
            got = "a cell program" if level == "cell" else f"a {dataset} network"
            raise ProgramError(f"{self.name} holds {self.dataset} networks, got {got}")
        return code

    def decode(self, code: tuple[int, ...] | list[int] | str) -> Program:
        """The network program of a code (or arch string)."""
        return to_program(code, self.dataset)

    def sample(self, rng: random.Random) -> Program:
        """A uniformly random architecture."""
        return self.decode(tuple(rng.randrange(len(OPS)) for _ in EDGES))

    def mutate(self, program: Program, rng: random.Random) -> tuple[Program, str]:
        """The program with one edge changed to a different op, and a description."""
        code = list(self.encode(program))
        if self.uniform_edges:
            pos = rng.randrange(len(EDGES))
        else:
            node = rng.randrange(1, 4)
            pos = node * (node - 1) // 2 + rng.randrange(node)
        old = code[pos]
        code[pos] = rng.choice([op for op in range(len(OPS)) if op != old])
        dst, src = EDGES[pos]
        return self.decode(code), f"edge {dst}<-{src}: {OPS[old]} -> {OPS[code[pos]]}"

    def fingerprint(self, program: Program) -> str:
        """Equal for programs whose cells compute the same function."""
        code = self.encode(program)
        if self.equivalence == "function":
            return "nb201-fn:" + function_key(code)
        return "nb201:" + arch_string(canonical(code))

    def layers(self, program: Program) -> list[Layer]:
        """The layers of the network (:func:`network_layers`)."""
        return network_layers(self.encode(program), self.dataset)

    def index(self, program: Program) -> int:
        """The NB201 benchmark index of a program."""
        return to_index(self.encode(program))
