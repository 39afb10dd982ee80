"""The RL-loss problem's population trainer: many agents, many loss programs, one call."""
