"""Aggregation and paired comparison of regimes evaluated by repeated cross-validation.

Input everywhere is a long ``fold_metrics`` DataFrame: one row per (regime, fold),
columns ``regime``, ``fold`` (an id of the (repeat, fold) pair, identical across
regimes so that comparisons are paired) and one numeric column per metric
(typically the output of :func:`~brainscan_exp.evaluation.metrics.binary_metrics`).

Statistical caveat: the J = repeats x folds results are NOT independent (training
sets overlap, and test sets overlap across repeats), so any interval that treats
them as i.i.d. - the bootstrap of the fold mean, the plain paired t-test, the
Wilcoxon test - is too narrow / too liberal. The Nadeau & Bengio (2003) corrected
resampled t-test inflates the variance by ``1/J + n_test/n_train`` instead of
``1/J``; it is the one to trust for significance claims, and is used whenever the
train / test sizes are known.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "KEY_METRICS",
    "LOWER_IS_BETTER",
    "TTestResult",
    "corrected_t_ci",
    "holm",
    "label_efficiency_table",
    "paired_differences",
    "summarise",
    "to_markdown",
]

#: Metrics shown in reports, primary (sensitivity) first.
KEY_METRICS: tuple[str, ...] = ("sensitivity", "specificity", "roc_auc", "pr_auc", "f2", "brier", "ece")
#: Metrics for which a negative difference is an improvement.
LOWER_IS_BETTER: frozenset[str] = frozenset({"brier", "ece", "fp", "fn"})
#: Identifier / raw-count columns that are not averaged by default.
_NON_METRIC_COLUMNS = frozenset({"regime", "fold", "repeat", "seed", "n_labels", "tp", "fp", "tn", "fn", "n"})
# scipy >= 1.15 takes ``rng``; ``random_state`` is its deprecated predecessor.
_BOOTSTRAP_RNG_KW = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


class TTestResult(NamedTuple):
    """Mean of per-fold values with a (possibly corrected) t interval and test of mean == 0."""

    mean: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    df: int


# --------------------------------------------------------------------------- helpers


def _metric_columns(df: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    if metrics is None:
        return [c for c in df.columns if c not in _NON_METRIC_COLUMNS and pd.api.types.is_numeric_dtype(df[c])]
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise KeyError(f"metrics not in fold_metrics: {missing}")
    return list(metrics)


def _check_long(df: pd.DataFrame, keys: Sequence[str]) -> None:
    missing = [k for k in ("regime", "fold", *keys) if k not in df.columns]
    if missing:
        raise KeyError(f"fold_metrics lacks columns {missing}")
    dup = df.duplicated(["regime", "fold", *keys])
    if dup.any():
        raise ValueError(
            "fold_metrics has several rows for the same (regime, fold"
            + "".join(f", {k}" for k in keys)
            + f"), e.g. {df.loc[dup, ['regime', 'fold', *keys]].iloc[0].tolist()}"
        )


def _bootstrap_mean_ci(values: np.ndarray, n_boot: int, ci: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap of the mean; NaN below 2 values (no spread to resample)."""
    if values.size < 2:
        return math.nan, math.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    res = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=ci,
        method="percentile",
        vectorized=True,
        **{_BOOTSTRAP_RNG_KW: np.random.default_rng(seed)},
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control, no independence
    assumption). NaNs are kept and do not count in the family size."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


# --------------------------------------------------------------------------- tests / intervals


