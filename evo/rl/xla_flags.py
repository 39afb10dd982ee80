"""The XLA setting that keeps agents independent of their batch: no fused multiply-add.

XLA:CPU contracts ``a*b + c`` into one FMA instruction wherever its fusion of a
compiled program allows, and which products it contracts depends on the whole
program. In the population trainer the whole program is the batch: a batch whose
other programs need another network call (DDQN's ``Q(s')``) fuses the Adam update
differently, so an agent's parameters differed in the last bit with its neighbours,
and over a long training its returns did too. Capping the instruction set at AVX
(``--xla_cpu_max_isa=AVX``, which has no FMA) makes every multiply and add round on
its own, so an agent computes the same numbers in any batch
(``docs/population.md``, "Nothing crosses the population axis"). The cost is
measured in ``bench/bench_population.py`` (section ``fma``).

XLA reads ``XLA_FLAGS`` once, when JAX starts its CPU backend, so :func:`configure`
runs when :mod:`evo.rl` is imported, before any JAX computation of ours. A user who
set ``xla_cpu_max_isa`` keeps their choice; ``EVO_XLA_FMA=on`` keeps XLA's default
(batch-dependent in the last bit, and measured no faster: 0.97-1.05x).
"""

from __future__ import annotations

import os
import re
import warnings

FLAG = "--xla_cpu_max_isa=AVX"


def configure() -> bool:
    """Add :data:`FLAG` to ``XLA_FLAGS`` if JAX's backend has not started yet.

    Returns whether the trainer's programs compile without FMA. Warns once, and
    returns False, when JAX was already running without the flag (the setting can
    only take effect in a fresh process)."""
    flags = os.environ.get("XLA_FLAGS", "")
    chosen = re.search(r"xla_cpu_max_isa=(\w+)", flags)
    if chosen:
        return chosen.group(1).upper() in ("AVX", "SSE4_2")
    if os.environ.get("EVO_XLA_FMA", "").lower() in ("1", "on", "true", "yes"):
        return False
    if _backend_started():
        warnings.warn(
            "JAX started before evo.rl was imported, so XLA compiles the population "
            f"trainer with fused multiply-add: an agent's results can then depend on "
            f"its batch in the last bit. Import evo.rl before running JAX code, or "
            f"set XLA_FLAGS={FLAG} in the environment.", RuntimeWarning, stacklevel=3)
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized
    except (ImportError, AttributeError):  # no JAX, or a JAX without this probe
        return False
    return bool(started())
