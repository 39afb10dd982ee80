"""The vectorized interpreter computes what the program core computes, with its gradients.

All programs run in one jitted, vmapped call (one compilation), in float32 as the
trainer runs them; the program core computes in float64, so tolerances are float32's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evo.rl.interpreter import (
    NET_CALLS,
    ProgramCode,
    ProgramTooLarge,
    TracedLoss,
    capacity_for,
    encode,
    loss_fn,
)
from graphs.core.execute import backward, forward
from graphs.rl_loss import library
from graphs.rl_loss.generation import from_scratch, seeded_program
from graphs.rl_loss.library import from_steps

B, A = 8, 3


def _batch(seed: int):
    rng = np.random.default_rng(seed)
    q = rng.normal(0, 1, (4, B, A))
    return q, rng.integers(0, A, B), rng.choice([0.0, 1.0, -1.0], B), rng.choice([0.99, 0.0], B)


def _core(program, q, a, r, g):
    feed = {"Q": None, "Q_targ": None, "s_t": None, "s_tp1": None, "a_t": a,
            "r_t": r[:, None], "gamma": g[:, None]}
    trace = forward(program, feed, {call: q[i] for i, call in enumerate(NET_CALLS)})
    return trace.loss, backward(trace)


def _mean_loss(code, q, a, r, g):
    draws = jnp.zeros((code["branch"].shape[0], 2), q.dtype)
    return loss_fn(code, q, a, r, g, draws).mean()


@jax.jit
def _population(codes, q, a, r, g):
    """Loss and gradient of every program of a population, each on its own batch."""
    return jax.vmap(jax.value_and_grad(_mean_loss, argnums=1))(codes, q, a, r, g)


def _run(programs, batches):
    cap = capacity_for(programs)
    codes = ProgramCode.stack([encode(p, cap) for p in programs])
    cols = [np.stack(c) for c in zip(*batches)]
    q, a, r, g = (cols[0].astype(np.float32), cols[1].astype(np.int32),
                  cols[2].astype(np.float32), cols[3].astype(np.float32))
    loss, grad = _population(codes, q, a, r, g)
    return np.asarray(loss, np.float64), np.asarray(grad, np.float64)


def _programs():
    progs = [library.builtin(n) for n in ("dqn", "ddqn", "dqnreg", "dqnclipped", "cql")]
    progs += [seeded_program("dqn", 14, seed=s) for s in range(60)]
    progs += [from_scratch(7, seed=s) for s in range(60)]
    # Up to 16 live nodes: one compilation at capacity 16 (a larger capacity only
    # repeats the same instructions and costs compile time).
    return [p for p in progs if not any(op.kind == "random" for _, op, _ in p.plan)
            and len(p.plan) <= 16]


def test_loss_and_gradients_match_the_program_core_on_random_programs():
    programs = _programs()
    batches = [_batch(i) for i in range(len(programs))]
    losses, grads = _run(programs, batches)
    compared = 0
    for i, program in enumerate(programs):
        want_loss, want_grads = _core(program, *batches[i])
        if not np.isfinite(want_loss) or abs(want_loss) > 1e6:
            continue  # float32 cannot follow float64 there; the core pins those
        compared += 1
        assert losses[i] == pytest.approx(want_loss, rel=2e-4, abs=1e-5), program
        for j, call in enumerate(NET_CALLS):
            want = want_grads.get(call) if call[0] == "Q" else None
            if want is None:
                continue
            scale = max(1.0, float(np.abs(want).max()))
            np.testing.assert_allclose(grads[i][j], want, rtol=2e-3, atol=2e-4 * scale,
                                       err_msg=str(program))
    assert compared >= 40


def test_gradients_match_finite_differences():
    """Central differences of the float64 core against the interpreter's gradient."""
    program = library.builtin("dqnclipped")
    q, a, r, g = _batch(3)
    _, grads = _run([program], [(q, a, r, g)])
    eps = 1e-6
    for idx in [(0, 0, 0), (0, 3, 2), (0, 7, 1), (3, 2, 0)]:
        up, down = q.copy(), q.copy()
        up[idx] += eps
        down[idx] -= eps
        fd = (_core(program, up, a, r, g)[0] - _core(program, down, a, r, g)[0]) / (2 * eps)
        assert grads[0][idx] == pytest.approx(fd, rel=1e-3, abs=1e-5)


def _interpreted_mean(q, code, a, r, g, draws):
    return loss_fn(code, q, a, r, g, draws).mean()


def _traced_mean(q, traced, a, r, g, draws):
    return traced(q, a, r, g, draws).mean()


def test_a_traced_loss_computes_the_interpreters_loss_and_gradients():
    """The trace-mode loss (each live node's forward once, on the op set's own shapes)
    against the interpreter and the float64 core, random-draw programs included (both
    read the same per-instruction draws)."""
    programs = [library.builtin(n) for n in ("dqn", "ddqn", "dqnreg", "dqnclipped", "cql")]
    programs += [seeded_program("dqn", 6, seed=s) for s in range(12)]
    programs += [from_scratch(7, seed=s) for s in range(24)]
    programs = [p for p in programs if len(p.plan) <= 16]
    programs += [from_steps([("QValues", "Q", "s_t"), ("Select", 0, "a_t"), (draw,),
                             ("Sub", 1, 2), ("Square", 3)]) for draw in ("Normal", "Uniform")]
    cap = capacity_for(programs)
    draws = jnp.asarray(np.random.default_rng(5).normal(0, 1, (cap, 2)), jnp.float32)
    drawn = compared = 0
    for i, program in enumerate(programs):
        q, a, r, g = (jnp.asarray(x, t) for x, t in zip(
            _batch(i), (jnp.float32, jnp.int32, jnp.float32, jnp.float32)))
        code = {k: jnp.asarray(v) for k, v in encode(program, cap).__dict__.items()
                if k != "calls"}
        traced = TracedLoss(program, cap)
        want, want_grad = jax.value_and_grad(_interpreted_mean)(q, code, a, r, g, draws)
        got, got_grad = jax.value_and_grad(_traced_mean)(q, traced, a, r, g, draws)
        if not np.isfinite(float(want)) or abs(float(want)) > 1e6:
            continue
        compared += 1
        drawn += any(op.kind == "random" for _, op, _ in program.plan)
        assert float(got) == pytest.approx(float(want), rel=1e-5, abs=1e-6), program
        np.testing.assert_allclose(np.asarray(got_grad), np.asarray(want_grad), rtol=1e-4,
                                   atol=1e-6 * max(1.0, float(jnp.abs(want_grad).max())),
                                   err_msg=str(program))
        if not any(op.kind == "random" for _, op, _ in program.plan):
            want_loss, want_grads = _core(program, *_batch(i))
            assert float(got) == pytest.approx(want_loss, rel=2e-4, abs=1e-5), program
    assert compared >= 25 and drawn >= 2
    # equal structures share a compiled trainer; different ones do not
    assert TracedLoss(library.builtin("dqn")) == TracedLoss(library.builtin("dqn"))
    assert len({TracedLoss(p, cap) for p in programs}) == len(
        {tuple((op.name, args) for _, op, args in p.plan) + (p.output,) for p in programs})


def test_a_program_over_capacity_is_refused_with_a_reason():
    with pytest.raises(ProgramTooLarge, match="raise max_nodes"):
        encode(seeded_program("dqn", 14, seed=0), max_nodes=4)
