"""Sweeps through the cluster launchers, run locally: submitit's local executor (the SLURM
launcher's config) and the repo's Ray launcher. Each job must write its MLflow run; a failing
job must not stop the others."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT, run_multirun

from brainscan_exp.data.demo import make_demo_dataset


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture
def demo_cache(shared_cache):
    """debug=fast's demo data made before the sweep: parallel jobs must not both generate it."""
    root = shared_cache / "demo_data_fast"
    if not (root / "truth.csv").exists():
        make_demo_dataset(root, n_labelled_per_class=10, n_unlabelled=24, size=128)
    return shared_cache


@pytest.mark.slow
@pytest.mark.skipif(not _have("hydra_plugins.hydra_submitit_launcher"), reason="hydra-submitit-launcher missing")
def test_slurm_config_runs_through_submitits_local_executor(tmp_path, demo_cache):
    proc, runs = run_multirun(
        tmp_path, demo_cache, "dedup.enabled=false", "hydra/launcher=slurm_local", "regime=sup,knn"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(r.data.tags["regime"] for r in runs) == ["knn", "sup"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["sweep"] for r in runs}) == 1
    assert all("test/sensitivity" in r.data.metrics for r in runs)
    # submitit's own job folders (pickles, logs): the jobs really went through the executor
    assert len(list((tmp_path / "logs").rglob(".submitit/*/*_result.pkl"))) == 2


@pytest.mark.slow
@pytest.mark.skipif(not _have("ray"), reason="ray missing")
def test_ray_launcher_runs_every_job_and_survives_a_failing_one(tmp_path, demo_cache):
    proc, runs = run_multirun(
        tmp_path,
        demo_cache,
        "dedup.enabled=false",
        "hydra/launcher=ray",
        "hydra.launcher.init.num_cpus=2",
        "regime=sup",
        "backbone.weights=imagenet,/missing/ckpt.pth",
    )
    assert proc.returncode != 0  # Hydra reports the failed job once the sweep is over
    assert "/missing/ckpt.pth" in proc.stderr
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    done = next(r for r in runs if r.info.status == "FINISHED")
    assert "test/sensitivity" in done.data.metrics
    assert len({r.data.tags["sweep"] for r in runs}) == 1
    assert len({r.data.tags["pid"] for r in runs}) == 2  # two Ray workers, not the driver


def test_the_ray_launcher_is_found_by_hydras_plugin_scan():
    code = (
        "from hydra.core.plugins import Plugins; from hydra.plugins.launcher import Launcher;"
        "print([c.__name__ for c in Plugins.instance().discover(Launcher)])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert "BrainscanRayLauncher" in out.stdout
