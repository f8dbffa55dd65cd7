"""Tests of brainscan_exp.evaluation on small synthetic data (fast, no I/O beyond tmp_path)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.calibration import calibration_curve

from brainscan_exp.evaluation import (
    binary_metrics,
    choose_threshold,
    confusion_counts,
    corrected_t_ci,
    expected_calibration_error,
    holm,
    label_efficiency_table,
    paired_differences,
    plot_confusion_matrix,
    plot_forest,
    plot_label_efficiency,
    plot_reliability_diagram,
    plot_roc_curve,
    summarise,
    to_markdown,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _scores(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Imbalanced labels with informative but overlapping, rounded (hence tied) scores."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = 1.0 / (1.0 + np.exp(-(1.5 * (2 * y - 1) + rng.normal(0, 1.2, n))))
    return y, np.round(p, 2)


def _sensitivity(y, p, t) -> float:
    return float(((p >= t) & (y == 1)).sum() / (y == 1).sum())


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 1.0])
def test_choose_threshold_is_highest_reaching_target(target):
    y, p = _scores()
    t = choose_threshold(y, p, target_sensitivity=target)
    assert _sensitivity(y, p, t) >= target
    # every higher candidate threshold (observed score) misses the target
    for higher in np.unique(p[p > t]):
        assert _sensitivity(y, p, higher) < target
    assert binary_metrics(y, p, threshold=t)["sensitivity"] >= target


def test_choose_threshold_ties_and_exact_fraction():
    # 20 positives: 0.95 needs exactly 19 detected; the tie at 0.3 contains 2 positives
    y = np.array([1] * 20 + [0] * 5)
    p = np.array([0.9] * 17 + [0.3, 0.3, 0.1] + [0.3, 0.2, 0.2, 0.1, 0.05])
    t = choose_threshold(y, p, 0.95)
    assert t == pytest.approx(0.3)
    assert _sensitivity(y, p, t) == pytest.approx(19 / 20)


def test_choose_threshold_single_class_falls_back():
    with pytest.warns(RuntimeWarning, match="one class"):
        assert choose_threshold(np.ones(5, int), np.linspace(0.1, 0.9, 5)) == 0.5
    with pytest.raises(ValueError):
        choose_threshold([0, 1], [0.2, 0.8], target_sensitivity=0.0)


def test_binary_metrics_hand_checked():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.55, 0.2, 0.1, 0.1, 0.05])
    m = binary_metrics(y, p, threshold=0.5)
    assert set(m) == {
        "sensitivity", "specificity", "precision", "npv", "f1", "f2", "accuracy", "balanced_accuracy",
        "roc_auc", "pr_auc", "brier", "ece", "threshold", "tp", "fp", "tn", "fn", "n",
    }  # fmt: skip
    assert (m["tp"], m["fp"], m["tn"], m["fn"], m["n"]) == (3, 2, 4, 1, 10)
    prec, rec = 3 / 5, 3 / 4
    assert m["sensitivity"] == pytest.approx(rec)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(prec)
    assert m["npv"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(2 * prec * rec / (prec + rec))
    assert m["f2"] == pytest.approx(5 * prec * rec / (4 * prec + rec))  # F_beta, beta = 2
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert m["roc_auc"] == pytest.approx(21 / 24)  # 21 of 24 (pos, neg) pairs correctly ordered
    assert m["brier"] == pytest.approx(np.mean((y - p) ** 2))
    assert m["threshold"] == 0.5


def test_binary_metrics_single_class_gives_nan_auc_no_error():
    y = np.zeros(6, int)
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.05])
    m = binary_metrics(y, p)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert m["fp"] == 2 and m["tp"] == 0
    assert m["precision"] == 0.0  # zero_division, no exception
    assert m["specificity"] == pytest.approx(4 / 6)


def test_binary_metrics_rejects_bad_input():
    with pytest.raises(ValueError):
        binary_metrics([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.1, 1.2])
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.1])


def test_expected_calibration_error():
    y = np.array([1] * 25 + [0] * 75)
    assert expected_calibration_error(y, np.full(100, 0.25)) == pytest.approx(0.0)
    assert expected_calibration_error(np.ones(10, int), np.full(10, 0.8)) == pytest.approx(0.2)
    # two bins: 0.1 predicted, 0.5 observed (40 samples) and 0.9 predicted, 0.9 observed (60 samples)
    y2 = np.array([1] * 20 + [0] * 20 + [1] * 54 + [0] * 6)
    p2 = np.array([0.1] * 40 + [0.9] * 60)
    assert expected_calibration_error(y2, p2) == pytest.approx(0.4 * 0.4)
    # p == 1.0 must land in the last bin, not out of range
    assert expected_calibration_error([1, 1], [1.0, 1.0]) == pytest.approx(0.0)
    # same binning as sklearn's calibration_curve (scores on bin edges included)
    y3, p3 = _scores(seed=4)
    frac_pos, mean_pred = calibration_curve(y3, p3, n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p3), minlength=10)
    ref = np.sum(counts[counts > 0] / p3.size * np.abs(frac_pos - mean_pred))
    assert expected_calibration_error(y3, p3, n_bins=10) == pytest.approx(ref)


def test_confusion_counts_labels_both_classes():
    cm = confusion_counts([1, 1, 1, 1], [1, 0, 1, 1])
    assert list(cm.index) == ["normal", "cancer"] and list(cm.columns) == ["normal", "cancer"]
    assert cm.loc["cancer", "cancer"] == 3 and cm.loc["cancer", "normal"] == 1
    assert cm.loc["normal"].sum() == 0


# --------------------------------------------------------------------------- aggregate


def _fold_metrics(seed: int = 0, n_folds: int = 10) -> pd.DataFrame:
    """sup = reference; 'better' = consistent +0.05 gain; 'noise' = exactly zero-mean noise."""
    rng = np.random.default_rng(seed)
    folds = np.arange(n_folds)
    sup = {"sensitivity": rng.normal(0.80, 0.04, n_folds), "roc_auc": rng.normal(0.85, 0.03, n_folds)}
    rows = []
    for regime in ("sup", "better", "noise"):
        df = pd.DataFrame({"regime": regime, "fold": folds})
        for metric, base in sup.items():
            if regime == "sup":
                df[metric] = base
            elif regime == "better":
                df[metric] = base + 0.05 + rng.normal(0, 0.01, n_folds)
            else:
                e = rng.normal(0, 0.02, n_folds)
                df[metric] = base + e - e.mean()
        rows.append(df)
    out = pd.concat(rows, ignore_index=True)
    out["tp"] = 10  # raw counts are not aggregated by default
    return out


def test_summarise_ci_brackets_mean():
    fm = _fold_metrics()
    s = summarise(fm, n_boot=500)
    assert set(s["regime"]) == {"sup", "better", "noise"}
    assert set(s["metric"]) == {"sensitivity", "roc_auc"}
    assert (s["n_folds"] == 10).all()
    assert ((s["ci_low"] <= s["mean"]) & (s["mean"] <= s["ci_high"])).all()
    assert (s["ci_high"] > s["ci_low"]).all()
    expected = fm.groupby("regime")["sensitivity"].mean()
    got = s[s["metric"] == "sensitivity"].set_index("regime")["mean"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)


def test_summarise_corrected_interval_is_wider_and_nan_dropped():
    fm = _fold_metrics()
    fm.loc[0, "roc_auc"] = np.nan  # e.g. a single-class fold
    s = summarise(fm, n_boot=500, n_train=400, n_test=100).set_index(["regime", "metric"])
    assert s.loc[("sup", "roc_auc"), "n_folds"] == 9
    assert not np.isnan(s.loc[("sup", "roc_auc"), "mean"])
    assert ((s["t_high"] - s["t_low"]) > (s["ci_high"] - s["ci_low"])).all()


def test_corrected_t_reduces_to_scipy_and_widens():
    d = np.random.default_rng(1).normal(0.02, 0.03, 10)
    plain = corrected_t_ci(d, ci=0.95)
    ref = stats.ttest_1samp(d, 0.0)
    assert plain.p_value == pytest.approx(ref.pvalue)
    assert (plain.ci_low, plain.ci_high) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    nb = corrected_t_ci(d, n_train=400, n_test=100)
    # variance inflated by (1/J + 1/4) / (1/J) = 3.5
    assert (nb.ci_high - nb.ci_low) == pytest.approx((plain.ci_high - plain.ci_low) * math.sqrt(3.5))
    assert nb.p_value > plain.p_value
    zero = corrected_t_ci(np.zeros(5), 400, 100)
    assert zero.p_value == 1.0 and zero.ci_low == zero.ci_high == 0.0


def test_holm_adjustment():
    raw = np.array([0.01, 0.04, 0.03, 0.005])
    adj = holm(raw)
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    assert (adj >= raw).all()
    order = np.argsort(raw)
    assert (np.diff(adj[order]) >= 0).all()  # monotone in the raw p order
    assert (holm([0.5, 0.9, 0.7]) <= 1.0).all()
    np.testing.assert_allclose(holm([0.01, np.nan, 0.02]), [0.02, np.nan, 0.02])


def test_paired_differences_detects_gain_not_noise():
    fm = _fold_metrics()
    shuffled = fm.sample(frac=1.0, random_state=3)  # pairing must be on fold id, not row order
    d = paired_differences(shuffled, reference="sup", n_train=400, n_test=100, n_boot=500)
    assert set(d["regime"]) == {"better", "noise"}
    assert (d["test"] == "corrected_t").all()
    d = d.set_index(["regime", "metric"])
    for metric in ("sensitivity", "roc_auc"):
        gain = d.loc[("better", metric)]
        assert gain["significant"]
        assert gain["mean_diff"] == pytest.approx(0.05, abs=0.01)
        assert gain["t_low"] > 0 and gain["boot_low"] > 0
        assert gain["p_wilcoxon"] < 0.01
        noise = d.loc[("noise", metric)]
        assert not noise["significant"]
        assert noise["mean_diff"] == pytest.approx(0.0, abs=1e-12)
        assert noise["t_low"] < 0 < noise["t_high"]
        assert noise["p_wilcoxon"] > 0.5
    assert (d["p_holm"] >= d["p_t"]).all()
    assert (d["p_wilcoxon_holm"] >= d["p_wilcoxon"]).all()


def test_paired_differences_plain_t_and_identical_regimes():
    fm = _fold_metrics()
    same = fm[fm["regime"] == "sup"].assign(regime="copy")
    d = paired_differences(pd.concat([fm, same]), reference="sup", metrics=["sensitivity"], n_boot=200)
    assert (d["test"] == "paired_t").all()
    copy = d.set_index("regime").loc["copy"]
    assert copy["mean_diff"] == 0.0 and copy["p_wilcoxon"] == 1.0 and copy["p_t"] == 1.0
    assert not copy["significant"]
    with pytest.raises(KeyError):
        paired_differences(fm, reference="missing")


def test_to_markdown_contains_every_regime():
    fm = _fold_metrics()
    md = to_markdown(summarise(fm, n_boot=200), paired_differences(fm, "sup", n_train=400, n_test=100, n_boot=200))
    for regime in ("sup", "better", "noise"):
        assert f"| {regime} |" in md
    assert "Nadeau" in md and "Holm" in md
    header = next(line for line in md.splitlines() if line.startswith("| regime"))
    assert header.index("sensitivity") < header.index("roc_auc")  # primary first


def test_label_efficiency_table_and_plot(tmp_path):
    parts = []
    for n_labels, shift in ((10, 0.0), (50, 0.05), (200, 0.08)):
        parts.append(
            _fold_metrics(seed=n_labels).assign(n_labels=n_labels, roc_auc=lambda d, s=shift: d["roc_auc"] + s)
        )
    table = label_efficiency_table(pd.concat(parts, ignore_index=True), metrics=["roc_auc"], n_boot=200)
    assert len(table) == 3 * 3
    assert list(table["regime"].iloc[:3]) == ["sup"] * 3 and list(table["n_labels"].iloc[:3]) == [10, 50, 200]
    assert ((table["ci_low"] <= table["mean"]) & (table["mean"] <= table["ci_high"])).all()
    out = plot_label_efficiency(table, tmp_path / "label_eff.png", metric="roc_auc")
    assert out.read_bytes()[:8] == PNG_MAGIC


# --------------------------------------------------------------------------- figures


def test_figures_write_png(tmp_path):
    y, p = _scores()
    y2, p2 = _scores(seed=1)
    fm = _fold_metrics()
    diffs = paired_differences(fm, "sup", n_train=400, n_test=100, n_boot=200)
    paths = [
        plot_confusion_matrix(y, (p >= 0.5).astype(int), tmp_path / "cm.png", title="val"),
        plot_roc_curve({"fold 0": (y, p)}, tmp_path / "roc_one.png"),
        plot_roc_curve(
            {f"fold {i}": _scores(seed=i) for i in range(8)} | {"empty": (np.zeros(4, int), np.full(4, 0.3))},
            tmp_path / "roc_many.png",
        ),  # fmt: skip
        plot_reliability_diagram({"a": (y, p), "b": (y2, p2)}, tmp_path / "sub" / "rel.png", n_bins=8),
        plot_forest(diffs, tmp_path / "forest.png"),
        plot_forest(diffs, tmp_path / "forest_boot.png", metrics=["roc_auc"], ci="bootstrap"),
    ]
    for path in paths:
        assert path.exists() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_conformal_threshold_is_the_kth_lowest_tumour_score():
    y = np.array([1] * 19 + [0] * 5)
    p = np.r_[np.linspace(0.3, 0.9, 19), np.full(5, 0.1)]
    # k = floor(20 * 0.05) = 1: the lowest tumour score, every validation tumour detected
    assert choose_threshold(y, p, 0.95, rule="conformal") == pytest.approx(0.3)
    y2 = np.r_[np.ones(59, int), np.zeros(5, int)]
    p2 = np.r_[np.arange(59) / 100, np.zeros(5)]
    assert choose_threshold(y2, p2, 0.95, rule="conformal") == pytest.approx(0.02)  # k = floor(60 * 0.05) = 3
    with pytest.raises(ValueError, match="rule"):
        choose_threshold(y, p, 0.95, rule="median")


def test_conformal_threshold_meets_the_target_on_new_tumours():
    """Averaged over many draws, the realised sensitivity on fresh tumours reaches the target;
    the highest-threshold rule falls short (it has no margin)."""
    rng = np.random.default_rng(0)
    realised = {"conformal": [], "highest": []}
    for _ in range(400):
        y = np.r_[np.ones(40, int), np.zeros(40, int)]
        sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        scores = sigmoid(np.r_[rng.normal(2, 1, 40), rng.normal(0, 1, 40)])
        fresh = sigmoid(rng.normal(2, 1, 2000))
        for rule in realised:
            realised[rule].append((fresh >= choose_threshold(y, scores, 0.95, rule=rule)).mean())
    assert np.mean(realised["conformal"]) >= 0.95
    assert np.mean(realised["highest"]) < np.mean(realised["conformal"])


def test_tolerance_threshold_follows_wilks():
    """k-th lowest tumour score, k the largest with P(Beta(n+1-k, k) >= target) >= confidence."""
    p100 = np.r_[np.arange(1, 101) / 200, np.zeros(10)]
    y100 = np.r_[np.ones(100, int), np.zeros(10, int)]
    # n = 100, target 0.95: P = 0.994 (k=1), 0.963 (k=2), 0.882 (k=3) -> k = 2 at confidence 0.9
    assert choose_threshold(y100, p100, 0.95, rule="tolerance", confidence=0.9) == pytest.approx(2 / 200)
    assert choose_threshold(y100, p100, 0.95, rule="tolerance", confidence=0.8) == pytest.approx(3 / 200)
    y8, p8 = np.r_[np.ones(8, int), np.zeros(3, int)], np.r_[np.linspace(0.4, 0.9, 8), np.zeros(3)]
    with pytest.warns(RuntimeWarning, match="8 tumours"):
        assert choose_threshold(y8, p8, 0.95, rule="tolerance") == pytest.approx(0.4)


def test_tolerance_threshold_holds_with_the_stated_confidence():
    """Over many calibration draws, the share reaching 0.95 on fresh tumours is >= the confidence,
    where the conformal rule only meets the target on average."""
    rng = np.random.default_rng(1)
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    reached = {"tolerance": [], "conformal": []}
    for _ in range(300):
        y = np.r_[np.ones(60, int), np.zeros(20, int)]
        scores = sigmoid(np.r_[rng.normal(2, 1, 60), rng.normal(0, 1, 20)])
        fresh = sigmoid(rng.normal(2, 1, 4000))
        for rule in reached:
            reached[rule].append((fresh >= choose_threshold(y, scores, 0.95, rule=rule, confidence=0.9)).mean() >= 0.95)
    assert np.mean(reached["tolerance"]) >= 0.85  # 0.9 up to the Monte-Carlo noise of 300 draws
    assert np.mean(reached["conformal"]) < 0.75
