"""The ``evo`` command line.

``evo program show|check|hash|dot|random|mutate`` work with single programs;
``evo eval`` trains agents with one; ``evo run|resume|status|export|plot`` run a
search from a TOML config (or a preset) and read its store. Errors in user input
are reported as one line (``evo: error: ...``) with exit status 2, never as a
traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envs import EnvError
from evo.app.arch_cli import add_arch_parser
from evo.app.program_cli import UsageError, add_program_parser, resolve_program
from evo.errors import EvoError, did_you_mean
from graphs.core.errors import ProgramError
from graphs.core.program import Program
from graphs.core.render import formula


def _join_compared(args: argparse.Namespace) -> int:
    from evo.rl.compare import join, markdown, write_report

    if args.programs or args.env:
        raise UsageError("--join merges finished comparisons: give no programs or --env "
                         "with it, only --join DIR (repeat) and -o")
    parts = []
    for part in args.join:
        try:
            parts.append(tuple(json.loads((Path(part) / f).read_text())
                               for f in ("scores.json", "returns.json")))
        except (OSError, ValueError) as err:
            raise UsageError(f"--join {part}: not a finished `evo compare -o` directory "
                             f"({err})") from None
        if not {"envs", "trainer"} <= set(parts[-1][0]):
            raise UsageError(f"--join {part}: its scores.json is not one `evo compare` wrote")
    scores, raw = join(parts, [f"--join {p}" for p in args.join])
    write_report(scores, raw, args.out)
    print(markdown(scores), end="")
    print(f"wrote {args.out}: the {len(parts)} comparisons joined", file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from evo.rl.compare import compare

    if args.join:
        return _join_compared(args)
    if not args.programs or not args.env:
        raise UsageError("give the programs to compare and at least one --env (or --join "
                         "DIR to merge finished comparisons)")
    programs: dict[str, Program] = {}
    for ref in args.programs:
        name = Path(ref).stem if Path(ref).suffix == ".json" else ref
        while name in programs:
            name += "'"
        programs[name] = resolve_program(ref)
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps {args.steps}: must be a positive integer")
    from evo.app.config import MAX_SEEDS

    if not 1 <= args.seeds <= MAX_SEEDS or args.first_seed < 0:
        raise UsageError(f"--seeds {args.seeds} --first-seed {args.first_seed}: give 1 to "
                         f"{MAX_SEEDS} seeds and a first seed >= 0")
    agent, budgets = None, None
    if args.config:
        import envs as envlib
        from evo.app.config import load_config

        config = load_config(Path(args.config))
        if config.is_architecture:
            raise UsageError(f"{args.config}: is an architecture run config; compare trains "
                             "RL loss programs")
        agent = config.evaluator.agent
        budgets = {env: envlib.Budget(episodes=b.episodes, steps=b.steps)
                   for env, b in config.evaluator.budgets}
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    scores = compare(programs, args.env, seeds, args.out, agent, args.steps, budgets,
                     args.trainer)
    from evo.rl.compare import markdown

    print(markdown(scores), end="")
    print(f"wrote {args.out}: scores.md, scores.json, returns.json, one PNG per environment",
          file=sys.stderr)
    return 0


def _parse_hurdle(text: str | None):
    import envs

    if text is None or text.lower() == "none":
        return None
    env, _, threshold = text.partition(":")
    try:
        value = float(threshold) if threshold else envs.DEFAULT_HURDLE.threshold
    except ValueError:
        raise UsageError(f"--hurdle {text!r}: the threshold after ':' must be a number, "
                         "e.g. --hurdle CartPole:0.6") from None
    return envs.Hurdle(env, value)


def _check_eval_flags(args: argparse.Namespace) -> None:
    """Bounds on `evo eval`'s sizes, the same as a run config's (evo.app.config)."""
    from evo.app.config import MAX_SEEDS, MAX_STEPS, MAX_TIME_LIMIT

    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        raise UsageError(f"--steps {args.steps}: must be an integer in [1, {MAX_STEPS:,}]")
    if not 1 <= args.seeds <= MAX_SEEDS:
        raise UsageError(f"--seeds {args.seeds}: must be an integer in [1, {MAX_SEEDS}]")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be zero or more")
    if args.time_limit is not None and not 0 < args.time_limit <= MAX_TIME_LIMIT:
        raise UsageError(f"--time-limit {args.time_limit:g}: must be a number of seconds in "
                         f"(0, {MAX_TIME_LIMIT:g}]")


def _eval_evaluator(args: argparse.Namespace):
    from evo.app.config import DEFAULT_TIME_LIMIT
    from evo.rl.evaluator import RLEvaluator

    _check_eval_flags(args)
    if args.config is None and args.preset is None:
        if not args.env:
            raise UsageError("give --env ENV (repeatable), or --config CONFIG.toml / --preset "
                             "NAME to use a run's evaluator settings")
        return RLEvaluator(
            args.env, _parse_hurdle(args.hurdle),
            tuple(range(args.seed, args.seed + args.seeds)),
            steps=args.steps,
            time_limit=DEFAULT_TIME_LIMIT if args.time_limit is None else args.time_limit,
        )
    from evo.app.runner import make_evaluator

    if args.config is not None and args.preset is not None:
        raise UsageError("give --config or --preset, not both")
    config = _load_run_config(args.config, args.preset)
    changes = {}
    if args.env:
        changes["evaluator.envs"] = args.env
    if args.hurdle is not None:
        hurdle = _parse_hurdle(args.hurdle)
        changes["evaluator.hurdle"] = (False if hurdle is None else
                                       {"env": hurdle.env, "threshold": hurdle.threshold})
    if args.steps is not None:
        changes["evaluator.steps"] = args.steps
        changes["evaluator.budget_scale"] = 1.0
    if args.seed != 0 or args.seeds != 1:
        changes["evaluator.seeds"] = list(range(args.seed, args.seed + args.seeds))
    if args.time_limit is not None:
        changes["evaluator.time_limit"] = args.time_limit
    return make_evaluator(config.replace(**changes) if changes else config)


def _eval_threads(args: argparse.Namespace) -> int:
    """BLAS/OpenMP threads for `evo eval`: --threads, else the config's
    ``[workers] threads_per_worker``, else 1."""
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads {args.threads}: must be a positive integer")
        return args.threads
    if args.config is not None or args.preset is not None:
        return _load_run_config(args.config, args.preset).workers.threads_per_worker
    return 1


def _cmd_eval(args: argparse.Namespace) -> int:
    from evo.workers.base import limit_threads

    limit_threads(_eval_threads(args))  # as a search's worker would run it
    program = resolve_program(args.program)
    program.check()
    evaluator = _eval_evaluator(args)
    result = evaluator.evaluate(program)
    out = {
        "program": args.program,
        "formula": formula(program),
        "fitness": rounded(result.fitness),
        "scores": rounded(result.scores),
        "status": result.status,
        "reason": result.reason,
        "hurdle": rounded(result.hurdle),
        "seconds": round(result.seconds, 3),
        "steps": result.steps,
        "envs": [
            {"env": r.env, "score": rounded(r.score), "mean_return": rounded(r.mean_return),
             "seed_scores": rounded(r.seed_scores), "episodes": r.episodes, "steps": r.steps}
            for r in result.envs
        ],
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def rounded(value: Any, digits: int = 10) -> Any:
    """``value`` with every float rounded to ``digits`` significant digits: no float
    noise such as 0.8112999999999999 (printed 0.8113), while keeping the precision
    that comparing with a run's recorded fitness needs; other values unchanged."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def _cmd_envs(args: argparse.Namespace) -> int:
    import envs

    for spec in envs.list_envs():
        print(f"{spec.id:<32} {spec.gym_id:<34} [{spec.r_min:g}, {spec.r_max:g}]  "
              f"{spec.budget}{'  (hurdle)' if spec.hurdle else ''}")
    return 0


