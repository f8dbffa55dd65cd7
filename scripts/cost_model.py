"""What labelling N images costs (compute options, expert reads), and what the review budget buys.

    python scripts/cost_model.py                      # 4 M images, the brief's data (dataset=oc)
    python scripts/cost_model.py cost.n_images=1000000 cpu_node.eur_per_hour=0.5 dataset=brain_mri_oc

Arguments are Hydra overrides of the project config (``cost.*`` from ``conf/cost/default.yaml``).
Reads the measured throughput (``cost.bench_json``), the label-efficiency summaries
(``scripts/results/label_efficiency_*.json``) and, when there is one, the dataset's latest
``experiment=predict`` run in MLflow (its scores give the review queue's effect). Writes
``scripts/results/cost_model.json`` and ``.png``.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from brainscan_exp.core.calibrate import reads_for_budget, triage
from brainscan_exp.notebook import compose_config
from brainscan_exp.report.costs import as_dict, audit_tumours, fit_learning_curve, options, read_throughput
from brainscan_exp.report.sources import Runs


def curve_for(pattern: str, dataset: str, regime: str) -> tuple[dict | None, dict]:
    """The learning curve of ``regime`` fitted on ``dataset``'s label-efficiency summary."""
    files = {Path(p).stem.removeprefix("label_efficiency_"): p for p in sorted(glob.glob(pattern))}
    if dataset not in files:
        return None, {"missing": f"no {pattern} for {dataset}: run experiment=label_efficiency dataset={dataset}"}
    summary = json.loads(Path(files[dataset]).read_text())
    rows = [r for r in summary["table"] if r["regime"] == regime and r["metric"] == "roc_auc"]
    curve = fit_learning_curve([r["n_labels"] for r in rows], [r["mean"] for r in rows])
    return summary, {
        "regime": regime,
        "c": curve.c,
        "b": curve.b,
        "points": [[r["n_labels"], r["mean"]] for r in rows],
        "source": f"scripts/results/{Path(files[dataset]).name}",
        "run_id": summary.get("run_id"),
        "_curve": curve,
    }


def review_budget(cfg, curve: dict) -> dict:
    """The dataset's budget in reads, and what they do as a review queue and as new labels."""
    reads = reads_for_budget(cfg.cost.expert.budget_eur, cfg.cost.expert.cost_per_read_eur)
    out = {
        "dataset": cfg.dataset.name,
        "budget_eur": cfg.cost.expert.budget_eur,
        "cost_per_read_eur": cfg.cost.expert.cost_per_read_eur,
        "reads": reads,
    }
    run = Runs(cfg.logger.tracking_uri, cfg.logger.experiment_name, cfg.dataset.name).find("predict")
    if run is None:
        out["predict_run"] = f"missing: run `python -m brainscan_exp experiment=predict dataset={cfg.dataset.name}`"
    else:
        table = run.csv("predictions.csv")
        model = table[table.label_source == "model"] if "label_source" in table else table
        p, q = model.p_cancer.to_numpy(float), model.p_cancer_pool.to_numpy(float)
        threshold = run.metrics["operating_threshold"]
        out |= {
            "predict_run_id": run.run_id,
            "n_pool": len(model),
            "share_of_pool": min(reads, len(model)) / len(model),
            "expected_missed_without_review": triage(p, q, threshold, 0).expected_missed,
            "expected_missed_after_review": triage(p, q, threshold, reads).expected_missed,
            "n_labelled": int(run.metrics.get("data/n_labelled_distinct", np.nan)),
        }
    if "_curve" in curve:
        n_now = out.get("n_labelled") or max(n for n, _ in curve["points"])
        out |= {
            "labels_now": n_now,
            "labels_after": n_now + reads,
            "auc_now_fitted": curve["_curve"].auc(n_now),
            "auc_after_fitted": curve["_curve"].auc(n_now + reads),
            "caveat": "the curve is for random labels; review reads target suspicious images instead",
        }
    return out


def plot(result: dict, path: Path) -> None:
    names = [o["name"] for o in result["options"]]
    fig = Figure(figsize=(9, 3.6))
    ax_cost, ax_hours = fig.subplots(1, 2)
    ax_cost.bar(names, [o["cost_eur"] for o in result["options"]], color="#4c72b0")
    ax_cost.axhline(result["budget_eur"], color="crimson", ls="--", label=f"budget EUR {result['budget_eur']:,}")
    ax_cost.set(ylabel="compute cost (EUR)", title=f"{result['n_images']:,} images: compute cost")
    ax_cost.legend(fontsize="small")
    ax_hours.bar(names, [o["hours"] for o in result["options"]], color="#55a868")
    ax_hours.set(ylabel="wall time (h)", title="wall time")
    for ax in (ax_cost, ax_hours):
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(overrides: list[str]) -> dict:
    cfg = compose_config(["dataset=oc", *overrides])
    cost = cfg.cost
    bench_path = Path(cost.bench_json)
    throughput = read_throughput(json.loads(bench_path.read_text()))
    n = int(cost.n_images)
    opts = options(throughput, OmegaConf.to_container(cost, resolve=True))
    table = [as_dict(o, n) for o in opts]
    cheapest = min(table, key=lambda o: o["cost_eur"])
    left = max(cost.budget_eur - cheapest["cost_eur"], 0.0)
    reads = reads_for_budget(left, cost.expert.cost_per_read_eur)
    bar = cfg.definition_of_done.sensitivity
    tumours = audit_tumours(bar, cost.audit.expected_sensitivity, cost.audit.confidence)
    _, curve = curve_for(cost.curve.results_glob, cfg.dataset.name, cost.curve.regime)
    result = {
        "command": "python scripts/cost_model.py " + " ".join(overrides),
        "n_images": n,
        "budget_eur": cost.budget_eur,
        "throughput": throughput.__dict__ | {"per_core": throughput.per_core, "file": str(bench_path.name)},
        "options": table,
        "cheapest": cheapest["name"],
        "budget_split": {
            "compute_eur": cheapest["cost_eur"],
            "reads": reads,
            "share_of_images": reads / n,
            "reads_needed_for_full_review": n,
        },
        "audit": {
            "bar": bar,
            "expected_sensitivity": cost.audit.expected_sensitivity,
            "confidence": cost.audit.confidence,
            "tumours": tumours,
            "tumour_share": cost.audit.tumour_share,
            "reads": int(np.ceil(tumours / cost.audit.tumour_share)),
        },
        "learning_curve": {k: v for k, v in curve.items() if not k.startswith("_")},
        "dataset_budget": review_budget(cfg, curve),
        "prices": OmegaConf.to_container(cost, resolve=True),
    }
    out = Path(cost.results_json)
    out.write_text(json.dumps(result, indent=1, default=float))
    plot(result, Path(cost.figure))
    for o in table:
        print(f"{o['name']:>18}: {o['images_per_s']:8.1f} img/s  {o['hours']:8.1f} h  EUR {o['cost_eur']:9.2f}")
    split = result["budget_split"]
    print(
        f"EUR {cost.budget_eur:,} for {n:,} images: compute EUR {split['compute_eur']:.2f} ({cheapest['name']}), "
        f"{reads:,} expert reads left = {split['share_of_images']:.2%} of the images"
    )
    print(f"audit: {tumours} tumour slices (~{result['audit']['reads']:,} reads) to show sensitivity >= {bar}")
    budget = result["dataset_budget"]
    print(
        f"EUR {budget['budget_eur']} on {budget['dataset']}: {budget['reads']} reads; "
        + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in budget.items() if k != "caveat")
    )
    print(f"written {out} and {cost.figure}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
