"""Benchmarks for the RL evaluator (issue: RL evaluator).

Sections (run one or several; each writes results/bench/rl_<section>.json):
  speed     env steps/s on CartPole: ours (1 agent, and 5 seeds in lockstep) vs
            Stable-Baselines3 DQN with matched hyperparameters, same run, one core
  returns   median over 5 seeds of the last-50-episode mean return after the same
            number of steps: ours vs SB3
  hurdle    seconds per full CartPole hurdle evaluation (400 episodes) of DQN, one core
  cartpole  DQN, DDQN, DQNReg with the default budget, 5 seeds: last-50 mean returns
  bad       known-bad losses (ignores the reward; wrong sign) with the default budget
  minigrid  DQN and DQNReg on MiniGrid-Empty-5x5 and -6x6 (sparse reward), 5 seeds
            each, default budgets (~35 min on one core; DoorKey-5x5's 5e5-step budget
            would take ~80 min more)

The SB3 peer (benchmark extra: ``pip install -e '.[bench]'``) uses the same network,
optimizer, batch, schedule, replay and target settings; its DQN is subclassed only to
use the paper's squared TD error without gradient clipping (SB3 hard-codes Huber and
clips at norm 10). Run: ``python bench/bench_rl.py speed returns hurdle cartpole bad``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import envs  # noqa: E402
from evo.rl.dqn import DQNConfig, train  # noqa: E402
from evo.rl.evaluator import RLEvaluator  # noqa: E402
from graphs.rl_loss.library import builtin, from_steps  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench"
SEEDS = [0, 1, 2, 3, 4]
CONFIG = DQNConfig()


def pin() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = int(os.environ.get("BENCH_CORE", sorted(os.sched_getaffinity(0))[0]))
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "not pinned"


def last50(returns) -> float:
    tail = list(returns)[-50:]
    return float(np.mean(tail)) if tail else float("nan")


# -- the peer ------------------------------------------------------------------------------
def sb3_dqn(env_id: str, total: int, seed: int):
    """An SB3 DQN matched to DQNConfig, with the paper's loss; returns (model, monitor)."""
    import gymnasium as gym
    import torch
    import torch.nn.functional as F
    from stable_baselines3 import DQN
    from stable_baselines3.common.monitor import Monitor

    torch.set_num_threads(1)

    class PaperLossDQN(DQN):
        """SB3 DQN with 0.5·δ² (the paper's loss) and no gradient clipping."""

        def train(self, gradient_steps: int, batch_size: int = 100) -> None:
            self.policy.set_training_mode(True)
            for _ in range(gradient_steps):
                data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
                with torch.no_grad():
                    next_q = self.q_net_target(data.next_observations).max(dim=1)[0]
                    target = data.rewards + (1 - data.dones) * self.gamma * next_q.reshape(-1, 1)
                q = torch.gather(self.q_net(data.observations), 1, data.actions.long())
                loss = 0.5 * F.mse_loss(q, target)
                self.policy.optimizer.zero_grad()
                loss.backward()
                self.policy.optimizer.step()
            self._n_updates += gradient_steps

    spec = envs.get(env_id)
    monitor = Monitor(gym.make(spec.gym_id))
    model = PaperLossDQN(
        "MlpPolicy", monitor, learning_rate=CONFIG.learning_rate, buffer_size=CONFIG.buffer_size,
        learning_starts=CONFIG.learning_starts, batch_size=CONFIG.batch_size, gamma=CONFIG.gamma,
        train_freq=1, gradient_steps=CONFIG.updates_per_step,
        target_update_interval=CONFIG.target_update_period, tau=1.0,
        exploration_initial_eps=CONFIG.epsilon_start, exploration_final_eps=CONFIG.epsilon_end,
        exploration_fraction=min(1.0, spec.epsilon_decay_steps / total),
        policy_kwargs={"net_arch": list(CONFIG.hidden)},
        seed=seed, device="cpu", verbose=0,
    )
    return model, monitor


def have_sb3() -> bool:
    try:
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        print("SB3 peer not installed (pip install -e '.[bench]'); skipping the comparison")
        return False
    return True


# -- sections ------------------------------------------------------------------------------
def section_speed(steps: int = 10_000, reps: int = 3) -> dict:
    cartpole = envs.get("CartPole")
    budget = envs.Budget(steps=steps)
    out: dict = {"steps_per_agent": steps, "reps": reps}
    for label, seeds in (("ours_1_agent", [0]), ("ours_5_lockstep", SEEDS)):
        rates = []
        for r in range(reps):
            t0 = time.perf_counter()
            runs = train(builtin("dqn"), cartpole, [s + 10 * r for s in seeds], CONFIG, budget)
            rates.append(sum(x.steps for x in runs) / (time.perf_counter() - t0))
        out[label] = {"steps_per_s": statistics.median(rates), "reps": rates}
    if have_sb3():
        rates = []
        for r in range(reps):
            model, _ = sb3_dqn("CartPole", steps, seed=r)
            t0 = time.perf_counter()
            model.learn(steps)
            rates.append(steps / (time.perf_counter() - t0))
        out["sb3"] = {"steps_per_s": statistics.median(rates), "reps": rates}
        for label in ("ours_1_agent", "ours_5_lockstep"):
            out[f"ratio_{label}_vs_sb3"] = out[label]["steps_per_s"] / out["sb3"]["steps_per_s"]
    return out


