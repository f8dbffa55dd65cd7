"""The predict pipeline as one plain function: labelled embeddings + pool embeddings -> labels.

fit (inner repeated, group-aware K-fold) -> out-of-fold scores of every labelled image -> pool
scores from the same inner models (so calibration and pool scores come from models of one kind)
-> operating point (a rule of :mod:`.calibrate`) -> expected pool sensitivity and specificity
with intervals -> triage under a reading budget. No Hydra, no MLflow, no truth: the stages, the
generalization benchmark, the scripts and the notebooks all call this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold

from brainscan_exp.core.calibrate import (
    PoolEstimate,
    Triage,
    bootstrap_rates,
    estimate_pool,
    expected_rates,
    operating_threshold,
    triage,
)
from brainscan_exp.core.stream import model_scores

CLASS_NAMES = ("normal", "cancer")


@dataclass(frozen=True)
class OperatingPoint:
    """How the threshold is set and how the pool's own rates are estimated."""

    rule: str = "pool_mixture"  # see calibrate.RULES
    target_sensitivity: float = 0.95
    confidence: float = 0.9  # tolerance rule only
    estimator: str = "mixture"  # pool estimator behind the reported expected rates (em | mixture)
    inner_folds: int = 5
    inner_repeats: int = 3
    n_boot: int = 100  # bootstrap replicates of the expected rates' intervals (0: none)
    seed: int = 0


@dataclass
class PoolPrediction:
    p_pool: np.ndarray  # P(cancer) of each pool image (mean over the inner models)
    threshold: float
    rule: str
    y_cal: np.ndarray  # labelled images' labels ...
    p_cal: np.ndarray  # ... and their out-of-fold scores
    estimate: PoolEstimate  # the pool's prior and posteriors
    expected: dict[str, float] = field(default_factory=dict)  # expected pool sensitivity, specificity, intervals
    models: list = field(default_factory=list, repr=False)  # the inner models whose mean is p_pool
    p_oof: np.ndarray | None = None  # out-of-fold score of every training image (calibrating or not)
    pool_committee: np.ndarray | None = field(default=None, repr=False)  # (n_models, n_pool) float32

    def committee(self, X: np.ndarray) -> np.ndarray:
        """(n_models, n) P(cancer) of each inner model: their disagreement is a review signal."""
        if not len(X):
            return np.zeros((len(self.models), 0))
        return model_scores(X, self.models)[1]

    def score(self, X: np.ndarray) -> np.ndarray:
        """P(cancer) of other images (e.g. copies of labelled ones) from the same inner models."""
        if not len(X):
            return np.zeros(0)
        return np.mean([m.predict_proba(X)[:, 1] for m in self.models], axis=0)

    @property
    def label_pred(self) -> np.ndarray:
        return np.where(self.p_pool >= self.threshold, CLASS_NAMES[1], CLASS_NAMES[0])


def inner_folds(y: np.ndarray, groups: np.ndarray | None, n_splits: int, n_repeats: int, seed: int):
    """Repeated stratified K-fold that never splits a group (near copies stay on one side)."""
    y = np.asarray(y, dtype=int)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    per_class = min(len(np.unique(groups[y == k])) for k in (0, 1))
    n_splits = min(n_splits, per_class)
    if n_splits < 2:
        raise ValueError(
            f"out-of-fold scores need at least 2 independent images per class, got {np.bincount(y, minlength=2).tolist()}"
        )
    for r in range(n_repeats):
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + r)
        for train, test in cv.split(np.zeros(len(y)), y, groups):
            yield r, train, test


SEMI_POOL_MAX = 50_000
"""A semi-supervised estimator sees at most this many pool images (a seeded sample): its cost grows
with the pool (label spreading builds a neighbour graph), a million rows would not fit in memory,
and beyond this sample the unlabelled images add little to 100-300 labelled ones."""


def _pool_for_fit(X_pool, seed: int) -> np.ndarray:
    n = len(X_pool)
    if n <= SEMI_POOL_MAX:
        return np.asarray(X_pool)
    return np.asarray(X_pool[np.sort(np.random.default_rng(seed).choice(n, SEMI_POOL_MAX, replace=False))])


def _fit(estimator, X: np.ndarray, y: np.ndarray, X_pool: np.ndarray, semi_supervised: bool):
    if semi_supervised:
        X, y = np.concatenate([X, X_pool]), np.concatenate([y, np.full(len(X_pool), -1)])
    return clone(estimator).fit(X, y)


