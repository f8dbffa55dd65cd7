"""The features, cluster and cv stages on generated data, and the protocol's leak guards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from brainscan_exp.data import load_dataset, repeated_cv_split
from brainscan_exp.regimes.lightning import PseudoLabelRegime
from brainscan_exp.stages import cluster, cv, features, train
from brainscan_exp.stages.cv import subsample_labels


def _runs(cfg):
    client = MlflowClient(cfg.logger.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.logger.experiment_name)
    return client, client.search_runs([experiment.experiment_id])


def _artifacts(client, run_id, path=None):
    return {a.path for a in client.list_artifacts(run_id, path)}


def test_features_stage_exports_and_logs_the_grid(train_cfg):
    cfg = train_cfg("task=features", "preprocess=mri")
    features.run(cfg)
    table = pd.read_parquet(Path(cfg.paths.output_dir) / "features.parquet")
    assert (
        set(table.split) == {"labelled", "pool"} and len(table.vector.iloc[0]) == 112
    )  # Lite0 stage 3 (out_indices=[3])
    client, (run,) = _runs(cfg)
    assert {"features/features.parquet", "features/preprocessing_grid.png"} <= _artifacts(
        client, run.info.run_id, "features"
    )
    assert run.data.params["preprocess.head_crop"] == "True"


def test_cluster_stage_logs_scores_confounds_and_figures(train_cfg):
    cfg = train_cfg("task=cluster", "clusterer=gmm", "cluster.projections=[pca]")
    metrics = cluster.run(cfg)
    assert np.isfinite(metrics["silhouette"]) and "ari_train" in metrics and "heldout_ari" in metrics
    client, (run,) = _runs(cfg)
    assert run.data.tags["clusterer"] == "gmm"
    assert "cluster/eta2_mean_intensity" in run.data.metrics
    figures = _artifacts(client, run.info.run_id, "figures")
    assert {
        "figures/projections.png",
        "figures/cluster_mosaic.png",
        "figures/k_sweep.png",
        "figures/contingency.png",
    } <= figures


@pytest.mark.slow
def test_cv_protocol_aggregates_and_resumes(train_cfg):
    cfg = train_cfg(
        "experiment=cv",
        "debug=cv_fast",
        "~cv.regimes.semi_teacher",
        "~cv.regimes.sup_budget",
        "~cv.regimes.knn",
        "~cv.regimes.self_training",
    )
    cv.run(cfg)
    out = Path(cfg.paths.output_dir)
    folds = pd.read_csv(out / "fold_metrics.csv")
    assert set(folds.regime) == {"sup", "semi", "label_spreading", "linear_probe", "semi_permuted"}
    assert folds.groupby("regime").fold.apply(sorted).map(tuple).nunique() == 1  # same folds for all: paired
    diffs = pd.read_csv(out / "differences.csv")
    assert {"mean_diff", "p_holm", "significant"} <= set(diffs.columns) and "sup" not in set(diffs.regime)
    report = (out / "report.md").read_text()
    assert all(r in report for r in folds.regime.unique())
    client, runs = _runs(cfg)
    parent = next(r for r in runs if r.data.tags.get("protocol") == "cv-parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(folds)
    assert "sup/roc_auc_mean" in parent.data.metrics

    n_runs = len(runs)
    cv.run(cfg)  # every cell is cached: the second protocol only aggregates
    assert len(_runs(cfg)[1]) == n_runs + 1


def test_evaluation_copies_never_reach_the_pool(train_cfg):
    cfg = train_cfg()
    catalogue = load_dataset(cfg.dataset.root, cfg.dataset.cache_dir, generate=dict(cfg.dataset.generate))
    assert catalogue.summary()["n_pool_copies_of_labelled"] == 1  # the demo plants one
    for fold in range(4):
        split = repeated_cv_split(catalogue.labelled, fold, n_splits=2, n_repeats=2)
        test_hashes = set(split[split.split == "test"].pixel_hash)
        assert test_hashes.isdisjoint(catalogue.pool.pixel_hash)


def test_truth_file_is_not_opened_before_fitting_ends(train_cfg, tmp_path, monkeypatch):
    """The truth file only comes into existence once the regime has finished fitting: any earlier
    read would fail with FileNotFoundError."""
    cfg = train_cfg("regime=semi")
    truth_source = Path(cfg.dataset.root) / "truth.csv"
    late_truth = tmp_path / "late_truth.csv"
    cfg.dataset.truth = str(late_truth)
    original_fit = PseudoLabelRegime.fit

    def fit_then_publish_truth(self, data, ctx):
        fitted = original_fit(self, data, ctx)
        late_truth.write_text(truth_source.read_text())
        return fitted

    monkeypatch.setattr(PseudoLabelRegime, "fit", fit_then_publish_truth)
    train.run(cfg)
    _, (run,) = _runs(cfg)
    assert run.data.metrics["truth/n_scored"] > 0


def test_label_budget_subsampling_is_stratified():
    split = pd.DataFrame(
        {"label": [1] * 20 + [0] * 20, "split": ["train"] * 16 + ["test"] * 4 + ["train"] * 16 + ["test"] * 4}
    )
    out = subsample_labels(split, 10, val_size=0.2, seed=0)
    used = out[out.split.isin(["train", "val"])]
    assert len(used) == 10 and used.label.value_counts().to_dict() == {1: 5, 0: 5}
    assert (out.split == "test").sum() == 8 and (out.split == "val").sum() >= 2


def test_permuted_control_keeps_label_counts():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (30, 5)), rng.normal(4, 1, (30, 5))])
    from brainscan_exp.regimes.base import FoldData
    from brainscan_exp.semi import TeacherPseudoLabeler

    data = FoldData(X[::6], (np.arange(60)[::6] >= 30).astype(int), X[:0], np.zeros(0), X)
    plain = PseudoLabelRegime(TeacherPseudoLabeler(threshold=0.6)).pseudo_labels(data)
    permuted = PseudoLabelRegime(TeacherPseudoLabeler(threshold=0.6), permute_pseudo_labels=True, seed=1).pseudo_labels(
        data
    )
    assert np.array_equal(plain[0], permuted[0])
    assert sorted(plain[1]) == sorted(permuted[1]) and not np.array_equal(plain[1], permuted[1])


@pytest.mark.slow
def test_label_efficiency_curve(train_cfg, tmp_path):
    cfg = train_cfg(
        "experiment=label_efficiency",
        f"cv.results_json={tmp_path / 'label_efficiency_demo.json'}",  # not the project's scripts/results
        "debug=cv_fast",
        "cv.label_budgets=[8,all]",
        "cv.budget_folds=2",
        "~cv.regimes.semi",
        "~cv.regimes.semi_teacher",
        "~cv.regimes.sup_budget",
        "~cv.regimes.knn",
        "~cv.regimes.self_training",
        "~cv.regimes.semi_permuted",
        "~cv.regimes.label_spreading",
    )
    cv.run(cfg)
    out = Path(cfg.paths.output_dir)
    table = pd.read_csv(out / "label_efficiency.csv")
    assert {"sup", "linear_probe"} <= set(table.regime) and 8 in set(table.n_labels)
    assert (out / "label_efficiency.png").stat().st_size > 0
    folds = pd.read_csv(out / "fold_metrics.csv")
    assert len(folds[folds.label_budget.astype(str) == "all"]) == 2 * 4  # the full protocol is unaffected
    saved = json.loads((tmp_path / "label_efficiency_demo.json").read_text())
    assert {r["label_budget"] for r in saved["table"]} == {"8", "all"} and saved["run_id"]
