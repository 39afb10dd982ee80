"""The agent trainer: DQN-style training where the loss is any RL-loss program.

Reads top to bottom like the algorithm in Co-Reyes et al. (2021): act ε-greedily,
store transitions, sample a uniform minibatch, evaluate the loss program on the
network outputs it uses, backpropagate its gradient (from the program's reverse
pass) through the online network by hand, take an Adam step, and copy the online
network into the target network every ``target_update_period`` updates.

Several seeds train in lockstep: their networks share batched matmuls, while every
agent keeps its own environment, replay buffer and random streams, so an agent's
results do not depend on which other agents run beside it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from envs import Budget, EnvSpec
from evo.errors import ConfigError
from evo.rl.qnet import Adam, QNetworks
from evo.rl.replay import ReplayBuffer
from graphs.core.errors import is_int, is_real
from graphs.core.execute import backward, forward
from graphs.core.program import Program


@dataclass(frozen=True)
class DQNConfig:
    """Agent hyperparameters. Defaults are the paper's (reference.md §1.3)."""

    hidden: tuple[int, ...] = (256, 256)  # MLP 256-256, ReLU (§1.3)
    learning_rate: float = 1e-4  # Adam, lr 1e-4 (§1.3)
    adam_eps: float = 1e-8  # not stated in the paper; PyTorch's default, as in the SB3 peer
    batch_size: int = 32  # (§1.3)
    gamma: float = 0.99  # (§1.3)
    updates_per_step: int = 1  # one update per environment step (§1.3)
    target_update_period: int = 100  # hard target copy every 100 updates (§1.3)
    buffer_size: int = 1_000_000  # replay buffer of 1e6 (§1.3)
    learning_starts: int = 1000  # learning starts after 1000 transitions (§1.3)
    epsilon_start: float = 1.0  # ε decays linearly from 1.0 (§1.3) ...
    epsilon_end: float = 0.02  # ... to 0.02-0.05 (§1.3)
    epsilon_decay_steps: int | None = None  # 1e3 classic control, 1e5 MiniGrid (§1.3); None: env's
    score_window: int = 50  # fitness: last 50 training episodes (§1.3)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"DQNConfig.{name} = {getattr(self, name)!r}: {why}")

        if (not isinstance(self.hidden, tuple) or not self.hidden
                or any(not is_int(h) or h < 1 for h in self.hidden)):
            raise bad("hidden", "needs one or more positive layer widths, e.g. (256, 256)")
        for name in ("batch_size", "updates_per_step", "target_update_period", "buffer_size",
                     "score_window"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "must be a positive integer")
        if not is_int(self.learning_starts) or self.learning_starts < 0:
            raise bad("learning_starts", "must be a non-negative integer")
        for name in ("learning_rate", "adam_eps"):
            if not is_real(getattr(self, name), finite=True) or getattr(self, name) <= 0:
                raise bad(name, "must be a positive finite number")
        for name in ("gamma", "epsilon_start", "epsilon_end"):
            value = getattr(self, name)
            if not is_real(value, finite=True) or not 0.0 <= value <= 1.0:
                raise bad(name, "must be a number in [0, 1]")
        if self.epsilon_decay_steps is not None and (
                not is_int(self.epsilon_decay_steps) or self.epsilon_decay_steps < 1):
            raise bad("epsilon_decay_steps", "must be a positive integer or None (the env's)")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


# How the population trainer runs the loss programs (evo.rl.population.train_population):
# "interpret", "trace", or "auto" (chosen by the step budget; docs/population.md).
LOSS_MODES = ("auto", "interpret", "trace")


@dataclass
class AgentRun:
    """What one agent's training produced."""

    seed: int
    episode_returns: list[float] = field(default_factory=list)
    steps: int = 0
    updates: int = 0
    status: str = "ok"  # "ok", "nan" (loss or parameters not finite), "timeout", "error"
    reason: str = ""
    seconds: float = 0.0


# Which observation array each state input of the RL-loss op set reads.
_STATE_SOURCE = {"s_t": 0, "s_tp1": 1}


def max_episode_steps(env: object) -> int | None:
    """The episode step cap of a gymnasium (or MiniGrid) environment, if it has one."""
    spec = getattr(env, "spec", None)
    steps = getattr(spec, "max_episode_steps", None)
    if steps is None:
        steps = getattr(getattr(env, "unwrapped", None), "max_steps", None)
    return int(steps) if steps else None


