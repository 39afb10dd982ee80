"""The dataset card of a top-k loss-program dataset (``evo export`` of a loss run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evo.problem import CardParts


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
    from evo.rl.dqn import DQNConfig

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


def _search_line(parts: CardParts) -> str:
    """The card's search settings, or a plain note where the store records none."""
    problem = parts.config_error
    if problem:
        return (f"Search settings: not recorded. The store's config is not a run config "
                f"({problem}), as happens when a search is started from Python with its own "
                "dict; `config.toml` holds that dict. Record "
                "`evo.app.config.config_from_objects(algorithm, evaluator, trials).to_dict()` "
                "with `RunStore.create` to make a store that `evo resume`, `evo status` and "
                "`evo eval --config` understand.")
    search = parts.resolved["search"]
    seed = search["seed_program"]
    start = ("the frozen from-scratch skeleton" if seed == "scratch" else f"`{seed}`")
    line = f"Search: {search['algorithm']}"
    if search["algorithm"] == "regularized_evolution":
        line += (f", population {search['population_size']}, tournament "
                 f"{search['tournament_size']}, mutation probability {search['mutation_p']}")
    return f"{line}, seeded from {start} + {search['extra_nodes']} random nodes."


def _agent_note(config: Mapping[str, Any]) -> list[str]:
    diff = agent_differences(config)
    if not diff:
        return ["The run trained the default agent (`evo.rl.dqn.DQNConfig()`), so every "
                "recipe below trains the same agent as the run.", ""]
    return [
        f"**The run's agent is not the default one**: {'; '.join(diff)} "
        "(`[evaluator.agent]` in `config.toml`). The recipes below keep it: `--config "
        "config.toml` on the command line, `config=run.evaluator.agent` in Python. "
        "Without them, `evo eval` and `evaluate` train the default agent instead, whose "
        "scores are not comparable with the rows'.",
        "",
    ]


def loss_card(config: Mapping[str, Any], info: Mapping[str, Any], rows: list[dict[str, Any]],
              store_name: str, top: int, parts: CardParts) -> str:
    """The dataset card (README.md) of a loss-program search."""
    run = config.get("run", {})
    ev = config.get("evaluator", {})
    name = run.get("name", "run")
    envs = ", ".join(ev.get("envs", []))
    hurdle = ev.get("hurdle")
    hurdle_text = (f"{hurdle['env']} with threshold {hurdle['threshold']}"
                   if isinstance(hurdle, Mapping) else "none")
    best = (f"{rows[0]['fitness']:.4f} (`{rows[0]['formula']}`)" if rows else "none")
    field_rows = parts.fields_table
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
        f"| tracing and compiling (JAX) | {info.get('compile', 'not recorded')} |",
        f"| rows in this dataset | {len(rows)} |",
        f"| best fitness | {best} |",
        "",
        _search_line(parts),
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
        "import evo",
        "from evo.rl.evaluator import evaluate",
        "from graphs.core.fileformat import from_dict",
        "",
        "with open(\"programs.jsonl\") as f:",
        "    row = json.loads(f.readline())  # rank 1",
        "program = from_dict(row[\"program\"])",
        "",
        "# exactly as in the run (same envs, budgets, agent, hurdle, seeds):",
        "result = evo.make_evaluator(evo.load_config(\"config.toml\")).evaluate(program)",
        "print(result.fitness, result.scores)  # equals row[\"fitness\"], row[\"scores\"]",
        "",
        "# your own envs, budget and seeds, with the run's agent:",
        "run = evo.load_config(\"config.toml\")",
        "result = evaluate(program, envs=[\"CartPole\"], steps=20_000, seeds=3,",
        "                  config=run.evaluator.agent)",
        "```",
        "",
        "From Parquet: `pyarrow.parquet.read_table('programs.parquet').to_pylist()`; "
        "`graphs.core.fileformat.loads(row['program'])` gives the program.",
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
    return "\n".join(lines + parts.config_section)
