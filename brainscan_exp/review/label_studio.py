"""The Label Studio adapter: the one module that speaks Label Studio's REST API and file formats.

Why an adapter: the review round trip (queue -> expert answers -> ledger) must not depend on how
Label Studio stores things. The stages hand this module a queue (a DataFrame) and get back answers
(a DataFrame the ledger imports); what lies between (tasks, predictions, the JSON export, tokens)
stays here. The server lives in its own environment (``.venv-labelstudio``, see
:mod:`.label_studio_server`) and is reached over plain HTTP only: its pins (numpy 2.2, an older
OpenCV) never meet ours, and no ``label-studio-sdk`` is needed.

Facts about Label Studio 1.23.2 this module relies on (checked against a real server):

* authentication is a personal access token (a refresh JWT from ``POST /api/token/``), exchanged at
  ``POST /api/token/refresh/`` for an access JWT that lives 5 minutes; legacy ``Token`` headers
  answer 401 in new organisations;
* an image task points at ``/data/local-files/?d=<path relative to the document root>``, and that
  URL answers 404 until the project has a local-files storage covering the folder;
* the JSON export names each annotation's reader by user id only (``completed_by: 1``): the
  client maps ids to e-mails so the ledger records who read;
* the labelling editor pre-fills a reader's answer with the task's prediction: in the label stream
  ("Label All Tasks", ``/projects/ID/data?labeling=1``) only when the project's
  ``show_collab_predictions`` is on (off by default here, see :meth:`LabelStudioClient.ensure_project`),
  but always when a task is opened on its own from the data manager (``/projects/ID/data?task=N``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import requests

CHOICES = ("cancer", "normal", "unreadable")
FROM_NAME = "label"  # the <Choices> control's name: the answers' ``from_name``
TO_NAME = "image"  # the <Image> object's name
LOCAL_FILES_URL = "/data/local-files/?d="
ANSWER_COLUMNS = ["file", "label", "reader", "read_at", "source"]
QUEUE_COLUMNS = ["file", "p_cancer", "reason", "rank"]
TOKEN_HELP = "create one with `make label-studio` or `python -m brainscan_exp.review.label_studio_server token`"
PAGE_SIZE = 500
IMPORT_CHUNK = 1000  # tasks per import request: one request per chunk keeps each one small


class LabelStudioError(RuntimeError):
    """A Label Studio request failed; the message says the URL, the answer and what to do."""


def label_config_xml() -> str:
    """The labelling interface: the slice, its file name on top, and one choice among :data:`CHOICES`."""
    choices = "\n".join(f'    <Choice value="{c}"/>' for c in CHOICES)
    return (
        "<View>\n"
        '  <Header value="$file"/>\n'
        f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>"
    )


def document_root_for(dataset_root: str | os.PathLike) -> Path:
    """The folder Label Studio serves local files from: the dataset root's parent.

    The parent, not the root itself, so that one server (one document root) serves every dataset
    kept beside it (``../shared/data/<dataset>``), and a task's path names its dataset.
    """
    return Path(os.path.abspath(dataset_root)).parent


def _plain(value: Any) -> Any:
    """A JSON-ready Python value: numpy scalars unwrapped, NaN/None to None."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def local_file_url(path: str | os.PathLike, document_root: str | os.PathLike) -> str:
    """The ``/data/local-files/?d=`` URL of ``path``, which must lie under ``document_root``."""
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(document_root))
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise ValueError(
            f"{path} is not under Label Studio's document root {root}: Label Studio can only serve files "
            "below LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT; start the server with a document root above the dataset"
        ) from None
    return LOCAL_FILES_URL + quote(relative.as_posix(), safe="/")


def tasks_for(
    queue: pd.DataFrame, dataset_root: str | os.PathLike, document_root: str | os.PathLike, model_version: str
) -> list[dict]:
    """One Label Studio task per queue row, with the model's answer as a pre-filled prediction.

    ``data.file`` (the path relative to the dataset root) is the key that ties an answer back to
    the ledger and keeps an image from being imported twice. The prediction's choice is the
    queue's ``label_pred`` when it has one (the model's decision at its operating point), else
    ``p_cancer >= 0.5``; its score is the model's probability of that choice.
    """
    missing = [c for c in QUEUE_COLUMNS if c not in queue.columns]
    if missing:
        raise ValueError(f"the review queue lacks the column(s) {missing}; it has {list(queue.columns)}")
    has_pred = "label_pred" in queue.columns
    if has_pred:
        bad = sorted({str(v) for v in queue["label_pred"] if v not in CHOICES})
        if bad:
            raise ValueError(f"label_pred holds {bad}, outside the choices {list(CHOICES)}")
    dataset_root = Path(dataset_root)
    tasks = []
    for row in queue.itertuples(index=False):
        p = float(row.p_cancer)
        choice = row.label_pred if has_pred else ("cancer" if p >= 0.5 else "normal")
        tasks.append(
            {
                "data": {
                    "image": local_file_url(dataset_root / row.file, document_root),
                    "file": str(row.file),
                    "reason": _plain(row.reason),
                    "rank": _plain(row.rank),
                    "p_cancer": p,
                    **({"round": _plain(row.round)} if "round" in queue.columns else {}),  # the ledger's round
                },
                "predictions": [
                    {
                        "model_version": model_version,
                        "score": p if choice == "cancer" else 1.0 - p,
                        "result": [
                            {
                                "from_name": FROM_NAME,
                                "to_name": TO_NAME,
                                "type": "choices",
                                "value": {"choices": [choice]},
                            }
                        ],
                    }
                ],
            }
        )
    return tasks


