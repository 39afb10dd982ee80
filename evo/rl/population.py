"""The population trainer: K DQN agents, each with its own loss program, in lockstep.

Reads like the algorithm of Co-Reyes et al. (2021), written once for one agent and
vmapped over the population (the PureJaxRL design): act ε-greedily, step the
environment, store the transition, sample a uniform minibatch, evaluate the agent's
loss program (:mod:`evo.rl.interpreter`), differentiate it with respect to the
online network, take an Adam step, and copy the online network into the target
network every ``target_update_period`` updates.

Every agent has its own program, networks, Adam state, replay buffer, environment
and random streams; nothing is shared across the population axis, and every compiled
call runs one group of :data:`GROUP` agents, compiled without fused multiply-add
(:mod:`evo.rl.xla_flags`), so an agent's results do not depend, to the last bit, on
which other agents share its batch; agents that finish early leave their group, and
the rest are packed into fewer groups. Environments with a
compiled port (:mod:`evo.rl.ports`) run inside the compiled loop; any other
environment is stepped on the host and feeds the same compiled update.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from envs import Budget, EnvSpec
from evo.rl.dqn import LOSS_MODES, AgentRun, DQNConfig, max_episode_steps
from evo.rl.interpreter import (
    DEFAULT_MAX_NODES,
    NET_CALLS,
    ProgramCode,
    TracedLoss,
    capacity_for,
    encode,
    loss_fn,
    program_draws,
)
from evo.rl.ports import Port, port_for
from evo.rl.xla_flags import quick_compile_options
from graphs.core.program import Program

CHUNK = 1000  # environment steps per compiled call; the host checks budgets in between
OK, NAN = 0, 1
# Agents per compiled call. XLA:CPU picks its matmul and reduction kernels by size, and
# for different sizes it picked kernels that round differently (measured with DQN at
# 64-64: parameters 6e-8 apart between 2 and 8 agents on CartPole, 2e-7 between 16 and
# 24 on MiniGrid-Empty-5x5); every call over one group of this size keeps an agent's
# numbers the same alone and in any batch (docs/population.md).
GROUP = 8
# "auto" traces the programs into the compiled call (loss_mode "trace") when an agent may
# take at least this many steps (its step budget, or episodes x the episode cap):
# tracing doubles the steps/s of DQN at 64-64 on CartPole (bench/bench_population.py,
# section speed) but compiles each new group of programs (2-8 s per group of 8 on one
# core with the quick options below, tracing included). For a batch of 16 new
# DQN-seeded programs (section modes, 2026-12-07) it took 0.81x the interpreter's time
# at CartPole 5k steps, 0.53x at 10k, 0.35x at Acrobot 20k and 0.42x at
# MiniGrid-Empty-5x5 30k, compilation included; the from-scratch preset, whose 10k-step
# CartPole hurdle is 97% of its evaluation time, evaluated 1.54x the candidates per
# minute with it (docs/population.md, "Two ways to run the losses"). Compiling is then
# about 40% of a hurdle batch's time: the price of the faster steps, which `evo status`
# reports.
# The choice depends on the budget and environment only, never on which programs
# share a batch.
TRACE_FROM_STEPS = 5_000
# Traced losses compile one trainer per new group of programs. Up to this many steps per
# agent it compiles with XLA's quick options (evo.rl.xla_flags): on a group of 8 mixed
# programs (CartPole, 64-64, 20k steps) they compiled in 5.4 s instead of 14.3 s and
# ran 18% slower (bench/bench_population.py, section compile_options): 9 s saved
# against 1.5 s lost per 20k steps, so they pay for themselves up to about 100k steps
# per agent; longer trainings compile with XLA's defaults. Both give the same numbers
# to the bit.
QUICK_COMPILE_UP_TO = 100_000
# ... and for networks no wider than this: at 256-256 the quick options ran the traced
# trainer at 1,927 agent-steps/s with 8 agents (section speed, 3k steps, 2026-12-06,
# beside a test run), where XLA's defaults had run 3,535 (the same section earlier that
# day), so wide networks lose more in their matmuls than they save in compiling.
QUICK_COMPILE_MAX_WIDTH = 64


CACHE_MAX_BYTES = 2 * 1024**3
# Compiles at least this long go to the on-disk cache. The setup functions every training
# compiles (initial agents, the port's first states, the host path's acting step) take
# 0.3-1.3 s each, some under JAX's default of 1 s. Cached too, a fresh process's first
# batch of 32 new candidates at the dqn-seeded preset's sizes, on a cache an earlier
# process filled, spent 8.9% of its time compiling instead of 11.3% at 2 s
# (bench/bench_population.py, section first_batch; docs/population.md, "Compilation").
CACHE_MIN_COMPILE_SECONDS = 0.25


def _use_compilation_cache() -> None:
    """Keep compiled trainers on disk (``$EVO_JAX_CACHE``, default
    ``~/.cache/evo/jax``): every worker process and every later run of the same
    settings loads them instead of compiling again. A cache the user configured
    for JAX is left alone; ``EVO_JAX_CACHE=off`` disables it."""
    where = os.environ.get("EVO_JAX_CACHE", os.path.join("~", ".cache", "evo", "jax"))
    if where == "off" or jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    trim_cache(os.path.expanduser(where))


def trim_cache(where: str, max_bytes: int = CACHE_MAX_BYTES) -> None:
    """Delete the least recently written entries of the cache at ``where`` beyond
    ``max_bytes``: traced losses (``loss_mode="trace"``) add one compiled trainer per new
    group of programs (about 0.2 MB each), so a long search would grow it without bound.
    (JAX's own size limit needs a side file per entry and fails on entries written
    without it.)"""
    try:
        entries = [e for e in os.scandir(where) if e.is_file(follow_symlinks=False)]
        stats = sorted(((e.stat().st_mtime, e.stat().st_size, e.path) for e in entries),
                       reverse=True)
    except OSError:  # no cache yet, or not readable: JAX reports its own trouble
        return
    total = 0
    for _, size, path in stats:
        total += size
        if total > max_bytes:
            try:
                os.remove(path)
            except OSError:
                pass


_use_compilation_cache()

# Seconds this process has spent turning Python into compiled code: tracing, lowering
# and XLA's compile (a compilation-cache hit skips the last). JAX reports each as a
# duration event when it ends; a jit traced inside another reports its own, so the
# events are merged as time spans (each ends now and lasts its duration) and their
# union is counted.
_COMPILE_EVENTS = frozenset({"/jax/core/compile/jaxpr_trace_duration",
                             "/jax/core/compile/jaxpr_to_mlir_module_duration",
                             "/jax/core/compile/backend_compile_duration"})
_spans: list[tuple[float, float]] = []
_compile_total = [0.0]


def _on_duration(event: str, seconds: float, **_: Any) -> None:
    if event not in _COMPILE_EVENTS:
        return
    end = time.perf_counter()
    start = end - seconds
    while _spans and _spans[-1][1] >= start:  # overlaps (contains) earlier spans
        s0, e0 = _spans.pop()
        start = min(start, s0)
        _compile_total[0] -= e0 - s0
    _spans.append((start, end))
    _compile_total[0] += end - start
    del _spans[:-64]  # older spans can no longer overlap a new event in practice


jax.monitoring.register_event_duration_secs_listener(_on_duration)


def compile_seconds() -> float:
    """Seconds this process has spent tracing and compiling JAX code so far."""
    return _compile_total[0]


class Buffer(NamedTuple):
    """One agent's replay buffer (uniform sampling, circular)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminal: jax.Array


