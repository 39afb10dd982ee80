"""The compiled ports step exactly as the gymnasium environments the registry builds.

Each port (``evo.rl.ports``) is checked against ``spec.make()`` of the environment it
stands in for, through the very calls the trainer makes (``env.step_env`` without
auto-reset, then ``env.is_truncated``; ``evo/rl/population.py``):

* one transition at a time, in float32 as the trainer runs: gymnasium's state (and
  its ``TimeLimit`` step count) is copied into the gymnax state before every step, and
  observation, reward, termination, truncation and the next state are compared, across
  both kinds of episode end (a goal-seeking and a random policy take turns, so each env
  both terminates and truncates at its registered ``max_episode_steps``);
* whole episodes, free-running from a copied reset state, in float64: the port then
  follows gymnasium's float64 trajectory to round-off;
* the initial-state distribution of ``reset_env`` against gymnasium's ``reset``.

What differs, measured and pinned here: the trainer runs the port in float32, while
gymnasium integrates in float64. One step from the same state agrees to float32
round-off, but the dynamics amplify round-off wherever they are unstable: a balanced
CartPole's float32 trajectory leaves gymnasium's (by more than 1e-6) after about 50
steps and is ~0.1 away after 200 (different but equally valid episodes; see
``test_float32_episodes_drift_only_where_the_dynamics_amplify_round_off``). In float64 the
port tracks whole 200-step CartPole-v0 episodes to 1e-9, yet a balanced 500-step
CartPole-v1 episode still parts from gymnasium after ~300 steps, from single-ulp
differences between XLA's and numpy's sin/cos. CartPole-v1 is in the port table but
not registered (the registry's CartPole is v0); it is checked through an unregistered
spec of its own.

MiniGrid's Empty rooms run on navix behind the registered env's observation and reward
(``evo.rl.ports.NavixMiniGrid``); they are deterministic, so whole episodes are played
free-running from reset on both sides and compared exactly, every step. LavaGap's
layout is random: its episodes start from the same layout on both sides (a navix key
whose reset shows minigrid's initial observation), and the layouts' frequencies are
compared separately.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import Budget, EnvSpec
from evo.rl.ports import Port, port_for

CARTPOLE_V1 = EnvSpec("CartPole-v1", "CartPole-v1", 0, 500, Budget(episodes=400), "classic",
                      1_000)
SPECS = {
    "CartPole": envs.get("CartPole"),  # CartPole-v0, 200 steps
    "CartPole-v1": CARTPOLE_V1,
    "Acrobot": envs.get("Acrobot"),
    "MountainCar": envs.get("MountainCar"),
}
# gymnax state fields, in the order of gymnasium's ``env.unwrapped.state``
FIELDS = {
    "CartPole": ("x", "x_dot", "theta", "theta_dot"),
    "Acrobot": ("joint_angle1", "joint_angle2", "velocity_1", "velocity_2"),
    "MountainCar": ("position", "velocity"),
}
# gymnasium's reset distribution: each state variable uniform in [low, high]
RESET_BOUNDS = {
    "CartPole": [(-0.05, 0.05)] * 4,
    "Acrobot": [(-0.1, 0.1)] * 4,
    "MountainCar": [(-0.6, -0.4), (0.0, 0.0)],
}


def _goal(name: str) -> Callable[[np.ndarray], int]:
    """A policy that ends episodes the other way than a random one does."""
    if name.startswith("CartPole"):  # balances: episodes run into the time limit
        return lambda o: int(o[2] + 0.5 * o[3] > 0)
    if name == "Acrobot":  # torque along the second joint's velocity: swings up in ~90 steps
        return lambda o: 2 if o[5] > 0 else 0
    return lambda o: 2 if o[1] >= 0 else 0  # MountainCar: pump energy, reach the flag


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit:
    while not isinstance(env, gym.wrappers.TimeLimit):
        env = env.env
    return env


class Stepper:
    """The trainer's transition, from a state given as a vector and a step count."""

    def __init__(self, name: str, spec: EnvSpec) -> None:
        self.port: Port = port_for(spec)
        self.family = name.split("-")[0]
        self.fields = FIELDS[self.family]
        env, params = self.port.env, self.port.params
        state_type = type(env.reset_env(jax.random.PRNGKey(0), params)[1])
        self.observe = jax.jit(lambda vec: env.get_obs(
            state_type(time=0, **dict(zip(self.fields, vec)))))

        def step(vec, time, action):
            state = state_type(time=time, **dict(zip(self.fields, vec)))
            obs, nxt, reward, terminated, _ = env.step_env(jax.random.PRNGKey(0), state,
                                                           action, params)
            truncated = env.is_truncated(nxt, params)
            return (obs, jnp.stack([getattr(nxt, f) for f in self.fields]), nxt.time, reward,
                    terminated, truncated)

        self._step = jax.jit(step)

    def __call__(self, vec, time: int, action: int):
        obs, vec, time, reward, terminated, truncated = self._step(vec, jnp.int32(time),
                                                                   jnp.int32(action))
        return (np.asarray(obs), np.asarray(vec), int(time), float(reward), bool(terminated),
                bool(truncated))


