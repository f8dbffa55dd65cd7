"""The predict and review paths on a pool read lazily from a store memmap: the same labels as an
in-memory pool, one scoring pass that also feeds the review committee, and bounded work where a
pool of millions would not fit (the semi-supervised fit's pool sample, the geometry strategies'
candidate sample, the bootstrap's pool draws)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

import brainscan_exp.core.calibrate as calibrate
import brainscan_exp.core.predict as predict
import brainscan_exp.core.review_queue as review_queue
from brainscan_exp.core.predict import OperatingPoint, predict_pool
from brainscan_exp.core.ray_scores import PoolScorer
from brainscan_exp.core.review_queue import PoolView, choose_reads
from brainscan_exp.dedup import NearCopyFinder
from brainscan_exp.features.vectors import VectorTable


def data(n_pool=600, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 30)
    X_lab = (rng.normal(size=(60, 8)) + y[:, None] * 1.5).astype(np.float32)
    z = rng.random(n_pool) < 0.4
    X_pool = (rng.normal(size=(n_pool, 8)) + z[:, None] * 1.5).astype(np.float32)
    return X_lab, y, X_pool


@pytest.fixture
def stored_pool(tmp_path):
    X_lab, y, X_pool = data()
    hashes = [f"{i:040x}" for i in range(len(X_pool))]
    np.save(tmp_path / "vectors.npy", X_pool)
    np.save(tmp_path / "hashes.npy", np.array(hashes, dtype="S40"))
    table = VectorTable.open(tmp_path / "vectors.npy", tmp_path / "hashes.npy")
    order = np.random.default_rng(1).permutation(len(hashes))  # the pool's rows in catalogue order
    return X_lab, y, X_pool[order], table.view(np.array(hashes)[order])


OP = OperatingPoint(rule="conformal", n_boot=20, inner_folds=3, inner_repeats=2)


def test_a_lazy_pool_gives_the_in_memory_labels_and_the_committee(stored_pool):
    X_lab, y, X_pool, lazy = stored_pool
    est = LogisticRegression(C=0.5)
    eager = predict_pool(est, X_lab, y, X_pool, OP)
    streamed = predict_pool(est, X_lab, y, lazy, OP, score_pool=PoolScorer(chunk_size=64))
    np.testing.assert_allclose(streamed.p_pool, eager.p_pool, rtol=1e-6)
    assert streamed.threshold == pytest.approx(eager.threshold)
    assert (streamed.label_pred == eager.label_pred).all()
    assert streamed.pool_committee.shape == (6, len(X_pool))
    np.testing.assert_allclose(streamed.pool_committee, eager.committee(X_pool), rtol=1e-5)
    view = PoolView.of(streamed, lazy, X_lab)
    assert view.committee is streamed.pool_committee  # no second pass over the pool
    for strategy in ("kcenter", "typiclust", "committee", "safety"):
        idx, _ = choose_reads(strategy, view, 12, audit_share=0.25, seed=3)
        assert len(set(idx.tolist())) == 12


class RecordingSemi(ClassifierMixin, BaseEstimator):
    """A semi-supervised estimator that records how many unlabelled rows it was fitted with."""

    seen: list[int] = []

    def fit(self, X, y):
        RecordingSemi.seen.append(int((np.asarray(y) < 0).sum()))
        labelled = np.asarray(y) >= 0
        self.model_ = LogisticRegression().fit(X[labelled], y[labelled])
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def test_a_semi_supervised_fit_sees_a_bounded_pool_sample(stored_pool, monkeypatch):
    X_lab, y, _, lazy = stored_pool
    monkeypatch.setattr(predict, "SEMI_POOL_MAX", 100)
    RecordingSemi.seen = []
    prediction = predict_pool(RecordingSemi(), X_lab, y, lazy, OP, semi_supervised=True)
    assert RecordingSemi.seen == [100] * 6 and len(prediction.p_pool) == 600


def test_geometry_strategies_look_at_a_bounded_sample(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4))
    p = rng.random(500)
    v = PoolView(p, 0.5, p, np.stack([p] * 3), X, rng.normal(size=(10, 4)))
    exclude = np.arange(0, 500, 2)
    full = choose_reads("kcenter", v, 5, exclude=exclude)[0]
    monkeypatch.setattr(review_queue, "GEOMETRY_MAX", 40)
    for strategy in ("kcenter", "typiclust"):
        idx, _ = choose_reads(strategy, v, 5, seed=2, exclude=exclude)
        assert len(set(idx.tolist())) == 5 and not set(idx.tolist()) & set(exclude.tolist())
    sampled = choose_reads("kcenter", v, 5, exclude=exclude)[0]
    assert set(sampled) != set(full)  # the sample changes what is seen (above the bound only)


def test_bootstrap_draws_at_most_the_bound_from_the_pool(monkeypatch):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    p_cal = np.clip(np.r_[rng.beta(2, 5, 40), rng.beta(5, 2, 40)], 1e-3, 1 - 1e-3)
    p_pool = np.clip(rng.beta(3, 3, 5000), 1e-3, 1 - 1e-3)
    sizes = []
    real = calibrate.estimate_pool
    monkeypatch.setattr(calibrate, "BOOT_POOL_MAX", 700)
    monkeypatch.setattr(
        calibrate, "estimate_pool", lambda m, yc, pc, pp, s=0: sizes.append(len(pp)) or real(m, yc, pc, pp, s)
    )
    out = calibrate.bootstrap_rates("mixture", y, p_cal, p_pool, 0.5, n_boot=5)
    assert sizes == [700] * 5 and out["sensitivity_low"] <= out["sensitivity_high"]


def test_hash_bands_and_the_neighbour_index_follow_the_size_of_the_collection():
    finder = NearCopyFinder()
    assert finder._bands(1_500) == 6 and finder._bands(1_000_000) == 2
    assert NearCopyFinder(n_bands=4)._bands(1_000_000) == 4
    assert finder._ann(1_500, 520) == "exact"
    assert finder._ann(1_000_000, 520) == "PCA128,IVF{nlist},Flat" and finder._ann(1_000_000, 64) == "IVF{nlist},Flat"
