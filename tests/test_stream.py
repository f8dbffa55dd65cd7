"""Chunked pool scoring equals scoring the whole pool at once, for any chunk size and row order."""

import numpy as np
from sklearn.linear_model import LogisticRegression

from brainscan_exp.core.stream import model_scores
from brainscan_exp.features.vectors import RowView


def test_chunked_scores_equal_whole_pool_scoring(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
    models = [LogisticRegression(C=c).fit(X[k::3], y[k::3]) for k, c in enumerate((0.1, 1.0, 10.0))]
    path = tmp_path / "pool.npy"
    np.save(path, X)
    pool = np.load(path, mmap_mode="r")
    expected = np.mean([m.predict_proba(X)[:, 1] for m in models], axis=0)
    np.testing.assert_allclose(model_scores(pool, models, chunk_size=7)[0], expected, rtol=1e-5)
    rows = rng.permutation(200)[:50]
    np.testing.assert_allclose(model_scores(pool, models, rows=rows, chunk_size=16)[0], expected[rows], rtol=1e-5)
    scaled = model_scores(pool, models[:1], chunk_size=64, transform=lambda A: A * 2)[0]
    np.testing.assert_allclose(scaled, models[0].predict_proba(X * 2)[:, 1], rtol=1e-5)


def _file_rss_kb(path) -> int:
    """Resident kB of this process' mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_model_scores_keep_every_model_and_leave_no_memmap_page_resident(tmp_path):
    """One pass gives the mean (float64, as scoring the whole pool) and every model's score
    (the review committee); the memmap's pages are handed back after each chunk, so a pass over
    a pool bigger than memory does not stay resident."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20_000, 64)).astype(np.float32)  # 5 MB
    y = (X[:, 0] > 0).astype(int)
    models = [LogisticRegression(C=c).fit(X[k:2000:2], y[k:2000:2]) for k, c in enumerate((0.1, 1.0))]
    path = tmp_path / "pool.npy"
    np.save(path, X)
    pool = np.load(path, mmap_mode="r")
    rows = rng.permutation(len(X))
    mean, each = model_scores(RowView(pool, rows), models, chunk_size=3000)
    expected = np.stack([m.predict_proba(X[rows])[:, 1] for m in models])
    assert each.shape == (2, len(X)) and each.dtype == np.float32
    np.testing.assert_allclose(each, expected, rtol=1e-5)
    np.testing.assert_allclose(mean, expected.astype(np.float64).mean(axis=0), rtol=1e-12)
    assert _file_rss_kb(path) < 1024, "the chunks' pages stayed resident"
    sample = RowView(pool, rows)[np.arange(0, len(X), 7)]  # a scattered sample (kcenter's)
    np.testing.assert_array_equal(sample, X[rows[::7]])
    assert _file_rss_kb(path) < 1024, "the sample's pages stayed resident"
    np.asarray(pool[:])[:, 0].sum()  # a plain full read keeps them: the check above can fail
    assert _file_rss_kb(path) > 4096