def _gym_state(env: gym.Env) -> np.ndarray:
    return np.asarray(env.unwrapped.state, np.float64)


def _episodes(name: str, spec: EnvSpec, compare: Callable, n: int = 4, random_only=False):
    """Play ``n`` episodes of the registered env (goal-seeking and random policies taking
    turns), calling ``compare(step_index, action, gym_result)`` after each step; returns
    (terminations, truncations)."""
    env = spec.make(0)
    limit = _time_limit(env)
    rng = np.random.default_rng(0)
    goal = _goal(name)
    ends = [0, 0]
    try:
        for episode in range(n):
            obs, _ = env.reset(seed=episode)
            compare(None, None, (obs, env))  # a new episode: re-sync
            greedy = not random_only and episode % 2 == 0
            for t in range(limit._max_episode_steps):
                use_goal = greedy and rng.random() < 0.9
                action = goal(obs) if use_goal else int(rng.integers(spec.n_actions))
                obs, reward, terminated, truncated, _ = env.step(action)
                compare(t, action, (obs, reward, terminated, truncated, env))
                if terminated or truncated:
                    ends[0] += terminated
                    ends[1] += truncated
                    break
            else:
                raise AssertionError("gymnasium's episode did not end at its time limit")
    finally:
        env.close()
    return tuple(ends)


@pytest.mark.parametrize("name", list(SPECS))
def test_a_port_stands_in_for_the_registered_env(name):
    spec = SPECS[name]
    port = port_for(spec)
    assert port is not None
    env = spec.make(0)
    try:
        assert port.max_steps == port.params.max_steps_in_episode == env.spec.max_episode_steps
        assert port.env.num_actions == spec.n_actions
        obs, _ = port.env.reset_env(jax.random.PRNGKey(0), port.params)
        assert obs.shape == (spec.obs_dim,) == env.observation_space.shape
        assert obs.dtype == env.observation_space.dtype == np.float32
        # no observation encoding: the trainer's observation is the env's own
        wrapper = env
        while wrapper is not env.unwrapped:
            assert not isinstance(wrapper, gym.ObservationWrapper), wrapper
            wrapper = wrapper.env
    finally:
        env.close()


@pytest.mark.parametrize("name", ["CartPole", "CartPole-v1", "MountainCar", "Acrobot"])
def test_a_port_can_be_a_static_argument_of_the_compiled_trainer(name):
    port = port_for(SPECS[name])
    assert hash(port) == hash(port_for(SPECS[name]))  # one object per id: one compilation


def test_environments_without_a_port_are_stepped_on_the_host():
    assert port_for(envs.get("LunarLander")) is None
    # moving obstacles and random starts draw from minigrid's own random stream
    assert port_for(envs.get("MiniGrid-Dynamic-Obstacles-5x5")) is None
    assert port_for(envs.get("MiniGrid-Empty-Random-5x5")) is None
    grid = envs.get("MiniGrid-Empty-5x5")
    assert port_for(grid) is not None
    # the port reproduces MiniGridFlatObs, and only that
    assert port_for(dataclasses.replace(grid, wrappers=())) is None
    wrapped = EnvSpec("CP", "CartPole-v0", 0, 200, Budget(episodes=1), "classic", 1_000,
                      wrappers=(gym.wrappers.ClipReward,))
    assert port_for(wrapped) is None


