"""Hydra callback: create the MLflow store and experiment once, before any job of a sweep starts
(parallel jobs racing to create a fresh sqlite store or the same experiment would fail).
DDP ranks other than 0 run the job too but write nothing, so they create nothing either."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from brainscan_exp.tracking.mlflow_run import ensure_experiment
from brainscan_exp.tracking.ranks import is_rank_zero


class MlflowExperimentCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._ensure(config)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._ensure(config)

    @staticmethod
    def _ensure(config: DictConfig) -> None:
        if is_rank_zero():
            ensure_experiment(config.logger.tracking_uri, config.logger.experiment_name)
