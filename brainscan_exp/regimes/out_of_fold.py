"""Out-of-fold scores of a regime over all its labelled training images.

Why: an operating point read off a 16-image validation split moves by a whole tumour per image;
refitting the regime on inner folds scores every labelled image once per repeat, with a model
that did not see it, and the pooled scores set a far steadier threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split

from brainscan_exp.regimes.base import FoldData, Regime, TrainContext


def out_of_fold_scores(
    make_regime: Callable[[], Regime],
    data: FoldData,
    ctx: TrainContext,
    n_splits: int = 5,
    n_repeats: int = 3,
    val_size: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) for train + val of ``data``: one score per image, its mean over the repeats
    (so the images stay independent for the threshold rules' guarantees, and the shuffle's noise
    averages out).

    Each inner fit sees the pool as usual. Regimes that early-stop on a validation split
    (``uses_validation``) get one carved from the inner training part, never the scored fold.
    """
    every = data.with_val_in_train()
    X, y = every.X_train, every.y_train.astype(int)
    paths = np.asarray(every.paths_train, dtype=object)
    has_paths = len(paths) == len(y)
    n_splits = min(n_splits, int(np.bincount(y, minlength=2).min()))
    if n_splits < 2:
        raise ValueError(
            f"out-of-fold operating point needs at least 2 images per class, got {np.bincount(y, minlength=2).tolist()}"
        )
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    scores = np.full((n_repeats, len(y)), np.nan)
    for i, (train, test) in enumerate(cv.split(X, y)):
        fit_idx, val_idx = train, train[:0]
        regime = make_regime()
        if regime.uses_validation and val_size > 0:
            fit_idx, val_idx = train_test_split(train, test_size=val_size, stratify=y[train], random_state=seed + i)
        inner = FoldData(
            X[fit_idx],
            y[fit_idx],
            X[val_idx],
            y[val_idx],
            data.X_pool,
            list(paths[fit_idx]) if has_paths else [],
            list(paths[val_idx]) if has_paths else [],
            data.paths_pool,
        )
        regime = regime.fit(
            inner, replace(ctx, out_dir=ctx.out_dir / "out_of_fold" / f"fit{i}", log=lambda metrics: None)
        )
        scores[i // n_splits, test] = regime.predict_proba(X[test], list(paths[test]) if has_paths else None)
    return y, scores.mean(axis=0)