# -- searches --------------------------------------------------------------------------------
def _load_run_config(path: str | None, preset: str | None):
    from evo.app.config import load_config
    from evo.app.config import preset as load_preset

    if (path is None) == (preset is None):
        raise UsageError("give a config file (evo run CONFIG.toml) or a preset "
                         "(evo run --preset quick), not both" if path else
                         "give a config file (evo run CONFIG.toml) or a preset "
                         "(evo run --preset quick)")
    return load_preset(preset) if preset is not None else load_config(Path(path))


def _default_store(name: str) -> Path:
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{name}-{stamp}.db"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{name}-{stamp}-{n}.db"
    return path


def _check_backend_flags(args: argparse.Namespace) -> None:
    if args.baseline is not None:
        from graphs.rl_loss.library import BUILTINS

        if args.baseline not in BUILTINS:
            raise UsageError(f"--baseline {args.baseline!r}: not a built-in loss; choose one "
                             f"of {', '.join(BUILTINS)}" + did_you_mean(args.baseline, BUILTINS))
    if args.address is not None and args.backend == "local":
        raise UsageError("--address is the Ray cluster to use; it needs --backend ray")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: must be a positive integer")
    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials {args.trials}: must be a positive integer")
    if args.hours is not None and not 0 < args.hours < 1e6:
        raise UsageError(f"--hours {args.hours:g}: must be a positive number of hours, "
                         "e.g. --hours 0.5")


