"""The ``[evaluator]`` section of a loss-program run: its schema, checks and limits."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evo.checks import bad, check_keys, choice, integer, list_of, real, upto
from evo.errors import ConfigError
from evo.rl.dqn import LOSS_MODES, DQNConfig
from graphs.core.errors import is_real

# Upper bounds: far above any real run, low enough that a typo is an error up front.
MAX_STEPS = 100_000_000  # environment steps per agent and environment
MAX_EPISODES = 1_000_000
MAX_SEEDS = 100
MAX_HIDDEN_WIDTH = 4096
MAX_HIDDEN_LAYERS = 8
MAX_BUFFER_SIZE = 10_000_000
MAX_BATCH_SIZE = 65_536
DEFAULT_TIME_LIMIT = 3600.0  # wall-clock seconds per evaluation unless a config says
MAX_TIME_LIMIT = 7 * 24 * 3600.0


@dataclass(frozen=True)
class HurdleSection:
    env: str = "CartPole"
    threshold: float = 0.6
    # The fitness of a candidate cut by the hurdle: credit × its hurdle score (the
    # paper: 0). A small credit (e.g. 0.1, so at most 0.06 < any passing fitness) lets
    # selection prefer the candidates that came closest, where all would score 0.
    credit: float = 0.0


@dataclass(frozen=True)
class BudgetSection:
    episodes: int | None = None
    steps: int | None = None


@dataclass(frozen=True)
class EvaluatorSection:
    envs: tuple[str, ...] = ("CartPole",)
    seeds: tuple[int, ...] = (0,)
    steps: int | None = None
    budget_scale: float = 1.0
    time_limit: float | None = DEFAULT_TIME_LIMIT  # an evaluation past it: "timeout"
    max_steps: int | None = None
    hurdle: HurdleSection | None = HurdleSection()
    agent: DQNConfig = field(default_factory=DQNConfig)  # agent hyperparameters
    budgets: tuple[tuple[str, BudgetSection], ...] = ()
    # "population": JAX, a batch of candidates trains in one compiled call; "numpy": the
    # lockstep numpy trainer; "auto": the population trainer when JAX is installed.
    trainer: str = "auto"
    max_nodes: int = 32  # the population trainer's instruction capacity per program
    # how the population trainer runs the losses: "interpret", "trace" or "auto" (trace
    # from 5k steps per agent; docs/population.md, "Two ways to run the losses")
    loss_mode: str = "auto"


def time_limit(v: Any, path: str) -> float:
    if not is_real(v, finite=True) or not 0 < v <= MAX_TIME_LIMIT:
        raise bad(path, v, f"must be a number of seconds in (0, {MAX_TIME_LIMIT:g}] "
                   f"(default {DEFAULT_TIME_LIMIT:g}); an evaluation that takes longer ends "
                   "with status \"timeout\" and fitness 0")
    return float(v)


def check_agent_size(agent: DQNConfig, where: str = "agent") -> None:
    """Raise :class:`ConfigError` if the agent's networks, replay buffer or batch are
    larger than any real run needs (:data:`MAX_HIDDEN_WIDTH` and friends)."""
    hidden = agent.hidden
    if len(hidden) > MAX_HIDDEN_LAYERS or any(h > MAX_HIDDEN_WIDTH for h in hidden):
        raise bad(f"{where}.hidden", list(hidden), f"at most {MAX_HIDDEN_LAYERS} layers of "
                   f"at most {MAX_HIDDEN_WIDTH} units each")
    if agent.buffer_size > MAX_BUFFER_SIZE:
        raise bad(f"{where}.buffer_size", agent.buffer_size,
                   f"must be at most {MAX_BUFFER_SIZE:,} transitions")
    if agent.batch_size > MAX_BATCH_SIZE:
        raise bad(f"{where}.batch_size", agent.batch_size,
                   f"must be at most {MAX_BATCH_SIZE:,}")
    for name in ("target_update_period", "learning_starts", "epsilon_decay_steps",
                 "score_window", "updates_per_step"):
        value = getattr(agent, name)
        limit = 100 if name == "updates_per_step" else MAX_STEPS
        if value is not None and value > limit:
            raise bad(f"{where}.{name}", value, f"must be at most {limit:,}")


def evaluator_section(raw: Mapping[str, Any]) -> EvaluatorSection:
    """Validate a loss run's ``[evaluator]`` table."""
    import envs as envlib

    section = "evaluator"
    allowed = [f.name for f in dataclasses.fields(EvaluatorSection)]
    check_keys(raw, allowed, section)
    values: dict[str, Any] = {}

    def env_id(v: Any, path: str) -> str:
        try:
            return envlib.get(v).id
        except envlib.EnvError as err:
            raise bad(path, v, f"{err} (see `evo envs`)") from None

    if "envs" in raw:
        ids = list_of(env_id, "environment ids")(raw["envs"], "evaluator.envs")
        if len(set(ids)) != len(ids):
            raise bad("evaluator.envs", raw["envs"], "lists an environment twice")
        values["envs"] = ids
    if "seeds" in raw:
        values["seeds"] = list_of(integer(0), "non-negative integers")(raw["seeds"],
                                                                     "evaluator.seeds")
        if len(values["seeds"]) > MAX_SEEDS:
            raise bad("evaluator.seeds", raw["seeds"],
                       f"at most {MAX_SEEDS} seeds (agents per environment)")
    if "steps" in raw:
        values["steps"] = upto(1, MAX_STEPS)(raw["steps"], "evaluator.steps")
    if "budget_scale" in raw:
        values["budget_scale"] = real(0.0, open_lo=True)(raw["budget_scale"],
                                                          "evaluator.budget_scale")
        if "steps" in values and values["budget_scale"] != 1.0:
            raise bad("evaluator.budget_scale", raw["budget_scale"],
                       "has no effect when evaluator.steps is set; give one of the two")
    if "time_limit" in raw:
        values["time_limit"] = time_limit(raw["time_limit"], "evaluator.time_limit")
    if "max_steps" in raw:
        values["max_steps"] = upto(1, MAX_STEPS)(raw["max_steps"], "evaluator.max_steps")
    if "trainer" in raw:
        values["trainer"] = choice(("auto", "population", "numpy"))(raw["trainer"],
                                                                     "evaluator.trainer")
    if "max_nodes" in raw:
        values["max_nodes"] = integer(1, 1024)(raw["max_nodes"], "evaluator.max_nodes")
    if "loss_mode" in raw:
        values["loss_mode"] = choice(LOSS_MODES)(raw["loss_mode"],
                                                                     "evaluator.loss_mode")

    hurdle = raw.get("hurdle", True)
    if hurdle is False:
        values["hurdle"] = None
    elif hurdle is True:
        values["hurdle"] = HurdleSection()
    elif isinstance(hurdle, Mapping):
        check_keys(hurdle, ["env", "threshold", "credit"], "evaluator.hurdle")
        env = env_id(hurdle.get("env", "CartPole"), "evaluator.hurdle.env")
        threshold = real(0.0, 1.0)(hurdle.get("threshold", 0.6), "evaluator.hurdle.threshold")
        credit = real(0.0, 1.0)(hurdle.get("credit", 0.0), "evaluator.hurdle.credit")
        values["hurdle"] = HurdleSection(env, threshold, credit)
    else:
        raise bad("evaluator.hurdle", hurdle, "must be false (no hurdle) or a table "
                   "[evaluator.hurdle] with env and threshold")

    agent = raw.get("agent", {})
    if not isinstance(agent, Mapping):
        raise bad("evaluator.agent", agent, "must be a table [evaluator.agent] of agent "
                   "hyperparameters")
    check_keys(agent, DQNConfig.field_names(), "evaluator.agent")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in agent.items()}
    try:
        values["agent"] = DQNConfig(**kwargs)
    except ConfigError as err:
        raise ConfigError(str(err).replace("DQNConfig.", "evaluator.agent.", 1)) from None
    check_agent_size(values["agent"], "evaluator.agent")

    budgets = raw.get("budgets", {})
    if not isinstance(budgets, Mapping):
        raise bad("evaluator.budgets", budgets, "must be a table of per-environment budgets, "
                   "e.g. [evaluator.budgets] CartPole = {episodes = 400}")
    used = list(values.get("envs", EvaluatorSection.envs))
    if values["hurdle"] is not None and values["hurdle"].env not in used:
        used.insert(0, values["hurdle"].env)
    out = []
    for name, spec in budgets.items():
        path = f"evaluator.budgets.{name}"
        env = env_id(name, path)
        if env not in used:
            raise ConfigError(f"{path}: {env!r} is not one of this evaluator's environments "
                              f"({', '.join(used)})")
        if not isinstance(spec, Mapping) or not spec:
            raise bad(path, spec, "must be a table with episodes and/or steps, e.g. "
                       "{episodes = 400}")
        check_keys(spec, ["episodes", "steps"], path)
        most = {"episodes": MAX_EPISODES, "steps": MAX_STEPS}
        b = BudgetSection(**{k: upto(1, most[k])(v, f"{path}.{k}") for k, v in spec.items()})
        out.append((env, b))
    values["budgets"] = tuple(sorted(out))
    return EvaluatorSection(**values)


def agent_dict(agent: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(agent):
        value = getattr(agent, f.name)
        if value is not None:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def evaluator_dict(section: EvaluatorSection) -> dict[str, Any]:
    """The section as TOML-compatible data (unset keys left out)."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.name == "hurdle":
            value = False if value is None else dataclasses.asdict(value)
        elif f.name == "agent":
            value = agent_dict(value)
        elif f.name == "budgets":
            value = {env: {k: v for k, v in dataclasses.asdict(b).items() if v is not None}
                     for env, b in value}
            if not value:
                continue
        if value is None:
            continue
        data[f.name] = list(value) if isinstance(value, tuple) else value
    return data
