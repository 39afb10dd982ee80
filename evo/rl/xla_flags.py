"""The XLA settings of the population trainer: no fused multiply-add (agents independent
of their batch) and one thread in JAX's CPU pool (no cores lost to spinning threads).

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
(batch-dependent in the last bit; 1.13x the agent-steps/s at 64-64, about the same at
256-256 with 32 agents).

JAX's CPU client runs one thread pool per process, sized when the backend starts by
``PJRT_NPROC``, else by the cores the process may use. The trainer's operations are small
(32-row matmuls), and a second pool thread mostly spins: on this project's 2-core
machine one trainer alone ran 1.39x faster with one pool thread than with two, on 46%
less CPU, and two trainers at once (two workers) 1.63x faster
(``bench/bench_threads.py --section xla``). So :func:`configure` also sets
``PJRT_NPROC=1`` unless the environment already sets it; search workers set it to
``[workers] threads_per_worker`` (:func:`evo.workers.base.thread_env`).

Traced losses (``loss_mode="trace"``) compile one trainer per new group of programs, so
a search pays XLA's compile time again and again. :func:`quick_compile_options` are the
options those trainers compile with when an agent's budget is short
(:data:`evo.rl.population.QUICK_COMPILE_UP_TO` steps or fewer: the one-machine
presets' stages) and its network narrow (64-64, the presets' agent; at 256-256 they
slowed the matmuls more than they saved), and
the two setup functions every training compiles (its agents' initial state, the compiled
port's first states; they run once): LLVM's optimization at level 1 and XLA:CPU's
elemental emitters instead of its MLIR fusion emitters, given as JAX's per-function
``compiler_options``. The interpreter's trainer, compiled once per run and run for every
batch, and long traced trainings keep XLA's defaults. For one group of 8 mixed programs
(CartPole, 64-64, 20k steps; ``bench/bench_population.py``, section ``compile_options``)
the quick options compiled the traced trainer in 5.4 s instead of 14.3 s and ran it
18% slower (median of 3), with the same returns to the bit; the interpreter under them
compiled in 29 s instead of 42 s and ran 10% slower. ``EVO_XLA_QUICK_COMPILE=off``
compiles everything with XLA's defaults.
"""

from __future__ import annotations

import os
import re
import warnings

FLAG = "--xla_cpu_max_isa=AVX"
POOL_VAR = "PJRT_NPROC"  # threads in the CPU client's pool, read when the backend starts
QUICK_COMPILE = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}


def configure() -> bool:
    """Add :data:`FLAG` to ``XLA_FLAGS`` if JAX's backend has not started yet.

    Returns whether the trainer's programs compile without FMA. Warns once, and
    returns False, when JAX was already running without the flag (the setting can
    only take effect in a fresh process). Also caps JAX's CPU pool at one thread
    (:data:`POOL_VAR`) where the environment does not size it and JAX has not started."""
    if POOL_VAR not in os.environ and not _backend_started():
        os.environ[POOL_VAR] = "1"
    flags = os.environ.get("XLA_FLAGS", "")
    chosen = re.search(r"xla_cpu_max_isa=(\w+)", flags)
    if chosen:
        return chosen.group(1).upper() in ("AVX", "SSE4_2")
    if env_switch("EVO_XLA_FMA", default=False):
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


def quick_compile_options() -> dict:
    """XLA options for compiles that run briefly next to their compile time (traced
    trainers, a training's setup): :data:`QUICK_COMPILE`, or none when
    ``EVO_XLA_QUICK_COMPILE`` is off (read when :mod:`evo.rl.population` is imported)."""
    return dict(QUICK_COMPILE) if env_switch("EVO_XLA_QUICK_COMPILE", default=True) else {}


ON, OFF = ("1", "on", "true", "yes"), ("0", "off", "false", "no")


def env_switch(name: str, default: bool) -> bool:
    """The on/off environment variable ``name`` (``default`` when unset or empty); a
    value that is neither :data:`ON` nor :data:`OFF` warns, naming both, and counts as
    unset."""
    value = os.environ.get(name, "").strip().lower()
    if value in ON or value in OFF:
        return value in ON
    if value:
        warnings.warn(f"{name}={os.environ[name]!r} is not a switch: write one of "
                      f"{', '.join(ON)} or {', '.join(OFF)}; using "
                      f"{'on' if default else 'off'}", RuntimeWarning, stacklevel=3)
    return default
