"""Scenarios for the generalization benchmark: (labelled set, pool, pool truth), shifted on purpose.

Why: one dataset's pool measures one shift. A truth file can serve as a *stress generator*:
take a tumour subtype out of the labelled set, resample the pool's tumour share, keep fewer
labels. Every builder only removes labelled images or subsamples the pool: no pool image ever
moves into the labelled set, and the predict pipeline gets ``labelled`` and ``pool`` only; the
truth rides beside them, for scoring after the predictions are written.

Labelled images carry a ``group`` (near-copy group): subsamples and outer folds keep groups whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    labelled: pd.DataFrame  # file, pixel_hash, label (0/1), group
    pool: pd.DataFrame  # file, pixel_hash: what the predict pipeline sees
    truth: pd.DataFrame  # file, label (cancer|normal): the scored pool images; for scoring only


def _with_groups(labelled: pd.DataFrame) -> pd.DataFrame:
    return labelled if "group" in labelled else labelled.assign(group=labelled.pixel_hash)


def from_truth(
    name: str, labelled: pd.DataFrame, pool: pd.DataFrame, truth: pd.DataFrame, exclude: set[str] = frozenset()
) -> Scenario:
    """The dataset as delivered: the scored pool is every pool image with a truth row, except
    ``exclude`` (files known to be copies of labelled images)."""
    scored = truth[truth.file.isin(pool.file) & ~truth.file.isin(exclude)][["file", "label"]].reset_index(drop=True)
    return Scenario(name, "the dataset as delivered", _with_groups(labelled), pool[["file", "pixel_hash"]], scored)


def without_subtype(base: Scenario, subtypes: pd.Series, subtype: str) -> Scenario:
    """No labelled image of ``subtype`` (``subtypes``: file -> subtype); the pool keeps it."""
    drop = set(subtypes[subtypes == subtype].index)
    labelled = base.labelled[~base.labelled.file.isin(drop)].reset_index(drop=True)
    return Scenario(
        f"no_{subtype}",
        f"labelled set without {subtype} tumours ({len(base.labelled) - len(labelled)} removed)",
        labelled,
        base.pool,
        base.truth,
    )


def with_tumour_share(base: Scenario, share: float, seed: int = 0) -> Scenario:
    """Subsample the scored pool's tumours (or normals) so that tumours are ``share`` of it."""
    rng = np.random.default_rng(seed)
    tumours, normals = base.truth[base.truth.label == "cancer"], base.truth[base.truth.label == "normal"]
    n_t = int(round(share / (1 - share) * len(normals)))
    if n_t <= len(tumours):
        tumours = tumours.iloc[np.sort(rng.choice(len(tumours), n_t, replace=False))]
    else:
        n_n = int(round((1 - share) / share * len(tumours)))
        normals = normals.iloc[np.sort(rng.choice(len(normals), n_n, replace=False))]
    truth = pd.concat([tumours, normals]).reset_index(drop=True)
    keep = set(truth.file) | set(base.pool.file[~base.pool.file.isin(base.truth.file)])  # unscored pool images stay
    pool = base.pool[base.pool.file.isin(keep)].reset_index(drop=True)
    return Scenario(
        f"share_{round(share * 100)}",
        f"pool resampled to {share:.0%} tumours ({len(truth)} scored)",
        base.labelled,
        pool,
        truth,
    )


def group_stratified_subsample(labelled: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """About ``n`` labelled images, half per class as far as possible, whole groups only."""
    rng = np.random.default_rng(seed)
    kept = []
    for label in (0, 1):
        part = labelled[labelled.label == label]
        groups = part.group.unique()
        rng.shuffle(groups)
        sizes = part.groupby("group").size()
        total = 0
        for g in groups:
            if total >= n // 2:
                break
            kept.append(g)
            total += int(sizes[g])
    return labelled[labelled.group.isin(kept)].reset_index(drop=True)


def with_fewer_labels(base: Scenario, n: int, seed: int = 0) -> Scenario:
    labelled = group_stratified_subsample(base.labelled, n, seed)
    return Scenario(
        f"labels_{n}",
        f"{len(labelled)} labelled images instead of {len(base.labelled)}",
        labelled,
        base.pool,
        base.truth,
    )


def outer_cv(
    name: str, labelled: pd.DataFrame, pool: pd.DataFrame, n_splits: int = 5, seed: int = 0
) -> Iterator[Scenario]:
    """For a dataset whose pool has no truth: each outer fold's labelled test images join the
    pool unlabelled and are the scored images; the others are the labelled set."""
    labelled = _with_groups(labelled)
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(cv.split(labelled, labelled.label, labelled.group)):
        held = labelled.iloc[test]
        truth = held.assign(label=np.where(held.label == 1, "cancer", "normal"))[["file", "label"]].reset_index(
            drop=True
        )
        yield Scenario(
            f"{name}_fold{k}",
            f"outer fold {k} of {n_splits}: {len(test)} labelled images held out",
            labelled.iloc[train].reset_index(drop=True),
            pd.concat([pool[["file", "pixel_hash"]], held[["file", "pixel_hash"]]]).reset_index(drop=True),
            truth,
        )


def across(source: str, labelled: pd.DataFrame, target: str, pool: pd.DataFrame, truth: pd.DataFrame) -> Scenario:
    """Labelled images of one collection, pool of another: the shift a new hospital brings
    (scanners, sequences, sources), with both classes' scores moving, not only the prior. Pool
    images whose pixels a labelled image has are dropped (collections share public images)."""
    pool = pool[~pool.pixel_hash.isin(labelled.pixel_hash)]
    scored = truth[truth.file.isin(pool.file)][["file", "label"]].reset_index(drop=True)
    return Scenario(
        f"{source}->{target}",
        f"labelled {source}, pool and truth {target}",
        _with_groups(labelled),
        pool[["file", "pixel_hash"]].reset_index(drop=True),
        scored,
    )
