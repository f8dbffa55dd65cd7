"""The train stage: one (dataset, backbone, regime, split) job.

Data -> features (cached) -> regime fit on the training fold -> operating point on the inner
validation split -> metrics on the test split -> predictions for every unlabelled file.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from brainscan_exp.data.catalogue import Catalogue
from brainscan_exp.data.layout import CLASS_NAMES
from brainscan_exp.data.splits import make_split
from brainscan_exp.evaluation import binary_metrics, choose_threshold, confusion_counts
from brainscan_exp.evaluation.figures import plot_confusion_matrix, plot_roc_curve
from brainscan_exp.models.backbones import Backbone
from brainscan_exp.preprocessing import ImageTransform
from brainscan_exp.regimes.base import FoldData, Regime, TrainContext
from brainscan_exp.regimes.out_of_fold import out_of_fold_scores
from brainscan_exp.stages.common import Prepared, log_config, open_run, output_dir, prepare
from brainscan_exp.tracking.lightning_logger import TrackerLogger
from brainscan_exp.tracking.mlflow_run import MlflowRun

log = logging.getLogger(__name__)


def resolve_finetune(mode: str, backbone: Backbone) -> str:
    """``auto``: a head on frozen features for pretrained weights; end to end from scratch."""
    if mode == "auto":
        return "frozen" if backbone.pretrained else "full"
    if mode not in {"frozen", "full"}:
        raise ValueError(f"regime.finetune must be auto|frozen|full, got {mode!r}")
    return mode


def split_for(cfg: DictConfig, catalogue: Catalogue) -> pd.DataFrame:
    return make_split(catalogue.labelled, fold=cfg.split.fold, **{k: v for k, v in cfg.split.items() if k != "fold"})


def fold_data(prep: Prepared, split: pd.DataFrame) -> FoldData:
    """The training fold (train + inner val) and the pool; test images are not in it at all."""
    train, val = split[split.split == "train"], split[split.split == "val"]
    pool = prep.catalogue.pool
    return FoldData(
        prep.X(train),
        train.label.to_numpy(),
        prep.X(val),
        val.label.to_numpy(),
        prep.X(pool),
        train.path.tolist(),
        val.path.tolist(),
        pool.path.tolist(),
    )


def calibration_scores(
    cfg: DictConfig, regime_cfg: DictConfig, regime: Regime, data: FoldData, ctx: TrainContext
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) the operating point is read from: the validation split (``source=val``)
    or out-of-fold scores of every training image (``oof``)."""
    op = cfg.operating_point
    if op.source not in {"val", "oof"}:
        raise ValueError(f"operating_point.source must be val|oof, got {op.source!r}")
    if op.source == "oof":
        quiet = replace(ctx, make_trainer=partial(ctx.make_trainer, logger=False))  # inner fits log nothing
        return out_of_fold_scores(
            lambda: instantiate(regime_cfg.method),
            data,
            quiet,
            op.inner_folds,
            op.inner_repeats,
            cfg.split.val_size,
            cfg.seed,
        )
    return data.y_val, regime.predict_proba(data.X_val, data.paths_val)


def operating_threshold(cfg: DictConfig, y: np.ndarray, p: np.ndarray, tracker: MlflowRun) -> float:
    """Threshold reaching ``target_sensitivity`` by ``operating_point.rule`` on the calibration scores."""
    if not len(p):
        log.warning("no validation images for the operating point: threshold 0.5")
        return 0.5
    op = cfg.operating_point
    threshold = choose_threshold(y, p, cfg.target_sensitivity, rule=op.rule, confidence=op.confidence)
    tracker.log_metrics(
        {
            "operating_point/n_scores": float(len(p)),
            "operating_point/calibration_sensitivity": float((p[y == 1] >= threshold).mean()),
            "operating_point/calibration_specificity": float((p[y == 0] < threshold).mean()),
        }
    )
    return threshold


@dataclass
class FoldResult:
    regime: Regime
    threshold: float
    metrics: dict[str, float]
    y_test: np.ndarray
    p_test: np.ndarray
    calibration: tuple[np.ndarray, np.ndarray]  # (labels, scores) the threshold was read from


