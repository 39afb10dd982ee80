"""Program construction, validation messages, identity, liveness and editing."""

from __future__ import annotations

import numpy as np
import pytest

from graphs.core.errors import ProgramError
from graphs.core.execute import forward
from graphs.core.program import Node, Program
from graphs.core.render import formula
from graphs.rl_loss.library import builtin
from graphs.rl_loss.library import from_steps as build
from graphs.rl_loss.ops import FLOAT, LIST, RL_LOSS, make_probe

N_IN = len(RL_LOSS.inputs)
IDX = {inp.name: i for i, inp in enumerate(RL_LOSS.inputs)}
Q_SA = [("QValues", "Q", "s_t"), ("Select", 0, "a_t")]  # Q(s,a) is step 1




def node(op, *args):
    return Node(RL_LOSS.op(op), tuple(IDX[a] if isinstance(a, str) else a for a in args))


# -- construction errors ----------------------------------------------------------------
def test_type_mismatch_names_the_node_and_the_accepted_signatures():
    with pytest.raises(ProgramError) as err:
        build([("QValues", "Q", "s_t"), ("Select", 0, "r_t")])
    assert err.value.where == "node 'n1'"
    msg = str(err.value)
    assert "node 'n1'" in msg
    assert "Select does not accept (LIST, FLOAT)" in msg
    assert "(LIST, ACTION) -> FLOAT" in msg


def test_type_mismatch_uses_custom_node_ids():
    with pytest.raises(ProgramError) as err:
        build([("QValues", "Q", "s_t"), ("Max", "r_t")], ids=["q_all", "bad_max"])
    assert err.value.where == "node 'bad_max'"
    assert "Max does not accept (FLOAT)" in str(err.value)
    assert "(LIST) -> FLOAT" in str(err.value)


def test_type_mismatch_lists_every_signature_of_a_broadcasting_op():
    with pytest.raises(ProgramError) as err:
        build([("Add", "r_t", "a_t")])
    msg = str(err.value)
    assert "Add does not accept (FLOAT, ACTION)" in msg
    for sig in RL_LOSS.op("Add").signatures:
        assert repr(sig) in msg


def test_forward_reference_is_rejected():
    nodes = [node("Add", "r_t", N_IN + 1), node("Tenth", "r_t")]
    with pytest.raises(ProgramError) as err:
        Program(RL_LOSS, nodes)
    assert err.value.where == "node 'n0'"
    assert f"index {N_IN + 1}" in str(err.value)
    assert "acyclic" in str(err.value)


def test_self_reference_is_rejected():
    with pytest.raises(ProgramError) as err:
        Program(RL_LOSS, [node("Tenth", "r_t"), node("Add", N_IN, N_IN + 1)])
    assert err.value.where == "node 'n1'"
    assert "itself" in str(err.value)
    assert "acyclic" in str(err.value)


def test_negative_argument_index_is_rejected():
    with pytest.raises(ProgramError, match="index -1"):
        Program(RL_LOSS, [Node(RL_LOSS.op("Tenth"), (-1,))])


@pytest.mark.parametrize("op, args, want", [
    ("Add", ("r_t",), "Add takes 2 argument(s), got 1"),
    ("Tenth", ("r_t", "gamma"), "Tenth takes 1 argument(s), got 2"),
    ("Const0.5", ("r_t",), "Const0.5 takes 0 argument(s), got 1"),
])
def test_wrong_arity_is_rejected(op, args, want):
    with pytest.raises(ProgramError) as err:
        Program(RL_LOSS, [node("Tenth", "r_t"), node(op, *args)])
    assert err.value.where == "node 'n1'"
    assert want in str(err.value)


def test_other_malformed_programs():
    with pytest.raises(ProgramError, match="at least one"):
        Program(RL_LOSS, [])
    with pytest.raises(ProgramError, match="not an operator node"):
        Program(RL_LOSS, [node("Tenth", "r_t")], output=IDX["r_t"])
    with pytest.raises(ProgramError, match="not an operator node"):
        Program(RL_LOSS, [node("Tenth", "r_t")], output=N_IN + 1)
    with pytest.raises(ProgramError, match="node ids"):
        Program(RL_LOSS, [node("Tenth", "r_t")], ids=["a", "b"])