def train(
    program: Program,
    spec: EnvSpec,
    seeds: Sequence[int],
    config: DQNConfig = DQNConfig(),
    budget: Budget | None = None,
    time_limit: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    step_limit: int | None = None,
) -> list[AgentRun]:
    """Train one agent per seed on ``spec`` (an ``envs.EnvSpec``) with ``program`` as
    the loss, in lockstep. ``budget`` (an ``envs.Budget``) overrides the env's.

    Never raises for numerical trouble: an agent whose loss or parameters stop being
    finite ends with status ``"nan"``; agents still running after ``time_limit``
    seconds, or after ``step_limit`` steps without finishing their budget, end with
    ``"timeout"``.
    """
    t_start = time.perf_counter()
    seeds = [int(s) for s in seeds]
    k = len(seeds)
    budget = budget or spec.budget
    runs = [AgentRun(seed) for seed in seeds]
    envs = [spec.make(seed) for seed in seeds]
    n_actions = spec.n_actions
    obs_dim = spec.obs_dim
    episode_cap = max_episode_steps(envs[0]) or 10_000
    max_steps = budget.steps or budget.episodes * episode_cap
    max_episodes = budget.episodes or math.inf

    rngs = [np.random.default_rng([seed, 0]) for seed in seeds]  # exploration and replay
    program_rngs = [np.random.default_rng([seed, 1]) for seed in seeds]  # random-draw ops
    online = QNetworks((obs_dim, *config.hidden, n_actions),
                       [np.random.default_rng([seed, 2]) for seed in seeds])
    target = online.clone()
    opt = Adam(online.flat, config.learning_rate, eps=config.adam_eps)
    grad_flat = np.zeros_like(online.flat)
    grad_views = online.views(grad_flat)
    buffer = ReplayBuffer(k, min(config.buffer_size, max_steps), obs_dim)

    calls = program.param_calls
    grad_calls = set(program.gradient_calls)
    trainable = {i.name for i in program.inputs if i.trainable}
    decay = config.epsilon_decay_steps or spec.epsilon_decay_steps
    if config.epsilon_decay_steps is None:
        # A budget scaled down below the default schedule still ends exploiting.
        decay = max(1, min(decay, max_steps // 2))
    eps_slope = (config.epsilon_end - config.epsilon_start) / decay

    obs = np.zeros((k, obs_dim), np.float32)
    for i, (env, seed) in enumerate(zip(envs, seeds)):
        obs[i] = env.reset(seed=seed)[0]
        env.action_space.seed(seed)
    episode_return = np.zeros(k)
    active = np.ones(k, dtype=bool)
    step = 0
    next_progress = 1000

    while active.any():
        live = np.flatnonzero(active)
        # -- act ε-greedily --------------------------------------------------------------
        eps = max(config.epsilon_end, config.epsilon_start + eps_slope * step)
        greedy = online(obs[:, None, :])[:, 0, :].argmax(axis=1)
        actions = greedy.copy()
        for i in live:
            if rngs[i].random() < eps:
                actions[i] = rngs[i].integers(n_actions)
        # -- step the environments ---------------------------------------------------------
        next_obs = obs.copy()
        rewards = np.zeros(k, np.float32)
        terminal = np.zeros(k, np.float32)
        reset_obs = {}
        for i in live:
            o, r, term, trunc, _ = envs[i].step(int(actions[i]))
            next_obs[i] = o
            rewards[i] = r
            terminal[i] = term
            episode_return[i] += r
            runs[i].steps += 1
            if term or trunc:
                runs[i].episode_returns.append(float(episode_return[i]))
                episode_return[i] = 0.0
                reset_obs[i] = envs[i].reset()[0]
            if len(runs[i].episode_returns) >= max_episodes or runs[i].steps >= max_steps:
                active[i] = False
            elif step_limit is not None and runs[i].steps >= step_limit:
                _stop(runs[i], active, i, "timeout",
                      f"exceeded the step limit of {step_limit} before finishing its budget")
        buffer.add(live, obs[live], actions[live], rewards[live], next_obs[live], terminal[live])
        obs = next_obs
        for i, o in reset_obs.items():
            obs[i] = o
        step += 1
        # -- learn -------------------------------------------------------------------------
        if step >= config.learning_starts and active.any():
            for _ in range(config.updates_per_step):
                update_step(program, calls, grad_calls, trainable, online, target, opt, buffer,
                        rngs, program_rngs, active, runs, config, grad_flat, grad_views)
                if opt.t % config.target_update_period == 0:
                    target.copy_from(online)
            if opt.t % 100 == 0:
                for i in np.flatnonzero(active & ~online.finite()):
                    _stop(runs[i], active, i, "nan", "network parameters became NaN/inf")
        if step % 64 == 0 and time_limit is not None and \
                time.perf_counter() - t_start > time_limit:
            for i in np.flatnonzero(active):
                _stop(runs[i], active, i, "timeout",
                      f"exceeded the {time_limit:g} s time limit after {runs[i].steps} steps")
        if on_progress is not None and step >= next_progress:
            on_progress(step, max_steps)
            next_progress += 1000
    for env in envs:
        env.close()
    elapsed = time.perf_counter() - t_start
    for run in runs:
        run.seconds = elapsed
    return runs


def _stop(run: AgentRun, active: np.ndarray, i: int, status: str, reason: str) -> None:
    run.status, run.reason = status, reason
    active[i] = False


def update_step(program, calls, grad_calls, trainable, online, target, opt, buffer, rngs,
            program_rngs, active, runs, config, grad_flat, grad_views) -> None:
    """One minibatch update of every agent's online network."""
    batch = buffer.sample(rngs, config.batch_size)
    states = (batch[0], batch[3])
    discount = (config.gamma * (1.0 - batch[4]))[:, :, None]
    rewards = batch[2][:, :, None]
    outputs: dict[tuple[str, str], np.ndarray] = {}
    layer_inputs: dict[tuple[str, str], list[np.ndarray]] = {}
    for key in calls:
        x = states[_STATE_SOURCE[key[1]]]
        if key[0] in trainable:
            outputs[key], acts = online.forward(x)
            if key in grad_calls:
                layer_inputs[key] = acts
        else:
            outputs[key] = target(x)
    k, b = batch[1].shape
    out_grads = {key: np.zeros((k, b, outputs[key].shape[2]), np.float32) for key in grad_calls}
    live = np.flatnonzero(active)
    if program.rowwise:
        # Every agent's minibatch stacked into one program evaluation; rows don't
        # interact, and the cotangent 1/b makes each agent's gradient its own mean's.
        n = len(live)
        feed = {"Q": None, "Q_targ": None, "a_t": batch[1][live].reshape(-1),
                "s_t": None, "s_tp1": None, "r_t": rewards[live].reshape(-1, 1),
                "gamma": discount[live].reshape(-1, 1)}
        outs = {key: out[live].reshape(n * b, -1) for key, out in outputs.items()}
        trace = forward(program, feed, outs)
        losses = np.broadcast_to(trace.output, (n * b, 1)).reshape(n, b).mean(axis=1)
        with np.errstate(all="ignore"):
            grads = backward(trace, seed=1.0 / b)
        for key, g in grads.items():
            out_grads[key][live] = g.reshape(n, b, -1)
        for j, i in enumerate(live):
            if not math.isfinite(losses[j]):
                _stop(runs[i], active, i, "nan", f"the loss became {losses[j]} at update "
                      f"{opt.t + 1}")
                for g in out_grads.values():
                    g[i] = 0.0
            else:
                runs[i].updates += 1
    else:
        for i in live:
            feed = {"Q": None, "Q_targ": None, "a_t": batch[1][i], "s_t": None,
                    "s_tp1": None, "r_t": rewards[i], "gamma": discount[i]}
            trace = forward(program, feed, {key: out[i] for key, out in outputs.items()},
                            program_rngs[i])
            loss = trace.loss
            if not math.isfinite(loss):
                _stop(runs[i], active, i, "nan", f"the loss became {loss} at update {opt.t + 1}")
                continue
            with np.errstate(all="ignore"):
                grads = backward(trace)
            for key, g in grads.items():
                out_grads[key][i] = g
            runs[i].updates += 1
    for n, (key, g) in enumerate(out_grads.items()):
        online.backward(layer_inputs[key], g, grad_views, accumulate=n > 0)
    if out_grads:
        with np.errstate(all="ignore"):  # overflow shows up as NaN parameters, checked later
            opt.step(grad_flat)
