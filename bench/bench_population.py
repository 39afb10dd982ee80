"""Benchmarks for the population trainer (issue: train a generation at once).

Sections (each writes results/bench/population_<section>.json; one core pinned,
``BENCH_CORE`` picks it, one BLAS/XLA thread):
  memory     bytes per agent (networks, Adam, replay buffer) for CartPole and MiniGrid
  flops      numpy's FLOP/s on this core for the network's own matmul shapes and for a
             large 1024x1024x1024 matmul (the core's peak), and
             the agent-steps/s that bound implies for a DQN update at 64-64 and 256-256;
             the same under the trainer's XLA flags (no FMA), 32 agents per call
  speed      agent-steps/s summed over agents, DQN on CartPole: the population
             trainer in both loss modes (interpreted, traced) at K = 1, 8, 32, 128
             (64-64) and K = 8, 32 (256-256) against the numpy lockstep trainer
             (evo.rl.dqn) in the same run, alternating, median of 3; compile time
             reported separately (JAX's tracing and compiling seconds during the
             first call; later K reuse the 8-agent groups compiled before; ~15 min)
  widths     where a traced agent-step's time goes: the trainer at 8-8 .. 128-128
             (K = 8, 32) beside numpy's and XLA's matmuls alone for the same shapes
             (~3 min)
  candidate  CPU-seconds per candidate: a batch of 32 mixed candidates (DQN, DQNReg,
             30 random programs) on the CartPole hurdle, at the discovery preset's
             budget and agent (10k steps, 64-64; peer: the numpy trainer on the same
             32 programs, one after another) and at the full hurdle (400 episodes),
             interpreted and traced, and a batch of 32 from-scratch draws at the full
             hurdle in both modes (compilation included; ~10 min with EVO_JAX_CACHE=off);
             and the issue's baseline in the same run: the numpy trainer's CPU-seconds
             for one full hurdle evaluation of DQN at 256-256 (median of 3 seeds), with
             each figure's ratio to it (~16 min)
  candidate256  the same at the full hurdle with the paper's 256-256 agent, both loss
             modes (~18 min)
  quality    learning quality with the new trainer at the paper's agent (256-256, 400
             CartPole episodes): DQN (10 seeds), DDQN and DQNReg (5 seeds), known-bad
             losses (2 seeds); the numpy trainer on the same programs and seeds;
             learning curves side by side in population_quality.png
             (BENCH_QUALITY_NUMPY_FROM=earlier.json reuses an earlier run's numpy
             results once its DQN seed 0 re-trains identically: the numpy half does
             not depend on XLA and takes half the section's ~70 min)
  host       MiniGrid (no compiled port, stepped on the host): ms per lockstep step of
             32 DQN agents on LavaGapS5, population trainer (3k and 30k replay
             buffer) against the numpy trainer, and MiniGrid's own step with
             MiniGridFlatObs against minigrid's FullyObsWrapper (~6 min; each
             trainer figure is one run, not a median; the env steps a median of 3)
  fma        the cost of batch independence: agent-steps/s compiled without fused
             multiply-add (the default, evo/rl/xla_flags.py) against with it
             (EVO_XLA_FMA=on), fresh processes alternating, median of 3 (~10 min)
  minigrid_port  MiniGrid-Empty-5x5 and LavaGapS5 through their compiled navix ports
             against the host, 32 DQN agents (64-64), agent-steps/s, alternating,
             median of 3 (~6 min per env)
  groups     every compiled call over one group of 8 agents (the default) against one
             call over the whole batch: CartPole DQN, 64-64 K=32 and 128, 256-256 K=32,
             alternating, median of 3 (~10 min)
  modes      what each loss mode costs a search: wall seconds for a batch of 16 new
             DQN-seeded programs at the presets' budgets (CartPole 10k, Acrobot 20k,
             MiniGrid-Empty-5x5 30k steps) and CartPole 5k, compilation included,
             median of 2 (~14 min)
  compile_options  traced trainers' quick XLA options against XLA's defaults: compile
             seconds saved, steps/s lost, the same for the interpreter; fresh processes,
             alternating, median of 3 (~15 min)
  compile    the share of evaluation time spent tracing and compiling in a real search:
             `evo run --preset from-scratch` for 12 minutes with an empty compilation
             cache, then the same run again with the cache the first one filled (what
             a user's re-run of the same seed sees: its programs' traced trainers are
             cached; a new seed compiles its new programs); read from each store's
             recorded compile seconds (~25 min)
  search_modes  what the loss mode does to a search: `evo run --preset from-scratch`
             for 12 minutes on one worker with loss_mode "interpret", then with the
             default "auto"; candidates evaluated per minute, compile share (~26 min)
  compile_dqn_seeded  the same for `evo run --preset dqn-seeded`, 15 minutes per run
             (its MiniGrid stages trace every batch of new programs; ~32 min)

Run: ``python bench/bench_population.py flops speed candidate quality``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_rl import bad_losses  # noqa: E402

import envs  # noqa: E402
from evo.rl.dqn import DQNConfig, train  # noqa: E402
from evo.rl.population import compile_seconds, train_population  # noqa: E402
from evo.rl.xla_flags import QUICK_COMPILE  # noqa: E402
from graphs.rl_loss.generation import from_scratch, seeded_program  # noqa: E402
from graphs.rl_loss.library import builtin  # noqa: E402

OUT = ROOT / "results" / "bench"
CARTPOLE = envs.get("CartPole")
OBS, ACTIONS, BATCH = 4, 2, 32
SMALL = DQNConfig(hidden=(64, 64), learning_rate=1e-3, learning_starts=500)  # discovery
PAPER = DQNConfig()  # 256-256, the paper's agent


def _cpu_model() -> str:
    """The CPU's model name (XLA's kernels, and so the last bits of results, can differ
    between machines; the sessions' VMs have not all been the same)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


def pin() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = int(os.environ.get("BENCH_CORE", sorted(os.sched_getaffinity(0))[0]))
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "not pinned"


def macs(hidden: tuple[int, ...]) -> int:
    sizes = (OBS, *hidden, ACTIONS)
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def flops_per_step(hidden: tuple[int, ...]) -> float:
    """FLOPs of one DQN agent-step: act (1 sample) and one update on a batch of 32:
    Q(s) forward and backward (backward ≈ 2 forwards), Q_targ(s') forward."""
    return 2.0 * macs(hidden) * (1 + BATCH * (1 + 2 + 1))


def _flop_rate(call, flops: float, seconds: float) -> float:
    """FLOP/s of ``call`` (``flops`` each): median over 5 windows of ``seconds / 5``."""
    rates = []
    for _ in range(5):
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 5:
            call()
            reps += 1
        rates.append(flops * reps / (time.perf_counter() - t0))
    return statistics.median(rates)