@pytest.mark.parametrize("name", list(SPECS))
def test_each_transition_matches_in_float32(name):
    """From gymnasium's state, one trainer step gives gymnasium's next step: observation
    and next state to float32 round-off, reward, termination and truncation exactly."""
    spec = SPECS[name]
    step = Stepper(name, spec)
    # measured: 2.4e-7 (CartPole, MountainCar), 7.2e-7 (Acrobot: four float32 RK4 stages)
    tol = 1e-6 if name == "Acrobot" else 5e-7
    here = {}

    def compare(t, action, result):
        if t is None:  # reset: nothing carries over
            here["vec"] = _gym_state(result[1]).astype(np.float32)
            here["time"] = 0
            np.testing.assert_allclose(step.observe(here["vec"]), result[0], rtol=0, atol=tol)
            return
        obs, reward, terminated, truncated, env = result
        g_obs, g_vec, g_time, g_reward, g_term, g_trunc = step(here["vec"], here["time"], action)
        assert (g_reward, g_term, g_trunc) == (reward, terminated, truncated), (t, action)
        assert g_time == _time_limit(env)._elapsed_steps
        np.testing.assert_allclose(g_obs, obs, rtol=0, atol=tol, err_msg=f"step {t}")
        state = _gym_state(env)
        np.testing.assert_allclose(g_vec, state, rtol=tol, atol=tol, err_msg=f"step {t}")
        here["vec"], here["time"] = state.astype(np.float32), g_time  # re-sync

    terminations, truncations = _episodes(name, spec, compare)
    assert terminations >= 2 and truncations >= 2, (terminations, truncations)


@pytest.mark.parametrize("name", list(SPECS))
def test_whole_episodes_match_in_float64(name):
    """Free-running from gymnasium's reset state, the port in float64 reproduces every
    step of gymnasium's episodes (CartPole-v1: random episodes only; balanced for 500
    steps its chaos amplifies ulp differences of sin/cos, see the module docstring)."""
    spec = SPECS[name]
    with jax.enable_x64(True):
        step = Stepper(name, spec)
        here = {}

        def compare(t, action, result):
            if t is None:
                here["vec"], here["time"] = _gym_state(result[1]), 0
                return
            obs, reward, terminated, truncated, env = result
            g_obs, here["vec"], here["time"], g_reward, g_term, g_trunc = step(
                here["vec"], here["time"], action)
            assert g_obs.dtype == np.float64
            assert (g_reward, g_term, g_trunc) == (reward, terminated, truncated), (t, action)
            np.testing.assert_allclose(here["vec"], _gym_state(env), rtol=0, atol=1e-9,
                                       err_msg=f"step {t}")
            np.testing.assert_allclose(g_obs.astype(np.float32), obs, rtol=2e-7, atol=1e-7)

        terminations, truncations = _episodes(name, spec, compare,
                                              random_only=name == "CartPole-v1")
    assert terminations + truncations == 4
    if name != "CartPole-v1":
        assert terminations >= 2 and truncations >= 2


def test_float32_episodes_drift_only_where_the_dynamics_amplify_round_off():
    """The trainer's float32 episodes: short (random) CartPole episodes and MountainCar
    follow gymnasium's to 1e-5; a balanced CartPole-v0 episode drifts (measured ~0.08-0.16
    after 200 steps), because balancing is unstable dynamics that amplify round-off."""
    drift = {}
    for name, random_only, atol in [("CartPole", True, 1e-5), ("MountainCar", False, 1e-5),
                                    ("CartPole", False, None)]:
        spec = SPECS[name]
        step = Stepper(name, spec)
        here = {"err": 0.0}

        def compare(t, action, result, step=step, here=here, atol=atol):
            if t is None:
                here["vec"], here["time"] = _gym_state(result[1]).astype(np.float32), 0
                return
            obs, reward, terminated, truncated, env = result
            g_obs, here["vec"], here["time"], g_reward, g_term, g_trunc = step(
                here["vec"], here["time"], action)
            here["err"] = max(here["err"], float(np.max(np.abs(g_obs - obs))))
            if atol is not None:
                assert (g_reward, g_term, g_trunc) == (reward, terminated, truncated)
                np.testing.assert_allclose(g_obs, obs, rtol=0, atol=atol, err_msg=f"step {t}")

        _episodes(name, spec, compare, random_only=random_only)
        drift[name, random_only] = here["err"]
    assert drift["CartPole", False] > 1e-3  # the float32 trajectory is a different one


@pytest.mark.parametrize("name", ["CartPole", "Acrobot", "MountainCar"])
def test_reset_draws_from_gymnasiums_initial_distribution(name):
    """The trainer's ``reset_env`` draws each state variable from the same uniform
    range as gymnasium's ``reset`` (two-sample Kolmogorov-Smirnov, 2000 draws each)."""
    from scipy.stats import ks_2samp

    spec = SPECS[name]
    port = port_for(spec)
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    _, states = jax.vmap(lambda k: port.env.reset_env(k, port.params))(keys)
    ours = np.stack([np.asarray(getattr(states, f), np.float64) for f in FIELDS[name]], axis=1)
    assert np.all(np.asarray(states.time) == 0)
    env = spec.make()
    try:
        theirs = np.stack([(env.reset(seed=s), _gym_state(env))[1] for s in range(2000)])
    finally:
        env.close()
    for j, (low, high) in enumerate(RESET_BOUNDS[name]):
        for sample in (ours[:, j], theirs[:, j]):
            assert low <= sample.min() and sample.max() <= high
        if high > low:
            assert ks_2samp(ours[:, j], theirs[:, j]).pvalue > 1e-3, FIELDS[name][j]
            assert ours[:, j].min() < low + 0.01 * (high - low)
            assert ours[:, j].max() > high - 0.01 * (high - low)


