# `make demo` and `make test` set up a local virtualenv (.venv) and run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The main job: a small real discovery run from scratch (the `quick` preset, stopped
# after 8 minutes on this machine's cores), then DQN trained the same way; prints the
# best program found next to DQN with its family line, and writes the run store, the
# top-k dataset, the plots and summary.md to results/quick/.
demo: $(BIN)/.installed
	rm -rf results/quick
	$(BIN)/evo run --preset quick --store results/quick/run.db --out results/quick \
		--hours 0.13 --baseline dqn

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_graphs.py
	$(BIN)/python bench/bench_search.py
	$(BIN)/python bench/bench_ray.py
	$(BIN)/python bench/bench_rl.py speed returns hurdle cartpole bad

clean:
	rm -rf $(VENV) build *.egg-info
