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
from evo.problem import PROBLEMS, get_problem
from evo.rl.problem import SCRATCH
from evo.rl.settings import (  # noqa: F401  (part of this module's API)
    DEFAULT_TIME_LIMIT,
    MAX_BATCH_SIZE,
    MAX_BUFFER_SIZE,
    MAX_EPISODES,
    MAX_HIDDEN_LAYERS,
    MAX_HIDDEN_WIDTH,
    MAX_SEEDS,
    MAX_STEPS,
    MAX_TIME_LIMIT,
    BudgetSection,
    EvaluatorSection,
    HurdleSection,
    agent_dict,
    check_agent_size,
)
from evo.workers import BACKENDS
from graphs.core.errors import did_you_mean

FEC_MODES = ("training", "output", "off")  # off: every proposal trains (ablations)
PRESETS = ("quick", "dqn-seeded", "from-scratch", "dqn-seeded-paper", "from-scratch-paper",
           "nb201-quick", "nb201-edgetpu")
DEFAULT_EXTRA_NODES = {"seeded": 14, "scratch": 7}

# Upper bounds: far above any real run, low enough that a typo (or 2^63 - 1) is an
# error up front instead of a run that never ends or exhausts memory.
MAX_TRIALS = 10_000_000
MAX_POPULATION = 100_000
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
    evaluator: Any = field(default_factory=EvaluatorSection)  # the problem's section
    # the [<algorithm>] section of the chosen algorithm, if it has one (see
    # evo.algorithms.registry); ``config.<name>`` reads it, or its defaults
    options: Any = None
    hurdles: HurdlesSection = field(default_factory=HurdlesSection)
    workers: WorkersSection = field(default_factory=WorkersSection)

    def __getattr__(self, name: str) -> Any:
        entry = ALGORITHMS.get(name) if name in ALGORITHMS else None
        if entry is None or entry.options is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        if self.search.algorithm == name and self.options is not None:
            return self.options
        return entry.options()

    @property
    def is_architecture(self) -> bool:
        """Whether the run's space mutates its own candidates (architectures), rather
        than being programs that the mutator edits (RL loss programs)."""
        return get_problem(self.space.kind).space_mutates

    def to_dict(self) -> dict[str, Any]:
        """The complete config as TOML-compatible data (no None: unset keys are left out).

        ``from_dict(c.to_dict()) == c`` and ``load_config(c.to_toml()) == c``.
        """
        out: dict[str, Any] = {}
        problem = get_problem(self.space.kind)
        for sec in dataclasses.fields(self):
            section = getattr(self, sec.name)
            data: dict[str, Any] = {}
            name = sec.name
            if name == "options":
                if section is None:
                    continue
                name = self.search.algorithm
            if sec.name == "space" and not problem.records_space:
                continue
            if sec.name == "fec" and not problem.uses_fec:
                continue
            if sec.name == "evaluator":
                out[name] = problem.evaluator_dict(section)
                continue
            skip = problem.unused_search_keys if sec.name == "search" else ()
            for f in dataclasses.fields(section):
                if f.name in skip:
                    continue
                value = getattr(section, f.name)
                if value is None:
                    continue
                data[f.name] = list(value) if isinstance(value, tuple) else value
            out[name] = data
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
    fixed = [f.name for f in dataclasses.fields(RunConfig)]
    at = fixed.index("options")
    configurable = [n for n in ALGORITHMS.names() if ALGORITHMS.get(n).options is not None]
    sections = fixed[:at] + configurable + fixed[at + 1:]
    for name, value in data.items():
        if name not in sections:
            raise ConfigError(unknown_key(name, sections, f"[{name}]", "section",
                                       "allowed sections"))
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} = {show(value)}: must be a table (a [{name}] section)")
    get = lambda name: data.get(name, {})  # noqa: E731
    run = validate(RunSection, get("run"), "run", _RUN)
    space = validate(SpaceSection, get("space"), "space", _SPACE)
    problem = get_problem(space.kind)
    search_raw = dict(get("search"))
    for key in problem.unused_search_keys:
        if key in search_raw:
            raise bad(f"search.{key}", search_raw[key], "applies to RL loss programs; "
                      f"an architecture space ([space] kind = {show(space.kind)}) "
                      "mutates one decision at a time")
    if "fec" in data and not problem.uses_fec:
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
    if ALGORITHMS.get(search.algorithm).architectures_only and not problem.space_mutates:
        kinds = " or ".join(f'"{n}"' for n in PROBLEMS.names()
                            if PROBLEMS.get(n).space_mutates)
        raise bad("search.algorithm", search.algorithm,
                  f"searches architectures: set [space] kind = {kinds}")
    fec = validate(FECSection, get("fec"), "fec", _FEC)
    evaluator = problem.evaluator_section(get("evaluator"), space)
    for name in configurable:
        if name in data and search.algorithm != name:
            raise ConfigError(f"[{name}]: configures search.algorithm = \"{name}\", but the "
                              f"algorithm is {search.algorithm!r}; remove the section or "
                              "change the algorithm")
    entry = ALGORITHMS.get(search.algorithm)
    options = (validate(entry.options, get(entry.name), entry.name, entry.checks)
               if entry.options is not None else None)
    hurdles = validate(HurdlesSection, get("hurdles"), "hurdles", _HURDLES)
    if hurdles.progressive and not problem.grows_budgets:
        raise bad("hurdles.progressive", True, "applies to RL loss programs (budgets of "
                   "training); architecture evaluations have no budget to grow")
    workers = validate(WorkersSection, get("workers"), "workers", _WORKERS)
    if workers.backend == "ray" and workers.address is None:
        workers = dataclasses.replace(workers, address="auto")
    return RunConfig(run, space, search, fec, evaluator, options, hurdles, workers)


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
                          "seeds": list(evaluator.seeds), "agent": agent_dict(evaluator.config)}
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
