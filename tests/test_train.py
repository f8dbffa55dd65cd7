"""sup and semi run end to end on generated data and leave a complete MLflow run."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from brainscan_exp.stages.train import run


def _only_run(cfg):
    client = MlflowClient(cfg.logger.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.logger.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.parametrize("regime", ["sup", "semi"])
def test_regime_runs_and_logs(train_cfg, regime):
    cfg = train_cfg(f"regime={regime}")
    metrics = run(cfg)

    client, mlrun = _only_run(cfg)
    # the logged test metrics are those of the saved test scores at the logged operating threshold
    scores = pd.read_csv(f"{cfg.paths.output_dir}/test_scores.csv")
    called = scores.p_cancer >= mlrun.data.metrics["operating_threshold"]
    assert metrics["test/sensitivity"] == pytest.approx(called[scores.label == 1].mean())
    assert metrics["test/specificity"] == pytest.approx((~called)[scores.label == 0].mean())
    assert mlrun.data.metrics["test/fn"] == ((~called) & (scores.label == 1)).sum()
    assert mlrun.info.status == "FINISHED"
    for key in ["sensitivity", "specificity", "precision", "f1", "f2", "accuracy", "roc_auc", "pr_auc", "tp", "fn"]:
        assert f"test/{key}" in mlrun.data.metrics
    assert "truth/roc_auc" in mlrun.data.metrics  # demo truth scored after fitting
    for tag in ["sweep", "git_commit", "seed", "dataset_fingerprint", "feature_key"]:
        assert tag in mlrun.data.tags
    assert mlrun.data.params["regime.name"] == regime
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"predictions.csv", "evaluation", "config", "data"} <= artifacts
    evaluation = {a.path for a in client.list_artifacts(mlrun.info.run_id, "evaluation")}
    assert {
        "evaluation/confusion_matrix.png",
        "evaluation/confusion_matrix.csv",
        "evaluation/roc_curve.png",
    } <= evaluation

    out = cfg.paths.output_dir
    predictions = pd.read_csv(f"{out}/predictions.csv")
    pool_files = sorted(
        p.relative_to(cfg.dataset.root).as_posix()
        for p in (__import__("pathlib").Path(cfg.dataset.root) / "sans_label").iterdir()
    )
    assert sorted(predictions.file) == pool_files  # every sans_label file, copies included
    assert set(predictions.label_pred) <= {"cancer", "normal"}
    assert predictions.p_cancer.between(0, 1).all()
    assert (predictions.copy_of_labelled.fillna("") != "").sum() == 1  # the planted copy is flagged
    splits = pd.read_csv(f"{out}/splits.csv")
    assert set(splits.split) == {"train", "val", "test"}
    features = pd.read_parquet(f"{out}/features.parquet")
    assert {"file", "pixel_hash", "split", "label", "vector"} <= set(features.columns)


def test_fast_dev_run_smoke(train_cfg):
    """debug=fdr: one batch through each phase of semi (pretrain, fine-tune), and a finished run."""
    cfg = train_cfg("debug=fdr", "regime=semi")
    run(cfg)
    _, mlrun = _only_run(cfg)
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.metrics["train/steps"] == 2


def test_best_checkpoint_is_restored_with_load_from_checkpoint(tmp_path):
    """The module a phase hands on is the best-validation checkpoint, loaded by Lightning."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from brainscan_exp.models import TumourClassifier
    from brainscan_exp.regimes.lightning import restore_best

    module = TumourClassifier(in_features=4)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_weights_only=True)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, callbacks=[checkpoint])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4), torch.ones(8)), 4)
    trainer.fit(module, loader)
    saved = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():
        module.head[-1].weight.add_(1.0)  # drift after the checkpoint
    best = restore_best(module, checkpoint, backbone=None)
    assert best is not module
    assert all(torch.equal(best.state_dict()[k], v) for k, v in saved.items())


@pytest.mark.slow
def test_full_finetune_from_scratch(train_cfg):
    """weights=none trains end to end (finetune=auto resolves to full)."""
    cfg = train_cfg("backbone=simple_cnn", "regime=sup", "regime.method.finetune_epochs=1")
    metrics = run(cfg)
    _, mlrun = _only_run(cfg)
    assert mlrun.data.tags["finetune"] == "full"
    assert "test/roc_auc" in mlrun.data.metrics and metrics["test/n"] > 0


def test_failed_run_is_recorded(train_cfg):
    cfg = train_cfg("backbone.weights=/nonexistent/weights.pth")
    with pytest.raises(Exception, match="/nonexistent/weights.pth"):
        run(cfg)
    _, mlrun = _only_run(cfg)
    assert mlrun.info.status == "FAILED"
    assert "nonexistent" in mlrun.data.tags["error"]


@pytest.mark.slow
def test_consistency_cpu_path(train_cfg):
    """FixMatch on images, the CPU debug path (small CNN, tiny data)."""
    cfg = train_cfg("regime=consistency", "backbone=simple_cnn", "budget.finetune_epochs=1")
    metrics = run(cfg)
    _, mlrun = _only_run(cfg)
    assert mlrun.info.status == "FINISHED" and metrics["test/n"] > 0
    assert "consistency/mask_rate" in mlrun.data.metrics


def test_train_stage_can_fit_on_every_label(train_cfg):
    """task=train with no test split: predictions with review flags for the whole pool."""
    cfg = train_cfg("split.test_size=0", "operating_point.source=oof", "regime=linear_probe")
    run(cfg)
    predictions = pd.read_csv(f"{cfg.paths.output_dir}/predictions.csv")
    splits = pd.read_csv(f"{cfg.paths.output_dir}/splits.csv")
    assert "test" not in set(splits.split)
    assert {"uncertainty", "ood_score", "review", "review_reason"} <= set(predictions.columns)
    assert predictions.review.dtype == bool and predictions.uncertainty.between(0, 1).all()
    _, mlrun = _only_run(cfg)
    assert "truth/roc_auc" in mlrun.data.metrics
