"""Compare loss programs: train each on several environments and seeds, batched, and
write learning curves, a score table with confidence intervals and the raw returns.

::

    from evo.rl.compare import compare
    compare({"dqn": builtin("dqn"), "mine": load("mine.json")}, ["CartPole", "Acrobot"],
            seeds=10, out="cmp/")

Per environment all (program, seed) agents train in one population-trainer call
(the numpy trainer, one program at a time, where JAX is missing). The score of one
agent is the environment's normalized score of its last 50 episodes (as in a
search); the table gives the mean over seeds with a 95% bootstrap interval.

``seeds`` is a count (seeds 0..n-1) or the seeds themselves, so a long comparison can
be extended later with more seeds (``evo compare --first-seed``) and the parts joined
with :func:`join`: an agent trains the same in any batch, so the joined table is what
one run of all seeds would give.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import envs as envlib
from evo.errors import ConfigError
from evo.rl.dqn import DQNConfig, train
from evo.rl.evaluator import resolve_trainer
from evo.rl.settings import MAX_SEEDS
from graphs.core.program import Program

CONFIDENCE = 0.95


def bootstrap_ci(values: Sequence[float], reps: int = 10_000, seed: int = 0
                 ) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the mean (the values themselves when
    there is only one)."""
    x = np.asarray(values, float)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    means = np.random.default_rng(seed).choice(x, (reps, len(x))).mean(axis=1)
    lo, hi = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(lo), float(hi)


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """The training seeds that ``seeds`` names: a count n means 0..n-1, a sequence the
    seeds themselves (distinct, non-negative); :class:`ConfigError` otherwise."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if not 1 <= seeds <= MAX_SEEDS:
            raise ConfigError(f"seeds = {seeds!r}: must be an integer in [1, {MAX_SEEDS}]")
        return list(range(seeds))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ConfigError(f"seeds = {seeds!r}: give a count or a list of seeds")
    ids = list(seeds)
    if not ids or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in ids):
        raise ConfigError(f"seeds = {seeds!r}: give at least one seed, each a "
                          "non-negative integer")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"seeds = {seeds!r}: a seed is listed twice")
    if len(ids) > MAX_SEEDS:
        raise ConfigError(f"{len(ids)} seeds: give at most {MAX_SEEDS} per program")
    return ids


def score_row(per_seed: Sequence[float], status: Sequence[str], seeds: Sequence[int]
              ) -> dict[str, Any]:
    """One program's row of the table: the mean over its seeds with a 95% bootstrap
    interval, each seed's score and training status, and the seeds."""
    lo, hi = bootstrap_ci(per_seed)
    return {"mean": float(np.mean(per_seed)), "ci95": [lo, hi], "per_seed": list(per_seed),
            "status": list(status), "seeds": list(seeds)}


def _train_env(programs: Mapping[str, Program], spec: envlib.EnvSpec, seeds: list[int],
               config: DQNConfig, budget: envlib.Budget, trainer: str) -> dict[str, list]:
    names, n = list(programs), len(seeds)
    if trainer == "population":
        from evo.rl.population import train_population

        runs = train_population([programs[name] for name in names for _ in seeds], spec,
                                seeds * len(names), config, budget)
        return {name: runs[i * n:(i + 1) * n] for i, name in enumerate(names)}
    return {name: train(programs[name], spec, seeds, config, budget) for name in names}


def compare(programs: Mapping[str, Program], env_ids: Sequence[str],
            seeds: int | Sequence[int], out: str | Path, config: DQNConfig | None = None,
            steps: int | None = None, budgets: Mapping[str, envlib.Budget] | None = None,
            trainer: str = "auto") -> dict[str, Any]:
    """Train every program on every environment with ``seeds`` (a count, or the seeds
    themselves); write ``scores.md``, ``scores.json``, ``returns.json`` and one
    ``<env>.png`` per environment into ``out``; return the scores."""
    if not programs:
        raise ConfigError("compare: give at least one program")
    seeds = seed_list(seeds)
    for program in programs.values():
        program.check()
    specs = [envlib.get(e) for e in env_ids]
    config = config or DQNConfig()
    trainer = resolve_trainer(trainer)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores: dict[str, Any] = {"seeds": len(seeds), "seed_ids": seeds, "trainer": trainer,
                              "envs": {}}
    raw: dict[str, Any] = {}
    for spec in specs:
        budget = envlib.Budget(steps=steps) if steps else (budgets or {}).get(spec.id,
                                                                              spec.budget)
        runs = _train_env(programs, spec, seeds, config, budget, trainer)
        table = {name: score_row([spec.score(r.episode_returns, config.score_window)
                                  for r in agent_runs], [r.status for r in agent_runs], seeds)
                 for name, agent_runs in runs.items()}
        scores["envs"][spec.id] = {"budget": {"episodes": budget.episodes,
                                              "steps": budget.steps}, "programs": table}
        if trainer == "population":  # how the losses ran (docs/population.md)
            from evo.rl.population import episode_steps, loss_mode_for

            scores["envs"][spec.id]["loss_mode"] = loss_mode_for(budget, "auto",
                                                                 episode_steps(spec))
        raw[spec.id] = {name: [list(map(float, r.episode_returns)) for r in agent_runs]
                        for name, agent_runs in runs.items()}
    write_report(scores, raw, out)
    return scores


def _row_seeds(scores: Mapping[str, Any], row: Mapping[str, Any]) -> list[int]:
    """A row's seeds; tables written before rows named them trained seeds 0..n-1."""
    return list(row.get("seeds") or scores.get("seed_ids") or range(len(row["per_seed"])))


