# Quick start: `make run` (set up, then the main job on the embedded demo data); `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

.PHONY: setup run test test-all ui
setup: $(VENV)/.installed

run: setup
	$(PY) -m brainscan_exp $(ARGS)

test: setup
	$(PY) -m pytest -m "not integration"

test-all: setup
	$(PY) -m pytest

ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db
