"""Run configs: one TOML file describes a whole search, validated before anything runs.

A config has these sections (every key optional; defaults are the paper's settings)::

    [run]            name, trials, seed
    [space]          kind ("loss", "nb201" or "mobilenet"), dataset, equivalence
    [search]         algorithm, population_size, tournament_size, mutation_p,
                     seed_program, extra_nodes
    [fec]            mode
    [evaluator]      loss programs: envs, seeds, steps, budget_scale, time_limit, max_steps
      [evaluator.hurdle]   env, threshold, credit   (or ``hurdle = false``)
      [evaluator.agent]    any DQNConfig field (hidden, learning_rate, ...)
      [evaluator.budgets]  per-environment budgets, e.g. CartPole = {episodes = 400}
                     architectures: accuracy, cost, hardware, reward, target, alpha,
                     beta, bonus, bonus_mode (see evo.nas.evaluator)
    [layernas]       buckets, target, cost, base, passes, order, dedupe   (algorithm = "layernas")
    [pareto]         survival                              (algorithm = "pareto")
    [hurdles]        progressive, increments, batch   (Progressive Dynamic Hurdles)
    [workers]        backend, workers, address, task_timeout, memory_limit_mb, retries,
                     threads_per_worker

An unknown section or key, or a bad value, raises :class:`~evo.errors.ConfigError`
whose message names the key path (``search.population_size``) and the allowed keys,
values or range. :func:`load_config` reads a file (or TOML text, or a dict);
:meth:`RunConfig.to_dict` gives the complete, resolved config (defaults filled in),
which loads back to an equal config and is what a run store records.
Built-in presets live in ``evo/app/presets/*.toml``: :func:`preset`, :data:`PRESETS`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from evo.algorithms import ALGORITHMS
from evo.app import problems as _builtin_problems  # noqa: F401  (registers them)
from evo.app.tomlfile import dump_toml
from evo.checks import (
    Check,
    address,
    bad,
    boolean,
    check_keys,
    choice,
    integer,
    list_of,
    real,
    run_name,
    show,
    unknown_key,
    upto,
    validate,
)
from evo.errors import ConfigError
from evo.nas.problem import make_arch_evaluator
from evo.problem import PROBLEMS
from evo.rl.dqn import DQNConfig
from evo.rl.problem import SCRATCH
from evo.workers import BACKENDS
from graphs.core.errors import did_you_mean, is_real

FEC_MODES = ("training", "output", "off")  # off: every proposal trains (ablations)
PRESETS = ("quick", "dqn-seeded", "from-scratch", "dqn-seeded-paper", "from-scratch-paper",
           "nb201-quick", "nb201-edgetpu")
DEFAULT_EXTRA_NODES = {"seeded": 14, "scratch": 7}

# Upper bounds: far above any real run, low enough that a typo (or 2^63 - 1) is an
# error up front instead of a run that never ends or exhausts memory.
MAX_TRIALS = 10_000_000
MAX_POPULATION = 100_000
MAX_STEPS = 100_000_000  # environment steps per agent and environment
MAX_EPISODES = 1_000_000
MAX_SEEDS = 100
MAX_HIDDEN_WIDTH = 4096
MAX_HIDDEN_LAYERS = 8
MAX_BUFFER_SIZE = 10_000_000
MAX_BATCH_SIZE = 65_536
DEFAULT_TIME_LIMIT = 3600.0  # wall-clock seconds per evaluation unless a config says
MAX_TIME_LIMIT = 7 * 24 * 3600.0
MAX_CONFIG_BYTES = 1024 * 1024


# -- the config tree ------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSection:
    name: str = "run"
    trials: int = 1000  # candidates to finish, duplicates included
    seed: int = 0


@dataclass(frozen=True)
class SpaceSection:
    kind: str = "loss"  # RL loss programs, or an architecture space
    dataset: str = "cifar10"  # nb201: cifar10, cifar100 or imagenet16-120
    equivalence: str = "graph"  # nb201: how architectures are deduplicated


@dataclass(frozen=True)
class SearchSection:
    algorithm: str = "regularized_evolution"
    population_size: int = 300
    tournament_size: int = 25
    mutation_p: float = 0.95
    seed_program: str = "dqn"  # a built-in program, or "scratch" (frozen skeleton)
    extra_nodes: int = 14  # random nodes added (default 14 seeded, 7 from scratch)


@dataclass(frozen=True)
class FECSection:
    mode: str = "training"


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


@dataclass(frozen=True)
class ArchEvaluatorSection:
    """``[evaluator]`` of an architecture run (see :class:`evo.nas.evaluator.ArchEvaluator`)."""

    accuracy: str = "nb201"  # the NB201 table, or "module:function"
    cost: str = "latency"  # "latency" (simulated ms) or "macs"
    hardware: str = "edgetpu"  # a preset or a TOML file
    reward: str = "accuracy"
    target: float | None = None  # ms for latency, MACs for macs
    alpha: float | None = None
    beta: float | None = None
    bonus: float | None = None
    bonus_mode: str | None = None


@dataclass(frozen=True)
class LayerNASSection:
    buckets: int = 8
    target: float | None = None  # default: the evaluator's target
    cost: str | None = None  # "latency" or "macs"; default: the evaluator's cost
    base: str = "cheapest"
    passes: int | None = None
    order: str = "given"  # "given" (the space's decision order) or "random" (per seed)
    dedupe: bool = True  # never propose an architecture equivalent to one already scored


@dataclass(frozen=True)
class ParetoSection:
    survival: str = "nsga2"


@dataclass(frozen=True)
class HurdlesSection:
    progressive: bool = False
    increments: tuple[float, ...] = (0.25, 0.25, 0.5)
    batch: int = 50


@dataclass(frozen=True)
class WorkersSection:
    backend: str = "local"
    workers: int | None = None  # local processes; default: every core
    address: str | None = None  # Ray: "auto" or "HOST:PORT"
    task_timeout: float | None = None
    memory_limit_mb: int | None = None
    retries: int = 1
    # BLAS/OpenMP threads per evaluation process: 1 keeps one worker per core from
    # oversubscribing the CPU; raise it for fewer, larger evaluations.
    threads_per_worker: int = 1
    # Candidates per worker task, trained together by a batching evaluator (the
    # population trainer); None: 16 for such an evaluator, else 1.
    batch_size: int | None = None


@dataclass(frozen=True)
class RunConfig:
    """A validated run config. Build one with :func:`load_config` or :func:`from_dict`."""

    run: RunSection = field(default_factory=RunSection)
    space: SpaceSection = field(default_factory=SpaceSection)
    search: SearchSection = field(default_factory=SearchSection)
    fec: FECSection = field(default_factory=FECSection)
    evaluator: EvaluatorSection | ArchEvaluatorSection = field(
        default_factory=EvaluatorSection)
    layernas: LayerNASSection = field(default_factory=LayerNASSection)
    pareto: ParetoSection = field(default_factory=ParetoSection)
    hurdles: HurdlesSection = field(default_factory=HurdlesSection)
    workers: WorkersSection = field(default_factory=WorkersSection)

    @property
    def is_architecture(self) -> bool:
        """Whether the run searches architectures (not RL loss programs)."""
        return self.space.kind != "loss"

    def to_dict(self) -> dict[str, Any]:
        """The complete config as TOML-compatible data (no None: unset keys are left out).

        ``from_dict(c.to_dict()) == c`` and ``load_config(c.to_toml()) == c``.
        """
        out: dict[str, Any] = {}
        for sec in dataclasses.fields(self):
            section = getattr(self, sec.name)
            data: dict[str, Any] = {}
            if sec.name in ("layernas", "pareto") and self.search.algorithm != sec.name:
                continue
            if sec.name == "space" and not self.is_architecture:
                continue
            if sec.name == "fec" and self.is_architecture:
                continue
            skip = ("seed_program", "extra_nodes", "mutation_p") if (
                sec.name == "search" and self.is_architecture) else ()
            loss = isinstance(section, EvaluatorSection)
            for f in dataclasses.fields(section):
                if f.name in skip:
                    continue
                value = getattr(section, f.name)
                if loss and f.name == "hurdle":
                    value = False if value is None else dataclasses.asdict(value)
                elif loss and f.name == "agent":
                    value = _agent_dict(value)
                elif loss and f.name == "budgets":
                    value = {env: {k: v for k, v in dataclasses.asdict(b).items()
                                   if v is not None} for env, b in value}
                    if not value:
                        continue
                if value is None:
                    continue
                data[f.name] = list(value) if isinstance(value, tuple) else value
            out[sec.name] = data
        return out

    def to_toml(self) -> str:
        """The complete config as TOML text."""
        return dump_toml(self.to_dict())

    def replace(self, **changes: Any) -> RunConfig:
        """A re-validated copy with dotted keys changed, e.g.
        ``c.replace(**{"run.trials": 10, "workers.backend": "ray"})``; None removes a key."""
        data = self.to_dict()
        for dotted, value in changes.items():
            *parents, key = dotted.split(".")
            node = data
            for p in parents:
                node = node.setdefault(p, {})
            if value is None:
                node.pop(key, None)
            else:
                node[key] = value
        return from_dict(data)


def _agent_dict(agent: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(agent):
        value = getattr(agent, f.name)
        if value is not None:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


# -- loading --------------------------------------------------------------------------------
def load_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> RunConfig:
    """A validated :class:`RunConfig` from a TOML file path, TOML text or a dict.

    A ``str`` containing a newline or ``=`` is TOML text; any other ``str`` is a path.
    Messages of errors found in a file start with the file's path.
    """
    if isinstance(source, Mapping):
        return from_dict(source)
    if isinstance(source, str) and ("\n" in source or "=" in source or not source.strip()):
        return from_dict(_parse(source, "config"))
    from graphs.core.fileformat import read_regular_file

    path = Path(source)
    try:
        text = read_regular_file(path, MAX_CONFIG_BYTES, "config file").decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise ConfigError(f"{path}: cannot read the config ({reason})") from None
    data = _parse(text, str(path))
    try:
        return from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def preset(name: str) -> RunConfig:
    """A built-in config by name (see :data:`PRESETS`)."""
    return load_config(preset_text(name))


def preset_text(name: str) -> str:
    """The TOML text of a built-in preset (comments included)."""
    if name not in PRESETS:
        hint = did_you_mean(str(name), PRESETS, 2, 0.5)
        raise ConfigError(f"unknown preset {name!r}{hint} (presets: {', '.join(PRESETS)})")
    return (resources.files("evo.app") / "presets" / f"{name}.toml").read_text(encoding="utf-8")


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where}: invalid TOML: {err}") from None


def from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Validate parsed TOML data (sections of keys) and fill in the defaults."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config is a table of sections, got {type(data).__name__}")
    sections = [f.name for f in dataclasses.fields(RunConfig)]
    for name, value in data.items():
        if name not in sections:
            raise ConfigError(unknown_key(name, sections, f"[{name}]", "section",
                                       "allowed sections"))
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} = {show(value)}: must be a table (a [{name}] section)")
    get = lambda name: data.get(name, {})  # noqa: E731
    run = validate(RunSection, get("run"), "run", _RUN)
    space = validate(SpaceSection, get("space"), "space", _SPACE)
    arch = space.kind != "loss"
    search_raw = dict(get("search"))
    if arch:
        for key in ("seed_program", "extra_nodes", "mutation_p"):
            if key in search_raw:
                raise bad(f"search.{key}", search_raw[key], "applies to RL loss programs; "
                           f"an architecture space ([space] kind = {show(space.kind)}) "
                           "mutates one decision at a time")
        if "fec" in data:
            raise ConfigError("[fec]: applies to RL loss programs; architectures are "
                              "deduplicated by the space ([space] equivalence)")
    scratch = search_raw.get("seed_program", "dqn") == SCRATCH
    search_raw.setdefault("extra_nodes", DEFAULT_EXTRA_NODES["scratch" if scratch else "seeded"])
    search = validate(SearchSection, search_raw, "search", _SEARCH)
    if (search.algorithm == "regularized_evolution"
            and search.tournament_size > search.population_size):
        raise ConfigError(
            f"search.tournament_size = {search.tournament_size}: must be at most "
            f"search.population_size = {search.population_size} (the paper uses T 25, P 300)")
    if ALGORITHMS.get(search.algorithm).architectures_only and not arch:
        raise bad("search.algorithm", search.algorithm, "searches architectures: set "
                   "[space] kind = \"nb201\" or \"mobilenet\"")
    fec = validate(FECSection, get("fec"), "fec", _FEC)
    evaluator = _arch_evaluator(get("evaluator"), space) if arch else _evaluator(
        get("evaluator"))
    for name in ("layernas", "pareto"):
        if name in data and search.algorithm != name:
            raise ConfigError(f"[{name}]: configures search.algorithm = \"{name}\", but the "
                              f"algorithm is {search.algorithm!r}; remove the section or "
                              "change the algorithm")
    layernas = validate(LayerNASSection, get("layernas"), "layernas", _LAYERNAS)
    pareto = validate(ParetoSection, get("pareto"), "pareto", _PARETO)
    hurdles = validate(HurdlesSection, get("hurdles"), "hurdles", _HURDLES)
    if arch and hurdles.progressive:
        raise bad("hurdles.progressive", True, "applies to RL loss programs (budgets of "
                   "training); architecture evaluations have no budget to grow")
    workers = validate(WorkersSection, get("workers"), "workers", _WORKERS)
    if workers.backend == "ray" and workers.address is None:
        workers = dataclasses.replace(workers, address="auto")
    return RunConfig(run, space, search, fec, evaluator, layernas, pareto, hurdles, workers)


def _seed_program(v: Any, path: str) -> str:
    from graphs.rl_loss.library import BUILTINS

    allowed = tuple(n for n in BUILTINS if n != "skeleton") + (SCRATCH,)
    return choice(allowed)(v.lower() if isinstance(v, str) else v, path)


_RUN: dict[str, Check] = {"name": run_name, "trials": upto(1, MAX_TRIALS), "seed": integer(0)}
_SEARCH: dict[str, Check] = {
    "algorithm": lambda v, path: choice(ALGORITHMS.names())(v, path),  # registered ones
    "population_size": upto(1, MAX_POPULATION),
    "tournament_size": upto(1, MAX_POPULATION),
    "mutation_p": real(0.0, 1.0),
    "seed_program": _seed_program,
    "extra_nodes": integer(1, 100),
}
_FEC: dict[str, Check] = {"mode": choice(FEC_MODES)}
_SPACE: dict[str, Check] = {
    "kind": lambda v, path: choice(PROBLEMS.names())(v, path),  # registered problems
    "dataset": choice(("cifar10", "cifar100", "imagenet16-120")),
    "equivalence": choice(("graph", "function")),
}
_LAYERNAS: dict[str, Check] = {
    "buckets": integer(1, 10_000),
    "target": real(0.0, open_lo=True),
    "cost": choice(("latency", "macs")),
    "base": choice(("cheapest", "costliest", "random")),
    "passes": integer(1),
    "order": choice(("given", "random")),
    "dedupe": boolean,
}
_PARETO: dict[str, Check] = {"survival": choice(("nsga2", "aging"))}
_HURDLES: dict[str, Check] = {
    "progressive": boolean,
    "increments": list_of(real(0.0, open_lo=True), "positive budget fractions"),
    "batch": integer(1),
}
_WORKERS: dict[str, Check] = {
    "backend": lambda v, path: choice(BACKENDS.names())(v, path),  # registered ones
    "workers": integer(1, 4096),
    "address": address,
    "task_timeout": real(0.0, open_lo=True),
    "memory_limit_mb": integer(64),
    "retries": integer(0, 100),
    "threads_per_worker": integer(1, 1024),
    "batch_size": integer(1, 4096),
}


def _time_limit(v: Any, path: str) -> float:
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


def _evaluator(raw: Mapping[str, Any]) -> EvaluatorSection:
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
        values["time_limit"] = _time_limit(raw["time_limit"], "evaluator.time_limit")
    if "max_steps" in raw:
        values["max_steps"] = upto(1, MAX_STEPS)(raw["max_steps"], "evaluator.max_steps")
    if "trainer" in raw:
        values["trainer"] = choice(("auto", "population", "numpy"))(raw["trainer"],
                                                                     "evaluator.trainer")
    if "max_nodes" in raw:
        values["max_nodes"] = integer(1, 1024)(raw["max_nodes"], "evaluator.max_nodes")

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


def _arch_evaluator(raw: Mapping[str, Any], space: SpaceSection) -> ArchEvaluatorSection:
    """Validate an architecture run's ``[evaluator]`` by building the evaluator once."""
    allowed = [f.name for f in dataclasses.fields(ArchEvaluatorSection)]
    check_keys(raw, allowed, "evaluator")
    text = ("accuracy", "cost", "hardware", "reward", "bonus_mode")
    for key, value in raw.items():
        if key in text and not isinstance(value, str):
            raise bad(f"evaluator.{key}", value, "must be a string")
        if key not in text and not is_real(value, finite=True):
            raise bad(f"evaluator.{key}", value, "must be a number")
    values = {k: (v if k in text else float(v)) for k, v in raw.items()}
    section = ArchEvaluatorSection(**values)
    if space.kind == "mobilenet" and section.accuracy == "nb201":
        raise bad("evaluator.accuracy", "nb201", "is the NB201 table, which scores NB201 "
                   "cells only; give your own accuracy function as \"module:function\"")
    try:
        make_arch_evaluator(section, space)
    except ConfigError as err:
        raise ConfigError(f"evaluator: {err}") from None
    return section