def out_of_fold(
    estimator,
    X: np.ndarray,
    y: np.ndarray,
    X_pool: np.ndarray,
    groups=None,
    n_splits: int = 5,
    n_repeats: int = 3,
    seed: int = 0,
    semi_supervised: bool = False,
    score_pool=model_scores,
) -> tuple[np.ndarray, np.ndarray, list, np.ndarray]:
    """(out-of-fold score of each labelled image, mean over repeats; pool score, mean over every
    inner model; the inner models; every inner model's pool score, (n_models, n_pool) float32).

    ``X_pool`` may be any ``(n, d)`` array-like (a store memmap, a
    :class:`~brainscan_exp.features.vectors.RowView`): it is scored in chunks
    (:func:`~brainscan_exp.core.stream.model_scores`), and a semi-supervised fit sees at most
    ``SEMI_POOL_MAX`` of its rows. ``score_pool(X_pool, models) -> (mean, each)``: how the
    pool is scored (:class:`~brainscan_exp.core.ray_scores.PoolScorer`: here or on Ray)."""
    y = np.asarray(y, dtype=int)
    oof = np.full((n_repeats, len(y)), np.nan)
    models = []
    X_fit_pool = _pool_for_fit(X_pool, seed) if semi_supervised else None
    for r, train, test in inner_folds(y, groups, n_splits, n_repeats, seed):
        models.append(_fit(estimator, X[train], y[train], X_fit_pool, semi_supervised))
        oof[r, test] = models[-1].predict_proba(X[test])[:, 1]
    if len(X_pool):
        pool, committee = score_pool(X_pool, models)
    else:
        pool, committee = np.zeros(0), np.zeros((len(models), 0), np.float32)
    return np.nanmean(oof, axis=0), pool, models, committee


def decide(
    op: OperatingPoint, y_cal: np.ndarray, p_cal: np.ndarray, p_pool: np.ndarray, models: list | None = None
) -> PoolPrediction:
    """Threshold by ``op.rule`` and the pool's expected rates at it, from scores alone."""
    threshold, estimate = operating_threshold(
        op.rule, y_cal, p_cal, p_pool, op.target_sensitivity, op.confidence, op.seed
    )
    if estimate is None or estimate.method != op.estimator:
        estimate = estimate_pool(op.estimator, y_cal, p_cal, p_pool, op.seed)
    sens, spec = expected_rates(p_pool, estimate.posterior, threshold)
    expected = {"sensitivity": sens, "specificity": spec, "prior": estimate.prior}
    if op.n_boot:
        expected |= bootstrap_rates(estimate.method, y_cal, p_cal, p_pool, threshold, op.n_boot, seed=op.seed)
    return PoolPrediction(p_pool, threshold, op.rule, y_cal, p_cal, estimate, expected, list(models or []))


def predict_pool(
    estimator,
    X_lab: np.ndarray,
    y_lab: np.ndarray,
    X_pool: np.ndarray,
    op: OperatingPoint = OperatingPoint(),
    groups: np.ndarray | None = None,
    semi_supervised: bool = False,
    calibration: np.ndarray | None = None,
    score_pool=model_scores,
) -> PoolPrediction:
    """Scores, threshold and expected rates for the pool; nothing here sees a pool label.

    ``calibration``: which training rows may set the threshold and the pool estimate (default
    all); expert reads chosen by a queue train the model but are not a random sample
    (:func:`brainscan_exp.core.reads.calibration_mask`). ``score_pool``: see :func:`out_of_fold`."""
    y_lab = np.asarray(y_lab, dtype=int)
    p_oof, p_pool, models, committee = out_of_fold(
        estimator, X_lab, y_lab, X_pool, groups, op.inner_folds, op.inner_repeats, op.seed, semi_supervised, score_pool
    )
    cal = np.ones(len(y_lab), bool) if calibration is None else np.asarray(calibration, bool)
    prediction = decide(op, y_lab[cal], p_oof[cal], p_pool, models)
    prediction.p_oof, prediction.pool_committee = p_oof, committee
    return prediction


def predictions_table(files, prediction: PoolPrediction, n_reads: int) -> tuple[pd.DataFrame, Triage]:
    """One row per predicted pool image: p_cancer, label_pred (at the operating point), triage
    (cancer | normal | review under the reading budget) and the pool posterior it ranked by."""
    sorted_triage = triage(prediction.p_pool, prediction.estimate.posterior, prediction.threshold, n_reads)
    return pd.DataFrame(
        {
            "file": list(files),
            "p_cancer": prediction.p_pool,
            "label_pred": prediction.label_pred,
            "triage": sorted_triage.decision,
            "p_cancer_pool": prediction.estimate.posterior,
            "label_source": "model",
            "near_copy_of": "",
        }
    ), sorted_triage


