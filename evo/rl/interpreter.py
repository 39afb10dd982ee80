"""Evaluate a population of *different* loss programs in one vectorized call.

Each program becomes a small array of instructions (branch code, argument slots),
as in Kozax: a ``lax.switch`` interpreter runs it, and ``vmap`` covers the
population. Every branch calls the op's one forward function from
``graphs.rl_loss.ops`` with ``xp=jax.numpy``, so the op set keeps a single record per
op; gradients come from JAX's automatic differentiation of that forward.

Values travel in one uniform shape, ``(B, A)``: a FLOAT is replicated across the
action columns, an ACTION is one-hot, LIST and PROB are themselves. Each branch
converts its arguments to the shapes its op's signature expects, calls the op and
lifts the result back.

:class:`TracedLoss` is the other way to run a program in the trainer: written out node
by node into a compiled call made for it, with the same inputs and draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from graphs.core.op import Op, Signature
from graphs.core.program import Program
from graphs.rl_loss.ops import ACTION, FLOAT, INPUTS, LIST, PROB, RL_LOSS

# The four parameter applications a loss can make, in the order the trainer feeds them.
NET_CALLS = (("Q", "s_t"), ("Q", "s_tp1"), ("Q_targ", "s_t"), ("Q_targ", "s_tp1"))
N_INPUTS = len(INPUTS)
_INPUT_SLOT = {inp.name: i for i, inp in enumerate(INPUTS)}
DEFAULT_MAX_NODES = 32
CAPACITY_STEP = 8  # capacities are multiples of this, so few shapes get compiled


class ProgramTooLarge(ValueError):
    """A program has more live operator nodes than the interpreter's capacity."""


def _reduces(sig: Signature) -> bool:
    """The signature maps per-action values to one value per sample."""
    return sig.out in (FLOAT, ACTION) and any(t in (LIST, PROB) for t in sig.args)


def _branches() -> tuple[tuple[tuple[Op, Signature], ...], dict]:
    """One branch per op and kind of signature.

    In the uniform ``(B, A)`` representation a replicated FLOAT computes exactly
    like a LIST, so an elementwise op needs one branch for all its signatures (the
    one with the most per-action arguments); only signatures that reduce over
    actions (e.g. SqDist of two lists) need their own. Fewer branches: less work
    under ``vmap``, which computes every branch.
    """
    branches: list = [(None, None)]  # branch 0: padding, yields zeros
    index = {}
    for op in RL_LOSS.ops:
        groups: dict[bool, list[Signature]] = {}
        for sig in op.signatures:
            groups.setdefault(_reduces(sig), []).append(sig)
        for sigs in groups.values():
            wide = max(sigs, key=lambda s: sum(t in (LIST, PROB) for t in s.args))
            for sig in sigs:
                index[(op.name, sig)] = len(branches)
            branches.append((op, wide))
    return tuple(branches), index


BRANCHES, BRANCH_INDEX = _branches()


@dataclass(frozen=True)
class ProgramCode:
    """A program as instruction arrays (numpy, host side).

    ``branch[i]`` selects op and signature for instruction ``i``; ``args[i]`` are
    the value slots it reads (inputs occupy slots ``0..N_INPUTS-1``, instruction
    ``i`` writes slot ``N_INPUTS + i``); ``call[i]`` is the index into
    :data:`NET_CALLS` for a ``QValues`` instruction; ``output`` is the loss slot.
    """

    branch: np.ndarray
    args: np.ndarray
    call: np.ndarray
    output: np.ndarray
    calls: frozenset[int]

    @staticmethod
    def stack(codes: list[ProgramCode]) -> dict[str, np.ndarray]:
        """Stack codes of one capacity into arrays with a leading population axis."""
        return {
            "branch": np.stack([c.branch for c in codes]),
            "args": np.stack([c.args for c in codes]),
            "call": np.stack([c.call for c in codes]),
            "output": np.stack([c.output for c in codes]),
        }


