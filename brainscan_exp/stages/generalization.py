"""The generalization benchmark (``experiment=generalization``): every candidate embedding x head x
operating-point rule through the predict pipeline on every scenario, scored after all
predictions are written; defaults are chosen by the worst case over scenarios.

Order of work, so that no choice can see a pool label: build scenarios (a truth file is only a
stress generator there: it says which pool images to keep) -> predictions for every cell, written
to ``predictions.parquet`` -> only then each scenario's truth scores them. One MLflow parent run,
one child per scenario; ``generalization.csv`` / ``generalization.md`` in the run folder, and the
choice with its command in ``generalization.results_json``.

An embedding candidate may carry ``features`` overrides (e.g. ``precision: int8``): its rows sit
beside fp32's, and ``generalization.precision`` chooses the default ``features.precision`` from
them (``core/precision.py``), with the end-to-end speeds of ``scripts/bench_features.py`` and the
missed tumours of ``experiment=review_benchmark`` run at each precision.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainscan_exp.artefacts import atomic_write, content_key
from brainscan_exp.core.calibrate import reads_for_budget
from brainscan_exp.core.embed import embed, stack, whiten_with
from brainscan_exp.core.evaluate import DefinitionOfDone, bootstrap_auc, score_predictions
from brainscan_exp.core.precision import MEASURES, choose_precision
from brainscan_exp.core.predict import decide, out_of_fold, predictions_table
from brainscan_exp.core.scenarios import (
    Scenario,
    across,
    from_truth,
    outer_cv,
    with_fewer_labels,
    with_tumour_share,
    without_subtype,
)
from brainscan_exp.data.catalogue import Catalogue
from brainscan_exp.data.loader import load_dataset
from brainscan_exp.stages.common import log_config, open_run, output_dir, with_near_copies
from brainscan_exp.stages.predict import definition_of_done, operating_point
from brainscan_exp.tracking.mlflow_run import MlflowRun

log = logging.getLogger(__name__)
SCORE_COLUMNS = [
    "roc_auc",
    "auc_low",
    "auc_high",
    "sensitivity",
    "specificity",
    "review_share",
    "sensitivity_after_review",
    "expected_sensitivity",
    "expected_specificity",
    "n_scored",
    "tumour_share",
    "dod_met",
]


def head(spec: DictConfig) -> tuple[object, bool]:
    """(estimator, semi_supervised) of a candidate head: a regime's estimator (``spec.regime``),
    or a standardised logistic regression of ``spec.C``."""
    if spec.get("regime") is not None:
        regime = instantiate(spec.regime.method)
        return regime.estimator, regime.semi_supervised
    return make_pipeline(StandardScaler(), LogisticRegression(C=float(spec.C), max_iter=5000)), False


def embedding_candidate(name: str, spec, heads: DictConfig) -> tuple[list, dict, list[str]]:
    """(backbone overrides, ``features`` overrides, head names) of a candidate embedding: a list of
    backbone overrides (every head), or ``{backbones, features, heads}``, e.g. the same backbones
    at another ``features.precision`` with only the chosen head family."""
    if isinstance(spec, ListConfig):
        return list(spec), {}, list(heads)
    backbones, names = spec.get("backbones"), list(spec.get("heads") or heads)
    if backbones is None:
        raise ValueError(
            f"generalization.embeddings.{name}: a list of backbone overrides, or a mapping with `backbones` "
            "(that list), optional `features` (overrides of the features group) and `heads` (names in generalization.heads)"
        )
    unknown = [h for h in names if h not in heads]
    if unknown:
        raise ValueError(
            f"generalization.embeddings.{name}.heads names {unknown}, not in generalization.heads ({', '.join(heads)})"
        )
    return list(backbones), OmegaConf.to_container(spec.get("features") or {}, resolve=True), names


def dataset_scenarios(
    name: str, cat: Catalogue, truth: pd.DataFrame | None, g: DictConfig, seed: int
) -> dict[str, list[Scenario]]:
    """Scenario name -> its scenarios (several for an outer CV, scored together). ``truth`` (the
    dataset's truth file) is a stress generator here: which pool images are tumours, which subtype."""
    if truth is None:
        return {f"{name}_cv": list(outer_cv(name, cat.labelled, cat.pool, g.outer_folds, seed))}
    base = from_truth(name, cat.labelled, cat.pool, truth[truth.file.isin(cat.pool.file)])
    shifted = []
    if "subtype" in truth:  # one tumour subtype absent from the labelled set, each in turn
        labelled_truth = truth[truth.file.isin(cat.labelled.file) & (truth.label == "cancer")]
        shifted += [
            without_subtype(base, truth.set_index("file").subtype, s) for s in sorted(labelled_truth.subtype.unique())
        ]
    shifted += [with_tumour_share(base, float(share), seed) for share in g.tumour_shares]
    shifted.append(with_fewer_labels(base, int(g.few_labels), seed))
    return {name: [base]} | {f"{name}/{s.name}": [replace(s, name=f"{name}/{s.name}")] for s in shifted}


def cross_dataset_scenarios(
    catalogues: dict[str, Catalogue], truths: dict[str, pd.DataFrame]
) -> dict[str, list[Scenario]]:
    """Each dataset's labelled images against every other dataset's pool: its truth file where it
    has one, else its own labelled images (hidden in the pool) are the scored ones."""
    out = {}
    for source, src in catalogues.items():
        for target, tgt in catalogues.items():
            if source == target:
                continue
            if target in truths:
                pool, truth = tgt.pool, truths[target]
            else:
                pool = pd.concat([tgt.pool, tgt.labelled])
                truth = tgt.labelled.assign(label=np.where(tgt.labelled.label == 1, "cancer", "normal"))[
                    ["file", "label"]
                ]
            sc = across(source, src.labelled, target, pool, truth)
            out[sc.name] = [sc]
    return out


def predict_cells(
    cfg: DictConfig, catalogues: dict[str, Catalogue], scenarios: dict[str, list[Scenario]], review_rate: float
) -> pd.DataFrame:
    """Every (embedding, head, rule, scenario) cell's predictions; no truth in reach."""
    g = cfg.generalization
    mri, extractor = instantiate(cfg.preprocess), instantiate(cfg.features)
    op0 = operating_point(cfg)
    frames = []
    scenario_digest = content_key(
        {
            name: [(f.name, sorted(f.labelled.file), sorted(f.pool.file)) for f in folds]
            for name, folds in scenarios.items()
        }
    )
    # every dataset's images in one call: an int8 candidate is quantised once, on a sample of all of
    # them, so that a cross-dataset scenario compares vectors of one model
    paths_by_hash = {h: p for cat in catalogues.values() for h, p in zip(cat.files.pixel_hash, cat.files.path)}
    for emb_name, spec in g.embeddings.items():
        blocks, features, head_names = embedding_candidate(emb_name, spec, g.heads)
        backbones = [instantiate(OmegaConf.merge(cfg.backbone, block)) for block in blocks]
        emb_extractor = instantiate(OmegaConf.merge(cfg.features, features)) if features else extractor
        vectors, store_keys = embed(paths_by_hash, backbones, mri, emb_extractor)
        for head_name in head_names:
            h = g.heads[head_name]
            key = content_key(
                {
                    "embedding": store_keys,
                    "head": OmegaConf.to_container(h, resolve=True),
                    "rules": list(g.rules),
                    "op": asdict(op0),
                    "review_rate": review_rate,
                    "scenarios": scenario_digest,
                    "seed": cfg.seed,
                },
                "brainscan_exp.core",
                "brainscan_exp.stages.generalization",
            )
            cached = Path(cfg.paths.cache_dir) / "generalization" / f"{key}.parquet"
            if cached.exists():  # an interrupted benchmark resumes cell by cell (another name may have written it)
                frames.append(pd.read_parquet(cached).assign(embedding=emb_name, head=head_name))
                log.info("cached: %s / %s", emb_name, head_name)
                continue
            cell_frames = []
            estimator, semi = head(h)
            for scen_name, folds in scenarios.items():
                for sc in folds:
                    X_lab, (X_pool, _) = whiten_with(
                        stack(vectors, sc.labelled.pixel_hash), stack(vectors, sc.pool.pixel_hash), None, h.whiten
                    )
                    y = sc.labelled.label.to_numpy(int)
                    p_cal, p_pool, *_ = out_of_fold(
                        estimator,
                        X_lab,
                        y,
                        X_pool,
                        sc.labelled.group.to_numpy(),
                        op0.inner_folds,
                        op0.inner_repeats,
                        op0.seed,
                        semi,
                    )
                    n_reads = int(round(review_rate * len(sc.pool)))
                    for rule in g.rules:
                        with (
                            warnings.catch_warnings()
                        ):  # too few tumours for the tolerance rule: it says so in the table
                            warnings.simplefilter("ignore", RuntimeWarning)
                            prediction = decide(replace(op0, rule=rule), y, p_cal, p_pool)
                        table, _ = predictions_table(sc.pool.file, prediction, n_reads)
                        cell_frames.append(
                            table.assign(
                                embedding=emb_name,
                                head=head_name,
                                rule=rule,
                                scenario=scen_name,
                                fold=sc.name,
                                expected_sensitivity=prediction.expected["sensitivity"],
                                expected_specificity=prediction.expected["specificity"],
                            )
                        )
            cell = pd.concat(cell_frames, ignore_index=True)
            atomic_write(cached, lambda tmp, cell=cell: cell.to_parquet(tmp, index=False))
            frames.append(cell)
            log.info("predicted: %s / %s", emb_name, head_name)
    return pd.concat(frames, ignore_index=True)


def score_cells(predictions: pd.DataFrame, scenarios: dict[str, list[Scenario]], cfg: DictConfig) -> pd.DataFrame:
    """Each cell against its scenario's truth (an outer CV's folds pooled); AUC CIs once per
    (embedding, head, scenario), as they do not depend on the rule."""
    g, dod = cfg.generalization, definition_of_done(cfg)
    rows, auc_ci = [], {}
    keys = ["embedding", "head", "rule", "scenario"]
    for (emb, hd, rule, scen), cell in predictions.groupby(keys, sort=False):
        folds = scenarios[scen]
        truth = pd.concat([f.truth for f in folds])
        scored_cell = pd.concat([cell[cell.fold == f.name].merge(f.truth[["file"]], on="file") for f in folds])
        row = score_predictions(scored_cell, truth, n_boot=0, dod=dod)
        if (emb, hd, scen) not in auc_ci:
            merged = scored_cell.merge(truth, on="file")
            auc_ci[emb, hd, scen] = bootstrap_auc(
                (merged.label == "cancer").to_numpy(int),
                merged.p_cancer.to_numpy(),
                int(g.auc_bootstrap),
                seed=cfg.seed,
            )
        row["auc_low"], row["auc_high"] = auc_ci[emb, hd, scen]
        row["expected_sensitivity"] = float(cell.expected_sensitivity.mean())
        row["expected_specificity"] = float(cell.expected_specificity.mean())
        rows.append({"embedding": emb, "head": hd, "rule": rule, "scenario": scen, **row})
    return pd.DataFrame(rows)[keys + SCORE_COLUMNS]


def worst_cases(table: pd.DataFrame, dod: DefinitionOfDone) -> pd.DataFrame:
    """One row per candidate (embedding x head x rule), its worst scenario on each measure, ranked
    for the choice: the largest worst-case margin to the definition of done (the smallest of
    ROC-AUC, sensitivity and specificity minus their bars, over every scenario), then the best
    worst-case ROC-AUC."""
    margin = np.minimum.reduce(
        [table.roc_auc - dod.roc_auc, table.sensitivity - dod.sensitivity, table.specificity - dod.specificity]
    )
    worst = (
        table.assign(margin=margin)
        .groupby(["embedding", "head", "rule"], sort=False)
        .agg(
            worst_margin=("margin", "min"),
            worst_auc=("roc_auc", "min"),
            worst_sensitivity=("sensitivity", "min"),
            worst_specificity=("specificity", "min"),
            mean_auc=("roc_auc", "mean"),
            dod_met=("dod_met", "sum"),
            n_scenarios=("scenario", "count"),
        )
        .reset_index()
    )
    return worst.sort_values(["worst_margin", "worst_auc"], ascending=False).reset_index(drop=True)


def backbone_key(block: dict) -> str:
    """``name:levels`` of a backbone override, as ``scripts/bench_features.py`` names its rows."""
    return f"{block['name']}:{','.join(str(i) for i in block['out_indices'])}"


def review_missed(path: Path, review: DictConfig) -> float:
    """Worst-case missed tumours of the review defaults (``review.*``) in a review benchmark's
    JSON; NaN when the file is absent or did not run that candidate."""
    if not path.exists():
        return float("nan")
    want = {
        "strategy": review.strategy,
        "final_strategy": review.final_strategy or "",
        "batch_size": int(review.batch_size),
        "audit_share": float(review.audit_share),
        "delivery_sensitivity": float(review.delivery_sensitivity),
    }
    rows = [r for r in json.loads(path.read_text())["worst_cases"] if all(r[k] == v for k, v in want.items())]
    return float(rows[0]["worst_missed"]) if rows else float("nan")


def precision_table(cfg: DictConfig, worst: pd.DataFrame, table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The default ``features.precision`` from this benchmark (``generalization.precision``): the
    reference embedding and every candidate on the same backbones at another precision, on the
    chosen head and rule; end-to-end img/s on the brief's images from ``speeds_json``; the review
    benchmark's missed tumours from ``review_json`` run at each precision (``core/precision.py``)."""
    g, pc = cfg.generalization, cfg.generalization.precision
    if pc.embedding not in g.embeddings:
        raise ValueError(
            f"generalization.precision.embedding={pc.embedding} is not a candidate in generalization.embeddings "
            f"({', '.join(g.embeddings)}): name one, or set generalization.precision=null"
        )
    ref_blocks = OmegaConf.to_container(
        ListConfig(embedding_candidate(pc.embedding, g.embeddings[pc.embedding], g.heads)[0]), resolve=True
    )
    if len(ref_blocks) != 1:
        raise ValueError(
            f"generalization.precision.embedding={pc.embedding}: one backbone, whose speed bench_features measures"
        )
    measured = json.loads(Path(pc.speeds_json).read_text())["precision"]
    speeds, bar_speeds = measured.get(backbone_key(ref_blocks[0]), {}), measured.get(pc.bar_backbone, {})
    rows = []
    for name, spec in g.embeddings.items():
        blocks, features, _ = embedding_candidate(name, spec, g.heads)
        if OmegaConf.to_container(ListConfig(blocks), resolve=True) != ref_blocks:
            continue
        precision = features.get("precision", cfg.features.precision)
        worst_row = worst[(worst.embedding == name) & (worst["head"] == pc.head) & (worst.rule == pc.rule)]
        if worst_row.empty:
            raise ValueError(
                f"generalization.embeddings.{name} has no {pc.head} / {pc.rule} row: add {pc.head} to its heads"
            )
        cell = table[(table.embedding == name) & (table["head"] == pc.head) & (table.rule == pc.rule)]
        review_path = Path(str(pc.review_json).format(precision=precision))
        rows.append(
            {
                "precision": precision,
                "embedding": name,
                **{m: float(worst_row.iloc[0][m]) for m in MEASURES},
                "images_per_s": speeds.get(precision, {}).get("brief", {}).get("stage_images_per_s", float("nan")),
                "model_only_images_per_s": speeds.get(precision, {}).get("model_only_images_per_s", float("nan")),
                "bar_images_per_s": bar_speeds.get(precision, {})
                .get("brief", {})
                .get("stage_images_per_s", float("nan")),
                "review_missed": review_missed(review_path, cfg.review),
                "review_json": str(review_path),
                "_cell": cell.set_index("scenario"),
            }
        )
    precisions = [r["precision"] for r in rows]
    if len(set(precisions)) != len(precisions):
        raise ValueError(
            f"generalization.precision: two candidates on {pc.embedding}'s backbones at one precision ({precisions}); "
            "run the benchmark with features.precision=fp32 (the reference) and give the others features: {precision: ...}"
        )
    ref_cell = next((r["_cell"] for r in rows if r["precision"] == "fp32"), None)
    for r in rows:  # the largest drop in any one scenario, for the record (the rule reads the worst cases)
        cell = r.pop("_cell")
        if ref_cell is not None:
            drops = (
                ref_cell[["roc_auc", "sensitivity", "specificity"]] - cell[["roc_auc", "sensitivity", "specificity"]]
            )
            r["largest_scenario_drop"] = float(drops.max().max())
    chosen_table, chosen = choose_precision(pd.DataFrame(rows), float(pc.tolerance))
    bar = float(pc.bar_images_per_s)
    chosen_table["bar_met"] = (chosen_table.precision == "fp32") | (chosen_table.bar_images_per_s >= bar)
    return chosen_table, chosen


def precision_markdown(rows: pd.DataFrame, chosen: str, pc: DictConfig) -> str:
    def fmt(x) -> str:
        if isinstance(x, float) and x.is_integer():  # counts (missed tumours)
            return str(int(x))
        return f"{x:.1f}" if isinstance(x, float) and abs(x) >= 10 else f"{x:.3f}" if isinstance(x, float) else str(x)

    cols = [
        "precision",
        "embedding",
        "worst_auc",
        "worst_sensitivity",
        "worst_specificity",
        "worst_auc_drop",
        "worst_sensitivity_drop",
        "worst_specificity_drop",
        "largest_scenario_drop",
        "review_missed",
        "images_per_s",
        "model_only_images_per_s",
        "bar_images_per_s",
        "within_tolerance",
        "review_ok",
        "eligible",
        "bar_met",
        "chosen",
    ]
    cols = [c for c in cols if c in rows]
    return (
        "\n".join(
            [
                f"\n## Precision (`features.precision`), head `{pc.head}`, rule `{pc.rule}`\n",
                f"Rule: the fastest precision end to end on the brief's images (`{Path(pc.speeds_json).name}`) whose "
                f"worst-case ROC-AUC, sensitivity and specificity over every scenario are at most {pc.tolerance} below "
                "fp32's on the same embedding, and whose review benchmark (`experiment=review_benchmark` at that "
                "precision, the review defaults' row) misses no more tumours than fp32's; a lower precision becomes "
                f"the default only at >= {pc.bar_images_per_s:g} img/s end to end for the features stage's backbone "
                f"`{pc.bar_backbone}` (`bar_images_per_s`, `bar_met`). `images_per_s` and `model_only_images_per_s`: "
                f"this embedding, from the same bench run. Chosen by the rule: **{chosen}**.\n",
                "| " + " | ".join(cols) + " |",
                "|" + "---|" * len(cols),
                *("| " + " | ".join(fmt(r[c]) for c in cols) + " |" for _, r in rows.iterrows()),
            ]
        )
        + "\n"
    )


def choose(worst: pd.DataFrame) -> dict:
    best = worst.iloc[0]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()}


def to_markdown(table: pd.DataFrame, worst: pd.DataFrame, chosen: dict) -> str:
    fmt = lambda x: f"{x:.3f}" if isinstance(x, float) else str(x)  # noqa: E731
    cell = table[
        (table.embedding == chosen["embedding"]) & (table["head"] == chosen["head"]) & (table.rule == chosen["rule"])
    ]
    worst_row = {
        "scenario": "**worst case**",
        **{c: cell[c].min() for c in ["roc_auc", "auc_low", "sensitivity", "specificity"]},
        "dod_met": bool(cell.dod_met.all()),
    }
    cols = [
        "scenario",
        "n_scored",
        "tumour_share",
        "roc_auc",
        "auc_low",
        "auc_high",
        "sensitivity",
        "specificity",
        "review_share",
        "sensitivity_after_review",
        "expected_sensitivity",
        "expected_specificity",
        "dod_met",
    ]
    lines = [
        f"# Generalization benchmark\n\nChosen: embedding `{chosen['embedding']}`, head `{chosen['head']}`, "
        f"rule `{chosen['rule']}`: the largest worst-case margin to the definition of done (ROC-AUC, "
        f"sensitivity and specificity minus their bars, smallest over every scenario), then the best worst-case "
        f"ROC-AUC.\n",
        "## Chosen candidate, per scenario\n",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for _, r in cell.iterrows():
        lines.append("| " + " | ".join(fmt(r[c]) for c in cols) + " |")
    lines.append("| " + " | ".join(fmt(worst_row.get(c, "")) for c in cols) + " |")
    wcols = [
        "embedding",
        "head",
        "rule",
        "worst_margin",
        "worst_auc",
        "worst_sensitivity",
        "worst_specificity",
        "mean_auc",
        "dod_met",
        "n_scenarios",
    ]
    lines += [
        "\n## Every candidate, worst case over scenarios\n",
        "| " + " | ".join(wcols) + " |",
        "|" + "---|" * len(wcols),
    ]
    for _, r in worst.iterrows():
        lines.append("| " + " | ".join(fmt(r[c]) for c in wcols) + " |")
    return "\n".join(lines) + "\n"


def run(cfg: DictConfig) -> dict[str, float]:
    g, out_dir = cfg.generalization, output_dir(cfg)
    start = time.perf_counter()
    if g.get("precision") and not Path(g.precision.speeds_json).exists():  # before the hour of compute
        raise FileNotFoundError(
            f"generalization.precision.speeds_json: {g.precision.speeds_json} is missing; run "
            "`python scripts/bench_features.py --precision-only` (or set generalization.precision=null)"
        )
    with open_run(cfg, run_name="generalization") as parent:
        log_config(parent, cfg)
        catalogues, scenarios, truths = {}, {}, {}
        # the budget buys this share of a pool of the brief's size, spent alike on every scenario's pool
        review_rate = min(
            1.0, reads_for_budget(cfg.review.budget_eur, cfg.review.cost_per_read_eur) / g.budget_pool_size
        )
        mri, extractor, backbone = instantiate(cfg.preprocess), instantiate(cfg.features), instantiate(cfg.backbone)
        for ds, spec in g.datasets.items():
            cat = load_dataset(spec.root, cache_dir=cfg.paths.cache_dir, name=ds)
            if (
                cfg.dedup.enabled
            ):  # near-copy groups from the default embedding: group-aware folds, copies out of the pool
                vectors, keys = embed(dict(zip(cat.files.pixel_hash, cat.files.path)), [backbone], mri, extractor)
                cat = with_near_copies(cfg, cat, vectors, keys[0])
            catalogues[ds] = cat
            if spec.get("truth"):  # stress generator and cross-dataset scorer only
                truths[ds] = pd.read_csv(spec.truth)
            scenarios |= dataset_scenarios(ds, cat, truths.get(ds), g, cfg.seed)
        if g.get("cross_datasets", True):
            scenarios |= cross_dataset_scenarios(catalogues, truths)

        predictions = predict_cells(cfg, catalogues, scenarios, review_rate)
        predictions.to_parquet(out_dir / "predictions.parquet", index=False)  # written before any truth is read
        table = score_cells(predictions, scenarios, cfg)
        worst = worst_cases(table, definition_of_done(cfg))
        chosen = choose(worst)
        markdown = to_markdown(table, worst, chosen)
        precision = None
        if g.get("precision"):
            rows, choice = precision_table(cfg, worst, table)
            bar_met = bool(rows[rows.precision == choice].bar_met.iloc[0])
            precision = {
                "chosen_by_rule": choice,
                "default": choice if bar_met else "fp32",
                "tolerance": float(g.precision.tolerance),
                "bar_images_per_s": float(g.precision.bar_images_per_s),
                "table": rows.replace({np.nan: None}).to_dict(orient="records"),
            }
            markdown += precision_markdown(rows, choice, g.precision)
        table.to_csv(out_dir / "generalization.csv", index=False)
        (out_dir / "generalization.md").write_text(markdown)
        for name in ("generalization.csv", "generalization.md"):
            parent.log_artifact(out_dir / name)

        cell = table[
            (table.embedding == chosen["embedding"])
            & (table["head"] == chosen["head"])
            & (table.rule == chosen["rule"])
        ]
        for _, r in cell.iterrows():
            with MlflowRun(
                cfg.logger.tracking_uri,
                cfg.logger.experiment_name,
                f"scenario {r.scenario}",
                parent.tags | {"scenario": r.scenario},
                parent_run_id=parent.run_id,
            ) as child:
                child.log_metrics({c: float(r[c]) for c in SCORE_COLUMNS})
        seconds = time.perf_counter() - start
        parent.log_metrics(
            {f"worst/{k}": float(chosen[k]) for k in ("worst_auc", "worst_sensitivity", "worst_specificity")}
            | {"seconds": seconds}
        )
        parent.set_tags({f"chosen/{k}": chosen[k] for k in ("embedding", "head", "rule")})
        result = {
            "command": "python -m brainscan_exp " + " ".join(sys.argv[1:]),
            "seconds": round(seconds, 1),
            "chosen": chosen,
            "worst_cases": worst.to_dict(orient="records"),
            "table": table.to_dict(orient="records"),
            "precision": precision,
            "mlflow_run_id": parent.run_id,
        }
        if precision is not None:
            parent.set_tags({"chosen/precision": precision["default"]})
        if g.get("results_json"):  # and the markdown beside it, as the review benchmark does
            Path(g.results_json).parent.mkdir(parents=True, exist_ok=True)
            Path(g.results_json).write_text(json.dumps(result, indent=1, default=str))
            Path(g.results_json).with_suffix(".md").write_text(markdown)
        log.info(
            "generalization: chosen %s; worst case AUC %.3f, sensitivity %.3f, specificity %.3f (%.0f s)",
            {k: chosen[k] for k in ("embedding", "head", "rule")},
            chosen["worst_auc"],
            chosen["worst_sensitivity"],
            chosen["worst_specificity"],
            seconds,
        )
        print((out_dir / "generalization.md").read_text())
        return {f"worst/{k}": float(chosen[k]) for k in ("worst_auc", "worst_sensitivity", "worst_specificity")}