# -- from Python objects --------------------------------------------------------------------
def config_from_objects(algorithm: Any, evaluator: Any, trials: int, *, name: str = "run",
                        fec_mode: str = "training", workers: int | None = None) -> RunConfig:
    """The :class:`RunConfig` of a search built from Python objects: a
    :class:`~evo.algorithms.evolution.RegularizedEvolution` or
    :class:`~evo.algorithms.random_search.RandomSearch` over a
    :class:`~evo.algorithms.base.SeedSpace`,
    and an :class:`~evo.rl.evaluator.RLEvaluator`.

    Give ``config_from_objects(...).to_dict()`` to :meth:`RunStore.create
    <evo.search.store.RunStore.create>`, and the store is as complete as one that ``evo run``
    made: ``evo status`` shows the settings, ``evo resume`` continues it, and the
    exported ``config.toml`` works with ``evo eval --config``.

    Raises:
        ConfigError: if an object is of a kind that a config cannot describe (your
            own space or evaluator); record your own description in the store then.
    """
    from evo.algorithms.base import SeedSpace
    from evo.algorithms.evolution import RegularizedEvolution
    from evo.algorithms.random_search import RandomSearch
    from evo.rl.evaluator import RLEvaluator

    space = getattr(algorithm, "space", None)
    if not isinstance(space, SeedSpace):
        raise ConfigError(f"search space {space!r}: only a SeedSpace can be described by a "
                          "run config")
    search: dict[str, Any] = {"seed_program": space.base or SCRATCH,
                              "extra_nodes": space.extra_nodes}
    if isinstance(algorithm, RegularizedEvolution):
        search.update(algorithm="regularized_evolution",
                      population_size=algorithm.population_size,
                      tournament_size=algorithm.tournament_size,
                      mutation_p=float(algorithm.mutation_p))
    elif isinstance(algorithm, RandomSearch):
        search["algorithm"] = "random"
    else:
        raise ConfigError(f"algorithm {type(algorithm).__name__}: only RegularizedEvolution "
                          "and RandomSearch can be described by a run config")
    if not isinstance(evaluator, RLEvaluator):
        raise ConfigError(f"evaluator {type(evaluator).__name__}: only an RLEvaluator can be "
                          "described by a run config")
    ev: dict[str, Any] = {"envs": [spec.id for spec in evaluator.specs],
                          "seeds": list(evaluator.seeds), "agent": _agent_dict(evaluator.config)}
    ev["hurdle"] = False if evaluator.hurdle is None else {
        "env": evaluator.hurdle_spec.id, "threshold": float(evaluator.hurdle.threshold),
        "credit": float(evaluator.hurdle_credit)}
    if evaluator.time_limit is not None:
        ev["time_limit"] = float(evaluator.time_limit)
    if evaluator.max_steps is not None:
        ev["max_steps"] = evaluator.max_steps
    if evaluator.steps:
        ev["steps"] = evaluator.steps
    # The budgets as the evaluator resolved them (defaults scaled, overrides applied).
    budgets = {}
    for env, budget in evaluator.budgets.items():
        if evaluator.steps and budget.episodes is None and budget.steps == evaluator.steps:
            continue
        budgets[env] = {k: v for k, v in (("episodes", budget.episodes),
                                          ("steps", budget.steps)) if v is not None}
    if budgets:
        ev["budgets"] = budgets
    data: dict[str, Any] = {
        "run": {"name": name, "trials": trials, "seed": int(algorithm.seed)},
        "search": search,
        "fec": {"mode": fec_mode},
        "evaluator": ev,
    }
    if workers is not None:
        data["workers"] = {"workers": workers}
    return from_dict(data)
