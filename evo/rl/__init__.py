"""The RL-loss problem: evaluator, trainers (population and numpy DQN), Q-networks,
replay, and training programs side by side (compare)."""

from evo.rl.xla_flags import configure as _configure_xla

_configure_xla()
