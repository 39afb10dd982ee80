"""Every RL-loss operator: forward shapes, documented values, and the backward rule
checked against central finite differences for every signature."""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest

from graphs.core.errors import ProgramError
from graphs.core.op import unbroadcast
from graphs.core.program import Input, Node, Program
from graphs.rl_loss.ops import (
    ACTION,
    EPS_DIV,
    EPS_LOG,
    EXP_CLIP,
    FLOAT,
    LIST,
    PROB,
    RL_LOSS,
    TYPES,
)

B, A = 5, 4
H = 1e-6
RTOL, ATOL = 1e-5, 1e-7
KINKED_PAIR = {"Max2", "Min2", "MaxFloat"}  # elementwise max/min of two arguments
KINKED_ROW = {"Max", "ArgMax"}  # max over actions
AWAY_FROM_ZERO = {"Abs": 0.1, "Log": 0.1}  # |x| > bound


def op(name):
    return RL_LOSS.op(name)


def shape_options(t):
    """The runtime shapes a value of type ``t`` can have inside a loss program."""
    if t == FLOAT:
        return [(B, 1), (1, 1)]  # per sample, or a constant
    if t in (LIST, PROB):
        return [(B, A), (1, A)]  # per sample, or e.g. after MeanBatch
    if t == ACTION:
        return [(B,)]
    raise AssertionError(f"no test values for {t}")


def cases():
    out = []
    for o in RL_LOSS.ops:
        if o.kind != "compute":
            continue
        for sig in o.signatures:
            for shapes in itertools.product(*(shape_options(t) for t in sig.args)):
                label = f"{o.name}{sig!r}{''.join(str(s) for s in shapes)}".replace(" ", "")
                out.append(pytest.param(o, sig, shapes, id=label))
    return out


def make_value(rng, t, shape, opname, pos):
    if t == ACTION:
        return rng.integers(0, A, size=shape)
    x = rng.standard_normal(shape)
    if t == PROB:
        e = np.exp(x)
        return e / e.sum(axis=1, keepdims=True)
    if opname in AWAY_FROM_ZERO:
        x = np.sign(x) * (AWAY_FROM_ZERO[opname] + 0.1 + np.abs(x))
    if opname == "Div" and pos == 1:
        x = np.sign(x) * (0.5 + np.abs(x))  # |y| > 0.5
    return x


def away_from_kinks(opname, args):
    """Whether the inputs are at least a margin away from every kink of the op."""
    margin = 1e-3
    if opname in KINKED_PAIR:
        return np.min(np.abs(args[0] - args[1])) > margin
    if opname in KINKED_ROW:
        top = np.sort(args[0], axis=1)
        return np.min(top[:, -1] - top[:, -2]) > margin
    return True


def make_args(o, sig, shapes, seed):
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        args = [make_value(rng, t, s, o.name, i)
                for i, (t, s) in enumerate(zip(sig.args, shapes))]
        if away_from_kinks(o.name, args):
            return args
    raise AssertionError("could not draw inputs away from the kinks")


def expected_shape(o, sig, shapes):
    batch = max((s[0] for s in shapes), default=1)
    if o.name in ("MeanBatch", "StdBatch"):
        batch = 1
    if sig.out == ACTION:
        return (batch,)
    return (batch, A) if sig.out in (LIST, PROB) else (batch, 1)


def finite_difference(f, args, i):
    """Central differences of the scalar ``f(*args)`` with respect to ``args[i]``."""
    x = np.array(args[i], dtype=np.float64)
    grad = np.zeros_like(x)
    for j in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[j] += H
        minus[j] -= H
        hi = f(*args[:i], plus, *args[i + 1:])
        lo = f(*args[:i], minus, *args[i + 1:])
        grad[j] = (hi - lo) / (2 * H)
    return grad


def seed_of(*parts):
    return zlib.crc32(repr(parts).encode())