class Agent(NamedTuple):
    """Everything one agent owns; the trainer vmaps over a leading population axis."""

    params: Any
    target: Any
    opt_state: Any
    buffer: Buffer
    size: jax.Array  # transitions stored so far (saturates at capacity)
    obs: jax.Array
    env_state: Any
    episode_return: jax.Array
    episodes: jax.Array
    returns: jax.Array  # return of every finished episode, in order (up to capacity)
    steps: jax.Array
    updates: jax.Array
    active: jax.Array
    failure: jax.Array  # OK, or NAN with the update at which it happened in `failed_at`
    failed_at: jax.Array
    key: jax.Array


# -- the network ------------------------------------------------------------------------
def init_mlp(key: jax.Array, sizes: Sequence[int]) -> list[tuple[jax.Array, jax.Array]]:
    """PyTorch ``nn.Linear`` initialization: U(±1/√fan_in) for weights and biases."""
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / math.sqrt(fan_in)
        layers.append((jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound),
                       jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound)))
    return layers


def mlp(params: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    """ReLU MLP; the last layer is linear."""
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


# -- the trainer -------------------------------------------------------------------------
class _Setup(NamedTuple):
    """What the compiled functions close over: static for one compilation."""

    config: DQNConfig
    optimizer: Any
    port: Port | None
    obs_dim: int
    n_actions: int
    capacity: int
    max_episodes: int
    max_steps: int
    calls: tuple[bool, bool, bool, bool]  # which of NET_CALLS any program uses
    eps_slope: float
    capacity_nodes: int  # instruction capacity of the programs
    obs_scale: tuple[float, ...] | None = None  # replay stores obs * scale as bytes


@cache
def _obs_codec(obs_scale: tuple[float, ...] | None) -> tuple[Callable, Callable, Any]:
    """How the replay buffer stores observations: ``(encode, decode, dtype)``.

    Float32 as they are, or, for an environment whose values are ``k / n`` with whole
    ``k <= n <= 255`` (``EnvSpec.obs_scale``: MiniGrid's grid codes), the byte ``k``:
    4x less memory. Decoding looks ``k`` up in a table of ``float32(k / n)`` computed
    by numpy, bit-identical to the observation (dividing in XLA is not: it turns a
    division by a constant into a multiplication by its reciprocal)."""
    if obs_scale is None:
        return (lambda o: o), (lambda o: o), jnp.float32
    scale = np.asarray(obs_scale, np.float32)
    levels = int(scale.max()) + 1
    table = (np.arange(levels, dtype=np.float32)[None, :] / scale[:, None]).astype(np.float32)
    base = np.arange(len(scale), dtype=np.int32) * levels

    def encode(obs):
        return jnp.round(obs * scale).astype(jnp.uint8)

    def decode(codes):
        return jnp.asarray(table.reshape(-1))[base + codes.astype(jnp.int32)]

    return encode, decode, jnp.uint8


def _init(setup: _Setup, seed: jax.Array, obs: jax.Array, env_state: Any) -> Agent:
    key = jax.random.PRNGKey(seed)
    key, k_net = jax.random.split(key)
    params = init_mlp(k_net, (setup.obs_dim, *setup.config.hidden, setup.n_actions))
    cap = setup.capacity
    dtype = _obs_codec(setup.obs_scale)[2]
    buffer = Buffer(jnp.zeros((cap, setup.obs_dim), dtype), jnp.zeros(cap, jnp.int32),
                    jnp.zeros(cap), jnp.zeros((cap, setup.obs_dim), dtype), jnp.zeros(cap))
    zero = jnp.zeros((), jnp.int32)
    return Agent(params, params, setup.optimizer.init(params), buffer, zero, obs, env_state,
                 jnp.zeros(()), zero, jnp.zeros(setup.max_episodes + 1), zero, zero,
                 jnp.array(True), zero, zero, key)


class Noise(NamedTuple):
    """One agent's randomness for one environment step, drawn in bulk per chunk
    (a key split per step and per use costs more than the update itself on CPU)."""

    explore: jax.Array  # U(0,1): explore when below ε
    action: jax.Array  # U(0,1): the random action
    env_keys: jax.Array  # (2, key): environment step and reset
    batch: jax.Array  # (updates_per_step, B) U(0,1): minibatch indices
    program: jax.Array  # (updates_per_step, capacity, 2): random-draw ops


def _draw_noise(setup: _Setup, key: jax.Array, n: int) -> Noise:
    """``n`` steps of :class:`Noise` from one key (leading axis: step)."""
    k_u, k_env, k_batch, k_prog = jax.random.split(key, 4)
    u = jax.random.uniform(k_u, (n, 2))
    updates = setup.config.updates_per_step
    return Noise(u[:, 0], u[:, 1], jax.random.split(k_env, n * 2).reshape(n, 2, -1),
                 jax.random.uniform(k_batch, (n, updates, setup.config.batch_size)),
                 program_draws(k_prog, (n, updates), setup.capacity_nodes))


def _act(setup: _Setup, agent: Agent, t: jax.Array, noise: Noise) -> jax.Array:
    cfg = setup.config
    eps = jnp.maximum(cfg.epsilon_end, cfg.epsilon_start + setup.eps_slope * t)
    greedy = jnp.argmax(mlp(agent.params, agent.obs))
    random = jnp.minimum((noise.action * setup.n_actions).astype(jnp.int32),
                         setup.n_actions - 1)
    return jnp.where(noise.explore < eps, random, greedy)


def _record(setup: _Setup, agent: Agent, action, reward, next_obs, reset_obs, terminal,
            done, env_state) -> Agent:
    """Store one transition and do the episode bookkeeping of an active agent."""
    live = agent.active
    pos = agent.steps % setup.capacity
    b = agent.buffer
    encode = _obs_codec(setup.obs_scale)[0]
    buffer = Buffer(b.obs.at[pos].set(encode(agent.obs)), b.action.at[pos].set(action),
                    b.reward.at[pos].set(reward), b.next_obs.at[pos].set(encode(next_obs)),
                    b.terminal.at[pos].set(terminal.astype(jnp.float32)))
    ep_return = agent.episode_return + reward
    ended = done & live
    returns = agent.returns.at[jnp.minimum(agent.episodes, setup.max_episodes)].set(
        jnp.where(ended, ep_return, agent.returns[jnp.minimum(agent.episodes,
                                                              setup.max_episodes)]))
    episodes = agent.episodes + ended
    steps = agent.steps + live
    active = live & (episodes < setup.max_episodes) & (steps < setup.max_steps)
    return agent._replace(
        buffer=buffer,  # an inactive agent only rewrites a slot it never reads again
        size=jnp.where(live, jnp.minimum(agent.size + 1, setup.capacity), agent.size),
        obs=jnp.where(done, reset_obs, next_obs), env_state=env_state,
        episode_return=jnp.where(done, 0.0, ep_return), episodes=episodes, returns=returns,
        steps=steps, active=active)


def _minibatch(setup: _Setup, agent: Agent, batch_u: jax.Array) -> tuple:
    """One agent's uniform minibatch: ``(s, a, r, s', discount)``."""
    size = jnp.maximum(agent.size, 1)
    idx = jnp.minimum((batch_u * size).astype(jnp.int32), size - 1)
    b = agent.buffer
    decode = _obs_codec(setup.obs_scale)[1]
    discount = setup.config.gamma * (1.0 - b.terminal[idx])
    return decode(b.obs[idx]), b.action[idx], b.reward[idx], decode(b.next_obs[idx]), discount


def _net_calls(setup: _Setup, params: Any, target: Any, s: jax.Array, s2: jax.Array
               ) -> jax.Array:
    """``(4, B, A)``: the network applications of :data:`NET_CALLS` that any program of
    the group uses (zeros for the others)."""
    nets = {"Q": params, "Q_targ": jax.lax.stop_gradient(target)}
    states = {"s_t": s, "s_tp1": s2}
    zeros = jnp.zeros((s.shape[0], setup.n_actions))
    return jnp.stack([mlp(nets[net], states[st]) if use else zeros
                      for (net, st), use in zip(NET_CALLS, setup.calls)])


def _apply(setup: _Setup, agent: Agent, loss: jax.Array, grads: Any) -> Agent:
    """An agent's Adam step and target copy, or its failure if not finite."""
    cfg = setup.config
    updates, opt_state = setup.optimizer.update(grads, agent.opt_state, agent.params)
    params = optax.apply_updates(agent.params, updates)
    n = agent.updates + 1
    target = jax.tree.map(lambda p, t: jnp.where(n % cfg.target_update_period == 0, p, t),
                          params, agent.target)
    finite = jnp.isfinite(loss) & _all_finite(params)
    live = agent.active
    keep = live & finite

    def choose(new, old):
        return jax.tree.map(lambda x, y: jnp.where(keep, x, y), new, old)

    failed = live & ~finite
    return agent._replace(
        params=choose(params, agent.params), target=choose(target, agent.target),
        opt_state=choose(opt_state, agent.opt_state), updates=jnp.where(keep, n, agent.updates),
        active=keep, failure=jnp.where(failed, NAN, agent.failure),
        failed_at=jnp.where(failed, n, agent.failed_at))


def _learn(setup: _Setup, agents: Agent, codes: dict, losses: tuple | None,
           batch_u: jax.Array, draws: jax.Array) -> Agent:
    """One minibatch update of every agent of a group with its own loss program.

    ``losses`` None: the interpreter evaluates each agent's instruction arrays
    (``codes``), vmapped. Otherwise one :class:`TracedLoss` per agent, written out in
    the compiled call: the gradient of the sum of the agents' mean losses is each
    agent's own gradient (nothing else depends on its parameters)."""
    s, a, r, s2, discount = jax.vmap(partial(_minibatch, setup))(agents, batch_u)
    if losses is None:
        def one(params, target, code, s, a, r, s2, discount, draws):
            return jax.value_and_grad(lambda p: loss_fn(
                code, _net_calls(setup, p, target, s, s2), a, r, discount, draws).mean())(
                params)

        loss, grads = jax.vmap(one)(agents.params, agents.target, codes, s, a, r, s2,
                                    discount, draws)
    else:
        def total(params):
            qvals = jax.vmap(partial(_net_calls, setup))(params, agents.target, s, s2)
            each = jnp.stack([f(qvals[g], a[g], r[g], discount[g], draws[g]).mean()
                              for g, f in enumerate(losses)])
            return each.sum(), each

        (_, loss), grads = jax.value_and_grad(total, has_aux=True)(agents.params)
    return jax.vmap(partial(_apply, setup))(agents, loss, grads)


def _env_step(setup: _Setup, agent: Agent, t: jax.Array, noise: Noise) -> Agent:
    """Act and step a compiled port for one agent."""
    port = setup.port
    action = _act(setup, agent, t, noise)
    next_obs, state, reward, terminal, _ = port.env.step_env(
        noise.env_keys[0], agent.env_state, action, port.params)
    done = terminal | port.env.is_truncated(state, port.params)
    reset_obs, reset_state = port.env.reset_env(noise.env_keys[1], port.params)
    state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
    return _record(setup, agent, action, reward.astype(jnp.float32), next_obs, reset_obs,
                   terminal, done, state)


def _run_chunk(setup: _Setup, agents: Agent, codes: dict, n_steps: int, t0: jax.Array,
               losses: tuple | None = None) -> Agent:
    """``n_steps`` lockstep steps (:func:`_chunk`); traced losses compile with the quick
    options (:mod:`evo.rl.xla_flags`) for budgets up to :data:`QUICK_COMPILE_UP_TO`."""
    run = _traced_or(_chunk_quick, _chunk_traced, _chunk_default, setup, losses)
    return run(setup, agents, codes, n_steps, t0, losses)


def _chunk(setup: _Setup, agents: Agent, codes: dict, n_steps: int, t0: jax.Array,
           losses: tuple | None = None) -> Agent:
    """``n_steps`` lockstep steps of a group of agents on a compiled port.

    One compilation serves the whole training: learning starts at step
    ``learning_starts`` through a ``cond`` on the (shared, unbatched) step counter,
    and agents past their budget are inactive, so every chunk has the same shape."""
    starts = setup.config.learning_starts
    keys = jax.vmap(jax.random.split)(agents.key)
    agents = agents._replace(key=keys[:, 0])
    noise = jax.vmap(lambda k: _draw_noise(setup, k, n_steps))(keys[:, 1])
    noise = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), noise)  # leading axis: step

    def learn(agents, noise):
        for u in range(setup.config.updates_per_step):
            agents = _learn(setup, agents, codes, losses, noise.batch[:, u],
                            noise.program[:, u])
        return agents

    def body(agents, xs):
        t, noise = xs
        agents = jax.vmap(lambda agent, nz: _env_step(setup, agent, t, nz))(agents, noise)
        agents = jax.lax.cond(t + 1 >= starts, learn, lambda a, _: a, agents, noise)
        return agents, None

    agents, _ = jax.lax.scan(body, agents, (t0 + jnp.arange(n_steps), noise))
    return agents


