"""The review stage (``experiment=review``): the next batch of pool images a radiologist should read.

Fits the predict pipeline on the labelled images plus the ledger's reads, chooses up to
``review.batch_size`` unread images within the budget left (images in conflict first, for
adjudication; then an ``audit_share`` drawn at random; then ``review.strategy``), and writes
``review_queue.csv`` with the Label Studio import beside it (``label_studio_tasks.json``,
``label_studio_config.xml``). With ``review.label_studio.url`` the batch goes straight into a
Label Studio project; the answers come back with ``task=import_labels``.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from brainscan_exp.core.review_queue import PoolView, choose_reads
from brainscan_exp.review import label_studio
from brainscan_exp.stages.common import log_config, open_run, output_dir, prepare
from brainscan_exp.stages.predict import PoolFit, fit_pool

log = logging.getLogger(__name__)
QUEUE_COLUMNS = ["file", "p_cancer", "reason", "rank", "label_pred", "round"]


def next_batch(
    fit: PoolFit, strategy: str, batch_size: int, audit_share: float, seed: int, final_strategy: str | None = None
) -> pd.DataFrame:
    """The queue: conflicts first (``adjudication``), then the audit draw and the strategy's picks
    (``final_strategy``'s in the batch that spends the budget), never an image already read,
    never more than the budget left."""
    pool, prediction = fit.catalogue.pool, fit.prediction
    n = min(int(batch_size), fit.reads_left)
    round_ = int(fit.ledger_rows["round"].max()) + 1 if len(fit.ledger_rows) else 1
    status = fit.status_of(pool.pixel_hash)
    adjudicate = np.flatnonzero(status == "conflict")[:n]
    view = PoolView.of(prediction, fit.X_pool, fit.X_train)
    idx, reasons = choose_reads(
        strategy,
        view,
        n - len(adjudicate),
        audit_share,
        seed + round_,
        np.flatnonzero(status != ""),
        final_strategy if fit.reads_left <= int(batch_size) else None,
    )
    rows = np.concatenate([adjudicate, idx]).astype(int)
    return pd.DataFrame(
        {
            "file": pool.file.to_numpy()[rows],
            "p_cancer": prediction.p_pool[rows],
            "reason": np.concatenate([np.full(len(adjudicate), "adjudication", dtype=object), reasons]),
            "rank": np.arange(1, len(rows) + 1),
            "label_pred": prediction.label_pred[rows],
            "round": round_,
        },
        columns=QUEUE_COLUMNS,
    )


def run(cfg: DictConfig) -> dict[str, float]:
    out_dir, r = output_dir(cfg), cfg.review
    with open_run(cfg, regime=cfg.regime.name, strategy=r.strategy, final_strategy=str(r.final_strategy)) as tracker:
        log_config(tracker, cfg)
        prep = prepare(cfg, tracker, out_dir)
        fit = fit_pool(cfg, prep)
        queue = next_batch(fit, r.strategy, r.batch_size, r.audit_share, cfg.seed, r.final_strategy)
        queue.to_csv(out_dir / "review_queue.csv", index=False)
        root = prep.catalogue.root
        tasks = label_studio.tasks_for(queue, root, label_studio.document_root_for(root), tracker.run_id)
        (out_dir / "label_studio_tasks.json").write_text(json.dumps(tasks, indent=1))
        (out_dir / "label_studio_config.xml").write_text(label_studio.label_config_xml())
        for name in ("review_queue.csv", "label_studio_tasks.json", "label_studio_config.xml"):
            tracker.log_artifact(out_dir / name, "review")
        round_ = int(queue["round"].iloc[0]) if len(queue) else 0
        metrics = {
            "review/reads_used": float(len(fit.ledger_rows)),
            "review/reads_left": float(fit.reads_left),
            "review/batch": float(len(queue)),
            "review/round": float(round_),
            "operating_threshold": fit.prediction.threshold,
        }
        tracker.log_metrics(metrics)
        if fit.reads_left == 0:
            log.info("budget spent: %d reads in the ledger %s; the queue is empty", len(fit.ledger_rows), r.ledger)
        else:
            log.info(
                "review round %d: %d images queued (%s) in %s; %d reads left after it",
                round_,
                len(queue),
                ", ".join(f"{k} {v}" for k, v in queue.reason.value_counts().items()),
                out_dir / "review_queue.csv",
                fit.reads_left - len(queue),
            )
        if r.label_studio.url and len(queue):
            client = label_studio.LabelStudioClient(r.label_studio.url, r.label_studio.token)
            project = client.ensure_project(r.label_studio.project, label_studio.label_config_xml())
            client.ensure_local_storage(project, str(root))
            new = client.import_tasks(project, tasks)
            log.info(
                "Label Studio project %d at %s: %d new tasks (%d already there)",
                project,
                r.label_studio.url,
                new,
                len(tasks) - new,
            )
            metrics["review/label_studio_new_tasks"] = float(new)
            # the label stream keeps the model's answer out of the reader's (a task opened alone pre-fills it)
            log.info("readers start here: %s/projects/%d/data?labeling=1", r.label_studio.url.rstrip("/"), project)
        return metrics
