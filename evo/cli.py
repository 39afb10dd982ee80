"""The ``evo`` command line.

``evo program show|check|hash|dot|random|mutate`` work with single programs;
``evo demo`` runs the embedded default job. Errors in user input are reported as
one line (``evo: error: ...``) with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from envs import EnvError
from evo.errors import EvoError
from graphs.equivalence import FEC, MODES, canonicalize
from graphs.errors import ProgramError
from graphs.fileformat import dumps, load
from graphs.generate import from_scratch, seeded_program
from graphs.library import BUILTINS, builtin
from graphs.mutation import Mutator
from graphs.program import Program
from graphs.render import formula, node_table, to_dot


class UsageError(Exception):
    """Bad command-line input; reported without a traceback."""


def resolve_program(ref: str) -> Program:
    """A built-in name (``dqn``, ...) or the path of a program JSON file."""
    path = Path(ref)
    if path.suffix == ".json" or path.exists():
        return load(path)
    if ref.lower() in BUILTINS:
        return builtin(ref)
    raise UsageError(
        f"{ref!r} is neither a built-in program ({', '.join(BUILTINS)}) nor an existing "
        "program file (.json)"
    )


def _cmd_show(args: argparse.Namespace) -> int:
    program = resolve_program(args.program)
    print(f"formula: {formula(program)}")
    print(f"opset:   {program.opset.name}; {len(program.nodes)} nodes, "
          f"{sum(program.live[program.n_inputs:])} live")
    try:
        program.check()
        print("valid:   yes")
    except ProgramError as err:
        print(f"valid:   no ({err})")
    else:
        for mode in MODES:
            print(f"fingerprint ({mode}): {FEC(mode)(program)}")
    print()
    print(node_table(program))
    if args.canonical:
        print()
        print(f"canonical: {formula(canonicalize(program))}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    bad = 0
    for ref in args.programs:
        try:
            resolve_program(ref).check()
            print(f"ok       {ref}")
        except (ProgramError, UsageError) as err:
            bad += 1
            print(f"invalid  {ref}: {err}")
    return 1 if bad else 0


def _cmd_hash(args: argparse.Namespace) -> int:
    fec = FEC(args.mode)
    for ref in args.programs:
        program = resolve_program(ref)
        program.check()
        print(f"{fec(program)}  {ref}")
    return 0


def _cmd_dot(args: argparse.Namespace) -> int:
    sys.stdout.write(to_dot(resolve_program(args.program)))
    return 0


def _write(program: Program, out: str | None) -> None:
    text = dumps(program)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}: {formula(program)}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _cmd_random(args: argparse.Namespace) -> int:
    if args.from_scratch:
        program = from_scratch(args.nodes or 7, args.seed)
    else:
        program = seeded_program(args.base, args.nodes or 14, args.seed)
    _write(program, args.output)
    return 0


def _cmd_mutate(args: argparse.Namespace) -> int:
    program = resolve_program(args.program)
    program.check()
    mutator = Mutator(p=args.p)
    child, what = mutator.mutate(program, args.seed)
    print(f"mutation: {what}", file=sys.stderr)
    _write(child, args.output)
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


def _cmd_eval(args: argparse.Namespace) -> int:
    from evo.rl_evaluator import RLEvaluator

    program = resolve_program(args.program)
    program.check()
    evaluator = RLEvaluator(
        args.env, _parse_hurdle(args.hurdle), tuple(range(args.seed, args.seed + args.seeds)),
        steps=args.steps, time_limit=args.time_limit,
    )
    result = evaluator.evaluate(program)
    out = {
        "program": args.program,
        "formula": formula(program),
        "fitness": result.fitness,
        "scores": result.scores,
        "status": result.status,
        "reason": result.reason,
        "hurdle": result.hurdle,
        "seconds": round(result.seconds, 3),
        "steps": result.steps,
        "envs": [
            {"env": r.env, "score": r.score, "mean_return": r.mean_return,
             "seed_scores": r.seed_scores, "episodes": r.episodes, "steps": r.steps}
            for r in result.envs
        ],
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _cmd_envs(args: argparse.Namespace) -> int:
    import envs

    for spec in envs.list_envs():
        print(f"{spec.id:<32} {spec.gym_id:<34} [{spec.r_min:g}, {spec.r_max:g}]  "
              f"{spec.budget}{'  (hurdle)' if spec.hurdle else ''}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from evo.demo import run_demo

    run_demo(Path(args.out), evaluations=args.mutations, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evo", description="Evolutionary search over programs written as typed graphs."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prog = sub.add_parser("program", help="inspect, check, fingerprint and create programs")
    psub = prog.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = psub.add_parser("show", help="formula, nodes, validity and fingerprints")
    p.add_argument("program", help="built-in name (dqn, ddqn, ...) or program file")
    p.add_argument("--canonical", action="store_true", help="also print the canonical form")
    p.set_defaults(func=_cmd_show)
    p = psub.add_parser("check", help="validate programs; exit 1 if any is invalid")
    p.add_argument("programs", nargs="+")
    p.set_defaults(func=_cmd_check)
    p = psub.add_parser("hash", help="print functional-equivalence fingerprints")
    p.add_argument("programs", nargs="+")
    p.add_argument("--mode", choices=MODES, default="training",
                   help="training (default): equal gradients up to scale; output: equal values")
    p.set_defaults(func=_cmd_hash)
    p = psub.add_parser("dot", help="Graphviz DOT of a program")
    p.add_argument("program")
    p.set_defaults(func=_cmd_dot)
    p = psub.add_parser("random", help="a random program (DQN + 14 nodes by default)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--base", default="dqn", help="built-in to extend (default dqn)")
    p.add_argument("--nodes", type=int, default=None, help="random nodes to add")
    p.add_argument("--from-scratch", action="store_true",
                   help="frozen skeleton + 7 random nodes instead")
    p.add_argument("-o", "--output", help="write the JSON here instead of stdout")
    p.set_defaults(func=_cmd_random)
    p = psub.add_parser("mutate", help="a mutated child of a program")
    p.add_argument("program")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("-p", type=float, default=0.95, help="point-mutation probability")
    p.add_argument("-o", "--output")
    p.set_defaults(func=_cmd_mutate)

    ev = sub.add_parser("eval", help="train agents with a loss program and print its scores")
    ev.add_argument("program", help="built-in name (dqn, ddqn, ...) or program file")
    ev.add_argument("--env", action="append", required=True, metavar="ENV",
                    help="environment id (repeatable); see `evo envs`")
    ev.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    ev.add_argument("--seeds", type=int, default=1, help="agents per environment (default 1)")
    ev.add_argument("--steps", type=int, default=None,
                    help="train this many steps per environment instead of its budget")
    ev.add_argument("--hurdle", default=None, metavar="ENV[:THRESHOLD]",
                    help="run ENV first and stop below THRESHOLD (default 0.6); default none")
    ev.add_argument("--time-limit", type=float, default=None, metavar="SECONDS")
    ev.set_defaults(func=_cmd_eval)

    en = sub.add_parser("envs", help="list the registered environments")
    en.set_defaults(func=_cmd_envs)

    demo = sub.add_parser("demo", help="the embedded default job (writes results)")
    demo.add_argument("--out", default="results/demo", help="output directory")
    demo.add_argument("--mutations", type=int, default=20_000)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)
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


if __name__ == "__main__":
    sys.exit(main())
