"""Benchmarks for the program-graph core (issue: program graphs).

Measures, on one core:
  * fingerprints/s for 20-node programs (cold: no memo, no cached gradients), per FEC mode;
  * valid mutations/s from every built-in and along a random walk (p = 0.95);
  * validity of 100,000 mutations from every built-in, re-checked independently
    (structural check plus a fresh numeric gradient check that bypasses the
    provable-gradient shortcut and the memo).
Figures are medians over repetitions. Run: ``make bench`` or
``.venv/bin/python bench/bench_graphs.py [--quick]``; results go to
``results/bench/graphs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from graphs.core.equivalence import FEC, MODES  # noqa: E402
from graphs.core.mutation import Mutator  # noqa: E402
from graphs.core.program import Program  # noqa: E402
from graphs.core.validity import gradient_is_nonzero  # noqa: E402
from graphs.rl_loss.generation import seeded_program  # noqa: E402
from graphs.rl_loss.library import BUILTINS, builtin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned"


def uncached(p: Program) -> Program:
    """A copy without memoized results (plans, gradients, fingerprints)."""
    return Program(p.opset, p.nodes, p.inputs, p.output, p.ids[p.n_inputs:])


def bench_fingerprints(n: int, reps: int) -> dict:
    programs = [seeded_program("dqn", 13, seed=i) for i in range(n)]  # 7 + 13 = 20 nodes
    assert all(len(p.nodes) == 20 for p in programs)
    out = {}
    for mode in MODES:
        rates = []
        for _ in range(reps):
            fresh = [uncached(p) for p in programs]
            fec = FEC(mode, memo_size=0)
            t0 = time.perf_counter()
            for p in fresh:
                fec._compute(p)
            rates.append(n / (time.perf_counter() - t0))
        out[mode] = {"programs_per_s": statistics.median(rates), "reps": rates}
    out["live_nodes_mean"] = float(np.mean([len(p.plan) for p in programs]))
    return out


def _rate(make, start: Program, walk: bool, n: int, reps: int) -> dict:
    rates = []
    for r in range(reps):
        mutator, rng, cur = make(), random.Random(r), uncached(start)
        start.opset.gradient_check.memo.clear()  # no rep profits from an earlier one's checks
        t0 = time.perf_counter()
        if walk:
            for _ in range(n):
                cur = mutator(cur, rng)
        else:
            for _ in range(n):
                mutator(cur, rng)
        rates.append(n / (time.perf_counter() - t0))
    return {"mutations_per_s": statistics.median(rates), "reps": rates}


def bench_mutations(n: int, reps: int) -> dict:
    """From each built-in (every child of the same parent) and along a random walk
    (each child is the next parent) from a DQN + 14 program."""
    out = {}
    for name in BUILTINS:
        out[name] = {
            "p=0.95": _rate(lambda: Mutator(p=0.95), builtin(name), False, n, reps),
            "point": _rate(lambda: Mutator(p=1.0), builtin(name), False, n, reps),
        }
    start = seeded_program("dqn", 14, seed=0)
    space = lambda: Mutator(p=0.95, fresh=lambda rng: seeded_program("dqn", 14, rng))  # noqa: E731
    out["walk(dqn+14)"] = {
        "p=0.95": _rate(space, start, True, n, reps),
        "point": _rate(lambda: Mutator(p=1.0), start, True, n, reps),
        "p=0.95, fresh = redraw all nodes": _rate(lambda: Mutator(p=0.95), start, True, n,
                                                  reps),
    }
    return out


def bench_validity(n: int) -> dict:
    """Every child re-checked from scratch: the structural checks, then a fresh numeric
    gradient check (no memo). A child whose gradient is non-zero but below the numeric
    tolerance (e.g. Q/(x/(r - r)), gradient ~1e-12) is still valid when the
    single-faithful-path proof covers it; those are counted separately."""
    out = {}
    for name in BUILTINS:
        mutator, rng, base = Mutator(p=0.95), random.Random(1), builtin(name)
        structural = numeric = proof_only = 0
        for _ in range(n):
            child = uncached(mutator(base, rng))
            if not child.is_valid(numeric=False):
                continue
            structural += 1
            if gradient_is_nonzero(child, memo=False):
                numeric += 1
            elif child.gradient_provably_nonzero:
                proof_only += 1
        valid = numeric + proof_only
        out[name] = {"mutations": n, "valid": valid, "valid_fraction": valid / n,
                     "structurally_valid": structural, "numerically_nonzero": numeric,
                     "proven_nonzero_below_tolerance": proof_only}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (for a smoke run)")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "graphs.json"))
    ap.add_argument("--only", choices=("fingerprints", "mutations", "validity"), nargs="*",
                    help="run these sections; the others keep their figures from --out")
    args = ap.parse_args()
    pinned = pin_to_one_core()
    reps = 3 if args.quick else 5
    only = set(args.only or ("fingerprints", "mutations", "validity"))
    old = json.loads(Path(args.out).read_text()) if args.only and Path(args.out).exists() else {}
    fp = (bench_fingerprints(300 if args.quick else 2000, reps) if "fingerprints" in only
          else old["fingerprints_20_nodes"])
    mut = (bench_mutations(2000 if args.quick else 20_000, reps) if "mutations" in only
           else old["mutations"])
    val = (bench_validity(2000 if args.quick else 100_000) if "validity" in only
           else old["validity"])
    result = {
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "cpu": platform.processor() or platform.machine(), "affinity": pinned},
        "fingerprints_20_nodes": fp,
        "mutations": mut,
        "validity": val,
        "command": "python bench/bench_graphs.py" + (" --quick" if args.quick else "")
        + (" --only " + " ".join(args.only) if args.only else ""),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"one core ({pinned}); medians of {reps} repetitions")
    print(f"fingerprints, 20-node programs ({fp['live_nodes_mean']:.1f} live nodes on average):")
    for mode in MODES:
        print(f"  {mode:<9} {fp[mode]['programs_per_s']:>9.0f} programs/s   (target >= 5,000)")
    print("valid mutations/s (target >= 20,000):")
    for name, variants in mut.items():
        row = ", ".join(f"{k}: {v['mutations_per_s']:.0f}" for k, v in variants.items())
        print(f"  {name:<13} {row}")
    print("validity of mutations, re-checked without shortcuts (target 100%):")
    for name, r in val.items():
        print(f"  {name:<13} {r['valid']:>7}/{r['mutations']}  ({r['valid_fraction']:.4%}); "
              f"numerically non-zero {r['numerically_nonzero']}, proven non-zero but below "
              f"tolerance {r['proven_nonzero_below_tolerance']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