def _traced_chunk(setup: _Setup, agents: Agent, codes: dict, n_steps: int, t0: jax.Array,
                  losses: tuple | None = None) -> Agent:
    """:func:`_chunk` for traced losses: a function of its own, so that JAX caches its
    compiled trainers apart from the interpreter's and :func:`_evict_traced` drops
    only them (jitting the same function twice shares one cache)."""
    return _chunk(setup, agents, codes, n_steps, t0, losses)


_CHUNK_JIT = dict(static_argnums=(0, 3, 5), donate_argnums=(1,))
_chunk_default = jax.jit(_chunk, **_CHUNK_JIT)  # the interpreter's trainers
_chunk_traced = jax.jit(_traced_chunk, **_CHUNK_JIT)
_chunk_quick = jax.jit(_traced_chunk, **_CHUNK_JIT, compiler_options=quick_compile_options())


def _traced_or(quick: Callable, traced: Callable, interpreter: Callable, setup: _Setup,
               losses: tuple | None) -> Callable:
    """The compiled function a group runs: the interpreter's, or a traced trainer's
    (quick options or XLA's defaults, :func:`_quick`)."""
    if losses is None:
        return interpreter
    return quick if _quick(setup, losses) else traced


def _evict_traced() -> None:
    """Drop the traced trainers from JAX's in-memory cache once a training ends (returns
    or raises).

    Each is compiled for one group's programs, which a search never trains again, and
    JAX keeps every compiled function: about 25 MiB per MiniGrid group at 64-64, so a
    worker's memory grew to 8.3 GB over a 2h21m search. The interpreter's trainers,
    which every batch reuses, stay; a later call with the same programs (``evo compare``
    on another seed count, a test) loads its trainer from the on-disk cache, if on."""
    for fn in (_chunk_traced, _chunk_quick, _host_step_traced, _host_step_quick):
        fn.clear_cache()


