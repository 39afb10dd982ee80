"""Compiled ports of registered environments: gymnax's JAX classic control, and
navix's JAX MiniGrid behind the registered MiniGrid env's observation and reward.

A port is used only where it is proven equivalent to the gymnasium environment the
registry builds (``tests/evo/rl/test_ports.py`` steps both from the same state with
the same actions and compares observations, rewards, termination and truncation).
Anything else, LunarLander and users' own environments included, is stepped on the
host by the same trainer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from envs import EnvSpec, MiniGridFlatObs


@dataclass(frozen=True, eq=False)
class Port:
    """A gymnax environment standing in for one registered gymnasium id.

    Compared and hashed by identity (one object per id, see :func:`port_for`): the
    compiled trainer takes it as a static argument, and some gymnax parameters hold
    arrays, which cannot be hashed."""

    env: Any
    params: Any
    max_steps: int


def _cartpole(max_steps: int) -> Port:
    from gymnax.environments.classic_control import cartpole

    env = cartpole.CartPole()
    return Port(env, env.default_params.replace(max_steps_in_episode=max_steps), max_steps)


def _acrobot() -> Port:
    from gymnax.environments.classic_control import acrobot

    env = acrobot.Acrobot()
    return Port(env, env.default_params, 500)


def _mountain_car() -> Port:
    from gymnax.environments.classic_control import mountain_car

    env = mountain_car.MountainCar()
    return Port(env, env.default_params, 200)


class NavixMiniGrid:
    """A navix environment behind the gymnax calls the trainer makes, seen as the
    registered MiniGrid env sees it.

    * observation: minigrid's fully observed grid (object, colour, state; the agent's
      cell holds its direction), indexed ``[x, y]`` and scaled per channel as
      :class:`envs.MiniGridFlatObs` does, through a table of its own float32 values
      (navix's symbolic grid is the same code, indexed ``[y, x]``);
    * reward: minigrid's ``1 − 0.9·t/max_steps`` on reaching the goal, computed in
      float64 as minigrid does, then float32 (navix pays 1 without the time penalty);
    * termination and truncation as minigrid's (the time limit: ``t >= max_steps``).

    navix's rendering cache, which no symbolic observation reads, is left empty: it
    would otherwise be re-rendered on every reset and carried in every agent's state.
    """

    def __init__(self, navix_id: str, n_actions: int, max_steps: int) -> None:
        import jax.numpy as jnp
        import navix
        from navix.rendering.cache import RenderingCache

        self.env = navix.make(navix_id, max_steps=max_steps,
                              observation_fn=navix.observations.symbolic)
        self.num_actions = n_actions
        self.max_steps = max_steps
        scale = MiniGridFlatObs.channel_scale()
        # values[k, c] = what MiniGridFlatObs makes of code k in channel c
        self._values = np.arange(256, dtype=np.uint8)[:, None] / scale[None, :]
        steps = np.arange(max_steps + 1, dtype=np.float64)
        self._goal_reward = (1 - 0.9 * (steps / max_steps)).astype(np.float32)
        self._no_cache = RenderingCache(patches=jnp.zeros((0, 1, 1, 3), jnp.uint8))

    def _observe(self, grid):  # (H, W, 3) codes, [y, x]
        import jax.numpy as jnp

        codes = jnp.transpose(grid, (1, 0, 2)).astype(jnp.int32)
        return jnp.asarray(self._values)[codes, jnp.arange(3)].reshape(-1)

    def reset_env(self, key, params=None):
        step = self.env.reset(key, self._no_cache)
        return self._observe(step.observation), step

    def step_env(self, key, state, action, params=None):
        import jax.numpy as jnp

        state = state.replace(state=state.state.replace(key=key))
        nxt = self.env._step(state, action)  # no auto-reset: the trainer resets
        reward = jnp.where(nxt.reward > 0, jnp.asarray(self._goal_reward)[nxt.t], nxt.reward)
        return (self._observe(nxt.observation), nxt, reward.astype(jnp.float32),
                nxt.step_type == 2, {})

    def is_truncated(self, state, params=None):
        return state.t >= self.max_steps


def _navix(navix_id: str, n_actions: int, max_steps: int) -> Port | None:
    try:
        return Port(NavixMiniGrid(navix_id, n_actions, max_steps), None, max_steps)
    except ImportError as err:  # an environment installed before navix was a dependency
        warnings.warn(f"{navix_id}: navix is not importable ({err}); MiniGrid steps on the "
                      "host instead. `pip install -e .` installs it.", RuntimeWarning,
                      stacklevel=3)
        return None


PORTS = {
    "CartPole-v0": lambda: _cartpole(200),
    "CartPole-v1": lambda: _cartpole(500),
    "Acrobot-v1": _acrobot,
    "MountainCar-v0": _mountain_car,
    # MiniGrid ids whose navix twin is proven equivalent (tests/evo/rl/test_ports.py):
    # the deterministic rooms, and LavaGap, whose random layout (the gap's column and
    # row) navix draws from the same uniform ranges as minigrid and whose steps are
    # deterministic. Random starts (Empty-Random), moving obstacles (Dynamic-Obstacles)
    # and the other random layouts draw from distributions navix does not reproduce, and
    # are stepped on the host.
    "MiniGrid-Empty-5x5-v0": lambda: _navix("Navix-Empty-5x5-v0", 7, 100),
    "MiniGrid-Empty-6x6-v0": lambda: _navix("Navix-Empty-6x6-v0", 7, 144),
    "MiniGrid-Empty-8x8-v0": lambda: _navix("Navix-Empty-8x8-v0", 7, 256),
    "MiniGrid-LavaGapS5-v0": lambda: _navix("Navix-LavaGapS5-v0", 7, 100),
    "MiniGrid-LavaGapS6-v0": lambda: _navix("Navix-LavaGapS6-v0", 7, 144),
}
# the only wrapper a port reproduces, per id prefix
_PORT_WRAPPERS = {"MiniGrid-": (MiniGridFlatObs,)}


def port_for(spec: EnvSpec) -> Port | None:
    """The compiled port of ``spec``, or None when it must be stepped on the host."""
    if spec.entry_point is not None or spec.make_kwargs or spec.gym_id not in PORTS:
        return None
    expected = next((w for prefix, w in _PORT_WRAPPERS.items()
                     if spec.gym_id.startswith(prefix)), ())
    if tuple(spec.wrappers) != expected:
        return None
    return _port(spec.gym_id)


@cache
def _port(gym_id: str) -> Port | None:
    # One object per id: compiled functions are cached by the identity of the port.
    return PORTS[gym_id]()
