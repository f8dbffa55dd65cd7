"""Dispatch ``task=...`` to its stage. Every task is also importable and callable on its own."""

from __future__ import annotations

import importlib
import logging

from omegaconf import DictConfig

log = logging.getLogger(__name__)

# task name -> the stage module whose ``run(cfg)`` it calls (imported on use: heavy imports)
TASKS = {
    "train": "brainscan_exp.stages.train",
    "features": "brainscan_exp.stages.features",
    "dedup": "brainscan_exp.stages.dedup",
    "cluster": "brainscan_exp.stages.cluster",
    "cv": "brainscan_exp.stages.cv",
    "predict": "brainscan_exp.stages.predict",
    "generalization": "brainscan_exp.stages.generalization",
    "report": "brainscan_exp.stages.report",
}


def run_task(cfg: DictConfig) -> float | None:
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task={cfg.task!r}: choose one of {', '.join(TASKS)}")
    metrics = importlib.import_module(TASKS[cfg.task]).run(cfg)
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name and metrics else None
