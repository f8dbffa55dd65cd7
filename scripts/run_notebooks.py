"""Execute notebooks top to bottom and keep their outputs (``make notebooks``).

    BRAINSCAN_NOTEBOOK_DATASET=oc python scripts/run_notebooks.py notebooks/*.ipynb

Each notebook reads its dataset from ``BRAINSCAN_NOTEBOOK_DATASET`` (demo | oc | brain_mri_oc);
a cell that raises stops the run with the notebook's name. ``--out DIR`` writes the executed
copies there instead of over the originals (what the tests do).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MAX_OUTPUT_LINES = 40  # a cell's output a person reads; longer is chatter to switch off


def output_lines(cell) -> int:
    """Lines a reader sees under a code cell: printed text, errors, and plain-text results (a
    table or figure shown as HTML or an image counts one line)."""
    lines = 0
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            lines += len(output.get("text", "").splitlines())
        elif output.get("output_type") == "error":
            lines += len(output.get("traceback", []))
        else:
            data = output.get("data", {})
            rich = any(k.startswith("image/") or k == "text/html" for k in data)
            lines += 1 if rich else len(data.get("text/plain", "").splitlines())
    return lines


def longest_outputs(book) -> list[tuple[int, int]]:
    """(cell index, lines) of the code cells whose output is over ``MAX_OUTPUT_LINES``."""
    return [
        (i, n)
        for i, cell in enumerate(book.cells)
        if cell.cell_type == "code" and (n := output_lines(cell)) > MAX_OUTPUT_LINES
    ]


def execute(path: Path, out: Path, timeout: int = 1800) -> float:
    """Runs ``path`` in its own folder; returns the seconds it took. Raises on an error cell."""
    book = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, out)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="folder for the executed copies (default: in place)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    for path in args.notebooks:
        seconds = execute(path, (args.out / path.name) if args.out else path, args.timeout)
        long = longest_outputs(nbformat.read((args.out / path.name) if args.out else path, as_version=4))
        print(f"{path}: {seconds:.0f} s" + (f"; cells over {MAX_OUTPUT_LINES} output lines: {long}" if long else ""))


if __name__ == "__main__":
    main()
