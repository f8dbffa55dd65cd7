"""MLflow: one run per job, the experiment created before parallel jobs start, a common sweep tag."""

from brainscan_exp.tracking.mlflow_run import MlflowRun, ensure_experiment, flatten_params

__all__ = ["MlflowRun", "ensure_experiment", "flatten_params"]
