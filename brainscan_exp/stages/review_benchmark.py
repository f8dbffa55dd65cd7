"""The review benchmark (``experiment=review_benchmark``): every review strategy x batch size x
audit share through simulated readers on every scenario whose pool has truth; the defaults
(``review.strategy``, ``review.batch_size``, ``review.audit_share``) come from the worst case.

The scenarios are the generalization benchmark's (subtype held out of the labelled set, resampled
tumour share, fewer labels, labelled set of one collection and pool of another), restricted to
pool images the truth file covers, since the reader answers from it. The budget buys the same
share of every pool as 300 reads of the brief's 1,406 images. Rows: delivered missed tumours and
false alarms, ROC-AUC on the unread images, the share of true normals auto-labelled, and whether
the run's own delivered-error interval covered the truth; ``one_shot`` is today's behaviour
(one fit, the budget spent once on the safety queue, answers never refitted).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from joblib import Parallel, delayed
from omegaconf import DictConfig, OmegaConf

from brainscan_exp.artefacts import atomic_write, content_key
from brainscan_exp.core.calibrate import reads_for_budget
from brainscan_exp.core.embed import embed, stack
from brainscan_exp.core.review_loop import Pipeline, fit_round, one_shot, simulate
from brainscan_exp.data.loader import load_dataset
from brainscan_exp.stages.common import log_config, open_run, output_dir, with_near_copies
from brainscan_exp.stages.generalization import choose, cross_dataset_scenarios, dataset_scenarios
from brainscan_exp.stages.predict import estimator_of, operating_point

log = logging.getLogger(__name__)
ONE_SHOT = "one_shot"
CANDIDATE = ["strategy", "final_strategy", "batch_size", "audit_share", "delivery_sensitivity"]


def answerable(scenarios: dict) -> dict:
    """Single-pool scenarios, each pool cut to the images its truth file covers (the reader's)."""
    out = {}
    for name, folds in scenarios.items():
        if len(folds) != 1:  # outer CV of a dataset without truth: the pool cannot be read
            continue
        sc = folds[0]
        pool = sc.pool[sc.pool.file.isin(sc.truth.file)].reset_index(drop=True)
        if pool.empty:
            continue
        out[name] = type(sc)(sc.name, sc.description, sc.labelled, pool, sc.truth)
    return out


def worst_cases(table: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate, its worst scenario on each measure; ranked by the most missed
    tumours in any scenario, then the highest delivered-error rate, then the lowest unread AUC."""
    worst = (
        table.groupby(CANDIDATE, sort=False)
        .agg(
            worst_missed=("missed", "max"),
            worst_error_rate=("error_rate", "max"),
            mean_error_rate=("error_rate", "mean"),
            worst_auc_unread=("auc_unread", "min"),
            worst_normals_auto_share=("normals_auto_share", "min"),
            estimate_covered=("estimate_covered", "sum"),
            n_scenarios=("scenario", "count"),
        )
        .reset_index()
    )
    return worst.sort_values(
        ["worst_missed", "worst_error_rate", "worst_auc_unread"], ascending=[True, True, False]
    ).reset_index(drop=True)


def before_after(table: pd.DataFrame, today: float) -> pd.DataFrame:
    """Each candidate's row beside its scenario's one-shot row at ``today``'s sensitivity target
    (what predict delivered before the loop): what the loop changes."""
    before = table[(table.strategy == ONE_SHOT) & (table.delivery_sensitivity == today)].set_index("scenario")
    after = table[table.strategy != ONE_SHOT]
    out = after[[*CANDIDATE, "scenario", "n_pool", "n_reads"]].copy()
    keys = after.scenario
    for col in ("missed", "false_alarms", "error_rate", "auc_unread", "normals_auto_share"):
        out[f"{col}_before"] = before[col].reindex(keys).to_numpy()
        out[f"{col}_after"] = after[col].to_numpy()
    for col in ("estimate_low", "estimate_high", "estimate_covered"):
        out[col] = after[col].to_numpy()
    return out.reset_index(drop=True)


def to_markdown(table: pd.DataFrame, worst: pd.DataFrame, chosen: dict, command: str) -> str:
    fmt = lambda x: f"{x:.3f}" if isinstance(x, float) else str(x)  # noqa: E731
    cols = list(worst.columns)
    lines = [
        "# Review benchmark\n",
        f"`{command}`\n",
        f"Chosen: strategy `{chosen['strategy']}` (final round: `{chosen['final_strategy'] or 'the same'}`), batch {chosen['batch_size']}, audit share "
        f"{chosen['audit_share']}, delivered labels at sensitivity target {chosen['delivery_sensitivity']}: the fewest missed tumours in the worst scenario, then the lowest "
        "worst-case delivered-error rate, then the best worst-case ROC-AUC on unread images. "
        f"`{ONE_SHOT}` is today's one-shot safety queue.\n",
        "## Every candidate, worst case over scenarios\n",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(fmt(r[c]) for c in cols) + " |" for _, r in worst.iterrows()),
    ]
    tcols = [
        "scenario",
        "strategy",
        "final_strategy",
        "delivery_sensitivity",
        "batch",
        "rounds",
        "n_pool",
        "n_reads",
        "missed",
        "false_alarms",
        "error_rate",
        "auc_unread",
        "normals_auto_share",
        "estimate_low",
        "estimate_high",
        "estimate_covered",
    ]
    pick = table[np.logical_and.reduce([table[c] == chosen[c] for c in CANDIDATE]) | (table.strategy == ONE_SHOT)]
    pick = pick.sort_values(["scenario", "strategy", "delivery_sensitivity"])
    lines += [
        "\n## Chosen candidate and the one-shot queue, per scenario\n",
        "| " + " | ".join(tcols) + " |",
        "|" + "---|" * len(tcols),
        *("| " + " | ".join(fmt(r[c]) for c in tcols) + " |" for _, r in pick.iterrows()),
    ]
    return "\n".join(lines) + "\n"


def run(cfg: DictConfig) -> dict[str, float]:
    b, out_dir = cfg.review_benchmark, output_dir(cfg)
    start = time.perf_counter()
    command = "python -m brainscan_exp " + " ".join(sys.argv[1:])
    with open_run(cfg, run_name="review_benchmark") as parent:
        log_config(parent, cfg)
        mri, extractor, backbone = instantiate(cfg.preprocess), instantiate(cfg.features), instantiate(cfg.backbone)
        catalogues, truths, scenarios, near_groups = {}, {}, {}, {}
        loaded = {
            ds: load_dataset(spec.root, cache_dir=cfg.paths.cache_dir, name=ds) for ds, spec in b.datasets.items()
        }
        # every dataset's images in one call: at features.precision=int8 one model, quantised on a
        # sample of all of them, embeds every scenario's labelled set and pool
        paths_by_hash = {h: p for cat in loaded.values() for h, p in zip(cat.files.pixel_hash, cat.files.path)}
        vectors, store_keys = embed(paths_by_hash, [backbone], mri, extractor)
        for ds, spec in b.datasets.items():
            cat = loaded[ds]
            if cfg.dedup.enabled:
                cat = with_near_copies(cfg, cat, vectors, store_keys[0])
                near_groups |= cat.near_groups
            catalogues[ds] = cat
            if spec.get("truth"):
                truths[ds] = pd.read_csv(spec.truth)
            scenarios |= dataset_scenarios(ds, cat, truths.get(ds), b, cfg.seed)
        if b.get("cross_datasets", True):
            scenarios |= cross_dataset_scenarios(catalogues, truths)
        scenarios = answerable(scenarios)
        if b.get("scenarios"):
            scenarios = {k: v for k, v in scenarios.items() if k in set(b.scenarios)}
        regime = estimator_of(cfg)
        pipe = Pipeline(
            regime.estimator,
            operating_point(cfg),
            lambda hashes: stack(vectors, hashes, vectors.dim),
            regime.semi_supervised,
            lambda hashes: [near_groups.get(h, h) for h in hashes],
        )
        rate = reads_for_budget(cfg.review.budget_eur, cfg.review.cost_per_read_eur) / b.budget_pool_size
        grid = list(product(b.strategies, b.final_strategies, b.batch_sizes, b.audit_shares))
        targets = [float(t) for t in b.delivery_sensitivities]
        rows = []
        for name, sc in scenarios.items():
            n_budget = max(1, int(round(rate * len(sc.pool))))
            key = content_key(
                {
                    "scenario": (name, sorted(sc.labelled.file), sorted(sc.pool.file)),
                    "grid": grid,
                    "delivery_sensitivities": targets,
                    "budget": n_budget,
                    "cfg": OmegaConf.to_container(cfg.regime, resolve=True) | {"op": str(pipe.op), "seed": cfg.seed},
                    "features": store_keys,
                },
                "brainscan_exp.core",
                "brainscan_exp.review",
                "brainscan_exp.stages.review_benchmark",
            )
            cached = Path(cfg.paths.cache_dir) / "review_benchmark" / f"{key}.parquet"
            if cached.exists():  # an interrupted benchmark resumes scenario by scenario
                rows.append(pd.read_parquet(cached))
                log.info("cached: %s", name)
                continue
            t0 = time.perf_counter()
            first = fit_round(pipe, sc.labelled, sc.pool, pd.DataFrame(columns=["pixel_hash"]))
            truth = sc.truth.set_index("file").label
            scen_rows = [
                {
                    "strategy": ONE_SHOT,
                    "final_strategy": "",
                    "batch_size": b.budget_pool_size,
                    "batch": n_budget,
                    "audit_share": 0.0,
                    "rounds": 0,
                }
                | row
                for row in one_shot(pipe, first, truth, n_budget, targets)
            ]
            # batches scale with the pool like the budget (the same number of rounds everywhere); a
            # final strategy only differs from none when there is more than one round
            scale = len(sc.pool) / b.budget_pool_size
            cells = [
                (s, f or "", int(bs), max(1, round(int(bs) * scale)), float(a))
                for s, f, bs, a in grid
                if not f or (f != s and max(1, round(int(bs) * scale)) < n_budget)
            ]
            results = Parallel(n_jobs=int(b.n_jobs))(
                delayed(simulate)(pipe, sc, s, f or None, batch, a, n_budget, first, cfg.seed, None, targets)
                for s, f, _, batch, a in cells
            )
            for (strategy, final, nominal, batch, audit), (scores, _) in zip(cells, results):
                scen_rows += [
                    {"strategy": strategy, "final_strategy": final, "batch_size": nominal, "batch": batch}
                    | {"audit_share": audit}
                    | row
                    for row in scores
                ]
            frame = pd.DataFrame(scen_rows).assign(scenario=name, budget=n_budget)
            atomic_write(cached, lambda tmp, f=frame: f.to_parquet(tmp, index=False))
            rows.append(frame)
            log.info(
                "scenario %s: %d pool images, %d reads, %.0f s", name, len(sc.pool), n_budget, time.perf_counter() - t0
            )
        table = pd.concat(rows, ignore_index=True)
        worst = worst_cases(table)
        chosen = choose(worst[worst.strategy != ONE_SHOT])
        chosen |= {"worst_missed_after": chosen["worst_missed"], "worst_error_rate_after": chosen["worst_error_rate"]}
        before = choose(worst[worst.strategy == ONE_SHOT])  # the old behaviour's best setting
        markdown = to_markdown(table, worst, chosen, command)
        table.to_csv(out_dir / "review_benchmark.csv", index=False)
        (out_dir / "review_benchmark.md").write_text(markdown)
        for name in ("review_benchmark.csv", "review_benchmark.md"):
            parent.log_artifact(out_dir / name)
        seconds = time.perf_counter() - start
        metrics = {
            "chosen/worst_missed": float(chosen["worst_missed"]),
            "chosen/worst_error_rate": float(chosen["worst_error_rate"]),
            "one_shot/worst_missed": float(before["worst_missed"]),
            "one_shot/worst_error_rate": float(before["worst_error_rate"]),
            "seconds": seconds,
        }
        parent.log_metrics(metrics)
        parent.set_tags({f"chosen/{k}": chosen[k] for k in CANDIDATE})
        result = {
            "command": command,
            "seconds": round(seconds, 1),
            "chosen": chosen,
            "one_shot": before,
            "worst_cases": worst.to_dict(orient="records"),
            "table": before_after(table, float(cfg.target_sensitivity))
            .replace({np.nan: None})
            .to_dict(orient="records"),
            "rows": table.replace({np.nan: None}).to_dict(orient="records"),
            "mlflow_run_id": parent.run_id,
        }
        if b.get("results_json"):
            for suffix, text in (
                (".json", json.dumps(result, indent=1, default=str)),
                (".md", markdown),
            ):
                path = Path(b.results_json).with_suffix(suffix)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        log.info(
            "review benchmark: chosen %s (worst case: %d missed tumours, %.1f%% delivered labels wrong); "
            "one-shot queue: %d missed, %.1f%% wrong (%.0f s)",
            {k: chosen[k] for k in CANDIDATE},
            chosen["worst_missed"],
            100 * chosen["worst_error_rate"],
            before["worst_missed"],
            100 * before["worst_error_rate"],
            seconds,
        )
        print(markdown)
        return metrics
