"""MobileNet-style networks: built-ins against published counts, scaling, the space."""

from __future__ import annotations

import random

import pytest

from graphs.arch.layers import count_params
from graphs.arch.mobilenet import (
    ALPHA,
    BETA,
    BUILTINS,
    GAMMA,
    Block,
    MobileNetSpace,
    Network,
    Stage,
    builtin,
    lower,
    make_divisible,
    network,
    scale,
    stages,
)
from graphs.arch.ops import ArchSpace, fingerprint, shapes, summary, to_layers
from graphs.core import fileformat
from graphs.core.errors import ProgramError

# Published (paper) MACs and parameters, and torchvision's exact trainable parameter
# counts (weights, biases, BN scale and shift), which the layer counting convention shares.
PAPER = {
    "mobilenetv2": (300e6, 3.4e6, 3_504_872),
    "mobilenetv3-large": (219e6, 5.4e6, 5_483_032),
    "mobilenetv3-small": (56e6, 2.5e6, 2_542_856),
    "efficientnet-b0": (390e6, 5.3e6, 5_288_548),
}


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_counts_match_the_papers(name):
    macs, params, torchvision = PAPER[name]
    s = summary(builtin(name))
    assert abs(s["macs"] / macs - 1) < 0.03, s
    assert s["params"] == torchvision
    if name == "mobilenetv2":
        # The paper's 3.4M leaves out batch-norm scale and shift (3.47M); with them the
        # count is torchvision's 3.50M, 3.1% above the rounded paper figure.
        layers = to_layers(builtin(name))
        no_bn = count_params(layers) - sum(2 * x.cout for x in layers if x.bn)
        assert abs(no_bn / params - 1) < 0.03
    else:
        assert abs(s["params"] / params - 1) < 0.03


