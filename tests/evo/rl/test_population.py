"""The population trainer: agents are independent, failures stay per agent, limits hold,
environments without a port train on the host, and DQN learns.

Compiling the trainer is what costs here (tens of seconds per shape on one CPU core), so
the tests share two compiled shapes, run once per module: a batch of 32 mixed programs
and one DQN agent alone, on one config and one budget. The DQN agent alone is also the
learning run, and the batch also holds the failing program.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np
import pytest

import envs
from envs import Budget
from evo.rl.dqn import DQNConfig
from evo.rl.interpreter import capacity_for
from evo.rl.population import train_population
from graphs.rl_loss import library
from graphs.rl_loss.generation import from_scratch, seeded_program
from graphs.rl_loss.library import from_steps

CARTPOLE = envs.get("CartPole")
# Learns CartPole in 4000 steps (mean of the last 20 returns 73-105 over seeds 0-7), and
# budgets in whole chunks of 1000 steps.
CONFIG = DQNConfig(hidden=(32, 32), learning_rate=1e-3, learning_starts=500, batch_size=16)
BUDGET = Budget(steps=4000)

DQN = library.builtin("dqn")
DQN_SEED = 3
# Valid, but (Q(s,a) / (r − r + 1e-10))⁸ = 1e80·Q(s,a)⁸ overflows float32: the loss is
# inf at the first update. (Div is protected, so Q/(r − r) alone is a finite 1e10·Q.)
OVERFLOWS = from_steps(
    [("QValues", "Q", "s_t"), ("Select", 0, "a_t"), ("Sub", "r_t", "r_t"), ("Div", 1, 2)]
    + [("Square", 3 + i) for i in range(3)])
# A DQN-seeded program whose loss adds an N(0,1) draw (5 live nodes: capacity 8 alone).
RANDOM_DRAW = seeded_program("dqn", 3, seed=880)
RANDOM_DRAW_INDEX = 23


def _batch() -> tuple[list, list[int]]:
    """32 agents: the DQN agent under test first, the failing one second, then built-ins,
    from-scratch and DQN-seeded random programs, on various seeds."""
    programs = [DQN, OVERFLOWS, library.builtin("ddqn"), library.builtin("dqnreg")]
    programs += [from_scratch(7, seed=s) for s in range(10)]
    programs += [seeded_program("dqn", 3, seed=s) for s in range(9)] + [RANDOM_DRAW]
    programs += [library.builtin(n) for n in ("dqn", "ddqn", "dqnreg")] * 2 + [DQN, DQN]
    seeds = [DQN_SEED, 0] + list(range(100, 130))
    return programs, seeds


def _train_keeping_params(*args) -> tuple[list, list]:
    """train_population's runs, and each agent's final online-network parameters."""
    from evo.rl import population

    kept = []

    def results(finals, *rest):
        kept.append([jax.tree.map(np.asarray, f.params) for f in finals])
        return real(finals, *rest)

    real = population._results
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(population, "_results", results)
        runs = train_population(*args)
    params = kept[0]
    return runs, params


@pytest.fixture(scope="module")
def trained():
    programs, seeds = _batch()
    batch, batch_params = _train_keeping_params(programs, CARTPOLE, seeds, CONFIG, BUDGET)
    alone, alone_params = _train_keeping_params([DQN], CARTPOLE, [DQN_SEED], CONFIG, BUDGET)
    return {"programs": programs, "seeds": seeds, "batch": batch, "alone": alone[0],
            "batch_params": batch_params, "alone_params": alone_params[0]}


def _same(a, b) -> None:
    assert (a.seed, a.steps, a.updates, a.status) == (b.seed, b.steps, b.updates, b.status)
    assert a.episode_returns == b.episode_returns  # bit-identical, not approximately


def test_an_agent_trains_the_same_alone_and_in_a_batch_of_32(trained):
    programs = trained["programs"]
    assert len(programs) == len(trained["batch"]) == 32
    # the batch compiles a larger instruction capacity than the agent alone, a different
    # set of network calls (ddqn needs Q(s')), and 32 agents instead of one; the agent
    # still computes the same numbers to the last bit, so its parameters after 3,500
    # updates are equal (with XLA's fused multiply-adds they were not: docs/population.md,
    # "Nothing crosses the population axis").
    from evo.rl.xla_flags import configure

    assert configure(), "the suite must run with evo.rl's XLA flag (import evo.rl first)"
    assert capacity_for(programs) == 16 and capacity_for([DQN]) == 8
    alone, in_batch = trained["alone"], trained["batch"][0]
    assert alone.status == "ok" and alone.steps == BUDGET.steps
    assert alone.updates == BUDGET.steps - CONFIG.learning_starts
    assert len(alone.episode_returns) > 50
    _same(in_batch, alone)
    same = jax.tree.map(np.array_equal, trained["alone_params"], trained["batch_params"][0])
    assert all(jax.tree.leaves(same))
    # the same program on other seeds trains differently: identity is not a coincidence
    others = [r for p, r in zip(programs[1:], trained["batch"][1:]) if p is DQN]
    assert len(others) == 2
    assert all(r.episode_returns != alone.episode_returns for r in others)


def test_random_draws_do_not_depend_on_the_batch(trained):
    # a random-draw op reads one N(0,1) or U(0,1) number per instruction and update; the
    # draws are made for the batch's instruction capacity (16 here, 8 alone), so each
    # instruction draws from its own key, and the agent alone gets the same numbers
    programs, seeds = trained["programs"], trained["seeds"]
    assert programs[RANDOM_DRAW_INDEX] is RANDOM_DRAW
    assert any(op.kind == "random" for _, op, _ in RANDOM_DRAW.plan)
    assert capacity_for([RANDOM_DRAW]) == 8 < capacity_for(programs)
    alone = train_population([RANDOM_DRAW], CARTPOLE, [seeds[RANDOM_DRAW_INDEX]], CONFIG,
                             BUDGET)[0]
    in_batch = trained["batch"][RANDOM_DRAW_INDEX]
    assert alone.status == "ok" and alone.updates > 0
    _same(in_batch, alone)


@pytest.fixture(scope="module")
def traced(trained):
    """The same batch and the DQN agent alone with each group's programs written into
    its compiled call (loss_mode "trace"): five compilations, one per group."""
    programs, seeds = trained["programs"], trained["seeds"]
    batch, batch_params = _train_keeping_params(programs, CARTPOLE, seeds, CONFIG, BUDGET,
                                                None, None, None, 32, "trace")
    alone, alone_params = _train_keeping_params([DQN], CARTPOLE, [DQN_SEED], CONFIG, BUDGET,
                                                None, None, None, 32, "trace")
    # DDQN from the last group (agent 25), whose neighbours are other built-ins
    ddqn = train_population([programs[25]], CARTPOLE, [seeds[25]], CONFIG, BUDGET,
                            loss_mode="trace")
    return {"batch": batch, "alone": alone[0], "batch_params": batch_params,
            "alone_params": alone_params[0], "ddqn_alone": ddqn[0]}


def test_a_traced_agent_trains_the_same_alone_and_in_a_batch_of_32(trained, traced):
    # alone, the agent's group is its program eight times; in the batch, the group holds
    # seven other programs, and the compiled call differs: the agent's numbers do not
    alone, in_batch = traced["alone"], traced["batch"][0]
    assert alone.status == "ok" and alone.steps == BUDGET.steps
    _same(in_batch, alone)
    same = jax.tree.map(np.array_equal, traced["alone_params"], traced["batch_params"][0])
    assert all(jax.tree.leaves(same))
    # failures stay per agent, as interpreted
    assert traced["batch"][1].status == "nan" and traced["batch"][1].updates == 0
    # traced trainers compile with quicker XLA options (evo.rl.xla_flags) and the
    # interpreter with XLA's defaults: every agent still learns the same to the bit
    for run, interpreted in zip(traced["batch"], trained["batch"]):
        _same(run, interpreted)
    assert trained["programs"][25] == library.builtin("ddqn")
    _same(traced["batch"][25], traced["ddqn_alone"])


def _traced_trainers_cached() -> int:
    """How many compiled traced trainers JAX holds in memory (the interpreter's aside)."""
    from evo.rl import population

    return sum(fn._cache_size() for fn in (population._chunk_traced, population._chunk_quick,
                                           population._host_step_traced,
                                           population._host_step_quick))


def test_traced_trainers_leave_memory_when_their_training_returns(trained, traced):
    # a traced trainer is compiled for one group's programs, which a search never trains
    # again: JAX would keep each (about 25 MiB for a MiniGrid group), so a long search's
    # worker grew to 8.3 GB; the interpreter's trainer, reused by every batch, stays
    from evo.rl import population

    assert _traced_trainers_cached() == 0
    # the interpreter's, compiled by the `trained` fixture, survived the traced fixture's
    assert population._chunk_default._cache_size() > 0


def test_traced_trainers_leave_memory_when_their_training_raises():
    # an exception mid-training (here from the progress callback after the first chunk)
    # must not leave that group's compiled trainer behind in the worker
    def interrupt(step, total):
        assert _traced_trainers_cached()
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        train_population([DQN], CARTPOLE, [DQN_SEED], CONFIG, BUDGET, loss_mode="trace",
                         on_progress=interrupt)
    assert _traced_trainers_cached() == 0


@pytest.mark.parametrize("mode", ["interpret", "trace"])
def test_agents_moved_out_of_half_finished_groups_train_the_same(trained, traced, mode,
                                                                  monkeypatch):
    # 16 agents in two groups; eight overflow at their first update (step 501), so after
    # the first chunk the eight that go on are merged into one group: the DQN agent
    # moves from lane 0 of a group of failures to a group of seven others, and every
    # agent finishes as it did in the 32-batch (and the DQN agent as alone)
    from evo.rl import population

    programs, seeds = trained["programs"], trained["seeds"]
    mixed = [DQN] + [OVERFLOWS] * 8 + programs[2:9]
    merged = []
    real = population._merge

    def merge(partial):
        merged.append([int(on.sum()) for _, on in partial])
        return real(partial)

    monkeypatch.setattr(population, "_merge", merge)
    runs = train_population(mixed, CARTPOLE, [DQN_SEED] + [0] * 8 + seeds[2:9], CONFIG,
                            BUDGET, loss_mode=mode)
    assert merged == [[1, 7]]
    reference = trained if mode == "interpret" else traced
    _same(runs[0], reference["alone"])
    for run in runs[1:9]:
        assert run.status == "nan" and run.steps == CONFIG.learning_starts
    for run, twin in zip(runs[9:], reference["batch"][2:9]):
        _same(run, twin)


def test_auto_traces_the_losses_from_a_step_budget_on(monkeypatch):
    from evo.rl import population

    assert population.loss_mode_for(Budget(steps=population.TRACE_FROM_STEPS)) == "trace"
    assert population.loss_mode_for(Budget(steps=population.TRACE_FROM_STEPS - 1)) == "interpret"
    assert population.loss_mode_for(Budget(steps=10_000)) == "trace"  # the presets' hurdle
    assert population.loss_mode_for(Budget(episodes=400)) == "interpret"
    # an episode budget by its most steps: 400 CartPole episodes of at most 200 steps
    assert population.episode_steps(CARTPOLE) == 200
    assert population.loss_mode_for(Budget(episodes=400), "auto", 200) == "trace"
    assert population.loss_mode_for(Budget(episodes=20), "auto", 200) == "interpret"
    assert population.episode_steps(envs.get("LunarLander")) == 1000  # on the host
    assert population.loss_mode_for(Budget(steps=10_000), "interpret") == "interpret"
    with pytest.raises(ValueError, match="loss_mode 'fast' is not one of auto, interpret"):
        train_population([DQN], CARTPOLE, [0], CONFIG, BUDGET, loss_mode="fast")


def test_a_failing_agent_ends_nan_alone_while_its_neighbours_train(trained):
    failed = trained["batch"][1]
    assert failed.status == "nan"
    assert "NaN/inf" in failed.reason and "update 1" in failed.reason
    assert failed.updates == 0  # its failing update is not applied
    assert failed.steps == CONFIG.learning_starts  # and it stops stepping
    ok = trained["batch"][0]
    assert ok.status == "ok" and ok.reason == ""
    _same(ok, trained["alone"])  # the neighbour's failure changed nothing for it
    for run in trained["batch"]:
        assert run.status in ("ok", "nan")
        if run.status == "ok":
            assert run.steps == BUDGET.steps and all(map(math.isfinite, run.episode_returns))


def test_a_time_limit_ends_the_batch_with_status_timeout(trained):
    programs, seeds = trained["programs"], trained["seeds"]
    runs = train_population(programs, CARTPOLE, seeds, CONFIG, BUDGET, time_limit=1e-3)
    assert len(runs) == 32
    assert runs[1].status == "nan"  # a failure before the limit stays a failure
    for run, full in zip(runs, trained["batch"]):
        if full.status == "nan" and full.steps <= 1000:  # failed within the first chunk
            assert (run.status, run.steps) == ("nan", full.steps)
            continue
        assert run.status == "timeout", run
        assert "time limit" in run.reason
        assert run.steps < BUDGET.steps
    assert runs[0].status == "timeout"


def test_environments_without_a_port_train_on_the_host():
    spec = envs.get("LunarLander")
    config = DQNConfig(hidden=(32, 32), learning_rate=1e-3, learning_starts=50, batch_size=16)
    runs = train_population([DQN, OVERFLOWS, DQN], spec, [0, 1, 2], config,
                            Budget(steps=300))
    first, failed, third = runs
    for run, seed in zip(runs, [0, 1, 2]):
        assert run.seed == seed
    for run in (first, third):
        assert run.status == "ok" and run.reason == ""
        assert run.steps == 300 and run.updates == 300 - config.learning_starts
        assert run.episode_returns and all(map(math.isfinite, run.episode_returns))
    assert first.episode_returns != third.episode_returns  # own seed, own environment
    assert failed.status == "nan" and failed.updates == 0
    assert failed.steps == config.learning_starts
    # in two groups, the two DQN agents merge into one once the seven failures stop
    # (at step 51), and train as before
    spread = train_population([DQN] + [OVERFLOWS] * 7 + [DQN], spec, [0] + [1] * 7 + [2],
                              config, Budget(steps=300))
    _same(spread[0], first)
    _same(spread[-1], third)


def test_quick_and_default_xla_options_train_the_same(monkeypatch):
    """Short traced trainings compile with quick XLA options, long ones with XLA's
    defaults (QUICK_COMPILE_UP_TO): the same programs learn the same to the bit."""
    from evo.rl import population

    programs = [DQN, library.builtin("ddqn"), library.builtin("dqnreg"),
                seeded_program("dqn", 3, seed=5)]
    seeds = [11, 12, 13, 14]
    budget = Budget(steps=2500)
    assert budget.steps <= population.QUICK_COMPILE_UP_TO
    quick = train_population(programs, CARTPOLE, seeds, CONFIG, budget, loss_mode="trace")
    monkeypatch.setattr(population, "QUICK_COMPILE_UP_TO", 0)
    default = train_population(programs, CARTPOLE, seeds, CONFIG, budget, loss_mode="trace")
    assert all(r.status == "ok" and r.updates > 0 for r in quick)
    for a, b in zip(quick, default):
        _same(a, b)


def test_a_host_step_does_not_move_the_replay_buffers(monkeypatch):
    """Choosing the actions of host-stepped agents returns the actions, noise and keys,
    never the agents: a jitted function's outputs are fresh arrays, so returning the
    agents copied every replay buffer on each step (10x slower on MiniGrid)."""
    from evo.rl import population

    real, moved = population._act_all, []

    def spy(*args):
        out = real(*args)
        moved.append(sum(leaf.nbytes for leaf in jax.tree.leaves(out)))
        return out

    monkeypatch.setattr(population, "_act_all", spy)
    spec = envs.get("LunarLander")
    config = DQNConfig(hidden=(8,), learning_starts=20, batch_size=4, buffer_size=5_000)
    runs = train_population([DQN, DQN], spec, [0, 1], config, Budget(steps=40))
    assert [r.status for r in runs] == ["ok", "ok"]
    # one group (two agents padded to GROUP): obs + next_obs over 40 steps
    buffers = population.GROUP * 40 * 2 * spec.obs_dim * 4
    assert len(moved) == 40 and max(moved) < buffers / 10, moved[:3]


def _random_policy_mean(episodes: int = 200) -> float:
    env = CARTPOLE.make(0)
    returns = []
    try:
        for _ in range(episodes):
            env.reset()
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += reward
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return float(np.mean(returns))


def test_dqn_learns_cartpole(trained):
    random_mean = _random_policy_mean()
    assert 18 < random_mean < 26
    for run in (trained["alone"], trained["batch"][0]):
        last = float(np.mean(run.episode_returns[-20:]))
        assert last > 2 * random_mean, (last, random_mean)


def test_bucket_sizes_bound_the_shapes_a_search_compiles():
    from evo.rl.population import bucket_size

    sizes = [bucket_size(k) for k in range(1, 65)]
    assert all(s >= k for k, s in zip(range(1, 65), sizes))
    # whole groups of population.GROUP agents, the size of every compiled call
    assert sorted(set(sizes)) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert all(s - k < 8 for k, s in zip(range(1, 65), sizes))


def test_compile_seconds_count_nested_compilations_once(monkeypatch):
    from evo.rl import population

    monkeypatch.setattr(population, "_spans", [])
    monkeypatch.setattr(population, "_compile_total", [0.0])
    trace = "/jax/core/compile/jaxpr_trace_duration"
    population._on_duration(trace, 0.2)  # an inner jit, traced within the next
    population._on_duration(trace, 1.0)  # the outer one, which contains it
    population._on_duration("/jax/some/other_event", 5.0)  # not a compilation
    assert population.compile_seconds() == pytest.approx(1.0, abs=0.01)
    population._on_duration("/jax/core/compile/backend_compile_duration", 0.0)
    assert population.compile_seconds() == pytest.approx(1.0, abs=0.01)


def test_compile_seconds_grow_when_a_new_shape_compiles():
    from evo.rl.population import compile_seconds

    before = compile_seconds()
    jax.jit(lambda x: (x * 3.0).sum())(np.ones(1237)).block_until_ready()  # a fresh shape
    assert compile_seconds() > before


class _FloatGrid(envs.MiniGridFlatObs):
    """MiniGrid's flat observation without ``obs_scale``: the replay keeps float32."""

    def __init__(self, env):
        super().__init__(env)
        del self.obs_scale


def test_minigrid_replay_stores_bytes_and_trains_bit_identically(monkeypatch):
    """MiniGrid's grid codes go into the replay buffer as bytes (4x less memory), and
    decode exactly: an agent trains to the same returns, losses and parameters as with
    a float32 buffer."""
    from evo.rl import population

    compact = envs.get("MiniGrid-Dynamic-Obstacles-5x5")  # stepped on the host
    plain = envs.EnvSpec("DynObs-float", "MiniGrid-Dynamic-Obstacles-5x5-v0", compact.r_min,
                         compact.r_max,
                         compact.budget, "minigrid", compact.epsilon_decay_steps,
                         wrappers=(_FloatGrid,))
    assert compact.obs_scale is not None and len(compact.obs_scale) == compact.obs_dim
    assert plain.obs_scale is None
    config = DQNConfig(hidden=(16,), learning_starts=20, batch_size=8, buffer_size=1_000)
    finals, real = {}, population._keep_finals

    def keep(group, *args):  # each run's one group, as it finishes
        finals[len(finals)] = jax.device_get(group.agents)
        return real(group, *args)

    monkeypatch.setattr(population, "_keep_finals", keep)
    runs = [train_population([DQN, DQN], spec, [0, 1], config, Budget(steps=150))
            for spec in (compact, plain)]
    assert finals[0].buffer.obs.dtype == np.uint8 and finals[1].buffer.obs.dtype == np.float32
    decoded = np.asarray(finals[1].buffer.obs)
    codes = np.asarray(finals[0].buffer.obs).astype(np.float32)
    assert np.array_equal(codes / np.asarray(compact.obs_scale, np.float32), decoded)
    for a, b in zip(*runs):
        assert a.episode_returns == b.episode_returns and a.updates == b.updates == 130
    for x, y in zip(jax.tree.leaves(finals[0].params), jax.tree.leaves(finals[1].params)):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_the_compilation_cache_keeps_its_newest_entries_within_its_size(tmp_path):
    from evo.rl.population import trim_cache

    for i in range(10):
        entry = tmp_path / f"jit_trainer-{i}-cache"
        entry.write_bytes(b"x" * 100)
        os.utime(entry, (1000 + i, 1000 + i))
    trim_cache(str(tmp_path), max_bytes=450)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"jit_trainer-{i}-cache" for i in range(6, 10)]
    trim_cache(str(tmp_path / "missing"))  # no cache yet: nothing to do, no error
