"""The scale-up cost model: what labelling N images costs in compute and in expert reads.

Why: the client asks whether 4 million images can be labelled for EUR 5,000. Compute and expert
time are priced apart, because the answer turns on the second: the embedding throughput is
measured (``scripts/bench_features.py``), the prices are stated assumptions (``conf/cost``), and
the expert reads a budget buys follow the review queue's rule (``core.calibrate``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Throughput:
    """Images per second per CPU core of the stage's default runtime, and the JPEG decode rate."""

    runtime: str
    images_per_s: float  # on the measuring machine
    cores: int  # cores of the measuring machine
    decode_per_core: float  # images/s one thread decodes
    source: str  # the fields it was read from

    @property
    def per_core(self) -> float:
        return self.images_per_s / max(self.cores, 1)


def read_throughput(bench: dict) -> Throughput:
    """The end-to-end stage rate (JPEG files to store) of the default CPU runtime, i.e. the fastest
    runtime that agrees with torch fp32, from ``scripts/bench_features.py``'s JSON."""
    try:
        runtime = f"{bench['default_runtime']}/fp32"
        rate = float(bench["runtimes"][runtime]["stage_images_per_s"])
        cores = int(bench["env"].get("cpu_affinity") or bench["env"]["cpu_count"])
        decode_ms = float(bench["draft_decode"]["decode_ms_per_image_one_thread"]["draft_2x"])
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"bench_features.json lacks {exc} (default_runtime, runtimes.<rt>/fp32.stage_images_per_s, "
            "env.cpu_affinity, draft_decode): rerun `python scripts/bench_features.py`"
        ) from exc
    return Throughput(runtime, rate, cores, 1000.0 / decode_ms, f"runtimes.{runtime}.stage_images_per_s")


@dataclass(frozen=True)
class Option:
    name: str
    images_per_s: float
    eur_per_hour: float
    fixed_hours: float = 0.0
    nodes: int = 1

    def hours(self, n_images: int) -> float:
        return n_images / self.images_per_s / 3600 + self.fixed_hours

    def cost(self, n_images: int) -> float:
        return self.hours(n_images) * self.eur_per_hour


def options(throughput: Throughput, cost_cfg) -> list[Option]:
    """CPU node, one GPU, a Ray cluster: each option's rate from the measured per-core rate."""
    cpu = cost_cfg["cpu_node"]
    node_rate = throughput.per_core * cpu["vcpus"] * cpu["scaling"]
    gpu = cost_cfg["gpu"]
    host_rate = throughput.decode_per_core * gpu["host_vcpus"] * gpu["scaling"]
    gpu_rate = min(float(gpu["model_images_per_s"]), host_rate)
    ray = cost_cfg["ray"]
    k = int(ray["nodes"])
    return [
        Option(f"cpu_node_{throughput.runtime.split('/')[0]}", node_rate, cpu["eur_per_hour"]),
        Option("gpu", gpu_rate, gpu["eur_per_hour"]),
        Option(
            f"ray_{k}_nodes",
            node_rate * k * ray["scaling"],
            k * cpu["eur_per_hour"] + ray["head_eur_per_hour"],
            fixed_hours=ray["startup_hours"],
            nodes=k,
        ),
    ]


def audit_tumours(bar: float, expected: float, confidence: float) -> int:
    """Smallest number of tumours to read so that the one-sided Clopper-Pearson lower bound of a
    sensitivity observed at ``expected`` clears ``bar``: what certifying the bar costs."""
    if not 0 < bar < expected < 1:
        raise ValueError(f"need 0 < bar ({bar}) < expected ({expected}) < 1")
    for n in range(10, 100_000):
        k = math.floor(expected * n)
        if k > 0 and stats.beta.ppf(1 - confidence, k, n - k + 1) >= bar:
            return n
    raise ValueError("no audit size under 100,000 tumours")


@dataclass(frozen=True)
class LearningCurve:
    """1 - AUC = c * n^-b, fitted by least squares in log-log on (labels, mean AUC) points."""

    c: float
    b: float
    n_points: int

    def auc(self, n: float) -> float:
        return float(1 - self.c * np.power(float(n), -self.b))


def fit_learning_curve(n_labels, auc) -> LearningCurve:
    n, a = np.asarray(n_labels, float), np.asarray(auc, float)
    ok = (n > 0) & (a < 1) & np.isfinite(a)
    if ok.sum() < 2:
        raise ValueError("a learning curve needs at least two label budgets with AUC < 1")
    slope, intercept = np.polyfit(np.log(n[ok]), np.log(1 - a[ok]), 1)
    return LearningCurve(float(np.exp(intercept)), float(-slope), int(ok.sum()))


def as_dict(option: Option, n_images: int) -> dict:
    return asdict(option) | {"hours": option.hours(n_images), "cost_eur": option.cost(n_images)}
