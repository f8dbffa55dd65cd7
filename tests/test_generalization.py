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
        lite0 = [{"name": "tf_efficientnet_lite0", "out_indices": [3]}]
        # a precision candidate: the same backbone at bf16, on one head only
        g.embeddings = {
            "lite0_s3": lite0,
            "lite0_s3_bf16": {
                "backbones": lite0,
                "features": {"precision": "bf16", "runtime": "openvino"},  # debug=fast runs torch
                "heads": ["C0.1"],
            },
        }
        g.heads = {"C0.1": {"C": 0.1, "whiten": 0}, "white": {"C": 0.1, "whiten": 8}}
        speeds = {"fp32": 100.0, "bf16": 300.0}
        (tmp_path / "speeds.json").write_text(
            json.dumps(
                {
                    "precision": {
                        "tf_efficientnet_lite0:3": {
                            p: {"model_only_images_per_s": 2 * v, "brief": {"stage_images_per_s": v}}
                            for p, v in speeds.items()
                        }
                    }
                }
            )
        )
        review = {k: cfg.review[k] for k in ("strategy", "batch_size", "audit_share", "delivery_sensitivity")}
        for p, missed in {"fp32": 0, "bf16": 2}.items():  # bf16 misses more tumours: refused whatever its AUC
            (tmp_path / f"review_{p}.json").write_text(
                json.dumps(
                    {"worst_cases": [review | {"final_strategy": cfg.review.final_strategy, "worst_missed": missed}]}
                )
            )
        g.precision.update(
            embedding="lite0_s3",
            bar_backbone="tf_efficientnet_lite0:3",
            head="C0.1",
            speeds_json=str(tmp_path / "speeds.json"),
            review_json=str(tmp_path / "review_{precision}.json"),
        )
        g.rules = ["conformal", "pool_mixture"]
        g.cross_datasets = False  # one folder twice: its cross scenarios would have nothing new to score
        g.tumour_shares, g.few_labels, g.outer_folds, g.auc_bootstrap = [0.3], 12, 3, 50
        g.results_json = str(tmp_path / "generalization.json")
        cfg.operating_point.inner_folds, cfg.operating_point.inner_repeats = 3, 1
    run(cfg)

    out = Path(cfg.paths.output_dir)
    table = pd.read_csv(out / "generalization.csv")
    assert set(table.scenario) == {"demo", "demo/share_30", "demo/labels_12", "demo_nolabels_cv"}
    assert len(table) == 4 * 2 * 2 + 4 * 1 * 2  # scenarios x heads x rules, then the bf16 candidate's one head
    assert table.roc_auc.between(0, 1).all() and (table.auc_low <= table.roc_auc).all()
    cv_row = table[table.scenario == "demo_nolabels_cv"].iloc[0]
    assert cv_row.n_scored == 20  # every labelled image scored once by the outer CV
    shares = table[table.scenario == "demo/share_30"].tumour_share
    assert (shares.round(2) == 0.3).all() or (abs(shares - 0.3) < 0.05).all()

    md = (out / "generalization.md").read_text()
    assert "**worst case**" in md and "## Precision" in md
    result = json.loads(Path(cfg.generalization.results_json).read_text())
    precision = {r["precision"]: r for r in result["precision"]["table"]}
    assert set(precision) == {"fp32", "bf16"} and precision["bf16"]["images_per_s"] == 300.0
    bf16_cell = table[(table.embedding == "lite0_s3_bf16") & (table["head"] == "C0.1") & (table.rule == "conformal")]
    assert precision["bf16"]["worst_auc"] == bf16_cell.roc_auc.min()
    assert not precision["bf16"]["review_ok"] and result["precision"]["chosen_by_rule"] == "fp32"
    chosen = result["chosen"]
    cell = table[
        (table.embedding == chosen["embedding"]) & (table["head"] == chosen["head"]) & (table.rule == chosen["rule"])
    ]
    assert chosen["worst_auc"] == cell.roc_auc.min()
    margin = pd.concat([table.roc_auc - 0.92, table.sensitivity - 0.90, table.specificity - 0.50], axis=1).min(axis=1)
    assert chosen["worst_margin"] == pytest.approx(
        margin.groupby([table.embedding, table["head"], table.rule]).min().max()
    )  # maximin

    predictions = pd.read_parquet(out / "predictions.parquet")
    assert {"file", "p_cancer", "label_pred", "triage", "rule", "scenario"} <= set(predictions.columns)
    client = MlflowClient(cfg.logger.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parent) == 1 and len(children) == 4
    assert {c.data.tags["scenario"] for c in children} == set(table.scenario)