def matmul_flops(m: int, k: int, n: int, seconds: float = 0.5) -> float:
    a = np.random.default_rng(0).standard_normal((m, k)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((k, n)).astype(np.float32)
    return _flop_rate(lambda: a @ b, 2.0 * m * k * n, seconds)


def jax_matmul_flops(agents: int, m: int, k: int, n: int, seconds: float = 0.5) -> float:
    """FLOP/s of a compiled matmul per agent (``agents`` independent (m,k)x(k,n)
    products in one call, as the trainer's vmapped networks run them), under this
    process's XLA flags: evo.rl compiles without FMA (evo/rl/xla_flags.py)."""
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).standard_normal((agents, m, k)), jnp.float32)
    b = jnp.asarray(np.random.default_rng(1).standard_normal((agents, k, n)), jnp.float32)
    f = jax.jit(lambda a, b: jnp.einsum("amk,akn->amn", a, b))
    f(a, b).block_until_ready()
    return _flop_rate(lambda: f(a, b).block_until_ready(), 2.0 * agents * m * k * n, seconds)


def _limit(hidden: tuple[int, ...], rates: dict, label: str) -> float:
    """Agent-steps/s if every matmul of an agent-step ran at the FLOP/s measured for
    its (BATCH, a) x (a, b) shape, ``rates[label.format(a=a, b=b)]``."""
    sizes = (OBS, *hidden, ACTIONS)
    return 1.0 / sum(2.0 * BATCH * a * b * 4 / rates[label.format(a=a, b=b)]
                     for a, b in zip(sizes[:-1], sizes[1:]))


def section_flops() -> dict:
    # The core's own ceiling: numpy's float32 matmul on large square matrices, where
    # BLAS is closest to the core's peak; the agent-steps/s it would allow if every
    # FLOP of an agent-step ran at that rate (no small-shape overhead, nothing else).
    peak = matmul_flops(1024, 1024, 1024, seconds=2.0)
    out: dict = {"core_peak_flops_per_s": peak, "core_peak_shape": "1024x1024x1024"}
    for hidden in ((64, 64), (256, 256)):
        h = hidden[0]
        shapes = {f"{BATCH}x{OBS}x{h}": (BATCH, OBS, h), f"{BATCH}x{h}x{h}": (BATCH, h, h),
                  f"{BATCH}x{h}x{ACTIONS}": (BATCH, h, ACTIONS)}
        rates = {name: matmul_flops(*s) for name, s in shapes.items()}
        out[f"{h}-{h}"] = {
            "numpy_flops_per_s": rates,
            "flops_per_agent_step": flops_per_step(hidden),
            "limit_agent_steps_per_s": _limit(hidden, rates, f"{BATCH}x{{a}}x{{b}}"),
            "core_peak_agent_steps_per_s": peak / flops_per_step(hidden),
        }
    # The ceiling under the trainer's own constraint: XLA without FMA (batch
    # independence), the same shapes for 32 agents in one call, and the large matmul.
    jax_peak = jax_matmul_flops(1, 1024, 1024, 1024, seconds=2.0)
    out["xla_no_fma_peak_flops_per_s"] = jax_peak
    for hidden in ((64, 64), (256, 256)):
        h = hidden[0]
        sizes = (OBS, *hidden, ACTIONS)
        rates = {f"32 agents x {BATCH}x{a}x{b}": jax_matmul_flops(32, BATCH, a, b)
                 for a, b in zip(sizes[:-1], sizes[1:])}
        out[f"{h}-{h}"]["xla_no_fma_flops_per_s"] = rates
        out[f"{h}-{h}"]["xla_no_fma_limit_agent_steps_per_s"] = _limit(
            hidden, rates, f"32 agents x {BATCH}x{{a}}x{{b}}")
        out[f"{h}-{h}"]["xla_no_fma_peak_agent_steps_per_s"] = jax_peak / flops_per_step(hidden)
    return out


def section_widths(reps: int = 3) -> dict:
    """Where a traced DQN agent-step's time goes: the traced trainer on CartPole at
    widths 8-8 to 128-128 (K = 8 and 32, 5k steps, median of ``reps``), next to the
    time its matmuls would take at numpy's and at XLA's (no FMA, 32 agents per call)
    measured rates for those shapes. What stays as the width falls is the per-step work
    outside the matmuls (environment, replay, Adam, acting, the loop)."""
    out: dict = {"reps": reps, "steps_per_agent": 5000, "widths": {}}
    for h in (8, 16, 32, 64, 128):
        hidden = (h, h)
        config = dataclasses.replace(SMALL, hidden=hidden)
        sizes = (OBS, *hidden, ACTIONS)
        shapes = sorted({(a, b) for a, b in zip(sizes[:-1], sizes[1:])})
        numpy_rates = {f"{a}x{b}": matmul_flops(BATCH, a, b) for a, b in shapes}
        xla_rates = {f"{a}x{b}": jax_matmul_flops(32, BATCH, a, b) for a, b in shapes}
        entry: dict = {"flops_per_agent_step": flops_per_step(hidden),
                       "numpy_matmul_us_per_agent_step":
                           1e6 / _limit(hidden, numpy_rates, "{a}x{b}"),
                       "xla_matmul_us_per_agent_step":
                           1e6 / _limit(hidden, xla_rates, "{a}x{b}")}
        for k in (8, 32):
            _population_rate(k, config, 5000, 99, "trace")  # compile
            rates = [_population_rate(k, config, 5000, r, "trace")[0] for r in range(reps)]
            rate = statistics.median(rates)
            entry[f"K={k}"] = {"agent_steps_per_s": rate, "reps": rates,
                               "us_per_agent_step": 1e6 / rate}
        out["widths"][f"{h}-{h}"] = entry
        print(f"  {h}-{h}: {json.dumps(entry)}", flush=True)
    return out


def _programs(k: int) -> list:
    mixed = [builtin("dqn"), builtin("dqnreg")]
    s = 0
    while len(mixed) < k:
        mixed.append(from_scratch(7, seed=s) if s % 2 else seeded_program("dqn", 3, seed=s))
        s += 1
    return mixed[:k]


def _population_rate(k: int, config: DQNConfig, steps: int, rep: int,
                     loss_mode: str = "auto") -> tuple[float, float]:
    t0 = time.perf_counter()
    runs = train_population([builtin("dqn")] * k, CARTPOLE, [rep * 1000 + i for i in range(k)],
                            config, envs.Budget(steps=steps), loss_mode=loss_mode)
    seconds = time.perf_counter() - t0
    return sum(r.steps for r in runs) / seconds, seconds


