"""Every number of the deck, collected once (language-free) with the source that each comes from.

Why: both decks, the slide notes and the tests read the same collected values, so a number
shown in French, in English and in a test is the same float read from the same run or file.
A section the deck cannot do without raises :class:`MissingSource`; an optional one is ``None``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainscan_exp.report.costs import fit_learning_curve
from brainscan_exp.report.label_efficiency import summarise_budgets
from brainscan_exp.report.sources import MissingSource, Results, Run, Runs

REVIEW_BENCHMARK = "review_benchmark.json"  # the review round trip's benchmark (scripts/results)
BENCH_SCALE = "bench_scale.json"  # the scale bench (scripts/bench_scale.py)
# the scale slide's rows, in the pipeline's order: row -> the bench stages it adds up (times summed,
# peak memory the largest: each stage runs in its own process). hashing and confirmation need the
# pixels, so the bench extrapolates them from the brief's real images and measures no size of them.
SCALE_ROWS: dict[str, tuple[str, ...]] = {
    "hashing": (),
    "candidates": ("hash_candidates", "ann", "merge_cap"),
    "confirmation": (),
    "predict": ("predict",),
    "review": ("review",),
}
SCALE_ALIASES = {"predict": "score"}  # the first bench (sizes 100 k and 250 k) called predict's work "score"


@dataclass
class Section:
    values: dict
    cites: list[str]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class Facts:
    dataset: str
    sections: dict[str, Section | None]
    missing: dict[str, str]  # optional section -> why it is missing

    def __getitem__(self, name: str) -> Section:
        return self.sections[name]

    def runs(self) -> dict[str, str]:
        """Run ids cited, by section."""
        return {k: c for k, s in self.sections.items() if s for c in s.cites if c.startswith("MLflow")}


def _data(cv: Run) -> Section:
    m = cv.metrics
    keys = ("n_files", "n_distinct", "n_labelled_distinct", "n_pool_distinct", "n_pool_distinct_new")
    values = {k: m.get(f"data/{k}", np.nan) for k in keys}
    values |= {
        "n_copies": m.get("data/n_pool_copies_of_labelled", np.nan),
        "n_copies_near": m.get("data/n_pool_copies_of_labelled_near", np.nan),
        "n_near_groups": m.get("data/n_near_copy_groups", np.nan),
        "n_near_files": m.get("data/n_files_in_near_groups", np.nan),
    }
    return Section(values, [cv.cite], tables={"near_pairs": _near_pairs(cv)})


def _near_pairs(cv: Run, n: int = 2) -> pd.DataFrame:
    """Up to ``n`` confirmed near-copy pairs (the most certain first) as image paths, for the data
    slide's few large images; empty when the run's files or its dataset folder are not at hand."""
    empty = pd.DataFrame(columns=["a", "b"])
    if not (cv.has_artifact("data/duplicates.csv") and cv.has_artifact("config/config.yaml")):
        return empty
    from omegaconf import OmegaConf

    root = Path(str(OmegaConf.load(cv.artifact("config/config.yaml")).dataset.root))
    table = cv.csv("data/duplicates.csv")
    if "kind" not in table or "score" not in table:
        return empty
    near = table[table.kind == "near"].sort_values("score", ascending=False)
    rows = []
    for _, group in near.groupby("group", sort=False):
        files = group.drop_duplicates("pixel_hash").file.tolist()[:2]
        if len(files) == 2 and all((root / f).is_file() for f in files):
            rows.append({"a": root / files[0], "b": root / files[1], "score": float(group.score.max())})
    if not rows:
        return empty
    found = pd.DataFrame(rows).sort_values("score", ascending=False).reset_index(drop=True)
    spread = np.unique(np.linspace(0, len(found) - 1, min(n, len(found))).round().astype(int))
    return found.iloc[spread].reset_index(drop=True)  # the most certain pair to the least: what copies look like


def _semi(cv: Run) -> Section:
    diffs = cv.csv("aggregate/differences.csv")
    m = cv.metrics
    auc = diffs[(diffs.metric == "roc_auc")]
    semi = auc[auc.regime == "semi"].iloc[0]
    values = {
        "sup_auc": m["sup/roc_auc_mean"],
        "sup_auc_low": m["sup/roc_auc_ci_low"],
        "sup_auc_high": m["sup/roc_auc_ci_high"],
        "semi_auc": m["semi/roc_auc_mean"],
        "delta": float(semi.mean_diff),
        "delta_low": float(semi.t_low),
        "delta_high": float(semi.t_high),
        "delta_significant": bool(semi.significant),
        "n_sig_better": int(((auc.mean_diff > 0) & auc.significant.astype(bool)).sum()),
        "n_regimes": int(auc.regime.nunique()),
        "n_folds": int(cv.params.get("split.n_splits", 5)) * int(cv.params.get("split.n_repeats", 5)),
        "regime_auc": {k.split("/")[0]: v for k, v in m.items() if k.endswith("/roc_auc_mean")},
    }
    return Section(values, [cv.cite], tables={"differences": diffs})


def _label_efficiency(runs: Runs, results: Results, datasets: list[str], regime: str) -> Section:
    panels, cites, fits = {}, [], {}
    run = runs.find("label_efficiency")
    if run is not None:
        panels[runs.dataset] = summarise_budgets(run.csv("aggregate/fold_metrics.csv"))
        cites.append(run.cite)
    for name in dict.fromkeys([runs.dataset, *datasets]):
        found = results.find(f"label_efficiency_{name}.json")
        if name not in panels and found is not None:
            panels[name] = pd.DataFrame(found["table"])
            cites.append(f"{results.cite(f'label_efficiency_{name}.json')} (MLflow run {found.get('run_id')})")
    if not panels:
        raise MissingSource(f"the deck needs a label-efficiency curve: run `{runs.command('label_efficiency')}`")
    values = {}
    for name, table in panels.items():
        sub = table[(table.metric == "roc_auc") & (table.regime == regime)].sort_values("n_labels")
        if len(sub) >= 2:
            fits[name] = (regime, fit_learning_curve(sub.n_labels, sub["mean"]))
            values[name] = {
                "n_small": float(sub.n_labels.iloc[0]),
                "auc_small": float(sub["mean"].iloc[0]),
                "n_all": float(sub.n_labels.iloc[-1]),
                "auc_all": float(sub["mean"].iloc[-1]),
                "budget_folds": int(sub.n_folds.iloc[0]),
            }
    return Section({"regime": regime, "per_dataset": values, "fits": fits}, cites, tables=panels)


def _predict(run: Run) -> Section:
    m = run.metrics
    estimate = json.loads(run.artifact("pool_estimate.json").read_text())
    table = run.csv("predictions.csv")
    values = {
        "threshold": m["operating_threshold"],
        "rule": estimate["rule"],
        "regime": run.tags.get("regime", "?"),
        "target": float(run.params.get("target_sensitivity", "nan")),
        "sens": m["pool_estimate/sensitivity"],
        "sens_low": m.get("pool_estimate/sensitivity_low", np.nan),
        "sens_high": m.get("pool_estimate/sensitivity_high", np.nan),
        "spec": m["pool_estimate/specificity"],
        "n_review": m["predictions/n_review"],
        "expected_missed": m["predictions/expected_missed"],
        "truth": {k.removeprefix("truth/"): v for k, v in m.items() if k.startswith("truth/")},
        "backbone": run.tags.get("backbone", "?"),
    }
    model = table[table.label_source == "model"] if "label_source" in table else table
    return Section(values, [run.cite], tables={"predictions": model})


def _generalization(results: Results) -> Section:
    g = results.get("generalization.json")
    chosen = g["chosen"]
    table = pd.DataFrame(g["table"])
    rows = table[
        (table["embedding"] == chosen["embedding"])
        & (table["head"] == chosen["head"])
        & (table["rule"] == chosen["rule"])
    ]
    cite = f"{results.cite('generalization.json')} (MLflow run {g.get('mlflow_run_id')}, command `{g['command']}`)"
    return Section(dict(chosen), [cite], tables={"scenarios": rows.reset_index(drop=True)})


def _cluster(run: Run) -> Section:
    m = run.metrics
    assoc = run.csv("cluster/confound_association.csv")
    flagged = assoc[(assoc.flagged.astype(bool)) & (assoc.iloc[:, 0] != "label")].iloc[:, 0].tolist()
    values = {
        "clusterer": run.tags.get("clusterer", "?"),
        "n_clusters": m.get("cluster/n_clusters", np.nan),
        "v_label": m.get("cluster/cramers_v_label", np.nan),
        "n_flagged": m.get("cluster/n_confounds_flagged", np.nan),
        "flagged": flagged,
    }
    association = assoc.rename(columns={assoc.columns[0]: "factor"})
    return Section(values, [run.cite], tables={"association": association})


def _review_benchmark(results: Results) -> Section | None:
    """The review round trip's measured results (``review_benchmark.json``): today's one-shot
    review ("before") against the loop ("after"), for the chosen strategy on every scenario."""
    found = results.find(REVIEW_BENCHMARK)
    if found is None:
        return None
    chosen = found["chosen"]
    table = pd.DataFrame(found["table"])
    keys = ("strategy", "final_strategy", "batch_size", "audit_share", "delivery_sensitivity")
    rows = table
    for key in keys:
        if key in table and key in chosen:
            rows = rows[rows[key] == chosen[key]]
    cite = f"{results.cite(REVIEW_BENCHMARK)} (command `{found['command']}`)"
    return Section(dict(chosen), [cite], tables={"scenarios": rows.reset_index(drop=True)})


def _scale_bench(results: Results) -> Section | None:
    """The scale bench's table (``bench_scale.json``): per row of :data:`SCALE_ROWS`, time and peak
    memory at the largest size measured and at 4 M (extrapolated), with the planted-copy recall and
    the confirmations per image at the largest size. Every figure is checked to carry the label the
    bench gave it (``measured``, ``extrapolated...``): the slide shows them under that label."""
    found = results.find(BENCH_SCALE)
    if found is None or not found.get("sizes"):
        return None
    sizes = sorted(int(n) for n in found["sizes"])
    n = sizes[-1]
    at_n, at_4m = found["sizes"][str(n)], found.get("extrapolated_4M", {})

    def labelled(entry: dict, kind: str) -> dict:
        if not str(entry.get("label", "")).startswith(kind):
            raise ValueError(f"{BENCH_SCALE}: a figure labelled {entry.get('label')!r} where {kind!r} is expected")
        return entry

    rows = []
    for row, wanted in SCALE_ROWS.items():
        stages = [s if s in at_n else SCALE_ALIASES.get(s, s) for s in wanted]
        stages = [s for s in stages if s in at_n]
        if wanted and not stages:
            continue  # a bench without this stage: no row
        if not wanted and row not in at_4m:
            continue
        measured = [labelled(at_n[s], "measured") for s in stages]
        extra = [labelled(at_4m[s], "extrapolated") for s in (stages or [row]) if s in at_4m]
        rows.append(
            {
                "row": row,
                "stages": "+".join(stages) or row,
                "seconds": sum(m["seconds"] for m in measured) if measured else np.nan,
                "peak_mb": max(m["peak_rss_mb"] for m in measured) if measured else np.nan,
                "seconds_4m": sum(e["seconds"] for e in extra) if extra else np.nan,
                "peak_mb_4m": max((e["peak_rss_mb"] for e in extra if "peak_rss_mb" in e), default=np.nan),
            }
        )
    merge = labelled(at_n["merge_cap"], "measured") if "merge_cap" in at_n else {}
    brief = found.get("brief", {})
    values = {
        "n": n,
        "n_before": sizes[-2] if len(sizes) > 1 else None,
        "target": 4_000_000,
        "recall": merge.get("planted_pair_recall", np.nan),
        "confirmations_per_image": merge.get("confirmations_per_image", np.nan),
        "copy_rate": found.get("corpus", {}).get("copy_rate", np.nan),
        "n_brief": brief.get("n_images", np.nan),
        "hash_s_per_image": labelled(brief, "measured").get("hashing_seconds_per_image", np.nan) if brief else np.nan,
        "confirm_s_per_pair": brief.get("confirmation_seconds_per_pair", np.nan),
        "machine": found.get("machine", ""),
        "extrapolation": {k: v["label"] for k, v in at_4m.items()},
    }
    cite = f"{results.cite(BENCH_SCALE)} (command `{found.get('command', Results.PRODUCERS[BENCH_SCALE])}`)"
    return Section(values, [cite], tables={"stages": pd.DataFrame(rows)})


def _probe(results: Results, name: str) -> Section | None:
    found = results.glob(name)
    if not found:
        return None
    rows, cites = [], []
    for name, probe in found.items():
        for variant, r in probe["results"].items():
            rows.append(
                {
                    "label": variant.replace("tf_efficientnet_", ""),
                    "auc": r["auc_mean"],
                    "low": r["auc_ci95"][0],
                    "high": min(r["auc_ci95"][1], 1.0),
                }
            )
        cites.append(results.cite(name))
    table = pd.DataFrame(rows).drop_duplicates("label")
    best = table.loc[table.auc.idxmax()]
    return Section({"best": best.label, "best_auc": float(best.auc)}, cites, tables={"probe": table})


def collect(runs: Runs, results: Results, label_efficiency_datasets: list[str], curve_regime: str, probe: str) -> Facts:
    missing = {}
    cv = runs.get("cv")
    sections: dict[str, Section | None] = {
        "data": _data(cv),
        "semi": _semi(cv),
        "label_efficiency": _label_efficiency(runs, results, label_efficiency_datasets, curve_regime),
        "predict": _predict(runs.get("predict")),
        "generalization": _generalization(results),
        "cost": Section(results.get("cost_model.json"), [results.cite("cost_model.json")]),
    }
    cluster = runs.find("cluster")
    sections["cluster"] = _cluster(cluster) if cluster else None
    if cluster is None:
        missing["cluster"] = runs.command("cluster")
    sections["review"] = _review_benchmark(results)
    if sections["review"] is None:
        missing["review"] = Results.PRODUCERS[REVIEW_BENCHMARK]
    sections["scale_bench"] = _scale_bench(results)
    if sections["scale_bench"] is None:
        missing["scale_bench"] = Results.PRODUCERS[BENCH_SCALE]
    sections["probe"] = _probe(results, probe)
    if sections["probe"] is None:
        missing["probe"] = "python scripts/probe_cv_auc.py"
    return Facts(runs.dataset, sections, missing)
