"""The MLflow run of a job: how it ends, what the store says about dead runs, what the UI shows."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from brainscan_exp.tracking.mlflow_run import EXPERIMENT_KIND, MlflowRun, ensure_experiment


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


def _runs(uri, name="exp"):
    client = MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name(name).experiment_id])


def test_experiment_is_tagged_for_the_runs_table(uri):
    """MLflow 3 opens an untagged experiment on its GenAI page; ours open on the runs."""
    exp_id = ensure_experiment(uri, "exp")
    assert MlflowClient(uri).get_experiment(exp_id).tags.items() >= EXPERIMENT_KIND.items()


def test_an_older_untagged_experiment_gets_the_tag(uri):
    ensure_experiment(uri, "exp")
    client = MlflowClient(uri)
    exp_id = client.get_experiment_by_name("exp").experiment_id
    client.delete_experiment_tag(exp_id, "mlflow.experimentKind")
    ensure_experiment(uri, "exp")
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_run_ends_finished_failed_or_killed(uri):
    with MlflowRun(uri, "exp", "ok"):
        pass
    with pytest.raises(ValueError), MlflowRun(uri, "exp", "bad"):
        raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt), MlflowRun(uri, "exp", "interrupted"):
        raise KeyboardInterrupt
    status = {r.info.run_name: r.info.status for r in _runs(uri)}
    assert status == {"ok": "FINISHED", "bad": "FAILED", "interrupted": "KILLED"}


def test_sigterm_closes_the_run_as_killed(uri, tmp_path):
    """A scheduler's SIGTERM (preemption) ends the run KILLED, not RUNNING forever."""
    script = tmp_path / "job.py"
    script.write_text(
        "import sys, time\n"
        "from brainscan_exp.tracking.mlflow_run import MlflowRun\n"
        f"with MlflowRun({uri!r}, 'exp', 'preempted'):\n"
        "    print('started', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    (run,) = _runs(uri)
    assert run.info.status == "KILLED"


def test_a_run_left_running_by_a_dead_process_is_marked_killed(uri):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = MlflowClient(uri)
    exp_id = ensure_experiment(uri, "exp")
    ghost = client.create_run(exp_id, run_name="ghost", tags={"host": socket.gethostname(), "pid": str(dead.pid)})
    alive = client.create_run(exp_id, run_name="alive", tags={"host": socket.gethostname(), "pid": str(os.getpid())})
    elsewhere = client.create_run(exp_id, run_name="elsewhere", tags={"host": "another-node", "pid": str(dead.pid)})
    with MlflowRun(uri, "exp", "next"):
        pass
    status = {r.info.run_id: r.info.status for r in _runs(uri)}
    assert status[ghost.info.run_id] == "KILLED"
    assert status[alive.info.run_id] == "RUNNING"  # its process is still there
    assert status[elsewhere.info.run_id] == "RUNNING"  # cannot be checked from this host


def test_dataset_is_logged_as_a_run_input(uri):
    frame = pd.DataFrame({"file": ["a.jpg", "b.jpg"], "pixel_hash": ["1", "2"], "label": [1, -1]})
    with MlflowRun(uri, "exp", "with-data") as run:
        run.log_dataset(frame, name="demo", digest="abc123", source="/data/demo")
    (logged,) = MlflowClient(uri).get_run(run.run_id).inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest) == ("demo", "abc123")
    assert "/data/demo" in logged.dataset.source
