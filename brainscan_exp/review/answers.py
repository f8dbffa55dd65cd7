"""Answer files a radiologist hands back: Label Studio's JSON export, or a CSV ``file,label``.

Both become one frame (file, label, reader, read_at, round, reason) for the ledger to validate;
nothing here decides what an answer means.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from brainscan_exp.data.errors import AnswerFileError
from brainscan_exp.review.label_studio import answers_from_export


def answers_from_tasks(tasks: list[dict], source: str) -> pd.DataFrame:
    """Label Studio tasks with annotations -> answers, with the queue's round and reason that
    ``experiment=review`` stored in each task's data."""
    answers = answers_from_export(tasks, source)
    extra = pd.DataFrame(
        [
            {"file": t["data"]["file"], "round": t["data"].get("round"), "reason": t["data"].get("reason", "")}
            for t in tasks
            if isinstance(t.get("data"), dict) and "file" in t["data"]
        ],
        columns=["file", "round", "reason"],
    ).drop_duplicates("file")
    return answers.drop(columns=[c for c in ("round", "reason") if c in answers]).merge(extra, on="file", how="left")


def read_answers(path: str | Path) -> pd.DataFrame:
    """The answers in ``path`` (``.json``: Label Studio export; ``.csv``: file,label[,reader,...])."""
    path = Path(path).expanduser()
    if not path.exists():
        raise AnswerFileError(f"answer file {path} does not exist: give review.answers=PATH of the export or CSV.")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            tasks = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AnswerFileError(
                f"{path} line {exc.lineno}: not valid JSON ({exc.msg}). Export the project again from Label "
                "Studio (Export -> JSON) and import that file; nothing was imported."
            ) from None
        if not isinstance(tasks, list):
            raise AnswerFileError(
                f"{path}: expected Label Studio's JSON export (a list of tasks); nothing was imported."
            )
        try:
            return answers_from_tasks(tasks, str(path))
        except ValueError as exc:
            raise AnswerFileError(f"{path}: {exc}; nothing was imported.") from None
    if suffix == ".csv":
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise AnswerFileError(f"{path}: not a readable CSV ({exc}); nothing was imported.") from None
    raise AnswerFileError(
        f"{path}: answer files are Label Studio's JSON export (.json) or a CSV with columns file,label (.csv)."
    )
