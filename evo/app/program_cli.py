"""``evo program show|check|hash|dot|random|mutate``: single programs from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from graphs.core.equivalence import FEC, MODES, canonicalize
from graphs.core.errors import ProgramError
from graphs.core.fileformat import dumps, load
from graphs.core.mutation import Mutator
from graphs.core.program import Program
from graphs.core.render import formula, node_table, to_dot
from graphs.rl_loss.generation import from_scratch, seeded_program
from graphs.rl_loss.library import BUILTINS, builtin


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


def add_program_parser(sub: Any) -> None:
    """Add ``evo program ...`` to the ``evo`` parser's subcommands."""
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
