"""Functional equivalence: structural hashes, canonical forms and FEC fingerprints."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import graphs.core.execute
from graphs.core.equivalence import (
    FEC,
    MODES,
    canonicalize,
    equivalent,
    node_hashes,
    structural_hash,
)
from graphs.core.errors import ProgramError
from graphs.core.execute import (
    STACKED,
    forward,
    gradients,
    probe_set_gradients,
    probe_set_outputs,
    probe_trace,
    stackable,
)
from graphs.core.mutation import Mutator
from graphs.core.program import Program
from graphs.core.validity import gradient_is_nonzero
from graphs.rl_loss.generation import from_scratch, seeded_program
from graphs.rl_loss.library import BUILTINS, builtin
from graphs.rl_loss.library import from_steps as build
from graphs.rl_loss.ops import RL_LOSS

N_IN = len(RL_LOSS.inputs)
REPO = Path(__file__).resolve().parents[3]
BOTH = pytest.mark.parametrize("mode", MODES)




# In builtin("dqn"): Q(s,a) is node 1, Y = r + γ·max_a' Qt(s',a') is node 5, and the
# loss SqDist(Q(s,a), Y) is node 6.
Q_SA, Y, LOSS = 1, 5, 6
TD = [
    ("QValues", "Q", "s_t"),  # 0
    ("Select", 0, "a_t"),  # 1
    ("QValues", "Q_targ", "s_tp1"),  # 2
    ("Max", 2),  # 3
    ("Mul", "gamma", 3),  # 4
    ("Add", "r_t", 4),  # 5
]


def dqn():
    return builtin("dqn")


def td(*steps, output=None):
    """The TD parts followed by ``steps``."""
    return build(TD + list(steps), output=output)


def same(a, b, mode):
    return FEC(mode)(a) == FEC(mode)(b)


def probe_named(name):
    (probe,) = [p for p in RL_LOSS.probes() if p.name == name]
    return probe


def test_library_dqn_matches_the_td_layout():
    assert dqn() == td(("SqDist", Q_SA, Y))


# -- what training mode merges and output mode does not ---------------------------------------
def test_dqn_plus_log_abs_target_is_equivalent_in_training_mode_only():
    plus_log = build([("Log", Y), ("Add", LOSS, 7)], base=dqn())
    plus_log.check()
    assert equivalent(dqn(), plus_log, "training")
    assert equivalent(dqn(), plus_log)  # training is the default mode
    assert not equivalent(dqn(), plus_log, "output")


@BOTH
def test_squared_td_error_is_sign_symmetric(mode):
    a = td(("Sub", Q_SA, Y), ("Square", 6))
    b = td(("Sub", Y, Q_SA), ("Square", 6))
    assert structural_hash(a) != structural_hash(b)
    assert same(a, b, mode)


def test_half_squared_td_error_is_equivalent_in_training_mode_only():
    squared = td(("Sub", Q_SA, Y), ("Square", 6))
    assert equivalent(dqn(), squared, "training")
    assert not equivalent(dqn(), squared, "output")


@BOTH
@pytest.mark.parametrize("other", ["dqnreg", "ddqn", "cql", "dqnclipped"])
def test_dqn_differs_from_other_builtins(other, mode):
    assert not equivalent(dqn(), builtin(other), mode)


@BOTH
def test_builtins_are_pairwise_distinct(mode):
    losses = [n for n in BUILTINS if n != "skeleton"]
    fps = {FEC(mode)(builtin(n)) for n in losses}
    assert len(fps) == len(losses)


def test_positive_scaling_is_equivalent_in_training_mode_only():
    tenth = build([("Tenth", LOSS)], base=dqn())
    assert equivalent(dqn(), tenth, "training")
    assert not equivalent(dqn(), tenth, "output")
    doubled = build([("Add", LOSS, LOSS)], base=dqn())
    assert equivalent(dqn(), doubled, "training")


@BOTH
def test_negative_scaling_is_not_equivalent(mode):
    # no zero constant: 0.1 - loss flips the sign of every gradient
    flipped = build([("Const0.1",), ("Sub", 7, LOSS)], base=dqn())
    scaled = build([("Const0.1",), ("Const0.5",), ("Sub", 7, 8), ("Mul", 9, LOSS)],
                   base=dqn())  # -0.4 * loss
    for p in (flipped, scaled):
        p.check()
        assert not equivalent(dqn(), p, mode)
    # ... while the same constant with a positive sign is training-equivalent
    positive = build([("Const0.1",), ("Const0.5",), ("Sub", 8, 7), ("Mul", 9, LOSS)],
                     base=dqn())  # 0.4 * loss
    assert equivalent(dqn(), positive, "training")


# -- structural canonicalization -------------------------------------------------------------
@BOTH
def test_dead_nodes_change_neither_hash_nor_fingerprint(mode):
    dead = build([("Tenth", "r_t"), ("Log", Y)], base=dqn(), output=LOSS)
    assert not dead.live[N_IN + 7] and not dead.live[N_IN + 8]
    assert dead != dqn()
    assert structural_hash(dead) == structural_hash(dqn())
    assert FEC(mode)(dead) == FEC(mode)(dqn())


COMMUTED = {
    "Add": (td(("SqDist", Q_SA, Y)),
            build(TD[:5] + [("Add", 4, "r_t"), ("SqDist", Q_SA, 5)])),
    "Mul": (td(("SqDist", Q_SA, Y)),
            build(TD[:4] + [("Mul", 3, "gamma"), ("Add", "r_t", 4), ("SqDist", Q_SA, 5)])),
    "Max2": (td(("Max2", Q_SA, Y)), td(("Max2", Y, Q_SA))),
    "Min2": (td(("Min2", Q_SA, Y)), td(("Min2", Y, Q_SA))),
    "SqDist": (td(("SqDist", Q_SA, Y)), td(("SqDist", Y, Q_SA))),
    "SqDist-list": (td(("SqDist", 0, 2)), td(("SqDist", 2, 0))),
}


@pytest.mark.parametrize("op", sorted(COMMUTED))
def test_commutative_argument_order_does_not_matter(op):
    a, b = COMMUTED[op]
    assert a != b
    assert structural_hash(a) == structural_hash(b)
    assert canonicalize(a) == canonicalize(b)
    for mode in MODES:
        assert same(a, b, mode)


NOT_COMMUTED = {
    "Sub": (td(("Sub", Q_SA, Y)), td(("Sub", Y, Q_SA))),
    "Div": (td(("Div", Q_SA, Y)), td(("Div", Y, Q_SA))),
    "KL": (td(("Softmax", 0), ("Softmax", 2), ("KL", 6, 7)),
           td(("Softmax", 0), ("Softmax", 2), ("KL", 7, 6))),
}


@pytest.mark.parametrize("op", sorted(NOT_COMMUTED))
def test_non_commutative_argument_order_matters(op):
    a, b = NOT_COMMUTED[op]
    assert structural_hash(a) != structural_hash(b)
    assert canonicalize(a) != canonicalize(b)
    if op != "Sub":  # Sub(x, y) = -Sub(y, x): the same for a *training* fingerprint
        assert not same(a, b, "training")
    assert not same(a, b, "output")


def test_canonical_form_has_no_dead_nodes():
    p = build([("Tenth", "r_t"), ("QValues", "Q", "s_tp1"), ("Log", Y)], base=dqn(),
              output=LOSS)
    c = canonicalize(p)
    assert all(c.live)  # inputs included: the DQN loss uses every input
    assert len(c.nodes) == 7
    assert c.output == len(c) - 1


def test_canonical_form_merges_duplicate_subexpressions():
    # Q(s,·) computed twice: once for Q(s,a), once for a second Q(s,a)
    p = build(TD + [("QValues", "Q", "s_t"), ("Select", 6, "a_t"), ("Sub", 7, Y),
                    ("Square", 8), ("Add", Q_SA, 9)])
    assert sum(n.op.name == "QValues" and n.args == (0, 2) for n in p.nodes) == 2
    c = canonicalize(p)
    assert sum(n.op.name == "QValues" and n.args == (0, 2) for n in c.nodes) == 1
    assert sum(n.op.name == "Select" for n in c.nodes) == 1
    assert len(c.nodes) == len(p.nodes) - 2
    assert structural_hash(c) == structural_hash(p)
    for mode in MODES:
        assert same(c, p, mode)


def test_reordered_programs_have_equal_canonical_forms():
    a = dqn()
    # the same loss with the target computed first and Add/Mul/SqDist arguments swapped
    b = build([
        ("QValues", "Q_targ", "s_tp1"),  # 0
        ("Max", 0),  # 1
        ("Mul", 1, "gamma"),  # 2
        ("Add", 2, "r_t"),  # 3
        ("QValues", "Q", "s_t"),  # 4
        ("Select", 4, "a_t"),  # 5
        ("Tenth", 5),  # 6 (dead)
        ("SqDist", 3, 5),  # 7
    ])
    assert a != b
    assert canonicalize(a) == canonicalize(b)
    assert structural_hash(a) == structural_hash(b)


def test_canonical_form_is_idempotent_and_keeps_fingerprints():
    mutator = Mutator()
    programs = [builtin(n) for n in BUILTINS] + [from_scratch(seed=s) for s in range(5)]
    p = seeded_program("dqn", 14, seed=0)
    for seed in range(150):
        p = mutator(p, seed)
        programs.append(p)
    fecs = {mode: FEC(mode) for mode in MODES}
    for p in programs:
        c = canonicalize(p)
        assert canonicalize(c) == c
        assert all(c.live[c.n_inputs:])
        assert structural_hash(c) == structural_hash(p)
        for mode, fec in fecs.items():
            # separate computations, not the structural-hash memo
            assert fec._compute(c) == fec._compute(p), (mode, p)


def test_canonical_form_keeps_frozen_flags():
    p = from_scratch(seed=1)
    c = canonicalize(p)
    frozen_live = sum(1 for i in range(N_IN, N_IN + 4) if p.live[i])
    assert sum(n.frozen for n in c.nodes) == frozen_live


_HASH_SCRIPT = """
import json
from graphs.core.equivalence import canonicalize, structural_hash
from graphs.rl_loss.generation import seeded_program
from graphs.rl_loss.library import BUILTINS, builtin
progs = [builtin(n) for n in sorted(BUILTINS)] + [seeded_program("dqn", 14, s) for s in range(5)]
print(json.dumps([[structural_hash(p), structural_hash(canonicalize(p))] for p in progs]))
"""


def test_structural_hash_is_stable_across_processes():
    progs = [builtin(n) for n in sorted(BUILTINS)] + [
        seeded_program("dqn", 14, s) for s in range(5)]
    here = [[structural_hash(p), structural_hash(canonicalize(p))] for p in progs]
    for hashseed in ("1", "987654"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        out = subprocess.run([sys.executable, "-c", _HASH_SCRIPT], env=env, cwd=REPO,
                             capture_output=True, text=True, check=True, timeout=60)
        assert json.loads(out.stdout) == here


def test_node_hashes_are_none_exactly_for_dead_nodes():
    p = build([("Tenth", "r_t")], base=dqn(), output=LOSS)
    hashes = node_hashes(p)
    for i in range(N_IN, len(p)):
        assert (hashes[i] is None) == (not p.live[i])


# -- output-mode fingerprints hash the whole vector ------------------------------------------
def test_output_fingerprint_hashes_the_vector_not_its_sum():
    centred = build([("MeanBatch", "r_t"), ("Sub", "r_t", 7), ("Add", LOSS, 8)], base=dqn())
    negated = build([("MeanBatch", "r_t"), ("Sub", 7, "r_t"), ("Add", LOSS, 8)], base=dqn())
    probe = probe_named("generic")  # rewards that vary
    outs = [forward(p, probe.feed, probe.net_outputs).output for p in (centred, negated)]
    assert np.isclose(outs[0].sum(), outs[1].sum(), rtol=1e-12)
    assert not np.allclose(outs[0], outs[1])
    assert not equivalent(centred, negated, "output")
    # a target-only term: both train exactly like DQN
    assert equivalent(centred, negated, "training")
    assert equivalent(centred, dqn(), "training")


def test_output_fingerprint_of_centred_reward_differs_from_its_negation():
    a = build([("MeanBatch", "r_t"), ("Sub", "r_t", 0)])
    b = build([("MeanBatch", "r_t"), ("Sub", 0, "r_t")])
    probe = probe_named("generic")
    sums = [forward(p, probe.feed).output.sum() for p in (a, b)]
    assert abs(sums[0]) < 1e-9 and abs(sums[1]) < 1e-9
    assert not equivalent(a, b, "output")


# -- random draws -----------------------------------------------------------------------------
TWO_DRAWS = [("Normal",), ("Normal",), ("Sub", 0, 1)]
ONE_DRAW = [("Normal",), ("Sub", 0, 0)]

def test_two_normal_draws_are_different_values():
    two, one = build(TWO_DRAWS), build(ONE_DRAW)
    probe = RL_LOSS.probes()[0]
    rng = np.random.default_rng(probe.seed)
    assert np.all(forward(two, probe.feed, rng=rng).output != 0)
    assert np.all(forward(one, probe.feed, rng=rng).output == 0)
    assert FEC("output")(two) != FEC("output")(one)  # separate memos


def test_normal_and_uniform_draws_are_distinct():
    n = build([("Normal",), ("Sub", 0, "r_t")])
    u = build([("Uniform",), ("Sub", 0, "r_t")])
    assert structural_hash(n) != structural_hash(u)


def test_two_normal_draws_are_structurally_distinct():
    two, one = build(TWO_DRAWS), build(ONE_DRAW)
    hashes = node_hashes(two)
    assert hashes[N_IN] != hashes[N_IN + 1]
    assert structural_hash(two) != structural_hash(one)


def test_canonicalize_keeps_two_draws_apart():
    assert len(canonicalize(build(TWO_DRAWS)).nodes) == 3


def test_shared_fec_distinguishes_two_draws_from_one():
    fec = FEC("output")
    assert fec(build(TWO_DRAWS)) != fec(build(ONE_DRAW))


def _one_draw_zero():
    return td(("Normal",), ("Sub", 6, 6), ("Mul", Q_SA, 7))  # Q(s,a) * (N - N) = 0


def _two_draws_valid():
    return td(("Normal",), ("Normal",), ("Sub", 6, 7), ("Mul", Q_SA, 8))  # Q(s,a)*(N1 - N2)


def test_validity_of_one_and_two_draw_programs_on_their_own(monkeypatch):
    monkeypatch.setattr(RL_LOSS.gradient_check, "memo", {})
    assert not _one_draw_zero().is_valid()
    monkeypatch.setattr(RL_LOSS.gradient_check, "memo", {})
    _two_draws_valid().check()


def test_zero_gradient_program_stays_invalid_after_a_colliding_valid_one(monkeypatch):
    monkeypatch.setattr(RL_LOSS.gradient_check, "memo", {})
    _two_draws_valid().check()
    assert not _one_draw_zero().is_valid()


def test_valid_program_stays_valid_after_a_colliding_zero_gradient_one(monkeypatch):
    monkeypatch.setattr(RL_LOSS.gradient_check, "memo", {})
    assert not _one_draw_zero().is_valid()
    _two_draws_valid().check()


# -- the fingerprint memo ---------------------------------------------------------------------
def _count_computes(monkeypatch):
    calls = []
    original = FEC._compute

    def counting(self, program):
        calls.append(program)
        return original(self, program)

    monkeypatch.setattr(FEC, "_compute", counting)
    return calls


@BOTH
def test_fingerprints_are_memoized_by_structural_hash(monkeypatch, mode):
    calls = _count_computes(monkeypatch)
    fec = FEC(mode)
    first = fec(dqn())
    assert len(calls) == 1
    assert fec(dqn()) == first
    assert len(calls) == 1
    # a different program with the same structure: still no recomputation
    assert fec(build([("Tenth", "r_t")], base=dqn(), output=LOSS)) == first
    assert fec(td(("SqDist", Y, Q_SA))) == first
    assert len(calls) == 1
    fec(builtin("dqnreg"))
    assert len(calls) == 2
    # another FEC instance has its own memo
    assert FEC(mode)(dqn()) == first
    assert len(calls) == 3


def test_fingerprint_memo_is_bounded(monkeypatch):
    calls = _count_computes(monkeypatch)
    fec = FEC("training", memo_size=3)
    programs = [seeded_program("dqn", 3, seed=s) for s in range(10)]
    assert len({structural_hash(p) for p in programs}) == 10
    for p in programs:
        fec(p)
        assert len(fec._memo) <= 3
    assert len(calls) == 10
    fec(programs[-1])  # still remembered
    assert len(calls) == 10
    fec(programs[0])  # evicted (least recently used): recomputed
    assert len(calls) == 11
    assert len(fec._memo) == 3


# -- modes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["outputs", "Training", "", None])
def test_unknown_mode_raises(mode):
    with pytest.raises(ProgramError, match="unknown FEC mode"):
        FEC(mode)
    with pytest.raises(ProgramError, match="unknown FEC mode"):
        equivalent(dqn(), dqn(), mode)


def test_fingerprints_of_the_two_modes_never_collide():
    assert FEC("training")(dqn()) != FEC("output")(dqn())


def _walk(n: int) -> list[Program]:
    mutator = Mutator()
    p = seeded_program("dqn", 14, seed=0)
    programs = []
    for seed in range(n):
        p = mutator(p, seed)
        programs.append(p)
    return programs


@pytest.fixture(scope="module")
def walk_fingerprints():
    programs = _walk(3_000)
    out, train = FEC("output"), FEC("training")
    return programs, [out(p) for p in programs], [train(p) for p in programs]


def test_training_mode_finds_at_least_as_many_duplicates(walk_fingerprints):
    programs, out, train = walk_fingerprints
    dup_out = len(programs) - len(set(out))
    dup_train = len(programs) - len(set(train))
    assert dup_out > 0
    assert dup_train >= dup_out
    assert dup_train > dup_out  # target-only terms and rescalings are common


def test_equal_output_fingerprints_almost_always_imply_equal_training_fingerprints(
    walk_fingerprints,
):
    # Not a strict implication: with outputs around 1e42 and beyond, float64 can make
    # variants that differ only in Q(s,a) vs Q(s',a) give bit-identical outputs while
    # their gradients (rightly) differ. Such splits must stay rare.
    _, out, train = walk_fingerprints
    classes = defaultdict(set)
    for o, t in zip(out, train):
        classes[o].add(t)
    split = [o for o, ts in classes.items() if len(ts) > 1]
    assert len(split) <= 0.01 * len(classes), f"{len(split)} of {len(classes)} classes split"


def test_equal_outputs_with_noise_gradients_are_training_equivalent():
    # 1e-11 * Q(s,a) and 1e-11 * max_a Q(s,a): outputs round to 0 and the gradients
    # (1e-12 per sample) are below the zero tolerance on every probe.
    a = td(*[("Tenth", Q_SA)] + [("Tenth", i) for i in range(6, 16)])
    b = td(("Max", 0), *[("Tenth", i) for i in range(6, 17)])
    assert equivalent(a, b, "output")
    assert equivalent(a, b, "training")


def test_small_but_real_gradients_are_not_noise():
    # x / (x + 1e-10) rounds to 1.0 everywhere, but its gradient 1e-10/x^2 is not
    # rounding noise: it has a consistent sign and grows as Q-values near 0, as they
    # do at the start of training (on the probes |Q| goes down to about 0.006, where
    # it is 3e-7 per sample). Pushing Q(s,a) or max Q(s,.) trains differently.
    a = td(("Div", Q_SA, Q_SA))
    b = td(("Max", 0), ("Div", 6, 6))
    assert equivalent(a, b, "output")
    assert not equivalent(a, b, "training")


# -- the probe set: no false merges (issue 11) -------------------------------------------------
def _times_loss(*steps):
    """DQN's loss times the FLOAT that ``steps`` (appended to DQN) end with."""
    p = build(list(steps), base=dqn())
    return build([("Mul", LOSS, len(p.nodes) - 1)], base=p)


