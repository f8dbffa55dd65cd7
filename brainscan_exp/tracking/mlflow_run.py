"""One MLflow run per Hydra job: the only writer of that run (Lightning logs through it too).

It ends FINISHED, FAILED (with the error) when the job raises, or KILLED when the job is
interrupted (Ctrl-C, SIGTERM from a scheduler). A run whose process died without a word
(SIGKILL, power loss) is marked KILLED the next time a job opens the store on that host.

Under DDP every rank runs the job: only global rank 0 gets a real run; ``MlflowRun(...)`` on
another rank is a ``NullRun`` with the same methods, which writes nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from brainscan_exp.tracking.ranks import global_rank

log = logging.getLogger(__name__)


def artifact_root_for(tracking_uri: str) -> str | None:
    """Keep artifacts beside a sqlite store (``mlruns/artifacts``) instead of the working dir."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts")
    return None


# MLflow >= 3 opens an experiment on its GenAI page unless it is tagged as model training
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """Create the store and the experiment if needed (tagged as model training); returns its id."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        root = artifact_root_for(tracking_uri)
        try:
            client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None, tags=EXPERIMENT_KIND)
        except mlflow.exceptions.MlflowException:  # another job created it first
            pass
        found = client.get_experiment_by_name(name)
    for key, value in EXPERIMENT_KIND.items():
        if found.tags.get(key) != value:  # experiments made before the tag existed
            client.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def mark_dead_runs_killed(client: MlflowClient, experiment_id: str) -> list[str]:
    """RUNNING runs of this host whose process is gone are marked KILLED; returns their ids.

    Runs of other hosts are left alone: their process cannot be checked from here."""
    host = socket.gethostname()
    dead = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if tags.get("host") == host and tags.get("pid", "").isdigit() and not _process_alive(int(tags["pid"])):
            client.set_tag(run.info.run_id, "error", "process died while the run was RUNNING (marked on a later open)")
            client.set_terminated(run.info.run_id, "KILLED")
            dead.append(run.info.run_id)
    if dead:
        log.warning("marked %d run(s) KILLED: their process died while RUNNING (%s)", len(dead), ", ".join(dead))
    return dead


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


_LAST_RUN: list[MlflowRun] = []  # the last top-level run this process opened (for the end-of-run summary)


def last_run() -> MlflowRun | None:
    return _LAST_RUN[-1] if _LAST_RUN else None


class Terminated(Exception):
    """SIGTERM (a scheduler preempting the job) turned into an exception, so the run is closed."""


def _raise_on_sigterm():
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise Terminated(f"signal {signum}")

    return signal.signal(signal.SIGTERM, handler)


class MlflowRun:
    """Context manager: starts the run, and ends it FINISHED, or FAILED with the error as a tag.

    Constructed on a rank other than 0 it is a ``NullRun`` (one writer per run, even under DDP)."""

    def __new__(cls, *args, **kwargs):
        if cls is MlflowRun and global_rank() != 0:
            return super().__new__(NullRun)
        return super().__new__(cls)

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
        self.experiment_id = experiment_id = ensure_experiment(self.tracking_uri, self.experiment_name)
        self.client = MlflowClient(self.tracking_uri)
        if self.parent_run_id is None:  # a parent's children share its process: check once
            mark_dead_runs_killed(self.client, experiment_id)
        tags = {k: str(v) for k, v in self.tags.items()} | {"host": socket.gethostname(), "pid": str(os.getpid())}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        self.run = self.client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = self.run.info.run_id
        self._previous_sigterm = _raise_on_sigterm()
        if self.parent_run_id is None:
            _LAST_RUN[:] = [self]
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        if exc is None:
            self.client.set_terminated(self.run_id, "FINISHED")
            return False
        self.client.set_tag(self.run_id, "error", f"{exc_type.__name__}: {exc}"[:5000])
        self.client.log_text(self.run_id, "".join(traceback.format_exception(exc_type, exc, tb)), "error.txt")
        interrupted = issubclass(exc_type, KeyboardInterrupt | Terminated)
        self.client.set_terminated(self.run_id, "KILLED" if interrupted else "FAILED")
        return False

    @property
    def url_hint(self) -> str:
        return f"run {self.run_id} in experiment '{self.experiment_name}' ({self.tracking_uri})"

    def log_dataset(self, frame, name: str, digest: str, source: str, context: str = "training") -> None:
        """The run's dataset as an MLflow input (the runs table's Dataset column): its name, the
        pixel-hash fingerprint as digest, the source folder, and the file list as its schema."""
        import warnings

        from mlflow.data.pandas_dataset import from_pandas
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # MLflow's notes: a local folder matches two equivalent source
            # types; integer columns cannot hold missing values (our labels have none)
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*[Ii]nteger column", category=UserWarning)
            dataset = from_pandas(frame, source=source, name=name, digest=digest[:36])
        tags = [InputTag(key="mlflow.data.context", value=context)]
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])

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


class NullRun(MlflowRun):
    """A DDP rank other than 0: the run's interface, no store access. ``run_id`` is None."""

    def __init__(self, tracking_uri: str, experiment_name: str, run_name: str | None = None, *args, **kwargs):
        super().__init__(tracking_uri, experiment_name, run_name, *args, **kwargs)
        self.rank = global_rank()
        self.run_id = None

    def __enter__(self) -> NullRun:
        log.debug("rank %d: no MLflow run (rank 0 writes it)", self.rank)
        return self

    def __exit__(self, exc_type, exc, tb):
        return False

    @property
    def url_hint(self) -> str:
        return f"no run on rank {self.rank} (rank 0 writes experiment '{self.experiment_name}')"

    def log_dataset(self, *args, **kwargs) -> None:
        pass

    def log_metrics(self, *args, **kwargs) -> None:
        pass

    def log_params(self, *args, **kwargs) -> None:
        pass

    def set_tags(self, *args, **kwargs) -> None:
        pass

    def log_artifact(self, *args, **kwargs) -> None:
        pass

    def log_config(self, *args, **kwargs) -> None:
        pass