def corrected_t_ci(
    diffs,
    n_train: float | None = None,
    n_test: float | None = None,
    ci: float = 0.95,
) -> TTestResult:
    """Nadeau-Bengio corrected resampled t interval and test for the mean of per-fold values.

    The variance of the mean is ``s^2 * (1/J + n_test/n_train)`` (J = number of
    folds, s^2 the sample variance) instead of ``s^2 / J``, to account for the
    correlation between folds of (repeated) cross-validation; df = J - 1. For
    K-fold CV ``n_test/n_train = 1/(K-1)``, whatever the dataset size. Without
    ``n_train``/``n_test`` this is the ordinary one-sample t-test, identical to
    :func:`scipy.stats.ttest_1samp`. NaNs are dropped.

    Zero variance: the interval collapses to the mean, and p is 1 if the mean is 0
    (no difference at all) and 0 otherwise (a perfectly consistent difference).
    """
    if (n_train is None) != (n_test is None):
        raise ValueError("give both n_train and n_test, or neither")
    if n_train is not None and (n_train <= 0 or n_test <= 0):
        raise ValueError("n_train and n_test must be positive")
    ratio = 0.0 if n_train is None else float(n_test) / float(n_train)
    d = np.asarray(diffs, dtype=float).ravel()
    d = d[~np.isnan(d)]
    j = d.size
    if j < 2:
        mean = float(d.mean()) if j else math.nan
        return TTestResult(mean, math.nan, math.nan, math.nan, math.nan, max(j - 1, 0))

    mean = float(d.mean())
    se = math.sqrt(d.var(ddof=1) * (1.0 / j + ratio))
    df = j - 1
    if se == 0.0:
        return TTestResult(mean, mean, mean, math.copysign(math.inf, mean) if mean else 0.0, float(mean == 0.0), df)
    t = mean / se
    p = float(2.0 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(0.5 + ci / 2.0, df)) * se
    return TTestResult(mean, mean - half, mean + half, float(t), p, df)


def _wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p; 1 when every difference is zero (scipy raises)."""
    if d.size < 2:
        return math.nan
    if np.all(d == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ties / zeros -> normal approximation notices
        return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


# --------------------------------------------------------------------------- aggregation


def _summarise_by(
    df: pd.DataFrame,
    keys: list[str],
    metrics: Sequence[str] | None,
    n_boot: int,
    ci: float,
    seed: int,
    n_train: float | None,
    n_test: float | None,
) -> pd.DataFrame:
    _check_long(df, keys[1:])
    cols = _metric_columns(df, metrics)
    rows = []
    for group, sub in df.groupby(keys, sort=False):
        group = group if isinstance(group, tuple) else (group,)
        for metric in cols:
            v = sub[metric].to_numpy(dtype=float)
            v = v[~np.isnan(v)]
            low, high = _bootstrap_mean_ci(v, n_boot, ci, seed)
            row = dict(zip(keys, group))
            row.update(
                metric=metric,
                mean=float(v.mean()) if v.size else math.nan,
                std=float(v.std(ddof=1)) if v.size > 1 else math.nan,
                ci_low=low,
                ci_high=high,
                n_folds=int(v.size),
            )
            if n_train is not None:
                t = corrected_t_ci(v, n_train, n_test, ci)
                row.update(t_low=t.ci_low, t_high=t.ci_high)
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["ci"] = ci
    return out


def summarise(
    fold_metrics: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    *,
    n_train: float | None = None,
    n_test: float | None = None,
) -> pd.DataFrame:
    """Mean, std and confidence interval of each metric per regime, over folds.

    Returns a long DataFrame with columns ``regime, metric, mean, std, ci_low,
    ci_high, n_folds`` (plus ``t_low, t_high``, the Nadeau-Bengio corrected t
    interval, when ``n_train``/``n_test`` are given). ``ci_low/ci_high`` is the
    percentile bootstrap of the mean over folds. Folds of repeated CV are not
    independent (Nadeau & Bengio, 2003), so this bootstrap interval is optimistic
    (too narrow): read it as a description of fold-to-fold spread, and use
    :func:`paired_differences` / :func:`corrected_t_ci` for inference.

    ``metrics=None`` uses every numeric column except identifiers and raw counts.
    NaN values (e.g. AUC of a single-class fold) are dropped; ``n_folds`` counts
    the folds actually used.
    """
    return _summarise_by(fold_metrics, ["regime"], metrics, n_boot, ci, seed, n_train, n_test)


def label_efficiency_table(
    fold_metrics_with_n_labels: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`summarise` per (regime, n_labels): how each regime scales with the label budget.

    Columns ``regime, n_labels, metric, mean, std, ci_low, ci_high, n_folds``,
    sorted by regime (in order of appearance) then ``n_labels``.
    """
    df = fold_metrics_with_n_labels
    if "n_labels" not in df.columns:
        raise KeyError("fold_metrics lacks the 'n_labels' column")
    table = _summarise_by(df, ["regime", "n_labels"], metrics, n_boot, ci, seed, None, None)
    regime_order = {r: i for i, r in enumerate(pd.unique(df["regime"]))}
    return (
        table.assign(_r=table["regime"].map(regime_order))
        .sort_values(["_r", "n_labels"], kind="stable")
        .drop(columns="_r")
        .reset_index(drop=True)
    )


