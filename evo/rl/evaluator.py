"""Scoring a loss program: train agents with it and measure how well they learn.

Per environment, the score is the normalized average return over the last 50
training episodes, clipped to [0, 1] (averaged over seeds); the fitness is the sum
over the evaluator's environments. The hurdle environment runs first: a score
below its threshold ends the evaluation with fitness 0.

An evaluation never raises because of the candidate: a loss or network that goes
NaN/inf, a time limit, a failed hurdle or an exception all end with fitness 0 and
a recorded ``status`` (``"nan"``, ``"timeout"``, ``"hurdle"``, ``"error"``).
Bad settings (unknown environments, invalid budgets) are reported up front.

Two trainers run the same DQN algorithm: ``"population"`` (:mod:`evo.rl.population`,
JAX: a whole batch of candidates trains in one compiled, vmapped call, see
:meth:`RLEvaluator.evaluate_batch`) and ``"numpy"`` (:mod:`evo.rl.dqn`, one candidate's
seeds in lockstep, no compilation). ``"auto"`` picks the population trainer when JAX
is installed.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import envs as envlib
from evo.errors import ConfigError
from evo.rl.dqn import LOSS_MODES, DQNConfig, train
from graphs.core.errors import ProgramError
from graphs.core.program import Program

TRAINERS = ("auto", "population", "numpy")


def resolve_trainer(trainer: str) -> str:
    """``"population"`` or ``"numpy"``: what ``trainer`` means on this installation.

    ``"auto"`` is the population trainer when JAX is installed; the environment
    variable ``EVO_TRAINER`` (``population`` or ``numpy``) can choose instead."""
    if trainer == "auto" and os.environ.get("EVO_TRAINER"):
        chosen = os.environ["EVO_TRAINER"]
        if chosen not in TRAINERS[1:]:
            raise ConfigError(f"EVO_TRAINER = {chosen!r}: choose population or numpy")
        trainer = chosen
    if trainer not in TRAINERS:
        raise ConfigError(f"trainer = {trainer!r}: choose one of {', '.join(TRAINERS)}")
    if trainer != "auto":
        if trainer == "population" and importlib.util.find_spec("jax") is None:
            raise ConfigError("trainer = \"population\" needs JAX; install it with "
                              "`pip install jax gymnax`, or use trainer = \"numpy\"")
        return trainer
    return "population" if importlib.util.find_spec("jax") is not None else "numpy"


@dataclass
class EnvResult:
    """How training went on one environment (over all seeds)."""

    env: str
    score: float
    mean_return: float
    seed_scores: list[float]
    episodes: int
    steps: int
    status: str = "ok"
    reason: str = ""
    seconds: float = 0.0


@dataclass
class Evaluation:
    """The outcome of evaluating one program."""

    fitness: float
    scores: dict[str, float]
    status: str = "ok"
    reason: str = ""
    hurdle: dict | None = None
    envs: list[EnvResult] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    trainer: str = ""  # the trainer that produced it (see RLEvaluator.backend)
    compile_seconds: float = 0.0  # its share of the batch's tracing and compiling

    def to_dict(self) -> dict:
        return asdict(self)


class RLEvaluator:
    """Trains agents with a candidate loss on ``envs`` (hurdle first) and scores them.

    Args:
        envs: environment ids (see ``envs.list_envs()``); the fitness sums their scores.
        hurdle: an ``envs.Hurdle`` (default CartPole at 0.6) or None. If the hurdle's
            environment is also in ``envs`` its score counts towards the fitness.
        seeds: agents trained per environment, in lockstep; scores are averaged.
        config: agent hyperparameters.
        steps: if given, every environment trains for exactly this many steps instead
            of its default budget (e.g. for a quick look).
        budget_scale: multiplies every default budget (e.g. 0.25 for a laptop run).
        time_limit: wall-clock seconds for the whole evaluation of one candidate (a
            batch of n candidates, see :meth:`evaluate_batch`, may take n times this).
        max_steps: environment steps one agent may take on one environment before
            the evaluation ends with status ``"timeout"`` (guards against episode
            budgets whose episodes never end).
        budgets: per-environment budgets that replace the defaults (before ``steps``
            and ``budget_scale`` apply to the others), e.g. ``{"CartPole":
            Budget(episodes=400)}`` to keep a hurdle's full budget.
        trainer: ``"population"`` (JAX, batched), ``"numpy"`` or ``"auto"`` (the
            population trainer when JAX is installed).
        max_nodes: the population trainer's instruction capacity: a program with more
            live nodes fails with status ``"error"`` and a reason.
        loss_mode: how the population trainer runs the losses: ``"interpret"``,
            ``"trace"`` or ``"auto"`` (see :func:`evo.rl.population.train_population`).
        hurdle_credit: the fitness of a candidate cut by the hurdle is this times its
            hurdle score (default 0, as in the paper).
    """

    def __init__(
        self,
        envs: Sequence[str] = ("CartPole",),
        hurdle: envlib.Hurdle | None = envlib.DEFAULT_HURDLE,
        seeds: Sequence[int] = (0,),
        config: DQNConfig | None = None,
        steps: int | None = None,
        budget_scale: float = 1.0,
        time_limit: float | None = 3600.0,
        max_steps: int | None = None,
        budgets: Mapping[str, envlib.Budget] | None = None,
        trainer: str = "numpy",
        max_nodes: int = 32,
        hurdle_credit: float = 0.0,
        loss_mode: str = "auto",
    ) -> None:
        if isinstance(envs, str):
            envs = [envs]
        if not envs:
            raise ConfigError("envs: give at least one environment id, e.g. ['CartPole']")
        self.specs = [envlib.get(e) for e in envs]
        self.hurdle = hurdle
        self.hurdle_spec = envlib.get(hurdle.env) if hurdle is not None else None
        if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0
                             for s in seeds):
            raise ConfigError(f"seeds = {seeds!r}: give one or more non-negative integers")
        self.seeds = tuple(seeds)
        self.config = config or DQNConfig()
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool)
                                  or steps < 1):
            raise ConfigError(f"steps = {steps!r}: must be a positive integer")
        self.steps = steps
        self.budgets = {
            spec.id: envlib.Budget(steps=steps) if steps else spec.budget.scaled(budget_scale)
            for spec in self.specs + ([self.hurdle_spec] if self.hurdle_spec else [])
        }
        for env_id, budget in (budgets or {}).items():
            spec = envlib.get(env_id)
            if spec.id not in self.budgets:
                raise ConfigError(f"budgets: {env_id!r} is not one of the evaluator's "
                                  f"environments ({', '.join(self.budgets)})")
            self.budgets[spec.id] = budget
        if time_limit is not None and not time_limit > 0:
            raise ConfigError(f"time_limit = {time_limit!r}: must be a positive number of seconds")
        self.time_limit = time_limit
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise ConfigError(f"max_steps = {max_steps!r}: must be a positive integer")
        self.max_steps = max_steps
        self.trainer = resolve_trainer(trainer)
        if not isinstance(max_nodes, int) or isinstance(max_nodes, bool) or max_nodes < 1:
            raise ConfigError(f"max_nodes = {max_nodes!r}: must be a positive integer")
        self.max_nodes = max_nodes
        if loss_mode not in LOSS_MODES:
            raise ConfigError(f"loss_mode = {loss_mode!r}: must be one of "
                              f"{', '.join(LOSS_MODES)}")
        self.loss_mode = loss_mode
        if not isinstance(hurdle_credit, int | float) or not 0.0 <= hurdle_credit <= 1.0:
            raise ConfigError(f"hurdle_credit = {hurdle_credit!r}: must be a number in [0, 1]")
        self.hurdle_credit = float(hurdle_credit)

    def __repr__(self) -> str:
        hurdle = f"{self.hurdle.env}>={self.hurdle.threshold}" if self.hurdle else "none"
        return (f"RLEvaluator(envs={[s.id for s in self.specs]}, hurdle={hurdle}, "
                f"seeds={list(self.seeds)}, trainer={self.trainer!r})")

    @property
    def backend(self) -> str:
        """The trainer in words, for status lines and dataset cards."""
        if self.trainer == "numpy":
            return "numpy lockstep trainer (evo.rl.dqn)"
        import jax

        from evo.rl.population import TRACE_FROM_STEPS

        losses = {"interpret": "interpreted", "trace": "traced"}.get(
            self.loss_mode, f"losses traced from {TRACE_FROM_STEPS:,} steps per agent")
        return f"population trainer (JAX {jax.__version__}, {jax.default_backend()}; {losses})"

    def __call__(self, program: Program, seed: int | None = None,
                 progress: bool | None = None, budget_scale: float = 1.0) -> Evaluation:
        return self.evaluate(program, seed, progress, budget_scale)

    def evaluate(self, program: Program, seed: int | None = None,
                 progress: bool | None = None, budget_scale: float = 1.0) -> Evaluation:
        """Evaluate ``program``; ``seed`` offsets the evaluator's seeds and
        ``budget_scale`` multiplies every budget (progressive hurdles use it)."""
        if self.trainer == "population":
            return self.evaluate_batch([program], seed, budget_scale)[0]
        start = time.perf_counter()
        budgets = self.budgets if budget_scale == 1.0 else {
            k: b.scaled(budget_scale) for k, b in self.budgets.items()}
        seeds = [s + (seed or 0) for s in self.seeds]
        order = list(self.specs)
        if self.hurdle_spec is not None:
            order = [self.hurdle_spec] + [s for s in order if s.id != self.hurdle_spec.id]
        counted = {s.id for s in self.specs}
        result = Evaluation(fitness=0.0, scores={}, trainer=self.backend)
        bar = _ProgressBar(sum(self._max_steps(budgets[s.id]) for s in order) * len(seeds),
                           enabled=progress)
        try:
            program.check()
            for spec in order:
                remaining = None
                if self.time_limit is not None:
                    remaining = self.time_limit - (time.perf_counter() - start)
                    if remaining <= 0:
                        return self._fail(result, "timeout",
                                          f"time limit {self.time_limit:g} s reached", start)
                env_result = self._train(program, spec, seeds, remaining, bar, budgets[spec.id])
                if self._judge(result, spec, env_result, counted, start):
                    return result
        except ProgramError as err:
            return self._fail(result, "error", f"invalid program: {err}", start)
        except Exception as err:  # never let a candidate crash the caller
            where = traceback.extract_tb(err.__traceback__)[-1]
            return self._fail(result, "error", f"{type(err).__name__}: {err} "
                              f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})", start)
        finally:
            bar.close()
        result.fitness = float(sum(result.scores.values()))
        result.seconds = time.perf_counter() - start
        return result

    @staticmethod
    def _max_steps(budget: envlib.Budget) -> int:
        return budget.steps or budget.episodes * 200

    def _train(self, program: Program, spec: envlib.EnvSpec, seeds: list[int],
               time_limit: float | None, bar: _ProgressBar,
               budget: envlib.Budget) -> EnvResult:
        t0 = time.perf_counter()
        runs = train(program, spec, seeds, self.config, budget, time_limit,
                     on_progress=bar.callback(len(seeds)), step_limit=self.max_steps)
        return self._env_result(spec, runs, time.perf_counter() - t0)

    def _env_result(self, spec: envlib.EnvSpec, runs: list, seconds: float) -> EnvResult:
        """One program's agents on one environment (one run per seed), scored."""
        bad = next((r for r in runs if r.status != "ok"), None)
        seed_scores = [spec.score(r.episode_returns, self.config.score_window) for r in runs]
        returns = [sum(r.episode_returns[-self.config.score_window:]) /
                   max(1, len(r.episode_returns[-self.config.score_window:])) for r in runs]
        return EnvResult(
            env=spec.id,
            score=float(sum(seed_scores) / len(seed_scores)),
            mean_return=float(sum(returns) / len(returns)),
            seed_scores=seed_scores,
            episodes=sum(len(r.episode_returns) for r in runs),
            steps=sum(r.steps for r in runs),
            status=bad.status if bad else "ok",
            reason=f"seed {bad.seed}: {bad.reason}" if bad else "",
            seconds=seconds,
        )

    def _judge(self, result: Evaluation, spec: envlib.EnvSpec, env_result: EnvResult,
               counted: set[str], start: float) -> bool:
        """Record ``env_result`` in ``result``; True if the evaluation ends here
        (a failure or a failed hurdle, with ``result`` marked accordingly)."""
        result.envs.append(env_result)
        result.steps += env_result.steps
        if env_result.status == "timeout" and "step limit" in env_result.reason:
            self._fail(result, "timeout", f"{spec.id}: {env_result.reason}", start)
            return True
        if env_result.status == "timeout":
            self._fail(result, "timeout", f"time limit of {self.time_limit:g} s reached while "
                       f"training on {spec.id} ({env_result.steps} steps)", start)
            return True
        if env_result.status != "ok":
            self._fail(result, env_result.status, f"{spec.id}: {env_result.reason}", start)
            return True
        if spec.id in counted:
            result.scores[spec.id] = env_result.score
        if self.hurdle is not None and spec is self.hurdle_spec:
            passed = self.hurdle.passed(env_result.score)
            result.hurdle = {"env": spec.id, "threshold": self.hurdle.threshold,
                             "score": env_result.score, "passed": passed}
            if not passed:
                self._fail(result, "hurdle", f"{spec.id} score {env_result.score:.3f} is below "
                           f"the hurdle threshold {self.hurdle.threshold}", start)
                result.fitness = self.hurdle_credit * env_result.score
                return True
        return False

    def evaluate_batch(self, programs: Sequence[Program], seed: int | None = None,
                       budget_scale: float = 1.0) -> list[Evaluation]:
        """Evaluate several programs at once; the same result as :meth:`evaluate` for
        each, but trained together.

        With the population trainer every environment trains all (program, seed)
        agents still in the running in one batched call: the hurdle environment
        first, then only the programs that passed it. Failures (NaN, a time limit,
        an invalid program) stay with their program. With the numpy trainer the
        programs are evaluated one after another.
        """
        if self.trainer != "population":
            return [self.evaluate(p, seed, False, budget_scale) for p in programs]
        from evo.rl.interpreter import ProgramTooLarge, encode
        from evo.rl.population import compile_seconds, train_population

        start = time.perf_counter()
        compiled_before = compile_seconds()
        budgets = self.budgets if budget_scale == 1.0 else {
            k: b.scaled(budget_scale) for k, b in self.budgets.items()}
        seeds = [s + (seed or 0) for s in self.seeds]
        order = list(self.specs)
        if self.hurdle_spec is not None:
            order = [self.hurdle_spec] + [s for s in order if s.id != self.hurdle_spec.id]
        counted = {s.id for s in self.specs}
        results = [Evaluation(fitness=0.0, scores={}, trainer=self.backend) for _ in programs]
        alive = []
        for i, program in enumerate(programs):
            try:
                program.check()
                encode(program, self.max_nodes)
            except (ProgramError, ProgramTooLarge, ValueError) as err:
                self._fail(results[i], "error", f"invalid program: {err}", start)
            else:
                alive.append(i)
        # The time limit is per candidate: a batch of n may take n times as long (the
        # total a sequential evaluation would be allowed), compilation included.
        limit = None if self.time_limit is None else self.time_limit * max(1, len(programs))
        for spec in order:
            if not alive:
                break
            remaining = None
            if limit is not None:
                remaining = limit - (time.perf_counter() - start)
                if remaining <= 0:
                    for i in alive:
                        self._fail(results[i], "timeout", f"time limit of {self.time_limit:g} "
                                   f"s per candidate reached ({len(programs)} in the batch)",
                                   start)
                    return results
            t0 = time.perf_counter()
            try:
                runs = train_population([programs[i] for i in alive for _ in seeds], spec,
                                        seeds * len(alive), self.config, budgets[spec.id],
                                        remaining, step_limit=self.max_steps,
                                        max_nodes=self.max_nodes, loss_mode=self.loss_mode)
            except Exception as err:  # the batch's problem: every candidate in it fails
                where = traceback.extract_tb(err.__traceback__)[-1]
                for i in alive:
                    self._fail(results[i], "error", f"{type(err).__name__}: {err} "
                               f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})", start)
                return results
            seconds = time.perf_counter() - t0
            survivors = []
            for j, i in enumerate(alive):
                env_result = self._env_result(spec, runs[j * len(seeds):(j + 1) * len(seeds)],
                                              seconds)
                if not self._judge(results[i], spec, env_result, counted, start):
                    survivors.append(i)
            alive = survivors
        for i in alive:
            results[i].fitness = float(sum(results[i].scores.values()))
        share = (time.perf_counter() - start) / max(1, len(programs))
        compiled = (compile_seconds() - compiled_before) / max(1, len(programs))
        for r in results:
            if not math.isfinite(r.fitness):
                self._fail(r, "nan", "the fitness is not finite", start)
            r.seconds = share  # each candidate's share of the batch's wall time
            r.compile_seconds = compiled  # ... and of the compiling within it
        return results

    @staticmethod
    def _fail(result: Evaluation, status: str, reason: str, start: float) -> Evaluation:
        result.fitness = 0.0
        result.status, result.reason = status, reason
        result.seconds = time.perf_counter() - start
        return result


