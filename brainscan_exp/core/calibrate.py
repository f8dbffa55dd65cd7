"""Operating point, pool prior and class-conditional score estimates, and triage under a budget.

Why: a threshold read off the labelled images alone assumes the pool scores like them. It does
not: other scanners and sources shift the scores, and the tumour share differs. The pool is
unlabelled but available, so its own score distribution tells where the tumours sit. Two pool
estimators, both fitted without a single pool label:

* ``em``: EM prior adjustment with bias-corrected temperature scaling (Alexandari et al., ICML
  2020; QuaPy's ``EMQ`` with ``calib='bcts'``). It corrects a prior shift; it assumes the
  class-conditional scores did not move.
* ``mixture``: a two-component Gaussian mixture on the pool's score logits, started from the
  labelled out-of-fold class-conditionals. It follows a shift of both classes' scores.

Either gives every pool image a posterior ``q`` = P(cancer | score, pool). The pool's expected
sensitivity at a threshold ``t`` is ``sum(q[p >= t]) / sum(q)``; the ``pool_*`` rules take the
highest threshold whose expected sensitivity reaches the target.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from brainscan_exp.evaluation.metrics import THRESHOLD_RULES, choose_threshold

LABELLED_RULES = THRESHOLD_RULES  # threshold from the labelled out-of-fold scores alone
POOL_RULES = ("pool_em", "pool_mixture")  # threshold from the pool's estimated class-conditionals
RULES = (*LABELLED_RULES, *POOL_RULES)
EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class PoolEstimate:
    """What the pool says about itself: its tumour share and each image's posterior."""

    method: str
    prior: float  # estimated tumour share of the pool
    posterior: np.ndarray  # P(cancer | score) for each pool image, under the estimated pool
    fallback: bool = False  # the estimator could not run as configured (reason logged by the caller)