# -- MiniGrid (navix) --------------------------------------------------------------------
MINIGRID = ["MiniGrid-Empty-5x5", "MiniGrid-Empty-6x6", "MiniGrid-Empty-8x8"]


def _navix_calls(port: Port) -> tuple[Callable, Callable]:
    """The port's reset and step as the trainer calls them (no auto-reset), jitted."""

    def step(state, action):
        obs, nxt, reward, terminal, _ = port.env.step_env(jax.random.PRNGKey(0), state,
                                                          action, port.params)
        return obs, nxt, reward, terminal, port.env.is_truncated(nxt, port.params)

    return jax.jit(lambda key: port.env.reset_env(key, port.params)), jax.jit(step)


def _step_both(env: gym.Env, step: Callable, state, action: int, where: tuple
               ) -> tuple[object, float, bool, bool]:
    """Step minigrid and the port with ``action``; assert observation, reward,
    termination and truncation equal exactly. Returns the port's state and minigrid's
    reward, terminated, truncated."""
    obs, reward, terminated, truncated, _ = env.step(action)
    p_obs, state, p_reward, p_term, p_trunc = step(state, jnp.int32(action))
    assert np.array_equal(np.asarray(p_obs), obs), (*where, action)
    assert float(p_reward) == float(np.float32(reward)), where
    assert (bool(p_term), bool(p_trunc)) == (terminated, truncated), where
    return state, reward, terminated, truncated


def _toward_goal(env: gym.Env) -> int:
    """Empty rooms: go east along the top row, then south to the goal in the corner."""
    grid = env.unwrapped
    x, _ = grid.agent_pos
    heading = 0 if x < grid.width - 2 else 1  # 0 east, 1 south
    return 2 if grid.agent_dir == heading else 1  # forward, or turn right


@pytest.mark.parametrize("name", MINIGRID)
def test_a_minigrid_port_plays_minigrids_episodes_bit_for_bit(name):
    """Free-running from reset with the same actions (all 7, the no-ops included), the
    navix port gives minigrid's observation (MiniGridFlatObs), reward, termination and
    truncation exactly, over episodes that reach the goal and episodes that time out."""
    spec = envs.get(name)
    port = port_for(spec)
    env = spec.make(0)
    assert port.env.num_actions == spec.n_actions == env.action_space.n
    assert port.max_steps == env.unwrapped.max_steps
    reset, step = _navix_calls(port)
    rng = np.random.default_rng(0)
    ends, goal_rewards = [0, 0], set()
    try:
        for episode in range(6):
            obs, _ = env.reset(seed=episode)
            p_obs, state = reset(jax.random.PRNGKey(episode))
            assert p_obs.dtype == np.float32 and np.array_equal(np.asarray(p_obs), obs)
            greedy = episode % 2 == 0
            for t in range(port.max_steps):
                action = (_toward_goal(env) if greedy and rng.random() < 0.7
                          else int(rng.integers(spec.n_actions)))
                state, reward, terminated, truncated = _step_both(env, step, state, action,
                                                                  (episode, t))
                if terminated or truncated:
                    ends[0] += terminated
                    ends[1] += truncated and not terminated
                    if reward > 0:
                        goal_rewards.add(float(reward))
                    break
    finally:
        env.close()
    assert ends[0] >= 3 and ends[1] >= 1  # both kinds of episode end were compared
    assert len(goal_rewards) >= 2  # minigrid's time penalty, at several step counts


def test_without_navix_minigrid_steps_on_the_host_with_a_warning(monkeypatch):
    from evo.rl import ports

    def missing(*args):
        raise ImportError("No module named 'navix'")

    monkeypatch.setattr(ports, "NavixMiniGrid", missing)
    with pytest.warns(RuntimeWarning, match="navix is not importable.*steps on the host"):
        assert ports._navix("Navix-Empty-5x5-v0", 7, 100) is None


