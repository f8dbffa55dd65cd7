"""The four hand-over notebooks run top to bottom on the demo data (``make test-notebooks``).

Executed copies go to a temporary folder; an error cell fails the test with the notebook's name, and
so does a cell whose output is longer than a person reads (40 lines)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
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
    runner = _runner()
    runner.execute(path, tmp_path / path.name, timeout=600)
    book = nbformat.read(tmp_path / path.name, as_version=4)
    assert runner.longest_outputs(book) == [], f"cells over {runner.MAX_OUTPUT_LINES} output lines (index, lines)"


def test_output_lines_are_counted_as_a_reader_sees_them():
    runner = _runner()
    cell = nbformat.v4.new_code_cell(
        "x",
        outputs=[
            nbformat.v4.new_output("stream", name="stderr", text="GPU available: False\n" * 45),
            nbformat.v4.new_output("execute_result", data={"text/plain": "a\nb", "text/html": "<table/>"}),
        ],
    )
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("m"), cell])
    assert runner.output_lines(cell) == 46 and runner.longest_outputs(book) == [(1, 46)]


def test_the_saved_notebooks_have_no_long_output():
    """The executed copies in notebooks/ are part of the hand-over."""
    runner = _runner()
    for path in NOTEBOOKS:
        assert runner.longest_outputs(nbformat.read(path, as_version=4)) == [], path.name
