"""The expert-label ledger: every answer a radiologist gave on a pool image, append-only.

Why a module of its own: these reads are the most valuable data the project holds (each one cost
money and cannot be re-bought), so one place reads, validates and appends them, and nothing else
writes the file. Rules:

* an import lands whole or not at all (the new file is written beside the old one and renamed
  into place), and imports are serialised by a lock file, so two at once never corrupt it;
* rows are never rewritten or removed: the new file is the old file's rows plus the new ones;
* an answer already in the ledger (same image, reader and label) is not added again;
* a different answer for an image already read is kept beside the first: the image is in
  conflict, out of training, and queued for adjudication until one label holds a strict majority;
* answers for files outside the dataset, or labels outside :data:`LABELS`, stop the import with
  the list of offending rows, and nothing is written;
* a hand-edited ledger that no longer parses stops the run with the line number.
"""

from __future__ import annotations

import csv
import fcntl
import io
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from brainscan_exp.artefacts import atomic_write
from brainscan_exp.data.errors import AnswerFileError, InputError

LABELS = ("cancer", "normal", "unreadable")
COLUMNS = ["file", "pixel_hash", "label", "reader", "read_at", "source", "round", "reason"]
AUDIT = "audit"  # the queue's reason for its random share: the unbiased sample of the unread pool
SAFETY = "safety"  # the queue's safety net: reads that check the model's normal calls, not teach it


class LedgerError(InputError):
    """The ledger file is broken; nothing was written."""