# LavaGap draws its layout at reset: navix from its JAX key, minigrid from numpy. The
# port is checked from the same layout (a navix key found whose reset shows minigrid's
# initial observation) and on the distribution of layouts.
LAVA = ["MiniGrid-LavaGapS5", "MiniGrid-LavaGapS6"]


def _layouts(port: Port, n: int) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """For navix keys 0..n-1: the first key of each initial observation, and counts."""
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(n))
    obs, _ = jax.jit(jax.vmap(lambda k: port.env.reset_env(k, port.params)))(keys)
    first: dict[bytes, int] = {}
    counts: dict[bytes, int] = {}
    for i, o in enumerate(np.asarray(obs)):
        b = o.tobytes()
        first.setdefault(b, i)
        counts[b] = counts.get(b, 0) + 1
    return first, counts


def _toward(env: gym.Env, cell: tuple[int, int]) -> int:
    """The action that brings the agent one step along a shortest lava-free path to
    ``cell`` (forward, or turn right)."""
    from collections import deque

    grid = env.unwrapped
    start = tuple(int(v) for v in grid.agent_pos)
    prev = {start: None}
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        if (x, y) == cell:
            break
        for dx, dy in ((1, 0), (0, 1), (-1, 0), (0, -1)):
            nxt = (x + dx, y + dy)
            obj = grid.grid.get(*nxt)
            if nxt not in prev and (obj is None or obj.type == "goal"):
                prev[nxt] = (x, y)
                queue.append(nxt)
    step = cell
    while prev.get(step) not in (start, None):
        step = prev[step]
    heading = {(1, 0): 0, (0, 1): 1, (-1, 0): 2, (0, -1): 3}[
        (step[0] - start[0], step[1] - start[1])]
    return 2 if grid.agent_dir == heading else 1


@pytest.mark.parametrize("name", LAVA)
def test_a_lavagap_port_plays_minigrids_episodes_bit_for_bit_from_the_same_layout(name):
    """From the same layout, with the same actions (all 7), the navix port gives
    minigrid's observation, reward, termination and truncation exactly, over episodes
    that reach the goal, fall into the lava and time out."""
    spec = envs.get(name)
    port = port_for(spec)
    assert port is not None and port.max_steps == spec.make(0).unwrapped.max_steps
    first, _ = _layouts(port, 256)
    reset, step = _navix_calls(port)
    rng = np.random.default_rng(0)
    env = spec.make(0)
    ends = {"goal": 0, "lava": 0, "time": 0}
    try:
        for episode in range(9):
            obs, _ = env.reset(seed=episode)
            p_obs, state = reset(jax.random.PRNGKey(first[obs.tobytes()]))
            assert np.array_equal(np.asarray(p_obs), obs)
            goal = tuple(int(v) for v in env.unwrapped.goal_pos)
            # towards the goal with some random steps; at random (into the lava, mostly);
            # wandering without stepping onto lava or the goal (times out)
            policy = ("goal", "random", "wander")[episode % 3]
            for t in range(port.max_steps):
                action = (_toward(env, goal) if policy == "goal" and rng.random() < 0.8
                          else int(rng.integers(spec.n_actions)))
                front = env.unwrapped.grid.get(*env.unwrapped.front_pos)
                if policy == "wander" and action == 2 and front is not None \
                        and front.type != "wall":
                    action = 0
                state, reward, terminated, truncated = _step_both(env, step, state, action,
                                                                  (episode, t))
                if terminated or truncated:
                    ends["goal" if reward > 0 else "lava" if terminated else "time"] += 1
                    break
    finally:
        env.close()
    assert min(ends.values()) >= 1, ends  # every kind of episode end was compared


@pytest.mark.parametrize("name", LAVA)
def test_a_lavagap_port_draws_minigrids_layouts_equally_often(name):
    """Every layout minigrid draws, navix draws, and no other; their frequencies agree
    (chi-square test of homogeneity over 3,000 resets each)."""
    from scipy.stats import chi2_contingency

    spec = envs.get(name)
    port = port_for(spec)
    _, ours = _layouts(port, 3000)
    env = spec.make(0)
    theirs: dict[bytes, int] = {}
    try:
        for seed in range(3000):
            b = env.reset(seed=seed)[0].tobytes()
            theirs[b] = theirs.get(b, 0) + 1
    finally:
        env.close()
    assert set(ours) == set(theirs)
    size = int(name[-1])
    assert len(ours) == (size - 4) * (size - 2)  # gap column x gap row
    table = [[ours[b] for b in ours], [theirs[b] for b in ours]]
    assert chi2_contingency(table).pvalue > 1e-3
