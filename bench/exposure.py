"""How many tournaments a member of a regularized-evolution population took part in.

In the paper's steady-state loop every child enters the population after one
tournament, so each member stays for exactly ``population_size`` proposals. Batched
runs (docs/population.md) insert a batch's results together and FEC duplicates at
once. A member that enters early in a burst can then leave after fewer proposals
than that. This reads run stores and reports, for every trained program that passed
the hurdle (fitness > 0, not one of the initial draws), the proposals made while it was
a member and its children, and the same for the run's best:

    python bench/exposure.py results/dqn-seeded/run.db results/dqn-seeded-s1/run.db

Members enter in the order their trials finished (``finished_at``, then id) and the
oldest leaves when ``population_size`` newer ones have entered. Members still in the
population at the end are left out.
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
from collections import Counter
from pathlib import Path

from evo.search.store import RunStore, StoreError


def exposure(path: str) -> dict:
    """The exposure figures of one run store (see the module docstring)."""
    store = RunStore.open(path, readonly=True)
    try:
        search = store.config.get("search", {})
        size = int(search.get("population_size", 0))
        tournament = int(search.get("tournament_size", 0))
        rows = store.db.execute(
            "SELECT id, status, fitness, duplicate_of, parent, proposed_at, finished_at "
            "FROM trials").fetchall()
    finally:
        store.close()
    if not size:
        raise SystemExit(f"{path}: not a regularized-evolution run (no population_size)")
    entered = sorted((r["finished_at"], r["id"]) for r in rows if r["finished_at"] is not None)
    position = {tid: i for i, (_, tid) in enumerate(entered)}
    proposals = sorted(r["proposed_at"] for r in rows)
    children = Counter(r["parent"] for r in rows if r["parent"] is not None)
    members = []
    for r in rows:
        if (r["status"] != "done" or r["duplicate_of"] is not None or not r["fitness"]
                or r["id"] <= size):
            continue
        i = position[r["id"]]
        if i + size >= len(entered):
            continue  # still a member when the run ended
        start, end = entered[i][0], entered[i + size][0]
        seen = bisect.bisect_left(proposals, end) - bisect.bisect_right(proposals, start)
        members.append({"trial": r["id"], "fitness": r["fitness"], "proposals": seen,
                        "children": children.get(r["id"], 0)})
    if not members:
        raise SystemExit(f"{path}: no trained member left the population")
    best = max(members, key=lambda m: m["fitness"])
    seen = [m["proposals"] for m in members]
    return {"store": path, "population_size": size, "tournament_size": tournament,
            "members": len(members),
            "proposals_median": statistics.median(seen),
            "proposals_quartiles": statistics.quantiles(seen, n=4) if len(seen) > 1 else seen,
            "best": best,
            "best_expected_children": best["proposals"] * tournament / size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="+", help="run stores (run.db)")
    parser.add_argument("-o", "--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    try:
        report = [exposure(s) for s in args.stores]
    except StoreError as err:
        raise SystemExit(f"exposure: {err}") from None
    for r in report:
        b = r["best"]
        q = ", ".join(f"{x:g}" for x in r["proposals_quartiles"])
        print(f"{r['store']}: P {r['population_size']}, T {r['tournament_size']}; "
              f"{r['members']} members that passed the hurdle saw a median of "
              f"{r['proposals_median']:g} proposals (quartiles {q}; steady state: "
              f"{r['population_size']}); the best, trial {b['trial']} ({b['fitness']:.3f}), "
              f"saw {b['proposals']} and had {b['children']} "
              f"{'child' if b['children'] == 1 else 'children'} "
              f"({r['best_expected_children']:.1f} expected)")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
