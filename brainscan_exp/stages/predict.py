"""The predict stage (``experiment=predict``): a label for every unlabelled image.

Reads cfg, builds the embedding, reads the expert-label ledger, calls
:func:`brainscan_exp.core.predict.predict_pool` on the labelled images plus the expert reads, writes
``predictions.csv`` (file, p_cancer, label_pred, triage, label_source, ...) and logs to MLflow.
Expert-read images are delivered with the expert's label, their copies likewise. A truth file
(``dataset.truth``) is opened only after ``predictions.csv`` is on disk.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from brainscan_exp.core.calibrate import reads_for_budget
from brainscan_exp.core.embed import whiten_with
from brainscan_exp.core.evaluate import DefinitionOfDone, delivered_errors, score_predictions
from brainscan_exp.core.predict import (
    OperatingPoint,
    PoolPrediction,
    expected_missed,
    predict_pool,
    predictions_table,
    summary_lines,
    truth_line,
    with_copies,
)
from brainscan_exp.core.reads import DeliveredError, calibration_mask, delivered_error, training_mask, with_reads
from brainscan_exp.data.catalogue import Catalogue
from brainscan_exp.regimes.estimator import EstimatorRegime
from brainscan_exp.review.ledger import ExpertLedger, resolve
from brainscan_exp.stages.common import Prepared, log_config, open_run, output_dir, prepare

log = logging.getLogger(__name__)


def operating_point(cfg: DictConfig) -> OperatingPoint:
    op = cfg.operating_point
    return OperatingPoint(
        rule=op.rule,
        target_sensitivity=cfg.target_sensitivity,
        confidence=op.confidence,
        estimator=op.estimator,
        inner_folds=op.inner_folds,
        inner_repeats=op.inner_repeats,
        n_boot=op.n_boot,
        seed=cfg.seed,
    )


def definition_of_done(cfg: DictConfig) -> DefinitionOfDone:
    return DefinitionOfDone(**cfg.definition_of_done)


def estimator_of(cfg: DictConfig) -> EstimatorRegime:
    regime = instantiate(cfg.regime.method)
    if not isinstance(regime, EstimatorRegime):
        raise ValueError(
            f"experiment=predict needs a regime with a scikit-learn estimator on the embeddings "
            f"(linear_probe, knn, self_training, label_spreading); regime={cfg.regime.name} trains a "
            f"Lightning module: run it with task=train split.test_size=0 instead"
        )
    return regime


@dataclass
class PoolFit:
    """The predict pipeline fitted on the labelled images plus the agreed expert reads."""

    catalogue: Catalogue  # labelled = radiologists' images + agreed reads; pool = the rest
    trained: pd.DataFrame  # the labelled rows the model is fitted on (not the safety net's reads)
    ledger_rows: pd.DataFrame  # every answer in the ledger
    resolved: pd.DataFrame  # one row per image read (label, status, audit)
    unlabelled: pd.DataFrame  # every sans_label file, copy_of its labelled or read twin
    X_train: np.ndarray
    X_pool: np.ndarray  # or a lazy RowView of the store (read in chunks)
    X_copies: np.ndarray
    prediction: PoolPrediction
    reads_budget: int  # reads the whole budget buys

    @property
    def reads_left(self) -> int:
        return max(0, self.reads_budget - len(self.ledger_rows))

    def status_of(self, hashes) -> np.ndarray:
        """Ledger status of each pixel hash ('' when never read)."""
        status = dict(zip(self.resolved.pixel_hash, self.resolved.status)) if len(self.resolved) else {}
        return np.array([status.get(h, "") for h in hashes], dtype=object)


def ledger_of(cfg: DictConfig) -> ExpertLedger:
    return ExpertLedger(cfg.review.ledger)


def fit_pool(cfg: DictConfig, prep: Prepared, target_sensitivity: float | None = None) -> PoolFit:
    """Labelled images + the ledger's agreed reads -> the inner models, the operating point (set on
    the labelled images and the audit reads only, for ``target_sensitivity``, default the run's)
    and every pool image's score."""
    rows = ledger_of(cfg).read()
    resolved = resolve(rows)
    cat = prep.catalogue
    train, pool = with_reads(cat.labelled, cat.pool, resolved, cat.group_of)
    cat = replace(cat, labelled=train, pool=pool)
    unlabelled = cat.unlabelled_files()
    train = train[training_mask(train)].reset_index(drop=True)
    X_train, (X_pool, X_copies) = whiten_with(
        prep.X(train), prep.view(pool), prep.X(unlabelled[unlabelled.copy_of != ""]), cfg.embedding.whiten
    )
    regime = estimator_of(cfg)
    prediction = predict_pool(
        regime.estimator,
        X_train,
        train.label.to_numpy(),
        X_pool,
        replace(operating_point(cfg), target_sensitivity=float(target_sensitivity or cfg.target_sensitivity)),
        train.group.to_numpy(),
        regime.semi_supervised,
        calibration_mask(train),
        instantiate(cfg.predict),
    )
    if len(rows):
        log.info(
            "expert ledger %s: %d answers, %d images read (%d agreed, %d audit), %d in conflict, %d unreadable",
            cfg.review.ledger,
            len(rows),
            len(resolved),
            int((resolved.status == "agreed").sum()),
            int(resolved.audit.sum()),
            int((resolved.status == "conflict").sum()),
            int((resolved.status == "unreadable").sum()),
        )
    budget = reads_for_budget(cfg.review.budget_eur, cfg.review.cost_per_read_eur)
    return PoolFit(cat, train, rows, resolved, unlabelled, X_train, X_pool, X_copies, prediction, budget)


