"""Compare the arms of an ablation: runs of one search that differ in one setting and
ran for the same wall-clock time on the same dedicated core (equal compute).

    python bench/ablation_report.py -o results/ablation-fec \\
        off=results/ablation-fec/off/run.db output=results/ablation-fec/output/run.db \\
        training=results/ablation-fec/training/run.db

Per arm: trials, evaluations (trainings), duplicates, hurdle cuts, the compute spent
(sum of the evaluations' shares of their batches' wall time) and the part of it spent
on candidates that failed the hurdle (and, for every arm, on candidates that scored
below 0.6 on CartPole, the fixed hurdle's rule), the best fitness, and when (minutes after the
start) the best-so-far first reached given levels. Writes ``ablation.md``,
``ablation.json`` and ``ablation.png`` (best fitness so far against minutes) into ``-o``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evo.search.store import RunStore
from graphs.core.equivalence import FEC
from graphs.core.fileformat import loads
from graphs.rl_loss.library import builtin

LEVELS = (0.5, 1.0, 1.2, 1.4)
# A candidate "failed" if it scored below this on this environment (the fixed hurdle's
# rule), whatever the arm did with it: the compute spent on such candidates is
# comparable across hurdle settings.
BELOW = ("CartPole", 0.6)


def arm(path: str) -> dict:
    store = RunStore.open(path, readonly=True)
    try:
        db = store.db
        t0 = db.execute("SELECT MIN(proposed_at) FROM trials").fetchone()[0]
        rows = db.execute(
            "SELECT id, status, fitness, result, seconds, finished_at, program FROM trials "
            "WHERE fitness IS NOT NULL ORDER BY finished_at, id").fetchall()
        hours = store.config.get("run", {})
    finally:
        store.close()
    td = FEC("training")(builtin("dqn"))
    fec = FEC("training")
    best, curve, reached = float("-inf"), [], {}
    counts = {"trials": 0, "evaluated": 0, "duplicates": 0, "hurdle_cut": 0, "failed": 0}
    compute = cut_compute = below_compute = 0.0
    below = 0
    first_td = None
    for r in rows:
        counts["trials"] += 1
        minutes = (r["finished_at"] - t0) / 60
        if r["status"] == "duplicate":
            counts["duplicates"] += 1
        else:
            counts["evaluated"] += 1
            compute += r["seconds"] or 0.0
            result = json.loads(r["result"]) if r["result"] else {}
            status = result.get("status")
            score = (result.get("scores") or {}).get(BELOW[0])
            if r["status"] == "failed" or score is None or score < BELOW[1]:
                below += 1
                below_compute += r["seconds"] or 0.0
            if r["status"] == "failed":
                counts["failed"] += 1
            elif status == "hurdle":
                counts["hurdle_cut"] += 1
                cut_compute += r["seconds"] or 0.0
            if first_td is None and r["status"] == "done" and fec(loads(r["program"])) == td:
                first_td = round(minutes, 2)
        if r["fitness"] > best:
            best = r["fitness"]
            curve.append((round(minutes, 3), best))
            for level in LEVELS:
                if best >= level and level not in reached:
                    reached[level] = round(minutes, 1)
    span = (rows[-1]["finished_at"] - t0) / 60 if rows else 0.0
    return {"store": path, "name": hours.get("name"), "minutes": round(span, 1), **counts,
            "duplicate_rate": counts["duplicates"] / max(1, counts["trials"]),
            "hurdle_rate": counts["hurdle_cut"] / max(1, counts["evaluated"]),
            "compute_s": round(compute, 1), "compute_on_cut_s": round(cut_compute, 1),
            "below": below, "compute_below_s": round(below_compute, 1),
            "best": best, "minutes_to": {str(k): v for k, v in reached.items()},
            "minutes_to_td": first_td, "curve": curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arms", nargs="+", metavar="NAME=STORE")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    arms = {}
    for spec in args.arms:
        name, _, path = spec.partition("=")
        arms[name] = arm(path)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    head = ("| arm | minutes | trials | trained | duplicates | hurdle cut | compute (s) | "
            "compute on cut (s) | below 0.6 on CartPole: trained, compute (s) | best | "
            "minutes to " + " / ".join(map(str, LEVELS))
            + " | TD-equivalent |")
    lines = [head, "|---" * 12 + "|"]
    for name, a in arms.items():
        to = " / ".join(str(a["minutes_to"].get(str(k), "-")) for k in LEVELS)
        lines.append(
            f"| {name} | {a['minutes']} | {a['trials']} | {a['evaluated']} | "
            f"{a['duplicates']} ({a['duplicate_rate']:.0%}) | {a['hurdle_cut']} "
            f"({a['hurdle_rate']:.0%}) | {a['compute_s']:.0f} | {a['compute_on_cut_s']:.0f} | "
            f"{a['below']}, {a['compute_below_s']:.0f} | "
            f"{a['best']:.3f} | {to} | {a['minutes_to_td'] or 'never'} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    (out / "ablation.json").write_text(json.dumps(arms, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, a in arms.items():
        if a["curve"]:
            xs = [m for m, _ in a["curve"]] + [a["minutes"]]
            ys = [f for _, f in a["curve"]] + [a["curve"][-1][1]]
            ax.step(xs, ys, where="post", label=f"{name} (best {a['best']:.2f})")
    ax.set(xlabel="minutes on one core", ylabel="best fitness so far",
           title=f"{out.name}: best fitness against compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ablation.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