def _numpy_rate(k: int, config: DQNConfig, steps: int, rep: int) -> float:
    t0 = time.perf_counter()
    runs = train(builtin("dqn"), CARTPOLE, [rep * 1000 + i for i in range(k)], config,
                 envs.Budget(steps=steps))
    return sum(r.steps for r in runs) / (time.perf_counter() - t0)


LOSS_MODES = ("interpret", "trace")


def section_speed(reps: int = 3) -> dict:
    """Both loss modes of the population trainer (the interpreter: one compiled trainer
    for any programs; traced: the group's programs written into its compiled call) and
    the numpy lockstep trainer, alternating within each repetition."""
    out: dict = {"reps": reps}
    plans = [("64-64", SMALL, 5000, (1, 8, 32, 128), (1, 8)),
             ("256-256", PAPER, 3000, (8, 32), (8,))]
    limits = section_flops()
    for label, config, steps, ks, numpy_ks in plans:
        res: dict = {"steps_per_agent": steps,
                     "flop_limit_agent_steps_per_s": limits[label]["limit_agent_steps_per_s"],
                     "core_peak_agent_steps_per_s": limits[label][
                         "core_peak_agent_steps_per_s"],
                     "core_peak_flops_per_s": limits["core_peak_flops_per_s"]}
        for k in ks:
            entry: dict = {}
            rates: dict = {mode: [] for mode in LOSS_MODES}
            warm: dict = {mode: [] for mode in LOSS_MODES}
            first: dict = {}  # the first call's tracing and compiling, as JAX reports it
            for mode in LOSS_MODES:  # (later K reuse the groups compiled before)
                compile0 = compile_seconds()
                _population_rate(k, config, steps, 99, mode)
                first[mode] = compile_seconds() - compile0
            numpy_rates: list[float] = []
            for r in range(reps):
                if k in numpy_ks:
                    numpy_rates.append(_numpy_rate(k, config, steps, r))
                for mode in LOSS_MODES:
                    rate, seconds = _population_rate(k, config, steps, r, mode)
                    rates[mode].append(rate)
                    warm[mode].append(seconds)
            for mode in LOSS_MODES:
                e = {"agent_steps_per_s": statistics.median(rates[mode]), "reps": rates[mode],
                     "compile_seconds": first[mode],
                     "warm_call_seconds": statistics.median(warm[mode])}
                e["share_of_flop_limit"] = e["agent_steps_per_s"] / res[
                    "flop_limit_agent_steps_per_s"]
                if numpy_rates:
                    e["ratio_vs_numpy_same_k"] = e["agent_steps_per_s"] / statistics.median(
                        numpy_rates)
                entry[mode] = e
            entry["trace_over_interpret"] = (entry["trace"]["agent_steps_per_s"]
                                             / entry["interpret"]["agent_steps_per_s"])
            if numpy_rates:
                entry["numpy_lockstep_agent_steps_per_s"] = statistics.median(numpy_rates)
                entry["numpy_reps"] = numpy_rates
            res[f"K={k}"] = entry
            print(f"  {label} K={k}: {json.dumps(entry)}", flush=True)
        best_numpy = max(v["numpy_lockstep_agent_steps_per_s"] for v in res.values()
                         if isinstance(v, dict) and "numpy_lockstep_agent_steps_per_s" in v)
        res["numpy_best_lockstep"] = best_numpy
        # what 5x the numpy trainer's best would ask of this core
        res["five_x_numpy_best_share_of_core_peak"] = (
            5 * best_numpy / res["core_peak_agent_steps_per_s"])
        for key, v in res.items():
            if key.startswith("K="):
                for mode in LOSS_MODES:
                    v[mode]["ratio_vs_numpy_best"] = v[mode]["agent_steps_per_s"] / best_numpy
        out[label] = res
    return out


def _scratch(k: int) -> list:
    """``k`` random from-scratch programs (skeleton + 7 nodes), as a search draws them."""
    return [from_scratch(7, seed=1000 + s) for s in range(k)]


def _batch_cpu(config: DQNConfig, budget: envs.Budget, loss_mode: str = "auto",
               programs: list | None = None) -> dict:
    mixed = programs is None
    programs = _programs(32) if mixed else programs
    wall0, cpu0, compile0 = time.perf_counter(), time.process_time(), compile_seconds()
    runs = train_population(programs, CARTPOLE, [0] * 32, config, budget, loss_mode=loss_mode)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    scores = [CARTPOLE.score(r.episode_returns) for r in runs]
    out = {"cpu_seconds_per_candidate": cpu / 32, "wall_seconds": wall, "cpu_seconds": cpu,
           "tracing_and_compiling_seconds": compile_seconds() - compile0,
           "agent_steps": sum(r.steps for r in runs),
           "statuses": {s: sum(r.status == s for r in runs) for s in {r.status for r in runs}}}
    if mixed:
        out.update(dqn_score=scores[0], dqnreg_score=scores[1],
                   random_median_score=statistics.median(scores[2:]))
    else:
        out.update(median_score=statistics.median(scores), max_score=max(scores))
    return out


def section_candidate(cases: tuple = ()) -> dict:
    """The discovery budget in the mode "auto" picks (interpreted), the full hurdle in
    both loss modes (compilation included: these programs are new to each)."""
    out = {}
    for label, config, budget, mode, *programs in cases or (
            ("discovery_64-64_10k_steps", SMALL, envs.Budget(steps=10_000), "auto"),
            ("hurdle_64-64_400_episodes", SMALL, envs.Budget(episodes=400), "interpret"),
            ("hurdle_64-64_400_episodes_traced", SMALL, envs.Budget(episodes=400), "trace"),
            # a from-scratch draw, where almost nothing learns: what tracing's
            # compilation costs when every agent stops after a few thousand steps
            ("scratch_64-64_400_episodes", SMALL, envs.Budget(episodes=400), "interpret",
             _scratch(32)),
            ("scratch_64-64_400_episodes_traced", SMALL, envs.Budget(episodes=400), "trace",
             _scratch(32))):
        programs = programs[0] if programs else None
        first = _batch_cpu(config, budget, mode, programs)  # includes the compilation
        warm = _batch_cpu(config, budget, mode, programs) if budget.steps else None
        entry = warm or first
        entry["first_call_wall_seconds"] = first["wall_seconds"]
        if warm:
            entry["compile_seconds"] = first["wall_seconds"] - warm["wall_seconds"]
            entry["compile_share_of_batch"] = entry["compile_seconds"] / warm["wall_seconds"]
        if budget.steps:  # the peer: the numpy trainer, one candidate after another
            cpu0 = time.process_time()
            peer = [train(p, CARTPOLE, [0], config, budget)[0] for p in _programs(32)]
            entry["numpy_cpu_seconds_per_candidate"] = (time.process_time() - cpu0) / 32
            entry["ratio_numpy_vs_population_cpu"] = (entry["numpy_cpu_seconds_per_candidate"]
                                                      / entry["cpu_seconds_per_candidate"])
            entry["numpy_dqn_score"] = CARTPOLE.score(peer[0].episode_returns)
        out[label] = entry
        print(f"  {label}: {json.dumps(entry)}", flush=True)
    out["today_numpy_256-256_dqn_seconds"] = 19.0  # issue 12's figure for the numpy trainer
    out["numpy_256-256_dqn_hurdle"] = peer = _numpy_hurdle_cpu(PAPER)
    for entry in out.values():  # the ratio, against that figure measured here
        if isinstance(entry, dict) and "cpu_seconds_per_candidate" in entry:
            entry["ratio_numpy256_dqn_vs_population_cpu"] = (
                peer["cpu_seconds"] / entry["cpu_seconds_per_candidate"])
    print(f"  numpy 256-256 DQN hurdle: {json.dumps(peer)}", flush=True)
    return out


