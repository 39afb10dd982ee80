"""The environments that programs are trained on: ids, normalization ranges, budgets.

Every environment is an :class:`EnvSpec` in one registry, found by :func:`get` under
its short id (``"CartPole"``, ``"MiniGrid-DoorKey-5x5"``) or its gym id
(``"CartPole-v0"``), in any case. Ranges, budgets and ε schedules are the paper's
(reference.md §1.3). Registering builds nothing: an environment is built by
:meth:`EnvSpec.make`, and once, lazily, to learn ``obs_dim`` and ``n_actions``.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import gymnasium as gym
import numpy as np

from envs.errors import EnvError, close_names, is_real, positive_whole, quoted, unknown
from envs.wrappers import FlatFloatObs, MiniGridFlatObs

FAMILIES = ("classic", "minigrid", "custom")


@dataclass(frozen=True)
class Budget:
    """How long one training run may last: training stops at whichever limit comes first."""

    episodes: int | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("episodes", "steps"):
            object.__setattr__(self, name, positive_whole(name, getattr(self, name)))
        if self.episodes is None and self.steps is None:
            raise EnvError(
                "a budget needs at least one positive limit, "
                "e.g. Budget(episodes=400) or Budget(steps=200_000)",
                where="budget",
            )

    def scaled(self, factor: float) -> Budget:
        """Each limit times ``factor`` (rounded, at least 1), e.g. 0.1 for a quick run."""
        if not is_real(factor) or not math.isfinite(factor) or factor <= 0:
            raise EnvError(f"must be a positive number, got {factor!r}", where="factor")

        def scale(n: int | None) -> int | None:
            return None if n is None else max(1, round(n * factor))

        return Budget(episodes=scale(self.episodes), steps=scale(self.steps))

    def __str__(self) -> str:
        limits = [(self.episodes, "episodes"), (self.steps, "steps")]
        return " or ".join(f"{n:,} {unit}" for n, unit in limits if n is not None)


@dataclass(frozen=True)
class EnvSpec:
    """One environment: how to build it, how to score it, and how long to train on it.

    ``entry_point`` builds a user environment that is not in gymnasium's registry
    (called with ``make_kwargs``); otherwise ``gym.make(gym_id, **make_kwargs)``.
    ``wrappers`` are applied in order; observations that are still a non-flat or
    non-float32 Box are then cast by :class:`~envs.wrappers.FlatFloatObs`.
    """

    id: str
    gym_id: str
    r_min: float
    r_max: float
    budget: Budget
    family: str
    epsilon_decay_steps: int
    hurdle: bool = False
    make_kwargs: Mapping = field(default_factory=dict, hash=False)
    entry_point: Callable[..., gym.Env] | None = None
    wrappers: tuple[Callable[[gym.Env], gym.Env], ...] = ()

    def __post_init__(self) -> None:
        for name in ("id", "gym_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise EnvError(f"must be a non-empty string, got {value!r}", where=name)
        for name in ("r_min", "r_max"):
            value = getattr(self, name)
            if not is_real(value) or not math.isfinite(value):
                raise EnvError(f"must be a finite number, got {value!r}", where=name)
            object.__setattr__(self, name, float(value))
        if not self.r_max > self.r_min:
            raise EnvError(
                f"must be greater than r_min (got r_min={self.r_min:g}, r_max={self.r_max:g} "
                f"for {self.id!r}); [r_min, r_max] is the range of returns mapped to [0, 1]",
                where="r_max",
            )
        if not isinstance(self.budget, Budget):
            raise EnvError(
                f"must be a Budget, e.g. Budget(episodes=400), got {self.budget!r}", where="budget"
            )
        if self.family not in FAMILIES:
            raise EnvError(unknown("family", self.family, FAMILIES), where="family")
        object.__setattr__(
            self, "epsilon_decay_steps",
            positive_whole("epsilon_decay_steps", self.epsilon_decay_steps)
        )
        if self.epsilon_decay_steps is None:
            raise EnvError("must be a positive whole number of steps", where="epsilon_decay_steps")
        if not isinstance(self.hurdle, bool):
            raise EnvError(f"must be True or False, got {self.hurdle!r}", where="hurdle")
        if not isinstance(self.make_kwargs, Mapping):
            raise EnvError(f"must be a mapping, got {self.make_kwargs!r}", where="make_kwargs")
        object.__setattr__(self, "make_kwargs", dict(self.make_kwargs))
        if self.entry_point is not None and not callable(self.entry_point):
            raise EnvError(
                f"must be a callable that returns a gymnasium.Env, got {self.entry_point!r}",
                where="entry_point",
            )
        wrappers = (self.wrappers,) if callable(self.wrappers) else self.wrappers
        if not isinstance(wrappers, Iterable) or not all(callable(w) for w in wrappers):
            raise EnvError(
                f"must be a sequence of callables env -> env, got {self.wrappers!r}",
                where="wrappers",
            )
        object.__setattr__(self, "wrappers", tuple(wrappers))

    def make(self, seed: int | None = None) -> gym.Env:
        """A new environment with Discrete actions and flat float32 observations.

        With a ``seed``, the environment's random generator (through one ``reset``) and
        its action space are seeded, so the episodes that follow are reproducible.
        """
        env = self._build()
        try:
            for wrap in self.wrappers:
                env = wrap(env)
            env = self._conform(env)
        except BaseException:
            env.close()
            raise
        if seed is not None:
            env.reset(seed=seed)
            env.action_space.seed(seed)
        return env

    def normalize(self, mean_return: float) -> float:
        """``clip((R - r_min) / (r_max - r_min), 0, 1)``."""
        value = float(mean_return)
        if math.isnan(value):
            raise EnvError(f"cannot normalize a NaN return for {self.id!r}", where="mean_return")
        return min(1.0, max(0.0, (value - self.r_min) / (self.r_max - self.r_min)))

    def score(self, episode_returns: Sequence[float], last: int = 50) -> float:
        """The normalized mean of the last ``last`` episode returns (all if fewer); 0 if none."""
        if isinstance(last, bool) or not isinstance(last, numbers.Integral) or last < 1:
            raise EnvError(f"must be a positive whole number of episodes, got {last!r}", "last")
        window = [float(r) for r in list(episode_returns)[-int(last) :]]
        if not window:
            return 0.0
        return self.normalize(math.fsum(window) / len(window))

    @property
    def obs_dim(self) -> int:
        """Length of the observation vector."""
        return self._dims[0]

    @property
    def n_actions(self) -> int:
        """Number of discrete actions."""
        return self._dims[1]

    @property
    def obs_scale(self) -> tuple[float, ...] | None:
        """Per observation value, the whole number ``n`` such that the value is always
        ``k / n`` for a whole ``k`` in ``[0, n]`` (MiniGrid's grid codes), or None. A
        replay buffer then stores one byte per value (``k``) and decodes it exactly.
        Set by a wrapper's ``obs_scale`` attribute (see :class:`~envs.MiniGridFlatObs`)."""
        return self._dims[2]

    @cached_property
    def _dims(self) -> tuple[int, int, tuple[float, ...] | None]:
        env = self.make()
        try:
            dims = int(env.observation_space.shape[0]), int(env.action_space.n)
            scale = getattr(env, "obs_scale", None)
        finally:
            env.close()
        if scale is not None:
            scale = np.asarray(scale, np.float64).reshape(-1)
            if (scale.shape != (dims[0],) or not np.all((scale >= 1) & (scale <= 255))
                    or not np.all(scale == np.round(scale))):
                raise EnvError(
                    f"{self.id!r}: a wrapper's obs_scale must hold one whole number from 1 "
                    f"to 255 per observation value ({dims[0]}), got {scale!r}",
                    where="wrappers")
            scale = tuple(float(x) for x in scale)
        return (*dims, scale)

    def _build(self) -> gym.Env:
        try:
            if self.entry_point is not None:
                return self.entry_point(**self.make_kwargs)
            _gym_registry()  # MiniGrid's ids exist only once minigrid is imported
            with warnings.catch_warnings():
                # Old versions are pinned on purpose: CartPole-v0's 200-step episodes
                # are what the paper's [0, 200] range assumes.
                warnings.filterwarnings("ignore", ".*is out of date", DeprecationWarning)
                # Box2D's SWIG bindings (LunarLander) warn about themselves on import.
                warnings.filterwarnings("ignore", "builtin type .* has no __module__")
                return gym.make(self.gym_id, **self.make_kwargs)
        except gym.error.DependencyNotInstalled as exc:
            raise EnvError(f"{self.id!r} needs a package that is not installed: {exc}") from exc
        except gym.error.Error as exc:
            raise EnvError(f"could not build {self.id!r} ({self.gym_id}): {exc}") from exc
        except TypeError as exc:
            raise EnvError(f"could not build {self.id!r}: {exc}", where="make_kwargs") from exc

    def _conform(self, env: gym.Env) -> gym.Env:
        actions = env.action_space
        if not isinstance(actions, gym.spaces.Discrete):
            raise EnvError(
                f"{self.id!r} has actions {actions}, but evo's agents pick one of n actions "
                "(one Q-value each), so they need a Discrete action space; use a discrete "
                "version of the environment or add a wrapper that discretizes its actions",
                where="action space",
            )
        if int(actions.start) != 0:
            raise EnvError(
                f"{self.id!r} numbers its actions from {int(actions.start)}; evo's agents "
                "number them from 0, so add a wrapper that shifts them",
                where="action space",
            )
        obs = env.observation_space
        if not isinstance(obs, gym.spaces.Box):
            hint = (
                "pass wrappers=(envs.MiniGridFlatObs,)"
                if isinstance(obs, gym.spaces.Dict) and "image" in obs.spaces
                else "add a wrapper that turns observations into a Box"
            )
            raise EnvError(
                f"{self.id!r} has observations {obs}, but evo's agents need arrays "
                f"(a Box space) to flatten into a vector; {hint}",
                where="observation space",
            )
        if obs.dtype != np.float32 or len(obs.shape) != 1:
            env = FlatFloatObs(env)
        return env


_SPECS: dict[str, EnvSpec] = {}  # short id -> spec, in registration order


def register(
    id: str,
    gym_id: str | None = None,
    *,
    entry_point: Callable[..., gym.Env] | None = None,
    r_min: float,
    r_max: float,
    budget: Budget,
    family: str = "custom",
    epsilon_decay_steps: int = 1000,
    hurdle: bool = False,
    wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
    make_kwargs: Mapping | None = None,
    overwrite: bool = False,
) -> EnvSpec:
    """Add an environment to the registry and return its spec.

    Give either ``gym_id``, an id in gymnasium's registry (``gym.register`` one first
    if needed), or ``entry_point``, a callable returning the env (whose episodes must
    end by themselves, e.g. through ``gymnasium.wrappers.TimeLimit``). Example::

        envs.register("Pong", entry_point=PongEnv, r_min=-21, r_max=21,
                      budget=envs.Budget(episodes=400))
    """
    if not isinstance(id, str) or not id.strip():
        raise EnvError(f"must be a non-empty string such as 'MyEnv', got {id!r}", where="id")
    taken = _by_id(id)
    if taken is not None and not overwrite:
        raise EnvError(
            f"{taken.id!r} is already registered (gym id {taken.gym_id!r}); choose another "
            "id, or pass overwrite=True to replace it",
            where="id",
        )
    if entry_point is not None:
        if gym_id is not None:
            raise EnvError(
                "give gym_id (an id in gymnasium's registry) or entry_point (a callable "
                "that builds the env), not both",
                where="gym_id",
            )
        gym_id = id
    elif gym_id is None:
        raise EnvError(
            "give gym_id (an id in gymnasium's registry, e.g. 'CartPole-v1') or "
            "entry_point (a callable that builds the env)",
            where="gym_id",
        )
    elif not isinstance(gym_id, str) or gym_id not in _gym_registry():
        close = close_names(str(gym_id), list(_gym_registry()))
        hint = f"; did you mean {quoted(close)}?" if close else ""
        raise EnvError(
            f"{gym_id!r} is not in gymnasium's registry{hint} (for an environment of your "
            "own, pass entry_point= or gymnasium.register it first)",
            where="gym_id",
        )
    spec = EnvSpec(
        id=id,
        gym_id=gym_id,
        r_min=r_min,
        r_max=r_max,
        budget=budget,
        family=family,
        epsilon_decay_steps=epsilon_decay_steps,
        hurdle=hurdle,
        make_kwargs={} if make_kwargs is None else make_kwargs,
        entry_point=entry_point,
        wrappers=wrappers,
    )
    if taken is not None:
        del _SPECS[taken.id]
    _SPECS[spec.id] = spec
    return spec


def get(name: str) -> EnvSpec:
    """The spec registered under ``name``: a short id or a gym id, in any case."""
    if not isinstance(name, str):
        raise EnvError(
            "an environment name must be a string such as 'CartPole' or "
            f"'MiniGrid-DoorKey-5x5-v0', got {type(name).__name__} {name!r}"
        )
    spec = _by_id(name)
    if spec is not None:
        return spec
    key = name.strip().lower()
    by_gym_id = [s for s in _SPECS.values() if s.gym_id.lower() == key]
    if len(by_gym_id) == 1:
        return by_gym_id[0]
    if by_gym_id:
        raise EnvError(
            f"{name!r} is the gym id of several environments: "
            f"{quoted(s.id for s in by_gym_id)}; name one of them by its id"
        )
    raise EnvError(_unknown_env(name))


def list_envs(family: str | None = None) -> list[EnvSpec]:
    """Every registered spec, in registration order, optionally of one family."""
    if family is None:
        return list(_SPECS.values())
    if family not in FAMILIES:
        raise EnvError(unknown("family", family, FAMILIES), where="family")
    return [s for s in _SPECS.values() if s.family == family]


def _by_id(name: str) -> EnvSpec | None:
    key = name.strip().lower()
    return next((s for s in _SPECS.values() if s.id.lower() == key), None)


def _unknown_env(name: str) -> str:
    in_gym = _gym_ids_like(name)
    if in_gym:
        return _not_registered(in_gym[-1])
    ids = [s.id for s in _SPECS.values()]
    if name.strip().lower().startswith("minigrid-"):
        version = _minigrid_version()
        if version is None:
            return f"{name!r} looks like a MiniGrid id, but minigrid is not installed"
        close = close_names(name, [g for g in _gym_registry() if g.startswith("MiniGrid-")])
        hint = f" Close matches: {quoted(close)}." if close else ""
        return (
            f"{name!r}: this minigrid version ({version}) has no such environment.{hint} "
            "evo's MiniGrid environments: envs.list_envs('minigrid')"
        )
    close = close_names(name, ids + [s.gym_id for s in _SPECS.values()])
    if close:
        return f"unknown environment {name!r}; did you mean {quoted(close)}?"
    return f"unknown environment {name!r}; registered: {quoted(ids)}"


def _not_registered(gym_id: str) -> str:
    short = re.sub(r"-v\d+$", "", gym_id)
    ours = _by_id(short)
    also = ""
    if ours is not None:  # the short id is taken by another version
        also, short = f" (evo's {ours.id!r} is {ours.gym_id!r})", gym_id
    if gym_id.startswith("MiniGrid-"):
        example = (
            f'envs.register("{short}", "{gym_id}", r_min=0, r_max=1, '
            'budget=envs.Budget(steps=500_000), family="minigrid", '
            "epsilon_decay_steps=100_000, wrappers=(envs.MiniGridFlatObs,))"
        )
    else:
        example = (
            f'envs.register("{short}", "{gym_id}", r_min=..., r_max=..., '
            "budget=envs.Budget(episodes=400))"
        )
    return (
        f"{gym_id!r} is a gymnasium environment but is not registered with evo{also}: evo "
        "needs to know that its action space is Discrete (its agents pick one of n "
        "actions) and the range of returns [r_min, r_max] that its score is normalized "
        f"by. If it has discrete actions, register it:\n    {example}"
    )


def _gym_ids_like(name: str) -> list[str]:
    """Gymnasium ids equal to ``name`` in any case, with or without the version, oldest first."""
    key = name.strip().lower()
    found = [g for g in _gym_registry() if key in (g.lower(), re.sub(r"-v\d+$", "", g.lower()))]
    return sorted(found, key=lambda g: int(m.group(1)) if (m := re.search(r"-v(\d+)$", g)) else -1)


def _gym_registry() -> Mapping[str, object]:
    """gymnasium's registry, with MiniGrid's ids added (importing minigrid registers them)."""
    try:
        import minigrid  # noqa: F401
    except ImportError:
        pass
    return gym.registry


def _minigrid_version() -> str | None:
    try:
        import minigrid
    except ImportError:
        return None
    return minigrid.__version__


# Built-ins (reference.md §1.3). Classic control: 400 episodes unless stated, ε over 1e3 steps.
def _builtin(id: str, gym_id: str, r_min: float, r_max: float, budget: Budget, **kw) -> None:
    _SPECS[id] = EnvSpec(id, gym_id, r_min, r_max, budget, **kw)


_classic = dict(family="classic", epsilon_decay_steps=1_000)
# CartPole-v0, not v1: its 200-step episodes are what the range [0, 200] assumes.
_builtin("CartPole", "CartPole-v0", 0, 200, Budget(episodes=400), hurdle=True, **_classic)
_builtin("Acrobot", "Acrobot-v1", -500, -50, Budget(episodes=400), **_classic)
_builtin("MountainCar", "MountainCar-v0", -200, -110, Budget(episodes=500), **_classic)
_builtin("LunarLander", "LunarLander-v3", -500, 250, Budget(1000, 600_000), **_classic)

# MiniGrid: returns in [0, 1] ([-1, 1] where a collision costs -1), budgets in env
# steps. The paper gives 2e5-1e6 steps; each env gets the least that its task needs:
_MINIGRID_STEPS = {
    # one open room, where a random walk often reaches the goal: 1e5, below the paper's range
    "Empty-5x5": 100_000,
    "Empty-Random-5x5": 100_000,
    "Empty-6x6": 100_000,
    # one skill (reach a far goal, avoid lava or moving obstacles) in a small room
    "Empty-8x8": 200_000,
    "LavaGapS5": 200_000,
    "Dynamic-Obstacles-5x5": 200_000,
    "Dynamic-Obstacles-6x6": 200_000,
    # several skills in sequence (key, door, object), or a larger grid
    "DoorKey-5x5": 500_000,
    "LavaGapS6": 500_000,
    "SimpleCrossingS9N1": 500_000,
    "LavaCrossingS9N1": 500_000,
    "KeyCorridorS3R1": 500_000,
    "Unlock": 500_000,
    "MultiRoom-N2-S4": 500_000,
    "DistShift1": 500_000,
    # long horizons with sparse reward: the paper's maximum
    "DoorKey-6x6": 1_000_000,
    "FourRooms": 1_000_000,
}
for _name, _steps in _MINIGRID_STEPS.items():
    _builtin(
        f"MiniGrid-{_name}",
        f"MiniGrid-{_name}-v0",
        -1 if _name.startswith("Dynamic-Obstacles") else 0,
        1,
        Budget(steps=_steps),
        family="minigrid",
        # the paper's 1e5-step ε schedule, shortened to half the budget for small budgets
        epsilon_decay_steps=min(100_000, _steps // 2),
        wrappers=(MiniGridFlatObs,),
    )
del _classic, _name, _steps
