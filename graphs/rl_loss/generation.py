"""The paper's initial programs of the RL-loss search (reference.md section 1.3): a
built-in loss (DQN by default) followed by 14 random nodes, or the frozen from-scratch
skeleton plus 7 free nodes. The random nodes are drawn by :func:`graphs.core.generate.fill`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from graphs.core.equivalence import node_hashes
from graphs.core.errors import ProgramError
from graphs.core.execute import probe_trace
from graphs.core.generate import append_slots, fill, random_program
from graphs.core.op import Op
from graphs.core.program import Program
from graphs.core.sampling import as_rng, shared_sampler
from graphs.rl_loss.library import builtin

_TEMPLATES: dict[tuple[str, int], Program] = {}


def _builtin_template(name: str, n_nodes: int) -> Program:
    """A built-in followed by placeholder slots, built once: its probe values and
    node hashes are computed once, and every program drawn from it reuses those of
    the built-in's nodes (and shares its ids)."""
    key = (name.lower(), n_nodes)
    template = _TEMPLATES.get(key)
    if template is None:
        template = append_slots(builtin(name), n_nodes)
        if template.opset.trains:
            node_hashes(template)
            for which in range(len(template.opset.probes())):
                probe_trace(template, which)
        if len(_TEMPLATES) > 1000:
            _TEMPLATES.clear()
        _TEMPLATES[key] = template
    return template


def seeded_program(
    base: str | Program = "dqn",
    extra_nodes: int = 14,
    seed: int | random.Random | None = None,
    ops: Sequence[Op | str] | None = None,
) -> Program:
    """The paper's initial population member: a built-in (DQN by default, not
    frozen) followed by ``extra_nodes`` random nodes, with the output on the last."""
    if not isinstance(base, str):
        return random_program(base, extra_nodes, seed, ops)
    if not isinstance(extra_nodes, int) or extra_nodes < 1:
        raise ProgramError(f"n_nodes must be a positive integer, got {extra_nodes!r}",
                           "n_nodes")
    template = _builtin_template(base, extra_nodes)
    n_base = len(template.nodes) - extra_nodes
    free = [False] * n_base + [True] * extra_nodes
    return fill(template, free, as_rng(seed), shared_sampler(template.opset, ops))


def from_scratch(
    free_nodes: int = 7,
    seed: int | random.Random | None = None,
    ops: Sequence[Op | str] | None = None,
) -> Program:
    """The from-scratch setting: the four frozen skeleton nodes plus ``free_nodes``."""
    return seeded_program("skeleton", free_nodes, seed, ops)