def _numpy_hurdle_cpu(config: DQNConfig, seeds: int = 3) -> dict:
    """The issue's baseline measured in the same run: CPU-seconds of one full CartPole
    hurdle evaluation (400 episodes) of DQN with the numpy trainer, median over seeds."""
    cpu, scores = [], []
    for seed in range(seeds):
        cpu0 = time.process_time()
        run = train(builtin("dqn"), CARTPOLE, [seed], config, envs.Budget(episodes=400))[0]
        cpu.append(time.process_time() - cpu0)
        scores.append(CARTPOLE.score(run.episode_returns))
    return {"cpu_seconds": statistics.median(cpu), "reps": cpu, "scores": scores,
            "hidden": list(config.hidden)}


def section_candidate256() -> dict:
    return section_candidate((
        ("hurdle_256-256_400_episodes", PAPER, envs.Budget(episodes=400), "interpret"),
        ("hurdle_256-256_400_episodes_traced", PAPER, envs.Budget(episodes=400), "trace")))


def _curves(runs) -> list[list[float]]:
    return [list(map(float, r.episode_returns)) for r in runs]


def section_quality() -> dict:
    plan = [("dqn", builtin("dqn"), list(range(10))), ("ddqn", builtin("ddqn"), list(range(5))),
            ("dqnreg", builtin("dqnreg"), list(range(5)))]
    plan += [(name, prog, [0, 1]) for name, prog in bad_losses().items()]
    programs = [p for _, p, seeds in plan for _ in seeds]
    seeds = [s for _, _, ss in plan for s in ss]
    t0 = time.perf_counter()
    runs = train_population(programs, CARTPOLE, seeds, PAPER)
    pop_seconds = time.perf_counter() - t0
    out: dict = {"population_seconds": pop_seconds, "population": {}, "numpy": {}}
    i = 0
    for name, _, ss in plan:
        mine = runs[i:i + len(ss)]
        i += len(ss)
        last = [float(np.mean(r.episode_returns[-50:])) for r in mine]
        out["population"][name] = {"last50": last, "median": statistics.median(last),
                                   "seeds_reaching_195": sum(x >= 195 for x in last),
                                   "curves": _curves(mine)}
        print(f"  population {name}: {np.round(last, 1).tolist()}", flush=True)
    earlier = os.environ.get("BENCH_QUALITY_NUMPY_FROM")
    if earlier:
        out["numpy"] = _reused_numpy(Path(earlier), plan[0][1])
        out["numpy_reused_from"] = earlier
        _plot_quality(out)
        return out
    for name, prog, ss in plan[:3]:
        t0 = time.perf_counter()
        theirs = train(prog, CARTPOLE, ss, PAPER)
        last = [float(np.mean(r.episode_returns[-50:])) for r in theirs]
        out["numpy"][name] = {"last50": last, "median": statistics.median(last),
                              "seeds_reaching_195": sum(x >= 195 for x in last),
                              "curves": _curves(theirs), "seconds": time.perf_counter() - t0}
        print(f"  numpy {name}: {np.round(last, 1).tolist()}", flush=True)
    _plot_quality(out)
    return out


def _reused_numpy(path: Path, dqn) -> dict:
    """The numpy trainer's results from an earlier quality run (its 20 agents take
    about half the section's time and do not depend on XLA), after checking that
    today's code still trains its first DQN agent to the same returns, bit for bit."""
    try:
        numpy = json.loads(path.read_text())["numpy"]
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"BENCH_QUALITY_NUMPY_FROM={path}: not a quality section's JSON "
                         f"({err!r}); give results/bench/population_quality.json of an "
                         "earlier run, or unset it") from None
    again = _curves(train(dqn, CARTPOLE, [0], PAPER))[0]
    if again != numpy["dqn"]["curves"][0]:
        raise SystemExit(f"{path}: the numpy trainer no longer reproduces its DQN seed 0; "
                         "run the section without BENCH_QUALITY_NUMPY_FROM")
    print(f"  numpy: reused from {path} (DQN seed 0 re-trained: identical)", flush=True)
    return numpy


