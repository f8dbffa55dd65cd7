"""Where the deck's numbers come from: named MLflow runs and ``scripts/results/*.json`` files.

Why: a hand-over deck with hand-typed numbers goes stale the day a run changes. Every number the
deck shows is read here, with the run id or file path that the slide notes cite; a missing run
fails with the command that produces it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient


class MissingSource(RuntimeError):
    """A run or results file the deck needs is not there; the message names the command."""


# kind -> (MLflow filter, what must be in the run, command that produces it)
KINDS = {
    "cv": (
        "tags.task = 'cv' and tags.protocol = 'cv-parent'",
        ("metric", "semi/roc_auc_mean"),
        "python -m brainscan_exp experiment=cv dataset={dataset}",
    ),
    "label_efficiency": (
        "tags.task = 'cv' and tags.protocol = 'cv-parent'",
        ("artifact", "aggregate/label_efficiency.csv"),
        "python -m brainscan_exp experiment=label_efficiency dataset={dataset}",
    ),
    "predict": (
        "tags.task = 'predict'",
        ("metric", "operating_threshold"),
        "python -m brainscan_exp experiment=predict dataset={dataset}",
    ),
    "cluster": (
        "tags.task = 'cluster'",
        ("artifact", "figures/projections.png"),
        "python -m brainscan_exp task=cluster dataset={dataset}",
    ),
}
DEMO_HINT = " (on the demo data: `make demo-runs`)"


@dataclass
class Run:
    """One finished MLflow run: its numbers, and its artefacts fetched on demand."""

    client: MlflowClient
    run_id: str
    name: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    _tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="brainscan-report-")))

    @property
    def cite(self) -> str:
        return f"MLflow run {self.run_id} ({self.name})"

    def artifact(self, path: str) -> Path:
        return Path(self.client.download_artifacts(self.run_id, path, str(self._tmp)))

    def csv(self, path: str) -> pd.DataFrame:
        return pd.read_csv(self.artifact(path))

    def has_artifact(self, path: str) -> bool:
        folder, _, name = path.rpartition("/")
        return any(f.path == path for f in self.client.list_artifacts(self.run_id, folder or None))


class Runs:
    """The latest finished run of each kind for one dataset."""

    def __init__(self, tracking_uri: str, experiment_name: str, dataset: str):
        self.client = MlflowClient(tracking_uri)
        self.tracking_uri, self.dataset = tracking_uri, dataset
        self.experiment = self.client.get_experiment_by_name(experiment_name)
        self._found: dict[str, Run | None] = {}

    def command(self, kind: str) -> str:
        hint = DEMO_HINT if self.dataset == "demo" else ""
        return KINDS[kind][2].format(dataset=self.dataset) + hint

    def find(self, kind: str) -> Run | None:
        if kind in self._found:
            return self._found[kind]
        found = None
        if self.experiment is not None:
            where, (what, name), _ = KINDS[kind]
            runs = self.client.search_runs(
                [self.experiment.experiment_id],
                filter_string=f"{where} and tags.dataset = '{self.dataset}' and attributes.status = 'FINISHED'",
                order_by=["attributes.start_time DESC"],
                max_results=50,
            )
            for r in runs:
                run = Run(self.client, r.info.run_id, r.info.run_name, r.data.metrics, r.data.params, r.data.tags)
                if (what == "metric" and name in run.metrics) or (what == "artifact" and run.has_artifact(name)):
                    found = run
                    break
        self._found[kind] = found
        return found

    def get(self, kind: str) -> Run:
        run = self.find(kind)
        if run is None:
            raise MissingSource(
                f"the deck needs a finished `{kind}` run for dataset={self.dataset} in {self.tracking_uri}: "
                f"run `{self.command(kind)}`"
            )
        return run


@dataclass(frozen=True)
class Results:
    """``scripts/results/*.json``: measurements made by scripts and benchmark stages."""

    folder: Path

    PRODUCERS = {
        "generalization.json": "python -m brainscan_exp experiment=generalization",
        "cost_model.json": "python scripts/cost_model.py",
        "bench_features.json": "python scripts/bench_features.py",
        "review_benchmark.json": "the review round trip's benchmark (issue: review round trip)",
        "bench_scale.json": "python scripts/bench_scale.py",
    }

    def path(self, name: str) -> Path:
        return self.folder / name

    def cite(self, name: str) -> str:
        return f"scripts/results/{name}"

    def find(self, name: str) -> dict | None:
        path = self.path(name)
        return json.loads(path.read_text()) if path.exists() else None

    def get(self, name: str) -> dict:
        found = self.find(name)
        if found is None:
            producer = self.PRODUCERS.get(name, "the script named in README.md")
            raise MissingSource(f"the deck needs {self.path(name)}: run `{producer}`")
        return found

    def glob(self, pattern: str) -> dict[str, dict]:
        return {p.name: json.loads(p.read_text()) for p in sorted(self.folder.glob(pattern))}