# -- backward == finite differences, every compute op and signature --------------------
@pytest.mark.parametrize("o, sig, shapes", cases())
def test_forward_shape_and_backward_matches_finite_differences(o, sig, shapes):
    args = make_args(o, sig, shapes, seed_of(o.name, sig.args, shapes))
    out = o.forward(*args)
    assert np.shape(out) == expected_shape(o, sig, shapes)
    assert len(o.grad_args) == o.arity == len(sig.args)
    if sig.out == ACTION:
        assert np.issubdtype(np.asarray(out).dtype, np.integer)
    else:
        assert np.asarray(out).dtype == np.float64
        assert np.all(np.isfinite(out))
    for t, flows in zip(sig.args, o.grad_args):
        if t == ACTION:
            assert not flows, f"{o.name}: an ACTION argument cannot carry a gradient"
    if o.backward is None:
        assert not any(o.grad_args), f"{o.name} has no backward but claims gradients"
        return

    rng = np.random.default_rng(seed_of("g", o.name, sig.args, shapes))
    g = rng.standard_normal(np.shape(out))
    grads = o.backward(g, out, *args)
    assert len(grads) == o.arity

    def objective(*xs):
        return float(np.sum(g * o.forward(*xs)))

    for i, (t, flows) in enumerate(zip(sig.args, o.grad_args)):
        if t == ACTION:
            assert grads[i] is None, f"{o.name}: gradient for an ACTION argument"
            continue
        assert flows, f"{o.name}: float argument {i} is marked as carrying no gradient"
        assert grads[i] is not None
        analytic = np.asarray(grads[i])
        assert analytic.shape == np.shape(args[i]), f"{o.name}: gradient {i} has wrong shape"
        numeric = finite_difference(objective, args, i)
        np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{o.name} argument {i}")


def test_every_compute_op_has_cases():
    covered = {c.values[0].name for c in cases()}
    compute = {o.name for o in RL_LOSS.ops if o.kind == "compute"}
    assert covered == compute
    assert {"Add", "Select", "Div", "KL", "Exp", "StdBatch"} <= covered


# -- gradient markings ------------------------------------------------------------------
def test_argmax_is_not_differentiable():
    o = op("ArgMax")
    assert o.backward is None
    assert o.grad_args == (False,)


def test_select_action_argument_carries_no_gradient():
    o = op("Select")
    assert o.grad_args == (True, False)
    x = np.arange(12.0).reshape(3, 4)
    a = np.array([0, 3, 1])
    out = o.forward(x, a)
    np.testing.assert_array_equal(out, [[0.0], [7.0], [9.0]])
    gx, ga = o.backward(np.ones((3, 1)), out, x, a)
    assert ga is None
    np.testing.assert_array_equal(gx, np.eye(4)[a])


def test_non_compute_ops_carry_no_op_gradient():
    kinds = {o.name: o.kind for o in RL_LOSS.ops}
    assert kinds["QValues"] == "apply"
    assert kinds["Normal"] == kinds["Uniform"] == "random"
    for o in RL_LOSS.ops:
        if o.kind != "compute":
            assert not any(o.grad_args), o.name


def test_constants_have_no_arguments_and_no_gradient():
    for name, value in [("Const0.5", 0.5), ("Const0.2", 0.2), ("Const0.1", 0.1),
                        ("Const0.01", 0.01)]:
        o = op(name)
        assert o.arity == 0 and o.grad_args == ()
        out = o.forward()
        assert out.shape == (1, 1) and out[0, 0] == value


def test_random_ops_draw_one_constant_from_the_rng():
    n1 = op("Normal").forward(np.random.default_rng(3))
    n2 = op("Normal").forward(np.random.default_rng(3))
    assert n1.shape == (1, 1) and n1[0, 0] == n2[0, 0]
    u = np.array([op("Uniform").forward(np.random.default_rng(s))[0, 0] for s in range(50)])
    assert np.all((u >= 0) & (u < 1)) and len(set(u)) == 50


