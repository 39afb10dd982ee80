"""Worker backends by name: what ``[workers] backend`` (or ``--backend``) selects.

An entry prepares a backend from the ``[workers]`` section and the function workers
call; preparing checks what the backend needs (e.g. that Ray is installed), and the
returned factory starts the workers when the search begins::

    register_backend("mine", lambda workers, evaluate: (lambda: MyBackend(evaluate)))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evo.registry import Registry
from evo.workers.base import Backend

# (workers section, evaluate) -> a function that starts the backend
Prepare = Callable[[Any, Callable[..., Any]], Callable[[], Backend]]

BACKENDS: Registry[Prepare] = Registry("worker backend", "workers.backend")


def register_backend(name: str, prepare: Prepare, replace: bool = False) -> Prepare:
    """Make ``[workers] backend = name`` use ``prepare(workers, evaluate)()``."""
    return BACKENDS.register(name, prepare, replace=replace)


def backend_factory(workers: Any, evaluate: Callable[..., Any]) -> Callable[[], Backend]:
    """The factory of the backend that ``workers.backend`` names (checked now; started
    when called)."""
    return BACKENDS.get(workers.backend)(workers, evaluate)