# -- validation -------------------------------------------------------------------------------
def test_output_must_be_float():
    p = build([("QValues", "Q", "s_t")])
    assert p.types[p.output] == LIST
    with pytest.raises(ProgramError) as err:
        p.check()
    assert "output must be FLOAT, but it is LIST" in str(err.value)
    assert err.value.where == "node 'n0'"
    assert not p.is_valid(numeric=False)


def test_output_through_argmax_only_is_rejected():
    # Select(Qt(s',·), ArgMax(Q(s,·))): Q matters only through ArgMax
    p = build([("QValues", "Q_targ", "s_tp1"), ("QValues", "Q", "s_t"), ("ArgMax", 1),
               ("Select", 0, 2)])
    assert p.types[p.output] == FLOAT
    assert ("Q", "s_t") in p.param_calls
    assert p.gradient_calls == ()
    assert not p.carries_gradient[p.output]
    with pytest.raises(ProgramError) as err:
        p.check(numeric=False)
    assert "gradient" in str(err.value)
    assert "ArgMax" in str(err.value)
    assert not p.is_valid(numeric=False)
    assert not p.is_valid()


@pytest.mark.parametrize("steps", [
    [("Add", "r_t", "gamma")],
    [("QValues", "Q_targ", "s_t"), ("Select", 0, "a_t")],
    [("QValues", "Q_targ", "s_tp1"), ("Max", 0), ("SqDist", 1, "r_t")],
], ids=["inputs_only", "target_net", "target_td"])
def test_output_without_the_online_net_is_rejected(steps):
    p = build(steps)
    with pytest.raises(ProgramError) as err:
        p.check(numeric=False)
    assert "does not depend on the trainable input(s) Q" in str(err.value)
    assert not p.is_valid(numeric=False)


CANCELLING = {
    "sub_add": Q_SA + [("Add", 1, "r_t"), ("Sub", 2, 1)],
    "sqdist_self": Q_SA + [("SqDist", 1, 1)],
    "std_shift": Q_SA + [("QValues", "Q_targ", "s_tp1"), ("Add", 1, 2), ("Std", 3)],
    "sub_self_list": [("QValues", "Q", "s_t"), ("Sub", 0, 0), ("Sum", 1)],
}


@pytest.mark.parametrize("name", sorted(CANCELLING))
def test_exactly_cancelling_gradient_fails_only_the_numeric_check(name):
    p = build(CANCELLING[name])
    assert p.carries_gradient[p.output]
    assert p.gradient_calls == (("Q", "s_t"),)
    assert p.is_valid(numeric=False)
    p.check(numeric=False)
    assert not p.is_valid()
    with pytest.raises(ProgramError) as err:
        p.check()
    assert "identically zero" in str(err.value)


@pytest.mark.parametrize("steps", [
    Q_SA + [("Add", 1, "r_t"), ("Tenth", 1), ("Sub", 2, 3)],
    Q_SA + [("QValues", "Q_targ", "s_tp1"), ("Add", 1, 2), ("Max", 3)],
    Q_SA + [("QValues", "Q_targ", "s_tp1"), ("MulFloat", 1, 2), ("Std", 3)],
], ids=["sub_tenth", "max_shift", "std_scale"])
def test_similar_programs_with_a_real_gradient_pass(steps):
    assert build(steps).is_valid()


def test_numeric_check_uses_the_probes():
    p = build(CANCELLING["sub_add"])
    for probe in RL_LOSS.probes():
        trace = forward(p, probe.feed, probe.net_outputs)
        assert np.all(np.isfinite(trace.output))
    probe = make_probe(0)
    assert probe.feed["s_t"].shape == (10, 4)
    assert probe.net_outputs[("Q", "s_t")].shape == (10, 4)


# -- identity ---------------------------------------------------------------------------------
def test_programs_are_equal_and_hashable_by_structure():
    a, b = builtin("dqn"), builtin("dqn")
    assert a is not b
    assert a == b and hash(a) == hash(b)
    assert a != builtin("ddqn")
    assert len({a, b, builtin("ddqn")}) == 2
    assert {a: 1}[b] == 1
    steps = Q_SA + [("Tenth", 1)]
    assert build(steps) == build(steps)
    assert build(steps) != build(steps, ids=["x", "y", "z"])
    assert build(steps) != build(steps, frozen=(0,))
    assert build(steps) != build(steps, output=1)
    assert build(steps) != build(Q_SA + [("Square", 1)])
    assert a != "dqn"


