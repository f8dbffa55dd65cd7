"""experiment=generalization end to end on the demo data: one table, worst case last, a parent run
with a child per scenario, and a choice recorded with its command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hydra.utils import instantiate
from mlflow import MlflowClient
from omegaconf import open_dict

from brainscan_exp.stages.generalization import run


def test_benchmark_writes_one_table_and_chooses_by_the_worst_case(train_cfg, tmp_path):
    cfg = train_cfg("experiment=generalization")
    instantiate(cfg.dataset)  # generates the demo data
    with open_dict(cfg):
        root = cfg.dataset.root
        g = cfg.generalization
        g.datasets = {
            "demo": {"root": root, "truth": f"{root}/truth.csv"},
            "demo_nolabels": {"root": root, "truth": None},
        }
        g.embeddings = {"lite0_s3": [{"name": "tf_efficientnet_lite0", "out_indices": [3]}]}
        g.heads = {"C0.1": {"C": 0.1, "whiten": 0}, "white": {"C": 0.1, "whiten": 8}}
        g.rules = ["conformal", "pool_mixture"]
        g.cross_datasets = False  # one folder twice: its cross scenarios would have nothing new to score
        g.tumour_shares, g.few_labels, g.outer_folds, g.auc_bootstrap = [0.3], 12, 3, 50
        g.results_json = str(tmp_path / "generalization.json")
        cfg.operating_point.inner_folds, cfg.operating_point.inner_repeats = 3, 1
    run(cfg)

    out = Path(cfg.paths.output_dir)
    table = pd.read_csv(out / "generalization.csv")
    assert set(table.scenario) == {"demo", "demo/share_30", "demo/labels_12", "demo_nolabels_cv"}
    assert len(table) == 4 * 2 * 2  # scenarios x heads x rules
    assert table.roc_auc.between(0, 1).all() and (table.auc_low <= table.roc_auc).all()
    cv_row = table[table.scenario == "demo_nolabels_cv"].iloc[0]
    assert cv_row.n_scored == 20  # every labelled image scored once by the outer CV
    shares = table[table.scenario == "demo/share_30"].tumour_share
    assert (shares.round(2) == 0.3).all() or (abs(shares - 0.3) < 0.05).all()

    md = (out / "generalization.md").read_text()
    assert "**worst case**" in md
    chosen = json.loads(Path(cfg.generalization.results_json).read_text())["chosen"]
    cell = table[(table["head"] == chosen["head"]) & (table.rule == chosen["rule"])]
    assert chosen["worst_auc"] == cell.roc_auc.min()
    margin = pd.concat([table.roc_auc - 0.92, table.sensitivity - 0.90, table.specificity - 0.50], axis=1).min(axis=1)
    assert chosen["worst_margin"] == pytest.approx(margin.groupby([table["head"], table.rule]).min().max())  # maximin

    predictions = pd.read_parquet(out / "predictions.parquet")
    assert {"file", "p_cancer", "label_pred", "triage", "rule", "scenario"} <= set(predictions.columns)
    client = MlflowClient(cfg.logger.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parent) == 1 and len(children) == 4
    assert {c.data.tags["scenario"] for c in children} == set(table.scenario)