def capacity_for(programs: list[Program], limit: int = DEFAULT_MAX_NODES) -> int:
    """The instruction capacity for a population: its largest live node count,
    rounded up to a multiple of :data:`CAPACITY_STEP` (one compilation per step)."""
    need = max(len(p.plan) for p in programs)
    if need > limit:
        raise ProgramTooLarge(f"a program has {need} live operator nodes; the trainer's "
                              f"capacity is {limit} (raise max_nodes)")
    return -(-need // CAPACITY_STEP) * CAPACITY_STEP


def encode(program: Program, max_nodes: int = DEFAULT_MAX_NODES) -> ProgramCode:
    """Compile ``program``'s live nodes into instruction arrays of ``max_nodes`` rows."""
    if program.opset is not RL_LOSS or [i.name for i in program.inputs] != list(_INPUT_SLOT):
        raise ValueError("the population trainer runs programs of the rl_loss op set with its "
                         "standard inputs (Q, a_t, s_t, Q_targ, s_tp1, r_t, gamma)")
    plan = program.plan
    if len(plan) > max_nodes:
        raise ProgramTooLarge(f"the program has {len(plan)} live operator nodes; the trainer's "
                              f"capacity is {max_nodes} (raise max_nodes)")
    slot = {i: i for i in range(N_INPUTS)}
    branch = np.zeros(max_nodes, np.int32)
    args = np.zeros((max_nodes, 2), np.int32)
    call = np.zeros(max_nodes, np.int32)
    calls = set()
    ids = program.ids
    for row, (idx, op, node_args) in enumerate(plan):
        sig = tuple(program.types[a] for a in node_args)
        branch[row] = BRANCH_INDEX[(op.name, _signature(op, sig))]
        for j, a in enumerate(node_args):
            args[row, j] = slot[a]
        if op.kind == "apply":
            call[row] = NET_CALLS.index((ids[node_args[0]], ids[node_args[1]]))
            calls.add(int(call[row]))
        slot[idx] = N_INPUTS + row
    return ProgramCode(branch, args, call, np.int32(slot[program.output]), frozenset(calls))


def _signature(op: Op, argtypes: tuple) -> Signature:
    for sig in op.signatures:
        if sig.args == argtypes:
            return sig
    raise AssertionError(f"{op.name} has no signature {argtypes}")  # programs type-check


def program_draws(key: jax.Array, lead: tuple[int, ...], capacity: int) -> jax.Array:
    """Draws for random-draw ops: ``lead + (capacity, 2)``, N(0,1) then U(0,1) in the last
    axis. Instruction ``i`` draws from its own key (``key`` folded with ``i``), so its
    numbers do not depend on the capacity, which the largest program of a batch sets:
    a program draws the same alone and beside larger ones."""

    def row(i: jax.Array) -> jax.Array:
        k_normal, k_uniform = jax.random.split(jax.random.fold_in(key, i))
        return jnp.stack([jax.random.normal(k_normal, lead),
                          jax.random.uniform(k_uniform, lead)], axis=-1)

    return jnp.moveaxis(jax.vmap(row)(jnp.arange(capacity)), 0, -2)


class _Draws:
    """The slice of ``numpy.random.Generator`` that random-draw ops call, serving
    draws made in advance (one normal and one uniform per instruction): drawing in
    bulk per chunk of steps is far cheaper than a key split per instruction."""

    def __init__(self, normal: jax.Array, uniform: jax.Array) -> None:
        self.normal, self.uniform_draw = normal, uniform

    def standard_normal(self, shape: tuple[int, ...]) -> jax.Array:
        return jnp.broadcast_to(self.normal, shape)

    def uniform(self, size: tuple[int, ...]) -> jax.Array:
        return jnp.broadcast_to(self.uniform_draw, size)


def _branch_fn(op: Op | None, sig: Signature | None, batch: int, n_actions: int, dtype):
    shape = (batch, n_actions)

    def take(v: jax.Array, t) -> jax.Array:
        if t == FLOAT:
            return v[:, :1]
        if t == ACTION:
            return jnp.argmax(v, axis=1)
        return v

    def lift(v: jax.Array, t) -> jax.Array:
        if t == ACTION:
            return jax.nn.one_hot(v, n_actions, dtype=dtype)
        return jnp.broadcast_to(jnp.asarray(v, dtype), shape)

    def run(x, y, q, normal, uniform):
        if op is None:
            return jnp.zeros(shape, dtype)
        if op.kind == "apply":
            return q
        if op.kind == "random":
            return lift(op.forward(_Draws(normal, uniform)), sig.out)
        ins = [take(v, t) for v, t in zip((x, y), sig.args)]
        return lift(op.forward(*ins, xp=jnp), sig.out)

    return run


def loss_fn(code: dict, qvals: jax.Array, actions: jax.Array, rewards: jax.Array,
            discounts: jax.Array, draws: jax.Array) -> jax.Array:
    """The per-sample loss of one program (one agent), shape ``(B,)``.

    Args:
        code: one program's instruction arrays (see :class:`ProgramCode`).
        qvals: ``(4, B, A)`` network outputs in :data:`NET_CALLS` order.
        actions: ``(B,)`` int actions; rewards, discounts: ``(B,)``.
        draws: ``(capacity, 2)`` the N(0,1) and U(0,1) draws of each instruction at this
            update (used by random-draw ops only); see :func:`program_draws`.
    """
    n_calls, batch, n_actions = qvals.shape
    dtype = qvals.dtype
    max_nodes = code["branch"].shape[0]
    slots = jnp.zeros((N_INPUTS + max_nodes, batch, n_actions), dtype)
    col = jnp.ones((1, n_actions), dtype)
    slots = slots.at[_INPUT_SLOT["a_t"]].set(jax.nn.one_hot(actions, n_actions, dtype=dtype))
    slots = slots.at[_INPUT_SLOT["r_t"]].set(rewards[:, None] * col)
    slots = slots.at[_INPUT_SLOT["gamma"]].set(discounts[:, None] * col)

    # Unrolled over instructions: XLA then fuses across nodes, which runs about 20x
    # faster than a scan over them (measured, bench/bench_population.py). Each
    # instruction is one call of the jitted ``_instruction``, so JAX traces (and
    # differentiates, and vmaps) the switch over all ops once per shape instead of once
    # per instruction. XLA inlines the calls: a 32-candidate CartPole batch gave the same
    # returns at the same warm speed (86 vs 89 s), and compiled in 68 s instead of 144 s
    # (busy core).
    for i in range(max_nodes):
        args = code["args"][i]
        v = _instruction(code["branch"][i], slots[args[0]], slots[args[1]],
                         qvals[code["call"][i]], draws[i, 0], draws[i, 1])
        slots = slots.at[N_INPUTS + i].set(v)
    return slots[code["output"]][:, 0]


@cache
def _branch_fns(batch: int, n_actions: int, dtype) -> list:
    return [_branch_fn(op, sig, batch, n_actions, dtype) for op, sig in BRANCHES]


@jax.jit
def _instruction(branch: jax.Array, x: jax.Array, y: jax.Array, q: jax.Array,
                 normal: jax.Array, uniform: jax.Array) -> jax.Array:
    """One instruction: the op selected by ``branch`` applied to its argument slots."""
    fns = _branch_fns(x.shape[0], x.shape[1], x.dtype)
    return jax.lax.switch(branch, fns, x, y, q, normal, uniform)


class TracedLoss:
    """One program's loss written out op by op, for a trainer compiled for it.

    The interpreter's switch computes every op at every instruction; a trainer that
    compiles a group's programs into itself (``loss_mode="trace"`` in
    :func:`evo.rl.population.train_population`) calls each live node's forward once,
    on the op set's own shapes (FLOAT ``(B, 1)``, ACTION ``(B,)``, LIST and PROB
    ``(B, A)``), with the same inputs, network outputs and per-instruction draws as
    :func:`loss_fn`. Hashable by the program's structure, so a compiled trainer is
    reused for the same programs."""

    def __init__(self, program: Program, max_nodes: int = DEFAULT_MAX_NODES) -> None:
        encode(program, max_nodes)  # the same checks (op set, inputs, capacity)
        self.program = program
        self._key = (tuple((idx, op.name, args) for idx, op, args in program.plan),
                     program.output)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TracedLoss) and other._key == self._key

    def __call__(self, qvals: jax.Array, actions: jax.Array, rewards: jax.Array,
                 discounts: jax.Array, draws: jax.Array) -> jax.Array:
        """The per-sample loss, shape ``(B,)``; arguments as for :func:`loss_fn`."""
        program = self.program
        ids = program.ids
        batch = qvals.shape[1]
        feed = {"a_t": actions, "r_t": rewards[:, None], "gamma": discounts[:, None]}
        values: list = [feed.get(inp.name) for inp in program.inputs]
        values += [None] * (len(program) - len(values))
        for row, (idx, op, args) in enumerate(program.plan):
            if op.kind == "apply":
                values[idx] = qvals[NET_CALLS.index((ids[args[0]], ids[args[1]]))]
            elif op.kind == "random":
                values[idx] = op.forward(_Draws(draws[row, 0], draws[row, 1]))
            else:
                values[idx] = op.forward(*[values[a] for a in args], xp=jnp)
        out = values[program.output]
        return jnp.broadcast_to(out, (batch, out.shape[-1]))[:, 0]
