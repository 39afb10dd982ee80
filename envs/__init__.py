"""Where programs are tested: environments, their wrappers, normalization ranges, budgets, hurdles.

``envs.get("CartPole")`` returns an :class:`EnvSpec`, which builds the environment
(Discrete actions, flat float32 observations), normalizes returns to [0, 1] with the
paper's ranges, and carries the training budget and ε schedule length. This package
knows nothing of programs or of the search.
"""

from envs.errors import EnvError
from envs.hurdle_env import DEFAULT_HURDLE, Hurdle
from envs.registry import Budget, EnvSpec, get, list_envs, register
from envs.wrappers import MiniGridFlatObs

__all__ = [
    "DEFAULT_HURDLE",
    "Budget",
    "EnvError",
    "EnvSpec",
    "Hurdle",
    "MiniGridFlatObs",
    "get",
    "list_envs",
    "register",
]
