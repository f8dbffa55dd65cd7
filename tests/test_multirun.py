"""A 2x2 multirun writes 4 finished runs, tagged with one sweep; a failing job does not stop it."""

from __future__ import annotations

import pytest
from conftest import run_multirun


@pytest.mark.slow
def test_two_by_two_sweep_writes_four_runs(tmp_path, shared_cache):
    proc, runs = run_multirun(
        tmp_path, shared_cache, "regime=sup,semi", "backbone=tf_efficientnet_lite0,tf_efficientnet_lite1"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(runs) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["sweep"] for r in runs}) == 1
    assert {(r.data.tags["regime"], r.data.tags["backbone"]) for r in runs} == {
        (g, b) for g in ("sup", "semi") for b in ("tf_efficientnet_lite0", "tf_efficientnet_lite1")
    }
    assert all("test/sensitivity" in r.data.metrics for r in runs)


@pytest.mark.slow
def test_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path, shared_cache):
    proc, runs = run_multirun(tmp_path, shared_cache, "regime=sup", "backbone.weights=imagenet,/missing/ckpt.pth")
    assert proc.returncode != 0  # Hydra reports the failure once every job has run
    assert "/missing/ckpt.pth" in proc.stderr
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