def _quick(setup: _Setup, losses: tuple | None) -> bool:
    """Whether a group's trainer compiles with the quick options: traced losses (a
    compile per new group), a budget up to :data:`QUICK_COMPILE_UP_TO` steps and hidden
    layers up to :data:`QUICK_COMPILE_MAX_WIDTH` wide."""
    return (losses is not None and setup.max_steps <= QUICK_COMPILE_UP_TO
            and max(setup.config.hidden, default=0) <= QUICK_COMPILE_MAX_WIDTH)


@partial(jax.jit, static_argnums=(0,), compiler_options=quick_compile_options())
def _reset_all(setup: _Setup, seeds: jax.Array):
    """The compiled port's first observation and state for each seed."""
    port = setup.port
    return jax.vmap(lambda s: port.env.reset_env(
        jax.random.fold_in(jax.random.PRNGKey(s), 1), port.params))(seeds)


@partial(jax.jit, static_argnums=(0,), compiler_options=quick_compile_options())
def _init_all(setup: _Setup, seeds: jax.Array, obs: jax.Array, env_state: Any) -> Agent:
    # Compiled, so that every field is a buffer of its own (the chunks donate them).
    return jax.vmap(partial(_init, setup))(seeds, obs, env_state)


@partial(jax.jit, static_argnums=(0,))
def _act_all(setup: _Setup, agents: Agent, t: jax.Array):
    def one(agent):
        key, k_noise = jax.random.split(agent.key)
        noise = jax.tree.map(lambda x: x[0], _draw_noise(setup, k_noise, 1))
        return _act(setup, agent, t, noise), noise, key

    # Only the new keys come back: returning the agents would copy every replay
    # buffer on each step (a jitted function's outputs are fresh buffers).
    return jax.vmap(one)(agents)


