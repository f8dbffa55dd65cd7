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

from brainscan_exp.core.review import review_table, score_at_threshold
from brainscan_exp.data.layout import CLASS_NAMES
from brainscan_exp.evaluation import binary_metrics, choose_threshold, confusion_counts
from brainscan_exp.evaluation.figures import plot_confusion_matrix, plot_roc_curve
from brainscan_exp.models.backbones import Backbone
from brainscan_exp.preprocessing import ImageTransform
from brainscan_exp.regimes.base import FoldData, Regime, TrainContext
from brainscan_exp.regimes.out_of_fold import out_of_fold_scores
from brainscan_exp.stages.common import Prepared, log_config, open_run, output_dir, prepare, split_for
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
    source: str,
    make_regime,
    regime: Regime,
    data: FoldData,
    ctx: TrainContext,
    inner_folds: int,
    inner_repeats: int,
    val_size: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) the operating point is read from: the validation split (``source=val``)
    or out-of-fold scores of every training image (``oof``, fresh regimes from ``make_regime``)."""
    if source not in {"val", "oof"}:
        raise ValueError(f"operating_point.source must be val|oof, got {source!r}")
    if source == "oof":
        quiet = replace(ctx, make_trainer=partial(ctx.make_trainer, logger=False))  # inner fits log nothing
        return out_of_fold_scores(make_regime, data, quiet, inner_folds, inner_repeats, val_size, seed)
    return data.y_val, regime.predict_proba(data.X_val, data.paths_val)


def operating_threshold(
    y: np.ndarray, p: np.ndarray, target_sensitivity: float, rule: str, confidence: float
) -> tuple[float, dict[str, float]]:
    """Threshold reaching ``target_sensitivity`` by ``rule`` on the calibration scores, and its
    calibration rates (to log)."""
    if not len(p):
        log.warning("no validation images for the operating point: threshold 0.5")
        return 0.5, {}
    threshold = choose_threshold(y, p, target_sensitivity, rule=rule, confidence=confidence)
    return threshold, {
        "operating_point/n_scores": float(len(p)),
        "operating_point/calibration_sensitivity": float((p[y == 1] >= threshold).mean()),
        "operating_point/calibration_specificity": float((p[y == 0] < threshold).mean()),
    }


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
    op = cfg.operating_point
    y_cal, p_cal = calibration_scores(
        op.source,
        lambda: instantiate(regime_cfg.method),
        regime,
        data,
        ctx,
        op.inner_folds,
        op.inner_repeats,
        cfg.split.val_size,
        cfg.seed,
    )
    threshold, rates = operating_threshold(y_cal, p_cal, cfg.target_sensitivity, op.rule, op.confidence)
    tracker.log_metrics(rates)
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


def pool_predictions(prep: Prepared, result: FoldResult, train: pd.DataFrame) -> pd.DataFrame:
    """Every ``sans_label`` file (copies included) at the operating point, with review flags."""
    pool = prep.catalogue.files[prep.catalogue.files.label < 0].sort_values("file")
    X_pool = prep.X(pool)
    copy_of = prep.catalogue.unlabelled_files().set_index("file").copy_of  # exact or near copies of labelled images
    return review_table(
        pool.file.to_numpy(),
        result.regime.predict_proba(X_pool, pool.path.tolist()),
        result.threshold,
        prep.X(train),
        X_pool,
        copy_of.reindex(pool.file).fillna("").to_numpy(),
    )


def test_line(result: FoldResult) -> str:
    """The test split's metrics as one readable line, with the counts that say how much they mean."""
    n, tumours, m = len(result.y_test), int(result.y_test.sum()), result.metrics
    line = (
        f"held-out test split ({n} images, {tumours} tumours): sensitivity {m['sensitivity']:.2f}, "
        f"specificity {m['specificity']:.2f}, ROC-AUC {m['roc_auc']:.3f}"
    )
    if tumours < 20:  # one tumour moves the sensitivity by more than 5 points
        line += f" - {tumours} tumours make a rough figure: experiment=cv gives intervals"
    return line


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

        predictions = pool_predictions(prep, result, split[split.split.isin(["train", "val"])])
        predictions.to_csv(out_dir / "predictions.csv", index=False)
        tracker.log_artifact(out_dir / "predictions.csv")
        if cfg.dataset.get("truth"):  # opened only now, after every fitting decision
            truth_path = cfg.dataset.truth
            try:
                scored = score_at_threshold(predictions, pd.read_csv(truth_path), result.threshold)
            except ValueError as error:
                raise ValueError(f"{truth_path}: {error}") from error
            tracker.log_metrics({f"truth/{k}": v for k, v in scored.items()})
        tracker.log_metrics(
            {
                "predictions/n_review": float(predictions.review.sum()),
                "predictions/cancer_share": float((predictions.label_pred == CLASS_NAMES[1]).mean()),
            }
        )
        if len(test_files):
            log.info(test_line(result))
        log.info("predictions for the pool: %s", out_dir / "predictions.csv")
        return {f"test/{k}": v for k, v in result.metrics.items()}