def deliver(fit: PoolFit) -> pd.DataFrame:
    """predictions.csv's table: the model's labels with the safety-net triage for the reads left;
    expert-read images take the expert's label (``label_source=expert``), their copies the same
    (``copy``); images in conflict go back to review (adjudication), unreadable ones say so."""
    pool = fit.catalogue.pool
    status = fit.status_of(pool.pixel_hash)
    n_open = int((status == "conflict").sum())
    table, _ = predictions_table(pool.file, fit.prediction, max(0, fit.reads_left - n_open))
    table.loc[status == "conflict", "triage"] = "review"
    table.loc[status == "unreadable", "triage"] = "unreadable"
    table = with_copies(table, fit.unlabelled, fit.prediction.score(fit.X_copies))
    read_files = set(fit.resolved.file[fit.resolved.status == "agreed"]) if len(fit.resolved) else set()
    expert = table.file.isin(read_files).to_numpy()
    table.loc[expert, "label_source"] = "expert"
    table.loc[expert, "near_copy_of"] = ""
    return table


def estimate_delivered(fit: PoolFit, table: pd.DataFrame) -> DeliveredError:
    """The run's own delivered-label error, from the audit reads (or the pool estimate without)."""
    train, p_oof = fit.trained, fit.prediction.p_oof
    audit = train.audit.astype(bool).to_numpy()
    auto = table[(table.label_source == "model") & table.triage.isin(["cancer", "normal"])]
    return delivered_error(
        train.label.to_numpy(int)[audit],
        p_oof[audit],
        fit.prediction.threshold,
        (auto.triage == "cancer").to_numpy(int),
        auto.p_cancer_pool.fillna(auto.p_cancer).to_numpy(float),
        int((table.triage != "unreadable").sum()),
    )


def run(cfg: DictConfig) -> dict[str, float]:
    out_dir = output_dir(cfg)
    with open_run(cfg, regime=cfg.regime.name) as tracker:
        log_config(tracker, cfg)
        prep = prepare(cfg, tracker, out_dir)
        # the labels delivered: at the review benchmark's delivery target (rounds queue at target_sensitivity)
        fit = fit_pool(cfg, prep, cfg.review.delivery_sensitivity)
        prediction, op = fit.prediction, operating_point(cfg)
        table = deliver(fit)
        table.to_csv(out_dir / "predictions.csv", index=False)
        tracker.log_artifact(out_dir / "predictions.csv")
        estimate = estimate_delivered(fit, table)

        expected = {f"pool_estimate/{k}": v for k, v in prediction.expected.items()}
        n_review = int((table.triage == "review").sum())
        tracker.log_metrics(
            expected
            | {
                "operating_threshold": prediction.threshold,
                "predictions/n_review": float(n_review),
                "predictions/expected_missed": expected_missed(table),
                "predictions/n_expert": float((table.label_source == "expert").sum()),
                "predictions/cancer_share": float((table.label_pred == "cancer").mean()),
                "delivered_estimate/rate": estimate.rate,
                "delivered_estimate/rate_low": estimate.rate_low,
                "delivered_estimate/rate_high": estimate.rate_high,
                "delivered_estimate/missed": estimate.missed,
                "delivered_estimate/false_alarms": estimate.false_alarms,
                "review/reads_used": float(len(fit.ledger_rows)),
                "review/reads_left": float(fit.reads_left),
            }
        )
        tracker.set_tags({"delivered_estimate/method": estimate.method})
        dod = definition_of_done(cfg)
        sens, spec = prediction.expected["sensitivity"], prediction.expected["specificity"]
        met = sens >= dod.sensitivity and spec >= dod.specificity
        (out_dir / "pool_estimate.json").write_text(
            json.dumps(
                {
                    "rule": op.rule,
                    "target_sensitivity": cfg.review.delivery_sensitivity,
                    "threshold": prediction.threshold,
                    **prediction.expected,
                }
                | {f"delivered_{k}": v for k, v in vars(estimate).items()},
                indent=2,
            )
        )
        tracker.log_artifact(out_dir / "pool_estimate.json")
        if not met:
            log.warning(
                "definition of done NOT met on this pool by the run's own estimate: expected sensitivity %.3f "
                "(90%% interval low %.3f), specificity %.3f; bars %.2f / %.2f",
                sens,
                prediction.expected.get("sensitivity_low", sens),
                spec,
                dod.sensitivity,
                dod.specificity,
            )
        tracker.set_tags({"pool_estimate/dod_met": met})

        result = dict(expected)
        scored = None
        if cfg.dataset.get("truth"):  # opened only now, after predictions.csv is written
            truth = pd.read_csv(cfg.dataset.truth)
            scored = score_predictions(table, truth, dod=dod) | delivered_errors(table, truth)
            tracker.log_metrics({f"truth/{k}": float(v) for k, v in scored.items()})
            result |= {f"truth/{k}": float(v) for k, v in scored.items()}
        for line in summary_lines(table, fit.reads_left, prediction.expected) + [estimate.line()]:
            log.info(line)
        if scored is not None:
            log.info(truth_line(scored, f"the truth file {Path(cfg.dataset.truth).name}"))
        log.info("predictions: %s", out_dir / "predictions.csv")
        return result
