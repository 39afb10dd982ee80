"""The user interface: command line, configs and presets, runner, status, export, plots."""
