"""Re-evaluate a discovery run's best programs next to DQN, DDQN and DQNReg under the
run's own evaluator, on several seeds, and check which are TD-equivalent.

    python bench/discovery_baselines.py results/from-scratch-graded/run.db --seeds 3

Writes ``baselines.json`` next to the store: per program its formula, training-mode
fingerprint, whether that equals DQN's (TD-equivalent), and its fitness per seed
(each seed is one batched evaluation of all programs, population trainer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from evo.app.runner import make_evaluator, stored_config
from evo.search.store import RunStore
from graphs.core.equivalence import FEC
from graphs.core.fileformat import loads
from graphs.core.render import formula
from graphs.rl_loss.library import builtin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--top", type=int, default=3)
    args = ap.parse_args()
    store = RunStore.open(args.store, readonly=True)
    config = stored_config(store)
    rows = store.db.execute(
        "SELECT id, program, fitness, fingerprint FROM trials WHERE status='done' "
        "ORDER BY fitness DESC, id").fetchall()
    store.close()
    fec = FEC("training")
    td = fec(builtin("dqn"))
    seen, best = set(), []
    for row in rows:
        if row["fingerprint"] in seen:
            continue
        seen.add(row["fingerprint"])
        best.append((f"trial {row['id']}", loads(row["program"]), row["fitness"]))
        if len(best) == args.top:
            break
    programs = best + [(name, builtin(name), None) for name in ("dqn", "ddqn", "dqnreg")]
    evaluator = make_evaluator(config)
    per_seed = []
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        per_seed.append(evaluator.evaluate_batch([p for _, p, _ in programs], seed=seed))
    out = {"store": args.store, "seeds": args.seeds, "seconds": time.perf_counter() - t0,
           "trainer": evaluator.backend, "programs": []}
    for i, (name, program, run_fitness) in enumerate(programs):
        fits = [per_seed[s][i].fitness for s in range(args.seeds)]
        out["programs"].append({
            "name": name, "formula": formula(program), "run_fitness": run_fitness,
            "td_equivalent": fec(program) == td, "fitness_per_seed": fits,
            "median_fitness": statistics.median(fits),
            "scores_per_seed": [per_seed[s][i].scores for s in range(args.seeds)],
            "status_per_seed": [per_seed[s][i].status for s in range(args.seeds)]})
        print(f"{name:>12}  median {statistics.median(fits):.3f}  {fits}  TD-equiv "
              f"{fec(program) == td}  {formula(program)}", flush=True)
    path = Path(args.store).parent / "baselines.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
