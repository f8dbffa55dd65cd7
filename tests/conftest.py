"""Shared fixtures: configs composed as Hydra would, writing into a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache (demo data, hash index, features) for the session: tests stay fast."""
    return tmp_path_factory.mktemp("cache")


def compose_train(overrides: list[str], tmp_path: Path, cache_dir: Path) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            return_hydra_config=True,
            overrides=[
                f"paths.cache_dir={cache_dir}",
                f"paths.log_dir={tmp_path / 'logs'}",
                f"logger.tracking_uri=sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
                *overrides,
            ],
        )
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "out")
        HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture
def train_cfg(tmp_path, shared_cache):
    """Factory: ``train_cfg("regime=sup", ...)`` composes the main config with debug=fast."""

    def make(*overrides: str) -> DictConfig:
        return compose_train(["debug=fast", *overrides], tmp_path, shared_cache)

    yield make
    GlobalHydra.instance().clear()


def run_multirun(tmp_path: Path, cache_dir: Path, *overrides: str):
    """``python -m brainscan_exp -m debug=fast <overrides>`` in a subprocess, writing under
    ``tmp_path``; returns the finished process and the MLflow runs it left."""
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "brainscan_exp", "-m", "debug=fast", f"paths.cache_dir={cache_dir}"]
    cmd += [f"paths.log_dir={tmp_path / 'logs'}", f"logger.tracking_uri={uri}", *overrides]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("brainscan")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return proc, runs
