"""Run the task the config names: ``task=`` picks a ``conf/task`` option whose ``run`` is the stage
function (instantiated by Hydra). Every stage is also importable and callable on its own."""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from brainscan_exp.console import quiet_third_party
from brainscan_exp.tracking.mlflow_run import last_run

log = logging.getLogger(__name__)


def run_task(cfg: DictConfig) -> float | None:
    quiet_third_party()
    metrics = instantiate(cfg.task.run)(cfg)
    log_summary(cfg)
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name and metrics else None


def log_summary(cfg: DictConfig) -> None:
    """The last lines of a run: what ran, where its outputs and MLflow run are, how to compare."""
    run = last_run()
    where = f"MLflow run {run.run_id} ({run.tracking_uri}, experiment '{run.experiment_name}')" if run else "no run"
    log.info("done: task=%s dataset=%s backbone=%s -> %s", cfg.task.name, cfg.dataset.name, cfg.backbone.name, where)
    log.info(
        "outputs: %s | compare runs: make ui (or mlflow ui --backend-store-uri %s)",
        cfg.paths.output_dir,
        cfg.logger.tracking_uri,
    )
