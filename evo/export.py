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

from evo.config import dump_toml
from evo.errors import EvoError
from evo.store import RunStore
from graphs.fileformat import loads
from graphs.render import describe

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
     "(docs/program-format.md, `graphs/schema/program.schema.json`). JSONL: a nested "
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

    from graphs.fileformat import dumps, from_dict

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
    }


def _eval_command(config: Mapping[str, Any]) -> str:
    """An `evo eval` line that keeps the run's agent (through ``--config``) and picks
    environments and a budget explicitly."""
    ev = config.get("evaluator", {})
    parts = ["evo eval program.json --config config.toml"]
    for env in ev.get("envs", []) or ["CartPole"]:
        parts.append(f"--env {env}")
    parts.append(f"--steps {ev.get('steps') or 20_000}")
    return " ".join(parts)


def agent_differences(config: Mapping[str, Any]) -> list[str]:
    """How the run's agent differs from the default agent (``DQNConfig()``), as
    ``"hidden (64, 64) instead of (256, 256)"`` lines; empty if it does not."""
    from evo.dqn import DQNConfig

    default = DQNConfig()
    agent = config.get("evaluator", {}).get("agent", {})
    out = []
    for name in DQNConfig.field_names():
        if name not in agent:
            continue
        ours, theirs = agent[name], getattr(default, name)
        ours = tuple(ours) if isinstance(ours, list) else ours
        if ours != theirs:
            out.append(f"{name} {ours!r} instead of {theirs!r}")
    return out


def _search_line(config: Mapping[str, Any]) -> str:
    """The card's search settings, or a plain note where the store records none."""
    problem = _config_problem(config)
    if problem:
        return (f"Search settings: not recorded. The store's config is not a run config "
                f"({problem}), as happens when a search is started from Python with its own "
                "dict; `config.toml` holds that dict. Record "
                "`evo.config.config_from_objects(algorithm, evaluator, trials).to_dict()` "
                "with `RunStore.create` to make a store that `evo resume`, `evo status` and "
                "`evo eval --config` understand.")
    from evo.config import from_dict

    search = from_dict(config).to_dict()["search"]
    seed = search["seed_program"]
    start = ("the frozen from-scratch skeleton" if seed == "scratch" else f"`{seed}`")
    line = f"Search: {search['algorithm']}"
    if search["algorithm"] == "regularized_evolution":
        line += (f", population {search['population_size']}, tournament "
                 f"{search['tournament_size']}, mutation probability {search['mutation_p']}")
    return f"{line}, seeded from {start} + {search['extra_nodes']} random nodes."


def _config_problem(config: Mapping[str, Any]) -> str:
    """Why ``config`` is not a valid run config ('' if it is)."""
    from evo.config import from_dict
    from evo.errors import ConfigError

    try:
        from_dict(config)
    except ConfigError as err:
        return str(err)
    return ""


def _agent_note(config: Mapping[str, Any]) -> list[str]:
    diff = agent_differences(config)
    if not diff:
        return ["The run trained the default agent (`evo.dqn.DQNConfig()`), so every "
                "recipe below trains the same agent as the run.", ""]
    return [
        f"**The run's agent is not the default one**: {'; '.join(diff)} "
        "(`[evaluator.agent]` in `config.toml`). The recipes below keep it: `--config "
        "config.toml` on the command line, `config=run.evaluator.agent` in Python. "
        "Without them, `evo eval` and `evaluate` train the default agent instead, whose "
        "scores are not comparable with the rows'.",
        "",
    ]


