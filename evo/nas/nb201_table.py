"""NAS-Bench-201 tabular accuracies, shipped with the package.

All 15,625 architectures of the NB201 (NATS-Bench topology) space with, per
dataset, the 12-epoch validation accuracy (what a search may look at) and the
200-epoch test accuracy (what a paper reports for the architecture a search
picks), following the NATS-Bench protocol. Accuracies are percentages with the
benchmark's 4 decimals, e.g. ``NB201Table.load().best_test200("cifar10") == 94.3733``.

::

    table = NB201Table.load()
    table.val12("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|"
                "nor_conv_3x3~1|skip_connect~2|", "cifar10")       # 82.834
    table.test200(1, "cifar100")                                   # by nb201_index

The data file (``evo/nas/data/nb201_accuracy.npz``) is regenerated from the public
CSV by ``bench/make_nb201_data.py``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np

from evo.errors import ConfigError
from graphs.arch import nb201
from graphs.core.errors import ProgramError, did_you_mean

DATASETS = ("cifar10", "cifar100", "imagenet16-120")
# dataset -> (12-epoch validation column, 12-epoch test column, 200-epoch test column)
_COLUMNS = {
    "cifar10": ("acc12ep_cifar10_val", "acc12ep_cifar10_test", "acc200ep_cifar10_test"),
    "cifar100": ("acc12ep_cifar100_val", "acc12ep_cifar100_test", "acc200ep_cifar100_test"),
    "imagenet16-120": ("acc12ep_imagenet_val", "acc12ep_imagenet_test",
                       "acc200ep_imagenet16_test"),
}
ArchRef = int | str | tuple[int, ...] | list[int]


def check_dataset(dataset: str) -> str:
    """``dataset`` if it is one of :data:`DATASETS`, else a ConfigError with a hint."""
    if dataset in _COLUMNS:
        return dataset
    hint = did_you_mean(str(dataset), DATASETS, 1)
    raise ConfigError(f"unknown NB201 dataset {dataset!r}{hint} (datasets: {', '.join(DATASETS)})")


class NB201Table:
    """The accuracy table; rows are ``nb201_index`` values, columns CSV columns.

    Architectures can be given as an ``nb201_index`` (int), an arch string or a
    code (6 op indices, see :mod:`graphs.arch.nb201`).
    """

    def __init__(self, accuracy: np.ndarray, columns: tuple[str, ...]) -> None:
        if accuracy.shape != (nb201.N_ARCHS, len(columns)):
            raise ValueError(f"accuracy table of shape {accuracy.shape}, expected "
                             f"({nb201.N_ARCHS}, {len(columns)})")
        # Percent values; the file stores them exactly as round(acc * 1e4).
        self.accuracy = accuracy.astype(np.float64) / 1e4
        self.columns = tuple(columns)
        self._col = {c: i for i, c in enumerate(self.columns)}

    @staticmethod
    @cache
    def load() -> NB201Table:
        """The table shipped with the package (loaded once per process)."""
        ref = resources.files("evo.nas").joinpath("data", "nb201_accuracy.npz")
        with resources.as_file(ref) as path, np.load(path) as data:
            return NB201Table(data["accuracy"], tuple(str(c) for c in data["columns"]))

    def __len__(self) -> int:
        return self.accuracy.shape[0]

    # -- lookups -------------------------------------------------------------------------
    def index(self, arch: ArchRef) -> int:
        """The ``nb201_index`` of an index, arch string or code.

        Raises:
            ConfigError: an index out of range or a malformed string or code.
        """
        if isinstance(arch, bool):
            raise ConfigError(f"NB201 architecture {arch!r}: expected an index, arch "
                              "string or code")
        if isinstance(arch, int | np.integer):
            if not 0 <= int(arch) < len(self):
                raise ConfigError(f"NB201 index {int(arch)} out of range [0, {len(self)})")
            return int(arch)
        try:
            return nb201.to_index(arch)
        except ProgramError as err:
            raise ConfigError(str(err)) from None

    def column(self, name: str) -> np.ndarray:
        """A whole CSV column (percent), indexed by ``nb201_index``."""
        if name not in self._col:
            raise ConfigError(f"unknown NB201 column {name!r} (columns: {', '.join(self.columns)})")
        return self.accuracy[:, self._col[name]]

    def _get(self, arch: ArchRef, dataset: str, which: int) -> float:
        column = self._col[_COLUMNS[check_dataset(dataset)][which]]
        return float(self.accuracy[self.index(arch), column])

    def val12(self, arch: ArchRef, dataset: str = "cifar10") -> float:
        """12-epoch validation accuracy (percent): the search signal."""
        return self._get(arch, dataset, 0)

    def test12(self, arch: ArchRef, dataset: str = "cifar10") -> float:
        """12-epoch test accuracy (percent)."""
        return self._get(arch, dataset, 1)

    def test200(self, arch: ArchRef, dataset: str = "cifar10") -> float:
        """200-epoch test accuracy (percent): what a search reports."""
        return self._get(arch, dataset, 2)

    def val12_all(self, dataset: str = "cifar10") -> np.ndarray:
        """12-epoch validation accuracy of every architecture, by index."""
        return self.column(_COLUMNS[check_dataset(dataset)][0])

    def test200_all(self, dataset: str = "cifar10") -> np.ndarray:
        """200-epoch test accuracy of every architecture, by index."""
        return self.column(_COLUMNS[check_dataset(dataset)][2])

    def best_test200(self, dataset: str = "cifar10") -> float:
        """The best 200-epoch test accuracy in the space (94.37 / 73.51 / 47.31)."""
        return float(self.test200_all(dataset).max())