def with_copies(table: pd.DataFrame, unlabelled: pd.DataFrame, p_copies: np.ndarray) -> pd.DataFrame:
    """Every unlabelled file: ``table``'s row for predicted images and their pixel-identical twins;
    copies of labelled images (``unlabelled.copy_of`` non-empty, ``copy_label`` 0/1) take their
    twin's label, are flagged ``label_source=copy`` and need no review. ``p_copies``: the
    model's score of those copies, in order."""
    by_hash = table.assign(pixel_hash=unlabelled.set_index("file").loc[table.file, "pixel_hash"].to_numpy())
    is_copy = unlabelled.copy_of.fillna("").to_numpy() != ""
    rows = unlabelled[~is_copy][["file", "pixel_hash"]].merge(
        by_hash.drop(columns="file").drop_duplicates("pixel_hash"), on="pixel_hash", how="left"
    )
    copies = unlabelled[is_copy]
    known = np.asarray(CLASS_NAMES, dtype=object)[copies.copy_label.to_numpy(int)]
    copy_rows = pd.DataFrame(
        {
            "file": copies.file.to_numpy(),
            "pixel_hash": copies.pixel_hash.to_numpy(),
            "p_cancer": p_copies,
            "label_pred": known,
            "triage": known,
            "p_cancer_pool": np.nan,
            "label_source": "copy",
            "near_copy_of": copies.copy_of.to_numpy(),
        }
    )
    out = pd.concat([rows, copy_rows], ignore_index=True).sort_values("file").reset_index(drop=True)
    return out.drop(columns="pixel_hash")


def expected_missed(table: pd.DataFrame) -> float:
    """Expected tumours among the images auto-labelled normal by the model (pool posteriors)."""
    auto_normal = table[(table.triage == "normal") & (table.label_source == "model")]
    return float(auto_normal.p_cancer_pool.fillna(auto_normal.p_cancer).sum())


def summary_lines(
    table: pd.DataFrame, reads_left: int | None = None, expected: dict[str, float] | None = None
) -> list[str]:
    """What a predict run ends with, in plain words; every count is of ``table``'s rows (files):
    the labels it wrote and where they come from, the review queue, and (``expected``: the run's
    own estimate on the pool, no truth used) how good it expects them to be."""
    n = {k: int((table.triage == k).sum()) for k in ("cancer", "normal", "review", "unreadable")}
    source = table.label_source.value_counts()
    lines = [
        f"labels for the pool: {len(table)} images - {n['cancer']} cancer, {n['normal']} normal, "
        f"{n['review']} for a radiologist to read"
        + (f" ({reads_left} reads left in the budget)" if reads_left is not None else "")
        + (f", {n['unreadable']} unreadable" if n["unreadable"] else ""),
        f"where the labels come from: {int(source.get('model', 0))} the model, {int(source.get('expert', 0))} "
        f"an expert's read, {int(source.get('copy', 0))} a labelled or read twin",
        f"expected missed tumours among the images the model labelled normal: {expected_missed(table):.1f}",
    ]
    if expected:
        e = {k: float(expected.get(k, np.nan)) for k in ("sensitivity", "specificity", "prior")}
        low, high = expected.get("sensitivity_low", np.nan), expected.get("sensitivity_high", np.nan)
        lines.append(
            f"the run's own estimate on this pool (no truth used): sensitivity {e['sensitivity']:.2f} "
            f"(interval {low:.2f}-{high:.2f}), specificity {e['specificity']:.2f}, tumour share {e['prior']:.2f}"
        )
    return lines


def truth_line(scored: dict[str, float], source: str) -> str:
    """One readable line for predictions scored against a truth file."""
    n, tumours = int(scored["n_scored"]), round(scored["n_scored"] * scored["tumour_share"])
    line = (
        f"checked against {source} ({n} images, {tumours} tumours): sensitivity {scored['sensitivity']:.2f}, "
        f"specificity {scored['specificity']:.2f}, ROC-AUC {scored['roc_auc']:.3f}"
    )
    if "delivered_n" in scored:
        line += (
            f"; delivered labels wrong: {scored['delivered_error_rate']:.1%} ({int(scored['delivered_missed'])} "
            f"missed tumours, {int(scored['delivered_false_alarms'])} false alarms)"
        )
    return line
