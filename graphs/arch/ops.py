"""The ``arch`` op set: neural architectures as programs of parametric layer ops.

An architecture is a :class:`~graphs.core.program.Program` with no inputs and one value
type, ``TENSOR`` (an ``h x w x c`` feature map). Its first node is an ``image`` op
that records the input resolution; every other op is a layer whose attributes are
part of its name, always written in a fixed order, e.g.::

    image(r=224,c=3)
    conv(k=3,c=32,s=2,g=1,act=relu6,bn=1)       # g=cin (and c=cin): depthwise
    add(n=2)

so a program file names its layers exactly and ``loads(dumps(p)) == p``. The op
set creates (and interns) such ops on demand: ``ARCH.op(name)`` parses a name, and
:func:`layer_op` builds one from keyword attributes.

:func:`to_layers` infers shapes and lowers a program to :class:`~graphs.arch.layers.Layer`
values, the interface to cost models; :func:`summary` counts MACs, parameters and
peak activation memory. :class:`ArchBuilder` writes programs conveniently, and
:class:`ArchSpace` is the protocol every architecture search space implements.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

from graphs.arch.layers import ACTIVATIONS, Layer, count_macs, count_params, peak_activation_memory
from graphs.core.errors import ProgramError, did_you_mean, is_int
from graphs.core.op import Op, Signature
from graphs.core.opset import OpSet, register_opset
from graphs.core.program import Node, Program
from graphs.core.types import ValueType

TENSOR = ValueType("TENSOR", "(H,W,C)", "a feature map of one image")

_REQUIRED = object()


@dataclass(frozen=True)
class _Attr:
    """One attribute of a layer op: its value kind, default and whether the canonical
    name always shows it (``shown``) or only when it differs from the default."""

    name: str
    kind: str  # "int", "bool" or "act"
    default: Any = _REQUIRED
    shown: bool = True
    minimum: int = 1
    doc: str = ""


def _int(name: str, doc: str, default: Any = _REQUIRED, shown: bool = True,
         minimum: int = 1) -> _Attr:
    return _Attr(name, "int", default, shown, minimum, doc)


def _act(name: str, doc: str, default: Any = _REQUIRED, shown: bool = True) -> _Attr:
    return _Attr(name, "act", default, shown, doc=doc)


def _flag(name: str, doc: str, default: bool, shown: bool = True) -> _Attr:
    return _Attr(name, "bool", default, shown, doc=doc)


# Every op kind: (description, attributes in canonical order, arity; None = attribute n).
KINDS: dict[str, tuple[str, tuple[_Attr, ...], int | None]] = {
    "image": ("the input image: r x r pixels with c channels", (
        _int("r", "resolution (height = width)"),
        _int("c", "channels", 3),
    ), 0),
    "conv": ("K x K convolution (g groups; g = c = cin is depthwise), optional BN and act", (
        _int("k", "kernel size"),
        _int("c", "output channels"),
        _int("s", "stride", 1),
        _int("g", "groups", 1),
        _act("act", "activation", "none"),
        _flag("bn", "batch norm after the conv", False),
        _flag("bias", "the conv has a bias", False, shown=False),
    ), 1),
    "avgpool": ("K x K average pooling", (_int("k", "kernel size"), _int("s", "stride", 1)), 1),
    "maxpool": ("K x K max pooling", (_int("k", "kernel size"), _int("s", "stride", 1)), 1),
    "gap": ("global average pooling to 1 x 1", (), 1),
    "fc": ("fully connected layer on a 1 x 1 input", (
        _int("c", "output features"),
        _act("act", "activation", "none", shown=False),
        _flag("bias", "the layer has a bias", True, shown=False),
    ), 1),
    "add": ("elementwise sum of n tensors of one shape", (
        _int("n", "number of summed tensors", minimum=2),
    ), None),
    "se": ("squeeze-excite: pool, 1x1 to mid channels, act, 1x1 back, gate, multiply", (
        _int("mid", "bottleneck channels"),
        _act("act", "activation after the reduction", "relu"),
        _act("gate", "gating function", "sigmoid"),
    ), 1),
    "act": ("standalone activation", (_act("f", "the activation"),), 1),
    "bn": ("standalone batch norm (optionally followed by an activation)", (
        _act("act", "activation", "none", shown=False),
    ), 1),
    "identity": ("the input unchanged", (), 1),
    "zero": ("zeros shaped like the input (an absent edge; a sum ignores it)", (), 1),
}

_NAME = re.compile(r"([a-z_]+)(?:\((.*)\))?")
_INT = re.compile(r"-?[0-9]+")


class OpSpec(NamedTuple):
    """What a layer op is: its kind and attribute values (canonical order)."""

    kind: str
    attrs: dict[str, Any]


class Shape(NamedTuple):
    """A feature map's height, width and channels."""

    h: int
    w: int
    c: int

    def __str__(self) -> str:
        return f"{self.h}x{self.w}x{self.c}"


