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

# The main job: a small real search (the `quick` preset, a few minutes on 2 cores) that
# writes its run store, the top-k dataset and plots to results/quick/.
demo: $(BIN)/.installed
	rm -rf results/quick
	$(BIN)/evo run --preset quick --store results/quick/run.db --out results/quick

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
