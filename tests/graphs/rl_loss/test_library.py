"""The built-in loss programs."""

from __future__ import annotations

import pytest

from graphs.core.errors import ProgramError
from graphs.core.render import formula
from graphs.rl_loss.library import BUILTINS, builtin
from graphs.rl_loss.ops import FLOAT, RL_LOSS

N_IN = len(RL_LOSS.inputs)


def test_the_expected_builtins_exist():
    assert set(BUILTINS) == {"dqn", "ddqn", "dqnreg", "dqnclipped", "cql", "skeleton"}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_is_valid(name):
    p = builtin(name)
    p.check()
    assert p.is_valid()
    assert p.opset is RL_LOSS
    assert p.inputs == RL_LOSS.inputs
    assert p.types[p.output] == FLOAT
    assert p.gradient_calls == (("Q", "s_t"),)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtins_are_fresh_but_equal(name):
    assert builtin(name) == BUILTINS[name]()
    assert builtin(name) is not builtin(name)


@pytest.mark.parametrize("spelling", ["DQN", "Dqn", "dQn", "dqn"])
def test_names_are_case_insensitive(spelling):
    assert builtin(spelling) == builtin("dqn")
    assert builtin(spelling) != builtin("ddqn")


def test_case_insensitive_for_every_builtin():
    for name in BUILTINS:
        assert builtin(name.upper()) == builtin(name)


def test_unknown_name_lists_close_matches():
    with pytest.raises(ProgramError) as err:
        builtin("dqm")
    msg = str(err.value)
    assert "unknown built-in program 'dqm'" in msg
    assert "did you mean" in msg
    close = msg.split("did you mean")[1].split("?")[0]
    assert "dqn" in close
    assert "skeleton" not in close
    for name in BUILTINS:
        assert name in msg  # the full list of known names


def test_unknown_name_without_close_matches():
    with pytest.raises(ProgramError) as err:
        builtin("zzzzzzzz")
    assert "did you mean" not in str(err.value)
    assert "known:" in str(err.value)


def test_non_string_name_raises_program_error():
    with pytest.raises(ProgramError):
        builtin(None)


def test_skeleton_has_four_frozen_nodes_and_outputs_q_sa():
    p = builtin("skeleton")
    assert len(p.nodes) == 4
    assert all(n.frozen for n in p.nodes)
    assert [n.op.name for n in p.nodes] == ["QValues", "Select", "QValues", "Max"]
    assert [formula(p, N_IN + k) for k in range(4)] == [
        "Q(s,·)", "Q(s,a)", "Qt(s',·)", "max_a' Qt(s',a')"]
    assert p.output == N_IN + 1
    assert formula(p) == "Q(s,a)"
    assert [p.ids[a] for a in p.node(N_IN + 0).args] == ["Q", "s_t"]
    assert [p.ids[a] for a in p.node(N_IN + 1).args] == ["n0", "a_t"]
    assert [p.ids[a] for a in p.node(N_IN + 2).args] == ["Q_targ", "s_tp1"]
    assert p.is_valid()


def test_dqn_has_seven_nodes():
    p = builtin("dqn")
    assert len(p.nodes) == 7
    assert len(p) == N_IN + 7
    assert [n.op.name for n in p.nodes] == [
        "QValues", "Select", "QValues", "Max", "Mul", "Add", "SqDist"]
    assert not any(n.frozen for n in p.nodes)
    assert all(p.live)


def test_node_counts_of_the_other_builtins():
    counts = {name: len(builtin(name).nodes) for name in BUILTINS}
    assert counts == {"dqn": 7, "ddqn": 9, "dqnreg": 10, "dqnclipped": 14, "cql": 12,
                      "skeleton": 4}


def test_ddqn_takes_the_target_action_from_the_online_net():
    p = builtin("ddqn")
    ops = [n.op.name for n in p.nodes]
    assert "ArgMax" in ops and "Max" not in ops
    argmax = p.node(N_IN + ops.index("ArgMax"))
    q_next = p.node(argmax.args[0])
    assert [p.ids[a] for a in q_next.args] == ["Q", "s_tp1"]
    assert set(p.param_calls) == {("Q", "s_t"), ("Q_targ", "s_tp1"), ("Q", "s_tp1")}