def card(config: Mapping[str, Any], info: Mapping[str, int], rows: list[dict[str, Any]],
         store_name: str, top: int) -> str:
    """The dataset card (README.md) text."""
    if config.get("space"):
        return _arch_card(config, info, rows, store_name, top)
    run = config.get("run", {})
    ev = config.get("evaluator", {})
    name = run.get("name", "run")
    envs = ", ".join(ev.get("envs", []))
    hurdle = ev.get("hurdle")
    hurdle_text = (f"{hurdle['env']} with threshold {hurdle['threshold']}"
                   if isinstance(hurdle, Mapping) else "none")
    best = (f"{rows[0]['fitness']:.4f} (`{rows[0]['formula']}`)" if rows else "none")
    field_rows = "\n".join(f"| `{n}` | {t} | {d} |" for n, t, d in FIELDS)
    lines = [
        f"# evo dataset: {name}, top {len(rows)} RL loss programs",
        "",
        f"The {len(rows)} best unique loss programs (of top {top} requested) found by the "
        f"evo run `{name}` (run store `{store_name}`), with `evo export`. Each program is "
        "a typed computational graph computing a DQN-style loss from Q-values, rewards "
        "and discounts; agents trained with it are scored on the run's environments "
        f"({envs}; hurdle: {hurdle_text}).",
        "",
        "## Files",
        "",
        "- `programs.jsonl`: one JSON object per line, keys sorted, rows in rank order.",
        "- `programs.parquet`: the same rows (zstd); `scores` is a `map<string, double>` "
        "column and `program` a JSON string (the program file text).",
        "- `config.toml`: the run's complete config (`evo run config.toml` repeats the run; "
        "`evo eval --config config.toml` re-evaluates with its exact evaluator settings).",
        "- `README.md`: this card.",
        "",
        "## Counts",
        "",
        "| | |",
        "|---|---|",
        f"| target trials | {run.get('trials', '?')} |",
        f"| proposed candidates | {info['proposed']} |",
        f"| finished trials (evaluated or duplicate) | {info['finished']} |",
        f"| evaluations (trained) | {info['evaluated']} |",
        f"| duplicates (fitness reused from the equivalence cache) | {info['duplicates']} |",
        f"| cut by the hurdle | {info['hurdle_cut']} |",
        f"| failed (error, NaN, timeout) | {info['failed']} |",
        f"| unique evaluated programs | {info['unique']} |",
        f"| trainer (evaluations) | {info.get('trainers', 'not recorded')} |",
        f"| rows in this dataset | {len(rows)} |",
        f"| best fitness | {best} |",
        "",
        _search_line(config),
        "",
        "## Fields",
        "",
        "One row per unique program (by fingerprint): the best-scoring evaluated trial of "
        "that fingerprint (failed trials are excluded), ranked by fitness; ties (such as "
        "programs cut by the hurdle, all at fitness 0) are ranked by their hurdle score, "
        "then by trial id.",
        "",
        "| field | type | meaning |",
        "|---|---|---|",
        field_rows,
        "",
        "## Reload and re-evaluate a row",
        "",
        *_agent_note(config),
        "Save a row's program as a program file, then train agents with it:",
        "",
        "```bash",
        "python -c \"import json; row = json.loads(open('programs.jsonl').readline()); "
        "json.dump(row['program'], open('program.json', 'w'), indent=2)\"",
        "evo eval program.json --config config.toml   # the run's exact evaluator settings",
        f"{_eval_command(config)}   # your own envs and budget, the run's agent",
        "```",
        "",
        "The same in Python:",
        "",
        "```python",
        "import json",
        "",
        "from evo.config import load_config",
        "from evo.rl_evaluator import evaluate",
        "from evo.runner import make_evaluator",
        "from graphs.fileformat import from_dict",
        "",
        "with open(\"programs.jsonl\") as f:",
        "    row = json.loads(f.readline())  # rank 1",
        "program = from_dict(row[\"program\"])",
        "",
        "# exactly as in the run (same envs, budgets, agent, hurdle, seeds):",
        "result = make_evaluator(load_config(\"config.toml\")).evaluate(program)",
        "print(result.fitness, result.scores)  # equals row[\"fitness\"], row[\"scores\"]",
        "",
        "# your own envs, budget and seeds, with the run's agent:",
        "run = load_config(\"config.toml\")",
        "result = evaluate(program, envs=[\"CartPole\"], steps=20_000, seeds=3,",
        "                  config=run.evaluator.agent)",
        "```",
        "",
        "From Parquet: `pyarrow.parquet.read_table('programs.parquet').to_pylist()`; "
        "`graphs.fileformat.loads(row['program'])` gives the program.",
        "",
        "Training is deterministic given the seeds, so re-evaluating with the run's "
        "config reproduces a row's fitness (on the same software versions), exactly for "
        "most rows and within the spread between its training seeds for a loss whose "
        "updates are driven by float rounding (e.g. a near-zero gradient that Adam "
        "rescales), which the population trainer computes slightly differently in the "
        "search's batch than alone"
        + ("; with progressive hurdles (`[hurdles] progressive = true`) a row's fitness "
           "was measured at the budget of the last hurdle level it reached, so pass "
           "`budget_scale=` to `evaluate` for an exact match." if config.get(
               "hurdles", {}).get("progressive") else "."),
        "",
    ]
    return "\n".join(lines + _config_section(config))


