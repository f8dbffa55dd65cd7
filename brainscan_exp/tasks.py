"""Dispatch ``task=...`` to its stage. Every task is also importable and callable on its own."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def run_task(cfg: DictConfig) -> float | None:
    if cfg.task == "train":
        from brainscan_exp.stages.train import run

        metrics = run(cfg)
    elif cfg.task == "features":
        from brainscan_exp.stages.features import run

        metrics = run(cfg)
    elif cfg.task == "cluster":
        from brainscan_exp.stages.cluster import run

        metrics = run(cfg)
    elif cfg.task == "cv":
        from brainscan_exp.stages.cv import run

        metrics = run(cfg)
    elif cfg.task == "dedup":
        from brainscan_exp.stages.dedup import run

        metrics = run(cfg)
    elif cfg.task == "predict":
        from brainscan_exp.stages.predict import run

        metrics = run(cfg)
    elif cfg.task == "generalization":
        from brainscan_exp.stages.generalization import run

        metrics = run(cfg)
    else:
        raise ValueError(f"unknown task={cfg.task!r}: choose train, features, dedup, cluster, cv, predict or generalization")
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name and metrics else None
