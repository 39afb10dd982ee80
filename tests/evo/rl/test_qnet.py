"""QNetworks (batched MLPs with hand-written backprop) and the flat-buffer Adam."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evo.rl.qnet import Adam, QNetworks

SIZES = (3, 7, 5, 2)


def make_net(k: int = 2, sizes=SIZES, dtype=np.float64, seed: int = 0) -> QNetworks:
    return QNetworks(sizes, [np.random.default_rng([seed, i]) for i in range(k)], dtype=dtype)


def objective(net: QNetworks, x: np.ndarray, g: np.ndarray) -> float:
    return float(np.sum(g * net(x)))


def test_shapes_dtype_and_views_share_the_flat_buffer():
    net = make_net(k=3, dtype=np.float32)
    assert net.k == 3 and net.n_layers == 3
    assert net.flat.dtype == np.float32
    assert [p.shape for p in net.params] == [
        (3, 3, 7), (3, 1, 7), (3, 7, 5), (3, 1, 5), (3, 5, 2), (3, 1, 2)]
    assert net.flat.size == sum(p.size for p in net.params)
    for p in net.params:
        assert np.shares_memory(p, net.flat)
    net.flat[:] = 0.5
    assert all((p == 0.5).all() for p in net.params)
    out = net(np.ones((3, 4, 3), np.float32))
    assert out.shape == (3, 4, 2) and out.dtype == np.float32


def test_initialization_is_pytorch_uniform_and_per_agent():
    net = make_net(k=2, sizes=(16, 64, 4))
    for layer, fan_in in enumerate((16, 64)):
        bound = 1.0 / math.sqrt(fan_in)
        for p in net.params[2 * layer: 2 * layer + 2]:
            assert np.abs(p).max() <= bound
            assert np.abs(p).max() > 0.8 * bound  # really spread over the interval
    # an agent's initial weights depend only on its own generator
    alone = QNetworks((16, 64, 4), [np.random.default_rng([0, 1])], dtype=np.float64)
    for p, q in zip(net.params, alone.params):
        assert np.array_equal(p[1], q[0])
    assert not np.array_equal(net.params[0][0], net.params[0][1])


@pytest.mark.parametrize("sizes", [SIZES, (4, 6, 3)])
def test_backward_matches_finite_differences_for_every_parameter_array(sizes):
    net = make_net(k=2, sizes=sizes)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, sizes[0]))
    g = rng.normal(size=(2, 6, sizes[-1]))
    out, acts = net.forward(x)
    grad_flat = np.full_like(net.flat, np.nan)  # every entry must be overwritten
    grads = net.views(grad_flat)
    g_before = g.copy()
    net.backward(acts, g, grads)
    assert np.array_equal(g, g_before)  # the cotangent is not modified in place
    assert np.isfinite(grad_flat).all()
    eps = 1e-6
    for p, dp in zip(net.params, grads):
        flat_idx = rng.choice(p.size, size=min(p.size, 12), replace=False)
        for j in flat_idx:
            idx = np.unravel_index(j, p.shape)
            old = p[idx]
            p[idx] = old + eps
            up = objective(net, x, g)
            p[idx] = old - eps
            down = objective(net, x, g)
            p[idx] = old
            fd = (up - down) / (2 * eps)
            assert dp[idx] == pytest.approx(fd, rel=1e-6, abs=1e-8), (p.shape, idx)


def test_backward_accumulate_adds_to_existing_gradients():
    net = make_net()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 3))
    g = rng.normal(size=(2, 5, 2))
    _, acts = net.forward(x)
    fresh = np.zeros_like(net.flat)
    net.backward(acts, g, net.views(fresh))
    base = rng.normal(size=net.flat.shape)
    acc = base.copy()
    net.backward(acts, g, net.views(acc), accumulate=True)
    np.testing.assert_allclose(acc, base + fresh, rtol=1e-12, atol=1e-14)
    # without accumulate the old content is overwritten, not added to
    over = base.copy()
    net.backward(acts, g, net.views(over))
    np.testing.assert_array_equal(over, fresh)


def test_agents_are_independent():
    net = make_net(k=2)
    x = np.random.default_rng(3).normal(size=(2, 9, 3))
    before = net(x)
    for p in net.params:
        p[0] += 0.3
    after = net(x)
    assert np.array_equal(after[1], before[1])
    assert not np.allclose(after[0], before[0])
    # the gradient of agent 0's outputs does not reach agent 1's parameters
    _, acts = net.forward(x)
    g = np.zeros((2, 9, 2))
    g[0] = 1.0
    grad = np.zeros_like(net.flat)
    net.backward(acts, g, net.views(grad))
    views = net.views(grad)
    assert all(not v[1].any() for v in views)
    assert any(v[0].any() for v in views)


def test_copy_from_and_clone():
    a, b = make_net(seed=0), make_net(seed=1)
    x = np.random.default_rng(4).normal(size=(2, 5, 3))
    assert not np.array_equal(a(x), b(x))
    b.copy_from(a)
    assert np.array_equal(a.flat, b.flat) and np.array_equal(a(x), b(x))
    assert not np.shares_memory(a.flat, b.flat)
    b.flat += 1.0  # a hard copy, not an alias
    assert not np.array_equal(a.flat, b.flat)

    twin = a.clone()
    assert twin.sizes == a.sizes and twin.k == a.k and twin.flat.dtype == a.flat.dtype
    assert np.array_equal(twin(x), a(x))
    assert not np.shares_memory(twin.flat, a.flat)
    for p in twin.params:
        assert np.shares_memory(p, twin.flat)
    twin.params[0][...] = 0.0  # editing the clone's views edits the clone only
    assert not twin.flat[: twin.params[0].size].any()
    assert a.params[0].any()
    assert not np.array_equal(twin(x), a(x))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finite_is_per_agent(bad):
    net = make_net(k=3)
    assert net.finite().tolist() == [True, True, True]
    net.params[3][1, 0, 2] = bad
    assert net.finite().tolist() == [True, False, True]
    net.params[0][2, 1, 1] = bad
    assert net.finite().tolist() == [True, False, False]


def textbook_adam(params, grads, lr, b1, b2, eps):
    m = np.zeros_like(params)
    v = np.zeros_like(params)
    p = params.copy()
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1**t)
        vhat = v / (1 - b2**t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
    return p


@pytest.mark.parametrize("lr, betas, eps", [(1e-3, (0.9, 0.999), 1e-8),
                                            (0.05, (0.5, 0.9), 1e-3)])
def test_adam_matches_the_textbook_update(lr, betas, eps):
    rng = np.random.default_rng(5)
    start = rng.normal(size=300)
    # gradients over several orders of magnitude, some exactly zero
    grads = [rng.normal(size=300) * 10.0 ** rng.integers(-4, 3, size=300) for _ in range(20)]
    grads[3][:50] = 0.0
    flat = start.copy()
    opt = Adam(flat, lr, betas, eps)
    for g in grads:
        opt.step(g)
    assert opt.t == 20
    expected = textbook_adam(start, grads, lr, betas[0], betas[1], eps)
    np.testing.assert_allclose(flat - start, expected - start, rtol=1e-12, atol=0)
    np.testing.assert_allclose(flat, expected, rtol=1e-12, atol=0)


def test_adam_updates_the_networks_buffer_in_place():
    net = make_net(dtype=np.float32)
    opt = Adam(net.flat, 1e-2)
    before = [p.copy() for p in net.params]
    opt.step(np.ones_like(net.flat))
    assert opt.flat is net.flat and net.flat.dtype == np.float32
    for p, q in zip(net.params, before):  # the views see the update: first step moves by lr
        np.testing.assert_allclose(q - p, 1e-2, rtol=1e-4)
