"""Does the predict task's operating point keep its promise? Nested CV on the labelled images only.

``experiment=predict`` fits the regime on every labelled image and sets the threshold on
out-of-fold scores of those images (``operating_point``: inner repeated K-fold, ``rule``).
This script replays exactly that inside each outer fold of a repeated stratified K-fold over the
distinct labelled images: fit on the outer training part, threshold from its own out-of-fold
scores, then count detected tumours and false alarms on the outer test fold, for each threshold
rule (``tolerance``, ``conformal``, ``highest``). Pooled over the folds, the realised sensitivity
should reach ``target_sensitivity``. No truth file is read.

Usage::

    python scripts/check_operating_point.py dataset=brain_mri_oc
    python scripts/check_operating_point.py dataset=oc regime=sup   # any Hydra override

Results: ``scripts/results/operating_point_<dataset>.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, env_info, write_json  # noqa: E402


def main(overrides: list[str]) -> dict:
    import tempfile

    import numpy as np
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict
    from sklearn.metrics import roc_auc_score

    from brainscan_exp.data.splits import repeated_cv_split
    from brainscan_exp.evaluation import choose_threshold
    from brainscan_exp.notebook import compose_config
    from brainscan_exp.stages.common import Prepared
    from brainscan_exp.stages.train import fit_and_evaluate
    from brainscan_exp.tracking.mlflow_run import MlflowRun

    cfg = compose_config(["experiment=predict", *overrides])
    start = time.perf_counter()
    backbone, catalogue, mri = instantiate(cfg.backbone), instantiate(cfg.dataset), instantiate(cfg.preprocess)
    model = backbone.build()
    paths_by_hash = dict(zip(catalogue.files.pixel_hash, catalogue.files.path))
    store, _ = instantiate(cfg.features, progress=False).run(paths_by_hash, backbone, mri, model)
    prep = Prepared(catalogue, backbone, model, mri, store, store.load(list(paths_by_hash)))
    op = cfg.operating_point
    counts = {rule: np.zeros(4, int) for rule in ("tolerance", "conformal", "highest")}  # tp, fn, tn, fp
    aucs = []
    n_folds = cfg.split.n_splits * cfg.split.n_repeats
    with tempfile.TemporaryDirectory() as scratch:  # the fits' MLflow metrics and checkpoints are not kept
        with open_dict(cfg):
            cfg.logger.tracking_uri = f"sqlite:///{scratch}/mlflow.db"
        with MlflowRun(cfg.logger.tracking_uri, "check_operating_point") as tracker:
            for k in range(n_folds):
                # exactly the predict task's fit and operating point, on the outer training part
                split = repeated_cv_split(catalogue.labelled, k, cfg.split.n_splits, cfg.split.n_repeats, cfg.split.val_size, cfg.split.seed)
                result = fit_and_evaluate(cfg, cfg.regime, prep, split, tracker, Path(scratch) / f"fold{k}", log_curves=False)
                y_test, p_test = result.y_test, result.p_test
                aucs.append(roc_auc_score(y_test, p_test))
                for rule, c in counts.items():
                    t = choose_threshold(*result.calibration, cfg.target_sensitivity, rule=rule, confidence=op.confidence)
                    hit = p_test >= t
                    c += [(hit & (y_test == 1)).sum(), (~hit & (y_test == 1)).sum(), (~hit & (y_test == 0)).sum(), (hit & (y_test == 0)).sum()]
                print(f"fold {k}: auc {aucs[-1]:.3f}", flush=True)
    realised = {rule: {"sensitivity": c[0] / (c[0] + c[1]), "specificity": c[2] / (c[2] + c[3]),
                       "tp": int(c[0]), "fn": int(c[1]), "tn": int(c[2]), "fp": int(c[3])} for rule, c in counts.items()}
    payload = {
        "script": "scripts/check_operating_point.py",
        "overrides": overrides,
        "dataset": cfg.dataset.name,
        "regime": cfg.regime.name,
        "backbone": OmegaConf.to_container(cfg.backbone),
        "preprocess": OmegaConf.to_container(cfg.preprocess),
        "operating_point": OmegaConf.to_container(op),
        "target_sensitivity": cfg.target_sensitivity,
        "outer_cv": f"repeated_cv_split: RepeatedStratifiedKFold({cfg.split.n_splits}x{cfg.split.n_repeats}, seed {cfg.split.seed})",
        "n_labelled": len(catalogue.labelled),
        "roc_auc_mean": float(np.mean(aucs)),
        "roc_auc_folds": [float(a) for a in aucs],
        "realised_on_outer_test_folds": realised,
        "seconds": time.perf_counter() - start,
        "env": env_info(),
    }
    out = RESULTS_DIR / f"operating_point_{cfg.dataset.name}.json"
    write_json(payload, out)
    for rule, r in realised.items():
        print(f"{cfg.dataset.name} / {cfg.regime.name} / rule={rule}: sensitivity {r['sensitivity']:.3f} "
              f"specificity {r['specificity']:.3f} (target {cfg.target_sensitivity}); ROC-AUC {np.mean(aucs):.3f}")
    print(f"written {out}")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
