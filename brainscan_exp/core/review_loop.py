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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from brainscan_exp.core.calibrate import triage
from brainscan_exp.core.predict import OperatingPoint, PoolPrediction, decide, predict_pool
from brainscan_exp.core.reads import calibration_mask, delivered_error, training_mask, with_reads
from brainscan_exp.core.review_queue import PoolView, choose_reads
from brainscan_exp.core.scenarios import Scenario
from brainscan_exp.review.ledger import ExpertLedger, resolve


@dataclass
class Fitted:
    train: pd.DataFrame  # what the model is fitted on: labelled + agreed reads but the safety net's
    unread: pd.DataFrame
    prediction: PoolPrediction
    X_train: np.ndarray
    X_unread: np.ndarray
    n_checked: int = 0  # safety-net reads: delivered with the expert's label, not trained on


@dataclass(frozen=True)
class Pipeline:
    """The predict pipeline's pieces: what every round refits."""

    estimator: object
    op: OperatingPoint
    X_of: Callable[[pd.Series], np.ndarray]  # pixel hashes -> embedding rows
    semi_supervised: bool = False
    group_of: Callable | None = None  # pixel hashes -> near-copy groups


def fit_round(pipe: Pipeline, labelled: pd.DataFrame, pool: pd.DataFrame, ledger_rows: pd.DataFrame) -> Fitted:
    known, unread = with_reads(labelled, pool, resolve(ledger_rows), pipe.group_of)
    train = known[training_mask(known)].reset_index(drop=True)
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
    return Fitted(train, unread, prediction, X_train, X_unread, int(len(known) - len(train)))


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def at_target(pipe: Pipeline, fitted: Fitted, target_sensitivity: float) -> PoolPrediction:
    """The fit's decision for another sensitivity target: same models and scores, new threshold
    (calibrated as always on the labelled images and the audit reads), no refit."""
    pred = fitted.prediction
    cal = calibration_mask(fitted.train)
    decided = decide(
        replace(pipe.op, target_sensitivity=float(target_sensitivity)),
        fitted.train.label.to_numpy(int)[cal],
        pred.p_oof[cal],
        pred.p_pool,
        pred.models,
    )
    decided.p_oof = pred.p_oof
    return decided


def score_delivered(
    fitted: Fitted, truth: pd.Series, reviewed: np.ndarray | None = None, prediction: PoolPrediction | None = None
) -> dict[str, float]:
    """Delivered labels against the truth (``truth``: file -> cancer|normal) on the scored images:
    read images carry the expert's (here: the truth's) label; ``reviewed`` (a mask over the unread
    images: today's one-shot safety queue) likewise; every other image the model's, at
    ``prediction``'s threshold (default the fit's). Also the run's own audit-based estimate of its
    error rate and whether its interval held."""
    unread, pred = fitted.unread, prediction or fitted.prediction
    scored = unread.file.isin(truth.index).to_numpy()
    y = (truth.reindex(unread.file).to_numpy() == "cancer").astype(int)
    called = (pred.p_pool >= pred.threshold).astype(int)
    reviewed = np.zeros(len(unread), bool) if reviewed is None else reviewed
    auto = scored & ~reviewed
    missed = int(((y == 1) & (called == 0) & auto).sum())
    false_alarms = int(((y == 0) & (called == 1) & auto).sum())
    n_expert = int(fitted.train.source.eq("expert").sum()) + fitted.n_checked
    n_read = n_expert + int((scored & reviewed).sum())
    n_delivered = int(scored.sum()) + n_expert
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


def one_shot(pipe: Pipeline, first: Fitted, truth: pd.Series, n_reads: int, targets) -> list[dict[str, float]]:
    """Today's behaviour, per delivery target: one fit on the labelled images, the budget spent
    once on the safety queue (auto-normal images most likely to be tumours), answers unused."""
    rows = []
    for target in targets:
        pred = at_target(pipe, first, target)
        decision = triage(pred.p_pool, pred.estimate.posterior, pred.threshold, n_reads).decision
        rows.append({"delivery_sensitivity": float(target)} | score_delivered(first, truth, decision == "review", pred))
    return rows


def simulate(
    pipe: Pipeline,
    scenario: Scenario,
    strategy: str,
    final_strategy: str | None,
    batch_size: int,
    audit_share: float,
    n_budget: int,
    first: Fitted | None = None,
    seed: int = 0,
    workdir: str | Path | None = None,
    delivery_targets=(),
) -> tuple[list[dict[str, float]], Fitted]:
    """Rounds of ``batch_size`` reads by ``strategy`` (``final_strategy``, if given, for the round
    that spends the rest) until ``n_budget`` is spent, each answered
    from ``scenario.truth`` through a fresh ledger; returns the delivered labels' scores (one row
    per sensitivity target of the final labels, ``delivery_targets``, default the pipeline's own)
    and the final fit. ``first``: the fit without reads, shared by every strategy of a scenario."""
    truth = scenario.truth.set_index("file").label
    files = scenario.pool[["file", "pixel_hash"]]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        ledger = ExpertLedger(Path(tmp) / "expert_labels.csv")
        fitted = first or fit_round(pipe, scenario.labelled, scenario.pool, ledger.read())
        rounds = 0
        while (left := n_budget - len(ledger.read())) > 0:
            if rounds:
                fitted = fit_round(pipe, scenario.labelled, scenario.pool, ledger.read())
            view = PoolView.of(fitted.prediction, fitted.X_unread, fitted.X_train)
            answerable = ~fitted.unread.file.isin(truth.index).to_numpy()  # the reader knows only the truth's images
            idx, reasons = choose_reads(
                strategy,
                view,
                min(batch_size, left),
                audit_share,
                seed + rounds,
                np.flatnonzero(answerable),
                final_strategy if left <= batch_size else None,
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
    rows = [
        {"delivery_sensitivity": float(t), "rounds": rounds}
        | score_delivered(fitted, truth, None, at_target(pipe, fitted, t))
        for t in (delivery_targets or [pipe.op.target_sensitivity])
    ]
    return rows, fitted
