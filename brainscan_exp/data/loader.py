"""The ``dataset`` config group's target: a catalogue of a folder in the brief's layout."""

from __future__ import annotations

import logging
from pathlib import Path

from brainscan_exp.data.catalogue import Catalogue, build_catalogue
from brainscan_exp.data.demo import make_demo_dataset

log = logging.getLogger(__name__)


def load_dataset(
    root: str,
    cache_dir: str | None = None,
    on_bad_file: str = "error",
    name: str = "oc",
    truth: str | None = None,
    generate: dict | None = None,
) -> Catalogue:
    """Catalogue ``root``. With ``generate`` (the demo), the data is made first when absent.

    ``truth`` is deliberately not read here: it is only opened after fitting, to score predictions.
    """
    root_path = Path(root).expanduser()
    if generate is not None and not (root_path / "truth.csv").exists():
        log.info("generating the demo dataset in %s", root_path)
        make_demo_dataset(root_path, **generate)
    return build_catalogue(root_path, cache_dir=cache_dir, on_bad_file=on_bad_file)
