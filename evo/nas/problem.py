"""The architecture problems: NAS-Bench-201 cells and MobileNet-style networks.

Selected by ``[space] kind = "nb201"`` and ``"mobilenet"`` (registered in
:mod:`evo.app.problems`). Candidates come from the
space (:class:`~graphs.arch.nb201.NB201Space`, :class:`~graphs.arch.mobilenet.MobileNetSpace`),
are scored by an :class:`~evo.nas.evaluator.ArchEvaluator` (accuracy and simulated
latency or MACs, combined by a reward), and equivalent architectures share the
space's fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from evo.nas import settings
from evo.nas.card import arch_card
from evo.nas.evaluator import ArchEvaluator
from evo.nas.settings import make_arch_evaluator
from evo.problem import CardParts, Problem


class ArchProblem(Problem):
    """Architectures of one space (the base of the NB201 and MobileNet problems)."""

    noun = "architectures"
    unused_search_keys = ("seed_program", "extra_nodes", "mutation_p")

    def evaluator_section(self, raw: Mapping[str, Any], space: Any) -> Any:
        return settings.evaluator_section(raw, space)

    def evaluator(self, config: Any) -> ArchEvaluator:
        return make_arch_evaluator(config.evaluator, config.space)

    def fingerprint(self, config: Any, space: Any) -> Callable[[Any], str]:
        return space.fingerprint

    MEANINGS = {
        "fingerprint": "the space's equivalence key ([space] equivalence): equivalent "
                       "architectures appear once",
        "fitness": "the reward of the architecture's best evaluation (accuracy combined "
                   "with its cost, [evaluator] reward)",
        "scores": "search accuracy, simulated latency (ms), MACs and parameters (millions), "
                  "and the reported test accuracy where the table has it",
        "status": "`ok`",
        "formula": "the NB201 arch string, or the network's size for other spaces",
    }

    def card_fields(self, fields: tuple[tuple[str, str, str], ...]
                    ) -> tuple[tuple[str, str, str], ...]:
        return tuple((n, t, self.MEANINGS.get(n, d)) for n, t, d in fields)

    def where(self, space: Mapping[str, Any]) -> str:
        """The space as ``evo status`` names it."""
        return str(space.get("kind"))

    def status_lines(self, recorded: Mapping[str, Any], trainers: Mapping[str, int]
                     ) -> list[str]:
        search, ev = recorded.get("search", {}), recorded.get("evaluator", {})
        algo = search.get("algorithm", "?")
        if algo == "regularized_evolution":
            algo += f" P {search.get('population_size')}, T {search.get('tournament_size')}"
        target = f", target {ev['target']:g}" if "target" in ev else ""
        return [f"search:     {algo}; space {self.where(recorded.get('space', {}))}",
                f"evaluator:  accuracy {ev.get('accuracy')}; cost {ev.get('cost')} on "
                f"{ev.get('hardware')}; reward {ev.get('reward')}{target}"]

    def card(self, recorded: Mapping[str, Any], info: Mapping[str, Any],
             rows: list[dict[str, Any]], store_name: str, top: int, parts: CardParts
             ) -> str:
        return arch_card(recorded, info, rows, store_name, top, parts)


class NB201Problem(ArchProblem):
    """NAS-Bench-201 cells (``[space] kind = "nb201"``), scored from the shipped table."""

    name = "nb201"

    def space(self, config: Any) -> Any:
        from graphs.arch.nb201 import NB201Space

        return NB201Space(config.space.dataset, equivalence=config.space.equivalence)

    def where(self, space: Mapping[str, Any]) -> str:
        return f"{space.get('kind')} ({space.get('dataset')})"


class MobileNetProblem(ArchProblem):
    """MobileNet-style layerwise networks (``[space] kind = "mobilenet"``)."""

    name = "mobilenet"

    def space(self, config: Any) -> Any:
        from graphs.arch.mobilenet import MobileNetSpace

        return MobileNetSpace()