FALSE_MERGES = {
    # zero gradient when all rewards are equal, as on CartPole
    "std_batch_r": lambda: _times_loss(("StdBatch", "r_t")),
    # the gradient flips its sign when the rewards are mostly negative
    "mean_batch_r": lambda: _times_loss(("MeanBatch", "r_t")),
    # zero gradient unless the batch holds a terminal transition
    "std_batch_gamma": lambda: _times_loss(("StdBatch", "gamma")),
    # the sign of the draw flips the gradient for half of the seeds
    "normal": lambda: _times_loss(("Normal",)),
    # a positive random factor: a different scale per update
    "uniform": lambda: _times_loss(("Uniform",)),
    # max(γ·max Qt(s',·), 0.5·δ²): at the magnitudes of training the first term
    # often wins, and the gradient is then 0
    "max_target": lambda: build([("Mul", "gamma", 3), ("Max2", 7, LOSS)], base=dqn()),
}


@BOTH
@pytest.mark.parametrize("name", sorted(FALSE_MERGES))
def test_data_dependent_factors_are_not_merged_with_dqn(name, mode):
    p = FALSE_MERGES[name]()
    p.check()
    assert not equivalent(dqn(), p, mode)


def test_sign_of_a_normal_draw_matters_in_output_mode():
    normal = _times_loss(("Normal",))
    abs_normal = _times_loss(("Normal",), ("Abs", 7))
    assert not equivalent(normal, abs_normal, "output")
    assert not equivalent(normal, abs_normal, "training")