# -- signatures type-check ----------------------------------------------------------------
@pytest.mark.parametrize("o", RL_LOSS.ops, ids=lambda o: o.name)
def test_declared_signatures_type_check_in_a_program(o):
    for sig in o.signatures:
        assert RL_LOSS.signature_table[(o.name, sig.args)] == sig.out
        inputs = [Input(f"x{i}", t) for i, t in enumerate(sig.args)]
        p = Program(RL_LOSS, [Node(o, tuple(range(o.arity)))], inputs=inputs)
        assert p.types[-1] == sig.out
    declared = {sig.args for sig in o.signatures}
    for argtypes in itertools.product(TYPES, repeat=o.arity):
        if argtypes in declared:
            continue
        inputs = [Input(f"x{i}", t) for i, t in enumerate(argtypes)]
        with pytest.raises(ProgramError, match=f"{o.name} does not accept"):
            Program(RL_LOSS, [Node(o, tuple(range(o.arity)))], inputs=inputs)


def test_signature_table_is_exactly_the_declared_signatures():
    n = sum(len(o.signatures) for o in RL_LOSS.ops)
    assert len(RL_LOSS.signature_table) == n


def test_commutative_ops_are_symmetric():
    rng = np.random.default_rng(0)
    for o in RL_LOSS.ops:
        if not o.commutative:
            continue
        for sig in o.signatures:
            if len(set(sig.args)) != 1:
                continue
            shape = shape_options(sig.args[0])[0]
            x, y = rng.standard_normal(shape), rng.standard_normal(shape)
            np.testing.assert_allclose(o.forward(x, y), o.forward(y, x), err_msg=o.name)
    assert not op("Sub").commutative and not op("Div").commutative
    assert not op("KL").commutative


# -- documented values ----------------------------------------------------------------------
def test_div_adds_epsilon_to_the_denominator():
    div = op("Div").forward
    assert EPS_DIV == 1e-10
    assert div(np.ones((1, 1)), np.zeros((1, 1)))[0, 0] == pytest.approx(1e10)
    x, y = np.array([[3.0], [-2.0]]), np.array([[2.0], [-4.0]])
    np.testing.assert_array_equal(div(x, y), x / (y + 1e-10))
    assert div(x, y)[0, 0] == pytest.approx(1.5)


def test_log_of_absolute_value_with_epsilon():
    log = op("Log").forward
    assert EPS_LOG == 1e-12
    assert log(np.zeros((1, 1)))[0, 0] == pytest.approx(math.log(1e-12))
    np.testing.assert_allclose(log(np.array([[-math.e], [math.e]])), [[1.0], [1.0]])


def test_exp_clips_at_1e10():
    exp = op("Exp").forward
    assert EXP_CLIP == 1e10
    with np.errstate(over="raise"):
        x = np.array([[0.0], [1.0], [23.0], [24.0], [50.0], [1000.0], [-1000.0]])
        out = exp(x)
    np.testing.assert_allclose(out[:3, 0], np.exp([0.0, 1.0, 23.0]))
    assert np.all(out[3:6] == 1e10)
    assert out[6, 0] == 0.0


def test_exp_has_zero_gradient_in_the_clipped_region():
    o = op("Exp")
    x = np.array([[25.0], [30.5], [31.0], [45.0], [1000.0]])
    out = o.forward(x)
    (gx,) = o.backward(np.ones_like(x), out, x)
    np.testing.assert_array_equal(gx, np.zeros_like(x))
    fd = finite_difference(lambda v: float(np.sum(o.forward(v))), [x[1:4]], 0)
    np.testing.assert_array_equal(fd, 0.0)
    # just below the clip the gradient is exp(x)
    x = np.array([[2.0], [19.5]])
    (gx,) = o.backward(np.ones_like(x), o.forward(x), x)
    np.testing.assert_allclose(gx, np.exp(x))


