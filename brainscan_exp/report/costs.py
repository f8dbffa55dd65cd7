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

RATE_KEYS = ("stage_images_per_s", "images_per_s", "model_only_images_per_s")


@dataclass(frozen=True)
class Throughput:
    """Images per second per CPU core of the fastest measured runtime, and the JPEG decode rate."""

    runtime: str
    images_per_s: float  # on the measuring machine
    cores: int  # cores of the measuring machine
    decode_per_core: float  # images/s one thread decodes
    source: str  # the fields it was read from

    @property
    def per_core(self) -> float:
        return self.images_per_s / max(self.cores, 1)


def _rate(entry) -> float | None:
    if isinstance(entry, int | float):
        return float(entry)
    if isinstance(entry, dict):
        for key in RATE_KEYS:
            if isinstance(entry.get(key), int | float):
                return float(entry[key])
    return None


def read_throughput(bench: dict) -> Throughput:
    """Reads ``bench_features.json`` defensively: per-runtime rates (``runtimes`` as
    ``{name: {...}}`` or ``[{"runtime": name, ...}]``) when present, the fastest of them; otherwise
    the torch stage rate of the original benchmark."""
    cores = int(bench.get("env", {}).get("cpu_affinity") or bench.get("env", {}).get("cpu_count") or 1)
    decode = bench.get("diagnostics", {}).get("decode", {}).get("images_per_s_one_thread")
    runtimes = bench.get("runtimes") or bench.get("per_runtime") or {}
    if isinstance(runtimes, list):  # [{"runtime": name, "images_per_s": ...}, ...]
        runtimes = {
            str(e.get("runtime") or e.get("name") or i): e for i, e in enumerate(runtimes) if isinstance(e, dict)
        }
    rates = {name: _rate(entry) for name, entry in runtimes.items()} if isinstance(runtimes, dict) else {}
    rates = {k: v for k, v in rates.items() if v}
    if rates:
        best = max(rates, key=rates.get)
        runtime, rate, source = best, rates[best], f"runtimes.{best}"
    else:
        rate = _rate(bench)
        if rate is None:
            raise ValueError(f"bench_features.json has no throughput field (looked for runtimes.* and {RATE_KEYS})")
        runtime = bench.get("runtime", "torch")
        source = next(k for k in RATE_KEYS if isinstance(bench.get(k), int | float))
    if not decode:  # older files: decoding is not the bottleneck on CPU, assume 10x the model rate
        decode = 10 * rate / cores
    return Throughput(runtime, float(rate), cores, float(decode), source)


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
        Option(f"cpu_node_{throughput.runtime}", node_rate, cpu["eur_per_hour"]),
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