def _host_step(setup: _Setup, agents: Agent, codes: dict, learn: bool, noise: Noise,
               transition: tuple, losses: tuple | None = None) -> Agent:
    """Record host-stepped transitions, then (after learning starts) update; compiled
    like :func:`_run_chunk`."""
    step = _traced_or(_host_step_quick, _host_step_traced, _host_step_default, setup, losses)
    return step(setup, agents, codes, learn, noise, transition, losses)


def _host_record_learn(setup: _Setup, agents: Agent, codes: dict, learn: bool, noise: Noise,
                       transition: tuple, losses: tuple | None = None) -> Agent:
    """What :func:`_host_step` compiles."""

    def record(agent, action, reward, next_obs, reset_obs, terminal, done):
        return _record(setup, agent, action, reward, next_obs, reset_obs, terminal, done,
                       agent.env_state)

    agents = jax.vmap(record)(agents, *transition)
    if learn:
        for u in range(setup.config.updates_per_step):
            agents = _learn(setup, agents, codes, losses, noise.batch[:, u],
                            noise.program[:, u])
    return agents


def _traced_host_record_learn(setup: _Setup, agents: Agent, codes: dict, learn: bool,
                              noise: Noise, transition: tuple, losses: tuple | None = None
                              ) -> Agent:
    """:func:`_host_record_learn` for traced losses, cached apart (see :func:`_traced_chunk`)."""
    return _host_record_learn(setup, agents, codes, learn, noise, transition, losses)


