"""Datasets: folder layout, pixel-hash catalogue with duplicate rules, splits, generated demo data."""

from brainscan_exp.data.catalogue import Catalogue, build_catalogue
from brainscan_exp.data.errors import (
    AnswerFileError,
    BadImageError,
    DatasetError,
    DuplicateLabelError,
    InputError,
    LayoutError,
)
from brainscan_exp.data.layout import scan_layout
from brainscan_exp.data.loader import load_dataset
from brainscan_exp.data.splits import holdout_split, repeated_cv_split

__all__ = [
    "AnswerFileError",
    "BadImageError",
    "Catalogue",
    "DatasetError",
    "DuplicateLabelError",
    "InputError",
    "LayoutError",
    "build_catalogue",
    "holdout_split",
    "load_dataset",
    "repeated_cv_split",
    "scan_layout",
]