def _after_run(store: Path, progress, out: str | None, top: int,
               baseline: str | None = None) -> None:
    from evo.app.runner import baseline_report, planned_trials, summary_line

    planned = planned_trials(store)
    if planned > progress.trials:  # --hours ran out (the loop's target shrank to what it ran)
        stopped = dataclasses.replace(progress, target=planned)
        print(f"stopped at {summary_line(stopped)}; continue with: evo resume {store}")
    else:
        print(f"finished {summary_line(progress)}")
    print(f"store: {store}")
    if baseline:
        print(f"training the baseline ({baseline}) with the run's own evaluator ...",
              file=sys.stderr)
        report = baseline_report(store, baseline)
        print()
        print(report)
        print()
        if out:
            summary = Path(out) / "summary.md"
            summary.parent.mkdir(parents=True, exist_ok=True)
            summary.write_text(f"# {store.stem}: the best program next to {baseline}\n\n"
                               f"```\n{report}\n```\n", encoding="utf-8")
            print(f"summary: {summary}")
    if out:
        from evo.app.export import export
        from evo.app.plots import plot

        paths = export(store, Path(out) / "dataset", top=top)
        print(f"dataset: {paths['jsonl'].parent} (top {top} unique programs)")
        pngs = plot(store, Path(out) / "plots")
        print(f"plots: {', '.join(str(p) for p in pngs)}")
    else:
        print(f"next: evo status {store} | evo export {store} --top {top} -o DIR | "
              f"evo plot {store}")


def _interrupted(store: Path) -> int:
    print(f"\nevo: interrupted; the store is consistent. Continue with: evo resume {store}",
          file=sys.stderr)
    return 130