def _plot_quality(out: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["dqn", "ddqn", "dqnreg"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for ax, name in zip(axes, names):
        for trainer, color in (("numpy", "tab:blue"), ("population", "tab:orange")):
            curves = out[trainer][name]["curves"]
            n = min(len(c) for c in curves)
            arr = np.array([c[:n] for c in curves])
            kernel = np.ones(10) / 10
            smooth = np.array([np.convolve(c, kernel, mode="valid") for c in arr])
            x = np.arange(smooth.shape[1])
            ax.plot(x, np.median(smooth, 0), color=color, label=f"{trainer} (median)")
            ax.fill_between(x, smooth.min(0), smooth.max(0), color=color, alpha=0.2)
        ax.set_title(f"{name} on CartPole, 256-256, {len(out['numpy'][name]['curves'])} seeds")
        ax.set_xlabel("episode")
    axes[0].set_ylabel("return (10-episode mean)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(OUT / "population_quality.png", dpi=100)


def section_memory() -> dict:
    """Bytes one agent's state holds (networks, target, Adam, replay buffer, returns),
    from the trainer's own initializer (``jax.eval_shape``: nothing is allocated)."""
    from functools import partial

    import jax
    import jax.numpy as jnp

    from evo.rl import population as pop

    out = {}
    for env_id, config, steps in (("CartPole", SMALL, 10_000), ("CartPole", PAPER, 80_000),
                                  ("MiniGrid-Empty-5x5", PAPER, 100_000),
                                  ("MiniGrid-DoorKey-5x5", PAPER, 500_000),
                                  ("MiniGrid-MultiRoom-N2-S4", PAPER, 100_000)):
        spec = envs.get(env_id)
        setup = pop._Setup(config, pop._adam(config.learning_rate, config.adam_eps), None,
                           spec.obs_dim, spec.n_actions, min(config.buffer_size, steps),
                           100_000, steps, (True,) * 4, -1e-3, 16, spec.obs_scale)
        shapes = jax.eval_shape(partial(pop._init, setup), jnp.uint32(0),
                                jnp.zeros(spec.obs_dim), jnp.zeros(()))
        size = int(sum(np.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(shapes)))
        out[f"{env_id} {config.hidden} {steps} steps"] = {
            "obs_dim": spec.obs_dim, "replay_obs_bytes": 1 if spec.obs_scale else 4,
            "mib_per_agent": size / 2**20,
            "gib_for_64_agents": 64 * size / 2**30}
    return out


def _step_ms(trainer, k: int, config: DQNConfig, spec: envs.EnvSpec,
             step_limit: int | None = 3_001, time_limit: float | None = None) -> float | None:
    """Milliseconds per lockstep step of ``k`` DQN agents from step 1,000 on (after
    compilation and the start of learning), over a 30k-step budget cut short by
    ``step_limit`` or ``time_limit``."""
    marks: list[tuple[int, float]] = []
    loss = [builtin("dqn")] * k if trainer is train_population else builtin("dqn")
    trainer(loss, spec, list(range(k)), config, envs.Budget(steps=30_000), time_limit,
            on_progress=lambda t, n: marks.append((t, time.perf_counter())),
            step_limit=step_limit)
    if len(marks) < 2:
        return None
    (t1, a), (t2, b) = marks[0], marks[-1]
    return (b - a) / (t2 - t1) * 1000


def _env_step_us(make, steps: int = 3_000, reps: int = 3) -> float:
    times = []
    for _ in range(reps):
        env = make()
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for _ in range(steps):
            *_, terminated, truncated, _ = env.step(int(rng.integers(3)))
            if terminated or truncated:
                env.reset()
        times.append((time.perf_counter() - t0) / steps * 1e6)
        env.close()
    return statistics.median(times)


def section_host(k: int = 32) -> dict:
    """MiniGrid, stepped on the host: ms per lockstep step of K DQN agents (64-64,
    LavaGapS5) for the population trainer with a 3k and a 30k replay buffer and for
    the numpy trainer (the peer), and MiniGrid's own step with this project's
    observation wrapper against minigrid's FullyObsWrapper."""
    import gymnasium as gym
    from minigrid.wrappers import FullyObsWrapper

    spec = envs.get("MiniGrid-LavaGapS5")
    gym_id = spec.gym_id
    small = DQNConfig(hidden=(64, 64), learning_rate=1e-3, learning_starts=500,
                      epsilon_decay_steps=10_000, buffer_size=3_000)
    out: dict = {"env": spec.id, "agents": k}
    # a step limit also caps the replay buffer (at 3,001 transitions); the 30k buffer
    # needs the full 30k-step budget, so that run stops on a time limit instead
    out["population_ms_per_step_buffer_3k"] = _step_ms(train_population, k, small, spec)
    big = dataclasses.replace(small, buffer_size=30_000)
    out["population_ms_per_step_buffer_30k"] = _step_ms(train_population, k, big, spec,
                                                        step_limit=None, time_limit=300)
    out["numpy_ms_per_step"] = _step_ms(train, k, small, spec)
    out["ratio_numpy_vs_population"] = (out["numpy_ms_per_step"]
                                        / out["population_ms_per_step_buffer_3k"])
    out["env_step_us"] = {
        "MiniGridFlatObs (no partial view)": _env_step_us(
            lambda: envs.MiniGridFlatObs(gym.make(gym_id))),
        "minigrid FullyObsWrapper (peer)": _env_step_us(
            lambda: FullyObsWrapper(gym.make(gym_id)))}
    return out


GROUP_PLANS = (("64-64", SMALL, 32, 5000), ("64-64", SMALL, 128, 2000),
               ("256-256", PAPER, 32, 1500))


def section_groups(reps: int = 3) -> dict:
    """Agent-steps/s of DQN on CartPole with every compiled call over one group of 8
    agents (population.GROUP, the default: batch-independent rounding) against one
    call over the whole batch (GROUP = K), alternating, median of ``reps``, compile
    time excluded (a warm-up call first)."""
    from evo.rl import population

    default = population.GROUP
    out: dict = {"reps": reps, "plans": {}}
    try:
        for label, config, k, steps in GROUP_PLANS:
            got: dict = {default: [], k: []}
            for group in got:
                population.GROUP = group
                _population_rate(k, config, steps, 99, "interpret")
            for rep in range(reps):
                for group in (list(got) if rep % 2 == 0 else list(got)[::-1]):
                    population.GROUP = group
                    got[group].append(_population_rate(k, config, steps, rep, "interpret")[0])
            entry = {"steps_per_agent": steps,
                     f"groups_of_{default}_agent_steps_per_s": statistics.median(got[default]),
                     "one_call_agent_steps_per_s": statistics.median(got[k]),
                     f"groups_of_{default}_reps": got[default], "one_call_reps": got[k]}
            entry["groups_over_one_call"] = (entry[f"groups_of_{default}_agent_steps_per_s"]
                                             / entry["one_call_agent_steps_per_s"])
            out["plans"][f"{label} K={k}"] = entry
            print(f"  {label} K={k}: {entry}", flush=True)
    finally:
        population.GROUP = default
    return out


def section_minigrid_port(k: int = 32, steps: int = 3_000, reps: int = 3) -> dict:
    """MiniGrid-Empty-5x5 and LavaGapS5 through their compiled navix ports against the
    same envs stepped on the host, one env after the other."""
    out: dict = {"agents": k, "steps_per_agent": steps, "reps": reps, "envs": {}}
    for name in ("MiniGrid-Empty-5x5", "MiniGrid-LavaGapS5"):
        print(f"  {name}", flush=True)
        out["envs"][name] = _port_against_host(name, k, steps, reps)
    return out


def _port_against_host(name: str, k: int, steps: int, reps: int) -> dict:
    """``name`` through its compiled port against the same env stepped on the host (the
    port disabled), K DQN agents (64-64), agent-steps/s, alternating, median of
    ``reps``; compile time reported separately (first call minus warm)."""
    from evo.rl import population

    spec = envs.get(name)
    config = DQNConfig(hidden=(64, 64), learning_rate=1e-3, learning_starts=500)
    real_port_for = population.port_for

    def rate(compiled: bool, rep: int) -> tuple[float, float]:
        population.port_for = real_port_for if compiled else (lambda s: None)
        try:
            t0 = time.perf_counter()
            runs = train_population([builtin("dqn")] * k, spec,
                                    [rep * 1000 + i for i in range(k)], config,
                                    envs.Budget(steps=steps))
            seconds = time.perf_counter() - t0
        finally:
            population.port_for = real_port_for
        return sum(r.steps for r in runs) / seconds, seconds

    out: dict = {"env": spec.id, "agents": k, "steps_per_agent": steps, "reps": reps}
    firsts = {c: rate(c, 99)[1] for c in (True, False)}
    got: dict = {True: [], False: []}
    for rep in range(reps):
        for compiled in ((True, False) if rep % 2 == 0 else (False, True)):
            got[compiled].append(rate(compiled, rep))
    for compiled, label in ((True, "port"), (False, "host")):
        rates = [r for r, _ in got[compiled]]
        warm = statistics.median(s for _, s in got[compiled])
        out[label] = {"agent_steps_per_s": statistics.median(rates), "reps": rates,
                      "compile_seconds": firsts[compiled] - warm}
        print(f"  {label}: {out[label]}", flush=True)
    out["port_over_host"] = out["port"]["agent_steps_per_s"] / out["host"]["agent_steps_per_s"]
    return out


def compile_share(store_path: str | Path) -> dict:
    """A run store's recorded compile time against its evaluation time, and its candidates
    evaluated per minute."""
    from evo.search.store import RunStore

    store = RunStore.open(store_path, readonly=True)
    try:
        compiled = store.compile_time()
        stats = store.statistics()
        first, last = store.time_span()
    finally:
        store.close()
    if compiled is None:
        raise SystemExit(f"{store_path}: no evaluation recorded its compile time")
    minutes = (last - first) / 60  # as `evo status` counts: first proposal to last finish
    return {"compile_seconds": round(compiled[0], 1), "evaluation_seconds": round(compiled[1], 1),
            "compile_share": round(compiled[0] / compiled[1], 4),
            "trials": stats["finished"], "evaluated": stats["evaluated"],
            "wall_minutes": round(minutes, 2),
            "evaluations_per_minute": round(stats["evaluated"] / minutes, 2)}


def section_compile(preset: str = "from-scratch", hours: float = 0.2) -> dict:
    import subprocess
    import tempfile

    out = {"preset": preset, "hours_per_run": hours}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EVO_JAX_CACHE=os.path.join(tmp, "jax"))
        for label in ("empty_cache", "warm_cache"):
            store = os.path.join(tmp, f"{label}.db")
            subprocess.run([sys.executable, "-m", "evo", "run", "--preset", preset,
                            "--store", store, "--out", os.path.join(tmp, label),
                            "--workers", "1", "--hours", str(hours)], env=env, check=True)
            out[label] = compile_share(store)
            print(f"  {label}: {out[label]}", flush=True)
    return out


def section_search_modes(preset: str = "from-scratch", hours: float = 0.2) -> dict:
    """What the loss mode does to a search: ``evo run --preset from-scratch`` (its 10k-step
    CartPole hurdle is nearly all of its evaluation time) for 12 minutes on one worker,
    with ``[evaluator] loss_mode = "interpret"`` and with the default ``"auto"`` (which
    traces every stage of this preset), on the user's compilation cache; candidates
    evaluated per minute and the compile share."""
    import subprocess
    import tempfile

    base = subprocess.run([sys.executable, "-m", "evo", "run", "--preset", preset,
                           "--print-config"], check=True, capture_output=True, text=True).stdout
    if 'loss_mode = "auto"' not in base:
        raise SystemExit(f"preset {preset}: its printed config has no loss_mode = \"auto\"")
    out: dict = {"preset": preset, "hours_per_run": hours, "workers": 1, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("interpret", "auto"):
            config = os.path.join(tmp, f"{mode}.toml")
            Path(config).write_text(base.replace('loss_mode = "auto"', f'loss_mode = "{mode}"'))
            store = os.path.join(tmp, f"{mode}.db")
            subprocess.run([sys.executable, "-m", "evo", "run", config, "--store", store,
                            "--workers", "1", "--hours", str(hours), "-q"], check=True)
            out["modes"][mode] = compile_share(store)
            print(f"  {mode}: {out['modes'][mode]}", flush=True)
    out["auto_over_interpret_evaluations_per_minute"] = round(
        out["modes"]["auto"]["evaluations_per_minute"]
        / out["modes"]["interpret"]["evaluations_per_minute"], 3)
    return out


def section_compile_dqn_seeded() -> dict:
    """The compile share of the DQN-seeded preset, whose MiniGrid stages (30k steps)
    trace every batch of new programs: two 15-minute runs, as ``compile``."""
    return section_compile("dqn-seeded", 0.25)


def _first_batch_probe(min_compile_seconds: float, program_seed: int) -> dict:
    """In a fresh process: one batch of 32 new candidates (DQN plus 14 random nodes)
    through the ``dqn-seeded`` preset's evaluator (two MiniGrid tasks traced; the CartPole
    hurdle was interpreted when the JSON was measured, it traces since 2026-12-07),
    writing compiles of at least ``min_compile_seconds`` to the on-disk cache; the
    batch's seconds and its tracing and compiling."""
    import jax

    from evo.app.config import preset
    from evo.app.runner import make_evaluator

    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
    evaluator = make_evaluator(preset("dqn-seeded"))
    programs = [seeded_program("dqn", 14, seed=program_seed + i) for i in range(32)]
    wall0, compile0 = time.perf_counter(), compile_seconds()
    results = evaluator.evaluate_batch(programs, seed=0)
    seconds = time.perf_counter() - wall0
    compiled = compile_seconds() - compile0
    return {"batch_seconds": round(seconds, 1), "compile_seconds": round(compiled, 2),
            "compile_share": round(compiled / seconds, 4),
            "passed_hurdle": sum(r.hurdle is not None and r.hurdle.get("passed", False)
                                 for r in results)}


FIRST_BATCH_THRESHOLDS = {"min_2s": 2.0, "min_0.25s": 0.25}  # before, evo's setting


def section_first_batch() -> dict:
    """The compile share of the first batch of a fresh worker process, at the
    ``dqn-seeded`` preset's sizes, for two thresholds of the on-disk cache
    (evo.rl.population.CACHE_MIN_COMPILE_SECONDS): per threshold a new cache, then a
    process on the empty cache and one on the cache it filled with other new programs
    (as the first batch of a run on a machine that ran evo before: the interpreter and
    the setup functions can come from the cache, the batch's traced trainers cannot)."""
    import tempfile

    out: dict = {"batch": "32 DQN-seeded candidates (14 extra nodes), preset dqn-seeded",
                 "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for label, threshold in FIRST_BATCH_THRESHOLDS.items():
            entry = {"min_compile_seconds": threshold}
            env = {"EVO_JAX_CACHE": os.path.join(tmp, label)}
            for stage, seed in (("empty_cache", 60_000), ("warm_cache_new_programs", 70_000)):
                got = _in_fresh_processes(f"_first_batch_probe({threshold}, {seed})",
                                          {label: env}, 1)
                entry[stage] = got[label][0]
            out["variants"][label] = entry
    return out


def section_net_calls(reps: int = 3) -> dict:
    """What computing all four network applications would cost the interpreter: it
    compiles one trainer per set of applications a batch uses (Q(s), Q(s'), Qt(s),
    Qt(s')), and computing all four always would leave one. Seconds of a group of 8 DQN
    agents on CartPole (10k steps, the discovery agent, interpreted) with DQN's two
    applications and with all four forced, after a compiling call, alternating."""
    from evo.rl import population

    real = population._Setup
    calls_at = real._fields.index("calls")

    def forced(*args):
        args = list(args)
        args[calls_at] = (True,) * 4
        return real(*args)

    config = dataclasses.replace(SMALL, epsilon_decay_steps=10_000)
    programs, seeds = [builtin("dqn")] * 8, list(range(8))
    got: dict = {"dqn_calls": [], "all_four": []}

    def run(variant: str) -> float:
        population._Setup = forced if variant == "all_four" else real
        try:
            t0 = time.perf_counter()
            train_population(programs, CARTPOLE, seeds, config, envs.Budget(steps=10_000),
                             loss_mode="interpret")
            return time.perf_counter() - t0
        finally:
            population._Setup = real

    for variant in got:  # compile both
        run(variant)
    for rep in range(reps):
        for variant in (list(got) if rep % 2 == 0 else list(got)[::-1]):
            got[variant].append(run(variant))
    med = {v: statistics.median(r) for v, r in got.items()}
    return {"reps": reps, "seconds": got, "median_seconds": med,
            "all_four_over_dqn_calls": med["all_four"] / med["dqn_calls"]}


def _traced_memory_probe(evict: bool, groups: int = 6) -> dict:
    """In a fresh process: RSS (MiB) after each of ``groups`` traced trainings of 8 new
    DQN-seeded programs on MiniGrid-Empty-5x5 (64-64, 1k steps), with the trainer's
    eviction of traced trainers (``evict``) or without it."""
    from evo.rl import population

    if not evict:
        population._evict_traced = lambda: None
    spec = envs.get("MiniGrid-Empty-5x5")
    config = dataclasses.replace(SMALL, epsilon_decay_steps=10_000)
    rss = []
    for g in range(groups):
        programs = [seeded_program("dqn", 14, seed=1000 + 8 * g + i) for i in range(8)]
        train_population(programs, spec, list(range(8)), config, envs.Budget(steps=1000),
                         loss_mode="trace")
        with open("/proc/self/status") as f:
            rss.append(next(int(x.split()[1]) // 1024 for x in f if x.startswith("VmRSS")))
    return {"rss_mib_after_each_group": rss, "growth_mib": rss[-1] - rss[0]}


def section_traced_memory() -> dict:
    """A worker's memory over successive traced groups, with and without evicting each
    group's compiled trainer when its training returns (no compilation cache)."""
    out: dict = {"groups": "6 x 8 new DQN-seeded programs, MiniGrid-Empty-5x5, 64-64, 1k steps"}
    for label, evict in (("kept", False), ("evicted", True)):
        got = _in_fresh_processes(f"_traced_memory_probe({evict})",
                                  {label: {"EVO_JAX_CACHE": "off"}}, 1)
        out[label] = got[label][0]
    return out


FMA_PLANS = (("64-64", SMALL, 32, 5000), ("256-256", PAPER, 8, 3000),
             ("256-256", PAPER, 32, 1500))


def _fma_rates() -> dict:
    """In a fresh process: each FMA_PLANS rate after a warm-up call (which compiles:
    the same budget, since the step budget sizes the compiled replay buffer)."""
    rates = {}
    for label, config, k, steps in FMA_PLANS:
        _population_rate(k, config, steps, 99, "interpret")
        rates[f"{label} K={k}"] = _population_rate(k, config, steps, 0, "interpret")[0]
    return rates


def _in_fresh_processes(call: str, variants: dict, reps: int) -> dict:
    """``{variant: [result per rep]}``: ``b.<call>`` in a fresh, pinned process for each
    variant (extra environment variables; XLA reads its flags when a process starts),
    the variants alternating in order from rep to rep."""
    import subprocess

    code = ("import json, sys; sys.path.insert(0, 'bench'); import bench_population as b; "
            f"b.pin(); print('RESULT', json.dumps(b.{call}))")
    got: dict = {v: [] for v in variants}
    order = list(variants)
    for rep in range(reps):
        for v in (order if rep % 2 == 0 else order[::-1]):
            env = dict(os.environ, **variants[v])
            proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
            got[v].append(json.loads(line[len("RESULT "):]))
            print(f"  rep {rep} {v}: {got[v][-1]}", flush=True)
    return got


def section_fma(reps: int = 3) -> dict:
    """Agent-steps/s of DQN on CartPole compiled without FMA (the default, batch-
    independent: evo/rl/xla_flags.py) and with it (EVO_XLA_FMA=on). XLA reads the flag
    when a process starts, so each measurement is a fresh process, alternating."""
    variants = {"no_fma": {}, "fma": {"EVO_XLA_FMA": "on"}}
    got = _in_fresh_processes("_fma_rates()", variants, reps)
    out: dict = {"reps": reps, "plans": {}}
    for label, _, k, steps in FMA_PLANS:
        key = f"{label} K={k}"
        med = {v: statistics.median(r[key] for r in got[v]) for v in variants}
        out["plans"][key] = {"steps_per_agent": steps,
                             "no_fma_agent_steps_per_s": med["no_fma"],
                             "fma_agent_steps_per_s": med["fma"],
                             "no_fma_over_fma": med["no_fma"] / med["fma"],
                             "no_fma_reps": [r[key] for r in got["no_fma"]],
                             "fma_reps": [r[key] for r in got["fma"]]}
    return out


def _compile_probe(mode: str, steps: int = 20_000) -> dict:
    """In a fresh process: one group of 8 mixed programs new to it (CartPole, the
    discovery agent) trained twice in ``mode``: the first call compiles, the second
    reuses the compiled trainer; seconds of each, the compiling, a digest of returns."""
    import hashlib

    programs = _programs(8)
    out: dict = {}
    for call in ("first", "warm"):
        wall0, compile0 = time.perf_counter(), compile_seconds()
        runs = train_population(programs, CARTPOLE, list(range(8)), SMALL,
                                envs.Budget(steps=steps), loss_mode=mode)
        out[f"{call}_seconds"] = time.perf_counter() - wall0
        out[f"{call}_compile_seconds"] = compile_seconds() - compile0
    returns = json.dumps([r.episode_returns for r in runs]).encode()
    out["returns_digest"] = hashlib.sha1(returns).hexdigest()[:16]
    return out


COMPILE_VARIANTS = {  # loss mode, environment of the process (no compilation cache)
    "traced_quick": ("trace", {}),  # evo's default
    "traced_xla_defaults": ("trace", {"EVO_XLA_QUICK_COMPILE": "off"}),
    "interpreted_xla_defaults": ("interpret", {}),  # evo's default
    # the quick options for every compile of the process (the interpreter too)
    "interpreted_quick": ("interpret", {"XLA_FLAGS": " ".join(
        [os.environ["XLA_FLAGS"]]
        + [f"--{k}={str(v).lower()}" for k, v in QUICK_COMPILE.items()])}),
}


def section_compile_options(reps: int = 3) -> dict:
    """Short traced trainings compile with quick XLA options (evo/rl/xla_flags.py,
    QUICK_COMPILE): the compile seconds they save and the steps/s they cost, against
    XLA's defaults, and the same for the interpreter (why it keeps the defaults). Each
    measurement is a fresh process with no compilation cache, alternating, median."""
    got: dict = {}
    for mode in ("trace", "interpret"):
        variants = {v: dict(env, EVO_JAX_CACHE="off")
                    for v, (m, env) in COMPILE_VARIANTS.items() if m == mode}
        got.update(_in_fresh_processes(f"_compile_probe({mode!r})", variants, reps))
    out: dict = {"reps": reps, "programs": "8 mixed (DQN, DQNReg, 6 drawn), CartPole "
                 "20k steps, 64-64", "quick_options": QUICK_COMPILE, "variants": {}}
    for v in COMPILE_VARIANTS:
        med = {key: statistics.median(r[key] for r in got[v])
               for key in ("first_compile_seconds", "warm_seconds", "first_seconds")}
        med["digests"] = sorted({r["returns_digest"] for r in got[v]})
        med["reps"] = got[v]
        out["variants"][v] = med
    for mode in ("traced", "interpreted"):
        quick, default = out["variants"][f"{mode}_quick"], out["variants"][f"{mode}_xla_defaults"]
        out[f"{mode}_compile_saved"] = 1 - (quick["first_compile_seconds"]
                                            / default["first_compile_seconds"])
        out[f"{mode}_run_cost"] = quick["warm_seconds"] / default["warm_seconds"] - 1
    out["same_returns_everywhere"] = len(
        {d for v in out["variants"].values() for d in v["digests"]}) == 1
    return out


MODE_PLANS = (("CartPole", 5_000), ("CartPole", 10_000), ("Acrobot", 20_000),
              ("MiniGrid-Empty-5x5", 30_000))


def section_modes(k: int = 16, reps: int = 2) -> dict:
    """What each loss mode costs a search: wall seconds for a batch of ``k`` new
    DQN-seeded programs (one seed each, the discovery agent), at the budgets the presets
    give each environment. Each mode first trains one batch (the interpreter's trainer
    is then compiled, as after a search's first batch); every timed batch holds programs
    neither mode has seen, so the traced one compiles, as in a search."""
    out: dict = {"k": k, "reps": reps, "plans": {}}
    config = dataclasses.replace(SMALL, epsilon_decay_steps=10_000)
    draw = [0]

    def fresh() -> list:
        draw[0] += 1
        return [seeded_program("dqn", 3, seed=10_000 * draw[0] + i) for i in range(k)]

    for env_id, steps in MODE_PLANS:
        spec = envs.get(env_id)
        got: dict = {mode: [] for mode in LOSS_MODES}
        for mode in LOSS_MODES:  # warm-up
            train_population(fresh(), spec, list(range(k)), config, envs.Budget(steps=steps),
                             loss_mode=mode)
        for rep in range(reps):
            for mode in (LOSS_MODES if rep % 2 == 0 else LOSS_MODES[::-1]):
                t0, c0 = time.perf_counter(), compile_seconds()
                train_population(fresh(), spec, list(range(k)), config,
                                 envs.Budget(steps=steps), loss_mode=mode)
                got[mode].append({"seconds": time.perf_counter() - t0,
                                  "compile_seconds": compile_seconds() - c0})
        entry = {"steps": steps}
        for mode in LOSS_MODES:
            entry[mode] = {"batch_seconds": statistics.median(r["seconds"] for r in got[mode]),
                           "compile_seconds": statistics.median(
                               r["compile_seconds"] for r in got[mode]), "reps": got[mode]}
        entry["trace_over_interpret_seconds"] = (entry["trace"]["batch_seconds"]
                                                 / entry["interpret"]["batch_seconds"])
        out["plans"][f"{env_id}, {steps // 1000}k"] = entry
        print(f"  {env_id}, {steps:,} steps: {json.dumps(entry)}", flush=True)
    return out


SECTIONS = {"memory": section_memory, "flops": section_flops, "speed": section_speed,
            "candidate": section_candidate,
            "candidate256": section_candidate256, "quality": section_quality,
            "host": section_host, "compile": section_compile,
            "compile_dqn_seeded": section_compile_dqn_seeded, "fma": section_fma,
            "compile_options": section_compile_options,
            "minigrid_port": section_minigrid_port, "groups": section_groups,
            "modes": section_modes, "search_modes": section_search_modes,
            "first_batch": section_first_batch,
            "net_calls": section_net_calls, "traced_memory": section_traced_memory,
            "widths": section_widths}


def main() -> None:
    ap = argparse.ArgumentParser(description="population trainer benchmarks")
    ap.add_argument("sections", nargs="*", default=["flops", "speed"], choices=list(SECTIONS))
    args = ap.parse_args()
    where = pin()
    OUT.mkdir(parents=True, exist_ok=True)
    import jax

    for name in args.sections:
        print(f"== {name} ({where})", flush=True)
        t0 = time.perf_counter()
        result = SECTIONS[name]()
        result["machine"] = {"python": platform.python_version(), "numpy": np.__version__,
                             "jax": jax.__version__, "cpu": where,
                             "processor": platform.processor() or platform.machine(),
                             "cpu_model": _cpu_model()}
        result["command"] = f"python bench/bench_population.py {name}"
        result["wall_seconds"] = time.perf_counter() - t0
        (OUT / f"population_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items()
                          if k not in ("machine", "population", "numpy")}, indent=1)[:3000],
              flush=True)


if __name__ == "__main__":
    main()
