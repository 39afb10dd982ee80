"""Golden values that pin evo's behaviour across refactors (used by test_golden.py).

``python tests/helpers/golden.py`` rewrites ``tests/data/golden.json``. Do that only in a
commit that changes behaviour on purpose, and say why in its message.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("EVO_TRAINER", "numpy")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden.json"
RANDOM_PROGRAMS = 1000
QUICK_TRIALS = 6  # the quick preset, cut short (each trial trains 10k CartPole steps)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def fingerprints() -> dict:
    """Training- and output-mode fingerprints of every built-in loss, and of random ones."""
    from graphs.core.equivalence import FEC
    from graphs.core.fileformat import dumps
    from graphs.core.generate import random_program
    from graphs.rl_loss.library import BUILTINS, skeleton

    training, output = FEC("training"), FEC("output")
    builtins = {name: [training(make()), output(make())] for name, make in BUILTINS.items()}
    base = skeleton()
    rows = []
    for seed in range(RANDOM_PROGRAMS):
        program = random_program(base, 7, seed=seed)
        rows.append(f"{_digest(dumps(program))} {training(program)} {output(program)}")
    return {"builtins": builtins, "random_first": rows[:5], "random_all": _digest("\n".join(rows))}


_COLUMNS = ("status, fingerprint, formula, parent, mutation, generation, fitness, scores, "
            "hurdle, reason, level, duplicate_of, program")


def store_rows(path: Path) -> list[str]:
    """One line per trial, with everything a seed decides (not times, hosts or workers)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(f"SELECT {_COLUMNS} FROM trials ORDER BY id").fetchall()
    finally:
        db.close()
    out = []
    for *head, fitness, scores, hurdle, reason, level, dup, program in rows:
        fit = "None" if fitness is None else f"{fitness:.6g}"
        out.append("|".join(map(str, (*head, fit, scores, hurdle, reason, level, dup,
                                      _digest(program)))))
    return out


def short_run(preset: str, trials: int | None) -> list[str]:
    """The store of ``preset`` (``trials`` of them), as :func:`store_rows`."""
    from evo.app.config import preset as load_preset
    from evo.app.runner import run

    changes = {"workers.backend": "local", "workers.workers": 1}
    if trials is not None:
        changes["run.trials"] = trials
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.db"
        run(load_preset(preset).replace(**changes), path, progress=False)
        return store_rows(path)


def runs() -> dict:
    return {"quick": short_run("quick", QUICK_TRIALS),
            "nb201-quick": short_run("nb201-quick", None)}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    GOLDEN.write_text(json.dumps({"fingerprints": fingerprints(), "runs": runs()}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
