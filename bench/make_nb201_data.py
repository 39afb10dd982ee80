"""Regenerate the NAS-Bench-201 data files shipped inside the packages.

* ``graphs/arch/data/nb201_order.npy`` (:func:`order_from_csv`): for every NB201 index
  0..15,624 (the benchmark's own ordering), the base-5 code of that architecture
  (``graphs.arch.nb201.code_number``) as int16: 31 KB.
* ``evo/nas/data/nb201_accuracy.npz`` (:func:`build_accuracy_table`): every accuracy
  column of the CSV as an int32 matrix of ``round(acc * 1e4)``, one row per
  ``nb201_index``, plus the column names, compressed. The conversion is exact:
  every 4-decimal value comes back.

    python bench/make_nb201_data.py [--csv ../shared/data/nb201/nb201_accuracy.csv]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

import numpy as np

from graphs.arch.nb201 import N_ARCHS, ORDER_PATH, code_number, parse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "nb201" / "nb201_accuracy.csv"
ACCURACY_NPZ = ROOT / "evo" / "data" / "nb201_accuracy.npz"

# Accuracy columns of the CSV, in the order they are stored.
ACCURACY_COLUMNS = (
    "acc12ep_cifar10_val", "acc12ep_cifar10_test",
    "acc12ep_cifar100_val", "acc12ep_cifar100_test",
    "acc12ep_imagenet_val", "acc12ep_imagenet_test",
    "acc200ep_cifar10_test", "acc200ep_cifar100_test", "acc200ep_imagenet16_test",
)
_FOUR_DECIMALS = re.compile(r"^\d{1,3}(\.\d{1,4})?$")


def order_from_csv(path: Path) -> np.ndarray:
    """The int16 base-5 code of every NB201 index, checked to be a bijection."""
    order = np.full(N_ARCHS, -1, dtype=np.int16)
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            index = int(row["nb201_index"])
            if not 0 <= index < N_ARCHS or order[index] != -1:
                raise SystemExit(f"{path}:{line}: index {index} out of range or repeated")
            order[index] = code_number(parse(row["arch_str"]))
    if (order < 0).any() or len(set(order.tolist())) != N_ARCHS:
        raise SystemExit(f"{path}: the indices do not cover all {N_ARCHS} architectures once")
    return order


def _fixed_point(text: str, where: str) -> int:
    """``'94.3733'`` -> 943733, exactly (no float rounding involved)."""
    if not _FOUR_DECIMALS.match(text):
        raise ValueError(f"{where}: {text!r} is not an accuracy with at most 4 decimals")
    whole, _, frac = text.partition(".")
    return int(whole) * 10_000 + int(frac.ljust(4, "0"))


def build_accuracy_table(csv_path: str | Path = DEFAULT_CSV,
                         out: str | Path = ACCURACY_NPZ) -> Path:
    """Write the compact accuracy table of ``csv_path`` to ``out`` and return ``out``.

    Checks that ``nb201_index`` runs 0..15624 in order and every accuracy column
    is present, so a row of the result is the architecture with that index.
    """
    csv_path, out = Path(csv_path), Path(out)
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("nb201_index", *ACCURACY_COLUMNS)
                   if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if int(row["nb201_index"]) != len(rows):
                raise ValueError(f"{csv_path}:{line}: nb201_index {row['nb201_index']} out of "
                                 f"order (expected {len(rows)})")
            rows.append([_fixed_point(row[c], f"{csv_path}:{line} {c}")
                         for c in ACCURACY_COLUMNS])
    if len(rows) != N_ARCHS:
        raise ValueError(f"{csv_path}: {len(rows)} architectures, expected {N_ARCHS}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, accuracy=np.asarray(rows, dtype=np.int32),
                        columns=np.asarray(ACCURACY_COLUMNS))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--out", type=Path, default=ORDER_PATH)
    parser.add_argument("--accuracy-out", type=Path, default=ACCURACY_NPZ)
    args = parser.parse_args(argv)
    order = order_from_csv(args.csv)
    np.save(args.out, order, allow_pickle=False)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {N_ARCHS} codes)")
    table = build_accuracy_table(args.csv, args.accuracy_out)
    print(f"wrote {table} ({table.stat().st_size} bytes, {len(ACCURACY_COLUMNS)} columns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
