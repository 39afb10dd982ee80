"""Observation wrappers that turn environments into flat float32 vectors for an MLP agent."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.errors import EnvError


class FlatFloatObs(gym.ObservationWrapper):
    """Box observations cast to a 1-D float32 vector, values unchanged (classic control)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise _error(f"FlatFloatObs needs a Box observation space, got {space}")
        self.observation_space = gym.spaces.Box(
            low=space.low.astype(np.float32).reshape(-1),
            high=space.high.astype(np.float32).reshape(-1),
            dtype=np.float32,
        )

    def observation(self, observation):
        return np.asarray(observation, dtype=np.float32).reshape(-1)


class MiniGridFlatObs(gym.ObservationWrapper):
    """The fully observed MiniGrid grid, each channel scaled to [0, 1], flattened to float32.

    minigrid's ``FullyObsWrapper`` encodes every cell as (object, colour, state); the
    agent's cell holds the object 'agent' and, as its state, the agent's direction
    (0-3), so position and heading are both visible. The paper's agent sees this grid
    "normalized and flattened" (reference.md §1.3); each channel is divided by its
    largest possible value: the last object index, the last colour index, and 3 (door
    states 0-2, directions 0-3). What the agent carries is not encoded, but a picked-up
    key is gone from the grid.

    ``obs_scale`` says how compactly the observations store: every value is
    ``k / obs_scale[i]`` for a whole ``k`` from 0 to ``obs_scale[i]``, so a replay
    buffer can keep one byte per value and decode it exactly.
    """

    def __init__(self, env: gym.Env) -> None:
        # minigrid is imported here, not at module level, so that `import envs` stays fast.
        from minigrid.minigrid_env import MiniGridEnv
        from minigrid.wrappers import FullyObsWrapper

        if not isinstance(env.unwrapped, MiniGridEnv):
            raise _error(f"MiniGridFlatObs wraps MiniGrid environments, got {env.unwrapped}")
        super().__init__(FullyObsWrapper(env))
        _skip_partial_view(env.unwrapped)
        self._scale = self.channel_scale()
        width, height, channels = self.env.observation_space["image"].shape
        self.obs_scale = np.tile(self._scale, width * height)
        self.observation_space = gym.spaces.Box(
            0.0, 1.0, (width * height * channels,), dtype=np.float32
        )

    @staticmethod
    def channel_scale() -> np.ndarray:
        """What each channel is divided by: the last object index, the last colour
        index, and 3 (the largest state or direction)."""
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

        return np.array([max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()), 3],
                        dtype=np.float32)

    def observation(self, observation):
        return (observation["image"] / self._scale).astype(np.float32, copy=False).reshape(-1)


def _skip_partial_view(env) -> None:
    """Stop ``env`` from computing the agent's partial 7x7 view on every step.

    ``MiniGridEnv.step`` and ``reset`` build the partial view (slice, rotate and
    occlusion of the grid: about 60% of a step), and ``FullyObsWrapper`` then replaces
    it with the full grid, so the view is never seen. ``gen_obs`` only reads the
    environment; here it returns an all-zero view of the right shape instead, so the
    observation this wrapper returns is unchanged (``tests/envs/test_wrappers.py``
    compares whole episodes with and without it).
    """
    view = np.zeros(env.observation_space["image"].shape, np.uint8)

    def gen_obs() -> dict:
        return {"image": view, "direction": env.agent_dir, "mission": env.mission}

    env.gen_obs = gen_obs


def _error(message: str) -> Exception:
    return EnvError(message, where="wrappers")
