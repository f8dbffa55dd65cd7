"""The expert-label ledger: nothing may lose or corrupt an expert's answer (each rule a test)."""

from __future__ import annotations

import multiprocessing as mp
import os

import pandas as pd
import pytest

from brainscan_exp.data.errors import AnswerFileError
from brainscan_exp.review.answers import read_answers
from brainscan_exp.review.ledger import COLUMNS, ExpertLedger, LedgerError, resolve

FILES = pd.DataFrame(
    {
        "file": [f"sans_label/img_{i}.jpg" for i in range(6)] + ["sans_label/twin_of_0.jpg"],
        "pixel_hash": [f"h{i}" for i in range(6)] + ["h0"],
    }
)


def answers(*pairs, reader="dr_a", **extra):
    return pd.DataFrame(
        [{"file": f"sans_label/img_{i}.jpg", "label": label, "reader": reader, **extra} for i, label in pairs]
    )


@pytest.fixture
def ledger(tmp_path):
    return ExpertLedger(tmp_path / "expert_labels.csv")


def test_append_writes_every_column_and_reads_back(ledger):
    report = ledger.append(answers((0, "cancer"), (1, "Normal "), (2, "unreadable")), FILES, "round1.csv")
    assert (report.new, report.known, report.conflicting, report.unreadable) == (3, 0, 0, 1)
    rows = ledger.read()
    assert list(rows.columns) == COLUMNS
    assert rows.label.tolist() == ["cancer", "normal", "unreadable"]
    assert rows.pixel_hash.tolist() == ["h0", "h1", "h2"]
    assert set(rows["round"]) == {1} and set(rows.source) == {"round1.csv"}
    assert rows.read_at.str.len().min() > 0


def test_reimporting_the_same_answers_changes_nothing(ledger):
    ledger.append(answers((0, "cancer"), (1, "normal")), FILES, "a.csv")
    before = ledger.path.read_bytes()
    report = ledger.append(answers((0, "cancer"), (1, "normal")), FILES, "a.csv")
    assert (report.new, report.known) == (0, 2)
    assert ledger.path.read_bytes() == before


def test_append_only_the_old_rows_stay_byte_for_byte(ledger):
    ledger.append(answers((0, "cancer")), FILES, "a.csv")
    first = ledger.path.read_bytes()
    ledger.append(answers((1, "normal")), FILES, "b.csv")
    assert ledger.path.read_bytes().startswith(first)
    assert ledger.read()["round"].tolist() == [1, 2]


def test_a_different_answer_is_kept_flagged_and_out_until_a_majority(ledger):
    ledger.append(answers((0, "cancer")), FILES, "a.csv")
    report = ledger.append(answers((0, "normal"), reader="dr_b"), FILES, "b.csv")
    assert report.conflicting == 1 and report.new == 1
    rows = ledger.read()
    assert len(rows) == 2  # both answers kept
    status = resolve(rows).set_index("pixel_hash").loc["h0"]
    assert status.status == "conflict" and status.label == ""
    ledger.append(answers((0, "cancer"), reader="dr_adjudicator"), FILES, "adj.csv")
    status = resolve(ledger.read()).set_index("pixel_hash").loc["h0"]
    assert status.status == "agreed" and status.label == "cancer"


def test_unknown_files_stop_the_import_with_the_list_and_write_nothing(ledger):
    ledger.append(answers((0, "cancer")), FILES, "a.csv")
    before = ledger.path.read_bytes()
    bad = pd.concat([answers((1, "normal")), pd.DataFrame({"file": ["sans_label/ghost.jpg"], "label": ["cancer"]})])
    with pytest.raises(
        AnswerFileError, match=r"(?s)1 answer\(s\) in bad.csv name files.*sans_label/ghost.jpg.*nothing was imported"
    ):
        ledger.append(bad, FILES, "bad.csv")
    assert ledger.path.read_bytes() == before


def test_a_label_outside_the_vocabulary_stops_the_import(ledger):
    with pytest.raises(AnswerFileError, match=r"(?s)label outside cancer/normal/unreadable.*img_1.jpg: 'tumour'"):
        ledger.append(answers((0, "cancer"), (1, "tumour")), FILES, "bad.csv")
    assert not ledger.path.exists()


def test_a_hand_edited_broken_ledger_stops_the_run_with_the_line_number(ledger):
    ledger.append(answers((0, "cancer"), (1, "normal")), FILES, "a.csv")
    lines = ledger.path.read_text().splitlines()
    lines[2] = lines[2].replace("normal", "maybe")
    ledger.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError, match="line 3: label 'maybe'"):
        ledger.read()
    lines[2] = "sans_label/img_1.jpg,h1,normal"
    ledger.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError, match="line 3: 3 fields"):
        ledger.read()
    before = ledger.path.read_bytes()
    with pytest.raises(LedgerError, match="line 3"):  # nothing is appended to a broken ledger
        ledger.append(answers((2, "normal")), FILES, "b.csv")
    assert ledger.path.read_bytes() == before


def test_a_crash_half_way_leaves_the_ledger_as_it_was(ledger, monkeypatch):
    ledger.append(answers((0, "cancer")), FILES, "a.csv")
    before = ledger.path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        ledger.append(answers((1, "normal"), (2, "cancer")), FILES, "b.csv")
    monkeypatch.undo()
    assert ledger.path.read_bytes() == before
    assert [p.name for p in ledger.path.parent.iterdir() if p.suffix == ".tmp"] == []


def _import_many(path, start):
    ExpertLedger(path).append(
        pd.DataFrame({"file": [f"sans_label/img_{i}.jpg" for i in range(6)], "label": "normal", "reader": f"r{start}"}),
        FILES,
        f"p{start}",
    )


def test_imports_at_once_never_corrupt_it(ledger):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_import_many, args=(ledger.path, k)) for k in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    rows = ledger.read()
    assert len(rows) == 36  # 6 readers x 6 images, every answer once
    assert rows.groupby("reader").size().tolist() == [6] * 6


def test_answer_files_csv_and_label_studio_json(tmp_path):
    csv = tmp_path / "answers.csv"
    csv.write_text("file,label\nsans_label/img_0.jpg,cancer\n")
    assert read_answers(csv)[["file", "label"]].values.tolist() == [["sans_label/img_0.jpg", "cancer"]]
    broken = tmp_path / "export.json"
    broken.write_text('[{"data": {"file": "x"},\n "annotations": [}]')
    with pytest.raises(AnswerFileError, match="export.json line 2: not valid JSON"):
        read_answers(broken)
    with pytest.raises(AnswerFileError, match=r"\.json\) or a CSV"):
        read_answers(tmp_path / "answers.txt") if (tmp_path / "answers.txt").write_text("x") else None
    with pytest.raises(AnswerFileError, match="no column label"):
        ExpertLedger(tmp_path / "l.csv").append(pd.DataFrame({"file": ["sans_label/img_0.jpg"]}), FILES, "x.csv")