def _cmd_run(args: argparse.Namespace) -> int:
    from evo.app import runner

    _check_backend_flags(args)
    config = _load_run_config(args.config, args.preset)
    config = runner.with_overrides(config, args.backend, args.address, args.workers, args.trials)
    if args.print_config:
        sys.stdout.write(config.to_toml())
        return 0
    runner.build(config)  # validate everything (environments, backend) before starting
    store = Path(args.store) if args.store else _default_store(config.run.name)
    if store.exists():
        raise UsageError(f"{store} already exists; use `evo resume {store}` to continue that "
                         "run, or choose another --store")
    print(f"evo: run {config.run.name!r}: {config.run.trials} trials, "
          f"{config.workers.backend} workers; store {store}", file=sys.stderr)
    try:
        progress = runner.run(config, store, progress=None if not args.quiet else False,
                              hours=args.hours)
    except KeyboardInterrupt:
        return _interrupted(store)
    _after_run(store, progress, args.out, args.top, args.baseline)
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from evo.app import runner

    _check_backend_flags(args)
    store = Path(args.store)
    try:
        progress = runner.resume(store, backend=args.backend, address=args.address,
                                 workers=args.workers, trials=args.trials,
                                 progress=None if not args.quiet else False,
                                 hours=args.hours)
    except KeyboardInterrupt:
        return _interrupted(store)
    _after_run(store, progress, args.out, args.top, args.baseline)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from evo.app.runner import status

    if args.top < 0:
        raise UsageError(f"--top {args.top}: must be zero or more")
    print(status(args.store, top=args.top))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from evo.app.export import export

    out = Path(args.output) if args.output else Path(args.store).with_name(
        Path(args.store).stem + "-dataset")
    paths = export(args.store, out, top=args.top)
    with open(paths["jsonl"], encoding="utf-8") as f:
        rows = sum(1 for _ in f)
    print(f"wrote {rows} programs to {out}: " + ", ".join(p.name for p in paths.values()))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from evo.app.plots import plot

    for path in plot(args.store, args.output):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from evo.app.config import PRESETS

    parser = argparse.ArgumentParser(
        prog="evo", description="Evolutionary search over programs written as typed graphs.",
        epilog="presets (evo run --preset NAME):\n" + "\n".join(f"  {p}" for p in PRESETS),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_program_parser(sub)

    ev = sub.add_parser("eval", help="train agents with a loss program and print its scores")
    ev.add_argument("program", help="built-in name (dqn, ddqn, ...) or program file")
    ev.add_argument("--env", action="append", metavar="ENV",
                    help="environment id (repeatable); see `evo envs`")
    ev.add_argument("--config", metavar="CONFIG.toml",
                    help="use a run config's evaluator settings (envs, budgets, agent, "
                         "hurdle, seeds); other flags override them")
    ev.add_argument("--preset", metavar="NAME", help="use a preset's evaluator settings")
    ev.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    ev.add_argument("--seeds", type=int, default=1, help="agents per environment (default 1)")
    ev.add_argument("--steps", type=int, default=None,
                    help="train this many steps per environment instead of its budget")
    ev.add_argument("--hurdle", default=None, metavar="ENV[:THRESHOLD]",
                    help="train on ENV first and stop if its score is below THRESHOLD (0.6 "
                         "if omitted); 'none' for no hurdle. Without the flag: no hurdle, "
                         "or the config's with --config/--preset")
    ev.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help="wall-clock limit for the whole evaluation; past it the result "
                         "has status 'timeout' and fitness 0 (default: 3600, or the "
                         "config's with --config/--preset)")
    ev.add_argument("--threads", type=int, default=None, metavar="N",
                    help="BLAS/OpenMP threads (default: the config's "
                         "workers.threads_per_worker, or 1)")
    ev.set_defaults(func=_cmd_eval)

    cmp = sub.add_parser("compare", help="train several programs on several environments "
                         "and seeds, batched; write curves, a score table and raw returns")
    cmp.add_argument("programs", nargs="*", metavar="PROGRAM",
                     help="built-in names (dqn, ddqn, ...) or program files")
    cmp.add_argument("--env", action="append", metavar="ENV",
                     help="environment id (repeatable, at least one); see `evo envs`")
    cmp.add_argument("--seeds", type=int, default=5, help="seeds per program (default 5)")
    cmp.add_argument("--first-seed", type=int, default=0, metavar="S",
                     help="train seeds S..S+seeds-1 (default 0), e.g. to add seeds to an "
                          "earlier comparison (--join merges the two)")
    cmp.add_argument("--join", action="append", default=[], metavar="DIR",
                     help="train nothing: merge finished comparisons of the same "
                          "environments and budgets, split by program or by seed, into -o "
                          "(repeat for each)")
    cmp.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    cmp.add_argument("--steps", type=int, default=None,
                     help="train this many steps per environment instead of its budget")
    cmp.add_argument("--config", metavar="CONFIG.toml",
                     help="take the agent and budgets from a run config")
    cmp.add_argument("--trainer", choices=("auto", "population", "numpy"), default="auto",
                     help="population (JAX, batched), numpy, or auto (default)")
    cmp.set_defaults(func=_cmd_compare)

    def backend_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=("local", "ray"), default=None,
                       help="where evaluations run (default: the config's, local)")
        p.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                       help="Ray cluster address (with --backend ray; default auto)")
        p.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local worker processes (default: the config's, or every core)")
        p.add_argument("--out", default=None, metavar="DIR",
                       help="when the run finishes, export the dataset to DIR/dataset and "
                            "plots to DIR/plots")
        p.add_argument("--top", type=int, default=100, metavar="K",
                       help="programs to export with --out (default 100)")
        p.add_argument("--baseline", default=None, metavar="NAME",
                       help="when the run finishes, train this built-in loss (e.g. dqn) "
                            "with the run's own evaluator and print the best program next "
                            "to it, with the best's family line (loss runs)")
        p.add_argument("--hours", type=float, default=None, metavar="H",
                       help="stop proposing after H hours of this session, finish what is "
                            "in flight and stop; `evo resume` continues (equal --hours on a "
                            "dedicated core = equal compute, e.g. for ablations)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    run = sub.add_parser("run", help="run a search from a TOML config or a preset",
                         description="Validate a run config, then search. The store defaults "
                                     "to runs/<name>-<timestamp>.db.")
    run.add_argument("config", nargs="?", default=None, help="run config (TOML)")
    run.add_argument("--preset", default=None, metavar="NAME",
                     help=f"a built-in config: {', '.join(PRESETS)}")
    run.add_argument("--store", default=None, metavar="PATH",
                     help="the run store to create (default runs/<name>-<timestamp>.db)")
    run.add_argument("--trials", type=int, default=None, metavar="N",
                     help="candidates to finish (overrides run.trials)")
    run.add_argument("--print-config", action="store_true",
                     help="validate, print the complete config as TOML (a starting point "
                          "for your own) and exit")
    backend_flags(run)
    run.set_defaults(func=_cmd_run)

    res = sub.add_parser("resume", help="continue a run from its store")
    res.add_argument("store", help="the run store (.db)")
    res.add_argument("--trials", type=int, default=None, metavar="N",
                     help="new target of finished candidates (extends the run)")
    backend_flags(res)
    res.set_defaults(func=_cmd_resume)

    st = sub.add_parser("status", help="progress, rates and a leaderboard of a run")
    st.add_argument("store")
    st.add_argument("--top", type=int, default=10, metavar="K",
                    help="leaderboard size (default 10)")
    st.set_defaults(func=_cmd_status)

    ex = sub.add_parser("export", help="write the top-k programs as JSONL, Parquet and a card")
    ex.add_argument("store")
    ex.add_argument("--top", type=int, default=100, metavar="K",
                    help="unique programs to export (default 100)")
    ex.add_argument("-o", "--output", default=None, metavar="DIR",
                    help="output directory (default <store>-dataset beside the store)")
    ex.set_defaults(func=_cmd_export)

    pl = sub.add_parser("plot", help="fitness, duplicate-rate and histogram PNGs of a run")
    pl.add_argument("store")
    pl.add_argument("-o", "--output", default=None, metavar="DIR",
                    help="output directory (default <store>-plots beside the store)")
    pl.set_defaults(func=_cmd_plot)

    add_arch_parser(sub)
    en = sub.add_parser("envs", help="list the registered environments")
    en.set_defaults(func=_cmd_envs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ProgramError, UsageError, EvoError, EnvError) as err:
        print(f"evo: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `evo program dot dqn | head`
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a damaged run store: one line that names it, no traceback
        import sqlite3

        from evo.search.store import store_error

        if not isinstance(err, sqlite3.DatabaseError):
            raise
        print(f"evo: error: {store_error(getattr(args, 'store', None) or 'the run store', err)}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
