"""The predict stage (``experiment=predict``): a label for every unlabelled image.

Reads cfg, builds the embedding, calls :func:`brainscan_exp.core.predict.predict_pool`, writes
``predictions.csv`` (file, p_cancer, label_pred, triage, ...) and logs to MLflow. A truth file
(``dataset.truth``) is opened only after ``predictions.csv`` is on disk.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from brainscan_exp.core.calibrate import reads_for_budget
from brainscan_exp.core.embed import whiten_with
from brainscan_exp.core.evaluate import DefinitionOfDone, score_predictions
from brainscan_exp.core.predict import (
    OperatingPoint,
    predict_pool,
    predictions_table,
    summary_lines,
    truth_line,
    with_copies,
)
from brainscan_exp.regimes.estimator import EstimatorRegime
from brainscan_exp.stages.common import log_config, open_run, output_dir, prepare

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


def run(cfg: DictConfig) -> dict[str, float]:
    out_dir = output_dir(cfg)
    with open_run(cfg, regime=cfg.regime.name) as tracker:
        log_config(tracker, cfg)
        prep = prepare(cfg, tracker, out_dir)
        regime = estimator_of(cfg)
        cat = prep.catalogue
        labelled, pool, unlabelled = cat.labelled, cat.pool, cat.unlabelled_files()
        copies = unlabelled[unlabelled.copy_of != ""]
        X_lab, (X_pool, X_copies) = whiten_with(prep.X(labelled), prep.X(pool), prep.X(copies), cfg.embedding.whiten)
        op = operating_point(cfg)
        prediction = predict_pool(
            regime.estimator,
            X_lab,
            labelled.label.to_numpy(),
            X_pool,
            op,
            labelled.group.to_numpy(),
            regime.semi_supervised,
        )
        n_reads = reads_for_budget(cfg.review.budget_eur, cfg.review.cost_per_read_eur)
        table, sorted_triage = predictions_table(pool.file, prediction, n_reads)
        table = with_copies(table, unlabelled, prediction.score(X_copies))
        table.to_csv(out_dir / "predictions.csv", index=False)
        tracker.log_artifact(out_dir / "predictions.csv")

        expected = {f"pool_estimate/{k}": v for k, v in prediction.expected.items()}
        tracker.log_metrics(
            expected
            | {
                "operating_threshold": prediction.threshold,
                "predictions/n_review": float(sorted_triage.n_reads),
                "predictions/expected_missed": sorted_triage.expected_missed,
                "predictions/cancer_share": float((table.label_pred == "cancer").mean()),
            }
        )
        dod = definition_of_done(cfg)
        sens, spec = prediction.expected["sensitivity"], prediction.expected["specificity"]
        met = sens >= dod.sensitivity and spec >= dod.specificity
        (out_dir / "pool_estimate.json").write_text(
            json.dumps({"rule": op.rule, "threshold": prediction.threshold, **prediction.expected}, indent=2)
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
            scored = score_predictions(table, truth, dod=dod)
            tracker.log_metrics({f"truth/{k}": float(v) for k, v in scored.items()})
            result |= {f"truth/{k}": float(v) for k, v in scored.items()}
        for line in summary_lines(table, sorted_triage, prediction.expected):
            log.info(line)
        if scored is not None:
            log.info(truth_line(scored, f"the truth file {Path(cfg.dataset.truth).name}"))
        log.info("predictions: %s", out_dir / "predictions.csv")
        return result