CORRECT_MERGES = {
    # DQN's loss is SqDist = 0.5·δ²
    "delta_squared": lambda: td(("Sub", Q_SA, Y), ("Square", 6)),
    "twice": lambda: build([("Add", LOSS, LOSS)], base=dqn()),
    "plus_log_abs_r": lambda: build([("Log", "r_t"), ("Add", LOSS, 7)], base=dqn()),
    "mul_self": lambda: td(("Sub", Q_SA, Y), ("Mul", 6, 6)),
    "negated_squared": lambda: td(("Sub", Y, Q_SA), ("Square", 6)),
    "tenth": lambda: build([("Tenth", LOSS)], base=dqn()),
}


@pytest.mark.parametrize("name", sorted(CORRECT_MERGES))
def test_correct_merges_are_kept(name):
    assert equivalent(dqn(), CORRECT_MERGES[name](), "training")


@BOTH
def test_square_and_mul_self_are_equivalent(mode):
    assert same(td(("Sub", Q_SA, Y), ("Square", 6)), td(("Sub", Q_SA, Y), ("Mul", 6, 6)), mode)


def test_one_scale_for_the_whole_probe_set():
    # On each probe alone, δ²·U(0,1) is a positive multiple of δ² (per-probe
    # normalization would merge them); the multiple differs between probes.
    p = _times_loss(("Uniform",))
    ratios = []
    for probe in RL_LOSS.probes():
        g = gradients(p, probe)[("Q", "s_t")]
        ref = gradients(dqn(), probe)[("Q", "s_t")]
        k = float(np.sum(g * ref) / np.sum(ref * ref))
        assert k > 0 and np.allclose(g, k * ref, rtol=1e-9, atol=1e-12)
        ratios.append(k)
    assert max(ratios) > 1.5 * min(ratios)
    assert not equivalent(dqn(), p, "training")


