"""Review strategies, expert reads in the predict pipeline, the delivered-error estimate, and the
simulated-reader loop, on small generated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from brainscan_exp.core.predict import OperatingPoint
from brainscan_exp.core.reads import calibration_mask, delivered_error, training_mask, with_reads
from brainscan_exp.core.review_loop import Pipeline, fit_round, one_shot, simulate
from brainscan_exp.core.review_queue import STRATEGIES, PoolView, choose_reads
from brainscan_exp.core.scenarios import Scenario
from brainscan_exp.review.ledger import resolve


def view(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    p = 1 / (1 + np.exp(-X[:, 0] * 2))
    committee = np.clip(p + rng.normal(0, 0.1, size=(5, n)), 0.001, 0.999)
    return PoolView(p, 0.3, p, committee, X, rng.normal(size=(20, 8)))


@pytest.mark.parametrize("strategy", [*STRATEGIES, "typiclust+threshold"])
def test_every_strategy_gives_distinct_allowed_reads_with_an_audit_share(strategy):
    v = view()
    exclude = np.arange(10)
    idx, reasons = choose_reads(strategy, v, 40, audit_share=0.25, seed=1, exclude=exclude)
    assert len(idx) == 40 and len(set(idx)) == 40
    assert not set(idx) & set(exclude)
    assert (reasons == "audit").sum() == 10
    assert set(reasons) - {"audit"} <= set(strategy.split("+"))


def test_strategies_pick_what_they_promise():
    v = view()
    near = choose_reads("threshold", v, 10)[0]
    dist = np.abs(np.log(v.p / (1 - v.p)) - np.log(0.3 / 0.7))
    assert set(near) == set(np.argsort(dist)[:10])
    safe = choose_reads("safety", v, 10)[0]
    assert (v.p[safe] < 0.3).all() and v.q[safe].min() >= v.q[v.p < 0.3][
        ~np.isin(np.flatnonzero(v.p < 0.3), safe)
    ].max()
    far = choose_reads("kcenter", v, 1)[0]
    X = v.X / np.linalg.norm(v.X, axis=1, keepdims=True)
    K = v.X_known / np.linalg.norm(v.X_known, axis=1, keepdims=True)
    nearest = np.min(np.linalg.norm(X[:, None] - K[None], axis=2), axis=1)
    assert far[0] == np.argmax(nearest)


def test_a_final_strategy_replaces_the_strategy_in_the_batch_it_is_given_for():
    v = view()
    _, early = choose_reads("threshold", v, 10)
    _, last = choose_reads("threshold", v, 10, audit_share=0.2, final_strategy="safety")
    assert set(early) == {"threshold"} and set(last) == {"safety"}  # no audit in the final check


def test_budget_larger_than_the_pool_and_unknown_strategy():
    v = view(n=12)
    idx, _ = choose_reads("typiclust", v, 50)
    assert sorted(idx) == list(range(12))
    with pytest.raises(ValueError, match="unknown"):
        choose_reads("uncertainty", v, 5)


def frames(n_lab=20, n_pool=60):
    labelled = pd.DataFrame(
        {
            "file": [f"l{i}" for i in range(n_lab)],
            "pixel_hash": [f"L{i}" for i in range(n_lab)],
            "label": np.arange(n_lab) % 2,
        }
    )
    pool = pd.DataFrame(
        {"file": [f"sans_label/p{i}.jpg" for i in range(n_pool)], "pixel_hash": [f"P{i}" for i in range(n_pool)]}
    )
    return labelled, pool


def test_reads_join_training_and_leave_the_pool_with_their_near_copies():
    labelled, pool = frames()
    resolved = resolve(
        pd.DataFrame(
            {
                "file": [f"sans_label/p{i}.jpg" for i in (0, 1, 2, 2, 3, 4)],
                "pixel_hash": ["P0", "P1", "P2", "P2", "P3", "P4"],
                "label": ["cancer", "normal", "cancer", "normal", "unreadable", "normal"],
                "reader": ["a", "a", "a", "b", "a", "a"],
                "read_at": "",
                "source": "x",
                "round": 1,
                "reason": ["audit", "threshold", "threshold", "threshold", "audit", "safety"],
            }
        )
    )
    groups = {"P5": "P0"}  # P5 is a near copy of the read P0
    train, unread = with_reads(labelled, pool, resolved, lambda hs: [groups.get(h, h) for h in hs])
    reads = train[train.source == "expert"]
    assert dict(zip(reads.pixel_hash, reads.label)) == {"P0": 1, "P1": 0, "P4": 0}
    assert set(train.pixel_hash[~training_mask(train)]) == {"P4"}  # the safety net checks, it does not teach
    assert set(reads.pixel_hash[reads.audit]) == {"P0"}
    assert calibration_mask(train).sum() == 20 + 1  # labelled + the audit read, not the chosen one
    assert not {"P0", "P1", "P4", "P5"} & set(unread.pixel_hash)
    assert {"P2", "P3"} <= set(unread.pixel_hash)  # conflict and unreadable: scored, not trained on


def test_delivered_error_interval_from_audits_and_model_fallback():
    y = np.array([1] * 20 + [0] * 20)
    p = np.r_[np.full(20, 0.9), np.full(19, 0.1), 0.8]  # one false alarm among 40 audits
    est = delivered_error(y, p, 0.5, np.r_[np.ones(300), np.zeros(100)].astype(int), np.zeros(400), 500)
    assert est.method == "audit" and est.false_alarms == pytest.approx(400 / 40) and est.missed == 0
    assert est.rate == pytest.approx(10 / 500)
    assert 0 <= est.rate_low < est.rate < est.rate_high < 0.2
    model = delivered_error(y[:0], p[:0], 0.5, np.array([0, 0, 1]), np.array([0.2, 0.1, 0.7]), 3)
    assert model.method == "model" and model.missed == pytest.approx(0.3) and model.false_alarms == pytest.approx(0.3)


def scenario(seed=0, n_pool=300):
    """Two shifted Gaussian classes: a pool the labelled set only half covers."""
    rng = np.random.default_rng(seed)
    y_pool = rng.random(n_pool) < 0.6
    Xp = rng.normal(size=(n_pool, 6)) + np.where(y_pool[:, None], 1.2, -1.2) * np.r_[1, 0.5, 0, 0, 0, 0]
    y_lab = np.arange(30) % 2 == 1
    Xl = rng.normal(size=(30, 6)) * 0.7 + np.where(y_lab[:, None], 1.0, -1.0) * np.r_[1, 0, 0, 0, 0, 0]
    labelled = pd.DataFrame(
        {"file": [f"l{i}" for i in range(30)], "pixel_hash": [f"L{i}" for i in range(30)], "label": y_lab.astype(int)}
    )
    labelled["group"] = labelled.pixel_hash
    pool = pd.DataFrame(
        {"file": [f"sans_label/p{i}.jpg" for i in range(n_pool)], "pixel_hash": [f"P{i}" for i in range(n_pool)]}
    )
    truth = pd.DataFrame({"file": pool.file, "label": np.where(y_pool, "cancer", "normal")})
    vectors = dict(zip(labelled.pixel_hash, Xl)) | dict(zip(pool.pixel_hash, Xp))
    pipe = Pipeline(
        LogisticRegression(C=0.3),
        OperatingPoint(rule="conformal", inner_folds=3, inner_repeats=1, n_boot=0),
        lambda hs: np.stack([vectors[h] for h in hs]) if len(hs) else np.zeros((0, 6)),
    )
    return pipe, Scenario("toy", "toy", labelled, pool, truth)


def test_the_loop_spends_the_budget_through_the_ledger_and_fixes_labels():
    pipe, sc = scenario()
    first = fit_round(pipe, sc.labelled, sc.pool, pd.DataFrame(columns=["pixel_hash"]))
    truth = sc.truth.set_index("file").label
    (before,) = one_shot(pipe, first, truth, 60, [0.95])
    (after,), fitted = simulate(pipe, sc, "threshold", None, 20, 0.2, 60, first, seed=0)
    assert after["rounds"] == 3 and after["n_reads"] == 60
    assert (fitted.train.source == "expert").sum() == 60
    assert fitted.train.audit.sum() == 12  # 20 % of each batch of 20
    assert after["n_pool"] == before["n_pool"] == 300
    assert after["missed"] + after["false_alarms"] <= before["missed"] + before["false_alarms"]
    assert after["estimate_method"] == "audit" and after["estimate_low"] <= after["estimate_high"]

    (checked,), fitted = simulate(pipe, sc, "threshold", "safety", 20, 0.2, 60, first, seed=0)
    assert fitted.n_checked == 20 and checked["n_reads"] == 60  # the last batch: 20 safety reads, no audit
    assert (fitted.train.source == "expert").sum() == 40  # they are delivered, not trained on
    assert fitted.train.audit.sum() == 8  # the two learning rounds' audits
