"""Generalization of discovered losses to environments the search never saw.

Takes the best unique programs of one or more run stores (``--run NAME=STORE:K`` takes
the top K of that store), adds DQN, DDQN and DQNReg, and trains every program with
``--seeds`` seeds on each ``--env`` with :func:`evo.rl.compare.compare` (the population
trainer, one batched call per environment, the runs' 64-64 agent). A long run can be split
by program (``--reference``, ``--program``) or by seed (``--first-seed``) and the parts
joined with ``--merge``. Writes into
``-o DIR``: one learning-curve PNG per environment, ``scores.md`` / ``scores.json``
(normalized score of the last 50 episodes, mean over seeds with a 95% bootstrap
interval), ``returns.json`` and ``programs/`` (each program as a file, for `evo eval`).

    python bench/generalization.py --run fs=results/from-scratch-graded/run.db:3 \\
        --env MountainCar --steps 50000 --seeds 10 -o results/generalization/classic
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from evo.app.config import load_config
from evo.app.export import unique_programs
from evo.errors import ConfigError
from evo.rl.compare import compare, join, write_report
from evo.rl.settings import MAX_SEEDS
from evo.search.store import RunStore
from graphs.core.fileformat import dumps, from_dict
from graphs.core.render import formula
from graphs.rl_loss.library import builtin

REFERENCES = ("dqn", "ddqn", "dqnreg")


def _runs(specs: list[str]) -> dict[str, object]:
    programs: dict[str, object] = {}
    for spec in specs:
        name, _, rest = spec.partition("=")
        path, _, k = rest.rpartition(":")
        if not name or not path or not k.isdigit():
            raise SystemExit(f"--run {spec!r}: write NAME=STORE:K, e.g. fs=results/x/run.db:3")
        store = RunStore.open(path, readonly=True)
        try:
            rows = unique_programs(store, int(k))
        finally:
            store.close()
        for row in rows:
            programs[f"{name}-{row['rank']} (trial {row['trial_id']})"] = from_dict(
                row["program"])
    return programs


def _agent_file(command: str) -> str | None:
    found = re.search(r"--agent-from (\S+)", command)
    return found.group(1) if found else None


def merge(parts: list[Path], out: Path) -> dict:
    """One report from runs of one plan split by program (``--reference``, ``--program``)
    or by seed (``--first-seed``): each part's scores, curves and program files into
    ``out``. The parts must have trained the same environments with the same budgets
    and agent; a program in several parts must be the same program in each, and gets
    the seeds of all of them (agents are independent of their batch, so the merged
    table is what one run of all programs and seeds would give)."""
    loaded = []
    for part in parts:
        try:
            loaded.append((part, json.loads((part / "scores.json").read_text()),
                           json.loads((part / "returns.json").read_text())))
        except (OSError, ValueError) as err:
            raise SystemExit(f"--merge {part}: no finished run there ({err}); each part "
                             "must be an -o directory this script completed") from None
        missing = {"seeds", "envs", "programs", "command"} - set(loaded[-1][1])
        if missing:
            raise SystemExit(f"--merge {part}: its scores.json lacks {sorted(missing)}: not "
                             "a run of this script (a merged report does not merge again)")
    first = loaded[0][1]
    for part, scores, _ in loaded[1:]:
        if _agent_file(scores["command"]) != _agent_file(first["command"]):
            raise SystemExit(f"--merge {part}: trained another agent than {loaded[0][0]}; "
                             "only parts of one plan merge")
    try:
        merged, raw = join([(scores, returns) for _, scores, returns in loaded],
                           [f"--merge {part}" for part, _, _ in loaded])
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    merged.update(programs={}, merged_from={}, wall_seconds=0.0)
    (out / "programs").mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    for part, scores, _ in loaded:
        for name, entry in scores["programs"].items():
            text = (part / entry["file"]).read_text()
            if name in texts:
                if json.loads(text) != json.loads(texts[name]):
                    raise SystemExit(f"--merge {part}: program {name!r} differs from the one "
                                     "of that name in an earlier part; name each program once")
                continue
            texts[name] = text
            path = out / "programs" / f"{len(merged['programs']):02d}.json"
            path.write_text(text)
            merged["programs"][name] = {**entry, "file": f"programs/{path.name}"}
        merged["merged_from"][str(part)] = scores["command"]
        merged["wall_seconds"] += scores["wall_seconds"]
    write_report(merged, raw, out)
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", default=[], metavar="NAME=STORE:K")
    ap.add_argument("--program", action="append", default=[], metavar="NAME=FILE",
                    help="another program file to include")
    ap.add_argument("--env", action="append")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, metavar="S",
                    help="train seeds S..S+seeds-1 (default 0): more seeds for an earlier "
                         "run, joined to it with --merge")
    ap.add_argument("--agent-from", default="results/from-scratch-graded/config.toml",
                    help="take [evaluator.agent] from this run config (default: the runs' "
                         "64-64 agent)")
    ap.add_argument("--no-references", action="store_true",
                    help="leave out DQN, DDQN and DQNReg, to compare with their scores from an "
                         "earlier run with the same seeds and agent (an agent trains the "
                         "same in any batch since the trainer compiles without FMA; runs "
                         "made before 2026-12-06 compiled with it, docs/population.md)")
    ap.add_argument("--reference", action="append", choices=REFERENCES, metavar="NAME",
                    help="include only these references (repeat; default: all of "
                         f"{', '.join(REFERENCES)}); agents are independent, so a long run "
                         "can be split by program and each part keeps its own results")
    ap.add_argument("--merge", action="append", default=[], metavar="DIR",
                    help="train nothing: merge finished runs of the same plan, split by "
                         "program, into one report in -o (repeat for each part)")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    if args.merge:
        merged = merge([Path(p) for p in args.merge], Path(args.out))
        print((Path(args.out) / "scores.md").read_text())
        print(f"{merged['wall_seconds']:.1f} s in {len(args.merge)} parts")
        return
    if args.no_references and args.reference:
        ap.error("--no-references and --reference contradict each other: give one")
    if not args.env or not args.steps:
        ap.error("give --env and --steps (or --merge to combine finished runs)")
    if not 1 <= args.seeds <= MAX_SEEDS or args.first_seed < 0:
        ap.error(f"--seeds {args.seeds} --first-seed {args.first_seed}: give 1 to {MAX_SEEDS} "
                 "seeds and a first seed >= 0")
    programs = _runs(args.run)
    for spec in args.program:
        name, _, path = spec.partition("=")
        from graphs.core.fileformat import load

        programs[name] = load(path)
    for name in () if args.no_references else (args.reference or REFERENCES):
        programs[name] = builtin(name)
    if not programs:
        raise SystemExit("no programs: give --run or --program (or drop --no-references)")
    out = Path(args.out)
    (out / "programs").mkdir(parents=True, exist_ok=True)
    listing = {}
    for i, (name, program) in enumerate(programs.items()):
        path = out / "programs" / f"{i:02d}.json"
        path.write_text(dumps(program) + "\n")
        listing[name] = {"file": f"programs/{path.name}", "formula": formula(program)}
    agent = load_config(Path(args.agent_from)).evaluator.agent
    t0 = time.time()
    scores = compare(programs, args.env,
                     list(range(args.first_seed, args.first_seed + args.seeds)), out, agent,
                     args.steps, trainer="population")
    scores["wall_seconds"] = round(time.time() - t0, 1)
    scores["programs"] = listing
    scores["command"] = "python bench/generalization.py " + " ".join(
        [f"--run {r}" for r in args.run] + [f"--program {p}" for p in args.program]
        + [f"--env {e}" for e in args.env]
        + [f"--steps {args.steps}", f"--seeds {args.seeds}"]
        + ([f"--first-seed {args.first_seed}"] if args.first_seed else [])
        + [f"--agent-from {args.agent_from}"]
        + (["--no-references"] if args.no_references else [])
        + [f"--reference {r}" for r in args.reference or ()] + [f"-o {args.out}"])
    (out / "scores.json").write_text(json.dumps(scores, indent=2, ensure_ascii=False) + "\n")
    print((out / "scores.md").read_text())
    print(f"{scores['wall_seconds']} s")


if __name__ == "__main__":
    main()