def _two_column(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.c_[1 - p, p]


def estimate_pool_em(y_cal: np.ndarray, p_cal: np.ndarray, p_pool: np.ndarray) -> PoolEstimate:
    """QuaPy's EMQ-BCTS on calibration scores (labelled out-of-fold) and the pool's scores.

    BCTS can fail to converge on a tiny calibration set (L-BFGS line search); QuaPy then skips
    calibration (``on_calib_error='backup'``), which we report as a fallback."""
    from quapy.method.aggregative import EMQ
    from sklearn.base import BaseEstimator, ClassifierMixin

    class _Scores(ClassifierMixin, BaseEstimator):
        """QuaPy wants a classifier; the posteriors are computed already, so it passes them on."""

        def fit(self, X, y):
            self.classes_ = np.array([0, 1])
            return self

        def predict_proba(self, P):
            return P

    P_cal, P_pool = _two_column(p_cal), _two_column(p_pool)
    y_cal = np.asarray(y_cal, dtype=int)
    quantifier = EMQ(
        _Scores().fit(P_cal, y_cal),
        fit_classifier=False,
        val_split=None,
        exact_train_prev=False,
        calib="bcts",
        on_calib_error="backup",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantifier.aggregation_fit(P_cal, y_cal)
        calibrated = getattr(quantifier, "calibration_function", None)
        fallback = calibrated is not None and np.allclose(calibrated(P_cal[:3]), P_cal[:3])
        posterior = quantifier.predict_proba(P_pool)[:, 1]
    return PoolEstimate("em", float(posterior.mean()), posterior, bool(fallback))


def estimate_pool_mixture(y_cal: np.ndarray, p_cal: np.ndarray, p_pool: np.ndarray, seed: int = 0) -> PoolEstimate:
    """Two Gaussians with one shared variance on the pool's logits, started at the labelled
    class-conditional logits (a shared variance keeps an overlapping 1-D mixture identifiable).

    The component with the higher mean is the tumour one. When the fit collapses (a component
    under 1 % of the pool, or no convergence), the labelled class-conditionals are kept and only
    the prior is fitted (``fallback``)."""
    from sklearn.mixture import GaussianMixture

    z_cal, z_pool = logit(p_cal), logit(p_pool).reshape(-1, 1)
    y_cal = np.asarray(y_cal, dtype=int)
    means = np.array([[z_cal[y_cal == 0].mean()], [z_cal[y_cal == 1].mean()]])
    precisions = 1 / np.maximum(np.array([z_cal[y_cal == 0].var(), z_cal[y_cal == 1].var()]), 1e-3)
    gmm = GaussianMixture(
        2,
        covariance_type="tied",
        means_init=means,
        precisions_init=[[1 / np.mean(1 / precisions)]],
        weights_init=[0.5, 0.5],
        random_state=seed,
        max_iter=500,
    )
    gmm.fit(z_pool)
    order = np.argsort(gmm.means_[:, 0])
    weights = gmm.weights_[order]
    if weights.min() < 0.01 or not gmm.converged_:
        return _prior_only_mixture(means[:, 0], 1 / np.sqrt(precisions), z_pool[:, 0])
    posterior = gmm.predict_proba(z_pool)[:, order[1]]
    return PoolEstimate("mixture", float(weights[1]), posterior)


def _prior_only_mixture(means: np.ndarray, sds: np.ndarray, z: np.ndarray) -> PoolEstimate:
    from scipy.stats import norm

    dens = np.stack([norm.pdf(z, means[k], sds[k]) for k in (0, 1)], axis=1) + 1e-300
    prior = 0.5
    for _ in range(500):
        post = prior * dens[:, 1] / (prior * dens[:, 1] + (1 - prior) * dens[:, 0])
        new = float(post.mean())
        if abs(new - prior) < 1e-7:
            break
        prior = new
    return PoolEstimate("mixture", prior, post, fallback=True)


def estimate_pool(method: str, y_cal: np.ndarray, p_cal: np.ndarray, p_pool: np.ndarray, seed: int = 0) -> PoolEstimate:
    if method == "em":
        return estimate_pool_em(y_cal, p_cal, p_pool)
    if method == "mixture":
        return estimate_pool_mixture(y_cal, p_cal, p_pool, seed)
    raise ValueError(f"pool estimator must be 'em' or 'mixture', got {method!r}")


def expected_rates(p: np.ndarray, q: np.ndarray, threshold: float) -> tuple[float, float]:
    """Expected (sensitivity, specificity) on the pool at ``threshold``, given posteriors ``q``."""
    called = np.asarray(p) >= threshold
    q = np.asarray(q, dtype=float)
    sens = float(q[called].sum() / max(q.sum(), 1e-12))
    spec = float((1 - q)[~called].sum() / max((1 - q).sum(), 1e-12))
    return sens, spec


def pool_threshold(p: np.ndarray, q: np.ndarray, target_sensitivity: float) -> float:
    """Highest threshold (one of the pool's scores) whose expected pool sensitivity reaches the target."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    order = np.argsort(-p)
    captured = np.cumsum(q[order]) / max(q.sum(), 1e-12)  # sensitivity when the top i+1 are called
    i = int(np.searchsorted(captured, target_sensitivity - 1e-12))
    return float(p[order][min(i, len(p) - 1)])


def operating_threshold(
    rule: str,
    y_cal: np.ndarray,
    p_cal: np.ndarray,
    p_pool: np.ndarray,
    target_sensitivity: float,
    confidence: float = 0.9,
    seed: int = 0,
) -> tuple[float, PoolEstimate | None]:
    """The threshold of ``rule`` and, for the pool rules, the pool estimate it came from."""
    if rule in LABELLED_RULES:
        return choose_threshold(y_cal, p_cal, target_sensitivity, rule=rule, confidence=confidence), None
    if rule in POOL_RULES:
        estimate = estimate_pool(rule.removeprefix("pool_"), y_cal, p_cal, p_pool, seed)
        return pool_threshold(p_pool, estimate.posterior, target_sensitivity), estimate
    raise ValueError(f"operating_point.rule must be one of {RULES}, got {rule!r}")


BOOT_POOL_MAX = 20_000


def bootstrap_rates(
    method: str,
    y_cal: np.ndarray,
    p_cal: np.ndarray,
    p_pool: np.ndarray,
    threshold: float,
    n_boot: int = 100,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, float]:
    """Intervals for the pool's expected sensitivity and specificity at ``threshold``: the
    calibration images and the pool are both resampled and the estimator refitted each time.

    A replicate draws at most ``BOOT_POOL_MAX`` pool scores: past that the pool's sampling error
    is negligible beside the 100-300 calibration images', and a smaller draw only widens the
    interval, while 100 refits on a million scores would take minutes."""
    rng = np.random.default_rng(seed)
    y_cal, p_cal, p_pool = np.asarray(y_cal), np.asarray(p_cal), np.asarray(p_pool)
    sens, spec, prior = [], [], []
    for b in range(n_boot):
        ci = np.concatenate([rng.choice(np.flatnonzero(y_cal == k), (y_cal == k).sum()) for k in (0, 1)])
        pi = rng.integers(0, len(p_pool), min(len(p_pool), BOOT_POOL_MAX))
        est = estimate_pool(method, y_cal[ci], p_cal[ci], p_pool[pi], seed + b)
        s, c = expected_rates(p_pool[pi], est.posterior, threshold)
        sens.append(s), spec.append(c), prior.append(est.prior)
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    out = {}
    for name, values in (("sensitivity", sens), ("specificity", spec), ("prior", prior)):
        out[f"{name}_low"], out[f"{name}_high"] = (float(v) for v in np.quantile(values, [lo, hi]))
    return out


@dataclass(frozen=True)
class Triage:
    """Each pool image auto-labelled cancer or normal, or sent to a radiologist (``review``)."""

    decision: np.ndarray  # "cancer" | "normal" | "review"
    n_reads: int
    expected_missed: float  # expected tumours among the images left auto-labelled normal


def triage(p: np.ndarray, q: np.ndarray, threshold: float, n_reads: int) -> Triage:
    """Spend ``n_reads`` expert reads where they remove the most expected missed tumours: the
    auto-normal images with the highest posterior ``q`` (each read of image i removes q_i)."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    decision = np.where(p >= threshold, "cancer", "normal").astype(object)
    normal = np.flatnonzero(decision == "normal")
    chosen = normal[np.argsort(-q[normal], kind="stable")][: max(int(n_reads), 0)]
    decision[chosen] = "review"
    expected_missed = float(q[decision == "normal"].sum())
    return Triage(decision, len(chosen), expected_missed)


def reads_for_budget(budget_eur: float, cost_per_read_eur: float) -> int:
    if cost_per_read_eur <= 0:
        raise ValueError(f"review.cost_per_read_eur must be > 0, got {cost_per_read_eur}")
    return int(np.floor(budget_eur / cost_per_read_eur + 1e-9))