def test_probe_set_covers_what_training_sees():
    probes = RL_LOSS.probes()
    assert len(probes) >= 3
    rewards = [p.feed["r_t"].ravel() for p in probes]
    gammas = [p.feed["gamma"].ravel() for p in probes]
    assert any(np.all(r == r[0]) for r in rewards)  # all rewards equal
    assert any(np.mean(r) < 0 for r in rewards)  # mostly negative rewards
    assert any(np.any(g == 0) for g in gammas)  # terminal transitions (γ = 0) ...
    assert any(np.all(g > 0) for g in gammas)  # ... and a batch without any
    for g in gammas:
        assert np.all((g >= 0) & (g <= 1))
    realistic = [p for p, r, g in zip(probes, rewards, gammas)
                 if set(r) <= {-1.0, 0.0, 1.0} and set(g) <= {0.0, 0.99}]
    assert any(len(set(p.feed["gamma"].ravel())) == 2 for p in realistic)
    for p in realistic:
        for key, q in p.net_outputs.items():
            assert 0.1 < np.mean(np.abs(q)) < 3, key  # Q-values of order 1
    # random-draw ops: every probe draws from its own seed, and the first draws of
    # N(0,1) do not all have the same sign
    assert len({p.seed for p in probes}) == len(probes)
    draws = np.array([[r.standard_normal() for _ in range(3)]
                      for r in (np.random.default_rng(p.seed) for p in probes)])
    assert all(len(set(np.sign(draws[:, j]))) == 2 for j in range(3))


