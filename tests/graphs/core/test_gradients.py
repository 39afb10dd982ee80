"""End-to-end backward pass: d(mean loss)/d(network outputs) against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from graphs.core.execute import backward, forward, gradients
from graphs.rl_loss.library import BUILTINS, builtin
from graphs.rl_loss.library import from_steps as build
from graphs.rl_loss.ops import RL_LOSS, RandomMLP

B, D, A = 8, 4, 4
H = 1e-6
RTOL, ATOL = 1e-5, 1e-7
KEYS = [(n, s) for n in ("Q", "Q_targ") for s in ("s_t", "s_tp1")]




# Q(s,a) is step 1 and the TD target Y = r + γ·max_a' Qt(s',a') is step 5.
TD = [
    ("QValues", "Q", "s_t"),  # 0
    ("Select", 0, "a_t"),  # 1
    ("QValues", "Q_targ", "s_tp1"),  # 2
    ("Max", 2),  # 3
    ("Mul", "gamma", 3),  # 4
    ("Add", "r_t", 4),  # 5
]
DQN = TD + [("SqDist", 1, 5)]  # 6

HAND_MADE = {
    "meanbatch": DQN + [("MeanBatch", 1), ("Sub", 1, 7), ("Square", 8), ("Add", 6, 9)],
    "meanbatch_list": TD + [("MeanBatch", 0), ("Select", 6, "a_t"), ("SqDist", 7, 5)],
    "meanbatch_output": DQN + [("MeanBatch", 6)],
    "stdbatch": DQN + [("StdBatch", 1), ("Add", 6, 7)],
    "stdbatch_list": TD + [("StdBatch", 0), ("Std", 6), ("Sub", 1, 5), ("Mul", 8, 7)],
    "softmax_kl": TD + [("Softmax", 0), ("Softmax", 2), ("KL", 6, 7), ("KL", 7, 6),
                        ("Add", 8, 9)],
    "entropy": DQN + [("Softmax", 0), ("Entropy", 7), ("Add", 6, 8)],
    "logsumexp": TD + [("MulFloat", "gamma", 0), ("LogSumExp", 6), ("Sub", 7, 1)],
    "div": DQN + [("Sub", 1, 5), ("Abs", 5), ("Const0.5",), ("Add", 8, 9), ("Div", 7, 10),
                  ("Square", 11), ("Abs", 1), ("Add", 13, 9), ("Div", "r_t", 14),
                  ("Add", 12, 15)],
    "div_list": TD + [("Abs", 2), ("Const0.5",), ("MulFloat", 7, 0), ("Add", 6, 7),
                      ("Div", 8, 9), ("Sum", 10)],
    "exp": [("QValues", "Q", "s_t"), ("Const0.5",), ("MulFloat", 1, 0), ("Exp", 2),
            ("Mean", 3), ("Select", 0, "a_t"), ("Exp", 5), ("Sub", 4, 6)],
    "mulfloat_maxfloat": TD + [("MulFloat", "gamma", 0), ("MaxFloat", "r_t", 6), ("Sum", 7),
                               ("MaxFloat", 1, 2), ("Mean", 9), ("Add", 8, 10)],
    "max2_min2_list": TD + [("Max2", 0, 2), ("Min2", 0, 2), ("Sub", 6, 7), ("Square", 8),
                            ("Sum", 9)],
    "log_abs": DQN + [("Log", 1), ("Abs", 5), ("Mul", 7, 8), ("Add", 6, 9)],
    "mean_sum_std_actions": [("QValues", "Q", "s_t"), ("Mean", 0), ("Sum", 0), ("Std", 0),
                             ("Mul", 1, 3), ("Sub", 2, 4), ("Square", 5)],
    # 0.5*(Q(s',a) - r)^2 + DQN: the online net on s' with a gradient path
    "q_next_gradient": DQN + [("QValues", "Q", "s_tp1"), ("Select", 7, "a_t"),
                              ("SqDist", 8, "r_t"), ("Add", 9, 6)],
    # Q(s',·) used both through ArgMax (no gradient) and Select (gradient)
    "q_next_shared_argmax": [("QValues", "Q", "s_tp1"), ("ArgMax", 0), ("Select", 0, 1),
                             ("QValues", "Q", "s_t"), ("Select", 3, "a_t"),
                             ("Mul", "gamma", 2), ("Add", "r_t", 5), ("SqDist", 4, 6)],
    # the same application in two nodes: gradients must add up
    "duplicate_apply": [("QValues", "Q", "s_t"), ("QValues", "Q", "s_t"),
                        ("Select", 0, "a_t"), ("Max", 1), ("Sub", 3, 2), ("Square", 4)],
    "random_constants": DQN + [("Normal",), ("Square", 7), ("Mul", 8, 6), ("Uniform",),
                               ("Add", 9, 10)],
    "kl_broadcast": [("QValues", "Q", "s_t"), ("MeanBatch", 0), ("Softmax", 1),
                     ("QValues", "Q_targ", "s_tp1"), ("Softmax", 3), ("KL", 2, 4),
                     ("KL", 4, 2), ("Add", 5, 6)],
}


def make_inputs(seed, hidden=16):
    """A random batch (states, rewards N(0,1), γ in [0,1]), two random MLPs, and every
    network application precomputed."""
    rng = np.random.default_rng(seed)
    feed = {
        "Q": RandomMLP(rng, (D, hidden, A)),
        "a_t": rng.integers(0, A, size=B),
        "s_t": rng.standard_normal((B, D)),
        "Q_targ": RandomMLP(rng, (D, hidden, A)),
        "s_tp1": rng.standard_normal((B, D)),
        "r_t": rng.standard_normal((B, 1)),
        "gamma": rng.uniform(0.0, 1.0, (B, 1)),
    }
    outs = {(n, s): feed[n](feed[s]) for n, s in KEYS}
    return feed, outs


def finite_difference(program, feed, outs, key):
    """Central differences of the mean loss with respect to each entry of outs[key]."""
    base = outs[key]
    grad = np.zeros_like(base)
    for j in np.ndindex(base.shape):
        vals = []
        for step in (H, -H):
            x = base.copy()
            x[j] += step
            vals.append(forward(program, feed, {**outs, key: x}).loss)
        grad[j] = (vals[0] - vals[1]) / (2 * H)
    return grad


def check_gradients(program, seed):
    feed, outs = make_inputs(seed)
    trace = forward(program, feed, outs)
    assert np.isfinite(trace.loss)
    grads = backward(trace)
    assert set(grads) == set(program.gradient_calls)
    assert len(grads) > 0
    assert all(net == "Q" for net, _ in grads), "only the trainable net gets gradients"
    for key, g in grads.items():
        assert np.shape(g) == outs[key].shape, key
        numeric = finite_difference(program, feed, outs, key)
        np.testing.assert_allclose(g, numeric, rtol=RTOL, atol=ATOL, err_msg=str(key))
        assert np.any(np.abs(numeric) > 1e-6), f"{key}: test is vacuous"
    # applications of Q that are used without a gradient path (e.g. only via ArgMax)
    # really do not change the loss locally
    for key in program.param_calls:
        if key[0] == "Q" and key not in grads:
            numeric = finite_difference(program, feed, outs, key)
            np.testing.assert_allclose(numeric, 0.0, atol=ATOL, err_msg=str(key))
    return grads


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_gradients_match_finite_differences(name, seed):
    check_gradients(builtin(name), seed)


def _hand_made_params():
    for name, steps in HAND_MADE.items():
        yield pytest.param(name, steps, id=name)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name, steps", list(_hand_made_params()))
def test_hand_made_gradients_match_finite_differences(name, steps, seed):
    program = build(steps)
    check_gradients(program, seed)


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_hand_made_programs_are_valid(name):
    program = build(HAND_MADE[name])
    program.check()
    assert program.types[program.output].name == "FLOAT"


def test_gradient_keys_of_programs_using_q_on_next_state():
    p = build(HAND_MADE["q_next_gradient"])
    assert set(p.gradient_calls) == {("Q", "s_t"), ("Q", "s_tp1")}
    p = build(HAND_MADE["q_next_shared_argmax"])
    assert set(p.gradient_calls) == {("Q", "s_t"), ("Q", "s_tp1")}
    grads = check_gradients(p, 3)
    assert set(grads) == {("Q", "s_t"), ("Q", "s_tp1")}


def test_ddqn_argmax_application_gets_no_gradient():
    p = builtin("ddqn")
    assert ("Q", "s_tp1") in p.param_calls
    assert ("Q", "s_tp1") not in p.gradient_calls
    assert p.gradient_calls == (("Q", "s_t"),)
    grads = check_gradients(p, 5)
    assert set(grads) == {("Q", "s_t")}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_target_net_never_gets_a_gradient(name):
    p = builtin(name)
    assert all(net != "Q_targ" for net, _ in p.gradient_calls)
    for probe in RL_LOSS.probes():
        grads = gradients(p, probe)
        assert set(grads) == set(p.gradient_calls)
        assert all(net != "Q_targ" for net, _ in grads)


def test_duplicate_applications_accumulate():
    p = build(HAND_MADE["duplicate_apply"])
    assert p.gradient_calls == (("Q", "s_t"),)
    feed, outs = make_inputs(11)
    g = backward(forward(p, feed, outs))[("Q", "s_t")]
    # d/dQ of (max Q - Q(s,a))^2 has entries at both the argmax and the taken action
    q = outs[("Q", "s_t")]
    rows = np.arange(B)
    delta = q.max(axis=1) - q[rows, feed["a_t"]]
    expected = np.zeros_like(q)
    expected[rows, q.argmax(axis=1)] += 2 * delta / B
    expected[rows, feed["a_t"]] -= 2 * delta / B
    np.testing.assert_allclose(g, expected, atol=1e-12)


def test_dqn_gradient_has_closed_form():
    feed, outs = make_inputs(4)
    g = backward(forward(builtin("dqn"), feed, outs))[("Q", "s_t")]
    q, qt = outs[("Q", "s_t")], outs[("Q_targ", "s_tp1")]
    rows, a = np.arange(B), feed["a_t"]
    y = feed["r_t"][:, 0] + feed["gamma"][:, 0] * qt.max(axis=1)
    expected = np.zeros_like(q)
    expected[rows, a] = (q[rows, a] - y) / B
    np.testing.assert_allclose(g, expected, atol=1e-12)


def test_nets_are_called_when_outputs_are_not_precomputed():
    feed, outs = make_inputs(2)
    for name in BUILTINS:
        p = builtin(name)
        with_outs = forward(p, feed, outs)
        without = forward(p, feed)
        assert with_outs.loss == pytest.approx(without.loss, rel=1e-12)
        g1, g2 = backward(with_outs), backward(without)
        assert set(g1) == set(g2)
        for key in g1:
            np.testing.assert_allclose(g1[key], g2[key], rtol=1e-12)


def test_precomputed_outputs_take_precedence():
    p = builtin("skeleton")
    feed, outs = make_inputs(6)
    fake = {("Q", "s_t"): np.full((B, A), 2.5)}
    assert forward(p, feed, fake).loss == 2.5
    assert forward(p, feed, outs).loss == pytest.approx(
        float(np.mean(outs[("Q", "s_t")][np.arange(B), feed["a_t"]])))


def test_gradient_is_scaled_for_the_batch_mean():
    p = builtin("skeleton")  # loss = mean_b Q(s_b, a_b)
    feed, outs = make_inputs(8)
    g = backward(forward(p, feed, outs))[("Q", "s_t")]
    np.testing.assert_allclose(g, np.eye(A)[feed["a_t"]] / B)
    p = build(HAND_MADE["meanbatch_output"])  # (1,1) output: the mean is the value
    assert forward(p, feed, outs).output.shape == (1, 1)


@pytest.mark.parametrize("depth", [14, 16, 24])
def test_one_validity_verdict_for_an_overflowing_square_chain(depth):
    """A chain of Squares is provably non-zero, but from 16 deep its gradient is 0 or
    inf on every probe: the search's check, `evo program check` and the full numeric
    check (no memo) give the same verdict."""
    from graphs.core.validity import gradient_is_nonzero

    program = build([("QValues", "Q", "s_t"), ("Select", 0, "a_t")]
                    + [("Square", 1 + i) for i in range(depth)])
    assert program.gradient_provably_nonzero
    full = gradient_is_nonzero(program, memo=False)
    assert full == (depth < 16)
    assert program.is_valid() == full
