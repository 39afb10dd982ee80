"""Regenerate the NAS-Bench-201 data files shipped inside the package.

``build_accuracy_table(csv, out)`` turns ``../shared/data/nb201/nb201_accuracy.csv``
(all 15,625 architectures, 4-decimal accuracies in percent) into
``evo/data/nb201_accuracy.npz``: one int32 matrix of ``round(acc * 1e4)`` with a
row per ``nb201_index`` and a column per CSV accuracy column, plus the column
names, compressed. The conversion is exact: every 4-decimal value comes back.

Run: ``.venv/bin/python bench/make_nb201_data.py [--csv PATH]``.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np

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
    if len(rows) != 15_625:
        raise ValueError(f"{csv_path}: {len(rows)} architectures, expected 15,625")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, accuracy=np.asarray(rows, dtype=np.int32),
                        columns=np.asarray(ACCURACY_COLUMNS))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(DEFAULT_CSV), help="nb201_accuracy.csv")
    args = parser.parse_args()
    path = build_accuracy_table(args.csv)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
