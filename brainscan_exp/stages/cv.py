"""The evaluation protocol: every regime on the same repeated stratified K-fold, then aggregation.

Each (regime, fold, label budget) cell is a child MLflow run under one parent, and its result is
cached under a content key (features, dataset, regime config, fold, seed): an interrupted
protocol resumes where it stopped, and cells computed by a ``task=train split.fold=k`` sweep
are not recomputed. The parent run gets the aggregated table (mean and bootstrap CI per regime,
paired differences against the reference with Holm-corrected p-values), ROC curves,
reliability diagrams, a forest plot and the label-efficiency curve.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from brainscan_exp.artefacts import atomic_write, content_key
from brainscan_exp.core.scenarios import group_stratified_subsample
from brainscan_exp.data.splits import repeated_cv_split, split_off_groups
from brainscan_exp.evaluation import (
    label_efficiency_table,
    paired_differences,
    plot_forest,
    plot_label_efficiency,
    plot_reliability_diagram,
    plot_roc_curve,
    summarise,
    to_markdown,
)
from brainscan_exp.report.label_efficiency import summarise_budgets
from brainscan_exp.stages.common import Prepared, log_config, open_run, output_dir, prepare
from brainscan_exp.stages.train import fit_and_evaluate
from brainscan_exp.tracking.mlflow_run import MlflowRun

log = logging.getLogger(__name__)
# the code a cell's result depends on: a change to any of it recomputes the cells (no version to bump)
CELL_CODE = (
    "brainscan_exp.regimes",
    "brainscan_exp.models",
    "brainscan_exp.semi",
    "brainscan_exp.evaluation",
    "brainscan_exp.data.splits",
    "brainscan_exp.stages.train",
    "brainscan_exp.stages.cv",
)


def subsample_labels(split: pd.DataFrame, n_labels: int | None, val_size: float, seed: int) -> pd.DataFrame:
    """Keep about ``n_labels`` labelled images of the training fold (half per class, whole
    near-copy groups); the others become ``unused`` (they join the pool as unlabelled); val is
    re-carved from the kept ones, whole groups again."""
    fold = split[split.split != "test"]
    if n_labels is None or n_labels >= len(fold):
        return split
    fold = fold if "group" in fold else fold.assign(group=fold.index)  # no group known: each image its own
    kept = group_stratified_subsample(fold.reset_index(), n_labels, seed).set_index("index")
    out = split.copy()
    out.loc[fold.index, "split"] = "unused"
    out.loc[kept.index, "split"] = "train"
    if val_size > 0 and kept.groupby("label").group.nunique().min() >= 2:
        _, val_rows = split_off_groups(kept.reset_index(drop=True), np.arange(len(kept)), val_size, seed)
        out.loc[kept.index[val_rows], "split"] = "val"
    return out


def cell_key(cfg: DictConfig, regime_cfg: DictConfig, prep: Prepared, fold: int, n_labels: int | None) -> str:
    spec = {
        "features": prep.store.key,
        "dataset": prep.catalogue.fingerprint,
        "regime": OmegaConf.to_container(regime_cfg, resolve=True),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "trainer": OmegaConf.to_container(cfg.trainer, resolve=True) | {"default_root_dir": None},
        "split": {k: v for k, v in OmegaConf.to_container(cfg.split, resolve=True).items() if k != "fold"},
        "fold": fold,
        "n_labels": n_labels,
        "seed": cfg.seed,
        "target_sensitivity": cfg.target_sensitivity,
        "operating_point": OmegaConf.to_container(cfg.operating_point, resolve=True),
    }
    return content_key(spec, *CELL_CODE)


def run_cell(cfg, name, regime_cfg, prep, fold, n_labels, parent: MlflowRun, cache_dir: Path, out_dir: Path) -> dict:
    key = cell_key(cfg, regime_cfg, prep, fold, n_labels)
    cached = cache_dir / f"{key}.json"
    if cached.exists():
        return json.loads(cached.read_text()) | {"label_budget": n_labels or "all"}
    split = repeated_cv_split(
        prep.catalogue.labelled, fold, cfg.split.n_splits, cfg.split.n_repeats, cfg.split.val_size, cfg.split.seed
    )
    split = subsample_labels(split, n_labels, cfg.split.val_size, cfg.seed + fold)
    extra_pool = split[split.split == "unused"]
    if len(extra_pool):  # labels withheld for the budget: those images join the pool, unlabelled
        pool = pd.concat([prep.catalogue.pool, extra_pool.drop(columns="split").assign(label=-1)], ignore_index=True)
        prep = replace(prep, catalogue=replace(prep.catalogue, pool=pool))
    tags = {"regime": name, "fold": fold, "n_labels": n_labels or "all", "protocol": "cv"}
    with MlflowRun(
        cfg.logger.tracking_uri,
        cfg.logger.experiment_name,
        f"{name}-fold{fold}-n{n_labels or 'all'}",
        parent.tags | tags,
        parent_run_id=parent.run_id,
    ) as child:
        result = fit_and_evaluate(
            cfg, regime_cfg, prep, split, child, out_dir / "cells" / key, log_curves=cfg.cv.log_curves
        )
    n_train = int(split.split.isin(["train", "val"]).sum())
    row = {
        "regime": name,
        "fold": fold,
        "label_budget": n_labels or "all",
        "n_labels": n_train,
        "n_train": n_train,
        "n_test": int((split.split == "test").sum()),
        **result.metrics,
        "y_test": result.y_test.tolist(),
        "p_test": result.p_test.tolist(),
    }
    atomic_write(cached, lambda tmp: tmp.write_text(json.dumps(row)))
    return row


def aggregate(rows: pd.DataFrame, reference: str, out_dir: Path, tracker: MlflowRun) -> pd.DataFrame:
    full = rows[rows.label_budget.astype(str) == "all"]
    metrics = [
        c
        for c in full.columns
        if c
        not in {
            "regime",
            "fold",
            "label_budget",
            "n_labels",
            "n_train",
            "n_test",
            "y_test",
            "p_test",
            "threshold",
            "tp",
            "fp",
            "tn",
            "fn",
            "n",
        }
    ]
    summary = summarise(full, metrics=metrics, n_train=float(full.n_train.mean()), n_test=float(full.n_test.mean()))
    summary.to_csv(out_dir / "summary.csv", index=False)
    report = ["# Repeated stratified CV", "", f"{full.fold.nunique()} folds, reference `{reference}`.", ""]
    diffs = None
    if reference in set(full.regime) and full.regime.nunique() > 1:
        diffs = paired_differences(
            full,
            reference=reference,
            metrics=metrics,
            n_train=float(full.n_train.mean()),
            n_test=float(full.n_test.mean()),
        )
        diffs.to_csv(out_dir / "differences.csv", index=False)
        plot_forest(diffs, out_dir / "forest.png", metrics=["sensitivity", "specificity", "roc_auc", "pr_auc"])
        tracker.log_artifact(out_dir / "differences.csv", "aggregate")
        tracker.log_artifact(out_dir / "forest.png", "aggregate")
    report.append(to_markdown(summary, diffs, primary="sensitivity"))
    (out_dir / "report.md").write_text("\n".join(report))
    curves = {
        r: (np.concatenate(g.y_test.map(np.asarray).to_list()), np.concatenate(g.p_test.map(np.asarray).to_list()))
        for r, g in full.groupby("regime")
    }
    plot_roc_curve(curves, out_dir / "roc_curves.png", title="pooled test folds")
    plot_reliability_diagram(curves, out_dir / "reliability.png")
    for name in ("summary.csv", "report.md", "roc_curves.png", "reliability.png"):
        tracker.log_artifact(out_dir / name, "aggregate")
    for row in summary.itertuples():
        tracker.log_metrics(
            {
                f"{row.regime}/{row.metric}_mean": row.mean,
                f"{row.regime}/{row.metric}_ci_low": row.ci_low,
                f"{row.regime}/{row.metric}_ci_high": row.ci_high,
            }
        )
    if rows.label_budget.nunique() > 1:
        table = label_efficiency_table(
            rows.drop(columns=["y_test", "p_test", "label_budget"]), metrics=["roc_auc", "sensitivity", "specificity"]
        )
        table.to_csv(out_dir / "label_efficiency.csv", index=False)
        plot_label_efficiency(table, out_dir / "label_efficiency.png", metric="roc_auc")
        tracker.log_artifact(out_dir / "label_efficiency.csv", "aggregate")
        tracker.log_artifact(out_dir / "label_efficiency.png", "aggregate")
    return summary


def save_label_efficiency(cfg: DictConfig, frame: pd.DataFrame, run_id: str, seconds: float) -> None:
    """``cv.results_json``: the label-efficiency summary with the run and command that made it."""
    path = Path(cfg.cv.results_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = summarise_budgets(frame.drop(columns=["y_test", "p_test"]))
    summary = {
        "command": "python -m brainscan_exp " + " ".join(sys.argv[1:]),
        "dataset": cfg.dataset.name,
        "run_id": run_id,
        "seconds": round(seconds, 1),
        "regimes": list(cfg.cv.regimes),
        "label_budgets": [str(b) for b in cfg.cv.label_budgets],
        "budget_folds": cfg.cv.budget_folds,
        "table": table.to_dict(orient="records"),
    }
    path.write_text(json.dumps(summary, indent=1))
    log.info("label-efficiency summary written to %s", path)


def run(cfg: DictConfig) -> dict[str, float]:
    started = time.perf_counter()
    out_dir = output_dir(cfg)
    n_folds = cfg.split.n_splits * cfg.split.n_repeats
    folds = list(cfg.cv.folds) if cfg.cv.get("folds") is not None else list(range(n_folds))
    budgets = [None if b in (None, "all") else int(b) for b in cfg.cv.label_budgets]
    with open_run(cfg, run_name=f"cv-{cfg.backbone.name}-{cfg.dataset.name}", protocol="cv-parent") as parent:
        log_config(parent, cfg)
        prep = prepare(cfg, parent, out_dir)
        cache_dir = Path(cfg.paths.cache_dir) / "cv_cells"
        rows = []
        for name, regime_cfg in cfg.cv.regimes.items():
            for n_labels in budgets:
                regime_budget_folds = folds if n_labels is None else folds[: cfg.cv.budget_folds]
                for fold in regime_budget_folds:
                    rows.append(run_cell(cfg, name, regime_cfg, prep, fold, n_labels, parent, cache_dir, out_dir))
                    log.info(
                        "cv %s fold %d n=%s: roc_auc=%.3f sens=%.3f",
                        name,
                        fold,
                        n_labels,
                        rows[-1]["roc_auc"],
                        rows[-1]["sensitivity"],
                    )
        frame = pd.DataFrame(rows)
        frame.drop(columns=["y_test", "p_test"]).to_csv(out_dir / "fold_metrics.csv", index=False)
        parent.log_artifact(out_dir / "fold_metrics.csv", "aggregate")
        summary = aggregate(frame, cfg.cv.reference, out_dir, parent)
        if cfg.cv.get("results_json") and frame.label_budget.nunique() > 1:
            save_label_efficiency(cfg, frame, parent.run_id, time.perf_counter() - started)
        primary = summary[summary.metric == "roc_auc"].set_index("regime")["mean"]
        return {f"{r}/roc_auc": float(v) for r, v in primary.items()}