def paired_differences(
    fold_metrics: pd.DataFrame,
    reference: str = "sup",
    metrics: Sequence[str] | None = None,
    n_train: float | None = None,
    n_test: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    *,
    ci: float = 0.95,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Paired comparison of every regime against ``reference``, fold by fold.

    For each regime != reference and each metric, on the folds both share
    (difference = regime - reference, so positive is better except for
    :data:`LOWER_IS_BETTER` metrics):

    * ``mean_diff``, ``std_diff``, ``n_folds``;
    * ``boot_low/boot_high``: percentile bootstrap CI of the mean difference
      (treats folds as independent: optimistic);
    * ``t_low/t_high/p_t``: Nadeau-Bengio corrected resampled t-test when
      ``n_train``/``n_test`` are given (``test == "corrected_t"``), otherwise a
      plain paired t-test (``test == "paired_t"``, optimistic);
    * ``p_wilcoxon``: Wilcoxon signed-rank, a distribution-free check (it also
      assumes independent folds); p = 1 when all differences are zero;
    * ``p_holm`` / ``p_wilcoxon_holm``: Holm adjustment across regimes, per metric
      (one family = the comparisons of all regimes with the reference on one
      metric);
    * ``significant``: ``p_holm < alpha``.
    """
    _check_long(fold_metrics, [])
    cols = _metric_columns(fold_metrics, metrics)
    regimes = list(pd.unique(fold_metrics["regime"]))
    if reference not in regimes:
        raise KeyError(f"reference regime {reference!r} not in {regimes}")
    ref = fold_metrics[fold_metrics["regime"] == reference].set_index("fold")
    test_name = "corrected_t" if n_train is not None else "paired_t"

    rows = []
    for regime in regimes:
        if regime == reference:
            continue
        cur = fold_metrics[fold_metrics["regime"] == regime].set_index("fold")
        shared = cur.index.intersection(ref.index)
        if len(shared) < len(cur.index.union(ref.index)):
            warnings.warn(
                f"paired_differences: {regime!r} and {reference!r} share {len(shared)} of "
                f"{len(cur.index.union(ref.index))} folds; unmatched folds are ignored",
                RuntimeWarning,
                stacklevel=2,
            )
        for metric in cols:
            d = cur.loc[shared, metric].to_numpy(dtype=float) - ref.loc[shared, metric].to_numpy(dtype=float)
            d = d[~np.isnan(d)]
            t = corrected_t_ci(d, n_train, n_test, ci)
            boot_low, boot_high = _bootstrap_mean_ci(d, n_boot, ci, seed)
            rows.append(
                dict(
                    regime=regime,
                    reference=reference,
                    metric=metric,
                    n_folds=int(d.size),
                    mean_diff=float(d.mean()) if d.size else math.nan,
                    std_diff=float(d.std(ddof=1)) if d.size > 1 else math.nan,
                    boot_low=boot_low,
                    boot_high=boot_high,
                    t_low=t.ci_low,
                    t_high=t.ci_high,
                    p_t=t.p_value,
                    p_wilcoxon=_wilcoxon_p(d),
                    test=test_name,
                )
            )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"] = out.groupby("metric", sort=False)["p_t"].transform(holm)
    out["p_wilcoxon_holm"] = out.groupby("metric", sort=False)["p_wilcoxon"].transform(holm)
    out["significant"] = (out["p_holm"] < alpha).astype(bool)
    out.attrs.update(ci=ci, alpha=alpha)
    return out


# --------------------------------------------------------------------------- report


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain pipe table, so the report does not depend on ``tabulate``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(
    summary: pd.DataFrame,
    diffs: pd.DataFrame | None = None,
    primary: str = "sensitivity",
    metrics: Sequence[str] = KEY_METRICS,
) -> str:
    """Compact Markdown report: mean [CI] per regime, then differences vs the reference.

    ``primary`` is put first in both tables. In the difference table the CI is the
    t interval of ``paired_differences`` (corrected when it says so), the p-value
    is Holm-adjusted and significant rows are marked with ``*``.
    """
    order = [primary, *[m for m in metrics if m != primary]]
    present = [m for m in order if m in set(summary["metric"])]
    arrow = {m: " ↓" if m in LOWER_IS_BETTER else "" for m in present}

    cells = summary.set_index(["regime", "metric"])
    regimes = list(pd.unique(summary["regime"]))
    rows = []
    for regime in regimes:
        row = [str(regime)]
        for m in present:
            if (regime, m) in cells.index:
                r = cells.loc[(regime, m)]
                row.append(f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]")
            else:
                row.append("–")
        rows.append(row)
    n_folds = int(summary["n_folds"].max()) if len(summary) else 0
    parts = [
        "## Results per regime",
        "",
        f"Mean over folds [{_ci_label(summary)}percentile-bootstrap CI of the mean; folds of repeated CV are "
        f"correlated, so these intervals are optimistic]. Up to {n_folds} folds; ↓ = lower is better.",
        "",
        _md_table(["regime", *[f"{m}{arrow[m]}" for m in present]], rows),
    ]

    if diffs is not None and len(diffs):
        reference = diffs["reference"].iloc[0]
        test = diffs["test"].iloc[0]
        test_label = (
            "Nadeau–Bengio corrected resampled t" if test == "corrected_t" else "paired t (uncorrected, optimistic)"
        )
        d_present = [m for m in order if m in set(diffs["metric"])]
        drows = []
        for m in d_present:
            for _, r in diffs[diffs["metric"] == m].iterrows():
                drows.append(
                    [
                        f"{m}{' ↓' if m in LOWER_IS_BETTER else ''}",
                        str(r["regime"]),
                        f"{round(r['mean_diff'], 3) + 0.0:+.3f}"
                        if not math.isnan(r["mean_diff"])
                        else "–",  # no "-0.000"
                        f"[{_fmt(r['t_low'])}, {_fmt(r['t_high'])}]",
                        _fmt_p(r["p_holm"]),
                        _fmt_p(r["p_wilcoxon_holm"]),
                        "*" if r["significant"] else "",
                    ]
                )
        parts += [
            "",
            f"## Differences vs `{reference}` (regime − {reference}, paired on folds)",
            "",
            f"{_ci_label(diffs)}CI and p from the {test_label} test; p-values Holm-adjusted across regimes per metric; "
            "* = significant after Holm.",
            "",
            _md_table(["metric", "regime", "Δ mean", "CI", "p (Holm)", "Wilcoxon p (Holm)", "sig."], drows),
        ]
    return "\n".join(parts) + "\n"


def _ci_label(table: pd.DataFrame) -> str:
    ci = table.attrs.get("ci")
    return f"{ci:.0%} " if ci is not None else ""
