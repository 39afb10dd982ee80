"""The environment registry: built-ins, names, scores, budgets and user registrations."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import Budget, EnvError, EnvSpec
from envs import registry as registry_module

HAS_BOX2D = importlib.util.find_spec("Box2D") is not None
ALL_IDS = [s.id for s in envs.list_envs()]


def _needs_box2d(env_id: str) -> list:
    reason = 'LunarLander needs box2d: pip install "gymnasium[box2d]"'
    return [pytest.mark.skipif(env_id == "LunarLander" and not HAS_BOX2D, reason=reason)]


BUILTINS = [pytest.param(i, marks=_needs_box2d(i)) for i in ALL_IDS]


@pytest.fixture
def restore_registry():
    """Undo any registration a test makes."""
    saved = dict(registry_module._SPECS)
    yield
    registry_module._SPECS.clear()
    registry_module._SPECS.update(saved)


class Corridor(gym.Env):
    """Walk right along ``length`` cells; reaching the end pays 1. Float64 observations."""

    def __init__(self, length: int = 4) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, float(length), (1,), np.float64)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return np.array([self.pos], dtype=np.float64), {}

    def step(self, action):
        self.pos = max(0, self.pos + (1 if action == 1 else -1))
        done = self.pos >= self.length
        return np.array([self.pos], dtype=np.float64), float(done), done, False, {}


# -- built-ins --------------------------------------------------------------------------


def test_the_papers_environments_are_registered():
    classic = {s.id for s in envs.list_envs("classic")}
    assert classic == {"CartPole", "Acrobot", "MountainCar", "LunarLander"}
    minigrid = {s.id.removeprefix("MiniGrid-") for s in envs.list_envs("minigrid")}
    assert minigrid >= {
        "Empty-5x5",
        "Empty-6x6",
        "DoorKey-5x5",
        "LavaGapS5",
        "SimpleCrossingS9N1",
        "KeyCorridorS3R1",
        "Dynamic-Obstacles-5x5",
        "Dynamic-Obstacles-6x6",
        "FourRooms",
        "MultiRoom-N2-S4",
        "Unlock",
    }
    assert envs.list_envs("custom") == []
    assert len(envs.list_envs()) == len(classic) + len(minigrid)


@pytest.mark.parametrize(
    "env_id, gym_id, r_min, r_max, budget",
    [
        ("CartPole", "CartPole-v0", 0, 200, Budget(episodes=400)),
        ("Acrobot", "Acrobot-v1", -500, -50, Budget(episodes=400)),
        ("MountainCar", "MountainCar-v0", -200, -110, Budget(episodes=500)),
        ("LunarLander", "LunarLander-v3", -500, 250, Budget(episodes=1000, steps=600_000)),
    ],
)
def test_classic_control_settings_are_the_papers(env_id, gym_id, r_min, r_max, budget):
    spec = envs.get(env_id)
    assert (spec.gym_id, spec.r_min, spec.r_max, spec.budget) == (gym_id, r_min, r_max, budget)
    assert spec.family == "classic"
    assert spec.epsilon_decay_steps == 1_000
    assert spec.hurdle == (env_id == "CartPole")


def test_minigrid_settings_follow_the_paper():
    for spec in envs.list_envs("minigrid"):
        dynamic = "Dynamic-Obstacles" in spec.id
        assert (spec.r_min, spec.r_max) == ((-1.0, 1.0) if dynamic else (0.0, 1.0)), spec.id
        assert spec.gym_id == spec.id + "-v0"
        assert spec.budget.episodes is None
        assert 50_000 <= spec.budget.steps <= 1_000_000, spec.id
        assert spec.epsilon_decay_steps == min(100_000, spec.budget.steps // 2), spec.id
        assert not spec.hurdle


def test_cartpole_episodes_last_200_steps_as_its_range_assumes():
    env = envs.get("CartPole").make(seed=0)
    assert env.spec.max_episode_steps == 200


@pytest.mark.parametrize("env_id", BUILTINS)
def test_every_builtin_makes_resets_and_steps(env_id):
    spec = envs.get(env_id)
    env = spec.make(seed=0)
    try:
        assert isinstance(env.action_space, gym.spaces.Discrete)
        assert env.action_space.n == spec.n_actions >= 2
        assert env.observation_space.shape == (spec.obs_dim,)
        obs, _ = env.reset()
        for t in range(5):
            assert obs.dtype == np.float32 and obs.shape == (spec.obs_dim,)
            assert np.all(np.isfinite(obs))
            assert env.observation_space.contains(obs)
            obs, reward, terminated, truncated, _ = env.step(t % spec.n_actions)
            assert np.isfinite(reward)
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()


@pytest.mark.parametrize(
    "env_id", ["CartPole", "Acrobot", "MiniGrid-Empty-Random-5x5", "MiniGrid-DoorKey-5x5"]
)
def test_the_same_seed_gives_the_same_episode(env_id):
    def rollout(seed):
        env = envs.get(env_id).make(seed=seed)
        first, _ = env.reset()
        trace = [first]
        for _ in range(10):
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            trace.append(obs)
            if terminated or truncated:
                trace.append(env.reset()[0])
        return np.stack(trace)

    np.testing.assert_array_equal(rollout(7), rollout(7))
    assert not np.array_equal(rollout(7), rollout(8))


def test_making_an_env_prints_no_warning_about_the_pinned_version():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        envs.get("CartPole").make().close()


def test_specs_can_be_pickled_and_hashed_for_worker_processes():
    spec = envs.get("MiniGrid-DoorKey-5x5")
    assert spec.obs_dim == 75  # cached before pickling, on purpose
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert hash(spec) == hash(envs.get("minigrid-doorkey-5x5"))


def test_importing_envs_builds_no_environment():
    code = (
        "import gymnasium, gymnasium.envs.registration as r\n"
        "def boom(*a, **k): raise AssertionError('an environment was built at import')\n"
        "gymnasium.make = r.make = boom\n"
        "import sys, envs\n"
        "assert 'minigrid' not in sys.modules, 'minigrid is imported only when needed'\n"
        "print(len(envs.list_envs()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(ALL_IDS)


# -- scores -----------------------------------------------------------------------------


def test_normalize_maps_the_range_to_0_1_and_clips():
    acrobot = envs.get("Acrobot")  # [-500, -50]
    assert acrobot.normalize(-500) == 0.0
    assert acrobot.normalize(-50) == 1.0
    assert acrobot.normalize(-275) == pytest.approx(0.5)
    assert acrobot.normalize(-1000) == 0.0
    assert acrobot.normalize(0) == 1.0
    assert acrobot.normalize(float("inf")) == 1.0
    with pytest.raises(EnvError, match="NaN"):
        acrobot.normalize(float("nan"))


def test_score_is_the_normalized_mean_of_the_last_50_returns():
    cartpole = envs.get("CartPole")  # [0, 200]
    assert cartpole.score([]) == 0.0
    assert cartpole.score([100.0]) == pytest.approx(0.5)
    assert cartpole.score([0.0] * 100 + [200.0] * 50) == 1.0  # only the last 50 count
    assert cartpole.score([0.0] * 100 + [200.0] * 25) == pytest.approx(0.5)
    assert cartpole.score(np.array([50.0, 150.0, 400.0])) == 1.0  # mean 200, then clipped
    assert cartpole.score([-50.0, 10.0]) == 0.0
    assert cartpole.score([0.0, 0.0, 200.0], last=1) == 1.0
    assert cartpole.score(iter([20.0, 60.0])) == pytest.approx(0.2)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(EnvError, match="last"):
            cartpole.score([1.0], last=bad)


# -- budgets ----------------------------------------------------------------------------


def test_budget_limits_and_scaling():
    budget = Budget(episodes=1000, steps=6e5)
    assert budget.steps == 600_000 and isinstance(budget.steps, int)
    assert budget.scaled(0.1) == Budget(episodes=100, steps=60_000)
    assert Budget(episodes=3).scaled(0.01) == Budget(episodes=1)  # never below one
    assert Budget(steps=100).scaled(2) == Budget(steps=200)
    assert str(budget) == "1,000 episodes or 600,000 steps"
    assert str(Budget(steps=200_000)) == "200,000 steps"


@pytest.mark.parametrize(
    "kwargs, where",
    [
        ({}, "budget"),
        ({"episodes": 0}, "episodes"),
        ({"steps": -5}, "steps"),
        ({"episodes": 1.5}, "episodes"),
        ({"episodes": True}, "episodes"),
        ({"steps": "100"}, "steps"),
    ],
)
def test_bad_budgets_are_rejected(kwargs, where):
    with pytest.raises(EnvError) as info:
        Budget(**kwargs)
    assert info.value.where == where


@pytest.mark.parametrize("factor", [0, -1, float("nan"), float("inf"), "2"])
def test_bad_scale_factors_are_rejected(factor):
    with pytest.raises(EnvError, match="factor"):
        Budget(episodes=10).scaled(factor)


# -- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, env_id",
    [
        ("CartPole", "CartPole"),
        ("cartpole", "CartPole"),
        ("CartPole-v0", "CartPole"),
        ("CARTPOLE-V0", "CartPole"),
        ("Acrobot-v1", "Acrobot"),
        ("MiniGrid-DoorKey-5x5", "MiniGrid-DoorKey-5x5"),
        ("MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-5x5"),
        ("minigrid-doorkey-5x5-V0", "MiniGrid-DoorKey-5x5"),
    ],
)
def test_names_resolve_by_short_id_or_gym_id_in_any_case(name, env_id):
    assert envs.get(name).id == env_id


def test_a_misspelled_name_lists_close_ids_and_gym_ids():
    with pytest.raises(EnvError) as info:
        envs.get("CartPol")
    assert "'CartPole'" in str(info.value) and "'CartPole-v0'" in str(info.value)


def test_a_name_with_no_close_match_lists_the_registered_ids():
    with pytest.raises(EnvError, match="registered: 'CartPole', 'Acrobot'"):
        envs.get("zzzz")


def test_a_minigrid_id_missing_from_the_installed_minigrid_says_so():
    import minigrid

    with pytest.raises(EnvError) as info:
        envs.get("MiniGrid-DoorKey-4x4-v0")
    message = str(info.value)
    assert f"this minigrid version ({minigrid.__version__})" in message
    assert "'MiniGrid-DoorKey-5x5-v0'" in message


def test_a_gym_env_not_registered_with_evo_says_why_and_how_to_register_it():
    with pytest.raises(EnvError) as info:
        envs.get("Pendulum-v1")
    message = str(info.value)
    assert "not registered with evo" in message
    assert "Discrete" in message and "r_min" in message
    assert 'envs.register("Pendulum", "Pendulum-v1"' in message


def test_another_version_of_a_registered_env_points_to_evos_version():
    with pytest.raises(EnvError, match="evo's 'CartPole' is 'CartPole-v0'"):
        envs.get("CartPole-v1")


def test_an_unregistered_minigrid_env_gets_a_minigrid_registration_example():
    with pytest.raises(EnvError, match=r"wrappers=\(envs.MiniGridFlatObs,\)"):
        envs.get("MiniGrid-DoorKey-8x8-v0")


@pytest.mark.parametrize("name", [3, None, envs.get("CartPole")])
def test_a_name_that_is_not_a_string_is_rejected(name):
    with pytest.raises(EnvError, match="must be a string"):
        envs.get(name)


def test_an_unknown_family_is_rejected():
    with pytest.raises(EnvError, match="did you mean 'classic'"):
        envs.list_envs("clasic")


# -- registering ------------------------------------------------------------------------


def test_a_user_env_works_end_to_end(restore_registry):
    spec = envs.register(
        "Corridor",
        entry_point=Corridor,
        make_kwargs={"length": 3},
        r_min=0,
        r_max=1,
        budget=Budget(episodes=10),
    )
    assert envs.get("corridor") is spec
    assert spec in envs.list_envs("custom")
    assert (spec.obs_dim, spec.n_actions, spec.family) == (1, 2, "custom")
    env = spec.make(seed=0)
    obs, _ = env.reset()
    assert obs.dtype == np.float32 and obs.tolist() == [0.0]  # float64 cast to float32
    returns, total, done = [], 0.0, False
    while not done:
        obs, reward, done, _, _ = env.step(1)
        total += reward
    returns.append(total)
    assert obs.tolist() == [3.0]
    assert spec.score(returns) == 1.0


def test_a_registered_gym_id_with_make_kwargs(restore_registry):
    envs.register(
        "CartPole500",
        "CartPole-v1",
        make_kwargs={"max_episode_steps": 500},
        r_min=0,
        r_max=500,
        budget=Budget(episodes=400),
        family="classic",
    )
    assert envs.get("CartPole500").make().spec.max_episode_steps == 500
    assert envs.get("CartPole-v1").id == "CartPole500"


def test_a_gym_id_shared_by_two_envs_must_be_named_by_id(restore_registry):
    envs.register("CartPoleLong", "CartPole-v0", r_min=0, r_max=500, budget=Budget(episodes=9))
    with pytest.raises(EnvError, match="'CartPole', 'CartPoleLong'"):
        envs.get("CartPole-v0")


def test_overwrite_replaces_a_registration(restore_registry):
    with pytest.raises(EnvError, match="overwrite=True") as info:
        envs.register("cartpole", "CartPole-v1", r_min=0, r_max=500, budget=Budget(episodes=9))
    assert info.value.where == "id"
    envs.register(
        "CartPole", "CartPole-v1", r_min=0, r_max=500, budget=Budget(episodes=9), overwrite=True
    )
    assert envs.get("CartPole").gym_id == "CartPole-v1"
    assert [s.id for s in envs.list_envs()].count("CartPole") == 1


OK = dict(r_min=0, r_max=1, budget=Budget(episodes=10))


@pytest.mark.parametrize(
    "args, kwargs, where, words",
    [
        (("X", "CartPole-v1"), {**OK, "r_max": 0}, "r_max", "greater than r_min"),
        (("X", "CartPole-v1"), {**OK, "r_max": -1}, "r_max", "greater than r_min"),
        (("X", "CartPole-v1"), {**OK, "r_min": float("nan")}, "r_min", "finite"),
        (("X", "CartPole-v1"), {**OK, "r_max": float("inf")}, "r_max", "finite"),
        (("X", "CartPole-v1"), {**OK, "r_min": "0"}, "r_min", "finite"),
        (("X", "CartPole-v1"), {**OK, "budget": 400}, "budget", r"Budget\(episodes=400\)"),
        (("X", "CartPol-v1"), OK, "gym_id", "did you mean 'CartPole-v1'"),
        (("X",), OK, "gym_id", "entry_point"),
        (("X", "CartPole-v1"), {**OK, "entry_point": Corridor}, "gym_id", "not both"),
        (("X",), {**OK, "entry_point": 3}, "entry_point", "callable"),
        (("X", "CartPole-v1"), {**OK, "family": "clasic"}, "family", "'classic'"),
        (("X", "CartPole-v1"), {**OK, "epsilon_decay_steps": 0}, "epsilon_decay_steps", "positive"),
        (("X", "CartPole-v1"), {**OK, "wrappers": (3,)}, "wrappers", "callables"),
        (("X", "CartPole-v1"), {**OK, "make_kwargs": [1]}, "make_kwargs", "mapping"),
        (("X", "CartPole-v1"), {**OK, "hurdle": "yes"}, "hurdle", "True or False"),
        (("", "CartPole-v1"), OK, "id", "non-empty"),
        (("Acrobot", "Acrobot-v1"), OK, "id", "already registered"),
    ],
)
def test_register_rejects_bad_arguments_and_names_them(
    restore_registry, args, kwargs, where, words
):
    before = list(envs.list_envs())
    with pytest.raises(EnvError, match=words) as info:
        envs.register(*args, **kwargs)
    assert info.value.where == where
    assert str(info.value).startswith(f"{where}: ")
    assert envs.list_envs() == before


def test_registering_builds_nothing(restore_registry, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("built at registration")

    monkeypatch.setattr(gym, "make", boom)
    envs.register("Lazy", entry_point=boom, r_min=0, r_max=1, budget=Budget(episodes=1))
    envs.register("LazyGym", "CartPole-v1", r_min=0, r_max=1, budget=Budget(episodes=1))


def test_an_env_without_discrete_actions_is_rejected_when_made(restore_registry):
    spec = envs.register(
        "MountainCarContinuous",
        "MountainCarContinuous-v0",
        r_min=-100,
        r_max=100,
        budget=Budget(episodes=10),
    )
    with pytest.raises(EnvError, match="need a Discrete action space") as info:
        spec.make()
    assert info.value.where == "action space"
    with pytest.raises(EnvError, match="Discrete"):
        spec.n_actions  # noqa: B018


class _Shifted(Corridor):
    def __init__(self):
        super().__init__()
        self.action_space = gym.spaces.Discrete(2, start=1)


class _Dict(Corridor):
    def __init__(self):
        super().__init__()
        self.observation_space = gym.spaces.Dict({"pos": gym.spaces.Discrete(5)})


@pytest.mark.parametrize(
    "entry_point, make_kwargs, where, words",
    [
        (_Shifted, {}, "action space", "from 1"),
        (_Dict, {}, "observation space", "Box"),
        (Corridor, {"width": 3}, "make_kwargs", "width"),
    ],
)
def test_unusable_user_envs_are_rejected_when_made(
    restore_registry, entry_point, make_kwargs, where, words
):
    spec = envs.register(
        "Bad",
        entry_point=entry_point,
        make_kwargs=make_kwargs,
        r_min=0,
        r_max=1,
        budget=Budget(episodes=10),
    )
    with pytest.raises(EnvError, match=words) as info:
        spec.make()
    assert info.value.where == where


def test_a_spec_built_directly_is_validated_too():
    with pytest.raises(EnvError, match="greater than r_min"):
        EnvSpec("X", "CartPole-v1", 1, 1, Budget(episodes=1), "classic", 1000)


def test_a_minigrid_env_registered_without_its_wrapper_says_which_to_add(restore_registry):
    spec = envs.register(
        "DoorKey8",
        "MiniGrid-DoorKey-8x8-v0",
        r_min=0,
        r_max=1,
        budget=Budget(steps=10),
        family="minigrid",
    )
    with pytest.raises(EnvError, match=r"wrappers=\(envs.MiniGridFlatObs,\)"):
        spec.make()


def test_a_missing_dependency_becomes_an_env_error(monkeypatch):
    def missing(*args, **kwargs):
        raise gym.error.DependencyNotInstalled(
            'Box2D is not installed, run `pip install "gymnasium[box2d]"`'
        )

    monkeypatch.setattr(gym, "make", missing)
    with pytest.raises(
        EnvError, match=r"'LunarLander' needs a package that is not installed.*box2d"
    ):
        envs.get("LunarLander").make()


def test_minigrid_declares_its_observation_codes_and_a_bad_declaration_is_refused():
    spec = envs.get("MiniGrid-Empty-5x5")
    scale = np.asarray(spec.obs_scale, np.float32)
    assert scale.shape == (spec.obs_dim,) and envs.get("CartPole").obs_scale is None
    env = spec.make(0)
    try:
        obs = env.reset(seed=0)[0]
        codes = obs * scale
        assert np.array_equal(codes, np.round(codes)) and codes.max() <= 255
        assert np.array_equal((np.round(codes).astype(np.uint8) / scale).astype(np.float32), obs)
    finally:
        env.close()

    class HalfCodes(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.obs_scale = np.full(env.observation_space.shape, 2.5)

        def observation(self, observation):
            return observation

    bad = EnvSpec("bad-codes", "MiniGrid-Empty-5x5-v0", 0, 1, Budget(steps=100), "minigrid",
                  100, wrappers=(envs.MiniGridFlatObs, HalfCodes))
    with pytest.raises(EnvError, match="obs_scale must hold one whole number"):
        _ = bad.obs_scale
