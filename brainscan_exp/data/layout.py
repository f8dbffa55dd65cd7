"""The brief's folder layout: ``avec_labels/{cancer,normal}`` and ``sans_label``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from brainscan_exp.data.errors import LayoutError

CLASS_NAMES = ("normal", "cancer")  # index = class id; cancer is the positive class
LABELLED_DIR = "avec_labels"
UNLABELLED_DIR = "sans_label"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}

EXPECTED_LAYOUT = f"""\
  <root>/
    {LABELLED_DIR}/
      cancer/   *.jpg   (images a radiologist labelled as tumour)
      normal/   *.jpg   (images a radiologist labelled as normal)
    {UNLABELLED_DIR}/   *.jpg   (the unlabelled pool)"""


def _list_files(folder: Path, root: Path) -> list[Path]:
    files, others = [], []
    for path in sorted(folder.rglob("*")):
        if path.is_dir() or path.name in IGNORED_NAMES or path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            others.append(path)
        else:
            files.append(path)
    if others:
        raise LayoutError(
            f"{len(others)} file(s) in {folder.relative_to(root)}/ are not images:",
            others,
            f"move them out of {folder.relative_to(root)}/ (image suffixes: {', '.join(sorted(IMAGE_SUFFIXES))}).",
        )
    return files


def scan_layout(root: str | Path) -> pd.DataFrame:
    """List every image under ``root`` with its label (-1 for the unlabelled pool).

    Returns a frame with columns ``file`` (posix path relative to root), ``path`` and ``label``.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise LayoutError(
            f"The dataset folder {root} does not exist.",
            fix="give the folder on the command line, dataset.root=PATH; it must be laid out as below.",
            details=f"Expected layout:\n{EXPECTED_LAYOUT}",
        )
    missing = [
        rel for rel in (f"{LABELLED_DIR}/cancer", f"{LABELLED_DIR}/normal", UNLABELLED_DIR) if not (root / rel).is_dir()
    ]
    if missing:
        found = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
        raise LayoutError(
            f"The dataset folder {root} is missing {', '.join(f'{m}/' for m in missing)}. It holds:",
            found,
            fix="arrange the images in the expected layout below, or point dataset.root=PATH at the right folder.",
            details=f"Expected layout:\n{EXPECTED_LAYOUT}",
        )
    rows = []
    for class_id, name in enumerate(CLASS_NAMES):
        for path in _list_files(root / LABELLED_DIR / name, root):
            rows.append((path.relative_to(root).as_posix(), path, class_id))
    for path in _list_files(root / UNLABELLED_DIR, root):
        rows.append((path.relative_to(root).as_posix(), path, -1))
    frame = pd.DataFrame(rows, columns=["file", "path", "label"])
    for name in CLASS_NAMES:
        if not (frame["file"].str.startswith(f"{LABELLED_DIR}/{name}/")).any():
            raise LayoutError(
                f"{root / LABELLED_DIR / name} holds no image.",
                fix=f"put the images a radiologist labelled {name} there: each class needs labelled examples.",
            )
    return frame