def evaluate(
    program: Program,
    envs: Sequence[str] | str = ("CartPole",),
    seed: int = 0,
    seeds: int = 1,
    steps: int | None = None,
    hurdle: envlib.Hurdle | None = None,
    config: DQNConfig | None = None,
    time_limit: float | None = None,
    progress: bool | None = None,
) -> Evaluation:
    """Train with ``program`` on ``envs`` and score it, in one call.

    ``seeds`` agents per environment (seeds ``seed .. seed+seeds-1``); ``steps``
    replaces the default budgets; no hurdle unless one is given.
    """
    evaluator = RLEvaluator(envs, hurdle, tuple(range(seed, seed + seeds)), config, steps,
                            time_limit=time_limit)
    return evaluator.evaluate(program, progress=progress)


class _ProgressBar:
    """A tqdm bar on stderr when it is a terminal (or when forced)."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar = None
        self._done = 0
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="step", unit_scale=True, dynamic_ncols=True,
                             desc="training", leave=False)

    def callback(self, agents: int) -> Callable[[int, int], None] | None:
        if self._bar is None:
            return None
        base = self._done

        def update(step: int, _max: int) -> None:
            target = base + step * agents
            if target > self._done:
                self._bar.update(target - self._done)
                self._done = target

        return update

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