_HOST_JIT = dict(static_argnums=(0, 3, 6), donate_argnums=(1,))
_host_step_default = jax.jit(_host_record_learn, **_HOST_JIT)
_host_step_traced = jax.jit(_traced_host_record_learn, **_HOST_JIT)
_host_step_quick = jax.jit(_traced_host_record_learn, **_HOST_JIT,
                           compiler_options=quick_compile_options())


@cache
def _adam(learning_rate: float, eps: float) -> Any:
    """One optimizer object per setting: the compiled functions are cached by the
    identity of what they close over, so a fresh ``optax.adam`` would recompile."""
    return optax.adam(learning_rate, eps=eps)


def train_population(
    programs: Sequence[Program],
    spec: EnvSpec,
    seeds: Sequence[int],
    config: DQNConfig | None = None,
    budget: Budget | None = None,
    time_limit: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    step_limit: int | None = None,
    max_nodes: int = DEFAULT_MAX_NODES,
    loss_mode: str = "auto",
) -> list[AgentRun]:
    """Train agent ``i`` with loss ``programs[i]`` and seed ``seeds[i]`` on ``spec``.

    All agents train in lockstep in one compiled loop. Never raises for numerical
    trouble: an agent whose loss or parameters stop being finite ends with status
    ``"nan"``; agents still running after ``time_limit`` seconds, or after
    ``step_limit`` steps without finishing their budget, end with ``"timeout"``.

    ``loss_mode`` says how the losses run: ``"interpret"`` (one compiled trainer for any
    programs: the op-code interpreter), ``"trace"`` (each group's programs written into
    its own compiled trainer: faster steps, a compilation per new group), or ``"auto"``
    (:func:`loss_mode_for` the budget).
    """
    if loss_mode not in LOSS_MODES:
        raise ValueError(f"loss_mode {loss_mode!r} is not one of {', '.join(LOSS_MODES)}")
    t_start = time.perf_counter()
    config = config or DQNConfig()
    if len(programs) != len(seeds):
        raise ValueError(f"got {len(programs)} programs for {len(seeds)} seeds; "
                         "give one program per agent")
    seeds = [int(s) for s in seeds]
    requested = len(seeds)
    port = port_for(spec)
    if requested:
        # Pad the population with idle copies of the last agent to whole groups of
        # GROUP agents: they never step, and their lanes are dropped by the first repack.
        extra = bucket_size(requested) - requested
        programs = list(programs) + [programs[-1]] * extra
        seeds = seeds + [seeds[-1]] * extra
    k = len(seeds)
    budget = budget or spec.budget
    capacity = capacity_for(list(programs), max_nodes)
    codes_list = [encode(p, capacity) for p in programs]
    calls = tuple(any(i in c.calls for c in codes_list) for i in range(len(NET_CALLS)))
    codes = {name: jnp.asarray(v) for name, v in ProgramCode.stack(codes_list).items()}
    host_envs = None if port is not None else [spec.make(seed) for seed in seeds]
    episode_cap = _episode_cap(port, host_envs[0] if host_envs else None)
    traced = ([TracedLoss(p, capacity) for p in programs]
              if loss_mode_for(budget, loss_mode, episode_cap) == "trace" else None)
    max_steps = budget.steps or budget.episodes * episode_cap
    if step_limit is not None:
        max_steps = min(max_steps, step_limit)
    max_episodes = budget.episodes or max(1, min(max_steps, 100_000))
    decay = config.epsilon_decay_steps or spec.epsilon_decay_steps
    if config.epsilon_decay_steps is None:
        decay = max(1, min(decay, (budget.steps or budget.episodes * episode_cap) // 2))
    setup = _Setup(config, _adam(config.learning_rate, config.adam_eps), port,
                   spec.obs_dim, spec.n_actions, min(config.buffer_size, max_steps),
                   max_episodes, max_steps, calls,
                   (config.epsilon_end - config.epsilon_start) / decay, capacity,
                   spec.obs_scale)

    if port is None:
        for env, s in zip(host_envs, seeds):
            env.action_space.seed(s)
    # Every compiled call takes one group of GROUP agents: XLA:CPU picks its kernels by
    # size, so a call over the whole batch rounded differently for different batch
    # sizes; groups of one size compute every agent's numbers the same in any batch.
    groups: list[_Group] = []
    for lo in range(0, k, GROUP):
        part = slice(lo, lo + GROUP)
        seeds_arr = jnp.asarray(seeds[part], jnp.uint32)
        envs_part = None
        if port is not None:
            obs, env_state = _reset_all(setup, seeds_arr)
        else:
            envs_part = host_envs[part]
            obs = jnp.asarray(np.stack([e.reset(seed=s)[0]
                                        for e, s in zip(envs_part, seeds[part])]))
            env_state = jnp.zeros(GROUP)
        agents = _init_all(setup, seeds_arr, obs, env_state)
        slots = np.arange(lo, lo + GROUP)
        if lo + GROUP > requested:  # the padding copies never step
            slots = np.where(slots < requested, slots, -1)
            agents = agents._replace(active=agents.active & jnp.asarray(slots >= 0))
        groups.append(_Group(agents, slots, {name: v[part] for name, v in codes.items()},
                             None if traced is None else tuple(traced[part]), envs_part))

    t = 0
    timed_out = False
    next_progress = 1000
    finals: dict[int, _Final] = {}
    try:
        while True:
            # finished groups leave (their results are kept), half-empty ones merge
            groups = _regroup(groups, finals, traced is not None)
            if not groups:
                break
            if port is not None:
                for i, g in enumerate(groups):
                    groups[i] = g._replace(agents=_run_chunk(setup, g.agents, g.codes, CHUNK,
                                                             jnp.int32(t), g.losses))
                t += CHUNK
            else:
                for i, g in enumerate(groups):
                    groups[i] = g._replace(agents=_host_chunk(
                        setup, g.agents, g.codes, g.envs, t, t + 1 >= config.learning_starts,
                        g.losses))
                t += 1
            if time_limit is not None and time.perf_counter() - t_start > time_limit:
                timed_out = True
                break
            if on_progress is not None and t >= next_progress:
                on_progress(t, max_steps)
                next_progress = t + 1000
        for g in groups:
            _keep_finals(g, np.ones(GROUP, bool), finals)
        groups.clear()
    finally:  # also when a host environment or an interrupt raises mid-training
        if traced is not None:
            _evict_traced()
        if host_envs is not None:
            for env in host_envs:
                env.close()
    unfinished = step_limit is not None and (budget.steps or 0) > step_limit
    return _results([finals[i] for i in range(requested)], seeds,
                    time.perf_counter() - t_start, timed_out, time_limit, step_limit,
                    budget.episodes, unfinished)


class _Group(NamedTuple):
    """One compiled call's agents and what goes with them, lane by lane."""

    agents: Agent
    slots: np.ndarray  # each lane's agent: its index in the population, -1 for padding
    codes: dict  # the lanes' instruction arrays (the interpreter's input)
    losses: tuple | None  # the lanes' traced losses (loss mode "trace")
    envs: list | None  # the lanes' host environments (no compiled port)


class _Final(NamedTuple):
    """What an agent's result is made of, on the host."""

    params: Any
    returns: np.ndarray
    episodes: int
    steps: int
    updates: int
    active: bool
    failure: int
    failed_at: int


def _keep_finals(group: _Group, lanes: np.ndarray, finals: dict[int, _Final]) -> None:
    """Copy the result of each of ``group``'s ``lanes`` (a mask) that holds an agent."""
    lanes = lanes & (group.slots >= 0)
    if not lanes.any():
        return
    a = group.agents
    host = jax.device_get((a.params, a.returns, a.episodes, a.steps, a.updates, a.active,
                           a.failure, a.failed_at))
    for lane in np.flatnonzero(lanes):
        params, returns, episodes, steps, updates, active, failure, failed_at = (
            jax.tree.map(lambda x, lane=lane: x[lane], host))
        finals[int(group.slots[lane])] = _Final(
            params, returns, int(episodes), int(steps), int(updates), bool(active),
            int(failure), int(failed_at))


def _regroup(groups: list[_Group], finals: dict[int, _Final], traced: bool) -> list[_Group]:
    """The groups to run next: a group whose agents have all finished leaves (its
    results go to ``finals``, its memory is freed), and the active agents of groups
    that are partly finished move into fewer groups when that saves a compiled call
    per step, or for traced losses (where each new group compiles) when it saves at
    least as many groups as it creates. An agent computes the same numbers in any lane
    of any group (docs/population.md), so moving it changes nothing but the cost."""
    active = [np.asarray(g.agents.active) for g in groups]
    for i, on in enumerate(active):
        if not on.any():
            _keep_finals(groups[i], np.ones(GROUP, bool), finals)
    live = [i for i, on in enumerate(active) if on.any()]
    partial = [i for i in live if not active[i].all()]
    n = sum(int(active[i].sum()) for i in partial)
    new = -(-n // GROUP)
    if len(partial) - new < (max(new, 1) if traced else 1):
        return [groups[i] for i in live]
    for i in partial:
        _keep_finals(groups[i], ~active[i], finals)
    full = [groups[i] for i in live if i not in partial]
    moving = [(groups[i], active[i]) for i in partial]
    groups.clear()  # the caller's references: the old groups are freed while merging
    return full + _merge(moving)


def _merge(partial: list[tuple[_Group, np.ndarray]]) -> list[_Group]:
    """The active lanes of ``partial`` groups packed into whole groups, in order; the
    last is padded with idle copies of its last agent. Copies one field at a time and
    frees the old groups' arrays as it goes (the replay buffers are most of memory)."""
    picks = [(i, lane) for i, (_, on) in enumerate(partial) for lane in np.flatnonzero(on)]
    n = len(picks)
    sizes = [min(GROUP, n - lo) for lo in range(0, n, GROUP)]
    picks += [picks[-1]] * (-n % GROUP)
    packs = [picks[lo:lo + GROUP] for lo in range(0, len(picks), GROUP)]
    treedef = jax.tree.structure(partial[0][0].agents)
    parts = [jax.tree.leaves(g.agents) for g, _ in partial]
    groups = [g._replace(agents=None) for g, _ in partial]
    partial.clear()  # with it the last references to the old groups' agents
    leaves: list[list] = [[] for _ in packs]
    for j in range(len(parts[0])):
        for out, pack in zip(leaves, packs):
            out.append(jnp.concatenate([parts[i][j][lane:lane + 1] for i, lane in pack]))
        for p in parts:
            p[j] = None  # the old group's last reference to this field
    merged = []
    for out, pack, size in zip(leaves, packs, sizes):
        agents = jax.tree.unflatten(treedef, out)
        idle = np.arange(GROUP) >= size
        slots = np.asarray([groups[i].slots[lane] for i, lane in pack])
        if idle.any():
            agents = agents._replace(active=agents.active & jnp.asarray(~idle))
            slots = np.where(idle, -1, slots)
        first = groups[pack[0][0]]
        codes = {name: jnp.stack([groups[i].codes[name][lane] for i, lane in pack])
                 for name in first.codes}
        losses = (None if first.losses is None
                  else tuple(groups[i].losses[lane] for i, lane in pack))
        envs = None if first.envs is None else [groups[i].envs[lane] for i, lane in pack]
        merged.append(_Group(agents, slots, codes, losses, envs))
    return merged


def loss_mode_for(budget: Budget, loss_mode: str = "auto",
                  episode_steps: int | None = None) -> str:
    """The loss mode a training with ``budget`` runs in: ``loss_mode`` itself, or for
    ``"auto"``, ``"trace"`` when an agent may take :data:`TRACE_FROM_STEPS` steps or
    more: its step budget, or for an episode budget, the episodes times the
    environment's episode cap ``episode_steps`` (:func:`episode_steps`; without it an
    episode budget is interpreted)."""
    if loss_mode != "auto":
        return loss_mode
    steps = budget.steps or (budget.episodes or 0) * (episode_steps or 0)
    return "trace" if steps >= TRACE_FROM_STEPS else "interpret"


def episode_steps(spec: EnvSpec) -> int:
    """The episode step cap the trainer assumes for ``spec``: its compiled port's, or
    its environment's time limit (10,000 when it has none)."""
    port = port_for(spec)
    if port is not None:
        return _episode_cap(port, None)
    env = spec.make(0)
    try:
        return _episode_cap(None, env)
    finally:
        env.close()


def _episode_cap(port: Port | None, env: Any) -> int:
    return port.max_steps if port is not None else (max_episode_steps(env) or 10_000)


def bucket_size(k: int) -> int:
    """The population size ``k`` agents are padded to: whole groups of :data:`GROUP`
    (at most ``GROUP − 1`` padded agents)."""
    return max(GROUP, -(-k // GROUP) * GROUP)


def _host_chunk(setup: _Setup, agents: Agent, codes: dict, envs: list, t: int, learn: bool,
                losses: tuple | None) -> Agent:
    """One lockstep step with the environments stepped on the host."""
    actions, noise, keys = _act_all(setup, agents, jnp.int32(t))
    agents = agents._replace(key=keys)
    actions = np.asarray(actions)
    active = np.asarray(agents.active)
    k = len(envs)
    next_obs = np.array(agents.obs)
    reset_obs = next_obs.copy()
    rewards = np.zeros(k, np.float32)
    terminal = np.zeros(k, bool)
    done = np.zeros(k, bool)
    for i in np.flatnonzero(active):
        o, r, term, trunc, _ = envs[i].step(int(actions[i]))
        next_obs[i], rewards[i], terminal[i], done[i] = o, r, term, term or trunc
        reset_obs[i] = envs[i].reset()[0] if done[i] else o
    transition = (jnp.asarray(actions), jnp.asarray(rewards), jnp.asarray(next_obs),
                  jnp.asarray(reset_obs), jnp.asarray(terminal), jnp.asarray(done))
    return _host_step(setup, agents, codes, learn, noise, transition, losses)


def _results(finals: list[_Final], seeds: list[int], seconds: float, timed_out: bool,
             time_limit: float | None, step_limit: int | None, episodes: int | None,
             unfinished: bool) -> list[AgentRun]:
    runs = []
    for f, seed in zip(finals, seeds):
        run = AgentRun(seed, [float(x) for x in f.returns[:f.episodes]], f.steps, f.updates,
                       seconds=seconds)
        if f.failure == NAN:
            run.status = "nan"
            run.reason = f"the loss or the network parameters became NaN/inf at update " \
                         f"{f.failed_at}"
        elif timed_out and f.active:
            run.status = "timeout"
            run.reason = f"exceeded the {time_limit:g} s time limit after {run.steps} steps"
        elif step_limit is not None and run.steps >= step_limit and (
                unfinished or (episodes is not None and f.episodes < episodes)):
            run.status = "timeout"
            run.reason = f"exceeded the step limit of {step_limit} before finishing its budget"
        runs.append(run)
    return runs
