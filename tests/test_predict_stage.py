"""experiment=predict: labels for every unlabelled file, a budgeted review queue, the run's own
estimate of its sensitivity and specificity, and the truth opened only after predictions.csv."""

from __future__ import annotations

import builtins
import io
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from brainscan_exp.stages.predict import run


def _run_metrics(cfg):
    client = MlflowClient(cfg.logger.tracking_uri)
    (mlrun,) = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    return mlrun


def test_predictions_triage_and_truth_after_predictions(train_cfg, monkeypatch):
    cfg = train_cfg(
        "experiment=predict", "review.budget_eur=5", "review.cost_per_read_eur=1", "operating_point.n_boot=10"
    )
    out = Path(cfg.paths.output_dir)
    truth_name = Path(cfg.dataset.truth).name
    opened_before_predictions = []
    real_open, real_io_open = builtins.open, io.open

    def watch(opener):
        def wrapped(file, mode="r", *args, **kwargs):
            reading = not any(c in mode for c in "wax")  # the demo generator writes its truth file
            if reading and str(file).endswith(truth_name) and not (out / "predictions.csv").exists():
                opened_before_predictions.append(str(file))
            return opener(file, mode, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(builtins, "open", watch(real_open))
    monkeypatch.setattr(io, "open", watch(real_io_open))
    run(cfg)
    monkeypatch.undo()
    assert opened_before_predictions == [], "the truth file was opened before predictions.csv was written"

    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    root = Path(cfg.dataset.root)
    assert sorted(predictions.file) == sorted(f"sans_label/{p.name}" for p in (root / "sans_label").glob("*.jpg"))
    assert {"file", "p_cancer", "label_pred", "triage"} <= set(predictions.columns)
    assert set(predictions.label_pred) <= {"cancer", "normal"}
    model = predictions[predictions.label_source == "model"]
    twin = predictions.set_index("file").loc["sans_label/copy_of_pool.jpg"]  # pixel-identical to img_0000
    assert twin.equals(predictions.set_index("file").loc["sans_label/img_0000.jpg"])
    model = model[model.file != "sans_label/copy_of_pool.jpg"]  # distinct images
    auto_normal = (model.label_pred == "normal").sum()
    assert (model.triage == "review").sum() == min(5, auto_normal)
    assert (model.triage[model.label_pred == "cancer"] == "cancer").all()  # only auto-normal images are read
    reviewed = model[model.triage == "review"].p_cancer_pool.astype(float)
    left = model[model.triage == "normal"].p_cancer_pool.astype(float)
    assert left.empty or reviewed.min() >= left.max()  # the riskiest normals are read first

    copy = predictions[predictions.file == "sans_label/copy_of_labelled.jpg"].iloc[0]
    assert copy.label_source == "copy" and copy.near_copy_of.startswith("avec_labels/cancer/")
    assert copy.label_pred == "cancer" and copy.triage == "cancer"

    metrics = _run_metrics(cfg).data.metrics
    for key in (
        "pool_estimate/sensitivity",
        "pool_estimate/sensitivity_low",
        "pool_estimate/specificity_high",
        "pool_estimate/prior",
        "predictions/expected_missed",
        "truth/roc_auc",
    ):
        assert key in metrics
    # the count is of predictions.csv's rows: a pixel-identical twin of a queued image is queued too
    assert metrics["predictions/n_review"] == (predictions.triage == "review").sum()


def test_a_lightning_regime_is_refused_with_the_fix(train_cfg):
    cfg = train_cfg("experiment=predict", "regime=sup")
    with pytest.raises(ValueError, match="task=train"):
        run(cfg)
