"""``evo arch latency``: simulated accelerator latency from the command line.

    evo arch latency ARCH --hardware PRESET|FILE.toml [--dataset cifar10] [--json]
    evo arch latency --csv IN.csv --column arch_str -o OUT.csv --hardware PRESET

``ARCH`` is an NB201 arch string (``|nor_conv_3x3~0|+|...``), a built-in architecture
name (``mobilenetv2``, ... from :mod:`graphs.arch.mobilenet`) or an arch program file
(:mod:`graphs.core.fileformat`). The CSV mode adds ``sim_latency_ms``, ``sim_energy_mj``,
``macs`` and ``params`` columns to every row (refusing to overwrite a column the file
already has, unless ``--overwrite``) and reports bad rows with their line numbers on
stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.nas.hardware import PRESETS, get_hardware
from evo.nas.latency import nb201_layers, simulate
from graphs.arch import nb201
from graphs.arch.layers import Layer, count_macs, count_params
from graphs.core.errors import ProgramError


def resolve_layers(ref: str, dataset: str = "cifar10") -> tuple[str, list[Layer], list[Layer]]:
    """(what it is, deployed layers, nominal layers) of an arch reference.

    NB201 strings deploy without their dead ops (:func:`evo.nas.latency.nb201_layers`);
    the nominal layers give the usual MAC and parameter counts.
    """
    text = ref.strip()
    if text.startswith("|") or "~" in text:
        nominal = nb201.network_layers(text, dataset)
        return "nb201", nb201_layers(text, dataset), nominal
    path = Path(text)
    if path.suffix == ".json" or path.exists():
        from graphs.core.fileformat import load

        program = load(path)
        layers = _arch_module().to_layers(program)
        return "file", layers, layers
    try:
        from graphs.arch import mobilenet
    except ImportError as err:
        raise EvoError(f"{ref!r} is not an NB201 arch string or a file, and built-in "
                       f"architectures are unavailable (graphs.arch.mobilenet: {err})") from None
    if text.lower() in mobilenet.BUILTINS:
        layers = _arch_module().to_layers(mobilenet.builtin(text.lower()))
        return "builtin", layers, layers
    raise EvoError(f"{ref!r} is neither an NB201 arch string (|op~0|+|op~0|op~1|+...), a "
                   f"built-in architecture ({', '.join(mobilenet.BUILTINS)}) nor an existing "
                   "arch program file (.json)")


def _arch_module() -> Any:
    try:
        from graphs.arch import ops as arch
    except ImportError as err:
        raise EvoError(f"arch programs need graphs.arch.ops, which is unavailable: {err}") from None
    return arch


def _cmd_latency(args: argparse.Namespace) -> int:
    hw = get_hardware(args.hardware)
    if args.csv is not None:
        if args.arch is not None:
            raise EvoError("give either ARCH or --csv IN.csv, not both")
        if args.output is None:
            raise EvoError("--csv needs -o OUT.csv")
        return _latency_csv(args, hw)
    if args.arch is None:
        raise EvoError("give an ARCH (NB201 arch string, built-in name or arch program file) "
                       "or --csv IN.csv --column COLUMN -o OUT.csv")
    what, layers, nominal = resolve_layers(args.arch, args.dataset)
    report = simulate(layers, hw)
    if args.json:
        out = {"arch": args.arch, "source": what, "macs": count_macs(nominal),
               "params": count_params(nominal), **report.to_dict()}
        print(json.dumps(out, indent=1))
    else:
        print(f"arch: {args.arch} ({what}); nominal {count_macs(nominal) / 1e6:.2f}M MACs, "
              f"{count_params(nominal) / 1e6:.3f}M params")
        print(report.format(top=args.top))
    return 0


CSV_COLUMNS = ("sim_latency_ms", "sim_energy_mj", "macs", "params")


def _latency_csv(args: argparse.Namespace, hw: Any) -> int:
    src = Path(args.csv)
    try:
        fh = src.open(newline="", encoding="utf-8")
    except OSError as err:
        raise EvoError(f"--csv {src}: cannot read ({err.strerror or err})") from None
    with fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        if args.column not in fields:
            fh.close()
            raise EvoError(f"--column {args.column!r} is not a column of {src} (columns: "
                           f"{', '.join(fields)})")
        clash = [c for c in CSV_COLUMNS if c in fields]
        if clash and not args.overwrite:
            raise EvoError(f"--csv {src} already has column(s) {', '.join(clash)}, which "
                           "this command writes; rename them, or pass --overwrite to "
                           "replace their values")
        try:
            same = Path(args.output).resolve() == src.resolve()
        except OSError:
            same = False
        if same:
            raise EvoError(f"-o {args.output}: is the input file; write to another file")
        return _write_latency_csv(args, hw, src, reader, fields)


def _write_latency_csv(args: argparse.Namespace, hw: Any, src: Path, reader: csv.DictReader,
                       fields: list[str]) -> int:
    bad = rows = 0
    try:
        out = Path(args.output).open("w", newline="", encoding="utf-8")
    except OSError as err:
        raise EvoError(f"-o {args.output}: cannot write ({err.strerror or err})") from None
    with out:
        writer = csv.DictWriter(out, fieldnames=fields + [c for c in CSV_COLUMNS
                                                          if c not in fields])
        writer.writeheader()
        for row in reader:
            rows += 1
            try:
                _, layers, nominal = resolve_layers(row[args.column] or "", args.dataset)
                report = simulate(layers, hw)
                row.update(sim_latency_ms=f"{report.latency_ms:.6g}",
                           sim_energy_mj=f"{report.energy_mj:.6g}",
                           macs=count_macs(nominal), params=count_params(nominal))
            except (ProgramError, EvoError, ValueError) as err:
                bad += 1
                print(f"{src}:{reader.line_num}: bad row ({args.column}="
                      f"{row[args.column]!r}): {err}", file=sys.stderr)
                row.update(dict.fromkeys(CSV_COLUMNS, ""))
            writer.writerow(row)
    print(f"wrote {args.output}: {rows} rows, {bad} bad, hardware {hw.name}", file=sys.stderr)
    return 1 if bad else 0


def add_arch_parser(sub: Any) -> None:
    """Register ``evo arch ...`` on the top-level subparsers."""
    arch = sub.add_parser("arch", help="neural architectures: simulated latency")
    asub = arch.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = asub.add_parser("latency", help="simulated latency breakdown of an architecture",
                        description=__doc__.split("\n\n")[1])
    p.add_argument("arch", nargs="?", default=None,
                   help="NB201 arch string, built-in name (mobilenetv2, ...) or program file")
    p.add_argument("--hardware", default="edgetpu",
                   help=f"preset ({', '.join(PRESETS)}) or hardware TOML file "
                        "(default edgetpu)")
    p.add_argument("--dataset", default="cifar10", choices=tuple(nb201.DATASETS),
                   help="input resolution of NB201 archs (default cifar10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--top", type=int, default=None, metavar="N",
                   help="show only the N slowest layers")
    p.add_argument("--csv", default=None, metavar="IN.csv",
                   help=f"add {', '.join(CSV_COLUMNS)} columns to every row")
    p.add_argument("--overwrite", action="store_true",
                   help="with --csv: replace the values of those columns if IN.csv has them")
    p.add_argument("--column", default="arch_str", help="the arch column of --csv")
    p.add_argument("-o", "--output", default=None, metavar="OUT.csv")
    p.set_defaults(func=_cmd_latency)
