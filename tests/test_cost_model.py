"""The scale-up cost model: throughput read from the benchmark, costs linear in N,
audit size from Clopper-Pearson, a learning curve that recovers known parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from brainscan_exp.notebook import compose_config
from brainscan_exp.report.costs import audit_tumours, fit_learning_curve, options, read_throughput

BENCH = json.loads((Path(__file__).resolve().parents[1] / "scripts" / "results" / "bench_features.json").read_text())


def test_throughput_is_the_default_runtimes_stage_rate():
    tp = read_throughput(BENCH)
    default = f"{BENCH['default_runtime']}/fp32"
    assert tp.runtime == default and tp.source == f"runtimes.{default}.stage_images_per_s"
    assert tp.images_per_s == BENCH["runtimes"][default]["stage_images_per_s"]
    assert tp.per_core == pytest.approx(tp.images_per_s / BENCH["env"]["cpu_affinity"])
    # a faster runtime that fails the agreement bar (bf16) is not the rate a job gets by default
    assert tp.images_per_s < BENCH["runtimes"]["openvino/bf16"]["stage_images_per_s"]


def test_an_old_or_partial_benchmark_names_its_fix():
    with pytest.raises(ValueError, match="rerun `python scripts/bench_features.py`"):
        read_throughput({"env": {"cpu_count": 2}, "stage_images_per_s": 40.0})


def test_costs_scale_with_the_number_of_images():
    cost = compose_config([]).cost
    from omegaconf import OmegaConf

    opts = options(read_throughput(BENCH), OmegaConf.to_container(cost, resolve=True))
    assert [o.name.split("_")[0] for o in opts] == ["cpu", "gpu", "ray"]
    for o in opts:
        assert o.cost(2_000_000) == pytest.approx(2 * o.cost(1_000_000) - o.fixed_hours * o.eur_per_hour)
    ray = opts[2]
    assert ray.images_per_s == pytest.approx(opts[0].images_per_s * cost.ray.nodes * cost.ray.scaling)


def test_audit_size_is_the_smallest_that_clears_the_bar():
    n = audit_tumours(0.90, 0.95, 0.95)
    low = lambda m: stats.beta.ppf(0.05, np.floor(0.95 * m), m - np.floor(0.95 * m) + 1)  # noqa: E731
    assert low(n) >= 0.90 and all(low(m) < 0.90 for m in range(10, n))
    assert audit_tumours(0.90, 0.97, 0.95) < n  # a better observed rate needs fewer tumours


def test_learning_curve_recovers_its_parameters():
    n = np.array([10, 20, 40, 80])
    curve = fit_learning_curve(n, 1 - 0.5 * n**-0.7)
    assert (curve.c, curve.b) == (pytest.approx(0.5), pytest.approx(0.7))
    assert curve.auc(160) == pytest.approx(1 - 0.5 * 160**-0.7)
    with pytest.raises(ValueError):
        fit_learning_curve([10], [0.9])