# -- all probes in one pass --------------------------------------------------------------------
def _walk_programs(n, seed=3):
    mutator, rng = Mutator(), random.Random(seed)
    p, out = seeded_program("dqn", 14, seed=seed), []
    for _ in range(n):
        p = mutator(p, rng)
        out.append(p)
    return out


def _fresh(p):
    return Program(p.opset, p.nodes, p.inputs, p.output, p.ids[p.n_inputs:])


BATCH_OPS = [
    _times_loss(("StdBatch", "r_t")),
    build([("MeanBatch", LOSS)], base=dqn()),  # the gradient goes through the batch op
    build([("StdBatch", Q_SA), ("Mul", LOSS, 7)], base=dqn()),
    build([("MeanBatch", Q_SA), ("Square", 7), ("Add", LOSS, 8)], base=dqn()),
    build([("MeanBatch", Q_SA), ("StdBatch", 7), ("Add", 7, 8), ("Mul", LOSS, 9)],
          base=dqn()),  # a batch op of a batch value
    build([("Normal",), ("MeanBatch", 7), ("Add", 8, Q_SA), ("StdBatch", 9),
           ("MeanBatch", 9), ("Add", 10, 11), ("Mul", LOSS, 12)], base=dqn()),
    build([("Const0.5",), ("StdBatch", 7), ("MeanBatch", Q_SA), ("Add", 8, 9),
           ("Add", 10, LOSS)], base=dqn()),
    build([("MeanBatch", 0), ("Softmax", 7), ("Softmax", 0), ("KL", 8, 9),
           ("Add", 10, LOSS)], base=dqn()),
]


