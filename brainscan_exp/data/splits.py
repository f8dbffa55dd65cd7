"""Seeded, stratified, group-aware splits of the distinct labelled images, as a ``split`` column.

Every split has an inner validation part carved from training: it is where early stopping and
the operating point are decided, so the test part takes part in no decision. Images of one
near-copy group (``group`` column; absent: each image its own) always land on the same side, so
no test image has a flipped or re-contrasted twin in training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def _groups(labelled: pd.DataFrame) -> np.ndarray:
    return labelled.group.to_numpy() if "group" in labelled else np.arange(len(labelled))


def split_off_groups(labelled: pd.DataFrame, idx: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, part): about ``share`` of ``idx`` split off, stratified, whole groups only."""
    n_splits = max(2, int(round(1 / share)))
    y, groups = labelled.label.to_numpy()[idx], _groups(labelled)[idx]
    n_splits = min(n_splits, min(len(np.unique(groups[y == k])) for k in np.unique(y)))
    if n_splits < 2:
        raise ValueError(
            f"cannot split {len(idx)} labelled images ({np.bincount(y).tolist()} per class) into groups on both sides"
        )
    rest, part = next(StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(idx, y, groups))
    return idx[rest], idx[part]


def _carve_val(labelled: pd.DataFrame, train_idx: np.ndarray, val_size: float, seed: int) -> np.ndarray:
    if val_size <= 0:
        return np.array([], dtype=int)
    return split_off_groups(labelled, train_idx, val_size, seed)[1]


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
    train_idx, test_idx = split_off_groups(labelled, idx, test_size, seed)
    return _assign(labelled, test_idx, _carve_val(labelled, train_idx, val_size, seed))


def repeated_cv_split(
    labelled: pd.DataFrame, fold: int, n_splits: int = 5, n_repeats: int = 5, val_size: float = 0.2, seed: int = 0
) -> pd.DataFrame:
    """Fold ``fold`` (0 .. n_splits*n_repeats-1) of a repeated stratified group K-fold.

    The same (seed, fold) gives the same partition for every regime, so comparisons are paired.
    """
    n_folds = n_splits * n_repeats
    if not 0 <= fold < n_folds:
        raise ValueError(f"split.fold={fold} is out of range: this protocol has folds 0..{n_folds - 1}")
    repeat, k = divmod(fold, n_splits)
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + repeat)
    train_idx, test_idx = list(cv.split(np.zeros(len(labelled)), labelled.label, _groups(labelled)))[k]
    return _assign(labelled, test_idx, _carve_val(labelled, train_idx, val_size, seed + fold))


def make_split(labelled: pd.DataFrame, fold: int | None = None, **kwargs) -> pd.DataFrame:
    """Holdout when ``fold`` is None, else the given fold of the repeated CV protocol."""
    if fold is None:
        kwargs = {k: v for k, v in kwargs.items() if k in {"test_size", "val_size", "seed"}}
        return holdout_split(labelled, **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k in {"n_splits", "n_repeats", "val_size", "seed"}}
    return repeated_cv_split(labelled, fold, **kwargs)
