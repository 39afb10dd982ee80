"""The problems that ship with evo, registered in the order configs and messages list them.

A problem of your own is registered the same way, from your module:
``register_problem(MyProblem())`` (see ``docs/extending.md``).
"""

from __future__ import annotations

from evo.nas.problem import MobileNetProblem, NB201Problem
from evo.problem import PROBLEMS, Problem, get_problem, register_problem
from evo.rl.problem import LossProblem

LOSS = register_problem(LossProblem())
NB201 = register_problem(NB201Problem())
MOBILENET = register_problem(MobileNetProblem())

__all__ = ["LOSS", "MOBILENET", "NB201", "PROBLEMS", "Problem", "get_problem", "register_problem"]