# -- liveness ---------------------------------------------------------------------------------
def test_live_and_plan_skip_dead_nodes():
    steps = Q_SA + [("QValues", "Q_targ", "s_tp1"), ("Max", 2), ("Tenth", 1), ("Square", 1)]
    p = build(steps, output=4)  # Tenth(Q(s,a)); Qt, max and Square are dead
    live = p.live
    assert len(live) == len(p) == N_IN + 6
    dead = {N_IN + 2, N_IN + 3, N_IN + 5, IDX["Q_targ"], IDX["s_tp1"], IDX["r_t"],
            IDX["gamma"]}
    assert {i for i in range(len(p)) if not live[i]} == dead
    assert [idx for idx, _, _ in p.plan] == [N_IN + 0, N_IN + 1, N_IN + 4]
    assert [op.name for _, op, _ in p.plan] == ["QValues", "Select", "Tenth"]
    # dead nodes are not computed, and dead inputs need not be fed
    feed = {k: v for k, v in make_probe(1, scale=1.0).feed.items()
            if k in ("Q", "s_t", "a_t")}
    trace = forward(p, feed)
    assert all(trace.values[i] is None for i in dead)
    assert trace.output.shape == (10, 1)
    with pytest.raises(KeyError, match="a_t"):
        forward(p, {"Q": feed["Q"], "s_t": feed["s_t"]})


def test_skeleton_liveness():
    p = builtin("skeleton")
    assert [op.name for _, op, _ in p.plan] == ["QValues", "Select"]
    assert p.live[N_IN + 2] is False and p.live[N_IN + 3] is False
    assert p.param_calls == (("Q", "s_t"),)


def test_types_and_gradient_flags_of_dqn():
    p = builtin("dqn")
    names = [t.name for t in p.types[N_IN:]]
    assert names == ["LIST", "FLOAT", "LIST", "FLOAT", "FLOAT", "FLOAT", "FLOAT"]
    carries = p.carries_gradient[N_IN:]
    assert carries == (True, True, False, False, False, False, True)
    assert not any(p.carries_gradient[:N_IN])


def test_index_and_describe():
    p = builtin("dqn")
    assert p.index("r_t") == IDX["r_t"]
    assert p.index("n6") == p.output == N_IN + 6
    assert p.node(p.output).op.name == "SqDist"
    assert p.describe(IDX["gamma"]) == "input 'gamma'"
    assert p.describe(N_IN + 1) == "node 'n1'"
    with pytest.raises(ProgramError, match="nope"):
        p.index("nope")


# -- editing ----------------------------------------------------------------------------------
def test_replace_node():
    p = builtin("dqn")
    q_sa, y = N_IN + 1, N_IN + 5
    new = p.replace_node(p.output, node("Sub", q_sa, y))
    assert formula(new) == "Q(s,a) - (r + γ*max_a' Qt(s',a'))"
    assert new.ids == p.ids and new.output == p.output
    assert new.node(new.output).op.name == "Sub"
    assert new != p
    assert p.node(p.output).op.name == "SqDist"  # the original is unchanged
    assert new.is_valid()
    # making the target part dead
    shorter = p.replace_node(p.output, node("Tenth", q_sa))
    assert not shorter.live[y]
    assert len(shorter.plan) == 3
    with pytest.raises(ProgramError, match="does not accept"):
        p.replace_node(p.output, node("Max", q_sa))
    with pytest.raises(ProgramError, match="itself"):
        p.replace_node(p.output, node("Tenth", p.output))


def test_with_output():
    p = builtin("dqn")
    q = p.with_output(N_IN + 1)
    assert q.output == N_IN + 1
    assert formula(q) == "Q(s,a)"
    assert q.nodes == p.nodes and q.ids == p.ids
    assert q.is_valid()
    assert len(q.plan) == 2
    assert p.output == N_IN + 6
    lst = p.with_output(N_IN)
    assert lst.types[lst.output] == LIST
    assert not lst.is_valid()
    with pytest.raises(ProgramError, match="not an operator node"):
        p.with_output(IDX["r_t"])
