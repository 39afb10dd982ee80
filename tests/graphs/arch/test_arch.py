"""The arch op set: parametric op names, file round trip, shape inference, counts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from graphs.arch.layers import Layer
from graphs.arch.ops import (
    ARCH,
    ArchBuilder,
    Shape,
    fingerprint,
    layer_op,
    op_spec,
    output_shape,
    parse_op_name,
    summary,
    to_layers,
)
from graphs.core import fileformat
from graphs.core.equivalence import canonicalize, structural_hash
from graphs.core.errors import ProgramError
from graphs.core.opset import get_opset
from graphs.core.program import Node, Program
from graphs.core.render import formula, node_table, to_dot, to_networkx


def small_net(order: bool = False) -> Program:
    """stem conv, one residual block, a depthwise conv with SE, head."""
    b = ArchBuilder(32)
    x = b.conv(b.image, 3, 16, bn=True, act="relu", name="stem")
    y = b.conv(x, 3, 16, act="relu", bn=True, name="body")
    z = b.add(y, x) if order else b.add(x, y)
    w = b.dwconv(z, 5, s=2, act="hswish", bn=True, name="dw")
    w = b.se(w, 8, gate="hsigmoid")
    w = b.conv(w, 1, 24, bn=True)
    g = b.gap(w)
    b.fc(g, 10, name="classifier")
    return b.build()


# -- op names ------------------------------------------------------------------------------
def test_opset_is_registered():
    assert get_opset("arch") is ARCH
    assert ARCH.type("TENSOR").name == "TENSOR"


def test_op_names_are_canonical_and_interned():
    op = layer_op("conv", k=3, c=32, s=2, act="relu", bn=True)
    assert op.name == "conv(k=3,c=32,s=2,g=1,act=relu,bn=1)"
    assert ARCH.op("conv(c=32, k=3, bn=1, act=relu, s=2)") is op
    assert ARCH.op(op.name) is op
    assert (layer_op("conv", k=1, c=8, bias=True).name
            == "conv(k=1,c=8,s=1,g=1,act=none,bn=0,bias=1)")
    assert layer_op("add", n=3).arity == 3
    assert layer_op("gap").name == "gap" and ARCH.op("gap").arity == 1
    assert layer_op("image", r=224).name == "image(r=224,c=3)" and layer_op("image", r=8).arity == 0
    assert layer_op("fc", c=10).name == "fc(c=10)"
    assert layer_op("fc", c=10, bias=False).name == "fc(c=10,bias=0)"
    assert op_spec("se(mid=4)") == ("se", {"mid": 4, "act": "relu", "gate": "sigmoid"})
    assert parse_op_name("maxpool(k=3,s=2)").attrs == {"k": 3, "s": 2}


@pytest.mark.parametrize("name, message", [
    ("convv(k=3,c=4)", "unknown layer kind 'convv'; did you mean conv"),
    ("conv(k=3)", "conv needs attribute 'c'"),
    ("conv(k=3,c=0)", "must be an integer >= 1, got 0"),
    ("conv(k=3,c=4,act=gelu)", "must be one of none, relu"),
    ("conv(k=3,c=4,bn=2)", "must be 0 or 1, got 2"),
    ("conv(k=3,c=4,k=5)", "given twice"),
    ("conv(k=3,c=4,pad=1)", "conv has no attribute 'pad'"),
    ("add(n=1)", "integer >= 2"),
    ("conv[k=3]", "kind(attr=value"),
    ("conv(k3)", "name=value"),
])
def test_bad_op_names(name, message):
    with pytest.raises(ProgramError, match=message.replace("(", r"\(").replace("[", r"\[")):
        ARCH.op(name)


# -- file format ---------------------------------------------------------------------------
def test_file_round_trip_is_exact():
    p = small_net()
    text = fileformat.dumps(p)
    q = fileformat.loads(text)
    assert q == p and fileformat.dumps(q) == text
    assert fileformat.loads(fileformat.dumps(p, compact=True)) == p
    assert to_layers(q) == to_layers(p)
    assert '"op": "conv(k=5,c=16,s=2,g=16,act=hswish,bn=1)"' in text


def test_file_with_non_canonical_names_loads_to_canonical_ops():
    text = fileformat.dumps(small_net()).replace(
        "conv(k=5,c=16,s=2,g=16,act=hswish,bn=1)", "conv(bn=1,act=hswish,g=16,s=2,c=16,k=5)")
    assert fileformat.loads(text) == small_net()


def test_file_errors_name_the_node():
    text = fileformat.dumps(small_net()).replace("se(mid=8,", "se(mid=x,")
    with pytest.raises(ProgramError, match=r"nodes\[5\].*mid.*must be an integer"):
        fileformat.loads(text)
    text = fileformat.dumps(small_net()).replace('"args": ["stem", "body"]', '"args": ["stem"]')
    with pytest.raises(ProgramError, match=r"add\(n=2\) takes 2 argument"):
        fileformat.loads(text)


# -- shape inference and counts -------------------------------------------------------------
def test_layers_and_counts_by_hand():
    p = small_net()
    layers = {layer.name: layer for layer in to_layers(p)}
    assert layers["stem"] == Layer("conv", 32, 32, 3, 16, k=3, act="relu", bn=True)
    assert layers["dw"].depthwise and (layers["dw"].oh, layers["dw"].ow) == (16, 16)
    assert layers["classifier"] == Layer("fc", 1, 1, 24, 10, bias=True)
    assert output_shape(p) == Shape(1, 1, 10)
    macs = (32 * 32 * 16 * 27 + 32 * 32 * 16 * 16 * 9 + 16 * 16 * 16 * 25 + 2 * 16 * 8
            + 16 * 16 * 24 * 16 + 24 * 10)
    params = (16 * 27 + 32 + 16 * 16 * 9 + 32 + 16 * 25 + 32 + (2 * 16 * 8 + 8 + 16)
              + 16 * 24 + 48 + 24 * 10 + 10)
    s = summary(p)
    assert (s["macs"], s["params"]) == (macs, params)
    assert s["activation_peak"] == max(x.input_elements + x.output_elements
                                       for x in to_layers(p))


def test_shape_errors_name_the_node():
    b = ArchBuilder(32)
    x = b.conv(b.image, 3, 16, name="a")
    y = b.conv(x, 3, 16, s=2, name="b")
    with pytest.raises(ProgramError, match=r"node 'sum'.*different shapes: 32x32x16, 16x16x16"):
        b.add(x, y, name="sum")
    with pytest.raises(ProgramError, match=r"node 'g'.*3 groups do not divide"):
        b.conv(x, 3, 16, g=3, name="g")
    with pytest.raises(ProgramError, match=r"node 'f'.*1x1 input.*gap"):
        b.fc(x, 10, name="f")
    with pytest.raises(ProgramError, match="already used"):
        b.conv(x, 1, 4, name="a")
    # the same problems in a program built directly are found by to_layers
    nodes = [Node(layer_op("image", r=32), ()), Node(layer_op("conv", k=3, c=16), (0,)),
             Node(layer_op("conv", k=3, c=16, s=2), (1,)), Node(layer_op("add", n=2), (1, 2))]
    p = Program(ARCH, nodes, (), ids=["image", "a", "b", "sum"])
    with pytest.raises(ProgramError, match=r"node 'sum'.*different shapes"):
        to_layers(p)


def test_zero_and_identity():
    b = ArchBuilder(8, channels=4)
    x = b.conv(b.image, 3, 4)
    z = b.zero(x)
    i = b.identity(x)
    one = b.add(z, b.conv(x, 1, 4))
    two = b.add(i, b.conv(x, 3, 4), z)
    nothing = b.add(z, b.zero(i))
    b.add(one, two, b.conv(nothing, 1, 4))
    layers = to_layers(b.build())
    adds = [layer.inputs for layer in layers if layer.kind == "add"]
    assert adds == [2, 3]  # one: a single real summand (no layer); nothing: all zero
    assert len([x for x in layers if x.kind == "conv"]) == 4  # a conv of zeros still runs


def test_non_arch_inputs_are_rejected():
    from graphs.core.program import Input
    t = ARCH.type("TENSOR")
    p = Program(ARCH, [Node(layer_op("gap"), (0,))], (Input("x", t),))
    with pytest.raises(ProgramError, match="take no inputs"):
        to_layers(p)


# -- fingerprints and equivalence -----------------------------------------------------------
def test_fingerprint_ignores_ids_order_identity_and_zero():
    a, b = small_net(), small_net(order=True)
    assert a != b and fingerprint(a) == fingerprint(b)
    assert structural_hash(a) == structural_hash(b)
    renamed = Program(ARCH, a.nodes, (), ids=[f"x{i}" for i in range(len(a.nodes))])
    assert fingerprint(renamed) == fingerprint(a)

    def residual(extra: str) -> Program:
        bld = ArchBuilder(8)
        x = bld.conv(bld.image, 3, 4)
        y = bld.conv(x, 3, 4)
        if extra == "identity":
            bld.add(bld.identity(x), y)
        elif extra == "zero":
            bld.add(x, y, bld.zero(y))
        else:
            bld.add(x, y)
        return bld.build()

    assert len({fingerprint(residual(e)) for e in ("", "identity", "zero")}) == 1
    other = ArchBuilder(8)
    other.conv(other.conv(other.image, 3, 4), 3, 4)
    assert fingerprint(other.build()) != fingerprint(residual(""))


def test_structural_hash_and_fingerprint_are_stable_across_processes():
    code = ("from graphs.core import fileformat; from graphs.arch.ops import fingerprint;"
            "from graphs.core.equivalence import structural_hash;"
            "import sys; p = fileformat.loads(sys.stdin.read());"
            "print(fingerprint(p), structural_hash(p))")
    text = fileformat.dumps(small_net())
    outs = {subprocess.run([sys.executable, "-c", code], input=text, capture_output=True,
                           text=True, check=True, env={"PYTHONHASHSEED": str(seed)}).stdout
            for seed in (1, 2)}
    assert len(outs) == 1
    assert outs.pop().split()[0] == fingerprint(small_net())


def test_canonicalize_works_on_arch_programs():
    p = small_net()
    c = canonicalize(p)
    assert to_layers(c) == [layer for layer in to_layers(p)]  # Layer equality ignores names
    assert fingerprint(c) == fingerprint(p)


# -- rendering -------------------------------------------------------------------------------
def test_rendering():
    p = small_net()
    text = formula(p)
    assert text.startswith("image(r=32,c=3) > conv(k=3,c=16,s=1,g=1,act=relu,bn=1) > add(")
    assert "add(identity | conv(k=3,c=16,s=1,g=1,act=relu,bn=1))" in text
    assert text.endswith("> gap > fc(c=10)")
    assert "classifier" in node_table(p)
    assert to_dot(p).startswith("digraph program {")
    assert to_networkx(p).number_of_nodes() == len(p.nodes)


def test_formula_grows_linearly_with_residual_depth():
    def deep(blocks: int) -> Program:
        b = ArchBuilder(8)
        x = b.conv(b.image, 3, 4)
        for _ in range(blocks):
            x = b.add(x, b.conv(b.conv(x, 1, 8), 1, 4))
        return b.build()

    short, long = len(formula(deep(10))), len(formula(deep(40)))
    assert long < 5 * short