def _norm(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _file_of(task: dict) -> str | None:
    return (task.get("data") or {}).get("file")


def _reader(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id"))
    return str(completed_by)


def _choice(result: Iterable[dict]) -> str | None:
    for item in result or []:
        choices = (item.get("value") or {}).get("choices")
        if item.get("from_name") == FROM_NAME and choices:
            return choices[0]
    return None


def answers_from_export(tasks: list[dict], source: str) -> pd.DataFrame:
    """The readers' answers in a Label Studio JSON export: one row per submitted annotation.

    Several readers on one image give several rows: the ledger decides about disagreements, not
    this function. Skipped (cancelled) annotations and annotations without a choice are no
    answer. A task with answers but no ``data.file`` was not created by :func:`tasks_for`, and its
    image cannot be tied to the dataset: that stops the import rather than losing the answers.
    """
    rows = []
    for task in tasks:
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            label = _choice(annotation.get("result"))
            if label is None:
                continue
            file = _file_of(task)
            if not file:
                image = (task.get("data") or {}).get("image")
                raise ValueError(
                    f"Label Studio task {task.get('id')} has answers but no data.file (its image is {image!r}): "
                    "it was not created by brainscan_exp, so its image cannot be tied to the dataset; "
                    "remove it from the project or re-import it through the review stage"
                )
            rows.append(
                {
                    "file": file,
                    "label": label,
                    "reader": _reader(annotation.get("completed_by")),
                    "read_at": annotation.get("updated_at") or annotation.get("created_at"),
                    "source": source,
                }
            )
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


_HINTS = {
    400: "Label Studio rejected the request: read its answer above",
    401: f"the token is wrong or expired: {TOKEN_HELP}",
    403: "the token's user may not do this: use a token of a user in the project's organisation",
    404: "no such project, task or route on this server: check the URL and the project id",
    409: "Label Studio reports a conflict: read its answer above",
}


def _error(method: str, url: str, response: requests.Response, hint_for: int | None = None) -> LabelStudioError:
    """The error for a failed request; ``hint_for`` picks the advice of another status than the answer's."""
    default = "see the server's log (cache/label_studio/server.log for `make label-studio`)"
    hint = _HINTS.get(hint_for or response.status_code, default)
    text = " ".join(response.text.split())[:300]
    return LabelStudioError(
        f"Label Studio {method} {url} answered {response.status_code}: {text!r}. What to do: {hint}"
    )


class LabelStudioClient:
    """A Label Studio server, reached over HTTP with a personal access token.

    ``token`` is the refresh JWT (``POST /api/token/``, or the token file that
    ``label_studio_server token`` writes); each request carries a short-lived access token taken
    from it, refreshed once when the server answers 401.
    """

    def __init__(self, url: str, token: str, timeout: float = 30):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._refresh = token.strip()
        self._access: str | None = None
        self._http = requests.Session()
        self._users: dict[int, str] | None = None

    # -- transport -----------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        try:
            return self._http.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs)
        except requests.ConnectionError as e:
            raise LabelStudioError(
                f"no Label Studio server answers at {self.url} ({type(e).__name__}). What to do: start it with "
                "`make label-studio`, or check the URL"
            ) from e
        except requests.Timeout as e:
            raise LabelStudioError(
                f"Label Studio {method} {url} gave no answer in {self.timeout} s. What to do: check the server "
                "is not stuck (its log), or raise the client's timeout"
            ) from e

    def _authenticate(self) -> None:
        url = f"{self.url}/api/token/refresh/"
        response = self._send("POST", url, json={"refresh": self._refresh})
        if response.status_code != 200:
            # a malformed token answers 400, an unknown or revoked one 401: both are the token's fault
            raise _error("POST", url, response, hint_for=401 if response.status_code in (400, 401) else None)
        self._access = response.json()["access"]

    def _request(self, method: str, path: str, **kwargs) -> Any:
        url = f"{self.url}{path}"
        if self._access is None:
            self._authenticate()
        for attempt in range(2):
            response = self._send(method, url, headers={"Authorization": f"Bearer {self._access}"}, **kwargs)
            if response.status_code == 401 and attempt == 0:
                self._authenticate()  # the access token expired (5 min): one new one, one retry
                continue
            break
        if response.status_code >= 300:
            raise _error(method, url, response)
        return response.json() if response.content else None

    def _pages(self, path: str, params: dict, key: str) -> Iterator[dict]:
        """Every item of a paginated list (``results`` with ``next``, or /api/tasks' ``tasks`` and ``total``)."""
        page, seen = 1, 0
        while True:
            body = self._request("GET", path, params={**params, "page": page, "page_size": PAGE_SIZE})
            items = body[key]
            yield from items
            seen += len(items)
            total = body.get("total", body.get("count"))
            if not items or (total is not None and seen >= total) or (key == "results" and not body.get("next")):
                return
            page += 1

    # -- projects and storage ------------------------------------------------------------------

    def ensure_project(self, title: str, label_config: str, show_predictions: bool = False) -> int:
        """The id of the project called ``title``, created if missing, with this label config and these settings.

        Readers answer blind by default: Label Studio pre-fills a reader's answer with the model's
        prediction (``show_collab_predictions``), and a reader who only clicks Submit would record the
        model's label as an expert's (and bias the audit share). The predictions stay stored with the
        tasks either way. Empty answers are refused, so every submitted read names a choice.
        """
        settings = {
            "label_config": label_config,
            "show_collab_predictions": show_predictions,
            "enable_empty_annotation": False,
        }
        found = [p for p in self._pages("/api/projects", {"title": title}, "results") if p.get("title") == title]
        if not found:
            return self._request("POST", "/api/projects", json={"title": title, **settings})["id"]
        project = min(found, key=lambda p: p["id"])
        changed = {key: value for key, value in settings.items() if _norm(project.get(key)) != _norm(value)}
        if changed:
            self._request("PATCH", f"/api/projects/{project['id']}", json=changed)
        return project["id"]

    def ensure_local_storage(self, project_id: int, folder: str | os.PathLike) -> int:
        """The id of a local-files storage covering ``folder``, created if none does.

        Without one, Label Studio answers 404 to the tasks' image URLs. The storage is never synced:
        tasks come from :meth:`import_tasks` only, not from listing the folder.
        """
        folder = Path(os.path.abspath(folder))
        for storage in self._request("GET", "/api/storages/localfiles", params={"project": project_id}):
            covered = Path(storage["path"])
            if folder == covered or covered in folder.parents:
                return storage["id"]
        body = {"project": project_id, "path": str(folder), "use_blob_urls": False, "title": "brainscan_exp"}
        return self._request("POST", "/api/storages/localfiles", json=body)["id"]

    # -- tasks ---------------------------------------------------------------------------------

    def task_ids_by_file(self, project_id: int) -> dict[str, int]:
        """``data.file`` -> task id for the project's tasks (tasks without ``data.file`` are left out)."""
        params = {"project": project_id, "include": "id,data"}
        return {_file_of(task): task["id"] for task in self._pages("/api/tasks", params, "tasks") if _file_of(task)}

    def import_tasks(self, project_id: int, tasks: list[dict]) -> int:
        """Import the tasks whose ``data.file`` the project does not hold yet; returns how many were new.

        So re-sending a queue, or a queue that overlaps the last one, never puts an image in front of
        the readers twice.
        """
        files = [_file_of(t) for t in tasks]
        if not all(files):
            raise ValueError("every task needs data.file (the image's path in the dataset): build them with tasks_for")
        known = set(self.task_ids_by_file(project_id))
        new, seen = [], set()
        for task, file in zip(tasks, files):
            if file not in known and file not in seen:
                new.append(task)
                seen.add(file)
        for start in range(0, len(new), IMPORT_CHUNK):
            chunk = new[start : start + IMPORT_CHUNK]
            answer = self._request("POST", f"/api/projects/{project_id}/import", json=chunk)
            if answer.get("task_count", len(chunk)) != len(chunk):
                raise LabelStudioError(
                    f"Label Studio imported {answer.get('task_count')} of {len(chunk)} tasks into project "
                    f"{project_id}: {answer}. What to do: check the server's log, then re-run (imports skip "
                    "the files already there)"
                )
        return len(new)

    def users(self) -> dict[int, str]:
        """User id -> e-mail, for naming readers (the export gives ids only)."""
        if self._users is None:
            self._users = {u["id"]: u.get("email") or str(u["id"]) for u in self._request("GET", "/api/users")}
        return self._users

    def export(self, project_id: int) -> list[dict]:
        """The project's JSON export (annotated tasks), each ``completed_by`` id turned into ``{id, email}``."""
        tasks = self._request("GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON"})
        users = None
        for task in tasks:
            for annotation in task.get("annotations") or []:
                reader = annotation.get("completed_by")
                if isinstance(reader, int):
                    users = self.users() if users is None else users
                    if reader not in users:  # a user created since the first look
                        self._users = None
                        users = self.users()
                    annotation["completed_by"] = {"id": reader, "email": users.get(reader)}
        return tasks

    def submit_annotation(self, task_id: int, choice: str) -> int:
        """Answer a task as the token's user would in the labelling page; returns the annotation id."""
        if choice not in CHOICES:
            raise ValueError(f"{choice!r} is not one of the choices {list(CHOICES)}")
        result = [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [choice]}}]
        return self._request("POST", f"/api/tasks/{task_id}/annotations", json={"result": result})["id"]
