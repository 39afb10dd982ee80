"""Scoring a loss program: train agents with it and measure how well they learn.

Per environment, the score is the normalized average return over the last 50
training episodes, clipped to [0, 1] (averaged over seeds); the fitness is the sum
over the evaluator's environments. The hurdle environment runs first: a score
below its threshold ends the evaluation with fitness 0.

An evaluation never raises because of the candidate: a loss or network that goes
NaN/inf, a time limit, a failed hurdle or an exception all end with fitness 0 and
a recorded ``status`` (``"nan"``, ``"timeout"``, ``"hurdle"``, ``"error"``).
Bad settings (unknown environments, invalid budgets) are reported up front.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import envs as envlib
from evo.dqn import DQNConfig, train
from evo.errors import ConfigError
from graphs.errors import ProgramError
from graphs.program import Program

STATUSES = ("ok", "hurdle", "nan", "timeout", "error")


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
        time_limit: wall-clock seconds for the whole evaluation.
        max_steps: environment steps one agent may take on one environment before
            the evaluation ends with status ``"timeout"`` (guards against episode
            budgets whose episodes never end).
        budgets: per-environment budgets that replace the defaults (before ``steps``
            and ``budget_scale`` apply to the others), e.g. ``{"CartPole":
            Budget(episodes=400)}`` to keep a hurdle's full budget.
    """

    def __init__(
        self,
        envs: Sequence[str] = ("CartPole",),
        hurdle: envlib.Hurdle | None = envlib.DEFAULT_HURDLE,
        seeds: Sequence[int] = (0,),
        config: DQNConfig | None = None,
        steps: int | None = None,
        budget_scale: float = 1.0,
        time_limit: float | None = None,
        max_steps: int | None = None,
        budgets: Mapping[str, envlib.Budget] | None = None,
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

    def __repr__(self) -> str:
        hurdle = f"{self.hurdle.env}>={self.hurdle.threshold}" if self.hurdle else "none"
        return (f"RLEvaluator(envs={[s.id for s in self.specs]}, hurdle={hurdle}, "
                f"seeds={list(self.seeds)})")

    def __call__(self, program: Program, seed: int | None = None,
                 progress: bool | None = None, budget_scale: float = 1.0) -> Evaluation:
        return self.evaluate(program, seed, progress, budget_scale)

    def evaluate(self, program: Program, seed: int | None = None,
                 progress: bool | None = None, budget_scale: float = 1.0) -> Evaluation:
        """Evaluate ``program``; ``seed`` offsets the evaluator's seeds and
        ``budget_scale`` multiplies every budget (progressive hurdles use it)."""
        start = time.perf_counter()
        budgets = self.budgets if budget_scale == 1.0 else {
            k: b.scaled(budget_scale) for k, b in self.budgets.items()}
        seeds = [s + (seed or 0) for s in self.seeds]
        order = list(self.specs)
        if self.hurdle_spec is not None:
            order = [self.hurdle_spec] + [s for s in order if s.id != self.hurdle_spec.id]
        counted = {s.id for s in self.specs}
        result = Evaluation(fitness=0.0, scores={})
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
                result.envs.append(env_result)
                result.steps += env_result.steps
                if env_result.status == "timeout" and "step limit" in env_result.reason:
                    return self._fail(result, "timeout", f"{spec.id}: {env_result.reason}",
                                      start)
                if env_result.status == "timeout":
                    return self._fail(
                        result, "timeout", f"time limit of {self.time_limit:g} s reached while "
                        f"training on {spec.id} ({env_result.steps} steps)", start)
                if env_result.status != "ok":
                    return self._fail(result, env_result.status,
                                      f"{spec.id}: {env_result.reason}", start)
                if spec.id in counted:
                    result.scores[spec.id] = env_result.score
                if self.hurdle is not None and spec is self.hurdle_spec:
                    passed = self.hurdle.passed(env_result.score)
                    result.hurdle = {"env": spec.id, "threshold": self.hurdle.threshold,
                                     "score": env_result.score, "passed": passed}
                    if not passed:
                        return self._fail(
                            result, "hurdle",
                            f"{spec.id} score {env_result.score:.3f} is below the hurdle "
                            f"threshold {self.hurdle.threshold}", start)
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
            seconds=time.perf_counter() - t0,
        )

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
