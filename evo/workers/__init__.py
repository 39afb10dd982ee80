"""Where candidates are evaluated: tasks and outcomes, the backend interface
(:mod:`~evo.workers.base`), the local process pool, Ray (:mod:`~evo.workers.ray_backend`),
and the registry that ``[workers] backend`` selects from (:mod:`~evo.workers.registry`).

The built-in backends are registered here: ``local`` and ``ray``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evo.errors import ConfigError
from evo.workers.base import Backend, InProcess, LocalPool, Outcome, Task
from evo.workers.registry import BACKENDS, backend_factory, register_backend


def _local(w: Any, evaluate: Callable[..., Any]) -> Callable[[], Backend]:
    def local() -> Backend:
        return LocalPool(evaluate, w.workers, w.task_timeout, w.memory_limit_mb, w.retries,
                         threads=w.threads_per_worker)
    return local


def _ray(w: Any, evaluate: Callable[..., Any]) -> Callable[[], Backend]:
    try:  # imported here, so that Ray is needed only by runs that use it
        from evo.workers.ray_backend import RayBackend
    except ImportError as err:
        raise ConfigError(f"workers.backend = \"ray\" needs Ray ({err}); install it with "
                          "`pip install 'evo-search[ray]'`, or use --backend local") from None

    def ray() -> Backend:
        return RayBackend(evaluate, w.address or "auto", task_timeout=w.task_timeout,
                          retries=w.retries, threads=w.threads_per_worker)
    return ray


register_backend("local", _local)
register_backend("ray", _ray)

__all__ = ["BACKENDS", "Backend", "InProcess", "LocalPool", "Outcome", "Task",
           "backend_factory", "register_backend"]
