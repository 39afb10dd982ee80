"""The RL-loss problem: loss programs, trained as DQN-style agents on environments.

Selected by ``[space] kind = "loss"`` (the default; registered in
:mod:`evo.app.problems`). Candidates come from a :class:`~evo.algorithms.base.SeedSpace`
(a built-in loss or the frozen from-scratch skeleton, plus random nodes); the evaluator
is an :class:`~evo.rl.evaluator.RLEvaluator`; equivalent programs share a
functional-equivalence fingerprint (``[fec] mode``).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import envs as envlib
from evo.algorithms.base import SeedSpace
from evo.problem import CardParts, Problem
from evo.rl import settings
from evo.rl.card import loss_card
from evo.rl.evaluator import RLEvaluator
from graphs.core.equivalence import FEC

SCRATCH = "scratch"  # [search] seed_program of the from-scratch setting


class CandidateEvaluator:
    """What workers call: the evaluator without its per-step progress bar (workers
    share the driver's terminal), with the budget scale that hurdles ask for."""

    def __init__(self, evaluator: RLEvaluator) -> None:
        self.evaluator = evaluator

    def __call__(self, program: Any, budget_scale: float = 1.0) -> Any:
        # A candidate's numerical trouble is recorded in its result ("nan"); numpy's
        # overflow warnings would only scribble over the driver's progress display.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return self.evaluator.evaluate(program, progress=False, budget_scale=budget_scale)

    def evaluate_batch(self, programs: list[Any], budget_scale: float = 1.0) -> list[Any]:
        """Several candidates trained together (the population trainer)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return self.evaluator.evaluate_batch(programs, budget_scale=budget_scale)

    @property
    def batches(self) -> bool:
        """Whether a batch trains in one call (else it is a loop over candidates)."""
        return getattr(self.evaluator, "trainer", "") == "population"

    def __repr__(self) -> str:
        return f"CandidateEvaluator({self.evaluator!r})"


class NoFEC:
    """``[fec] mode = "off"``: a fresh fingerprint per proposal, so no candidate is
    ever skipped as a duplicate (not even an exact copy): the baseline of an FEC
    ablation."""

    mode = "off"

    def __call__(self, program: Any) -> str:
        return "off-" + uuid.uuid4().hex


class LossProblem(Problem):
    """RL loss programs (``[space] kind = "loss"``)."""

    name = "loss"
    noun = "loss programs"
    uses_fec = True
    space_mutates = False
    grows_budgets = True
    records_space = False  # the default kind

    def evaluator_section(self, raw: Mapping[str, Any], space: Any) -> Any:
        return settings.evaluator_section(raw)

    def evaluator_dict(self, section: Any) -> dict[str, Any]:
        return settings.evaluator_dict(section)

    def space(self, config: Any) -> SeedSpace:
        s = config.search
        return SeedSpace(None if s.seed_program == SCRATCH else s.seed_program, s.extra_nodes)

    def evaluator(self, config: Any) -> RLEvaluator:
        ev = config.evaluator
        hurdle = envlib.Hurdle(ev.hurdle.env, ev.hurdle.threshold) if ev.hurdle else None
        budgets = {env: envlib.Budget(episodes=b.episodes, steps=b.steps)
                   for env, b in ev.budgets}
        return RLEvaluator(list(ev.envs), hurdle, tuple(ev.seeds), ev.agent, ev.steps,
                           ev.budget_scale, ev.time_limit, ev.max_steps, budgets,
                           trainer=ev.trainer, max_nodes=ev.max_nodes,
                           loss_mode=ev.loss_mode,
                           hurdle_credit=ev.hurdle.credit if ev.hurdle else 0.0)

    def task_evaluator(self, evaluator: RLEvaluator) -> CandidateEvaluator:
        return CandidateEvaluator(evaluator)

    def fingerprint(self, config: Any, space: Any) -> Callable[[Any], str]:
        return NoFEC() if config.fec.mode == "off" else FEC(config.fec.mode)

    def status_lines(self, recorded: Mapping[str, Any], trainers: Mapping[str, int]
                     ) -> list[str]:
        search, ev = recorded.get("search", {}), recorded.get("evaluator", {})
        algo = search.get("algorithm", "?")
        if algo == "regularized_evolution":
            algo += (f" P {search.get('population_size')}, T {search.get('tournament_size')}"
                     f", p {search.get('mutation_p')}")
        seed = search.get("seed_program", "?")
        lines = [f"search:     {algo}; {seed} + {search.get('extra_nodes')} nodes"]
        hurdle = ev.get("hurdle")
        hurdle_text = (f"hurdle {hurdle['env']} >= {hurdle['threshold']}"
                       if isinstance(hurdle, dict) else "no hurdle")
        lines.append(f"evaluator:  {', '.join(ev.get('envs', []))}; {hurdle_text}")
        if trainers:
            lines.append("trainer:    " + "; ".join(
                f"{t} ({n} evaluations)" if len(trainers) > 1 else t
                for t, n in trainers.items()))
        return lines

    def card(self, recorded: Mapping[str, Any], info: Mapping[str, Any],
             rows: list[dict[str, Any]], store_name: str, top: int, parts: CardParts
             ) -> str:
        return loss_card(recorded, info, rows, store_name, top, parts)