# -- names -------------------------------------------------------------------------------
def _format_value(attr: _Attr, value: Any) -> str:
    return str(int(value)) if attr.kind == "bool" else str(value)


def _canonical(kind: str, attrs: dict[str, Any]) -> str:
    specs = KINDS[kind][1]
    parts = [f"{a.name}={_format_value(a, attrs[a.name])}" for a in specs
             if a.shown or attrs[a.name] != a.default]
    return f"{kind}({','.join(parts)})" if parts else kind


def _check_attrs(kind: str, given: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate ``given`` attribute values of ``kind``; fill in defaults."""
    if kind not in KINDS:
        hint = did_you_mean(kind, KINDS, n=2, quote=False, joiner=" or ")
        raise ProgramError(f"unknown layer kind {kind!r}{hint} (kinds: {', '.join(KINDS)})",
                           where)
    specs = {a.name: a for a in KINDS[kind][1]}
    for name in given:
        if name not in specs:
            allowed = ", ".join(specs) or "none"
            raise ProgramError(f"{kind} has no attribute {name!r} (attributes: {allowed})",
                               where)
    attrs: dict[str, Any] = {}
    for a in specs.values():
        value = given.get(a.name, a.default)
        if value is _REQUIRED:
            raise ProgramError(f"{kind} needs attribute {a.name!r} ({a.doc}); write e.g. "
                               f"{_example(kind)}", where)
        if a.kind == "int":
            if not is_int(value) or value < a.minimum:
                raise ProgramError(f"{kind} attribute {a.name} ({a.doc}) must be an integer "
                                   f">= {a.minimum}, got {value!r}", where)
        elif a.kind == "bool":
            if value not in (0, 1) or isinstance(value, float):
                raise ProgramError(f"{kind} attribute {a.name} ({a.doc}) must be 0 or 1, "
                                   f"got {value!r}", where)
            value = bool(value)
        elif value not in ACTIVATIONS:
            raise ProgramError(f"{kind} attribute {a.name} ({a.doc}) must be one of "
                               f"{', '.join(ACTIVATIONS)}, got {value!r}", where)
        attrs[a.name] = value
    return attrs


def _example(kind: str) -> str:
    examples = {"image": "image(r=224,c=3)", "conv": "conv(k=3,c=32,s=2,g=1,act=relu,bn=1)",
                "avgpool": "avgpool(k=3,s=1)", "maxpool": "maxpool(k=3,s=2)",
                "fc": "fc(c=1000)", "add": "add(n=2)", "se": "se(mid=16,act=relu,gate=sigmoid)",
                "act": "act(f=hswish)"}
    return examples.get(kind, kind)


def parse_op_name(name: str) -> OpSpec:
    """The kind and attributes of an op name such as ``conv(k=3,c=32,s=2)``.

    Attributes may come in any order and defaults may be left out; the op's
    canonical name lists them in the fixed order.
    """
    where = f"op {name!r}" if isinstance(name, str) else "op"
    if not isinstance(name, str):
        raise ProgramError(f"an op name must be a string, got {type(name).__name__}")
    m = _NAME.fullmatch(name.replace(" ", ""))
    if m is None:
        raise ProgramError("an arch op name looks like kind or kind(attr=value,...), e.g. "
                           "conv(k=3,c=32,s=2,g=1,act=relu,bn=1)", where)
    kind, body = m.group(1), m.group(2)
    given: dict[str, Any] = {}
    for part in (body.split(",") if body else ()):
        key, sep, text = part.partition("=")
        if not sep or not key:
            raise ProgramError(f"attribute {part!r} must be written name=value", where)
        if key in given:
            raise ProgramError(f"attribute {key!r} is given twice", where)
        given[key] = int(text) if _INT.fullmatch(text) else text
    return OpSpec(kind, _check_attrs(kind, given, where))


# -- the op set ----------------------------------------------------------------------------
def _not_executable(*args: Any) -> Any:
    raise ProgramError("arch programs are not executed numerically; lower them with "
                       "graphs.arch.ops.to_layers")


def _segments(text: str) -> list[str]:
    """Split a rendered chain ``a > b > c`` at its top level (outside parentheses)."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and text.startswith(" > ", i):
            out.append(text[start:i])
            start = i + 3
            i += 3
            continue
        i += 1
    out.append(text[start:])
    return out


def _render_add(args: tuple[str, ...], types: tuple[ValueType, ...]) -> str:
    """``prefix > add(branch | branch)`` with the shared prefix written once (a
    residual ``x + f(x)`` renders as ``x > add(identity | f)``), so the text grows
    linearly with the depth of the network."""
    chains = [_segments(a) for a in args]
    common = 0
    while all(len(c) > common for c in chains) and len({c[common] for c in chains}) == 1:
        common += 1
    branches = [" > ".join(c[common:]) or "identity" for c in chains]
    body = f"add({' | '.join(branches)})"
    return " > ".join(chains[0][:common] + [body])


def _render(name: str):
    def render(args: tuple[str, ...], types: tuple[ValueType, ...]) -> str:
        return f"{args[0]} > {name}" if args else name

    return render


class _StableOpIds(dict):
    """Op positions for :mod:`graphs.core.equivalence`: the set of arch ops is open, so an
    op's position is a hash of its name, stable across processes."""

    def __missing__(self, name: str) -> int:
        value = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=7).digest(), "big")
        self[name] = value
        return value


