"""The architecture problem: evaluator, rewards, the NB201 table, hardware
descriptions and the accelerator latency simulator."""
