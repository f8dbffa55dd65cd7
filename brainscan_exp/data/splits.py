"""Seeded, stratified splits of the distinct labelled images, recorded as a ``split`` column.

Every split has an inner validation part carved from training: it is where early stopping and
the operating point are decided, so the test part takes part in no decision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split


def _carve_val(labelled: pd.DataFrame, train_idx: np.ndarray, val_size: float, seed: int) -> np.ndarray:
    if val_size <= 0:
        return np.array([], dtype=int)
    y = labelled.label.to_numpy()[train_idx]
    _, val_idx = train_test_split(train_idx, test_size=val_size, stratify=y, random_state=seed)
    return val_idx


def _assign(labelled: pd.DataFrame, test_idx, val_idx) -> pd.DataFrame:
    split = np.full(len(labelled), "train", dtype=object)
    split[np.asarray(val_idx, dtype=int)] = "val"
    split[np.asarray(test_idx, dtype=int)] = "test"
    return labelled.assign(split=split)


def holdout_split(labelled: pd.DataFrame, test_size: float = 0.2, val_size: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """One stratified train/val/test split (val is a share of the training part). ``test_size=0``
    keeps every labelled image for fitting: the setting for predicting the unlabelled pool."""
    idx = np.arange(len(labelled))
    if test_size == 0:
        return _assign(labelled, [], _carve_val(labelled, idx, val_size, seed))
    train_idx, test_idx = train_test_split(idx, test_size=test_size, stratify=labelled.label, random_state=seed)
    return _assign(labelled, test_idx, _carve_val(labelled, train_idx, val_size, seed))


def repeated_cv_split(
    labelled: pd.DataFrame, fold: int, n_splits: int = 5, n_repeats: int = 5, val_size: float = 0.2, seed: int = 0
) -> pd.DataFrame:
    """Fold ``fold`` (0 .. n_splits*n_repeats-1) of a repeated stratified K-fold.

    The same (seed, fold) gives the same partition for every regime, so comparisons are paired.
    """
    n_folds = n_splits * n_repeats
    if not 0 <= fold < n_folds:
        raise ValueError(f"split.fold={fold} is out of range: this protocol has folds 0..{n_folds - 1}")
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    train_idx, test_idx = list(cv.split(np.zeros(len(labelled)), labelled.label))[fold]
    return _assign(labelled, test_idx, _carve_val(labelled, train_idx, val_size, seed + fold))


def make_split(labelled: pd.DataFrame, fold: int | None = None, **kwargs) -> pd.DataFrame:
    """Holdout when ``fold`` is None, else the given fold of the repeated CV protocol."""
    if fold is None:
        kwargs = {k: v for k, v in kwargs.items() if k in {"test_size", "val_size", "seed"}}
        return holdout_split(labelled, **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k in {"n_splits", "n_repeats", "val_size", "seed"}}
    return repeated_cv_split(labelled, fold, **kwargs)