class ArchOpSet(OpSet):
    """The arch op set: ops are created from their names on first use and interned,
    so equal names always give the same :class:`Op` object."""

    def __init__(self) -> None:
        self._specs: dict[str, OpSpec] = {}
        self._lock = threading.Lock()
        base = [self._make(kind, _check_attrs(kind, {}, kind))
                for kind, (_, attrs, _) in KINDS.items()
                if all(a.default is not _REQUIRED for a in attrs) and KINDS[kind][2] is not None]
        super().__init__("arch", (TENSOR,), base, (), TENSOR,
                         doc="Neural architectures: layer ops on TENSOR feature maps.")
        self._op_positions = _StableOpIds()

    def _make(self, kind: str, attrs: dict[str, Any]) -> Op:
        name = _canonical(kind, attrs)
        arity = attrs["n"] if kind == "add" else KINDS[kind][2]
        render = _render_add if kind == "add" else _render(name)
        op = Op(name, (Signature((TENSOR,) * arity, TENSOR),), _not_executable, None,
                doc=KINDS[kind][0], commutative=kind == "add", render=render)
        self._specs[name] = OpSpec(kind, dict(attrs))
        return op

    def op(self, name: str) -> Op:
        """The op called ``name``, created on first use (see :func:`parse_op_name`)."""
        op = self._ops_by_name.get(name) if isinstance(name, str) else None
        if op is not None:
            return op
        spec = parse_op_name(name)
        return self._intern(spec.kind, spec.attrs)

    def _intern(self, kind: str, attrs: dict[str, Any]) -> Op:
        name = _canonical(kind, attrs)
        op = self._ops_by_name.get(name)
        if op is None:
            with self._lock:
                op = self._ops_by_name.get(name)
                if op is None:
                    op = self._make(kind, attrs)
                    for sig in op.signatures:
                        self.signature_table[(op.name, sig.args)] = sig.out
                    self._ops_by_name[name] = op
        return op

    def spec(self, op: Op | str) -> OpSpec:
        """The kind and attributes of an arch op (or op name)."""
        name = op.name if isinstance(op, Op) else op
        spec = self._specs.get(name)
        if spec is None:
            spec = self._specs[self.op(name).name]
        return OpSpec(spec.kind, dict(spec.attrs))


ARCH: ArchOpSet = register_opset(ArchOpSet())  # type: ignore[assignment]


def layer_op(kind: str, **attrs: Any) -> Op:
    """The arch op of ``kind`` with ``attrs`` (defaults filled in), e.g.
    ``layer_op("conv", k=3, c=32, s=2, act="relu", bn=True)``."""
    return _lookup(kind, attrs, f"{kind} op")


_BY_ATTRS: dict[tuple, Op] = {}


