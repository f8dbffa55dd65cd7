# Quick start: `make run` (set up, then the main job on the embedded demo data); `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

.PHONY: setup run test test-slow test-all lint format ui
setup: $(VENV)/.installed

run: setup
	$(PY) -m brainscan_exp $(ARGS)

# fast tests on generated data (lint first); `make test-slow` runs the marked slow ones (CI runs
# both), `make test-all` adds the real-data integration tests
test: setup lint
	$(PY) -m pytest -m "not integration and not slow"

test-slow: setup
	$(PY) -m pytest -m "slow and not integration"

test-all: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db
