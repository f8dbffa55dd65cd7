"""The four hand-over notebooks run top to bottom on the demo data (``make test-notebooks``).

Executed copies go to a temporary folder; an error cell fails the test with the notebook's name."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))

pytestmark = pytest.mark.notebooks


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", REPO / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_four_notebooks_are_there():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_demo_data(path, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSCAN_NOTEBOOK_DATASET", "demo")
    _runner().execute(path, tmp_path / path.name, timeout=600)
