"""The packaged NB201 accuracy table against the public CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from evo.errors import ConfigError
from evo.nas.nb201_table import DATASETS, NB201Table

CSV = Path(__file__).resolve().parents[4] / "shared" / "data" / "nb201" / "nb201_accuracy.csv"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    if not CSV.exists():
        pytest.skip(f"{CSV} is missing (the shared NB201 data is not available here)")
    with CSV.open(newline="") as f:
        return list(csv.DictReader(f))


def test_every_row_matches_the_csv(rows: list[dict[str, str]]) -> None:
    table = NB201Table.load()
    assert len(table) == len(rows) == 15_625
    expected = np.array([[float(r[c]) for c in table.columns] for r in rows])
    # Stored exactly: the same 4-decimal numbers, not merely close ones.
    assert np.array_equal(np.round(table.accuracy, 4), np.round(expected, 4))
    assert np.abs(table.accuracy - expected).max() < 1e-9


def test_lookups_by_index_string_and_code_agree_with_the_csv(rows: list[dict[str, str]]) -> None:
    from graphs.arch import nb201

    table = NB201Table.load()
    for i in range(0, len(rows), 97):
        row, arch = rows[i], rows[i]["arch_str"]
        code = nb201.parse(arch)
        for ref in (int(row["nb201_index"]), arch, code, list(code)):
            assert table.index(ref) == i
        assert table.val12(arch, "cifar10") == float(row["acc12ep_cifar10_val"])
        assert table.val12(code, "cifar100") == float(row["acc12ep_cifar100_val"])
        assert table.val12(i, "imagenet16-120") == float(row["acc12ep_imagenet_val"])
        assert table.test12(i, "cifar10") == float(row["acc12ep_cifar10_test"])
        assert table.test200(arch, "cifar10") == float(row["acc200ep_cifar10_test"])
        assert table.test200(arch, "cifar100") == float(row["acc200ep_cifar100_test"])
        assert table.test200(arch, "imagenet16-120") == float(row["acc200ep_imagenet16_test"])


def test_best_test_accuracies_are_the_published_ones() -> None:
    table = NB201Table.load()
    best = {d: round(table.best_test200(d), 2) for d in DATASETS}
    assert best == {"cifar10": 94.37, "cifar100": 73.51, "imagenet16-120": 47.31}
    # Searching on validation accuracy does not simply find the test optimum.
    for d in DATASETS:
        chosen = int(np.argmax(table.val12_all(d)))
        assert table.test200(chosen, d) <= table.best_test200(d)


def test_load_is_cached() -> None:
    assert NB201Table.load() is NB201Table.load()


@pytest.mark.parametrize("bad, words", [
    (15_625, "out of range"), (-1, "out of range"), ("|conv~0|", "group"),
    ((0, 1, 2), "6 op indices"), (True, "expected an index"),
])
def test_bad_architectures_are_reported(bad: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        NB201Table.load().val12(bad, "cifar10")  # type: ignore[arg-type]


def test_bad_dataset_and_column_are_reported() -> None:
    table = NB201Table.load()
    with pytest.raises(ConfigError, match="did you mean 'cifar100'"):
        table.test200(0, "cifar-100")
    with pytest.raises(ConfigError, match="unknown NB201 column"):
        table.column("acc")
