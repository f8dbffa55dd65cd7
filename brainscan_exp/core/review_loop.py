"""The review round trip with a simulated reader: the benchmark that chooses the review strategy.

Each round fits the predict pipeline on the labelled images plus the ledger's reads, queues a
batch by a strategy (:mod:`.review_queue`), and a reader answers from the truth file through the
same ledger and import code a radiologist's answers go through (:class:`ExpertLedger.append`).
When the budget is spent, the delivered labels (expert reads, then the model's labels at the
operating point) are scored against the truth. The truth answers reads only: nothing that sets
a threshold or fits a model sees it otherwise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from brainscan_exp.core.calibrate import triage
from brainscan_exp.core.predict import OperatingPoint, PoolPrediction, predict_pool
from brainscan_exp.core.reads import calibration_mask, delivered_error, with_reads
from brainscan_exp.core.review_queue import PoolView, choose_reads
from brainscan_exp.core.scenarios import Scenario
from brainscan_exp.review.ledger import ExpertLedger, resolve


@dataclass
class Fitted:
    train: pd.DataFrame  # labelled + agreed reads
    unread: pd.DataFrame
    prediction: PoolPrediction
    X_train: np.ndarray
    X_unread: np.ndarray


@dataclass(frozen=True)
class Pipeline:
    """The predict pipeline's pieces: what every round refits."""

    estimator: object
    op: OperatingPoint
    X_of: Callable[[pd.Series], np.ndarray]  # pixel hashes -> embedding rows
    semi_supervised: bool = False
    group_of: Callable | None = None  # pixel hashes -> near-copy groups


def fit_round(pipe: Pipeline, labelled: pd.DataFrame, pool: pd.DataFrame, ledger_rows: pd.DataFrame) -> Fitted:
    train, unread = with_reads(labelled, pool, resolve(ledger_rows), pipe.group_of)
    X_train, X_unread = pipe.X_of(train.pixel_hash), pipe.X_of(unread.pixel_hash)
    prediction = predict_pool(
        pipe.estimator,
        X_train,
        train.label.to_numpy(int),
        X_unread,
        pipe.op,
        train.group.to_numpy(),
        pipe.semi_supervised,
        calibration_mask(train),
    )
    return Fitted(train, unread, prediction, X_train, X_unread)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def score_delivered(fitted: Fitted, truth: pd.Series, reviewed: np.ndarray | None = None) -> dict[str, float]:
    """Delivered labels against the truth (``truth``: file -> cancer|normal) on the scored images:
    read images carry the expert's (here: the truth's) label; ``reviewed`` (a mask over the unread
    images: today's one-shot safety queue) likewise; every other image the model's. Also the
    run's own audit-based estimate of its error rate and whether its interval held."""
    unread, pred = fitted.unread, fitted.prediction
    scored = unread.file.isin(truth.index).to_numpy()
    y = (truth.reindex(unread.file).to_numpy() == "cancer").astype(int)
    called = (pred.p_pool >= pred.threshold).astype(int)
    reviewed = np.zeros(len(unread), bool) if reviewed is None else reviewed
    auto = scored & ~reviewed
    missed = int(((y == 1) & (called == 0) & auto).sum())
    false_alarms = int(((y == 0) & (called == 1) & auto).sum())
    n_read = int(fitted.train.source.eq("expert").sum() + (scored & reviewed).sum())
    n_delivered = int(scored.sum() + fitted.train.source.eq("expert").sum())
    normals = scored & (y == 0)
    audit = fitted.train.audit.astype(bool).to_numpy()
    estimate = delivered_error(
        fitted.train.label.to_numpy(int)[audit],
        pred.p_oof[audit],
        pred.threshold,
        called[auto],
        pred.estimate.posterior[auto],
        n_delivered,
    )
    rate = (missed + false_alarms) / max(n_delivered, 1)
    return {
        "n_pool": n_delivered,
        "n_reads": n_read,
        "missed": missed,
        "false_alarms": false_alarms,
        "error_rate": rate,
        "auc_unread": _auc(y[auto], pred.p_pool[auto]),
        "normals_auto_share": float(((called == 0) & normals & auto).sum() / max(normals.sum(), 1)),
        "estimate": estimate.rate,
        "estimate_low": estimate.rate_low,
        "estimate_high": estimate.rate_high,
        "estimate_method": estimate.method,
        "estimate_covered": bool(estimate.rate_low - 1e-12 <= rate <= estimate.rate_high + 1e-12),
    }


def one_shot(first: Fitted, truth: pd.Series, n_reads: int) -> dict[str, float]:
    """Today's behaviour: one fit on the labelled images, the budget spent once on the safety
    queue (auto-normal images most likely to be tumours), answers never refitted."""
    pred = first.prediction
    decision = triage(pred.p_pool, pred.estimate.posterior, pred.threshold, n_reads).decision
    return score_delivered(first, truth, decision == "review")


def simulate(
    pipe: Pipeline,
    scenario: Scenario,
    strategy: str,
    batch_size: int,
    audit_share: float,
    n_budget: int,
    first: Fitted | None = None,
    seed: int = 0,
    workdir: str | Path | None = None,
) -> tuple[dict[str, float], Fitted]:
    """Rounds of ``batch_size`` reads by ``strategy`` until ``n_budget`` is spent, each answered
    from ``scenario.truth`` through a fresh ledger; returns the delivered labels' scores and the
    final fit. ``first``: the fit without reads, shared by every strategy of a scenario."""
    truth = scenario.truth.set_index("file").label
    files = scenario.pool[["file", "pixel_hash"]]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        ledger = ExpertLedger(Path(tmp) / "expert_labels.csv")
        fitted = first or fit_round(pipe, scenario.labelled, scenario.pool, ledger.read())
        rounds = 0
        while (left := n_budget - len(ledger.read())) > 0:
            if rounds:
                fitted = fit_round(pipe, scenario.labelled, scenario.pool, ledger.read())
            pred = fitted.prediction
            view = PoolView(
                pred.p_pool,
                pred.threshold,
                pred.estimate.posterior,
                pred.committee(fitted.X_unread),
                fitted.X_unread,
                fitted.X_train,
            )
            answerable = ~fitted.unread.file.isin(truth.index).to_numpy()  # the reader knows only the truth's images
            idx, reasons = choose_reads(
                strategy,
                view,
                min(batch_size, left),
                audit_share,
                seed + rounds,
                np.flatnonzero(answerable),
                final=left <= batch_size,
            )
            if not len(idx):
                break
            chosen = fitted.unread.file.to_numpy()[idx]
            answers = pd.DataFrame(
                {"file": chosen, "label": truth.loc[chosen].to_numpy(), "reader": "simulated", "reason": reasons}
            )
            ledger.append(answers, files, source="simulated reader", round_=rounds + 1)
            rounds += 1
        if rounds:
            fitted = fit_round(pipe, scenario.labelled, scenario.pool, ledger.read())
    return score_delivered(fitted, truth) | {"rounds": rounds}, fitted
