"""The dataset card of a top-k architecture dataset (``evo export`` of an architecture run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evo.problem import CardParts


def arch_card(config: Mapping[str, Any], info: Mapping[str, Any], rows: list[dict[str, Any]],
              store_name: str, top: int, parts: CardParts) -> str:
    """The dataset card of an architecture search."""
    run, space = config.get("run", {}), config.get("space", {})
    search, ev = config.get("search", {}), config.get("evaluator", {})
    name = run.get("name", "run")
    kind = space.get("kind", "?")
    where = f"NAS-Bench-201 cells ({space.get('dataset')})" if kind == "nb201" else (
        "a MobileNet-style layerwise space")
    target = f", target {ev['target']:g}" if "target" in ev else ""
    best = (f"{rows[0]['fitness']:.4f} (`{rows[0]['formula']}`)" if rows else "none")
    field_rows = parts.fields_table
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
        "import evo",
        "from graphs.arch.ops import summary",
        "from graphs.core.fileformat import from_dict",
        "",
        "with open(\"programs.jsonl\") as f:",
        "    row = json.loads(f.readline())  # rank 1",
        "program = from_dict(row[\"program\"])  # an architecture graph",
        "print(summary(program))                 # MACs, parameters, activation memory",
        "result = evo.make_evaluator(evo.load_config(\"config.toml\"))(program)",
        "print(result[\"fitness\"], result[\"scores\"])  # as in the row",
        "```",
        "",
        "On the command line, save `row['program']` as `arch.json`; then "
        f"`evo arch latency arch.json --hardware {ev.get('hardware', 'edgetpu')}` prints its "
        "per-layer latency breakdown.",
        "",
    ]
    return "\n".join(text + parts.config_section)
