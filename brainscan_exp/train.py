"""One training job: data -> features -> regime -> operating point -> evaluation -> predictions.

Each stage reads or writes a cached, content-keyed artefact (hash index, embedding store), so a
sweep computes each backbone's features once and a re-run resumes where the cache stops.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig

from brainscan_exp.data.catalogue import Catalogue
from brainscan_exp.data.layout import CLASS_NAMES
from brainscan_exp.data.splits import make_split
from brainscan_exp.evaluation import binary_metrics, choose_threshold, confusion_counts
from brainscan_exp.evaluation.figures import plot_confusion_matrix, plot_roc_curve
from brainscan_exp.models.backbones import Backbone
from brainscan_exp.preprocessing import ImageTransform
from brainscan_exp.regimes.base import FoldData, TrainContext
from brainscan_exp.tracking.mlflow_run import MlflowRun, flatten_params, git_commit, resolved_job_config

log = logging.getLogger(__name__)

KEY_PARAMS = ("dataset", "backbone", "preprocess", "regime", "clusterer", "model", "split", "seed", "target_sensitivity")


def resolve_finetune(mode: str, backbone: Backbone) -> str:
    """``auto``: a head on frozen features for pretrained weights; end to end from scratch."""
    if mode == "auto":
        return "frozen" if backbone.pretrained else "full"
    if mode not in {"frozen", "full"}:
        raise ValueError(f"regime.finetune must be auto|frozen|full, got {mode!r}")
    return mode


def sweep_tag(cfg: DictConfig) -> str:
    """Jobs of one multirun share the sweep directory: it tags them for side-by-side comparison."""
    try:
        hc = HydraConfig.get()
    except ValueError:
        return "none"
    return str(hc.sweep.dir) if getattr(hc.mode, "name", None) == "MULTIRUN" else "single-run"


def embed_catalogue(cfg: DictConfig, catalogue: Catalogue, backbone: Backbone, model) -> tuple[dict, dict, object]:
    """Features stage: every distinct image of the dataset, from the store or computed once."""
    mri = instantiate(cfg.preprocess)
    extractor = instantiate(cfg.features)
    paths_by_hash = dict(zip(catalogue.files.pixel_hash, catalogue.files.path))
    store, stats = extractor.run(paths_by_hash, backbone, mri, model)
    return store.load(list(paths_by_hash)), stats, store


def run(cfg: DictConfig) -> dict[str, float]:
    """Train and evaluate one (dataset, backbone, regime, split) configuration, logged to MLflow."""
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    backbone: Backbone = instantiate(cfg.backbone)
    finetune = resolve_finetune(cfg.regime.finetune, backbone)
    tags = {
        "sweep": sweep_tag(cfg), "git_commit": git_commit(cfg.paths.root_dir), "seed": cfg.seed,
        "regime": cfg.regime.name, "backbone": backbone.name, "dataset": cfg.dataset.name, "finetune": finetune,
    }
    with MlflowRun(cfg.logger.tracking_uri, cfg.logger.experiment_name, cfg.logger.run_name, tags) as tracker:
        tracker.log_config(cfg)
        resolved = resolved_job_config(cfg)
        tracker.log_params(flatten_params({k: resolved[k] for k in KEY_PARAMS if k in resolved}))

        model = backbone.build()  # fails fast, with the offline choices, before any data work
        catalogue: Catalogue = instantiate(cfg.dataset)
        tracker.set_tags({"dataset_fingerprint": catalogue.fingerprint})
        tracker.log_metrics({f"data/{k}": v for k, v in catalogue.summary().items()})
        split = make_split(catalogue.labelled, fold=cfg.split.fold, **{k: v for k, v in cfg.split.items() if k != "fold"})
        split[["file", "pixel_hash", "label", "split"]].to_csv(out_dir / "splits.csv", index=False)
        catalogue.duplicates.to_csv(out_dir / "duplicates.csv", index=False)
        (out_dir / "dataset_summary.json").write_text(json.dumps(catalogue.summary(), indent=2))
        for name in ("splits.csv", "duplicates.csv", "dataset_summary.json"):
            tracker.log_artifact(out_dir / name, "data")
        if len(catalogue.bad_files):
            catalogue.bad_files.to_csv(out_dir / "bad_files.csv", index=False)
            tracker.log_artifact(out_dir / "bad_files.csv", "data")

        vectors, feature_stats, store = embed_catalogue(cfg, catalogue, backbone, model)
        tracker.set_tags({"feature_key": store.key})
        tracker.log_metrics({f"features/{k}": v for k, v in feature_stats.items()})
        if cfg.features.get("export"):
            store.export(split[["file", "pixel_hash", "split", "label"]], out_dir / "features.parquet")

        def X(frame: pd.DataFrame) -> np.ndarray:
            return np.stack([vectors[h] for h in frame.pixel_hash]).astype(np.float32)

        parts = {name: split[split.split == name] for name in ("train", "val", "test")}
        data = FoldData(
            X(parts["train"]), parts["train"].label.to_numpy(), X(parts["val"]), parts["val"].label.to_numpy(),
            X(catalogue.pool), parts["train"].path.tolist(), parts["val"].path.tolist(), catalogue.pool.path.tolist(),
        )
        mri = instantiate(cfg.preprocess)
        mlf_logger = MLFlowLogger(experiment_name=cfg.logger.experiment_name, tracking_uri=cfg.logger.tracking_uri, run_id=tracker.run_id)
        make_trainer = instantiate(cfg.trainer)
        make_model = instantiate(cfg.model)
        ctx = TrainContext(
            make_trainer=lambda **kw: make_trainer(logger=mlf_logger, **kw),
            make_module=lambda: make_model(
                in_features=data.X_train.shape[1], backbone=copy.deepcopy(model) if finetune == "full" else None
            ),
            finetune=finetune, batch_size=cfg.regime.batch_size, num_workers=cfg.regime.num_workers, seed=cfg.seed,
            out_dir=out_dir,
            train_transform=ImageTransform(backbone.data_config, mri, train=True) if finetune == "full" else None,
            eval_transform=ImageTransform(backbone.data_config, mri, train=False) if finetune == "full" else None,
            log=tracker.log_metrics,
        )
        regime = instantiate(cfg.regime.method)
        regime.fit(data, ctx)

        # operating point from the inner validation split: the test split takes part in no decision
        p_val = regime.predict_proba(data.X_val, data.paths_val)
        threshold = choose_threshold(data.y_val, p_val, cfg.target_sensitivity) if len(p_val) else 0.5
        y_test, p_test = parts["test"].label.to_numpy(), regime.predict_proba(X(parts["test"]), parts["test"].path.tolist())
        metrics = binary_metrics(y_test, p_test, threshold)
        tracker.log_metrics({f"test/{k}": v for k, v in metrics.items()})
        y_pred = (p_test >= threshold).astype(int)
        confusion_counts(y_test, y_pred).to_csv(out_dir / "confusion_matrix.csv")
        plot_confusion_matrix(y_test, y_pred, out_dir / "confusion_matrix.png", title=f"{cfg.regime.name} / {backbone.name} (test)")
        plot_roc_curve({f"{cfg.regime.name} test": (y_test, p_test)}, out_dir / "roc_curve.png")
        pd.DataFrame({"file": parts["test"].file, "label": y_test, "p_cancer": p_test}).to_csv(out_dir / "test_scores.csv", index=False)
        for name in ("confusion_matrix.csv", "confusion_matrix.png", "roc_curve.png", "test_scores.csv"):
            tracker.log_artifact(out_dir / name, "evaluation")

        predictions = predict_unlabelled(catalogue, regime, vectors, threshold)
        predictions.to_csv(out_dir / "predictions.csv", index=False)
        tracker.log_artifact(out_dir / "predictions.csv")
        truth = cfg.dataset.get("truth")
        if truth:  # opened only now, after every fitting decision
            scored = score_against_truth(predictions, truth, threshold)
            tracker.log_metrics({f"truth/{k}": v for k, v in scored.items()})
        log.info("test metrics: %s", {k: round(v, 3) for k, v in metrics.items()})
        return {f"test/{k}": v for k, v in metrics.items()}


def predict_unlabelled(catalogue: Catalogue, regime, vectors: dict, threshold: float) -> pd.DataFrame:
    """One row per file of ``sans_label`` (copies included), with the operating point's label."""
    pool = catalogue.files[catalogue.files.label < 0].sort_values("file")
    X = np.stack([vectors[h] for h in pool.pixel_hash]).astype(np.float32)
    p = regime.predict_proba(X, pool.path.tolist())
    labelled = dict(zip(catalogue.labelled.pixel_hash, catalogue.labelled.file))
    return pd.DataFrame({
        "file": pool.file.to_numpy(),
        "p_cancer": p,
        "label_pred": np.where(p >= threshold, CLASS_NAMES[1], CLASS_NAMES[0]),
        "copy_of_labelled": [labelled.get(h, "") for h in pool.pixel_hash],
    })


def score_against_truth(predictions: pd.DataFrame, truth_path: str, threshold: float) -> dict[str, float]:
    """Evaluation only: the truth file's labels of the pool, against the written predictions."""
    truth = pd.read_csv(truth_path)
    merged = predictions.merge(truth[["file", "label"]], on="file", how="inner")
    if merged.empty:
        raise ValueError(f"{truth_path}: no row matches a predicted file; its 'file' column must be relative to dataset.root")
    y = (merged.label == CLASS_NAMES[1]).astype(int).to_numpy()
    return binary_metrics(y, merged.p_cancer.to_numpy(), threshold) | {"n_scored": float(len(merged))}