def _arch_card(config: Mapping[str, Any], info: Mapping[str, int], rows: list[dict[str, Any]],
               store_name: str, top: int) -> str:
    """The dataset card of an architecture search."""
    run, space = config.get("run", {}), config.get("space", {})
    search, ev = config.get("search", {}), config.get("evaluator", {})
    name = run.get("name", "run")
    kind = space.get("kind", "?")
    where = f"NAS-Bench-201 cells ({space.get('dataset')})" if kind == "nb201" else (
        "a MobileNet-style layerwise space")
    target = f", target {ev['target']:g}" if "target" in ev else ""
    best = (f"{rows[0]['fitness']:.4f} (`{rows[0]['formula']}`)" if rows else "none")
    field_rows = "\n".join(f"| `{n}` | {t} | {d} |" for n, t, d in FIELDS)
    text = [
        f"# evo dataset: {name}, top {len(rows)} architectures",
        "",
        f"The {len(rows)} best unique architectures (of top {top} requested) found by the "
        f"evo run `{name}` (run store `{store_name}`) over {where}, with `evo export`. "
        f"Each is scored by accuracy `{ev.get('accuracy')}` and cost `{ev.get('cost')}` on "
        f"the simulated `{ev.get('hardware')}` accelerator, combined by the reward "
        f"`{ev.get('reward')}`{target}. For NB201 the `formula` column is the arch string; "
        "`scores` hold the search accuracy (12-epoch validation for the NB201 table), the "
        "simulated latency (ms), MACs and parameters (millions), and `test_accuracy` the "
        "reported 200-epoch test accuracy where the table has it.",
        "",
        "## Files",
        "",
        "- `programs.jsonl`: one JSON object per line, keys sorted, rows in rank order.",
        "- `programs.parquet`: the same rows (zstd).",
        "- `config.toml`: the run's complete config (`evo run config.toml` repeats the run).",
        "- `README.md`: this card.",
        "",
        "## Counts",
        "",
        "| | |",
        "|---|---|",
        f"| target trials | {run.get('trials', '?')} |",
        f"| proposed candidates | {info['proposed']} |",
        f"| evaluations | {info['evaluated']} |",
        f"| duplicates (equivalent architectures, score reused) | {info['duplicates']} |",
        f"| failed | {info['failed']} |",
        f"| unique evaluated architectures | {info['unique']} |",
        f"| rows in this dataset | {len(rows)} |",
        f"| best fitness | {best} |",
        "",
        f"Search: {search.get('algorithm', '?')}.",
        "",
        "## Fields",
        "",
        "| field | type | meaning |",
        "|---|---|---|",
        field_rows,
        "",
        "## Reload and re-evaluate a row",
        "",
        "```python",
        "import json",
        "",
        "from evo.config import load_config",
        "from evo.runner import make_evaluator",
        "from graphs.arch import summary",
        "from graphs.fileformat import from_dict",
        "",
        "with open(\"programs.jsonl\") as f:",
        "    row = json.loads(f.readline())  # rank 1",
        "program = from_dict(row[\"program\"])  # an architecture graph",
        "print(summary(program))                 # MACs, parameters, activation memory",
        "result = make_evaluator(load_config(\"config.toml\"))(program)",
        "print(result[\"fitness\"], result[\"scores\"])  # as in the row",
        "```",
        "",
        "On the command line, save `row['program']` as `arch.json`; then "
        f"`evo arch latency arch.json --hardware {ev.get('hardware', 'edgetpu')}` prints its "
        "per-layer latency breakdown.",
        "",
    ]
    return "\n".join(text + _config_section(config))


def _config_section(config: Mapping[str, Any]) -> list[str]:
    """The card's last section: the run's complete config."""
    return ["## Run config", "", "```toml", dump_toml(config).rstrip("\n"), "```", ""]
