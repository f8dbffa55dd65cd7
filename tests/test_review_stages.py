"""The review round trip on the demo data: experiment=review -> answers -> task=import_labels ->
experiment=predict, until the budget is spent; the benchmark on a tiny grid."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import open_dict

from brainscan_exp.data.errors import AnswerFileError
from brainscan_exp.review.ledger import ExpertLedger
from brainscan_exp.stages import import_labels, predict, review, review_benchmark


def overrides(tmp_path):
    return (f"review.ledger={tmp_path / 'expert_labels.csv'}", "review.budget_eur=12", "operating_point.n_boot=0")


def answer(queue: pd.DataFrame, truth: pd.DataFrame, path: Path) -> Path:
    """A reader who answers every queued image right, as a CSV file,label."""
    labels = truth.set_index("file").label
    queue.assign(label=queue.file.map(labels))[["file", "label", "reason", "round"]].to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_round_trip_until_the_budget_is_spent(train_cfg, tmp_path):
    truth = None
    for k in range(3):
        cfg = train_cfg("experiment=review", "review.batch_size=5", "review.audit_share=0.2", *overrides(tmp_path))
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / f"review{k}")
        review.run(cfg)
        out = Path(cfg.paths.output_dir)
        queue = pd.read_csv(out / "review_queue.csv")
        truth = pd.read_csv(cfg.dataset.truth)
        assert list(queue.columns[:4]) == ["file", "p_cancer", "reason", "rank"]
        if k < 2:
            assert len(queue) == 5 and queue.file.is_unique and (queue.reason == "audit").sum() == 1
            assert queue.file.str.startswith("sans_label/").all()
            read = set(ExpertLedger(cfg.review.ledger).read().file)
            assert not read & set(queue.file)  # never an image already read
            tasks = json.loads((out / "label_studio_tasks.json").read_text())
            assert [t["data"]["file"] for t in tasks] == queue.file.tolist()
            assert {t["data"]["round"] for t in tasks} == {k + 1}
            assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"][0] in {"cancer", "normal"}
            choices = ElementTree.fromstring((out / "label_studio_config.xml").read_text()).iter("Choice")
            assert {c.get("value") for c in choices} == {"cancer", "normal", "unreadable"}
            cfg_import = train_cfg(
                "task=import_labels",
                f"review.answers={answer(queue, truth, tmp_path / f'a{k}.csv')}",
                *overrides(tmp_path),
            )
            metrics = import_labels.run(cfg_import)
            assert metrics["import/new"] == 5 and metrics["import/ledger_rows"] == 5 * (k + 1)
        else:  # 12 reads bought, 10 used: the last batch is the 2 left
            assert len(queue) == 2
    cfg = train_cfg("experiment=review", *overrides(tmp_path))
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "spent")
    ExpertLedger(cfg.review.ledger).append(
        pd.read_csv(tmp_path / "review2" / "review_queue.csv").assign(label="normal", reader="dr_x"),
        pd.read_csv(truth_files(cfg)),
        "last.csv",
    )
    review.run(cfg)
    assert pd.read_csv(tmp_path / "spent" / "review_queue.csv").empty  # header only: budget spent

    cfg = train_cfg("experiment=predict", *overrides(tmp_path))
    predict.run(cfg)
    table = pd.read_csv(Path(cfg.paths.output_dir) / "predictions.csv", keep_default_na=False)
    ledger = ExpertLedger(cfg.review.ledger).read()
    expert = table[table.label_source == "expert"]
    assert set(expert.file) == set(ledger.file)
    read_labels = ledger.drop_duplicates("file").set_index("file").label
    assert (expert.label_pred == expert.file.map(read_labels)).all()
    assert (expert.triage == expert.label_pred).all()
    assert (table.triage == "review").sum() == 0  # nothing left to read
    estimate = json.loads((Path(cfg.paths.output_dir) / "pool_estimate.json").read_text())
    assert estimate["delivered_method"] == "audit" and estimate["delivered_n_audit"] == 2


def truth_files(cfg) -> Path:
    """file -> pixel_hash of the demo dataset (what the import validates against)."""
    path = Path(cfg.paths.output_dir) / "files.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    instantiate(cfg.dataset).files[["file", "pixel_hash"]].to_csv(path, index=False)
    return path


def test_import_of_a_bad_answer_file_names_the_files_and_leaves_the_ledger(train_cfg, tmp_path):
    ledger_path = tmp_path / "expert_labels.csv"
    bad = tmp_path / "answers.csv"
    bad.write_text("file,label\nsans_label/img_0000.jpg,cancer\nsans_label/nope.jpg,normal\n")
    cfg = train_cfg("task=import_labels", f"review.answers={bad}", *overrides(tmp_path))
    with pytest.raises(AnswerFileError, match=r"(?s)sans_label/nope.jpg.*nothing was imported"):
        import_labels.run(cfg)
    assert not ledger_path.exists()
    cfg = train_cfg("task=import_labels", *overrides(tmp_path))
    with pytest.raises(AnswerFileError, match="no answers to import"):
        import_labels.run(cfg)


@pytest.mark.slow
def test_benchmark_writes_the_table_and_chooses_by_worst_case(train_cfg, tmp_path):
    cfg = train_cfg(
        "experiment=review_benchmark",
        "review.budget_eur=30",
        "review_benchmark.budget_pool_size=100",
        "review_benchmark.cross_datasets=false",
        "review_benchmark.strategies=[threshold,random]",
        "review_benchmark.final_strategies=[null,safety]",
        "review_benchmark.delivery_sensitivities=[0.95,0.99]",
        "review_benchmark.batch_sizes=[10,30]",
        "review_benchmark.tumour_shares=[]",
        "review_benchmark.few_labels=20",
        f"review_benchmark.results_json={tmp_path / 'rb.json'}",
        "operating_point.inner_repeats=1",
    )
    instantiate(cfg.dataset)  # generates the demo dataset on first use
    with open_dict(cfg):
        cfg.review_benchmark.datasets = {"demo": {"root": cfg.dataset.root, "truth": cfg.dataset.truth}}
    review_benchmark.run(cfg)
    result = json.loads((tmp_path / "rb.json").read_text())
    table = pd.DataFrame(result["rows"])
    pairs = pd.DataFrame(result["table"])  # each candidate beside the one-shot queue of its scenario
    assert {"missed_before", "missed_after", "error_rate_before", "error_rate_after"} <= set(pairs)
    assert "one_shot" not in set(pairs.strategy)
    assert set(table.scenario) == {"demo", "demo/labels_20"}
    assert set(table.strategy) == {"threshold", "random", "one_shot"}
    assert set(table.delivery_sensitivity) == {0.95, 0.99}
    assert (table[table.final_strategy == "safety"].batch_size == 10).all()  # one batch of 30: nothing final
    assert {"missed", "false_alarms", "error_rate", "auc_unread", "normals_auto_share", "estimate_covered"} <= set(
        table
    )
    worst = pd.DataFrame(result["worst_cases"])
    candidates = worst[worst.strategy != "one_shot"]
    assert result["chosen"]["strategy"] == candidates.iloc[0].strategy
    key = list(zip(candidates.worst_missed, candidates.worst_error_rate))
    assert key == sorted(key)
    assert (tmp_path / "rb.md").read_text().startswith("# Review benchmark")
