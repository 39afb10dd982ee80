"""The RL-loss problem: evaluator, trainers (population and numpy DQN), Q-networks,
replay, and training programs side by side (compare)."""
