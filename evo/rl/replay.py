"""Uniform experience replay for ``k`` agents trained in lockstep."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ReplayBuffer:
    """One ring buffer per agent, stored as arrays with a leading agent axis.

    Transitions are ``(s, a, r, s', terminal)``; a time-limit truncation is not
    terminal, so bootstrapping continues through it.
    """

    def __init__(self, k: int, capacity: int, obs_dim: int, dtype: type = np.float32) -> None:
        self.k, self.capacity = k, int(capacity)
        self.obs = np.zeros((k, self.capacity, obs_dim), dtype)
        self.next_obs = np.zeros((k, self.capacity, obs_dim), dtype)
        self.actions = np.zeros((k, self.capacity), np.int64)
        self.rewards = np.zeros((k, self.capacity), np.float32)
        self.terminal = np.zeros((k, self.capacity), np.float32)
        self.size = np.zeros(k, np.int64)
        self.pos = np.zeros(k, np.int64)

    def add(self, agents: Sequence[int], obs: np.ndarray, actions: np.ndarray,
            rewards: np.ndarray, next_obs: np.ndarray, terminal: np.ndarray) -> None:
        """Add one transition for each agent in ``agents`` (rows of the other arrays)."""
        idx = np.asarray(agents)
        pos = self.pos[idx]
        self.obs[idx, pos] = obs
        self.next_obs[idx, pos] = next_obs
        self.actions[idx, pos] = actions
        self.rewards[idx, pos] = rewards
        self.terminal[idx, pos] = terminal
        self.pos[idx] = (pos + 1) % self.capacity
        self.size[idx] = np.minimum(self.size[idx] + 1, self.capacity)

    def sample(self, rngs: Sequence[np.random.Generator], batch: int) -> tuple[np.ndarray, ...]:
        """A uniform batch per agent: arrays ``(k, batch, ...)``; each agent draws
        with its own generator, so its samples do not depend on the others."""
        rows = np.stack([r.integers(0, max(int(n), 1), batch) for r, n in zip(rngs, self.size)])
        agent = np.arange(self.k)[:, None]
        return (self.obs[agent, rows], self.actions[agent, rows], self.rewards[agent, rows],
                self.next_obs[agent, rows], self.terminal[agent, rows])
