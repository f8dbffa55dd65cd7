"""Chunked pool scoring equals scoring the whole pool at once, for any chunk size and row order."""

import numpy as np
from sklearn.linear_model import LogisticRegression

from brainscan_exp.core.stream import score_chunks


def test_score_chunks_equals_whole_pool_scoring(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
    models = [LogisticRegression(C=c).fit(X[k::3], y[k::3]) for k, c in enumerate((0.1, 1.0, 10.0))]
    path = tmp_path / "pool.npy"
    np.save(path, X)
    pool = np.load(path, mmap_mode="r")
    expected = np.mean([m.predict_proba(X)[:, 1] for m in models], axis=0)
    np.testing.assert_allclose(score_chunks(pool, models, chunk_size=7), expected, rtol=1e-5)
    rows = rng.permutation(200)[:50]
    np.testing.assert_allclose(score_chunks(pool, models, rows=rows, chunk_size=16), expected[rows], rtol=1e-5)
    scaled = score_chunks(pool, models[:1], chunk_size=64, transform=lambda A: A * 2)
    np.testing.assert_allclose(scaled, models[0].predict_proba(X * 2)[:, 1], rtol=1e-5)
