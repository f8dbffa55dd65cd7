"""Only global rank 0 writes the MLflow run and extracts features; other ranks are no-ops / wait."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import PROJECT_ROOT
from lightning.pytorch.utilities import rank_zero_only
from mlflow.tracking import MlflowClient

from brainscan_exp.features.shared import extract_once
from brainscan_exp.tracking.callbacks import MlflowExperimentCallback
from brainscan_exp.tracking.lightning_logger import TrackerLogger
from brainscan_exp.tracking.mlflow_run import MlflowRun, NullRun
from brainscan_exp.tracking.ranks import global_rank

RANK_VARS = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE")


@pytest.fixture
def rank(monkeypatch):
    """``rank(n)``: this process looks like global rank n (env only, as torchrun/srun set it)."""
    for name in RANK_VARS:
        monkeypatch.delenv(name, raising=False)

    def set_rank(n: int) -> None:
        monkeypatch.setenv("RANK", str(n))

    return set_rank


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, 0),
        ({"RANK": "3"}, 3),
        ({"SLURM_PROCID": "2"}, 2),
        ({"RANK": "0", "SLURM_PROCID": "5"}, 0),  # torchrun inside an allocation: RANK wins
        ({"LOCAL_RANK": "1"}, 1),  # Lightning's launcher re-executing the command
        ({"LOCAL_RANK": "0", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "4"}, 4),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, 1),  # node size unknown: still not rank 0
    ],
)
def test_global_rank_from_the_launchers_environment(monkeypatch, rank, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert global_rank() == expected


def test_lightning_rank_is_the_fallback(monkeypatch, rank):
    monkeypatch.setattr(rank_zero_only, "rank", 2)  # what a strategy sets, e.g. under ddp_spawn
    assert global_rank() == 2


def _uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


def test_rank_one_opens_no_run_and_logs_nothing(tmp_path, rank):
    rank(1)
    with MlflowRun(_uri(tmp_path), "brainscan", "r", tags={"a": 1}) as run:
        assert isinstance(run, NullRun) and run.run_id is None
        run.log_metrics({"m": 1.0})
        run.log_params({"p": 1})
        run.set_tags({"t": 1})
        run.log_config(None)
        run.log_artifact(tmp_path / "missing.txt")
        run.log_dataset(None, "d", "x", "src")
        logger = TrackerLogger(run)
        logger.log_metrics({"loss": 1.0}, step=0)
        assert logger.version == "no-run" and "rank 1" in run.url_hint
    assert not (tmp_path / "mlruns").exists(), "rank 1 must not even create the store"


def test_the_experiment_callback_creates_the_store_on_rank_zero_only(tmp_path, rank):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"logger": {"tracking_uri": _uri(tmp_path), "experiment_name": "brainscan"}})
    rank(1)
    MlflowExperimentCallback().on_run_start(cfg)
    MlflowExperimentCallback().on_multirun_start(cfg)
    assert not (tmp_path / "mlruns").exists()
    rank(0)
    MlflowExperimentCallback().on_run_start(cfg)
    assert MlflowClient(_uri(tmp_path)).get_experiment_by_name("brainscan") is not None


def test_rank_zero_writes_the_run(tmp_path, rank):
    rank(0)
    with MlflowRun(_uri(tmp_path), "brainscan", "r") as run:
        assert type(run) is MlflowRun
        TrackerLogger(run).log_metrics({"loss": 0.5, "epoch": 1}, step=3)
    client = MlflowClient(_uri(tmp_path))
    (found,) = client.search_runs([client.get_experiment_by_name("brainscan").experiment_id])
    assert found.info.status == "FINISHED" and found.data.metrics == {"loss": 0.5}


def test_tracker_logger_is_silent_on_lightnings_other_ranks(tmp_path, rank, monkeypatch):
    rank(0)
    with MlflowRun(_uri(tmp_path), "brainscan", "r") as run:
        monkeypatch.setattr(rank_zero_only, "rank", 1)
        TrackerLogger(run).log_metrics({"loss": 0.5}, step=0)
    client = MlflowClient(_uri(tmp_path))
    (found,) = client.search_runs([client.get_experiment_by_name("brainscan").experiment_id])
    assert found.data.metrics == {}


def test_null_run_overrides_every_writer_of_the_real_run():
    """A method added to MlflowRun later must get its no-op too, or rank > 0 would write."""
    public = {n for n, _ in inspect.getmembers(MlflowRun) if not n.startswith("_") or n in ("__enter__", "__exit__")}
    assert public and all(n in NullRun.__dict__ for n in public), public - set(NullRun.__dict__)


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from brainscan_exp.features.shared import extract_once

    store, log, marker, fail = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "fail"

    def run():
        # a toy store: computes when missing (slowly, so the other rank really waits), else reads
        if not store.exists():
            if fail:
                raise OSError("decode error on img_7.jpg")
            with open(log, "a") as f:
                f.write(os.environ["RANK"] + "\\n")
            time.sleep(1.5)
            tmp = store.with_suffix(".tmp")
            tmp.write_text(json.dumps([1.0, 2.0]))
            os.replace(tmp, store)
        return json.loads(store.read_text())

    print("RESULT", json.dumps(extract_once(run, marker, timeout_s=60, poll_s=0.1)))
    """
)


def _ranks(tmp_path, fail=False):
    args = [
        str(tmp_path / "store.json"),
        str(tmp_path / "computed.log"),
        str(tmp_path / "done"),
        "fail" if fail else "ok",
    ]
    procs = {}
    for r in (1, 0):  # rank 1 first: it must wait for rank 0
        env = {"RANK": str(r), "PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"}
        procs[r] = subprocess.Popen(
            [sys.executable, "-c", WORKER, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(0.3)
    return {r: (p.wait(timeout=120), *p.communicate()) for r, p in procs.items()}


def test_extract_once_computes_on_rank_zero_only(tmp_path):
    out = _ranks(tmp_path)
    for r in (0, 1):
        assert out[r][0] == 0, out[r][2][-2000:]
        assert "RESULT [1.0, 2.0]" in out[r][1]
    assert (tmp_path / "computed.log").read_text().split() == ["0"]
    # a later job on the same data: nothing to wait for, nothing recomputed
    assert extract_once(lambda: "cached", tmp_path / "done", timeout_s=1) == "cached"


def test_a_failure_on_rank_zero_fails_the_waiting_rank_at_once(tmp_path):
    start = time.perf_counter()
    out = _ranks(tmp_path, fail=True)
    assert out[0][0] != 0 and out[1][0] != 0
    assert "rank 0's extraction failed" in out[1][2] and "img_7.jpg" in out[1][2]
    assert time.perf_counter() - start < 50  # not the 60 s timeout


def test_a_waiting_rank_times_out(tmp_path, rank):
    rank(1)
    with pytest.raises(TimeoutError):
        extract_once(lambda: None, tmp_path / "never", timeout_s=0.3, poll_s=0.05)


DDP_GPUS = 2


@pytest.mark.slow
@pytest.mark.skipif(
    not __import__("torch").cuda.is_available() or __import__("torch").cuda.device_count() < DDP_GPUS,
    reason="needs 2 GPUs",
)
def test_ddp_on_two_gpus_writes_one_run(tmp_path, shared_cache):
    uri = _uri(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "brainscan_exp",
        "debug=fast",
        "regime=sup",
        "regime.finetune=full",
        "trainer=ddp",
        f"trainer.devices={DDP_GPUS}",
        f"paths.cache_dir={shared_cache}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"logger.tracking_uri={uri}",
    ]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("brainscan").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