def test_sqdist_is_half_squared_difference_summed_over_actions():
    sq = op("SqDist").forward
    assert sq(np.array([[3.0]]), np.array([[1.0]]))[0, 0] == 2.0
    x = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    out = sq(x, np.zeros_like(x))
    np.testing.assert_allclose(out, [[15.0], [2.0]])
    # a (1,1) constant against a batch
    np.testing.assert_allclose(sq(np.array([[1.0]]), np.array([[1.0], [3.0]])), [[0.0], [2.0]])


def test_entropy_is_sum_p_log_p_reference_sign():
    ent = op("Entropy").forward
    uniform = np.full((1, A), 1.0 / A)
    assert ent(uniform)[0, 0] == pytest.approx(-math.log(A))
    onehot = np.eye(A)[:1]
    assert ent(onehot)[0, 0] == pytest.approx(0.0, abs=1e-10)
    p = np.array([[0.7, 0.1, 0.1, 0.1]])
    assert ent(p)[0, 0] == pytest.approx(float(np.sum(p * np.log(p))))
    assert ent(p)[0, 0] > ent(uniform)[0, 0]


def test_kl_order_matters():
    kl = op("KL").forward
    p = np.array([[0.7, 0.1, 0.1, 0.1]])
    q = np.array([[0.25, 0.25, 0.25, 0.25]])
    expected = float(np.sum(p * np.log(p / q)))
    assert kl(p, q)[0, 0] == pytest.approx(expected)
    assert kl(q, p)[0, 0] == pytest.approx(float(np.sum(q * np.log(q / p))))
    assert kl(p, q)[0, 0] != pytest.approx(kl(q, p)[0, 0])
    assert kl(p, p)[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert kl(p, q)[0, 0] > 0


def test_reductions_over_actions_and_batch():
    x = np.array([[1.0, 3.0, 2.0, 2.0], [0.0, -1.0, 5.0, 4.0]])
    np.testing.assert_allclose(op("Max").forward(x), [[3.0], [5.0]])
    np.testing.assert_array_equal(op("ArgMax").forward(x), [1, 2])
    np.testing.assert_allclose(op("Sum").forward(x), [[8.0], [8.0]])
    np.testing.assert_allclose(op("Mean").forward(x), [[2.0], [2.0]])
    np.testing.assert_allclose(op("Std").forward(x), x.std(axis=1, keepdims=True))
    np.testing.assert_allclose(op("LogSumExp").forward(x),
                               np.log(np.exp(x).sum(axis=1, keepdims=True)))
    np.testing.assert_allclose(op("MeanBatch").forward(x), [[0.5, 1.0, 3.5, 3.0]])
    np.testing.assert_allclose(op("StdBatch").forward(x), [[0.5, 2.0, 1.5, 1.0]])
    np.testing.assert_allclose(op("Softmax").forward(x).sum(axis=1), [1.0, 1.0])
    np.testing.assert_allclose(op("Tenth").forward(np.array([[3.0]])), [[0.3]])
    big = np.array([[1000.0, 1000.0]])
    np.testing.assert_allclose(op("LogSumExp").forward(big), [[1000.0 + math.log(2)]])
    np.testing.assert_allclose(op("Softmax").forward(big), [[0.5, 0.5]])


def test_std_gradient_is_zero_for_constant_rows():
    for name, x in [("Std", np.full((2, A), 3.0)), ("StdBatch", np.full((B, 1), -1.0))]:
        o = op(name)
        out = o.forward(x)
        assert np.all(out == 0)
        (gx,) = o.backward(np.ones_like(out), out, x)
        assert np.all(np.isfinite(gx)) and np.all(gx == 0), name


def test_unbroadcast_sums_over_broadcast_axes():
    g = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(unbroadcast(g, (3, 4)), g)
    np.testing.assert_array_equal(unbroadcast(g, (1, 4)), g.sum(axis=0, keepdims=True))
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), g.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(unbroadcast(g, (1, 1)), [[g.sum()]])
    np.testing.assert_array_equal(unbroadcast(g, (4,)), g.sum(axis=0))