def section_returns(steps: int = 40_000) -> dict:
    runs = train(builtin("dqn"), envs.get("CartPole"), SEEDS, CONFIG, envs.Budget(steps=steps))
    ours = [last50(r.episode_returns) for r in runs]
    out = {"steps": steps, "ours_last50": ours, "ours_median": statistics.median(ours)}
    if have_sb3():
        theirs = []
        for seed in SEEDS:
            model, monitor = sb3_dqn("CartPole", steps, seed)
            model.learn(steps)
            theirs.append(last50(monitor.get_episode_rewards()))
        out.update(sb3_last50=theirs, sb3_median=statistics.median(theirs))
    return out


def section_hurdle(reps: int = 3) -> dict:
    evaluator = RLEvaluator(["CartPole"], envs.DEFAULT_HURDLE, seeds=(0,))
    times, scores = [], []
    for r in range(reps):
        result = evaluator(builtin("dqn"), seed=r)
        times.append(result.seconds)
        scores.append(result.fitness)
    return {"seconds": times, "median_seconds": statistics.median(times), "fitness": scores}


def _learning(program, env_id: str, seeds=SEEDS) -> dict:
    t0 = time.perf_counter()
    runs = train(program, envs.get(env_id), seeds, CONFIG)
    spec = envs.get(env_id)
    return {
        "last50": [last50(r.episode_returns) for r in runs],
        "scores": [spec.score(r.episode_returns) for r in runs],
        "status": [r.status for r in runs],
        "steps": [r.steps for r in runs],
        "episodes": [len(r.episode_returns) for r in runs],
        "seconds": time.perf_counter() - t0,
    }


def section_cartpole() -> dict:
    out = {}
    for name in ("dqn", "ddqn", "dqnreg"):
        res = _learning(builtin(name), "CartPole")
        res["seeds_reaching_195"] = sum(x >= 195 for x in res["last50"])
        out[name] = res
        print(f"  {name}: {res['last50']}", flush=True)
    return out


def bad_losses() -> dict:
    td = [("QValues", "Q", "s_t"), ("Select", 0, "a_t"), ("QValues", "Q_targ", "s_tp1"),
          ("Max", 2), ("Mul", "gamma", 3)]
    return {
        # 0.5·(Q(s,a) − γ·max Qt(s',a'))²: the reward never enters. On CartPole this still
        # learns: every reward is +1 and γ = γ·(1 − done) carries the termination signal.
        "ignores_reward": from_steps(td + [("SqDist", 1, 4)]),
        # 0.5·(Q(s,a) − max Qt(s',a'))²: neither the reward nor termination enters
        "ignores_reward_and_termination": from_steps(td[:4] + [("SqDist", 1, 3)]),
        # 0.01 − 0.5·δ²: gradient ascent on the TD error
        "wrong_sign": from_steps(td + [("Add", "r_t", 4), ("SqDist", 1, 5), ("Const0.01",),
                                       ("Sub", 7, 6)]),
    }


def section_bad() -> dict:
    return {name: _learning(p, "CartPole", SEEDS[:3]) for name, p in bad_losses().items()}


MINIGRID = ("MiniGrid-Empty-5x5", "MiniGrid-Empty-6x6")


def section_minigrid() -> dict:
    out = {}
    for env_id in MINIGRID:
        for name in ("dqn", "dqnreg"):
            res = _learning(builtin(name), env_id)
            out[f"{env_id}/{name}"] = res
            print(f"  {env_id} {name}: scores {np.round(res['scores'], 3).tolist()}", flush=True)
            (OUT / "rl_minigrid.partial.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


SECTIONS = {"speed": section_speed, "returns": section_returns, "hurdle": section_hurdle,
            "cartpole": section_cartpole, "bad": section_bad, "minigrid": section_minigrid}


def main() -> None:
    ap = argparse.ArgumentParser(description="RL evaluator benchmarks")
    ap.add_argument("sections", nargs="*", default=["speed", "returns", "hurdle"],
                    choices=list(SECTIONS))
    args = ap.parse_args()
    where = pin()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.sections:
        print(f"== {name} ({where})", flush=True)
        t0 = time.perf_counter()
        result = SECTIONS[name]()
        result["machine"] = {"python": platform.python_version(), "numpy": np.__version__,
                             "cpu": where}
        result["command"] = f"python bench/bench_rl.py {name}"
        result["wall_seconds"] = time.perf_counter() - t0
        (OUT / f"rl_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1),
              flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
