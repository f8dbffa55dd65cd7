"""Expert reads in the predict pipeline: they join training, label the images read and their
copies, and give the run an unbiased estimate of its own delivered-label error.

Why reads need care: they are not a random sample of the pool (most were chosen because the model
hesitated), so they train the model but do not calibrate it, except the audit share, which was
drawn uniformly from the unread pool. The threshold is set on the radiologists' labelled images
plus the audit reads; the delivered-error estimate comes from the audit reads' out-of-fold scores.

Reads of the safety net (the auto-normal images most likely to be tumours) check the model's
normal calls and do not train it: refitted on them, the model moves its threshold and calls other,
unread tumours normal, which undoes the check (the review benchmark measured it: one safety round
then a refit missed up to 56 tumours where the same reads without refit missed none). Their
images are delivered with the expert's label all the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

LABEL_IDS = {"normal": 0, "cancer": 1}


def with_reads(
    labelled: pd.DataFrame, pool: pd.DataFrame, resolved: pd.DataFrame, group_of=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(labelled + agreed expert reads, pool without the agreed reads and their near copies).

    Labelled rows gain ``source`` (``labelled`` | ``expert``), ``audit`` and ``trains`` (False
    for safety-net reads: :func:`training_mask`); reads of images
    outside the pool (e.g. of a labelled file) are ignored. ``group_of``: pixel hashes -> near-copy
    groups (default: each image its own group). Images in conflict or unreadable stay in the pool
    (scored, never trained on): the caller decides what they are delivered as."""
    group_of = group_of or (lambda hashes: list(hashes))
    labelled = labelled.assign(
        source=labelled.get("source", pd.Series("labelled", index=labelled.index)),
        audit=labelled.get("audit", pd.Series(False, index=labelled.index)),
        trains=labelled.get("trains", pd.Series(True, index=labelled.index)),
    )
    if "group" not in labelled:
        labelled = labelled.assign(group=group_of(labelled.pixel_hash))
    in_pool = resolved[resolved.pixel_hash.isin(pool.pixel_hash)] if len(resolved) else resolved
    agreed = in_pool[in_pool.status == "agreed"] if len(in_pool) else in_pool
    if not len(in_pool):
        return labelled.reset_index(drop=True), pool.reset_index(drop=True)
    rows = pool.set_index("pixel_hash").loc[agreed.pixel_hash].reset_index()
    reads = rows.assign(
        label=agreed.label.map(LABEL_IDS).to_numpy(int),
        group=group_of(rows.pixel_hash),
        source="expert",
        audit=agreed.audit.to_numpy(bool),
        trains=~agreed.check.to_numpy(bool),
    )
    read_groups = set(reads.group)
    pool_groups = pd.Series(group_of(pool.pixel_hash), index=pool.index)
    unread = pool[~pool.pixel_hash.isin(agreed.pixel_hash) & ~pool_groups.isin(read_groups)]
    train = pd.concat([labelled, reads[[c for c in labelled.columns if c in reads]]], ignore_index=True)
    return train, unread.reset_index(drop=True)


def training_mask(train: pd.DataFrame) -> np.ndarray:
    """Rows the model is fitted on: all but the safety net's reads (they check, not teach)."""
    return train.trains.astype(bool).to_numpy()


def calibration_mask(train: pd.DataFrame) -> np.ndarray:
    """Rows that may set the threshold: the radiologists' labelled images and the audit reads."""
    return (train.source.eq("labelled") | train.audit.astype(bool)).to_numpy()


@dataclass(frozen=True)
class DeliveredError:
    """Estimated wrong labels among the images delivered without a read, with an interval."""

    n_audit: int
    n_auto: int  # images delivered with the model's label (read ones are the expert's)
    n_delivered: int
    missed: float  # expected tumours delivered as normal
    false_alarms: float  # expected normals delivered as cancer
    rate: float  # expected wrong labels / delivered labels
    rate_low: float
    rate_high: float
    method: str  # audit | model

    def line(self) -> str:
        if self.method == "audit":
            rate = f"{self.rate:.1%} (90% interval {self.rate_low:.1%}-{self.rate_high:.1%}, from {self.n_audit} audit reads)"
        else:
            rate = f"{self.rate:.1%} (the model's own expectation: no audit read yet, so no interval)"
        return (
            f"estimated delivered-label error: {rate}; {self.missed:.1f} missed tumours and "
            f"{self.false_alarms:.1f} false alarms expected among the {self.n_auto} images the model labels"
        )


def delivered_error(
    y_audit: np.ndarray,
    p_audit: np.ndarray,
    threshold: float,
    auto_called: np.ndarray,
    q_auto: np.ndarray,
    n_delivered: int,
    level: float = 0.9,
) -> DeliveredError:
    """Audit reads (labels ``y_audit``, out-of-fold scores ``p_audit``) estimate the error rate of
    the model's labels on the unread pool; ``auto_called`` (the auto-labelled images' calls, 1 =
    cancer) scale it to counts. Conservative by construction: audits were drawn from the unread
    pool of their round, which still held the hard images later rounds read, and their scores come
    from inner models trained on 4/5 of the data. Without audits, the pool posteriors ``q_auto``
    give the model's own expectation (no interval)."""
    y, p = np.asarray(y_audit, int), np.asarray(p_audit, float)
    called = np.asarray(auto_called, int)
    n_auto, n = len(called), len(y)
    if n == 0:
        q = np.asarray(q_auto, float)
        missed, fa = float(q[called == 0].sum()), float((1 - q[called == 1]).sum())
        rate = (missed + fa) / max(n_delivered, 1)
        return DeliveredError(0, n_auto, n_delivered, missed, fa, rate, rate, rate, "model")
    wrong_missed = int(((y == 1) & (p < threshold)).sum())
    wrong_fa = int(((y == 0) & (p >= threshold)).sum())
    ci = binomtest(wrong_missed + wrong_fa, n).proportion_ci(confidence_level=level, method="exact")
    scale = n_auto / max(n_delivered, 1)
    return DeliveredError(
        n,
        n_auto,
        n_delivered,
        wrong_missed / n * n_auto,
        wrong_fa / n * n_auto,
        (wrong_missed + wrong_fa) / n * scale,
        ci.low * scale,
        ci.high * scale,
        "audit",
    )
