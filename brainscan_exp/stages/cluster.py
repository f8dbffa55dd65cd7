"""The cluster stage: a clusterer on cached embeddings of the labelled and unlabelled images,
with internal scores, agreement with the labels it may see, confounds and figures in MLflow.

Only the training part of the split lends its labels (test labels are -1 during every
decision). The agreement with the held-out labels is computed afterwards and logged apart
(``heldout_*``), so one can see whether what the stage chose generalises.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from brainscan_exp.clustering import agreement_scores, confound_table, run_cluster_analysis
from brainscan_exp.data.layout import CLASS_NAMES
from brainscan_exp.data.thumbnails import load_thumbnails
from brainscan_exp.stages.common import log_config, open_run, output_dir, prepare, split_for

log = logging.getLogger(__name__)


def clusterer_name(cfg: DictConfig) -> str:
    try:
        return HydraConfig.get().runtime.choices["clusterer"]
    except (ValueError, KeyError, AttributeError):
        return str(cfg.clusterer.clusterer._target_).rsplit(".", 1)[-1]


def run(cfg: DictConfig) -> dict[str, float]:
    out_dir = output_dir(cfg)
    name = clusterer_name(cfg)
    with open_run(cfg, run_name=f"cluster-{name}-{cfg.backbone.name}-{cfg.dataset.name}", clusterer=name) as tracker:
        log_config(tracker, cfg)
        prep = prepare(cfg, tracker, out_dir)
        split = split_for(cfg, prep.catalogue)
        frame = pd.concat([split.assign(role=split.split), prep.catalogue.pool.assign(role="pool")], ignore_index=True)
        visible = frame.role.isin(["train", "val"]).to_numpy()
        y_partial = np.where(visible, frame.label.to_numpy(), -1).astype(int)

        cache = prep.catalogue.fingerprint
        thumbs = load_thumbnails(frame.path, 128, f"{cfg.paths.cache_dir}/thumbnails/{cache}-{len(frame)}.npy")
        confounds = confound_table(list(thumbs), ids=frame.file)
        confounds.reset_index(drop=True, inplace=True)

        report = run_cluster_analysis(
            prep.X(frame),
            y_partial,
            instantiate(cfg.clusterer),
            out_dir,
            thumbnails=list(thumbs),
            confounds=confounds,
            k_sweep=cfg.cluster.k_sweep,
            random_state=cfg.seed,
            class_names=CLASS_NAMES,
            projection_methods=tuple(cfg.cluster.projections),
        )
        heldout = (frame.role == "test").to_numpy()
        clusters = report.tables["assignments"].cluster.to_numpy()
        metrics = dict(report.metrics)
        metrics.update(
            {f"heldout_{k}": v for k, v in agreement_scores(clusters[heldout], frame.label.to_numpy()[heldout]).items()}
        )
        tracker.log_metrics({f"cluster/{k}": v for k, v in metrics.items() if v is not None and np.isfinite(v)})
        for table_name, table in report.tables.items():
            path = out_dir / f"{table_name}.csv"
            table.to_csv(path)
            tracker.log_artifact(path, "cluster")
        confounds.assign(file=frame.file, cluster=clusters).to_csv(out_dir / "confounds.csv", index=False)
        tracker.log_artifact(out_dir / "confounds.csv", "cluster")
        for artifact in report.artifacts:
            if artifact.suffix == ".png":
                tracker.log_artifact(artifact, "figures")
        log.info("cluster %s: %s", name, {k: round(float(v), 3) for k, v in metrics.items()})
        return metrics
