"""Operating point, pool estimates and triage of the core API, on generated scores."""

from __future__ import annotations

import numpy as np
import pytest

from brainscan_exp.core.calibrate import (
    estimate_pool,
    expected_rates,
    operating_threshold,
    pool_threshold,
    reads_for_budget,
    triage,
)
from brainscan_exp.core.predict import OperatingPoint, predict_pool


def _scores(n: int, share: float, rng, shift: float = 0.0, gap: float = 3.0):
    """Labels and P(cancer) from two Gaussian logit distributions, optionally shifted together."""
    y = (rng.random(n) < share).astype(int)
    z = np.where(y == 1, gap / 2, -gap / 2) + rng.normal(size=n) + shift
    return y, 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("method", ["em", "mixture"])
@pytest.mark.parametrize("share", [0.2, 0.5, 0.8])
def test_prior_estimate_recovers_a_known_tumour_share(method, share):
    rng = np.random.default_rng(1)
    y_cal, p_cal = _scores(100, 0.5, rng)
    y_pool, p_pool = _scores(1500, share, rng)
    estimate = estimate_pool(method, y_cal, p_cal, p_pool)
    assert abs(estimate.prior - y_pool.mean()) <= 0.05
    assert estimate.posterior.shape == p_pool.shape and np.all((0 <= estimate.posterior) & (estimate.posterior <= 1))


def test_pool_threshold_reaches_the_target_on_true_posteriors():
    rng = np.random.default_rng(0)
    p = rng.random(2000)
    q = p  # the scores are the true posteriors
    t = pool_threshold(p, q, 0.95)
    sens, spec = expected_rates(p, q, t)
    assert 0.95 <= sens < 0.96
    assert pool_threshold(p, q, 0.99) < t  # a stricter target lowers the threshold
    y = (rng.random(2000) < q).astype(int)  # drawn from those posteriors, the achieved rate follows
    assert abs((p[y == 1] >= t).mean() - 0.95) < 0.03


def test_mixture_rule_follows_a_score_shift_that_labelled_rules_miss():
    """Both classes score 2 logits lower on the pool (another scanner): a threshold read from
    the labelled scores loses the tumours; the pool's own mixture keeps them."""
    rng = np.random.default_rng(3)
    y_cal, p_cal = _scores(100, 0.5, rng, gap=5.0)
    y_pool, p_pool = _scores(1500, 0.5, rng, shift=-2.0, gap=5.0)
    labelled, _ = operating_threshold("conformal", y_cal, p_cal, p_pool, 0.95)
    pooled, estimate = operating_threshold("pool_mixture", y_cal, p_cal, p_pool, 0.95)
    assert (p_pool[y_pool == 1] >= labelled).mean() < 0.85
    assert (p_pool[y_pool == 1] >= pooled).mean() >= 0.92
    assert (p_pool[y_pool == 0] < pooled).mean() >= 0.7
    assert abs(estimate.prior - y_pool.mean()) < 0.05


def test_triage_reads_the_riskiest_normals_and_reports_the_expected_misses():
    p = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.1])
    q = np.array([0.95, 0.9, 0.5, 0.6, 0.2, 0.05])
    none = triage(p, q, threshold=0.5, n_reads=0)
    two = triage(p, q, threshold=0.5, n_reads=2)
    assert list(none.decision) == ["cancer", "cancer", "normal", "normal", "normal", "normal"]
    assert list(two.decision) == ["cancer", "cancer", "review", "review", "normal", "normal"]
    assert none.expected_missed == pytest.approx(0.5 + 0.6 + 0.2 + 0.05)
    assert two.expected_missed == pytest.approx(0.25) and two.n_reads == 2
    assert triage(p, q, 0.5, n_reads=10).n_reads == 4  # never more reads than auto-normal images
    assert reads_for_budget(300, 1.0) == 300 and reads_for_budget(300, 0.7) == 428
    with pytest.raises(ValueError, match="cost_per_read"):
        reads_for_budget(300, 0)


def test_predict_pool_keeps_groups_together_and_estimates_its_rates():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    X = rng.normal(size=(60, 5)) + 1.5 * y[:, None]
    groups = np.repeat(np.arange(30), 2)  # pairs of near copies, same label
    y = y[np.argsort(groups, kind="stable")] if False else y
    y_pool = (rng.random(400) < 0.3).astype(int)
    X_pool = rng.normal(size=(400, 5)) + 1.5 * y_pool[:, None]
    op = OperatingPoint(rule="pool_em", estimator="em", n_boot=20)
    prediction = predict_pool(LogisticRegression(), X, y, X_pool, op, groups=groups)
    assert prediction.p_pool.shape == (400,) and len(prediction.models) == op.inner_folds * op.inner_repeats
    assert abs(prediction.expected["prior"] - y_pool.mean()) < 0.08
    assert (
        prediction.expected["sensitivity_low"]
        <= prediction.expected["sensitivity"]
        <= prediction.expected["sensitivity_high"]
    )
    achieved = (prediction.p_pool[y_pool == 1] >= prediction.threshold).mean()
    assert achieved >= 0.88
