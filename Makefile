# Quick start: `make run` (set up, then the main job on the embedded demo data); `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

# -qq: pip prints errors only (no build-backend notices in the quick start's output)
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq -e ".[dev]"
	touch $@

.PHONY: setup run test test-slow test-all lint format ui demo-runs report notebooks test-notebooks cost-model label-efficiency \
	label-studio-venv label-studio label-studio-stop
setup: $(VENV)/.installed

# the client's job on the demo data: labels for the pool, triage, the run's own estimate, checked
# against the demo's truth file (task=train, one regime on one split: `.venv/bin/python -m brainscan_exp`)
run: setup
	$(PY) -m brainscan_exp experiment=predict $(ARGS)

# fast tests on generated data (lint first); `make test-slow` runs the marked slow ones (CI runs
# both), `make test-all` adds the real-data integration tests
test: setup lint
	$(PY) -m pytest -m "not integration and not slow and not notebooks"

test-slow: setup
	$(PY) -m pytest -m "slow and not integration and not notebooks"

# the four notebooks, top to bottom on the demo data (CI)
test-notebooks: setup
	$(PY) -m pytest -m notebooks

test-all: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# prints the runs table's address (MLflow 3 would open its GenAI page otherwise), then serves the UI
ui: setup
	$(PY) -m brainscan_exp.tracking.ui --backend-store-uri sqlite:///mlruns/mlflow.db

# the runs the hand-over deck reads, on the demo data (seconds to minutes on a CPU)
DEMO := debug=cv_fast features.progress=false
LE_FAST := '~cv.regimes.semi_teacher' '~cv.regimes.self_training' '~cv.regimes.semi_permuted' '~cv.regimes.sup_budget' '~cv.regimes.knn'
demo-runs: setup
	$(PY) -m brainscan_exp experiment=label_efficiency $(LE_FAST) 'cv.label_budgets=[6,10,all]' cv.results_json=null $(DEMO)
	$(PY) -m brainscan_exp experiment=predict $(DEMO)
	$(PY) -m brainscan_exp task=cluster $(DEMO)

# the decks: reports/brainscan_fr.pptx and brainscan_en.pptx (DATASET=oc for the brief's data)
DATASET ?= demo
report: setup
	$(PY) -m brainscan_exp task=report dataset=$(DATASET) $(ARGS)

# the label-efficiency curve on a real dataset, fast regimes only (sup, linear_probe, label_spreading)
label-efficiency: setup
	$(PY) -m brainscan_exp experiment=label_efficiency dataset=$(DATASET) $(LE_FAST) '~cv.regimes.semi' features.progress=false

# the scale-up cost model: scripts/results/cost_model.json and .png
cost-model: setup
	$(PY) scripts/cost_model.py $(ARGS)

# re-execute the notebooks on the brief's data and keep their outputs
notebooks: setup
	BRAINSCAN_NOTEBOOK_DATASET=oc $(PY) scripts/run_notebooks.py notebooks/*.ipynb

# Label Studio for the expert reads (review round trip): its own environment (it pins numpy 2.2 and an
# older OpenCV, so never in .venv), a server on 127.0.0.1 only, its database, log, password and token
# under cache/label_studio, serving the images below the data folder. `make label-studio-stop` stops it.
LS_VENV := .venv-labelstudio
LS_VERSION := 1.23.2
LS_DATA := cache/label_studio
LS_PORT ?= 8080
LS_USER ?= reviewer@brainscan.local
LS_PASSWORD ?=
LS_DOCUMENT_ROOT ?= $(or $(BRAINSCAN_DATA_DIR),../shared/data)
LS_SERVER := $(PY) -m brainscan_exp.review.label_studio_server

$(LS_VENV)/bin/label-studio:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q label-studio==$(LS_VERSION)

label-studio-venv: $(LS_VENV)/bin/label-studio

# LS_PASSWORD empty: a generated one, kept in cache/label_studio/password
label-studio: setup label-studio-venv
	$(LS_SERVER) start --data-dir $(LS_DATA) --document-root $(LS_DOCUMENT_ROOT) --port $(LS_PORT) \
		--venv $(LS_VENV) --user $(LS_USER) --password "$(LS_PASSWORD)"
	$(LS_SERVER) token --data-dir $(LS_DATA) --user $(LS_USER) --password "$(LS_PASSWORD)"

label-studio-stop: setup
	$(LS_SERVER) stop --data-dir $(LS_DATA)
