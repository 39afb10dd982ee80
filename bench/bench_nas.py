"""Architecture-search benchmarks on NAS-Bench-201 (issue 5, section 5).

Three measurements; results go to ``results/nas/`` (JSON with the command that made
them, and PNG plots):

* **Search curves** (``curves``) on CIFAR-10, CIFAR-100 and ImageNet16-120, following
  the NATS-Bench protocol: every run searches on the 12-epoch validation accuracy
  (``evo.nas.nb201_table``) and, after ``n`` evaluations, picks the architecture with the
  best validation accuracy seen so far; we report the 200-epoch test accuracy of that
  pick (mean and interquartile range over 100 runs) after 100, 300 and 1000
  evaluations. Algorithms: regularized evolution (P = 10, T = 3 as in NATS-Bench,
  mutation = one edge changes op), random search (uniform draws) and LayerNAS (edges
  as layers, cost = MACs, no target; the default H = 8 buckets and cheapest base,
  and, for run-to-run diversity, a per-seed random edge order; equivalent cells, by
  NB201Space's fingerprint, are proposed once). **Counting**: an
  evaluation is one proposal, duplicates included (as NATS-Bench's time budget
  counts every trained child, and as ``evo run`` counts trials); LayerNAS never
  proposes an architecture it has scored, RE and random search may. The number of
  distinct architectures per run is reported too.
* **Latency-constrained search** (``latency``): best CIFAR-10 accuracy under an Edge
  TPU latency target, with the cost of an architecture given by (a) the latency
  simulator (``evo.nas.latency``, ``edgetpu`` preset) or (b) MACs ("FLOPs") mapped to ms by
  a least-squares line fitted on the measured latencies. Both are checked against
  the MEASURED Edge TPU latencies of 870 architectures
  (``../shared/data/latency/nb201_edgetpu_calibration.csv``, HW-NAS-Bench), in three
  ways: (1) the best-by-validation architecture among the 870 that each proxy says
  meets the target (what an exhaustive proxy-constrained search picks) and whether
  its measured latency really meets it; (2) LayerNAS restricted to the 870 (cost =
  infinity elsewhere), 100 seeds per target and proxy: how often the pick really
  meets the target, its accuracy; (3) LayerNAS over the whole space with each proxy
  (measured latency reported when the pick is one of the 870).
* **Throughput** (``throughput``): NB201 evaluations per second through the full
  engine (``evo.search.loop.Search``, a ``RunStore`` on disk and the local worker pool,
  tabular evaluator) per algorithm.

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_nas.py [--only curves
latency throughput] [--runs 100] [--evals 1000]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from fidelity import kendall_tau  # noqa: E402

from evo.algorithms.base import SearchAlgorithm  # noqa: E402
from evo.algorithms.evolution import RegularizedEvolution  # noqa: E402
from evo.algorithms.layernas import LayerNAS, run_offline  # noqa: E402
from evo.algorithms.random_search import RandomSearch  # noqa: E402
from evo.errors import ConfigError  # noqa: E402
from evo.nas.nb201_table import DATASETS, NB201Table  # noqa: E402
from graphs.arch import nb201  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "nas"
CALIBRATION = ROOT.parent / "shared" / "data" / "latency" / "nb201_edgetpu_calibration.csv"
CHECKPOINTS = (100, 300, 1000)
ALGORITHMS = ("regularized_evolution", "random", "layernas", "layernas_random_order")
LABELS = {"regularized_evolution": "RE (P=10, T=3)", "random": "random search",
          "layernas": "LayerNAS (H=8)", "layernas_random_order": "LayerNAS, random edge order"}


# -- shared helpers ----------------------------------------------------------------------------
def all_codes() -> list[tuple[int, ...]]:
    """Every NB201 code, by NB201 index."""
    return [nb201.from_index(i) for i in range(nb201.N_ARCHS)]


def macs_by_index(dataset: str) -> np.ndarray:
    return np.array([sum(layer.macs for layer in nb201.network_layers(code, dataset))
                     for code in all_codes()], dtype=np.float64)


class Indexed:
    """Maps a program of the space to its NB201 index (memoized per program object)."""

    def __init__(self, space) -> None:
        self.space = space
        self._memo: dict[int, tuple[object, int]] = {}

    def __call__(self, program) -> int:
        key = id(program)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is program:
            return hit[1]
        index = nb201.to_index(self.space.encode(program))
        self._memo[key] = (program, index)
        return index


def make_algorithm(name: str, space, seed: int, cost: Callable | None) -> SearchAlgorithm:
    if name == "regularized_evolution":
        return RegularizedEvolution(population_size=10, tournament_size=3, space=space,
                                    seed=seed)
    if name == "random":
        return RandomSearch(space, seed=seed)
    if name == "layernas":
        return LayerNAS(space, cost=cost, seed=seed)
    if name == "layernas_random_order":
        return LayerNAS(space, cost=cost, order="random", seed=seed)
    raise ValueError(name)


def running_pick(val: np.ndarray) -> np.ndarray:
    """Index of the best-by-validation entry among the first n + 1, for every n."""
    picks = np.empty(len(val), dtype=np.int64)
    cur = 0
    for i, v in enumerate(val):
        if v > val[cur]:
            cur = i
        picks[i] = cur
    return picks


def summary(values: np.ndarray) -> dict:
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return {"mean": round(float(values.mean()), 3), "q25": round(float(q25), 3),
            "median": round(float(q50), 3), "q75": round(float(q75), 3),
            "std": round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 3)}


def bootstrap_diff(a: np.ndarray, b: np.ndarray, reps: int = 10_000, seed: int = 0) -> dict:
    """Mean(a) - mean(b) with a 95% bootstrap interval and P(bootstrap diff <= 0)."""
    rng = np.random.default_rng(seed)
    da = a[rng.integers(0, len(a), (reps, len(a)))].mean(1)
    db = b[rng.integers(0, len(b), (reps, len(b)))].mean(1)
    d = da - db
    return {"diff": round(float(a.mean() - b.mean()), 3),
            "ci95": [round(float(np.percentile(d, 2.5)), 3),
                     round(float(np.percentile(d, 97.5)), 3)],
            "p_le_0": float((d <= 0).mean())}


class CellSpace(nb201.NB201Space):
    """NB201Space with cell-level programs (``to_program(level="cell")``).

    The decisions, sampling, mutation (NATS-Bench's) and fingerprints are NB201Space's;
    only the program is the cell instead of the whole macro network, which is ~50x
    cheaper to build (2 ms per network program would dominate table lookups).
    """

    def encode(self, program) -> tuple[int, ...]:
        return nb201.from_program(program)

    def decode(self, code) -> object:
        return nb201.to_program(code, self.dataset, level="cell")


class MeasuredSpace(CellSpace):
    """CellSpace whose random draws are uniform over a given set of NB201 indices."""

    def __init__(self, indices: np.ndarray, dataset: str = "cifar10") -> None:
        super().__init__(dataset=dataset)
        self.codes = [nb201.from_index(int(i)) for i in indices]

    def sample(self, rng) -> object:
        return self.decode(rng.choice(self.codes))


def nb201_space(dataset: str = "cifar10") -> CellSpace:
    return CellSpace(dataset=dataset)


# -- 1. search curves --------------------------------------------------------------------------
def curves(runs: int, evals: int, datasets: tuple[str, ...], plots: bool = True) -> dict:
    table = NB201Table.load()
    out: dict = {"runs": runs, "evals": evals, "checkpoints": [c for c in CHECKPOINTS
                                                               if c <= evals],
                 "datasets": {}}
    for ds in datasets:
        space = nb201_space(ds)
        index = Indexed(space)
        val, test = table.val12_all(ds), table.test200_all(ds)
        macs = macs_by_index(ds)

        def cost(program, macs=macs, index=index) -> float:
            return float(macs[index(program)])

        def score(program, val=val, index=index) -> float:
            return float(val[index(program)])

        res: dict = {"best_test200": table.best_test200(ds), "algorithms": {}}
        grid = np.unique(np.r_[np.arange(10, evals + 1, 10), out["checkpoints"]])
        for name in ALGORITHMS:
            t0 = time.perf_counter()
            picked = np.empty((runs, evals))
            distinct = []
            short = 0
            for seed in range(runs):
                trials = run_offline(make_algorithm(name, space, seed, cost), score, evals)
                ids = np.array([index(c.program) for c, _ in trials])
                distinct.append(len(set(ids.tolist())))
                if len(ids) < evals:  # the algorithm stopped early: its pick stays
                    short += 1
                    ids = np.r_[ids, np.full(evals - len(ids), ids[running_pick(val[ids])[-1]])]
                picked[seed] = test[ids[running_pick(val[ids])]]
            secs = time.perf_counter() - t0
            curve = {"n": grid.tolist(),
                     "mean": picked[:, grid - 1].mean(0).round(3).tolist(),
                     "q25": np.percentile(picked[:, grid - 1], 25, axis=0).round(3).tolist(),
                     "q75": np.percentile(picked[:, grid - 1], 75, axis=0).round(3).tolist()}
            res["algorithms"][name] = {
                "label": LABELS[name],
                "at": {str(c): summary(picked[:, c - 1]) for c in out["checkpoints"]},
                "distinct_archs_mean": round(float(np.mean(distinct)), 1),
                "runs_stopped_early": short,
                "seconds": round(secs, 2),
                "proposals_per_second": round(runs * evals / secs),
                "curve": curve,
                "_final": picked,
            }
            at = res["algorithms"][name]["at"]
            print(f"  {ds:15s} {name:24s} " + "  ".join(
                f"@{c}: {at[str(c)]['mean']:.2f} [{at[str(c)]['q25']:.2f}, "
                f"{at[str(c)]['q75']:.2f}]" for c in out["checkpoints"])
                + f"  distinct {np.mean(distinct):.0f}  ({secs:.1f}s)", flush=True)
        algos = res["algorithms"]
        res["re_vs_random"] = {
            str(c): bootstrap_diff(algos["regularized_evolution"]["_final"][:, c - 1],
                                   algos["random"]["_final"][:, c - 1])
            for c in out["checkpoints"]}
        res["re_beats_random"] = {c: v["diff"] > 0 and v["ci95"][0] > 0
                                  for c, v in res["re_vs_random"].items()}
        for a in algos.values():
            del a["_final"]
        out["datasets"][ds] = res
        if plots:
            plot_curves(ds, res, runs, OUT / f"curves_{ds}.png")
    return out


def plot_curves(dataset: str, res: dict, runs: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for a in res["algorithms"].values():
        c = a["curve"]
        line, = ax.plot(c["n"], c["mean"], label=a["label"])
        ax.fill_between(c["n"], c["q25"], c["q75"], color=line.get_color(), alpha=0.18)
    ax.axhline(res["best_test200"], color="k", lw=0.8, ls=":", label="best in space")
    ax.set_xscale("log")
    ax.set_xlabel("evaluations (proposals, duplicates included)")
    ax.set_ylabel("200-epoch test accuracy of the pick (%)")
    ax.set_title(f"NB201 {dataset}: pick by 12-epoch val, mean and IQR over {runs} runs")
    lo = min(min(a["curve"]["q25"][len(a["curve"]["q25"]) // 10:])
             for a in res["algorithms"].values())
    ax.set_ylim(lo - 0.5, res["best_test200"] + 0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- 2. latency-constrained search -------------------------------------------------------------
def read_calibration() -> tuple[np.ndarray, np.ndarray]:
    """(NB201 indices, measured Edge TPU ms) of the calibration set; checks the strings."""
    idx, ms = [], []
    with CALIBRATION.open() as f:
        for row in csv.DictReader(f):
            i = int(row["nb201_index"])
            if nb201.to_index(row["arch_str"]) != i:
                raise SystemExit(f"{CALIBRATION}: arch_str and nb201_index disagree at {i}")
            idx.append(i)
            ms.append(float(row["latency_ms"]))
    return np.array(idx), np.array(ms)


def latency(runs: int, budget: int) -> dict:
    from evo.nas.hardware import preset
    from evo.nas.latency import latency_ms, nb201_layers

    if not CALIBRATION.exists():
        print(f"  skipped: {CALIBRATION} is missing")
        return {"skipped": f"{CALIBRATION} missing"}
    table = NB201Table.load()
    val, test = table.val12_all("cifar10"), table.test200_all("cifar10")
    idx, measured = read_calibration()
    hw = preset("edgetpu")
    t0 = time.perf_counter()
    sim = np.array([latency_ms(nb201_layers(code, "cifar10"), hw) for code in all_codes()])
    sim_secs = time.perf_counter() - t0
    macs = macs_by_index("cifar10")
    slope, intercept = np.polyfit(macs[idx], measured, 1)
    flops_ms = intercept + slope * macs  # MACs as a latency proxy, in ms (least squares)
    proxies = {"simulator": sim, "flops": flops_ms}
    out: dict = {
        "n_measured": len(idx),
        "simulator_seconds_all_15625": round(sim_secs, 2),
        "flops_fit_ms": {"intercept": round(float(intercept), 4),
                         "per_mmac": round(float(slope * 1e6), 5)},
        "kendall_tau_vs_measured": {
            "simulator": round(kendall_tau(sim[idx], measured), 3),
            "flops": round(kendall_tau(macs[idx], measured), 3)},
        "targets": {},
    }
    print(f"  tau vs measured: {out['kendall_tau_vs_measured']}", flush=True)
    measured_of = dict(zip(idx.tolist(), measured.tolist()))
    in_set = np.zeros(nb201.N_ARCHS, dtype=bool)
    in_set[idx] = True
    space = nb201_space("cifar10")
    # Restricted runs: cost infinity outside the measured set, draws (base, restarts) in it.
    measured_space = MeasuredSpace(idx, "cifar10")
    index = Indexed(space)

    def score(program) -> float:
        return float(val[index(program)])

    for q in (10, 25, 50, 75):
        target = float(np.percentile(measured, q))
        res: dict = {"quantile": q, "target_ms": round(target, 4)}
        ok = measured <= target
        oracle = idx[ok][np.argmax(val[idx[ok]])]
        res["oracle"] = {"index": int(oracle), "measured_ms": round(measured_of[int(oracle)], 4),
                         "test200": float(test[oracle])}
        for name, proxy in proxies.items():
            says = proxy[idx] <= target
            pick = idx[says][np.argmax(val[idx[says]])] if says.any() else None
            entry: dict = {
                # Of the measured archs the proxy calls feasible, how many really are.
                "precision": round(float((says & ok).sum() / says.sum()), 3)
                if says.any() else None,
                "recall": round(float((says & ok).sum() / max(1, ok.sum())), 3),
                "exhaustive_pick": None if pick is None else {
                    "index": int(pick), "measured_ms": round(measured_of[int(pick)], 4),
                    "meets_target": bool(measured_of[int(pick)] <= target),
                    "test200": float(test[pick])},
            }

            def restricted(program, proxy=proxy) -> float:
                i = index(program)
                return float(proxy[i]) if in_set[i] else float("inf")

            entry["layernas_on_measured"] = None
            if says.any():  # else no measured arch meets the target by this proxy
                meets, accs, lat = [], [], []
                for seed in range(runs):
                    algo = LayerNAS(measured_space, cost=restricted, target=target,
                                    base="random", order="random", seed=seed)
                    trials = run_offline(algo, score, budget)
                    i = index(max(trials, key=lambda t: t[1])[0].program)
                    meets.append(measured_of[i] <= target)
                    accs.append(float(test[i]))
                    lat.append(measured_of[i])
                entry["layernas_on_measured"] = {
                    "runs": runs, "budget": budget,
                    "meets_target_rate": round(float(np.mean(meets)), 3),
                    "test200": summary(np.array(accs)),
                    "measured_ms": summary(np.array(lat))}

            def full(program, proxy=proxy) -> float:
                return float(proxy[index(program)])

            try:
                algo = LayerNAS(space, cost=full, target=target)
                trials = run_offline(algo, score, budget)
            except ConfigError as err:  # e.g. the proxy puts every arch over the target
                entry["layernas_full_space"] = {"error": str(err)}
            else:
                i = index(max(trials, key=lambda t: t[1])[0].program)
                entry["layernas_full_space"] = {
                    "budget": budget, "index": i,
                    "arch": nb201.arch_string(nb201.from_index(i)),
                    "proxy_ms": round(float(proxy[i]), 4),
                    "simulated_ms": round(float(sim[i]), 4),
                    "measured_ms": measured_of.get(i), "test200": float(test[i])}
            res[name] = entry
            pick, lm = entry["exhaustive_pick"], entry["layernas_on_measured"]
            print(f"  target {target:.3f} ms (q{q}) {name:9s}: precision {entry['precision']}"
                  + (f" exhaustive pick meets={pick['meets_target']} acc {pick['test200']:.2f}"
                     if pick else " no measured arch meets the target by this proxy")
                  + f" (oracle {res['oracle']['test200']:.2f})"
                  + (f"; LayerNAS on measured: meets {lm['meets_target_rate']:.2f}, acc "
                     f"{lm['test200']['mean']:.2f}" if lm else ""), flush=True)
        out["targets"][str(q)] = res
    plot_latency(idx, measured, sim, flops_ms, out, OUT / "latency.png")
    return out


def plot_latency(idx: np.ndarray, measured: np.ndarray, sim: np.ndarray, flops_ms: np.ndarray,
                 res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    tau = res["kendall_tau_vs_measured"]
    for ax, proxy, name in ((axes[0], sim, "simulator"), (axes[1], flops_ms, "flops")):
        ax.scatter(measured, proxy[idx], s=5, alpha=0.5)
        for t in res["targets"].values():
            ax.axvline(t["target_ms"], color="grey", lw=0.6, ls=":")
            ax.axhline(t["target_ms"], color="grey", lw=0.6, ls=":")
            pick = t[name]["exhaustive_pick"]
            if pick:
                ax.plot(pick["measured_ms"], proxy[pick["index"]], "r*", ms=10)
        lim = [min(measured.min(), proxy[idx].min()), max(measured.max(), proxy[idx].max())]
        ax.plot(lim, lim, "k-", lw=0.6)
        ax.set_xlabel("measured Edge TPU latency (ms)")
        ax.set_ylabel(f"{name} latency estimate (ms)")
        ax.set_title(f"{name}: Kendall tau {tau[name]:.2f} (870 archs)")
        ax.grid(alpha=0.3)
    fig.suptitle("targets dotted (a proxy admits points below the horizontal line, the device "
                 "meets it left of the vertical one); red stars: best-by-val pick among the 870 "
                 "under each target", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- 3. throughput through the full engine ----------------------------------------------------
ENGINE_ALGORITHMS = ("regularized_evolution", "random", "layernas", "pareto")


def throughput(trials: int, workers: tuple[int, ...], reps: int) -> dict:
    """Trials per second of ``evo run`` on NB201 (the nb201-quick preset: tabular
    CIFAR-10 accuracy + simulated Edge TPU latency), per algorithm and worker count."""
    import tempfile

    from evo.app.config import preset
    from evo.app.runner import run

    base = preset("nb201-quick")
    out: dict = {"trials": trials, "reps": reps, "preset": "nb201-quick",
                 "evaluator": "NB201 table (12-epoch CIFAR-10 val) + simulated Edge TPU "
                              "latency, reward = accuracy", "results": {}}
    for name in ENGINE_ALGORITHMS:
        for w in workers:
            rates, walls, dups = [], [], []
            for rep in range(reps):
                config = base.replace(**{"search.algorithm": name, "run.trials": trials,
                                         "run.seed": rep, "workers.workers": w})
                stamps: list[float] = []
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    p = run(config, Path(tmp) / "run.db",
                            progress=lambda _p, s=stamps: s.append(time.perf_counter()))
                    walls.append(time.perf_counter() - t0)
                # Steady-state rate: between the first and the last finished trial (the
                # wall time also counts building the evaluator and starting workers).
                rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
                dups.append(p.duplicates / max(1, p.trials))
            key = f"{name}/workers={w}"
            out["results"][key] = {
                "trials_per_second": round(float(np.median(rates)), 1),
                "trials_per_second_incl_startup": round(trials / float(np.median(walls)), 1),
                "wall_seconds": round(float(np.median(walls)), 2),
                "duplicate_rate": round(float(np.mean(dups)), 3),
                # Trials that ran the evaluator (duplicates reuse a cached result).
                "evaluations_per_second": round(float(np.median(rates))
                                                * (1 - float(np.mean(dups))), 1)}
            r = out["results"][key]
            print(f"  {key:32s} {r['trials_per_second']:8.1f} trials/s steady, "
                  f"{r['evaluations_per_second']:.1f} evaluations/s "
                  f"({r['trials_per_second_incl_startup']:.1f} incl. startup, "
                  f"duplicates {r['duplicate_rate']:.0%})", flush=True)
    return out


# -- main --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("curves", "latency", "throughput"), nargs="*")
    parser.add_argument("--runs", type=int, default=100, help="runs per algorithm")
    parser.add_argument("--evals", type=int, default=1000, help="evaluations per run")
    parser.add_argument("--latency-budget", type=int, default=300,
                        help="evaluations per latency-constrained LayerNAS run")
    parser.add_argument("--engine-trials", type=int, default=1000,
                        help="trials per engine run (throughput)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--reps", type=int, default=3, help="engine runs per setting")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    globals()["OUT"] = out_dir
    only = set(args.only or ("curves", "latency", "throughput"))
    meta = {"command": " ".join(["python"] + sys.argv),
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count()}
    print(f"command: {meta['command']}", flush=True)
    if "curves" in only:
        t0 = time.time()
        res = curves(args.runs, args.evals, tuple(args.datasets))
        res.update(meta, seconds=round(time.time() - t0, 1))
        (out_dir / "curves.json").write_text(json.dumps(res, indent=1) + "\n")
    if "latency" in only:
        t0 = time.time()
        res = latency(args.runs, args.latency_budget)
        res.update(meta, seconds=round(time.time() - t0, 1))
        (out_dir / "latency.json").write_text(json.dumps(res, indent=1) + "\n")
    if "throughput" in only:
        t0 = time.time()
        res = throughput(args.engine_trials, tuple(args.workers), args.reps)
        res.update(meta, seconds=round(time.time() - t0, 1))
        (out_dir / "throughput.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