def _lookup(kind: str, attrs: dict[str, Any], where: str) -> Op:
    """:func:`layer_op` with a memo of the exact keyword arguments (types included)."""
    key = (kind, *sorted((k, type(v).__name__, v) for k, v in attrs.items()))
    op = _BY_ATTRS.get(key)
    if op is None:
        op = ARCH._intern(kind, _check_attrs(kind, attrs, where))
        if len(_BY_ATTRS) > 100_000:
            _BY_ATTRS.clear()
        _BY_ATTRS[key] = op
    return op


def op_spec(op: Op | str) -> OpSpec:
    """The kind and attribute values of an arch op or op name."""
    return ARCH.spec(op)


# -- shape inference ---------------------------------------------------------------------
def _infer(spec: OpSpec, shapes: Sequence[Shape], zeros: Sequence[bool],
           name: str) -> tuple[Shape, bool, Layer | None]:
    """Output shape, whether it is known to be all zeros, and the layer (if any)."""
    kind, a = spec
    if kind == "image":
        return Shape(a["r"], a["r"], a["c"]), False, None
    x = shapes[0]
    if kind == "conv":
        g = a["g"]
        if x.c % g or a["c"] % g:
            raise ValueError(f"{g} groups do not divide the {x.c} input and {a['c']} output "
                             "channels (depthwise: g = c = input channels)")
        layer = Layer("conv", x.h, x.w, x.c, a["c"], k=a["k"], stride=a["s"], groups=g,
                      act=a["act"], bn=a["bn"], bias=a["bias"], name=name)
        return Shape(layer.oh, layer.ow, a["c"]), False, layer
    if kind in ("avgpool", "maxpool"):
        layer = Layer(kind, x.h, x.w, x.c, x.c, k=a["k"], stride=a["s"], name=name)
        return Shape(layer.oh, layer.ow, x.c), False, layer
    if kind == "gap":
        return Shape(1, 1, x.c), False, Layer("gap", x.h, x.w, x.c, x.c, name=name)
    if kind == "fc":
        if (x.h, x.w) != (1, 1):
            raise ValueError(f"fc needs a 1x1 input, got {x}; add a gap (global average "
                             "pooling) node first")
        layer = Layer("fc", 1, 1, x.c, a["c"], act=a["act"], bias=a["bias"], name=name)
        return Shape(1, 1, a["c"]), False, layer
    if kind == "add":
        if len(set(shapes)) > 1:
            raise ValueError("cannot add tensors of different shapes: "
                             + ", ".join(map(str, shapes)))
        live = sum(not z for z in zeros)
        if live < 2:
            return x, live == 0, None
        return x, False, Layer("add", x.h, x.w, x.c, x.c, inputs=live, name=name)
    if kind == "se":
        layer = Layer("se", x.h, x.w, x.c, x.c, act=a["act"], bias=True, mid=a["mid"],
                      name=name)
        return x, zeros[0], layer
    if kind == "act":
        return x, False, Layer("act", x.h, x.w, x.c, x.c, act=a["f"], name=name)
    if kind == "bn":
        return x, False, Layer("bn", x.h, x.w, x.c, x.c, act=a["act"], name=name)
    if kind == "identity":
        return x, zeros[0], None
    if kind == "zero":
        return x, True, None
    raise AssertionError(kind)


def _check_arch(program: Program) -> None:
    if program.opset is not ARCH:
        raise ProgramError(f"expected a program of the arch op set, got {program.opset.name!r}")


def _lower(program: Program) -> tuple[tuple[Layer, ...], dict[int, Shape]]:
    cached = program.recall("arch_layers")
    if cached is not None:
        return cached
    _check_arch(program)
    for i in range(program.n_inputs):
        if program.live[i]:
            raise ProgramError("arch programs take no inputs: their first node is an "
                               "image(r=...,c=...) op that fixes the input shape",
                               program.describe(i))
    shapes: dict[int, Shape] = {}
    zeros: dict[int, bool] = {}
    layers: list[Layer] = []
    for idx, op, args in program.plan:
        spec = ARCH._specs[op.name]
        try:
            shape, zero, layer = _infer(spec, [shapes[a] for a in args],
                                        [zeros[a] for a in args], program.ids[idx])
        except ValueError as err:
            raise ProgramError(f"{op.name}: {err}", program.describe(idx)) from None
        shapes[idx], zeros[idx] = shape, zero
        if layer is not None:
            layers.append(layer)
    result = (tuple(layers), shapes)
    program.remember("arch_layers", result)
    return result