def test_builtin_structure():
    v3 = builtin("mobilenetv3-large")
    layers = {x.name: x for x in to_layers(v3)}
    assert "b0.expand" not in layers and layers["b0.dw"].depthwise  # exp 16 == input 16
    assert layers["b3.se"].mid == make_divisible(72 // 4, 8) == 24
    assert v3.node(v3.index("b3.se")).op.name == "se(mid=24,act=relu,gate=hsigmoid)"
    pre = layers["pre_logits"]
    assert (pre.h, pre.cin, pre.cout, pre.bn, pre.bias, pre.act) == (1, 960, 1280, False,
                                                                     True, "hswish")
    b0 = {x.name: x for x in to_layers(builtin("efficientnet-b0"))}
    assert b0["b1.se"].mid == 4  # 0.25 of the block's 16 input channels, not of 96
    assert b0["b1.se"].act == "swish"
    v2 = shapes(builtin("mobilenetv2"))
    assert v2["head"] == (7, 7, 1280) and v2["classifier"] == (1, 1, 1000)
    assert sum(1 for x in to_layers(builtin("mobilenetv2")) if x.kind == "add") == 10


def test_builtins_round_trip_through_files():
    for name in BUILTINS:
        p = builtin(name)
        assert fileformat.loads(fileformat.dumps(p)) == p


def test_unknown_network_and_bad_blocks():
    with pytest.raises(ProgramError, match="did you mean 'mobilenetv2'"):
        network("mobilenet-v2")
    with pytest.raises(ProgramError, match="unknown block type 'ibn'"):
        lower(Network((Block(16, kind="ibn"),)))
    with pytest.raises(ProgramError, match=r"block b0.*3 groups do not divide"):
        lower(Network((Block(24, kind="gc", groups=3, e=2),), stem=16))
    with pytest.raises(ProgramError, match="only gc blocks have groups"):
        lower(Network((Block(24, groups=2),)))


def test_block_types_lower_as_described():
    net = Network((Block(32, kind="fused", k=3, e=4), Block(48, kind="gc", groups=4, k=5, e=1,
                                                           stride=2, se=0.25)), stem=32)
    layers = {x.name: x for x in to_layers(lower(net))}
    conv = layers["b0.conv"]
    assert (conv.k, conv.cin, conv.cout, conv.groups) == (3, 32, 128, 1)
    assert layers["b0.project"].cout == 32 and "b0.add" in layers
    gc = layers["b1.conv"]  # no expansion: the grouped K x K conv goes straight to 48
    assert (gc.k, gc.cout, gc.groups, gc.stride) == (5, 48, 4, 2)
    assert "b1.project" not in layers and "b1.add" not in layers
    assert layers["b1.se"].mid == make_divisible(48 // 4, 8)


# -- compound scaling ---------------------------------------------------------------------------
def test_scale_zero_is_identity():
    assert scale("efficientnet-b0", 0) == network("efficientnet-b0")
    blocks = network("mobilenetv2").blocks
    assert scale(blocks, 0) == blocks


def test_scale_rounds_as_efficientnet():
    b1 = scale("efficientnet-b0", 1)
    assert b1.resolution == round(224 * GAMMA)
    assert [len(s) for s in stages(b1.blocks)] == [2, 3, 3, 4, 4, 5, 2]  # ceil(1.2 n)
    assert all(b.out % 8 == 0 for b in b1.blocks) and b1.head == make_divisible(1280 * BETA)
    assert b1.blocks[2].out == make_divisible(24 * BETA) == 24
    assert b1.blocks[-1].out == make_divisible(320 * BETA) == 352
    with pytest.raises(ProgramError, match="phi"):
        scale("efficientnet-b0", -1)


def test_scale_grows_macs_by_alpha_beta2_gamma2_per_phi():
    target = ALPHA * BETA**2 * GAMMA**2  # ~1.92
    # deep stages: little rounding, so the growth is the compound factor
    deep = Network(tuple(Block(c, stride=2 if i == 0 else 1) for c in (24, 48, 96)
                         for i in range(10)))
    base = summary(lower(deep))["macs"]
    for phi in (1, 2):
        growth = (summary(lower(scale(deep, phi)))["macs"] / base) ** (1 / phi)
        assert abs(growth / target - 1) < 0.05, (phi, growth)
    # B0's one-layer stages round up a lot at phi=1 (2.6x); per phi it tends to ~2x
    b0 = summary(builtin("efficientnet-b0"))["macs"]
    b1 = summary(lower(scale("efficientnet-b0", 1)))["macs"] / b0
    b3 = (summary(lower(scale("efficientnet-b0", 3)))["macs"] / b0) ** (1 / 3)
    assert 1.8 < b1 < 2.8 and abs(b3 / target - 1) < 0.1


# -- the search space -------------------------------------------------------------------------
def test_space_follows_the_protocol():
    space = MobileNetSpace()
    assert isinstance(space, ArchSpace)
    assert len(space.choices) == len(space.decision_names)
    assert space.decision_names[:4] == ("s0.width", "s0.layers", "s0.b0.type", "s0.b0.kernel")
    assert space.choices[2] == ("dw", "fused", "gc/2", "gc/4")
    with pytest.raises(ProgramError, match="decisions"):
        space.decode((0,))
    with pytest.raises(ProgramError, match="s0.width must be an option index"):
        space.decode((5,) + (0,) * (len(space.choices) - 1))


def test_decode_of_the_middle_options_is_v3_like():
    space = MobileNetSpace()
    code = [0] * len(space.choices)
    for pos, name in enumerate(space.decision_names):
        if name.endswith(".width"):
            code[pos] = 1
    s = summary(space.decode(code))
    widths = [x.cout for x in to_layers(space.decode(code)) if x.name.endswith(".project")]
    assert widths == [16, 24, 40, 80, 112, 160]
    assert 0 < s["macs"] < 200e6


def test_samples_and_mutations_are_valid_and_round_trip():
    space = MobileNetSpace()
    rng = random.Random(1)
    changed: set[str] = set()
    for i in range(1000):
        p = space.sample(rng)
        code = space.encode(p)
        assert space.decode(code) == p
        if i % 10 == 0:  # a program read from a file is encoded from its structure
            assert space.encode(fileformat.loads(fileformat.dumps(p, compact=True))) == code
        assert space.encode(space.decode(code)) == code
        child, what = space.mutate(p, rng)
        assert child != p and space.fingerprint(child) != space.fingerprint(p), what
        assert space.decode(space.encode(child)) == child
        layers = space.layers(child)
        assert layers and summary(child)["macs"] > 0
        changed.add(what.split(":")[0].rsplit(".", 1)[-1])
    assert changed == {"width", "layers", "type", "kernel", "expansion", "se", "act"}


def test_mutation_and_sampling_are_deterministic():
    space = MobileNetSpace()

    def run(seed: int) -> list[str]:
        rng = random.Random(seed)
        p = space.sample(rng)
        out = []
        for _ in range(20):
            p, what = space.mutate(p, rng)
            out.append(what + fingerprint(p))
        return out

    assert run(3) == run(3) and run(3) != run(4)


def test_unused_slots_collapse():
    space = MobileNetSpace()
    rng = random.Random(7)
    code = [rng.randrange(len(c)) for c in space.choices]
    layers_pos = space.decision_names.index("s1.layers")
    code[layers_pos] = 0  # one layer: slots b1..b3 of stage 1 are unused
    other = list(code)
    other[space.decision_names.index("s1.b2.kernel")] ^= 1
    a, b = space.decode(code), space.decode(other)
    assert a == b and space.fingerprint(a) == space.fingerprint(b)
    canonical = space.canonical(code)
    assert space.encode(fileformat.loads(fileformat.dumps(a))) == canonical
    assert canonical[space.decision_names.index("s1.b2.kernel")] == 0


def test_growing_a_stage_repeats_its_last_layer():
    space = MobileNetSpace()
    code = [0] * len(space.choices)
    pos = space.decision_names.index("s2.layers")
    kernel = space.decision_names.index("s2.b0.kernel")
    code[kernel] = 2  # k=7
    p = space.decode(code)
    for seed in range(200):
        child, what = space.mutate(p, random.Random(seed))
        if what.startswith("s2.layers"):
            grown = space.encode(child)
            n = grown[pos] + 1
            assert all(grown[kernel + 5 * j] == 2 for j in range(n))
            return
    pytest.fail("no layers mutation in 200 draws")


def test_encode_rejects_foreign_programs():
    space = MobileNetSpace()
    with pytest.raises(ProgramError, match="not a program of the mobilenet space"):
        space.encode(builtin("mobilenetv2"))
    with pytest.raises(ProgramError, match="widths"):
        MobileNetSpace(stages=(Stage((10, 16), 1),))
