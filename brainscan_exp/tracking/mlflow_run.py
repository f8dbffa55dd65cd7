"""One MLflow run per Hydra job, marked FAILED (with the error) when the job raises."""

from __future__ import annotations

import logging
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def artifact_root_for(tracking_uri: str) -> str | None:
    """Keep artifacts beside a sqlite store (``mlruns/artifacts``) instead of the working dir."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts")
    return None


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """Create the store and the experiment if needed; returns the experiment id."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = artifact_root_for(tracking_uri)
    try:
        return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    except mlflow.exceptions.MlflowException:  # another job created it first
        return client.get_experiment_by_name(name).experiment_id


def flatten_params(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """Flat ``a.b.c`` keys, values truncated to what MLflow accepts."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_params(value, f"{name}."))
        else:
            out[name] = str(value)[:500]
    return out


def resolved_job_config(cfg: DictConfig) -> dict:
    """The job's config, resolved, without Hydra's own node (which only resolves inside a job)."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    return OmegaConf.to_container(OmegaConf.create(container), resolve=True)


def git_commit(root: str | Path) -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class MlflowRun:
    """Context manager: starts the run, and ends it FINISHED, or FAILED with the error as a tag."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_name: str | None = None,
        tags: dict | None = None,
        parent_run_id: str | None = None,
    ):
        self.tracking_uri, self.experiment_name = tracking_uri, experiment_name
        self.run_name, self.tags, self.parent_run_id = run_name, dict(tags or {}), parent_run_id

    def __enter__(self) -> MlflowRun:
        mlflow.set_tracking_uri(self.tracking_uri)
        experiment_id = ensure_experiment(self.tracking_uri, self.experiment_name)
        tags = {k: str(v) for k, v in self.tags.items()}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        self.client = MlflowClient(self.tracking_uri)
        self.run = self.client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = self.run.info.run_id
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            self.client.set_tag(self.run_id, "error", f"{exc_type.__name__}: {exc}"[:5000])
            self.client.log_text(self.run_id, "".join(traceback.format_exception(exc_type, exc, tb)), "error.txt")
            self.client.set_terminated(self.run_id, "FAILED")
        else:
            self.client.set_terminated(self.run_id, "FINISHED")
        return False

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k.replace("@", "_at_"): float(v) for k, v in metrics.items() if v is not None}
        now = int(time.time() * 1000)
        if clean:
            self.client.log_batch(
                self.run_id, metrics=[mlflow.entities.Metric(k, v, now, step or 0) for k, v in clean.items()]
            )

    def log_params(self, params: dict[str, Any]) -> None:
        items = [mlflow.entities.Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_config(self, cfg: DictConfig) -> None:
        """The full resolved job config (Hydra's own node aside) as ``config/config.yaml``."""
        self.client.log_text(self.run_id, OmegaConf.to_yaml(resolved_job_config(cfg)), "config/config.yaml")