def to_layers(program: Program) -> list[Layer]:
    """The layers the program's live nodes compute, in execution order, named by node id.

    ``identity`` and ``zero`` nodes compute nothing; a sum ignores ``zero`` inputs (a
    sum of one remaining tensor is no layer).

    Raises:
        ProgramError: naming the node whose shapes do not fit (e.g. adding tensors
            of different shapes, groups that do not divide the channels).
    """
    return list(_lower(program)[0])


def shapes(program: Program) -> dict[str, Shape]:
    """The output shape of every live node, by id."""
    return {program.ids[i]: s for i, s in _lower(program)[1].items()}


def output_shape(program: Program) -> Shape:
    """The shape of the program's output."""
    return _lower(program)[1][program.output]


def summary(program: Program) -> dict[str, int]:
    """MACs, parameters and the peak single-layer activation footprint (elements)."""
    layers = list(_lower(program)[0])
    return {"macs": count_macs(layers), "params": count_params(layers),
            "activation_peak": peak_activation_memory(layers)}


def fingerprint(program: Program) -> str:
    """A hex hash of the architecture: equal for programs that compute the same network.

    Node ids, dead nodes and node order do not matter; the arguments of a sum are
    unordered; ``identity`` nodes and ``zero`` summands are dropped (a sum left with
    one tensor is that tensor). Stable across processes.
    """
    cached = program.recall("arch_fp")
    if cached is not None:
        return cached
    _check_arch(program)
    hashes: dict[int, bytes] = {}
    zero: dict[int, bool] = {}
    for i in range(program.n_inputs):
        hashes[i], zero[i] = hashlib.blake2b(f"input{i}".encode(), digest_size=16).digest(), False
    for idx, op, args in program.plan:
        kind = ARCH._specs[op.name].kind
        if kind == "identity":
            hashes[idx], zero[idx] = hashes[args[0]], zero[args[0]]
            continue
        if kind == "add":
            kept = sorted(hashes[a] for a in args if not zero[a])
            if len(kept) <= 1:
                hashes[idx] = kept[0] if kept else _zero_hash(hashes[args[0]])
                zero[idx] = not kept
                continue
            name = f"add(n={len(kept)})"
            children = kept
        else:
            name, children = op.name, [hashes[a] for a in args]
        if kind == "zero":
            hashes[idx], zero[idx] = _zero_hash(hashes[args[0]]), True
            continue
        h = hashlib.blake2b(name.encode(), digest_size=16)
        for c in children:
            h.update(c)
        hashes[idx], zero[idx] = h.digest(), False
    fp = hashes[program.output].hex()
    program.remember("arch_fp", fp)
    return fp


def _zero_hash(child: bytes) -> bytes:
    # Zeros of one shape are all the same; the child's hash stands in for its shape.
    return hashlib.blake2b(b"zero" + child, digest_size=16).digest()