def _close(a, b):
    """Equal, but for rounding where a batch op sums a batch's gradient first."""
    return np.allclose(a, b, rtol=1e-12, atol=1e-15 * np.nanmax(np.abs(b), initial=1.0),
                       equal_nan=True)


def test_stacked_probe_gives_each_probes_results(monkeypatch):
    probes = RL_LOSS.probes()
    stacked, draws, batch_ops = RL_LOSS.stacked_probe(), 0, 0
    programs = _walk_programs(600) + BATCH_OPS + [_times_loss(("Normal",)),
                                                  _times_loss(("Uniform",))]
    for p in programs:
        p.check()
        assert stackable(p)
        mixes = any(op.mixes_rows for _, op, _ in p.plan)
        same_values = _close if mixes else partial(np.array_equal, equal_nan=True)
        draws += any(op.kind == "random" for _, op, _ in p.plan)
        batch_ops += mixes
        singles = [gradients(p, probe) for probe in probes]
        both = probe_set_gradients(_fresh(p))
        assert set(both) == set(gradients(p, stacked))
        for key, g in both.items():
            assert same_values(g, np.concatenate([s[key] for s in singles]))
        outs = [np.broadcast_to(forward(p, probe.feed, probe.net_outputs,
                                        np.random.default_rng(probe.seed)).output, (10, 1))
                for probe in probes]
        assert same_values(probe_set_outputs(_fresh(p)), np.concatenate(outs))
    assert draws > 2 and batch_ops > 30
    # ... and the same fingerprints as probe by probe
    fecs = {mode: [FEC(mode)._compute(_fresh(p)) for p in programs] for mode in MODES}
    monkeypatch.setattr(graphs.core.execute, "stackable", lambda program: False)
    for mode in MODES:
        assert [FEC(mode)._compute(_fresh(p)) for p in programs] == fecs[mode]


