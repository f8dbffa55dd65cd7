"""Run the task the config names: ``task=`` picks a ``conf/task`` option whose ``run`` is the stage
function (instantiated by Hydra). Every stage is also importable and callable on its own."""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from brainscan_exp.console import quiet_third_party, report_input_error
from brainscan_exp.data.errors import find_input_error
from brainscan_exp.tracking.mlflow_run import last_run
from brainscan_exp.tracking.ui import runs_table_url

log = logging.getLogger(__name__)


def run_task(cfg: DictConfig) -> float | None:
    quiet_third_party()
    try:
        metrics = instantiate(cfg.task.run)(cfg)
    except Exception as exc:
        error = find_input_error(exc)
        if error is None:
            raise
        report_input_error(error)  # the person's lines first, on stderr
        if _multirun():
            raise  # the launcher records the job as failed and the sweep goes on
        raise SystemExit(1) from None  # one run: the message is all there is to read
    log_summary(cfg)
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name and metrics else None


def log_summary(cfg: DictConfig) -> None:
    """The last lines of a run: what ran, where its outputs are, and the runs table's address."""
    run = last_run()
    where = f"MLflow run {run.run_id} (experiment '{run.experiment_name}')" if run else "no MLflow run"
    log.info("done: task=%s dataset=%s backbone=%s -> %s", cfg.task.name, cfg.dataset.name, cfg.backbone.name, where)
    log.info("outputs: %s", cfg.paths.output_dir)
    if run is not None:  # the project's store is `make ui`'s; another store is named
        project_store = cfg.logger.tracking_uri == f"sqlite:///{cfg.paths.root_dir}/mlruns/mlflow.db"
        ui = (
            "make ui"
            if project_store
            else f"python -m brainscan_exp.tracking.ui --backend-store-uri {run.tracking_uri}"
        )
        log.info("runs table: %s (start the UI first: %s)", runs_table_url(run.experiment_id), ui)


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
