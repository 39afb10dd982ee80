"""Simulator speed: NB201 architectures per second on one core.

Each timed call lowers an arch string to its deployed layers and sums the memoized
per-layer costs (``latency_ms(nb201_layers(arch), hw)``), over all 15,625 NB201
archs in a shuffled order; a cold pass (empty caches) is timed separately. Median of
several reps.

    OPENBLAS_NUM_THREADS=1 taskset -c 1 python bench/bench_latency.py
"""

from __future__ import annotations

import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evo.nas import latency  # noqa: E402
from evo.nas.hardware import PRESETS, get_hardware  # noqa: E402
from graphs.arch import nb201  # noqa: E402

REPS = 5


def main() -> None:
    archs = [nb201.arch_string(c) for c in _all_codes()]
    random.Random(0).shuffle(archs)
    out: dict = {"command": "OPENBLAS_NUM_THREADS=1 taskset -c 1 python bench/bench_latency.py",
                 "archs": len(archs), "reps": REPS, "python": platform.python_version(),
                 "machine": platform.machine(), "presets": {}}
    for name in PRESETS:
        hw = get_hardware(name)
        t0 = time.perf_counter()
        for a in archs:
            latency.latency_ms(latency.nb201_layers(a), hw)
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            for a in archs:
                latency.latency_ms(latency.nb201_layers(a), hw)
            warm.append(time.perf_counter() - t0)
        sim = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            for a in archs[:500]:
                latency.simulate(latency.nb201_layers(a), hw)
            sim.append(time.perf_counter() - t0)
        row = {"cold_archs_per_s": len(archs) / cold,
               "archs_per_s": len(archs) / statistics.median(warm),
               "simulate_full_report_archs_per_s": 500 / statistics.median(sim)}
        out["presets"][name] = row
        print(f"{name}: {row['archs_per_s']:,.0f} archs/s (cold first pass "
              f"{row['cold_archs_per_s']:,.0f}/s; full simulate() report "
              f"{row['simulate_full_report_archs_per_s']:,.0f}/s)")
    path = ROOT / "results" / "bench" / "latency.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


def _all_codes():
    import itertools

    return itertools.product(range(len(nb201.OPS)), repeat=len(nb201.EDGES))


if __name__ == "__main__":
    main()