def test_stacked_probe_values_are_reused_exactly_after_an_edit():
    mutator, rng = Mutator(p=1.0), random.Random(5)
    cur, fec = seeded_program("dqn", 14, seed=5), FEC()
    for _ in range(300):
        fec(cur)
        probe_trace(cur, STACKED)
        child = mutator(cur, rng)
        values = probe_trace(child, STACKED).values
        fresh = probe_trace(_fresh(child), STACKED).values
        for x, y in zip(values, fresh):
            if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
                assert np.array_equal(x, y, equal_nan=True)
        cur = child


def test_validity_is_the_same_in_one_pass_and_probe_by_probe(monkeypatch):
    monkeypatch.setattr(RL_LOSS.gradient_check, "memo", {})
    seen = 0
    for p in _walk_programs(300, seed=8):
        for idx in range(p.n_inputs, len(p)):
            if p.types[idx] is not p.opset.output_type or not p.carries_gradient[idx]:
                continue
            q = p.with_output(idx)
            seen += 1
            assert gradient_is_nonzero(q) == gradient_is_nonzero(_fresh(q), memo=False)
    assert seen > 1000


# -- deep programs -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [500, 3000])
def test_deep_chains_are_canonicalized_and_fingerprinted(n):
    # Q(s,a) + 0.1*(Q(s,a) + 0.1*(...)), n nodes deep after DQN
    steps = [("Add", 6 + k, Q_SA) if k % 2 == 0 else ("Tenth", 6 + k) for k in range(n)]
    p = build(steps, base=dqn())
    c = canonicalize(p)
    assert len(c.nodes) == len(p.nodes)
    assert canonicalize(c) == c
    assert structural_hash(c) == structural_hash(p)
    for mode in MODES:
        assert FEC(mode)._compute(c) == FEC(mode)._compute(p)