@dataclass(frozen=True)
class ImportReport:
    new: int  # answers added
    known: int  # already in the ledger (same image, reader, label): skipped
    conflicting: int  # added, and their image now has answers that disagree
    unreadable: int  # added with label 'unreadable'

    def line(self) -> str:
        return (
            f"answers imported: {self.new} new, {self.known} already known, "
            f"{self.conflicting} conflicting (queued for adjudication), {self.unreadable} unreadable"
        )


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ExpertLedger:
    """``expert_labels.csv``: read with :meth:`read`, added to with :meth:`append` only."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self) -> pd.DataFrame:
        """Every row, validated line by line (an empty frame when the file does not exist yet)."""
        return _parse(self._text(), self.path)

    def _text(self) -> str:
        return self.path.read_text(encoding="utf-8") if self.path.exists() else _header()

    def append(
        self, answers: pd.DataFrame, files: pd.DataFrame, source: str, round_: int | None = None
    ) -> ImportReport:
        """Validate ``answers`` (``file``, ``label``; optional ``reader``, ``read_at``, ``reason``,
        ``round``) against the dataset's ``files`` (``file``, ``pixel_hash``) and add the new ones.
        Raises :class:`AnswerFileError` (nothing written) on unknown files or labels."""
        answers = normalise_answers(answers, source)
        by_file = dict(zip(files.file, files.pixel_hash))
        unknown = sorted(set(answers.file) - set(by_file))
        if unknown:
            raise AnswerFileError(
                f"{len(unknown)} answer(s) in {source} name files that are not in the dataset:",
                unknown,
                "nothing was imported. Answers must name files relative to the dataset root, as in "
                "review_queue.csv (e.g. sans_label/xyz.jpg); check that dataset.root is the folder the "
                "queue was made for.",
            )
        bad = answers[~answers.label.isin(LABELS)]
        if len(bad):
            raise AnswerFileError(
                f"{len(bad)} answer(s) in {source} have a label outside {'/'.join(LABELS)}:",
                [f"{f}: {lab!r}" for f, lab in bad[["file", "label"]].itertuples(index=False)],
                "nothing was imported. Correct these labels in the answer file and import it again.",
            )
        with self._locked():
            text = self._text()  # read once: parsed for the checks, then appended to
            old = _parse(text, self.path)
            answers = answers.assign(pixel_hash=answers.file.map(by_file))
            if round_ is None:
                round_ = int(old["round"].max()) + 1 if len(old) else 1
            answers["round"] = answers["round"].fillna(round_).astype(int)
            key = ["pixel_hash", "reader", "label"]
            seen = set(map(tuple, old[key].itertuples(index=False)))
            fresh = answers.drop_duplicates(key)
            fresh = fresh[[tuple(r) not in seen for r in fresh[key].itertuples(index=False)]]
            n_known = len(answers) - len(fresh)
            if len(fresh):
                merged = pd.concat([old, fresh[COLUMNS]], ignore_index=True)
                text += "" if text.endswith("\n") else "\n"  # a hand edit may have dropped the last newline
                atomic_write(self.path, lambda tmp: tmp.write_text(text + _rows(fresh[COLUMNS]), encoding="utf-8"))
            else:
                merged = old
        status = resolve(merged).set_index("pixel_hash").status
        conflicting = int(fresh.pixel_hash.map(status).eq("conflict").sum())
        return ImportReport(len(fresh), n_known, conflicting, int((fresh.label == "unreadable").sum()))


def normalise_answers(answers: pd.DataFrame, source: str) -> pd.DataFrame:
    """``file`` and ``label`` required; labels compared lower-case without surrounding blanks."""
    missing = {"file", "label"} - set(answers.columns)
    if missing:
        raise AnswerFileError(
            f"{source} has no column {', '.join(sorted(missing))}.",
            fix="give Label Studio's JSON export or a CSV with the columns file,label (optional: reader, read_at).",
        )
    out = pd.DataFrame(
        {
            "file": answers.file.astype(str).str.strip(),
            "label": answers.label.fillna("").astype(str).str.strip().str.lower(),
            "reader": answers.get("reader", pd.Series("unknown", index=answers.index)).fillna("unknown").astype(str),
            "read_at": answers.get("read_at", pd.Series("", index=answers.index)).fillna("").astype(str),
            "source": source,
            "round": pd.to_numeric(answers.get("round", pd.Series(None, index=answers.index)), errors="coerce"),
            "reason": answers.get("reason", pd.Series("", index=answers.index)).fillna("").astype(str),
        }
    )
    out.loc[out.read_at == "", "read_at"] = now()
    return out


def resolve(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per image read: ``label`` (cancer | normal, '' when none holds), ``status``
    (agreed | conflict | unreadable), ``audit`` (any of its reads was an audit draw), ``check``
    (every read of it was the safety net's), ``file``
    (the first file read), ``n_answers``. A conflict resolves once one label holds a strict
    majority of the image's cancer/normal answers (an adjudicator's read breaks a tie)."""
    if rows.empty:
        return pd.DataFrame(columns=["pixel_hash", "file", "label", "status", "audit", "check", "n_answers", "round"])
    out = []
    for h, part in rows.groupby("pixel_hash", sort=False):
        votes = part.label[part.label != "unreadable"].value_counts()
        if votes.empty:
            label, status = "", "unreadable"
        elif len(votes) == 1 or votes.iloc[0] > votes.iloc[1:].sum():
            label, status = votes.index[0], "agreed"
        else:
            label, status = "", "conflict"
        out.append(
            {
                "pixel_hash": h,
                "file": part.file.iloc[0],
                "label": label,
                "status": status,
                "audit": bool((part.reason == AUDIT).any()),
                "check": bool((part.reason == SAFETY).all()),
                "n_answers": len(part),
                "round": int(part["round"].min()),
            }
        )
    return pd.DataFrame(out)


def _header() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(COLUMNS)
    return buf.getvalue()


def _rows(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(frame.itertuples(index=False))
    return buf.getvalue()


def _parse(text: str, path: Path) -> pd.DataFrame:
    """Line-by-line validation, so that a hand edit is reported where it is."""
    hint = f"fix that line of {path} by hand (or restore the file from its backup); the ledger is never rewritten."
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != COLUMNS:
        raise LedgerError(f"{path} line 1: the header is {header}, expected {','.join(COLUMNS)}.", fix=hint)
    rows = []
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != len(COLUMNS):
            raise LedgerError(f"{path} line {line}: {len(row)} fields, expected {len(COLUMNS)}.", fix=hint)
        record = dict(zip(COLUMNS, row))
        if record["label"] not in LABELS:
            raise LedgerError(
                f"{path} line {line}: label {record['label']!r} is not one of {'/'.join(LABELS)}.", fix=hint
            )
        if not record["file"] or not record["pixel_hash"]:
            raise LedgerError(f"{path} line {line}: file and pixel_hash must not be empty.", fix=hint)
        try:
            record["round"] = int(record["round"])
        except ValueError:
            raise LedgerError(
                f"{path} line {line}: round {record['round']!r} is not a whole number.", fix=hint
            ) from None
        rows.append(record)
    return pd.DataFrame(rows, columns=COLUMNS).astype({"round": int})
