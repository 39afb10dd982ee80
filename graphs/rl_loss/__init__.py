"""The RL-loss language: its ops, the built-in losses and the paper's initial programs.

Importing it registers the ``rl_loss`` op set (:data:`graphs.rl_loss.ops.RL_LOSS`).
"""

from graphs.rl_loss import ops  # noqa: F401  (registers the op set)
