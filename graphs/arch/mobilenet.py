"""MobileNet-style architectures: inverted-bottleneck blocks, built-in networks,
EfficientNet compound scaling and a layerwise search space.

A :class:`Network` is a stem, a list of :class:`Block` values and a head; it lowers
to an arch :class:`~graphs.core.program.Program` with :func:`lower`. Block types
(reference.md section 5):

* ``dw``, depthwise IBN: 1x1 expand + BN + act (skipped at expansion 1), K x K
  depthwise + BN + act, optional squeeze-excite, 1x1 project + BN;
* ``fused``, fused IBN: one K x K regular conv does the expansion (no depthwise);
* ``gc``, group-conv IBN: the fused block with its K x K conv in ``groups`` groups.

A block with stride 1 and as many output as input channels gets a residual sum.
Built-ins (:data:`BUILTINS`, :func:`builtin`) follow the published tables of
MobileNetV2, MobileNetV3-Large/Small and EfficientNet-B0; :func:`scale` applies
EfficientNet compound scaling; :class:`MobileNetSpace` is a layerwise search space.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from graphs.arch.layers import Layer
from graphs.arch.ops import ArchBuilder, fingerprint, op_spec, shapes, to_layers
from graphs.core.errors import ProgramError, did_you_mean, is_int
from graphs.core.program import Program

BLOCK_TYPES = ("dw", "fused", "gc")
BLOCK_ACTS = ("relu", "relu6", "hswish", "swish")
SE_STYLES = {
    # mid channels from the expanded width rounded to 8, ReLU, hard sigmoid (MobileNetV3)
    "v3": ("relu", "hsigmoid"),
    # mid channels from the block's *input* width, swish, sigmoid (EfficientNet)
    "efficientnet": ("swish", "sigmoid"),
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to a multiple of ``divisor``, never more than 10% below it
    (the rounding of the MobileNet and EfficientNet reference code)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class Block:
    """One inverted-bottleneck block.

    Attributes:
        out: output channels.
        kind: ``dw``, ``fused`` or ``gc`` (see the module docstring).
        k: kernel size of the depthwise (or fused) conv.
        e: expansion ratio; the expanded width is ``round(cin * e)`` unless ``mid``.
        stride: stride of the block.
        se: squeeze-excite ratio (0: none).
        act: activation of the expand and depthwise (or fused) convs.
        groups: groups of the K x K conv of a ``gc`` block.
        mid: explicit expanded width (e.g. MobileNetV3's published sizes); 0: use ``e``.
    """

    out: int
    kind: str = "dw"
    k: int = 3
    e: float = 6.0
    stride: int = 1
    se: float = 0.0
    act: str = "relu"
    groups: int = 1
    mid: int = 0

    def expanded(self, cin: int) -> int:
        """The expanded width for ``cin`` input channels."""
        return self.mid or int(round(cin * self.e))


@dataclass(frozen=True)
class Network:
    """A stem conv (3x3, stride 2, BN), blocks, and a head: 1x1 conv + BN + act,
    global pooling, an optional 1x1 conv with bias and act but no BN
    (``pre_logits``, MobileNetV3), and the classifier."""

    blocks: tuple[Block, ...]
    resolution: int = 224
    stem: int = 32
    stem_act: str = "relu6"
    head: int = 1280
    head_act: str = "relu6"
    pre_logits: int = 0
    classes: int = 1000
    se_style: str = "v3"


def _check_block(block: Block, cin: int, where: str) -> None:
    if block.kind not in BLOCK_TYPES:
        hint = did_you_mean(block.kind, BLOCK_TYPES, n=1)
        raise ProgramError(f"unknown block type {block.kind!r}{hint} "
                           f"(types: {', '.join(BLOCK_TYPES)})", where)
    if block.act not in BLOCK_ACTS:
        raise ProgramError(f"activation must be one of {', '.join(BLOCK_ACTS)}, "
                           f"got {block.act!r}", where)
    for field in ("out", "k", "stride", "groups"):
        value = getattr(block, field)
        if not is_int(value) or value < 1:
            raise ProgramError(f"{field} must be a positive integer, got {value!r}", where)
    if not (block.e > 0 and 0 <= block.se <= 1):
        raise ProgramError(f"expansion must be > 0 and the SE ratio in [0, 1], got "
                           f"e={block.e!r}, se={block.se!r}", where)
    mid = block.expanded(cin)
    if block.kind == "gc" and (cin % block.groups or mid % block.groups
                               or (mid == cin and block.out % block.groups)):
        raise ProgramError(f"{block.groups} groups do not divide the block's channels "
                           f"({cin} in, {mid} expanded, {block.out} out)", where)
    if block.kind != "gc" and block.groups != 1:
        raise ProgramError(f"only gc blocks have groups, got groups={block.groups} for a "
                           f"{block.kind} block", where)


def _add_block(b: ArchBuilder, x: int, block: Block, prefix: str, se_style: str) -> int:
    cin = b.shape(x).c
    _check_block(block, cin, f"block {prefix.rstrip('.')}")
    mid, act, inp = block.expanded(cin), block.act, x
    expands = mid != cin
    if block.kind == "dw":
        if mid != cin:
            x = b.conv(x, 1, mid, act=act, bn=True, name=prefix + "expand")
        x = b.conv(x, block.k, mid, s=block.stride, g=mid, act=act, bn=True, name=prefix + "dw")
        width = mid
    else:
        width = mid if expands else block.out  # no expansion: the K x K conv projects
        g = block.groups if block.kind == "gc" else 1
        x = b.conv(x, block.k, width, s=block.stride, g=g, act=act, bn=True,
                   name=prefix + "conv")
    if block.se:
        se_act, gate = SE_STYLES[se_style]
        if se_style == "v3":
            reduced = make_divisible(int(width * block.se), 8)
        else:
            reduced = max(1, int(cin * block.se))
        x = b.se(x, reduced, act=se_act, gate=gate, name=prefix + "se")
    if block.kind == "dw" or expands:
        x = b.conv(x, 1, block.out, bn=True, name=prefix + "project")
    if block.stride == 1 and cin == block.out:
        x = b.add(inp, x, name=prefix + "add")
    return x


def lower(network: Network, names: Sequence[str] | None = None) -> Program:
    """The arch program of ``network``; block ``i``'s nodes are named
    ``{names[i]}.expand/dw/conv/se/project/add`` (default ``b{i}``)."""
    if network.se_style not in SE_STYLES:
        raise ProgramError(f"unknown SE style {network.se_style!r} "
                           f"(styles: {', '.join(SE_STYLES)})", "se_style")
    if names is not None and len(names) != len(network.blocks):
        raise ProgramError(f"{len(names)} block names for {len(network.blocks)} blocks")
    b = ArchBuilder(network.resolution)
    x = b.conv(b.image, 3, network.stem, s=2, act=network.stem_act, bn=True, name="stem")
    for i, block in enumerate(network.blocks):
        x = _add_block(b, x, block, f"{names[i] if names else f'b{i}'}.", network.se_style)
    x = b.conv(x, 1, network.head, act=network.head_act, bn=True, name="head")
    x = b.gap(x, name="pool")
    if network.pre_logits:
        x = b.conv(x, 1, network.pre_logits, act=network.head_act, bias=True,
                   name="pre_logits")
    b.fc(x, network.classes, name="classifier")
    return b.build()


# -- built-in networks ------------------------------------------------------------------------
def _v2() -> Network:
    # (expansion t, channels c, repeats n, first stride s): Sandler et al. 2018, Table 2
    rows = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))
    blocks = tuple(Block(c, e=t, stride=s if i == 0 else 1, act="relu6")
                   for t, c, n, s in rows for i in range(n))
    return Network(blocks, stem=32, stem_act="relu6", head=1280, head_act="relu6")


def _v3(rows: tuple[tuple, ...], head: int, pre_logits: int) -> Network:
    # (kernel, expanded size, out, SE, activation, stride): Howard et al. 2019, Tables 1-2
    blocks = tuple(Block(out, k=k, mid=exp, stride=s, se=0.25 if se else 0.0,
                         act="hswish" if nl == "HS" else "relu")
                   for k, exp, out, se, nl, s in rows)
    return Network(blocks, stem=16, stem_act="hswish", head=head, head_act="hswish",
                   pre_logits=pre_logits, se_style="v3")


V3_LARGE = (
    (3, 16, 16, 0, "RE", 1), (3, 64, 24, 0, "RE", 2), (3, 72, 24, 0, "RE", 1),
    (5, 72, 40, 1, "RE", 2), (5, 120, 40, 1, "RE", 1), (5, 120, 40, 1, "RE", 1),
    (3, 240, 80, 0, "HS", 2), (3, 200, 80, 0, "HS", 1), (3, 184, 80, 0, "HS", 1),
    (3, 184, 80, 0, "HS", 1), (3, 480, 112, 1, "HS", 1), (3, 672, 112, 1, "HS", 1),
    (5, 672, 160, 1, "HS", 2), (5, 960, 160, 1, "HS", 1), (5, 960, 160, 1, "HS", 1),
)
V3_SMALL = (
    (3, 16, 16, 1, "RE", 2), (3, 72, 24, 0, "RE", 2), (3, 88, 24, 0, "RE", 1),
    (5, 96, 40, 1, "HS", 2), (5, 240, 40, 1, "HS", 1), (5, 240, 40, 1, "HS", 1),
    (5, 120, 48, 1, "HS", 1), (5, 144, 48, 1, "HS", 1), (5, 288, 96, 1, "HS", 2),
    (5, 576, 96, 1, "HS", 1), (5, 576, 96, 1, "HS", 1),
)


def _b0() -> Network:
    # (expansion, kernel, first stride, out, repeats): Tan & Le 2019, Table 1
    rows = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
            (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
    blocks = tuple(Block(c, k=k, e=t, stride=s if i == 0 else 1, se=0.25, act="swish")
                   for t, k, s, c, n in rows for i in range(n))
    return Network(blocks, stem=32, stem_act="swish", head=1280, head_act="swish",
                   se_style="efficientnet")


NETWORKS: dict[str, Network] = {
    "mobilenetv2": _v2(),
    "mobilenetv3-large": _v3(V3_LARGE, 960, 1280),
    "mobilenetv3-small": _v3(V3_SMALL, 576, 1024),
    "efficientnet-b0": _b0(),
}
BUILTINS = tuple(NETWORKS)


def network(name: str) -> Network:
    """The built-in network called ``name`` (see :data:`BUILTINS`)."""
    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        hint = did_you_mean(name, BUILTINS, n=1)
        raise ProgramError(f"unknown network {name!r}{hint} (built-ins: "
                           f"{', '.join(BUILTINS)})") from None


def builtin(name: str) -> Program:
    """The arch program of a built-in network (MobileNetV2 1.0 at 224, ...)."""
    return lower(network(name))


# -- compound scaling --------------------------------------------------------------------------
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # depth, width, resolution (EfficientNet's B0 grid)


def stages(blocks: Sequence[Block]) -> list[list[Block]]:
    """Blocks grouped into stages: a stage starts at a block that changes the stride
    or the width, and goes on over stride-1 blocks of the same width."""
    out: list[list[Block]] = []
    for block in blocks:
        if out and block.stride == 1 and block.out == out[-1][-1].out:
            out[-1].append(block)
        else:
            out.append([block])
    return out


def scale(net: Network | str | Sequence[Block], phi: float, alpha: float = ALPHA,
          beta: float = BETA, gamma: float = GAMMA) -> Network | tuple[Block, ...]:
    """EfficientNet compound scaling by ``phi``: channels times ``beta**phi`` rounded
    to multiples of 8, layers per stage times ``alpha**phi`` rounded up (a stage
    grows by repeating its last block) and resolution times ``gamma**phi``.

    Takes a network, a built-in name or a block list (then returns scaled blocks).
    """
    if isinstance(net, str):
        net = network(net)
    if not (isinstance(phi, int | float) and math.isfinite(phi) and phi >= 0):
        raise ProgramError(f"phi must be a finite number >= 0, got {phi!r}", "phi")
    depth, width = alpha**phi, beta**phi

    def channels(c: int) -> int:
        return make_divisible(c * width, 8) if phi else c

    blocks: list[Block] = []
    source = net.blocks if isinstance(net, Network) else tuple(net)
    for stage in stages(source):
        n = math.ceil(depth * len(stage) - 1e-9)
        grown = stage[:n] + [replace(stage[-1], stride=1)] * (n - len(stage))
        blocks += [replace(b, out=channels(b.out), mid=channels(b.mid) if b.mid else 0)
                   for b in grown]
    if not isinstance(net, Network):
        return tuple(blocks)
    return replace(net, blocks=tuple(blocks), stem=channels(net.stem),
                   head=channels(net.head),
                   pre_logits=channels(net.pre_logits) if net.pre_logits else 0,
                   resolution=int(round(net.resolution * gamma**phi)))


# -- the search space ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """A stage of the search space's skeleton: its width options (output channels),
    first stride and most layers."""

    widths: tuple[int, ...]
    stride: int
    max_layers: int = 4


# MobileNetV3-Large-like skeleton (resolutions 112, 56, 28, 14, 14, 7); the middle width
# of each stage is MobileNetV3-Large's.
DEFAULT_STAGES = (Stage((8, 16, 24), 1, 2), Stage((16, 24, 32), 2), Stage((32, 40, 48), 2),
                  Stage((64, 80, 96), 2), Stage((96, 112, 128), 1), Stage((128, 160, 192), 2))

TYPE_OPTIONS = (("dw", 1), ("fused", 1), ("gc", 2), ("gc", 4))
KERNELS = (3, 5, 7)
EXPANSIONS = (1, 3, 6)
SE_RATIOS = (0.0, 0.25)
ACTS = ("relu", "hswish")
BLOCK_FIELDS = ("type", "kernel", "expansion", "se", "act")
DECODE_CACHE = 256  # decoded programs a space keeps (encode checks by decoding)


class MobileNetSpace:
    """A layerwise MobileNet space over a fixed stage skeleton.

    Decisions, in network order: per stage its output width (``s{i}.width``) and
    number of layers (``s{i}.layers``), then per layer slot ``s{i}.b{j}``: block type
    (dw, fused, gc/2, gc/4), kernel (3/5/7), expansion (1/3/6), squeeze-excite
    (off/0.25, MobileNetV3 style) and activation (ReLU/h-swish). Widths should be
    multiples of 8 (so that the group counts divide every block's channels).
    Decisions of slots beyond a stage's layer count do not matter: :meth:`encode`
    returns 0 for them, and codes that differ only there decode to equal programs.
    The stem (16, h-swish) and head (960, pool, 1280, classifier) are MobileNetV3's.
    """

    name = "mobilenet"

    def __init__(self, stages: Sequence[Stage] = DEFAULT_STAGES, resolution: int = 224,
                 classes: int = 1000) -> None:
        self.stages = tuple(stages)
        if not self.stages:
            raise ProgramError("a MobileNet space needs at least one stage", "stages")
        for i, st in enumerate(self.stages):
            if (not st.widths or min(st.widths) < 1 or len(set(st.widths)) < len(st.widths)
                    or st.stride < 1 or st.max_layers < 1):
                raise ProgramError(f"stage {i}: needs distinct positive widths, and stride "
                                   f"and max_layers >= 1, got {st}", "stages")
            if any(w % g for w in st.widths for _, g in TYPE_OPTIONS):
                raise ProgramError(f"stage {i}: widths {st.widths} must be multiples of the "
                                   "group counts 2 and 4", "stages")
        self.resolution, self.classes = resolution, classes
        self._decoded: dict[tuple[int, ...], Program] = {}
        self._memo_key = ("mobilenet-code", self.stages, resolution, classes)
        names: list[str] = []
        choices: list[tuple[str, ...]] = []
        for i, st in enumerate(self.stages):
            names += [f"s{i}.width", f"s{i}.layers"]
            choices += [tuple(map(str, st.widths)),
                        tuple(str(n) for n in range(1, st.max_layers + 1))]
            for j in range(st.max_layers):
                names += [f"s{i}.b{j}.{f}" for f in BLOCK_FIELDS]
                choices += [tuple(t if g == 1 else f"{t}/{g}" for t, g in TYPE_OPTIONS),
                            tuple(map(str, KERNELS)), tuple(map(str, EXPANSIONS)),
                            tuple("off" if r == 0 else f"{r:g}" for r in SE_RATIOS), ACTS]
        self.decision_names: tuple[str, ...] = tuple(names)
        self.choices: tuple[tuple[str, ...], ...] = tuple(choices)
        self._sizes = tuple(map(len, self.choices))
        # Where each stage's decisions start in a code.
        self._offsets = []
        pos = 0
        for st in self.stages:
            self._offsets.append(pos)
            pos += 2 + len(BLOCK_FIELDS) * st.max_layers

    def __repr__(self) -> str:
        return f"MobileNetSpace({len(self.stages)} stages, {len(self.choices)} decisions)"

    # -- codes ---------------------------------------------------------------------------
    def _check_code(self, code: Sequence[int]) -> tuple[int, ...]:
        code = tuple(code)
        if len(code) == len(self.choices) and all(
                type(c) is int and 0 <= c < n for c, n in zip(code, self._sizes)):
            return code
        if len(code) != len(self.choices):
            raise ProgramError(f"a {self.name} code has {len(self.choices)} decisions, "
                               f"got {len(code)}")
        for i, (c, opts) in enumerate(zip(code, self.choices)):
            if not is_int(c) or not 0 <= c < len(opts):
                raise ProgramError(f"decision {self.decision_names[i]} must be an option "
                                   f"index in [0, {len(opts)}), got {c!r}")
        return code

    def canonical(self, code: Sequence[int]) -> tuple[int, ...]:
        """``code`` with the decisions of unused layer slots set to 0."""
        out = list(self._check_code(code))
        for off, st in zip(self._offsets, self.stages):
            n = out[off + 1] + 1
            for j in range(n, st.max_layers):
                start = off + 2 + j * len(BLOCK_FIELDS)
                out[start:start + len(BLOCK_FIELDS)] = [0] * len(BLOCK_FIELDS)
        return tuple(out)

    def network(self, code: Sequence[int]) -> tuple[Network, list[str]]:
        """The network of a code, and its block names (``s{i}.b{j}``)."""
        code = self._check_code(code)
        blocks: list[Block] = []
        names: list[str] = []
        for i, (off, st) in enumerate(zip(self._offsets, self.stages)):
            out = st.widths[code[off]]
            for j in range(code[off + 1] + 1):
                t, k, e, se, act = code[off + 2 + j * 5: off + 7 + j * 5]
                kind, groups = TYPE_OPTIONS[t]
                blocks.append(Block(out, kind=kind, k=KERNELS[k], e=EXPANSIONS[e],
                                    stride=st.stride if j == 0 else 1, se=SE_RATIOS[se],
                                    act=ACTS[act], groups=groups))
                names.append(f"s{i}.b{j}")
        net = Network(tuple(blocks), resolution=self.resolution, stem=16, stem_act="hswish",
                      head=960, head_act="hswish", pre_logits=1280, classes=self.classes,
                      se_style="v3")
        return net, names

    def decode(self, code: Sequence[int]) -> Program:
        """The program of a code (codes that differ only in unused slots give equal
        programs; recently decoded programs are reused)."""
        key = self.canonical(code)
        program = self._decoded.get(key)
        if program is None:
            net, names = self.network(key)
            program = lower(net, names)
            program.remember(self._memo_key, key)  # encode() knows its own programs
            if len(self._decoded) >= DECODE_CACHE:
                self._decoded.pop(next(iter(self._decoded)))
            self._decoded[key] = program
        return program

    def encode(self, program: Program) -> tuple[int, ...]:
        """The (canonical) code of a program of this space.

        Raises:
            ProgramError: if the program is not exactly a network of this space.
        """
        known = program.recall(self._memo_key)
        if known is not None:
            return known
        ids = set(program.ids)
        code: list[int] = []
        try:
            shape = shapes(program)
            for i, st in enumerate(self.stages):
                n = 0
                while n < st.max_layers and any(f"s{i}.b{n}.{p}" in ids for p in ("dw", "conv")):
                    n += 1
                if n == 0:
                    raise ValueError(f"stage {i} has no blocks")
                first = self._block_nodes(program, f"s{i}.b0", shape)
                code += [self._width_index(first["out"], st), n - 1]
                for j in range(st.max_layers):
                    code += (self._encode_block(program, f"s{i}.b{j}", shape) if j < n
                             else [0] * len(BLOCK_FIELDS))
        except (ValueError, KeyError) as err:
            raise ProgramError(f"not a program of the {self.name} space: {err}") from None
        code_t = tuple(code)
        if self.decode(code_t) != program:
            raise ProgramError(f"not a program of the {self.name} space: its nearest code "
                               "decodes to a different program")
        return code_t

    @staticmethod
    def _width_index(out: int, st: Stage) -> int:
        if out not in st.widths:
            raise ValueError(f"width {out} is not one of the stage's widths {st.widths}")
        return st.widths.index(out)

    @staticmethod
    def _block_nodes(program: Program, prefix: str, shape: dict) -> dict:
        """The block's main conv spec, its input and output widths."""
        ids = program.ids
        main = f"{prefix}.dw" if f"{prefix}.dw" in ids else f"{prefix}.conv"
        spec = op_spec(program.node(program.index(main)).op)
        last = next(p for p in ("project", "conv") if f"{prefix}.{p}" in ids)
        out = op_spec(program.node(program.index(f"{prefix}.{last}")).op).attrs["c"]
        first = f"{prefix}.expand" if f"{prefix}.expand" in ids else main
        arg = program.node(program.index(first)).args[0]
        cin = shape[program.ids[arg]].c
        return {"main": main, "spec": spec, "out": out, "cin": cin}

    def _encode_block(self, program: Program, prefix: str, shape: dict) -> list[int]:
        info = self._block_nodes(program, prefix, shape)
        attrs = info["spec"].attrs
        ids = program.ids
        if info["main"].endswith(".dw"):
            t = TYPE_OPTIONS.index(("dw", 1))
            mid = attrs["c"]
        else:
            g = attrs["g"]
            t = TYPE_OPTIONS.index(("fused", 1) if g == 1 else ("gc", g))
            mid = attrs["c"] if f"{prefix}.project" in ids else info["cin"]
        e = EXPANSIONS.index(mid // info["cin"]) if mid % info["cin"] == 0 else -1
        if e < 0:
            raise ValueError(f"block {prefix} expands {info['cin']} to {mid} channels")
        return [t, KERNELS.index(attrs["k"]), e, int(f"{prefix}.se" in ids),
                ACTS.index(attrs["act"])]

    # -- search ------------------------------------------------------------------------------
    def sample(self, rng: random.Random) -> Program:
        """A uniformly random code's program."""
        return self.decode(tuple(rng.randrange(len(opts)) for opts in self.choices))

    def active(self, code: Sequence[int]) -> list[int]:
        """The positions of the decisions that matter for ``code``."""
        code = self._check_code(code)
        out: list[int] = []
        for off in self._offsets:
            out += [off, off + 1]
            out += range(off + 2, off + 2 + len(BLOCK_FIELDS) * (code[off + 1] + 1))
        return out

    def mutate(self, program: Program, rng: random.Random) -> tuple[Program, str]:
        """Change one decision that matters to a different option (uniformly).

        A stage that grows gets copies of its last layer's decisions.
        """
        code = list(self.encode(program))
        pos = rng.choice(self.active(code))
        old = code[pos]
        new = rng.choice([o for o in range(len(self.choices[pos])) if o != old])
        code[pos] = new
        name = self.decision_names[pos]
        if name.endswith(".layers") and new > old:
            last = pos + 1 + old * len(BLOCK_FIELDS)
            for j in range(old + 1, new + 1):
                start = pos + 1 + j * len(BLOCK_FIELDS)
                code[start:start + len(BLOCK_FIELDS)] = code[last:last + len(BLOCK_FIELDS)]
        opts = self.choices[pos]
        return self.decode(code), f"{name}: {opts[old]} -> {opts[new]}"

    def fingerprint(self, program: Program) -> str:
        """The architecture's canonical graph hash (:func:`graphs.arch.ops.fingerprint`)."""
        return fingerprint(program)

    def layers(self, program: Program) -> list[Layer]:
        """The program's layers."""
        return to_layers(program)