def train_context(
    cfg: DictConfig, regime_cfg: DictConfig, prep: Prepared, out_dir: Path, logger=False, log=lambda metrics: None
) -> TrainContext:
    """The factories a regime trains with, bound to the run's trainer, model and transforms."""
    finetune = resolve_finetune(regime_cfg.finetune, prep.backbone)
    make_trainer, make_model = instantiate(cfg.trainer), instantiate(cfg.model)
    full = finetune == "full"
    return TrainContext(
        make_trainer=partial(make_trainer, logger=logger),
        make_module=lambda: make_model(in_features=prep.dim, backbone=copy.deepcopy(prep.model) if full else None),
        finetune=finetune,
        batch_size=regime_cfg.batch_size,
        num_workers=regime_cfg.num_workers,
        seed=cfg.seed,
        out_dir=out_dir,
        train_transform=ImageTransform(prep.backbone.data_config, prep.mri, train=True) if full else None,
        eval_transform=ImageTransform(prep.backbone.data_config, prep.mri, train=False) if full else None,
        log=log,
    )


def fit_and_evaluate(
    cfg: DictConfig,
    regime_cfg: DictConfig,
    prep: Prepared,
    split: pd.DataFrame,
    tracker: MlflowRun,
    out_dir: Path,
    log_curves: bool = True,
) -> FoldResult:
    """Fit one regime on one fold, choose the operating point (``operating_point``), score the test split.
    ``log_curves=False`` keeps per-epoch training curves out of MLflow (the CV protocol's cells)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = fold_data(prep, split)
    ctx = train_context(
        cfg, regime_cfg, prep, out_dir, TrackerLogger(tracker) if log_curves else False, tracker.log_metrics
    )
    tracker.set_tags({"finetune": ctx.finetune})
    regime = instantiate(regime_cfg.method)
    if cfg.operating_point.source == "oof" and not regime.uses_validation:
        data = data.with_val_in_train()  # the threshold no longer needs held-back images
    regime = regime.fit(data, ctx)
    y_cal, p_cal = calibration_scores(cfg, regime_cfg, regime, data, ctx)
    threshold = operating_threshold(cfg, y_cal, p_cal, tracker)
    test = split[split.split == "test"]
    y_test = test.label.to_numpy()
    p_test = regime.predict_proba(prep.X(test), test.path.tolist()) if len(test) else np.zeros(0)
    metrics = binary_metrics(y_test, p_test, threshold) if len(test) else {}
    tracker.log_metrics({f"test/{k}": v for k, v in metrics.items()})
    return FoldResult(regime, threshold, metrics, y_test, p_test, (y_cal, p_cal))


def log_evaluation(result: FoldResult, test_files: pd.Series, tracker: MlflowRun, out_dir: Path, title: str) -> None:
    y_pred = (result.p_test >= result.threshold).astype(int)
    confusion_counts(result.y_test, y_pred).to_csv(out_dir / "confusion_matrix.csv")
    plot_confusion_matrix(result.y_test, y_pred, out_dir / "confusion_matrix.png", title=title)
    plot_roc_curve({title: (result.y_test, result.p_test)}, out_dir / "roc_curve.png")
    pd.DataFrame({"file": test_files.to_numpy(), "label": result.y_test, "p_cancer": result.p_test}).to_csv(
        out_dir / "test_scores.csv", index=False
    )
    for name in ("confusion_matrix.csv", "confusion_matrix.png", "roc_curve.png", "test_scores.csv"):
        tracker.log_artifact(out_dir / name, "evaluation")


def predict_unlabelled(
    prep: Prepared,
    regime: Regime,
    threshold: float,
    train: pd.DataFrame,
    review_logit_band: float = 1.0,
    ood_quantile: float = 0.95,
) -> pd.DataFrame:
    """One row per file of ``sans_label`` (copies included), labelled at the operating point.

    ``uncertainty`` is exp(-|log-odds(p) - log-odds(threshold)|): 1 on the operating point,
    towards 0 far from it. ``review`` flags what a radiologist should
    see first: images whose log-odds lie within ``review_logit_band`` of the threshold's, and
    images far from the labelled data (cosine distance to the nearest training image above the
    ``ood_quantile`` of the training images' own leave-one-out distances).
    """
    pool = prep.catalogue.files[prep.catalogue.files.label < 0].sort_values("file")
    X_pool = prep.X(pool)
    p = regime.predict_proba(X_pool, pool.path.tolist())
    copy_of = prep.catalogue.unlabelled_files().set_index("file").copy_of  # exact or near copies of labelled images
    eps = 1e-6
    pc = np.clip(p, eps, 1 - eps)
    t = np.clip(threshold, eps, 1 - eps)
    distance = np.abs(np.log(pc / (1 - pc)) - np.log(t / (1 - t)))
    near_threshold = distance < review_logit_band
    ood_score = _ood_score(prep.X(train), X_pool, ood_quantile)
    far = ood_score > 1.0
    reason = np.where(
        near_threshold & far,
        "uncertain+far",
        np.where(near_threshold, "uncertain", np.where(far, "far from labelled data", "")),
    )
    return pd.DataFrame(
        {
            "file": pool.file.to_numpy(),
            "p_cancer": p,
            "label_pred": np.where(p >= threshold, CLASS_NAMES[1], CLASS_NAMES[0]),
            "uncertainty": np.exp(-distance),
            "ood_score": ood_score,
            "review": near_threshold | far,
            "review_reason": reason,
            "copy_of_labelled": copy_of.reindex(pool.file).fillna("").to_numpy(),
        }
    )


def _ood_score(X_train: np.ndarray, X: np.ndarray, quantile: float) -> np.ndarray:
    """Nearest-training-image cosine distance, divided by its ``quantile`` among training images."""
    from sklearn.neighbors import NearestNeighbors

    if len(X_train) < 3:
        return np.zeros(len(X))
    nn = NearestNeighbors(n_neighbors=2, metric="cosine").fit(X_train)
    own = nn.kneighbors(X_train)[0][:, 1]  # leave-one-out: skip the image itself
    scale = max(float(np.quantile(own, quantile)), 1e-9)
    return nn.kneighbors(X, n_neighbors=1)[0][:, 0] / scale


def score_against_truth(predictions: pd.DataFrame, truth_path: str | Path, threshold: float) -> dict[str, float]:
    """Evaluation only, after fitting: the truth file's labels of the pool against the predictions
    (pool files that are copies of labelled images are left out)."""
    truth = pd.read_csv(truth_path)
    # copies of labelled images are known already: scoring them would flatter the model
    merged = predictions[predictions.copy_of_labelled.fillna("") == ""].merge(
        truth[["file", "label"]], on="file", how="inner"
    )
    if merged.empty:
        raise ValueError(
            f"{truth_path}: no row matches a predicted file; its 'file' column must be relative to dataset.root"
        )
    y = (merged.label == CLASS_NAMES[1]).astype(int).to_numpy()
    return binary_metrics(y, merged.p_cancer.to_numpy(), threshold) | {"n_scored": float(len(merged))}


def run(cfg: DictConfig) -> dict[str, float]:
    out_dir = output_dir(cfg)
    with open_run(cfg, regime=cfg.regime.name) as tracker:
        log_config(tracker, cfg)
        prep = prepare(cfg, tracker, out_dir)
        split = split_for(cfg, prep.catalogue)
        split[["file", "pixel_hash", "label", "split"]].to_csv(out_dir / "splits.csv", index=False)
        tracker.log_artifact(out_dir / "splits.csv", "data")
        if cfg.features.get("export"):
            prep.store.export(split[["file", "pixel_hash", "split", "label"]], out_dir / "features.parquet")

        result = fit_and_evaluate(cfg, cfg.regime, prep, split, tracker, out_dir)
        test_files = split[split.split == "test"].file
        if len(test_files):
            log_evaluation(result, test_files, tracker, out_dir, f"{cfg.regime.name} / {prep.backbone.name} (test)")
        tracker.log_metrics({"operating_threshold": result.threshold})

        predictions = predict_unlabelled(
            prep, result.regime, result.threshold, split[split.split.isin(["train", "val"])]
        )
        predictions.to_csv(out_dir / "predictions.csv", index=False)
        tracker.log_artifact(out_dir / "predictions.csv")
        if cfg.dataset.get("truth"):  # opened only now, after every fitting decision
            scored = score_against_truth(predictions, cfg.dataset.truth, result.threshold)
            tracker.log_metrics({f"truth/{k}": v for k, v in scored.items()})
        tracker.log_metrics(
            {
                "predictions/n_review": float(predictions.review.sum()),
                "predictions/cancer_share": float((predictions.label_pred == CLASS_NAMES[1]).mean()),
            }
        )
        log.info("test metrics: %s", {k: round(v, 3) for k, v in result.metrics.items()})
        return {f"test/{k}": v for k, v in result.metrics.items()}
