"""The top-k algorithm dataset: a run's best unique programs as JSONL, Parquet and a card.

``evo export STORE --top K -o DIR`` writes

* ``DIR/programs.jsonl``: one JSON object per line, keys sorted;
* ``DIR/programs.parquet``: the same rows (``scores`` a map column, ``program`` a
  JSON string);
* ``DIR/config.toml``: the run's config, for ``evo eval --config``;
* ``DIR/README.md``: the dataset card (fields, counts, config, how to re-evaluate).

One row per unique program (functional-equivalence fingerprint): its best-scoring
evaluated trial (failed trials excluded), ranked by fitness; ties (such as the
programs cut by the hurdle, all at fitness 0) by their hurdle score, then trial id.
The export is deterministic: the same store gives byte-identical files (with the
same versions of evo and pyarrow).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evo.app.config import from_dict
from evo.app.tomlfile import dump_toml
from evo.errors import ConfigError, EvoError
from evo.problem import CardParts, problem_of
from evo.search.store import RunStore
from graphs.core.fileformat import loads
from graphs.core.render import describe

FIELDS: tuple[tuple[str, str, str], ...] = (
    ("rank", "int", "1 for the fittest program; rows are sorted by rank"),
    ("fingerprint", "string", "functional-equivalence fingerprint (FEC, config `fec.mode`); "
     "programs with equal fingerprints train identically, so each appears once"),
    ("fitness", "float", "sum of the per-environment scores of the program's best trial; "
     "0 if it was cut by the hurdle"),
    ("scores", "map string -> float", "normalized score in [0, 1] per environment (mean "
     "return over the last 50 training episodes, averaged over seeds). JSONL: an object; "
     "Parquet: a map column"),
    ("status", "string", "`ok`, or `hurdle` if the program stopped at the hurdle environment"),
    ("formula", "string", "the loss as a formula, e.g. `(Q(s,a) - (r + γ*max_a' "
     "Qt(s',a')))^2`"),
    ("program", "object", "the program in evo's versioned program file format "
     "(docs/program-format.md, `graphs/core/schema/program.schema.json`). JSONL: a nested "
     "object; Parquet: a JSON string"),
    ("parent_fingerprint", "string or null", "fingerprint of the program it was mutated "
     "from; null for initial and fresh random programs"),
    ("generation", "int", "mutations since the initial population"),
    ("evaluations", "int", "trials that proposed this fingerprint, duplicates included"),
    ("trial_id", "int", "id of the row's trial in the run store"),
)
COLUMNS = tuple(name for name, _, _ in FIELDS)


class ExportError(EvoError):
    """The export cannot be written."""


def unique_programs(store: RunStore, top: int | None = None) -> list[dict[str, Any]]:
    """The best trial of each fingerprint (status ``done``), ranked; at most ``top`` rows.

    Each row has the dataset's columns (``program`` as a dict) plus ``mutation``.
    """
    db = store.db
    best: dict[str, Any] = {}
    for row in db.execute("SELECT id, fingerprint, fitness, scores, hurdle FROM trials "
                          "WHERE status='done' ORDER BY id"):
        key = (row["fitness"], _partial_score(row["scores"], row["hurdle"]))
        cur = best.get(row["fingerprint"])
        if cur is None or key > cur[1]:
            best[row["fingerprint"]] = (row["id"], key)
    # By fitness; ties (e.g. the rows cut by the hurdle, all at 0) by what they scored.
    ranked = sorted(best.values(), key=lambda t: (-t[1][0], -t[1][1], t[0]))
    if top is not None:
        ranked = ranked[:top]
    if not ranked:
        return []
    counts = dict(db.execute("SELECT fingerprint, COUNT(*) FROM trials GROUP BY fingerprint")
                  .fetchall())
    rows = []
    for rank, (tid, _) in enumerate(ranked, 1):
        t = store.trial(tid)
        parent_fp = None
        if t["parent"] is not None:
            p = db.execute("SELECT fingerprint FROM trials WHERE id=?", (t["parent"],)).fetchone()
            parent_fp = p["fingerprint"] if p else None
        scores = json.loads(t["scores"]) if t["scores"] else {}
        result = json.loads(t["result"]) if t["result"] else {}
        rows.append({
            "rank": rank,
            "fingerprint": t["fingerprint"],
            "fitness": float(t["fitness"]),
            "scores": {k: float(scores[k]) for k in sorted(scores)},
            "status": result.get("status", "ok"),
            "formula": t["formula"] or describe(loads(t["program"], check=False)),
            "program": json.loads(t["program"]),
            "parent_fingerprint": parent_fp,
            "generation": int(t["generation"]),
            "evaluations": int(counts.get(t["fingerprint"], 1)),
            "trial_id": int(tid),
            "mutation": t["mutation"],
        })
    return rows


def _partial_score(scores: str | None, hurdle: str | None) -> float:
    """What a trial scored short of its fitness: its hurdle score if it was cut by
    the hurdle, else the sum of its scores (which is its fitness)."""
    try:
        h = json.loads(hurdle) if hurdle else None
        if isinstance(h, dict) and not h.get("passed", True) and "score" in h:
            return float(h["score"])
        values = json.loads(scores) if scores else {}
        return float(sum(float(v) for v in values.values()))
    except (TypeError, ValueError, AttributeError):
        return 0.0


def export(store_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
           top: int = 100) -> dict[str, Path]:
    """Write the dataset of the ``top`` best unique programs; returns the paths by kind."""
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ExportError(f"--top {top!r}: must be a positive integer")
    store = RunStore.open(store_path, readonly=True)
    try:
        with _snapshot(store):
            rows = unique_programs(store, top)
            info = _counts(store)
            config = store.config
    finally:
        store.close()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"{out}: cannot create the output directory ({err})") from None
    paths = {"jsonl": out / "programs.jsonl", "parquet": out / "programs.parquet",
             "config": out / "config.toml", "card": out / "README.md"}
    clean = [{k: r[k] for k in COLUMNS} for r in rows]
    _write_bytes(paths["jsonl"], "".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n"
        for r in clean).encode("utf-8"))
    _write_parquet(paths["parquet"], clean)
    _write_bytes(paths["config"], dump_toml(config).encode("utf-8"))
    _write_bytes(paths["card"], card(config, info, clean, Path(store_path).name, top)
                 .encode("utf-8"))
    return paths


class _snapshot:
    """One read transaction, so every query of the export sees the same store state
    while a run keeps writing it."""

    def __init__(self, store: RunStore) -> None:
        self.db = store.db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, *exc: object) -> None:
        self.db.execute("COMMIT")


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as err:
        raise ExportError(f"{path}: cannot write ({err})") from None


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from graphs.core.fileformat import dumps, from_dict

    schema = pa.schema([
        ("rank", pa.int32()),
        ("fingerprint", pa.string()),
        ("fitness", pa.float64()),
        ("scores", pa.map_(pa.string(), pa.float64())),
        ("status", pa.string()),
        ("formula", pa.string()),
        ("program", pa.string()),
        ("parent_fingerprint", pa.string()),
        ("generation", pa.int32()),
        ("evaluations", pa.int32()),
        ("trial_id", pa.int64()),
    ])
    columns = {name: [r[name] for r in rows] for name in schema.names}
    columns["scores"] = [list(r["scores"].items()) for r in rows]
    # The program as its canonical file text: write it to a file and `evo eval` it.
    columns["program"] = [dumps(from_dict(r["program"], check=False)) for r in rows]
    table = pa.table(columns, schema=schema)
    try:
        pq.write_table(table, path, compression="zstd", write_statistics=True)
    except OSError as err:
        raise ExportError(f"{path}: cannot write ({err})") from None


def _counts(store: RunStore) -> dict[str, Any]:
    db = store.db
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    counts = store.counts()
    return {
        "proposed": one("SELECT COUNT(*) FROM trials"),
        "finished": store.finished(),
        "evaluated": counts["done"] + counts["failed"],
        "duplicates": counts["duplicate"],
        "failed": counts["failed"],
        "hurdle_cut": one("SELECT COUNT(*) FROM trials WHERE status='done' AND "
                          "json_extract(result, '$.status')='hurdle'"),
        "unique": one("SELECT COUNT(DISTINCT fingerprint) FROM trials WHERE status='done'"),
        "trainers": "; ".join(f"{t} ({n})" for t, n in store.trainers().items()) or "not recorded",
        "compile": _compile_text(store.compile_time()),
    }


def _compile_text(compiled: tuple[float, float] | None) -> str:
    if compiled is None:
        return "not recorded"
    return (f"{compiled[0] / 60:.1f} of {compiled[1] / 60:.1f} minutes spent evaluating "
            f"({compiled[0] / compiled[1]:.1%})")


def card(config: Mapping[str, Any], info: Mapping[str, Any], rows: list[dict[str, Any]],
         store_name: str, top: int) -> str:
    """The dataset card (README.md) text, written by the run's problem."""
    try:  # a store made from Python may record a config of its own
        error, resolved = "", from_dict(config).to_dict()
    except ConfigError as err:
        error, resolved = str(err), None
    problem = problem_of(config)
    parts = CardParts(error, resolved, "\n".join(
        f"| `{n}` | {t} | {d} |" for n, t, d in problem.card_fields(FIELDS)),
        _config_section(config))
    return problem.card(config, info, rows, store_name, top, parts)


def _config_section(config: Mapping[str, Any]) -> list[str]:
    """The card's last section: the run's complete config."""
    return ["## Run config", "", "```toml", dump_toml(config).rstrip("\n"), "```", ""]
