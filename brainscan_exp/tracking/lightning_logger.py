"""Lightning's metrics go through the job's ``MlflowRun``: one writer per MLflow run.

(Lightning's own ``MLFlowLogger`` pointed at the same run would be a second client writing to it.)
Under DDP, ranks other than 0 hold a ``NullRun``, and the methods are ``rank_zero_only`` too.
"""

from __future__ import annotations

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from brainscan_exp.tracking.mlflow_run import MlflowRun


class TrackerLogger(Logger):
    def __init__(self, tracker: MlflowRun):
        super().__init__()
        self.tracker = tracker

    @property
    def name(self) -> str:
        return self.tracker.experiment_name

    @property
    def version(self) -> str:
        return self.tracker.run_id or "no-run"  # a NullRun (DDP rank > 0) has no run id

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.tracker.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=step)

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The job's resolved config is logged by the stage; the module's hparams are part of it."""
