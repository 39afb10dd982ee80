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

import difflib
from functools import lru_cache
from pathlib import Path

import numpy as np

from graphs.errors import ProgramError
from graphs.layers import Layer

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
                close = difflib.get_close_matches(op, OPS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
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
    if dataset not in DATASETS:
        close = difflib.get_close_matches(str(dataset), DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ProgramError(f"unknown NB201 dataset {dataset!r}{hint} "
                           f"(datasets: {', '.join(DATASETS)})")
    hw, classes = DATASETS[dataset]
    return list(_network_layers(code, hw, classes, c, cells_per_stage))


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


def canonical(code: tuple[int, ...] | list[int] | str) -> tuple[int, ...]:
    """The canonical code of the cells isomorphic to ``code`` once dead edges are removed.

    Dead edges (:func:`live_edges`) become ``none``; then, when no edge 2<-1 remains,
    nodes 1 and 2 are interchangeable and the smaller of the two labellings is kept.
    Codes with equal canonical forms compute the same function (a cell whose output
    is cut off from its input, e.g. through ``none`` edges, is the all-``none`` cell).
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
