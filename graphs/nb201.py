"""The NAS-Bench-201 (NATS-Bench topology) cell space.

A cell is a DAG on 4 nodes with the 6 edges ``j -> i`` (``j < i``); each edge
carries one of :data:`OPS`. Node ``i`` is the sum of its incoming edges and the
cell output is node 3. The arch string lists the edges into nodes 1, 2 and 3::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

Here an architecture is also a tuple of 6 op indices in arch-string order (edges
1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), the *code*, which this module converts to and
from the string and lowers to the layers of the full macro network.
"""

from __future__ import annotations

import difflib
from functools import lru_cache

from graphs.errors import ProgramError
from graphs.layers import Layer

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) of each code position, in arch-string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
N_ARCHS = len(OPS) ** len(EDGES)  # 15,625

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
