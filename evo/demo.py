"""The embedded default job, until the search engine lands: explore the RL-loss
program space the way the search will, without training.

It writes the built-in programs (JSON and DOT), seeds the paper's initial
population (DQN + 14 random nodes), streams mutated children of random population
members through the functional-equivalence checker in both modes, and reports
how many proposals the checker would have saved and how fast each step runs.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from pathlib import Path

from graphs.equivalence import FEC, MODES
from graphs.fileformat import dumps, to_dict
from graphs.generate import seeded_program
from graphs.library import BUILTINS, builtin
from graphs.mutation import Mutator
from graphs.render import formula, to_dot

POPULATION = 300  # the paper's population size


def run_demo(out: Path, evaluations: int = 20_000, seed: int = 0, quiet: bool = False) -> dict:
    """Run the demo, write its files under ``out`` and return the summary."""
    say = (lambda *a: None) if quiet else print
    out.mkdir(parents=True, exist_ok=True)
    (out / "builtins").mkdir(exist_ok=True)
    fecs = {mode: FEC(mode) for mode in MODES}
    say(f"evo demo: built-in programs -> {out / 'builtins'}")
    for name in BUILTINS:
        program = builtin(name)
        (out / "builtins" / f"{name}.json").write_text(dumps(program), encoding="utf-8")
        (out / "builtins" / f"{name}.dot").write_text(to_dot(program), encoding="utf-8")
        say(f"  {name:<11} {formula(program)}")

    rng = random.Random(seed)
    t0 = time.perf_counter()
    population = deque(seeded_program("dqn", 14, rng) for _ in range(POPULATION))
    t_seed = time.perf_counter() - t0
    say(f"seeded {POPULATION} programs (DQN + 14 random nodes) in {t_seed:.2f} s")

    # A brand-new program (probability 0.05) is a fresh draw from the initial distribution.
    mutator = Mutator(p=0.95, fresh=lambda r: seeded_program("dqn", 14, r))
    seen: dict[str, set[str]] = {mode: set() for mode in MODES}
    dups = {mode: 0 for mode in MODES}
    first_seen: dict[str, dict] = {}
    t_mut = t_fp = 0.0
    for program in population:
        for mode in MODES:
            seen[mode].add(fecs[mode](program))
    for step in range(evaluations):
        parent = population[rng.randrange(len(population))]
        t0 = time.perf_counter()
        child, what = mutator.mutate(parent, rng)
        t1 = time.perf_counter()
        fps = {mode: fecs[mode](child) for mode in MODES}
        t_fp += time.perf_counter() - t1
        t_mut += t1 - t0
        for mode, fp in fps.items():
            if fp in seen[mode]:
                dups[mode] += 1
            else:
                seen[mode].add(fp)
        if fps["training"] not in first_seen and len(first_seen) < 200:
            first_seen[fps["training"]] = {
                "step": step, "fingerprint": fps["training"], "mutation": str(what),
                "formula": formula(child), "program": to_dict(child),
            }
        population.append(child)  # aging: the oldest member leaves
        population.popleft()
        if not quiet and (step + 1) % 5000 == 0:
            say(f"  {step + 1:>6} children: duplicates training {dups['training']}, "
                f"output {dups['output']}")

    summary = {
        "population": POPULATION,
        "children": evaluations,
        "duplicate_rate": {m: dups[m] / evaluations for m in MODES},
        "distinct_fingerprints": {m: len(seen[m]) for m in MODES},
        "mutations_per_second": evaluations / t_mut,
        "fingerprints_per_second_both_modes": evaluations / t_fp,
        "seed": seed,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with open(out / "programs.jsonl", "w", encoding="utf-8") as f:
        for row in first_seen.values():
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    rate = summary["duplicate_rate"]
    say(f"duplicate proposals the FEC skips: training mode {rate['training']:.1%}, "
        f"output mode {rate['output']:.1%}")
    say(f"speed: {summary['mutations_per_second']:.0f} mutations/s, "
        f"{summary['fingerprints_per_second_both_modes']:.0f} children/s fingerprinted "
        "(both modes)")
    say(f"wrote {out / 'summary.json'} and {out / 'programs.jsonl'}")
    return summary
