"""Hydra callback: create the MLflow store and experiment once, before any job of a sweep starts
(parallel jobs racing to create a fresh sqlite store or the same experiment would fail)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from brainscan_exp.tracking.mlflow_run import ensure_experiment


class MlflowExperimentCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        ensure_experiment(config.logger.tracking_uri, config.logger.experiment_name)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        ensure_experiment(config.logger.tracking_uri, config.logger.experiment_name)
