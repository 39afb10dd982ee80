"""The NB201 space: arch strings, the benchmark index, canonical forms, programs, NB201Space."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import random
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from graphs.arch import nb201
from graphs.arch.layers import count_macs, count_params
from graphs.arch.nb201 import (
    EDGES,
    N_ARCHS,
    OPS,
    NB201Space,
    arch_string,
    canonical,
    code_from_number,
    code_number,
    from_index,
    from_program,
    function_key,
    live_edges,
    network_layers,
    parse,
    program_dataset,
    to_index,
    to_program,
)
from graphs.arch.ops import ArchBuilder, ArchSpace, layer_op, op_spec, summary, to_layers
from graphs.core import fileformat
from graphs.core.errors import ProgramError
from graphs.core.program import Node, Program
from graphs.rl_loss import library

CSV = Path(__file__).resolve().parents[4] / "shared" / "data" / "nb201" / "nb201_accuracy.csv"
ALL_CODES = list(itertools.product(range(len(OPS)), repeat=len(EDGES)))
RESNET = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
          "skip_connect~2|")


def code_of(**edges: str) -> tuple[int, ...]:
    """A code from edges named like e10="nor_conv_3x3" (edge 1<-0); the rest are none."""
    code = [0] * len(EDGES)
    for key, op in edges.items():
        code[EDGES.index((int(key[1]), int(key[2])))] = OPS.index(op)
    return tuple(code)


# -- arch strings ------------------------------------------------------------------------
def test_arch_string_round_trip_for_every_code():
    strings = {arch_string(code) for code in ALL_CODES}
    assert len(strings) == N_ARCHS
    for code in ALL_CODES:
        assert parse(arch_string(code)) == code


@pytest.mark.parametrize("bad, words", [
    ("|nor_conv_3x3~0|+|none~0|none~1|", "2 '+'-separated"),
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "4 '+'-separated"),
    ("|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|", "lists 1 edge"),
    ("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", "'<op>~0'"),
    ("|nor_conv_3x3|+|none~0|none~1|+|none~0|none~1|none~2|", "'<op>~0'"),
    ("nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "start and end with '|'"),
    ("|nor_conv_3x4~0|+|none~0|none~1|+|none~0|none~1|none~2|", "did you mean 'nor_conv_3x3'"),
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NB201 op 'conv'"),
])
def test_malformed_arch_strings_say_what_is_wrong(bad, words):
    with pytest.raises(ProgramError) as err:
        parse(bad)
    assert words in str(err.value)


@pytest.mark.parametrize("bad", [(0, 1, 2), (0, 1, 2, 3, 4, 5), (0, 0, 0, 0, 0, 1.0), "x", None])
def test_malformed_codes_are_rejected(bad):
    with pytest.raises(ProgramError):
        to_index(bad)


# -- the benchmark index ------------------------------------------------------------------
def test_code_numbers_are_a_bijection():
    numbers = [code_number(code) for code in ALL_CODES]
    assert numbers == list(range(N_ARCHS))  # itertools.product order is base-5 order
    assert all(code_from_number(n) == code for n, code in zip(numbers, ALL_CODES))


def test_shipped_order_alone_gives_a_bijection():
    indices = [to_index(code) for code in ALL_CODES]
    assert sorted(indices) == list(range(N_ARCHS))
    for code, index in zip(ALL_CODES, indices):
        assert from_index(index) == code
    assert nb201.ORDER_PATH.stat().st_size < 40_000


def test_index_round_trip_against_the_benchmark_csv():
    if not CSV.exists():
        pytest.skip(f"{CSV} is missing (the shared NB201 data); the shipped ordering is "
                    "checked by test_shipped_order_alone_gives_a_bijection")
    with open(CSV, newline="") as f:
        rows = [(int(r["nb201_index"]), r["arch_str"]) for r in csv.DictReader(f)]
    assert len(rows) == N_ARCHS
    for index, arch in rows:
        assert to_index(arch) == index
        assert arch_string(from_index(index)) == arch
    assert to_index(RESNET) == 1


@pytest.mark.parametrize("bad", [-1, N_ARCHS, 10**9, 1.5, "3", True, None])
def test_out_of_range_indices_are_rejected(bad):
    with pytest.raises(ProgramError, match="NB201 index is an integer in"):
        from_index(bad)


def test_numpy_integer_indices_work():
    assert from_index(np.int64(1)) == parse(RESNET)


# -- equivalence ---------------------------------------------------------------------------
ZERO = (0,) * 6


def test_output_cut_off_by_none_edges_is_the_zero_cell():
    # Convs into nodes 1 and 2 but every edge into node 3 is none.
    cut = code_of(e10="nor_conv_3x3", e20="nor_conv_3x3", e21="avg_pool_3x3")
    assert live_edges(cut) == (False,) * 6
    assert canonical(cut) == ZERO
    assert function_key(cut) == "0"
    # Node 3 is fed only from node 2, whose inputs are all none.
    starved = code_of(e10="nor_conv_1x1", e32="nor_conv_3x3")
    assert canonical(starved) == ZERO


def test_dead_conv_into_a_node_that_reaches_nothing():
    base = code_of(e30="nor_conv_3x3")
    with_dead = code_of(e30="nor_conv_3x3", e10="nor_conv_3x3", e20="avg_pool_3x3",
                        e21="nor_conv_1x1")  # nodes 1 and 2 never reach node 3
    assert live_edges(with_dead) == (False, False, False, True, False, False)
    assert canonical(with_dead) == canonical(base) == base
    # An edge out of a node with no live input is dead too.
    no_input = code_of(e30="nor_conv_3x3", e31="nor_conv_3x3")
    assert canonical(no_input) == base


def test_live_edges_keep_real_paths():
    code = parse(RESNET)
    assert live_edges(code) == (True,) * 6
    assert canonical(code) == code


def test_nodes_one_and_two_swap_only_without_edge_two_from_one():
    a = code_of(e10="nor_conv_3x3", e20="avg_pool_3x3", e31="nor_conv_3x3", e32="skip_connect")
    b = code_of(e10="avg_pool_3x3", e20="nor_conv_3x3", e31="skip_connect", e32="nor_conv_3x3")
    assert canonical(a) == canonical(b)
    assert function_key(a) == function_key(b)
    # With an edge 2<-1 the nodes are ordered: no swap.
    c = code_of(e10="nor_conv_3x3", e20="avg_pool_3x3", e21="nor_conv_1x1", e31="nor_conv_3x3",
                e32="skip_connect")
    d = code_of(e10="avg_pool_3x3", e20="nor_conv_3x3", e21="nor_conv_1x1", e31="skip_connect",
                e32="nor_conv_3x3")
    assert canonical(c) != canonical(d)
    # A dead 2<-1 edge (node 2 does not reach the output) does not block the swap.
    e = code_of(e10="nor_conv_3x3", e31="nor_conv_3x3", e21="avg_pool_3x3")
    f = code_of(e20="nor_conv_3x3", e32="nor_conv_3x3")
    assert canonical(e) == canonical(f)


def test_different_functions_stay_apart():
    assert canonical(code_of(e30="nor_conv_3x3")) != canonical(code_of(e30="nor_conv_1x1"))
    serial = code_of(e10="nor_conv_3x3", e31="nor_conv_3x3")
    parallel = code_of(e30="nor_conv_3x3", e10="nor_conv_3x3", e31="skip_connect")
    assert canonical(serial) != canonical(parallel)
    assert function_key(serial) != function_key(parallel)


def test_function_key_treats_skip_as_identity():
    direct = code_of(e30="nor_conv_3x3")
    via_skip = code_of(e10="skip_connect", e31="nor_conv_3x3")
    assert canonical(direct) != canonical(via_skip)  # different graphs ...
    assert function_key(direct) == function_key(via_skip) == "nor_conv_3x3(x)"  # same function
    # Sums are multisets: conv(x) + conv(x) is not conv(x).
    twice = code_of(e30="nor_conv_3x3", e10="skip_connect", e31="nor_conv_3x3")
    assert function_key(twice) == "nor_conv_3x3(x) + nor_conv_3x3(x)"


def test_canonical_is_idempotent_and_refined_by_function_key():
    by_class = defaultdict(set)
    for code in ALL_CODES:
        canon = canonical(code)
        assert canonical(canon) == canon
        assert canonical(arch_string(code)) == canon
        by_class[canon].add(function_key(code))
    assert all(len(keys) == 1 for keys in by_class.values())


def test_number_of_equivalence_classes():
    # 15,625 codes; 8,765 cells up to dead edges and the 1<->2 swap; 4,930 functions once
    # skip_connect is the identity too. (NB201's own to_unique_str gives 6,466: it keeps
    # zero terms in sums and does not flatten sums passed through skip edges.)
    assert len({canonical(code) for code in ALL_CODES}) == 8765
    assert len({function_key(code) for code in ALL_CODES}) == 4930


def test_canonical_matches_brute_force_isomorphism():
    """Independent check: equal canonical forms <=> equal sets of live labelled edges up to
    relabelling nodes 1 and 2 (when that keeps every edge pointing forward)."""
    def live_graph(code):
        return frozenset((e, op) for e, op, alive in zip(EDGES, code, live_edges(code)) if alive)

    def relabel(graph):
        swap = {0: 0, 1: 2, 2: 1, 3: 3}
        moved = frozenset(((swap[d], swap[s]), op) for (d, s), op in graph)
        return moved if all(d > s for (d, s), _ in moved) else graph

    rng = random.Random(0)
    for _ in range(3000):
        a, b = rng.choice(ALL_CODES), rng.choice(ALL_CODES)
        r = rng.random()  # make equivalent pairs common
        if r < 0.3:
            b = tuple(op if alive else 0 for op, alive in zip(a, live_edges(a)))
        elif r < 0.6 and a[2] == 0:
            b = (a[1], a[0], 0, a[3], a[5], a[4])
        ga, gb = live_graph(a), live_graph(b)
        same = ga == gb or relabel(ga) == gb
        assert (canonical(a) == canonical(b)) == same, (a, b)


# -- programs ------------------------------------------------------------------------------
def fresh(program):
    """An equal program built anew (no cached decoding), with other node ids."""
    ids = [f"v{i}" for i in range(len(program.nodes))]
    return Program(program.opset, program.nodes, program.inputs, program.output, ids)


def _unnamed(layers):
    return Counter(dataclasses.replace(layer, name="") for layer in layers)


def test_cell_program_round_trip_for_every_code():
    programs = set()
    for code in ALL_CODES:
        program = to_program(code, level="cell")
        assert from_program(fresh(program)) == code
        programs.add(program)
    assert len(programs) == N_ARCHS


@pytest.mark.parametrize("dataset", sorted(nb201.DATASETS))
def test_network_program_round_trip_and_file_format(dataset):
    rng = random.Random(dataset)
    for code in rng.sample(ALL_CODES, 150):
        program = to_program(code, dataset)
        assert from_program(fresh(program)) == code
        assert program_dataset(fresh(program)) == (dataset, "network")
    loaded = fileformat.loads(fileformat.dumps(program))
    assert loaded == program and from_program(loaded) == code
    cell = to_program(code, dataset, level="cell")
    assert program_dataset(fileformat.loads(fileformat.dumps(cell))) == (None, "cell")
    assert program_dataset(cell) == (None, "cell")


def test_network_program_lowers_to_the_network_layers():
    """Same MACs and parameters as network_layers for every code checked; same layers
    except sums when a skip_connect leaves an identically-zero node."""
    rng = random.Random(1)
    codes = rng.sample(ALL_CODES, 300) + [parse(RESNET), (0,) * 6, (3,) * 6, (1,) * 6]
    exact = 0
    for code in codes:
        got, want = to_layers(to_program(code)), network_layers(code)
        assert count_macs(got) == count_macs(want) and count_params(got) == count_params(want)
        fed = {0: True, 1: False, 2: False}
        for (dst, src), op in zip(EDGES, code):
            if op != 0 and fed.get(src, False):
                fed[dst] = True
        skip_from_zero = any(op == 1 and not fed[src] for (_, src), op in zip(EDGES, code))
        if not skip_from_zero:
            assert _unnamed(got) == _unnamed(want), arch_string(code)
            exact += 1
        else:
            differ = (_unnamed(got) - _unnamed(want)) + (_unnamed(want) - _unnamed(got))
            assert all(layer.kind == "add" for layer in differ)
    assert exact > 200
    conv3 = summary(to_program((3,) * 6))  # the published size of the all-3x3 cell network
    assert round(conv3["macs"] / 1e6, 1) == 220.1 and round(conv3["params"] / 1e6, 2) == 1.53


def test_cell_program_structure():
    program = to_program(parse(RESNET), level="cell")
    kinds = [op_spec(node.op).kind for node in program.nodes]
    assert kinds == ["image", "conv", "conv", "avgpool", "add", "identity", "conv", "identity",
                     "add"]
    assert program.ids[program.output] == "node3"
    assert [layer.kind for layer in to_layers(program)].count("conv") == 3
    zero = to_program((0,) * 6, level="cell")
    assert to_layers(zero) == []


def _replace_node(program, i, op=None, args=None):
    nodes = list(program.nodes)
    node = nodes[i]
    nodes[i] = Node(op or node.op, node.args if args is None else args)
    return Program(program.opset, nodes, program.inputs, program.output,
                   program.ids[program.n_inputs:])


def test_from_program_rejects_other_programs():
    cell = to_program(parse(RESNET), level="cell")
    with pytest.raises(ProgramError, match="not an NB201 edge op"):
        from_program(_replace_node(cell, 1, op=layer_op("conv", k=5, c=16, act="relu",
                                                        bn=True)))
    with pytest.raises(ProgramError, match="expected add"):
        from_program(_replace_node(cell, 4, args=(1, 1)))
    network = to_program(parse(RESNET))
    with pytest.raises(ProgramError, match="no NB201 dataset"):
        from_program(_replace_node(network, len(network.nodes) - 1, op=layer_op("fc", c=7)))
    with pytest.raises(ProgramError, match="arch-op-set program"):
        from_program(library.builtin("dqn"))
    b = ArchBuilder(32)
    b.conv(b.image, k=3, c=16)
    with pytest.raises(ProgramError, match="too few"):
        from_program(b.build())


# -- the space -----------------------------------------------------------------------------
def test_space_is_an_arch_space_with_labelled_choices():
    space = NB201Space()
    assert isinstance(space, ArchSpace)
    assert space.choices == (OPS,) * 6
    assert space.decisions[0] == "edge 1<-0" and space.decisions[-1] == "edge 3<-2"
    with pytest.raises(ProgramError, match="did you mean 'cifar100'"):
        NB201Space("cifar1000")
    with pytest.raises(ProgramError, match="equivalence"):
        NB201Space(equivalence="exact")


def test_space_validity_over_1000_mutations():
    space = NB201Space("cifar100")
    rng = random.Random(7)
    program = space.sample(rng)
    positions = Counter()
    for step in range(1000):
        child, what = space.mutate(program, rng)
        parent_code, code = space.encode(program), space.encode(child)
        changed = [i for i in range(6) if parent_code[i] != code[i]]
        assert len(changed) == 1
        dst, src = EDGES[changed[0]]
        assert what == (f"edge {dst}<-{src}: {OPS[parent_code[changed[0]]]} -> "
                        f"{OPS[code[changed[0]]]}")
        assert space.decode(code) == child
        assert to_index(code) == space.index(child)
        assert space.layers(child) == network_layers(code, "cifar100")
        if step % 10 == 0:
            assert summary(child)["params"] == count_params(space.layers(child))
        assert space.fingerprint(child) == space.fingerprint(fresh(child))
        positions[changed[0]] += 1
        program = child
    # NATS-Bench picks a node, then one of its edges: edge 1<-0 a third of the time.
    assert 280 < positions[0] < 390
    assert all(60 < positions[p] < 160 for p in (3, 4, 5))


def test_space_is_deterministic_given_the_rng():
    space = NB201Space()

    def run(seed):
        rng = random.Random(seed)
        program, trail = space.sample(rng), []
        for _ in range(50):
            program, what = space.mutate(program, rng)
            trail.append((space.encode(program), what))
        return trail

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_sampling_is_uniform_over_codes():
    space = NB201Space()
    rng = random.Random(0)
    counts = Counter()
    for _ in range(2000):
        for pos, op in enumerate(space.encode(space.sample(rng))):
            counts[pos, op] += 1
    assert all(320 < counts[pos, op] < 480 for pos in range(6) for op in range(5))


def test_uniform_edge_mutation():
    space = NB201Space(uniform_edges=True)
    rng = random.Random(2)
    program, positions = space.sample(rng), Counter()
    for _ in range(1200):
        child, _ = space.mutate(program, rng)
        positions[next(i for i, (a, b) in enumerate(zip(space.encode(program),
                                                        space.encode(child))) if a != b)] += 1
        program = child
    assert all(140 < positions[p] < 260 for p in range(6))


def test_space_fingerprints_follow_the_equivalence():
    graph, function = NB201Space(), NB201Space(equivalence="function")
    a = code_of(e10="nor_conv_3x3", e20="avg_pool_3x3", e31="nor_conv_3x3", e32="skip_connect")
    b = code_of(e10="avg_pool_3x3", e20="nor_conv_3x3", e31="skip_connect", e32="nor_conv_3x3")
    direct, via_skip = code_of(e30="nor_conv_3x3"), code_of(e10="skip_connect",
                                                           e31="nor_conv_3x3")
    fp = graph.fingerprint
    assert fp(graph.decode(a)) == fp(graph.decode(b))
    assert fp(graph.decode(direct)) != fp(graph.decode(via_skip))
    assert fp(graph.decode(direct)) != fp(graph.decode(code_of(e30="nor_conv_1x1")))
    ffp = function.fingerprint
    assert ffp(function.decode(direct)) == ffp(function.decode(via_skip))


def test_space_rejects_programs_of_other_datasets_and_levels():
    space = NB201Space("cifar10")
    with pytest.raises(ProgramError, match="got a imagenet16-120 network"):
        space.encode(to_program(parse(RESNET), "imagenet16-120"))
    with pytest.raises(ProgramError, match="got a cell program"):
        space.fingerprint(to_program(parse(RESNET), level="cell"))
