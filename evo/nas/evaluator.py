"""Scoring an architecture program: accuracy, cost (simulated latency or MACs), reward.

::

    ev = ArchEvaluator(accuracy="nb201", dataset="cifar10", hardware="edgetpu",
                       reward="mnasnet_soft", target=1.0)
    ev(graphs.arch.nb201.to_program("|nor_conv_3x3~0|+|...|"))   # a result dict

Accuracy comes from one of two sources:

* ``"nb201"``: the packaged NAS-Bench-201 table (:mod:`evo.nas.nb201_table`). The search
  sees the 12-epoch validation accuracy; the 200-epoch test accuracy is reported
  as ``test_accuracy`` (the NATS-Bench protocol). The program must be an NB201
  program (:func:`graphs.arch.nb201.to_program`, either level).
* a user function ``accuracy(program) -> float`` (a callable, or ``"module:function"``
  / ``"path/to/file.py:function"`` in configs) for any architecture program, e.g.
  a short training run on the user's data. If it takes a ``budget_scale`` keyword it
  receives the Progressive Dynamic Hurdles budget fraction.

All accuracies are fractions in [0, 1]. The cost is the simulated latency on a
hardware (:mod:`evo.nas.latency`, ``cost="latency"``) or the MAC count (``cost="macs"``).
The fitness is the reward (:mod:`evo.nas.rewards`) of accuracy and cost.

The result is a dict, like the RL evaluator's: ``status`` (``ok``, ``nan`` or
``error``), ``fitness``, ``scores``, ``reason``, and ``objectives`` =
``{"accuracy", "macs", "latency_ms"}`` (what :class:`evo.algorithms.pareto.ParetoEvolution`
reads; ``latency_ms`` when a hardware is set), ``macs``, ``params``,
``fits_on_chip``, ``seconds``, and for NB201 programs ``arch``, ``nb201_index`` and
(tabular) ``test_accuracy``. A candidate never raises: a NaN accuracy ends with
status ``nan``, a program the source cannot score or a failing user function with
status ``error``, both with fitness 0 and a reason. Bad settings raise
:class:`~evo.errors.ConfigError` when the evaluator is built.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evo.errors import ConfigError
from evo.nas.nb201_table import NB201Table, check_dataset
from evo.nas.rewards import Reward, make_reward
from graphs.arch import nb201
from graphs.arch.layers import Layer, count_macs, count_params
from graphs.core.errors import ProgramError, did_you_mean
from graphs.core.program import Program

COSTS = ("latency", "macs")
# Keys of the [evaluator] table that from_config understands.
CONFIG_KEYS = ("accuracy", "dataset", "cost", "hardware", "reward", "target", "alpha", "beta",
               "bonus", "bonus_mode")


def load_function(ref: str) -> Callable[..., Any]:
    """The function named by ``"package.module:function"`` or ``"path/file.py:function"``.

    Raises:
        ConfigError: a malformed reference, a module that cannot be imported or a
            missing (or non-callable) attribute.
    """
    module_name, sep, attr = str(ref).rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"accuracy = {ref!r}: give 'nb201' or a function as "
                          "'package.module:function' or 'path/to/file.py:function'")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser()
            if not path.is_file():
                raise ConfigError(f"accuracy = {ref!r}: no file {path}")
            spec = importlib.util.spec_from_file_location(f"_evo_user_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise ConfigError(f"accuracy = {ref!r}: cannot load {path} as a module")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except Exception as err:  # the user's module failed to import
        raise ConfigError(f"accuracy = {ref!r}: importing {module_name} failed: "
                          f"{type(err).__name__}: {err}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        hint = did_you_mean(attr, names, 1)
        raise ConfigError(f"accuracy = {ref!r}: {module_name} has no {attr!r}{hint}")
    if not callable(fn):
        raise ConfigError(f"accuracy = {ref!r}: {attr} is a {type(fn).__name__}, not a function")
    return fn


class ArchEvaluator:
    """Accuracy + cost -> reward for architecture programs.

    Args:
        accuracy: ``"nb201"``, a callable ``accuracy(program) -> float`` in [0, 1], or
            a ``"module:function"`` reference to one.
        dataset: NB201 dataset (``cifar10``, ``cifar100``, ``imagenet16-120``): which
            columns the table reads and the input resolution of NB201 networks.
        cost: ``"latency"`` (simulated ms on ``hardware``) or ``"macs"``.
        hardware: a preset name, a TOML file or a :class:`evo.nas.hardware.Hardware`; it
            is needed for the latency cost and the on-chip bonus, and when given the
            latency is reported with either cost. None: no simulation.
        reward: a :class:`~evo.nas.rewards.Reward` or a reward name; ``target`` and
            ``reward_params`` (``alpha``, ``beta``, ``bonus``, ``bonus_mode``) go to
            :func:`evo.nas.rewards.make_reward`. The target is in ms for the latency
            cost and in MACs for the MAC cost.
    """

    def __init__(self, accuracy: str | Callable[..., float] = "nb201", dataset: str = "cifar10",
                 cost: str = "latency", hardware: Any = "edgetpu",
                 reward: str | Reward = "accuracy", target: float | None = None,
                 **reward_params: Any) -> None:
        self.dataset = check_dataset(dataset)
        if cost not in COSTS:
            raise ConfigError(f"cost = {cost!r}: must be one of {', '.join(COSTS)}")
        self.cost = cost
        self.reward = reward if isinstance(reward, Reward) else make_reward(
            reward, target, **reward_params)
        if isinstance(reward, Reward) and (target is not None or reward_params):
            raise ConfigError("give the reward's target and parameters to make_reward, "
                              "or pass the reward by name")
        self.hardware = None
        if hardware is not None:
            from evo.nas.hardware import get_hardware

            self.hardware = get_hardware(hardware)
        elif cost == "latency":
            raise ConfigError("cost = 'latency' needs a hardware (e.g. hardware = 'edgetpu'), "
                              "or use cost = 'macs'")
        if self.reward.bonus and self.hardware is None:
            raise ConfigError("reward.bonus (for parameters that fit on chip) needs a hardware")
        self.accuracy_ref: str | None = None
        self._accuracy_fn: Callable[..., Any] | None = None
        if isinstance(accuracy, str):
            if accuracy != "nb201":
                self.accuracy_ref = accuracy
                self._accuracy_fn = load_function(accuracy)  # fail now, not in the workers
        elif callable(accuracy):
            self._accuracy_fn = accuracy
        else:
            raise ConfigError(f"accuracy = {accuracy!r}: give 'nb201', a function or "
                              "'module:function'")
        self.tabular = isinstance(accuracy, str) and accuracy == "nb201"
        self._takes_budget: bool | None = None
        # NB201 code -> costs: at most 15,625 entries per evaluator and process.
        self._nb201_costs: dict[tuple[int, ...], tuple[int, int, float | None, bool | None]] = {}

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> ArchEvaluator:
        """An evaluator from a config's ``[evaluator]`` table (keys :data:`CONFIG_KEYS`)."""
        unknown = sorted(set(table) - set(CONFIG_KEYS))
        if unknown:
            hints = []
            for key in unknown:
                hints.append(f"{key!r}" + did_you_mean(key, CONFIG_KEYS, 1,
                                                       template=" (did you mean {}?)"))
            raise ConfigError(f"evaluator: unknown key(s) {', '.join(hints)} for an "
                              f"architecture evaluator (keys: {', '.join(CONFIG_KEYS)})")
        params = {k: table[k] for k in ("alpha", "beta", "bonus", "bonus_mode") if k in table}
        return cls(table.get("accuracy", "nb201"), table.get("dataset", "cifar10"),
                   table.get("cost", "latency"), table.get("hardware", "edgetpu"),
                   table.get("reward", "accuracy"), table.get("target"), **params)

    def __repr__(self) -> str:
        source = "nb201" if self.tabular else (self.accuracy_ref or getattr(
            self._accuracy_fn, "__name__", "function"))
        hw = self.hardware.name if self.hardware is not None else "none"
        return (f"ArchEvaluator(accuracy={source}, dataset={self.dataset}, cost={self.cost}, "
                f"hardware={hw}, reward={self.reward.formula()})")

    # The resolved user function is not pickled when it can be re-imported by name.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.accuracy_ref is not None:
            state["_accuracy_fn"] = None
        state["_nb201_costs"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _function(self) -> Callable[..., Any]:
        if self._accuracy_fn is None:
            self._accuracy_fn = load_function(self.accuracy_ref or "")
        return self._accuracy_fn

    # -- evaluation -----------------------------------------------------------------------
    def __call__(self, program: Program, budget_scale: float = 1.0) -> dict[str, Any]:
        return self.evaluate(program, budget_scale)

    def evaluate(self, program: Program, budget_scale: float = 1.0, *,
                 progress: bool | None = None) -> dict[str, Any]:
        """Score ``program``; never raises because of the candidate (see the module doc).

        ``progress`` is accepted for the RL evaluator's calling convention (the
        runner's ``CandidateEvaluator`` passes it); an architecture evaluation has no
        progress display.
        """
        start = time.perf_counter()
        result: dict[str, Any] = {"status": "ok", "fitness": 0.0, "scores": {}, "reason": ""}
        try:
            code, costs = self._costs(program, result)
        except ProgramError as err:
            return self._fail(result, "error", f"not a valid architecture: {err}", start)
        macs, params, latency, fits = costs
        result["macs"], result["params"] = macs, params
        objectives: dict[str, float] = {"macs": float(macs)}
        if latency is not None:
            objectives["latency_ms"] = latency
            result["fits_on_chip"] = fits
        try:
            accuracy, test = self._accuracy(program, code, budget_scale)
        except Exception as err:  # the user's function failed on this candidate
            where = traceback.extract_tb(err.__traceback__)[-1]
            return self._fail(result, "error", f"accuracy function raised {type(err).__name__}: "
                              f"{err} ({Path(where.filename).name}:{where.lineno})", start)
        if test is not None:
            result["test_accuracy"] = test
        try:
            if isinstance(accuracy, bool | str | bytes):
                raise TypeError
            accuracy = float(accuracy)  # also numpy scalars and one-element tensors
        except (TypeError, ValueError):
            return self._fail(result, "error", f"the accuracy function returned "
                              f"{accuracy!r:.80}, not a number", start)
        if math.isnan(accuracy):
            return self._fail(result, "nan", "the accuracy is NaN (training diverged?)", start)
        if not 0.0 <= accuracy <= 1.0:
            hint = " (a percentage? return a fraction)" if 1.0 < accuracy <= 100.0 else ""
            return self._fail(result, "error", f"the accuracy {accuracy:g} is not a fraction "
                              f"in [0, 1]{hint}", start)
        objectives["accuracy"] = accuracy
        cost = objectives["latency_ms"] if self.cost == "latency" else objectives["macs"]
        fitness = self.reward(accuracy, cost, fits)
        if not math.isfinite(fitness):
            return self._fail(result, "nan", f"the reward is {fitness} (accuracy {accuracy:g}, "
                              f"cost {cost:g})", start)
        result["fitness"] = float(fitness)
        result["objectives"] = objectives
        result["scores"] = {"accuracy": accuracy, "macs_m": macs / 1e6, "params_m": params / 1e6,
                            **({"latency_ms": objectives["latency_ms"]}
                               if "latency_ms" in objectives else {}),
                            **({"test_accuracy": result["test_accuracy"]}
                               if "test_accuracy" in result else {})}
        result["seconds"] = time.perf_counter() - start
        return result

    def _costs(self, program: Program, result: dict[str, Any]
               ) -> tuple[tuple[int, ...] | None, tuple[int, int, float | None, bool | None]]:
        """The NB201 code (None for other programs) and (MACs, parameters, latency in ms,
        whether the weights fit on chip); the last two are None without a hardware."""
        try:
            code = nb201.from_program(program)
        except ProgramError as err:
            if self.tabular:
                raise ProgramError(f"the nb201 accuracy table scores NB201 programs only "
                                   f"({err})") from None
            code = None
        if code is None:
            from graphs.arch.ops import to_layers

            layers = to_layers(program)
            return None, self._count(layers, layers)
        dataset, _level = nb201.program_dataset(program)
        if dataset is not None and dataset != self.dataset:
            raise ProgramError(f"the program is an NB201 network for {dataset}, but the "
                               f"evaluator's dataset is {self.dataset}")
        result["arch"] = nb201.arch_string(code)
        result["nb201_index"] = nb201.to_index(code)
        costs = self._nb201_costs.get(code)
        if costs is None:
            from evo.nas.latency import nb201_layers

            # MACs and parameters of the full network (the published counts); latency of
            # the network as a compiler deploys it (ops that cannot reach the output removed).
            costs = self._count(nb201.network_layers(code, self.dataset),
                                nb201_layers(code, self.dataset))
            self._nb201_costs[code] = costs
        return code, costs

    def cost_of(self, program: Program) -> float:
        """The program's cost as this evaluator measures it: simulated latency (ms) for
        ``cost = "latency"``, MACs otherwise (e.g. LayerNAS's bucketing cost)."""
        _code, (macs, _params, latency, _fits) = self._costs(program, {})
        return float(latency if self.cost == "latency" else macs)

    def _count(self, layers: list[Layer], deployed: list[Layer]
               ) -> tuple[int, int, float | None, bool | None]:
        if self.hardware is None:
            return count_macs(layers), count_params(layers), None, None
        from evo.nas.latency import latency_ms

        return (count_macs(layers), count_params(layers), latency_ms(deployed, self.hardware),
                self._fits_on_chip(deployed))

    def _accuracy(self, program: Program, code: tuple[int, ...] | None,
                  budget_scale: float) -> tuple[Any, float | None]:
        if self.tabular:
            table = NB201Table.load()
            index = nb201.to_index(code)
            # percent with 4 decimals -> the same digits as a fraction (no 0.94363299999)
            return (round(table.val12(index, self.dataset) / 100.0, 6),
                    round(table.test200(index, self.dataset) / 100.0, 6))
        fn = self._function()
        if self._takes_budget is None:
            try:
                self._takes_budget = "budget_scale" in inspect.signature(fn).parameters
            except (TypeError, ValueError):
                self._takes_budget = False
        if self._takes_budget:
            return fn(program, budget_scale=budget_scale), None
        return fn(program), None

    def _fits_on_chip(self, layers: list[Layer]) -> bool:
        """Whether all weights fit in on-chip memory (as :func:`evo.nas.latency.simulate`)."""
        hw = self.hardware
        used = sum(math.ceil(layer.weights * hw.bytes_per_element) for layer in layers)
        return used <= hw.sram_bytes

    @staticmethod
    def _fail(result: dict[str, Any], status: str, reason: str, start: float) -> dict[str, Any]:
        result["status"], result["reason"], result["fitness"] = status, reason, 0.0
        result["seconds"] = time.perf_counter() - start
        return result
