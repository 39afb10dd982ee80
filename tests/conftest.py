"""Suite-wide setup: one BLAS/OpenMP thread per test process.

The suite's numpy work is small matrices, which extra BLAS threads only slow down,
and on a machine whose cores are busy (other tests' worker processes, other jobs)
they spin against each other: without this cap the suite ran many times slower on a
loaded machine. The variables are set before numpy loads (this file is imported
before any test module) and are inherited by the suite's subprocesses and workers;
a value already in the environment is kept.
"""

from __future__ import annotations

import os


# OpenBLAS picks its kernels by CPU (Haswell, SkylakeX, Zen...), and they round
# differently: on an AMD EPYC its own choice changed the numpy trainer's returns and
# failed the golden short run (tests/test_golden.py), which passes with the Haswell
# kernels it was recorded with. Every x86-64 CPU with AVX2 runs those.
def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as info:
            return any(line.startswith("flags") and " avx2" in line for line in info)
    except OSError:
        return False


if _has_avx2():
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

try:  # in case a plugin loaded numpy before this file: cap its pools too
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    pass
else:
    try:
        threadpool_limits(limits=int(os.environ["OPENBLAS_NUM_THREADS"]))
    except ValueError:  # not a number: leave the pools as the variable made them
        pass

# Runs whose config says trainer = "auto" (the presets' default) train with the numpy
# trainer in this suite: a JAX compilation takes 15-60 s per setting, and most tests
# exercise the search, the store or the CLI, not the trainer. The population trainer
# has its own tests (tests/evo/rl/), including a search that batches candidates
# through it; they ask for it by name.
os.environ.setdefault("EVO_TRAINER", "numpy")

# The population trainer's XLA flag (no fused multiply-add: evo/rl/xla_flags.py) only
# takes effect if it is set before JAX starts; some test modules import gymnax, which
# starts it, so the flag is set here, before any test module loads.
import evo.rl  # noqa: E402,F401
