"""evo: evolutionary program search for RL loss functions and neural architectures.

The Python API::

    import evo

    config = evo.preset("quick")                      # or evo.load_config("my.toml")
    evo.run(config, "runs/quick.db", workers=2)        # search; a Ctrl-C stops cleanly
    evo.resume("runs/quick.db", trials=200)            # continue, or extend, a run
    print(evo.status("runs/quick.db"))                 # progress, leaderboard, lineage
    evo.export("runs/quick.db", "runs/quick-top10", top=10)  # the top-k dataset

Problems (``evo.get_problem("loss")``), algorithms (``evo.get_algorithm(...)``) and
worker backends are found by name in registries; ``docs/extending.md`` shows how to
add one of each. The layers and the data flow are drawn in ``docs/architecture.md``.

Names are imported on first use, so ``import evo`` stays cheap for worker processes.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_API = {
    "run": "evo.app.runner",
    "resume": "evo.app.runner",
    "status": "evo.app.runner",
    "build": "evo.app.runner",
    "make_evaluator": "evo.app.runner",
    "load_config": "evo.app.config",
    "preset": "evo.app.config",
    "PRESETS": "evo.app.config",
    "RunConfig": "evo.app.config",
    "export": "evo.app.export",
    "Problem": "evo.problem",
    "get_problem": "evo.app.problems",
    "register_problem": "evo.app.problems",
    "PROBLEMS": "evo.app.problems",
    "LOSS": "evo.app.problems",
    "NB201": "evo.app.problems",
    "MOBILENET": "evo.app.problems",
    "SearchAlgorithm": "evo.algorithms",
    "RegularizedEvolution": "evo.algorithms",
    "RandomSearch": "evo.algorithms",
    "ALGORITHMS": "evo.algorithms",
    "get_algorithm": "evo.algorithms",
    "register_algorithm": "evo.algorithms",
    "register_backend": "evo.workers",
    "Result": "evo.results",
    "Status": "evo.results",
    "Search": "evo.search.loop",
    "RunStore": "evo.search.store",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'evo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