def join(parts: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
         names: Sequence[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """One table from comparisons of one plan split by program or by seed: each part
    is the ``(scores, raw returns)`` that :func:`compare` wrote. The parts must have
    trained the same environments with the same budgets and trainer (the agent is the
    caller's to check); a program in several parts gets the seeds of all of them, in
    seed order, and a seed trained twice is refused. ``names`` name the parts in
    errors (default: their indices). Returns ``(scores, raw)`` for :func:`write_report`."""
    if not parts:
        raise ConfigError("join: give at least one part")
    names = list(names) if names is not None else [f"part {i}" for i in range(len(parts))]
    first = parts[0][0]
    plan = {env: v["budget"] for env, v in first["envs"].items()}
    for name, (scores, _) in zip(names[1:], parts[1:]):
        other = {env: v["budget"] for env, v in scores["envs"].items()}
        if other != plan:
            raise ConfigError(f"{name} trained other environments or budgets ({other}) than "
                              f"{names[0]} ({plan}); only parts of one plan join")
        if scores["trainer"] != first["trainer"]:
            raise ConfigError(f"{name} trained with the {scores['trainer']} trainer, "
                              f"{names[0]} with the {first['trainer']} trainer; only parts "
                              "of one plan join")
    envs: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    for env in plan:
        agents: dict[str, dict[int, tuple[float, str, list[float]]]] = {}
        for part, (scores, returns) in zip(names, parts):
            try:
                for program, row in scores["envs"][env]["programs"].items():
                    mine = agents.setdefault(program, {})
                    for k, seed in enumerate(_row_seeds(scores, row)):
                        if seed in mine:
                            raise ConfigError(f"{program!r} seed {seed} on {env}: trained in "
                                              "two parts; give each seed of a program to one "
                                              "part")
                        mine[seed] = (row["per_seed"][k], row["status"][k],
                                      returns[env][program][k])
            except (KeyError, IndexError, TypeError) as err:
                raise ConfigError(f"{part}: its scores and returns do not match on {env} "
                                  f"(missing {err}); re-run that part") from None
        envs[env] = {**first["envs"][env], "programs": {}}
        raw[env] = {}
        for name, by_seed in agents.items():
            seeds = sorted(by_seed)
            envs[env]["programs"][name] = score_row([by_seed[s][0] for s in seeds],
                                                    [by_seed[s][1] for s in seeds], seeds)
            raw[env][name] = [by_seed[s][2] for s in seeds]
    seed_ids = sorted({s for env in envs.values() for row in env["programs"].values()
                       for s in row["seeds"]})
    most = max(len(row["seeds"]) for env in envs.values() for row in env["programs"].values())
    return {"seeds": most, "seed_ids": seed_ids, "trainer": first["trainer"],
            "envs": envs}, raw


def write_report(scores: Mapping[str, Any], raw: Mapping[str, Any], out: str | Path) -> None:
    """Write what :func:`compare` returns and trained into ``out``: ``scores.json``,
    ``returns.json`` (each environment's per-seed returns by program), ``scores.md``
    and one ``<env>.png`` of learning curves per environment."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for env_id, curves in raw.items():
        _plot(env_id, curves, out / f"{_safe(env_id)}.png")
    (out / "scores.json").write_text(json.dumps(scores, indent=2, ensure_ascii=False) + "\n")
    (out / "returns.json").write_text(json.dumps(raw) + "\n")
    (out / "scores.md").write_text(markdown(scores))


def markdown(scores: Mapping[str, Any]) -> str:
    """The score table: one row per program, one column per environment (each cell
    names its number of seeds where the programs were trained with different ones)."""
    env_ids = list(scores["envs"])
    names = list(next(iter(scores["envs"].values()))["programs"]) if env_ids else []
    counts = {len(row["per_seed"]) for env in env_ids
              for row in scores["envs"][env]["programs"].values()}
    uneven = len(counts) > 1
    over = "each program's seeds (n: how many)" if uneven else f"{counts.pop()} seeds"
    lines = [f"Normalized score of the last 50 training episodes: mean over {over} "
             f"[95% bootstrap interval] ({scores['trainer']} trainer).",
             "", "| program | " + " | ".join(env_ids) + " |",
             "|---|" + "---|" * len(env_ids)]
    for name in names:
        cells = []
        for env in env_ids:
            row = scores["envs"][env]["programs"][name]
            bad = sum(s != "ok" for s in row["status"])
            notes = ([f"{bad} failed"] if bad else []) + (
                [f"n={len(row['per_seed'])}"] if uneven else [])
            note = f" ({', '.join(notes)})" if notes else ""
            cells.append(f"{row['mean']:.3f} [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]{note}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _plot(env_id: str, curves: Mapping[str, list[list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, per_seed in curves.items():
        n = min((len(c) for c in per_seed), default=0)
        if n == 0:
            continue
        arr = np.array([c[:n] for c in per_seed])
        k = max(1, min(10, n // 5))
        smooth = np.array([np.convolve(c, np.ones(k) / k, mode="valid") for c in arr])
        x = np.arange(smooth.shape[1]) + k
        mean, sd = smooth.mean(0), smooth.std(0)
        ax.plot(x, mean, label=name)
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    ax.set_title(f"{env_id}: mean ± sd over seeds")
    ax.set_xlabel("episode")
    ax.set_ylabel(f"return ({10}-episode mean)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