# -- building --------------------------------------------------------------------------------
class ArchBuilder:
    """Writes an arch program node by node, checking shapes as it goes.

    Every method adds a node and returns its index (pass it as an argument to later
    calls); ``name`` sets the node id (default ``n0, n1, ...``)::

        b = ArchBuilder(resolution=224)
        x = b.conv(b.image, k=3, c=32, s=2, act="relu6", bn=True, name="stem")
        y = b.conv(x, k=3, c=32, g=32, act="relu6", bn=True)
        program = b.build()
    """

    def __init__(self, resolution: int, channels: int = 3, name: str = "image") -> None:
        self._nodes: list[Node] = []
        self._ids: list[str] = []
        self._shapes: list[Shape] = []
        self._zeros: list[bool] = []
        self._used: set[str] = set()
        self.image = self.layer("image", r=resolution, c=channels, name=name)

    def __len__(self) -> int:
        return len(self._nodes)

    def shape(self, ref: int) -> Shape:
        """The output shape of node ``ref``."""
        return self._shapes[ref]

    def layer(self, kind: str, *args: int, name: str | None = None, **attrs: Any) -> int:
        """Add a node of ``kind`` with ``attrs`` applied to the nodes ``args``."""
        if name is None:
            k = len(self._nodes)
            while f"n{k}" in self._used:
                k += 1
            name = f"n{k}"
        where = f"node {name!r}"
        if name in self._used:
            raise ProgramError("the node id is already used", where)
        if kind == "add" and "n" not in attrs:
            attrs["n"] = len(args)
        op = _lookup(kind, attrs, where)
        if len(args) != op.arity:
            raise ProgramError(f"{op.name} takes {op.arity} argument(s), got {len(args)}", where)
        for a in args:
            if not (isinstance(a, int) and 0 <= a < len(self._nodes)):
                raise ProgramError(f"argument {a!r} is not a node index of this builder", where)
        try:
            shape, zero, _ = _infer(ARCH._specs[op.name], [self._shapes[a] for a in args],
                                    [self._zeros[a] for a in args], name)
        except ValueError as err:
            raise ProgramError(f"{op.name}: {err}", where) from None
        self._nodes.append(Node(op, tuple(args)))
        self._ids.append(name)
        self._used.add(name)
        self._shapes.append(shape)
        self._zeros.append(zero)
        return len(self._nodes) - 1

    def conv(self, x: int, k: int, c: int, s: int = 1, g: int = 1, act: str = "none",
             bn: bool = False, bias: bool = False, name: str | None = None) -> int:
        """A K x K convolution to ``c`` channels (``g`` groups)."""
        return self.layer("conv", x, k=k, c=c, s=s, g=g, act=act, bn=bn, bias=bias, name=name)

    def dwconv(self, x: int, k: int, s: int = 1, act: str = "none", bn: bool = False,
               name: str | None = None) -> int:
        """A depthwise K x K convolution (groups = channels)."""
        c = self._shapes[x].c
        return self.conv(x, k, c, s=s, g=c, act=act, bn=bn, name=name)

    def pool(self, x: int, k: int, s: int = 1, kind: str = "avgpool",
             name: str | None = None) -> int:
        """A K x K ``avgpool`` or ``maxpool``."""
        if kind not in ("avgpool", "maxpool"):
            raise ProgramError(f"pool kind must be avgpool or maxpool, got {kind!r}")
        return self.layer(kind, x, k=k, s=s, name=name)

    def gap(self, x: int, name: str | None = None) -> int:
        """Global average pooling."""
        return self.layer("gap", x, name=name)

    def fc(self, x: int, c: int, act: str = "none", bias: bool = True,
           name: str | None = None) -> int:
        """A fully connected layer (its input must be 1 x 1)."""
        return self.layer("fc", x, c=c, act=act, bias=bias, name=name)

    def add(self, *xs: int, name: str | None = None) -> int:
        """The sum of tensors of one shape."""
        return self.layer("add", *xs, name=name)

    def se(self, x: int, mid: int, act: str = "relu", gate: str = "sigmoid",
           name: str | None = None) -> int:
        """Squeeze-excite with ``mid`` bottleneck channels."""
        return self.layer("se", x, mid=mid, act=act, gate=gate, name=name)

    def act(self, x: int, f: str, name: str | None = None) -> int:
        """A standalone activation."""
        return self.layer("act", x, f=f, name=name)

    def bn(self, x: int, act: str = "none", name: str | None = None) -> int:
        """A standalone batch norm (and activation)."""
        return self.layer("bn", x, act=act, name=name)

    def identity(self, x: int, name: str | None = None) -> int:
        return self.layer("identity", x, name=name)

    def zero(self, x: int, name: str | None = None) -> int:
        return self.layer("zero", x, name=name)

    def build(self, output: int | None = None) -> Program:
        """The program, its output the node ``output`` (default: the last node)."""
        out = len(self._nodes) - 1 if output is None else output
        return Program(ARCH, self._nodes, (), out, self._ids)


# -- search spaces ---------------------------------------------------------------------------
@runtime_checkable
class ArchSpace(Protocol):
    """An architecture search space.

    ``choices`` lists the decisions in network order (one per "layer" for LayerNAS),
    each as its option labels; a code is one option index per decision.
    """

    name: str
    choices: tuple[tuple[str, ...], ...]

    def encode(self, program: Program) -> tuple[int, ...]:
        """The code of a program of this space."""
        ...

    def decode(self, code: Sequence[int]) -> Program:
        """The program of a code."""
        ...

    def sample(self, rng: random.Random) -> Program:
        """A random architecture (deterministic given ``rng``)."""
        ...

    def mutate(self, program: Program, rng: random.Random) -> tuple[Program, str]:
        """A different valid architecture one decision away, and what changed."""
        ...

    def fingerprint(self, program: Program) -> str:
        """Equal for equivalent architectures."""
        ...

    def layers(self, program: Program) -> list[Layer]:
        """The program's layers (see :func:`to_layers`)."""
        ...
