"""Observation wrappers: MiniGrid's full grid and classic control's vectors as flat float32."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from minigrid.core.constants import OBJECT_TO_IDX

import envs
from envs import EnvError, MiniGridFlatObs
from envs.wrappers import FlatFloatObs

LEFT, RIGHT, FORWARD = 0, 1, 2


def _grid(env, obs):
    """The observation as a (width, height, 3) grid of the raw codes."""
    width, height = env.unwrapped.width, env.unwrapped.height
    return np.rint(obs.reshape(width, height, 3) * env._scale).astype(int)


def _agent_cells(env, obs):
    grid = _grid(env, obs)
    return [tuple(p) for p in np.argwhere(grid[:, :, 0] == OBJECT_TO_IDX["agent"])]


@pytest.mark.parametrize(
    "gym_id", ["MiniGrid-Empty-5x5-v0", "MiniGrid-DoorKey-5x5-v0", "MiniGrid-KeyCorridorS3R1-v0"]
)
def test_minigrid_observations_are_the_full_grid_in_0_1(gym_id):
    env = MiniGridFlatObs(gym.make(gym_id))
    obs, _ = env.reset(seed=0)
    width, height = env.unwrapped.width, env.unwrapped.height
    assert env.observation_space == gym.spaces.Box(0, 1, (width * height * 3,), np.float32)
    assert obs.dtype == np.float32 and obs.shape == (width * height * 3,)
    assert obs.min() >= 0.0 and obs.max() <= 1.0
    assert env.observation_space.contains(obs)
    # every value is an integer code divided by its channel's maximum
    np.testing.assert_allclose(
        _grid(env, obs), obs.reshape(width, height, 3) * env._scale, atol=1e-5
    )


def test_the_agent_cell_shows_its_position_and_direction():
    env = MiniGridFlatObs(gym.make("MiniGrid-Empty-5x5-v0"))
    obs, _ = env.reset(seed=0)
    for action in [LEFT, LEFT, FORWARD, RIGHT, FORWARD, RIGHT]:
        (cell,) = _agent_cells(env, obs)
        assert cell == tuple(env.unwrapped.agent_pos)
        assert _grid(env, obs)[cell][2] == env.unwrapped.agent_dir
        obs, *_ = env.step(action)


def test_the_observation_changes_when_the_agent_turns_or_moves():
    env = MiniGridFlatObs(gym.make("MiniGrid-Empty-5x5-v0"))
    start, _ = env.reset(seed=0)
    turned, *_ = env.step(LEFT)
    assert not np.array_equal(start, turned)
    assert _agent_cells(env, start) == _agent_cells(env, turned)  # same cell, new direction
    env.step(RIGHT)  # face the open room again (the agent starts in a corner facing east)
    moved, *_ = env.step(FORWARD)
    assert _agent_cells(env, moved) != _agent_cells(env, start)


def test_the_registry_applies_the_minigrid_wrapper():
    spec = envs.get("MiniGrid-Empty-5x5")
    assert spec.wrappers == (MiniGridFlatObs,)
    assert spec.obs_dim == 5 * 5 * 3


def test_minigrid_wrapper_rejects_other_envs():
    with pytest.raises(EnvError, match="MiniGrid environments"):
        MiniGridFlatObs(gym.make("CartPole-v1"))


def test_flat_float_obs_casts_and_flattens_without_normalizing():
    class Grid(gym.Env):
        observation_space = gym.spaces.Box(-10.0, 10.0, (2, 3), np.float64)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            return np.arange(6, dtype=np.float64).reshape(2, 3) - 2.5, {}

    env = FlatFloatObs(Grid())
    obs, _ = env.reset()
    assert env.observation_space == gym.spaces.Box(-10.0, 10.0, (6,), np.float32)
    assert obs.dtype == np.float32
    assert obs.tolist() == [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]


def test_flat_float_obs_rejects_non_box_observations():
    with pytest.raises(EnvError, match="Box"):
        FlatFloatObs(gym.make("FrozenLake-v1"))


@pytest.mark.parametrize("gym_id", ["MiniGrid-LavaGapS5-v0", "MiniGrid-Dynamic-Obstacles-6x6-v0",
                                    "MiniGrid-DoorKey-5x5-v0", "MiniGrid-MultiRoom-N2-S4-v0"])
def test_skipping_the_unseen_partial_view_changes_no_episode(gym_id):
    """The wrapper stops MiniGrid from computing the 7x7 partial view that the full grid
    replaces; whole episodes match minigrid's own FullyObsWrapper step for step."""
    from minigrid.wrappers import FullyObsWrapper

    fast = MiniGridFlatObs(gym.make(gym_id))
    plain = FullyObsWrapper(gym.make(gym_id))
    actions = np.random.default_rng(0).integers(0, fast.action_space.n, 600)
    for episode in range(3):
        got, _ = fast.reset(seed=episode)
        want, _ = plain.reset(seed=episode)
        for action in actions:
            np.testing.assert_array_equal(got, fast.observation(want))
            got, r1, term1, trunc1, _ = fast.step(int(action))
            want, r2, term2, trunc2, _ = plain.step(int(action))
            assert (r1, term1, trunc1) == (r2, term2, trunc2)
            if term1 or trunc1:
                break
        np.testing.assert_array_equal(got, fast.observation(want))
