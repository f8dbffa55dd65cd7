"""The Label Studio adapter: task and answer formats (fast), and a real server (slow).

The slow tests start Label Studio 1.23.2 from ``.venv-labelstudio`` on a free 127.0.0.1 port with
a temporary database and document root, and check what the review round trip relies on: the
server listens on localhost only, refuses requests without a token, imports a queue once, returns
the readers' answers, and shows the slice and the three choices in a real browser. They fail (not
skip) when Label Studio is not installed: ``make label-studio-venv``, or
``BRAINSCAN_SKIP_LABEL_STUDIO=1`` to skip them knowingly.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import requests
from PIL import Image, ImageDraw

from brainscan_exp.review.answers import answers_from_tasks
from brainscan_exp.review.label_studio import (
    ANSWER_COLUMNS,
    CHOICES,
    LabelStudioClient,
    LabelStudioError,
    answers_from_export,
    document_root_for,
    label_config_xml,
    tasks_for,
)
from brainscan_exp.review.label_studio_server import (
    create_token,
    free_port,
    password_for,
    start_server,
    stop_process,
)
from brainscan_exp.review.ledger import ExpertLedger

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LS_VENV = Path(os.environ.get("BRAINSCAN_LABEL_STUDIO_VENV", PROJECT_ROOT / ".venv-labelstudio"))
# true when the element's centre is in the viewport and the element (not another one) is drawn there
HIT_TEST = """el => {
    const r = el.getBoundingClientRect();
    const x = r.x + r.width / 2, y = r.y + r.height / 2;
    return r.width > 0 && y < window.innerHeight && el.contains(document.elementFromPoint(x, y));
}"""
SCREENSHOT = PROJECT_ROOT / "reports" / "label_studio_task.png"
READER, PASSWORD = "reader@brainscan.local", "test-only-password-4711"


# -- fast: formats ---------------------------------------------------------------------------------


def test_label_config_is_xml_with_the_three_choices():
    view = ET.fromstring(label_config_xml())
    image = view.find("Image")
    assert image.get("name") == "image" and image.get("value") == "$image" and image.get("zoom") == "true"
    assert view.find("Header").get("value") == "$file"
    choices = view.find("Choices")
    assert choices.attrib == {"name": "label", "toName": "image", "choice": "single", "showInline": "true"}
    assert tuple(c.get("value") for c in choices.findall("Choice")) == CHOICES


def _queue(**extra) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "file": ["sans_label/a b.jpg", "sans_label/é.jpg", "avec_labels/c.jpg"],
            "p_cancer": np.array([0.9, 0.2, 0.5], dtype=np.float32),
            "reason": ["threshold", "audit", "safety"],
            "rank": np.arange(3, dtype=np.int64),
            **extra,
        }
    )


def test_tasks_for_points_at_local_files_and_carries_the_prediction(tmp_path):
    dataset = tmp_path / "data" / "demo"
    root = document_root_for(dataset)
    assert root == tmp_path / "data"
    tasks = tasks_for(_queue(), dataset, root, model_version="lite2@abc")
    json.dumps(tasks)  # numpy scalars unwrapped: Label Studio's import takes plain JSON
    assert [t["data"]["image"] for t in tasks] == [
        "/data/local-files/?d=demo/sans_label/a%20b.jpg",
        "/data/local-files/?d=demo/sans_label/%C3%A9.jpg",
        "/data/local-files/?d=demo/avec_labels/c.jpg",
    ]
    first = tasks[0]
    assert first["data"] == {
        "image": "/data/local-files/?d=demo/sans_label/a%20b.jpg",
        "file": "sans_label/a b.jpg",
        "reason": "threshold",
        "rank": 0,
        "p_cancer": pytest.approx(0.9),
    }
    (prediction,) = first["predictions"]
    assert prediction["model_version"] == "lite2@abc" and prediction["score"] == pytest.approx(0.9)
    assert prediction["result"] == [
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cancer"]}}
    ]
    choices = [t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks]
    assert choices == ["cancer", "normal", "cancer"]  # p >= 0.5
    assert tasks[1]["predictions"][0]["score"] == pytest.approx(0.8)  # the probability of the shown choice


def test_tasks_for_uses_the_models_decision_when_given(tmp_path):
    tasks = tasks_for(_queue(label_pred=["normal", "cancer", "normal"]), tmp_path / "d", tmp_path, "m")
    assert [t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks] == ["normal", "cancer", "normal"]
    assert tasks[0]["predictions"][0]["score"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="label_pred"):
        tasks_for(_queue(label_pred=["normal", "maybe", "normal"]), tmp_path / "d", tmp_path, "m")


def test_tasks_for_refuses_files_outside_the_document_root_and_incomplete_queues(tmp_path):
    with pytest.raises(ValueError, match="document root"):
        tasks_for(_queue(), tmp_path / "data" / "demo", tmp_path / "elsewhere", "m")
    with pytest.raises(ValueError, match="reason"):
        tasks_for(_queue().drop(columns="reason"), tmp_path / "d", tmp_path, "m")


def _annotation(reader, choice, *, cancelled=False, updated="2026-01-02T10:00:00Z"):
    result = (
        []
        if choice is None
        else [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
    )
    return {
        "completed_by": reader,
        "result": result,
        "was_cancelled": cancelled,
        "created_at": "2026-01-01T09:00:00Z",
        "updated_at": updated,
    }


EXPORT = [
    {  # two readers on one image: two rows, the ledger settles disagreements
        "id": 1,
        "data": {"image": "/data/local-files/?d=demo/sans_label/a.jpg", "file": "sans_label/a.jpg"},
        "annotations": [
            _annotation({"id": 1, "email": "ana@example.org"}, "cancer"),
            _annotation(2, "normal", updated=None),
        ],
    },
    {  # skipped by the reader: no answer
        "id": 2,
        "data": {"image": "/data/local-files/?d=demo/sans_label/b.jpg", "file": "sans_label/b.jpg"},
        "annotations": [_annotation(1, None, cancelled=True)],
    },
    {"id": 3, "data": {"file": "sans_label/c.jpg"}, "annotations": []},  # not read yet
    {"id": 4, "data": {"file": "sans_label/d.jpg"}, "annotations": [_annotation(1, None)]},  # submitted empty
]


def test_answers_from_export_gives_one_row_per_answer():
    answers = answers_from_export(EXPORT, source="label_studio:review")
    assert list(answers.columns) == ANSWER_COLUMNS
    assert answers.to_dict("records") == [
        {
            "file": "sans_label/a.jpg",
            "label": "cancer",
            "reader": "ana@example.org",
            "read_at": "2026-01-02T10:00:00Z",
            "source": "label_studio:review",
        },
        {
            "file": "sans_label/a.jpg",
            "label": "normal",
            "reader": "2",
            "read_at": "2026-01-01T09:00:00Z",
            "source": "label_studio:review",
        },
    ]
    assert answers_from_export([], "x").columns.tolist() == ANSWER_COLUMNS


def test_answers_from_export_refuses_tasks_it_did_not_create():
    foreign = {"id": 77, "data": {"image": "/data/upload/1/x.jpg"}, "annotations": [_annotation(1, "normal")]}
    with pytest.raises(ValueError, match="task 77.*not created by brainscan_exp"):
        answers_from_export([*EXPORT, foreign], "x")


def test_password_is_kept_private_and_stable(tmp_path):
    first = password_for(tmp_path)
    assert password_for(tmp_path) == first and len(first) >= 16
    assert stat.S_IMODE((tmp_path / "password").stat().st_mode) == 0o600


def test_client_says_when_no_server_answers():
    client = LabelStudioClient(f"http://127.0.0.1:{free_port()}", "not-a-token", timeout=5)
    with pytest.raises(LabelStudioError, match="no Label Studio server answers.*make label-studio"):
        client.ensure_project("review", label_config_xml())


# -- slow: a real server ---------------------------------------------------------------------------


def _slice(path: Path, seed: int) -> None:
    """A synthetic axial slice: a bright skull ring, grey brain, and a lesion in half of them."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (256, 256), 0)
    draw = ImageDraw.Draw(image)
    draw.ellipse((28, 20, 228, 236), fill=220)
    draw.ellipse((40, 32, 216, 224), fill=110)
    if seed % 2:
        x, y = rng.integers(80, 160, size=2)
        draw.ellipse((x, y, x + 36, y + 30), fill=200)
    noise = rng.normal(0, 6, (256, 256))
    pixels = np.clip(np.asarray(image, float) + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)


FILES = ["sans_label/slice 0.jpg", "sans_label/slice_1.jpg", "sans_label/slice_2.jpg", "avec_labels/slice_3.jpg"]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A Label Studio server on a free localhost port, stopped after the module's tests."""
    if os.environ.get("BRAINSCAN_SKIP_LABEL_STUDIO") == "1":
        pytest.skip("BRAINSCAN_SKIP_LABEL_STUDIO=1")
    if not (LS_VENV / "bin" / "label-studio").exists():
        pytest.fail(
            f"Label Studio is not installed in {LS_VENV}: run `make label-studio-venv` "
            "(or set BRAINSCAN_SKIP_LABEL_STUDIO=1 to skip these tests knowingly)"
        )
    root = tmp_path_factory.mktemp("label_studio")
    document_root = root / "data"
    dataset = document_root / "demo"
    for i, file in enumerate(FILES):
        _slice(dataset / file, i)
    data_dir = root / "server"
    port = free_port()
    process = start_server(data_dir, document_root, port, venv=LS_VENV, username=READER, password=PASSWORD)
    try:
        url = f"http://127.0.0.1:{port}"
        token = create_token(url, READER, PASSWORD, data_dir / "token")
        yield SimpleNamespace(
            url=url,
            port=port,
            pid=process.pid,
            token=token,
            dataset=dataset,
            document_root=document_root,
            data_dir=data_dir,
        )
    finally:
        stop_process(process)


def _project(server, title: str, files=FILES) -> tuple[LabelStudioClient, int]:
    client = LabelStudioClient(server.url, server.token)
    project = client.ensure_project(title, label_config_xml())
    client.ensure_local_storage(project, server.dataset)
    queue = pd.DataFrame(
        {"file": files, "p_cancer": np.linspace(0.1, 0.9, len(files)), "reason": "threshold", "rank": range(len(files))}
    )
    tasks = tasks_for(queue, server.dataset, server.document_root, model_version="test@1")
    client.import_tasks(project, tasks)
    return client, project


@pytest.mark.slow
def test_server_listens_on_localhost_only(label_studio):
    import psutil

    listening = {
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == label_studio.port
    }
    assert listening == {"127.0.0.1"}, f"port {label_studio.port} is bound to {listening}"
    for private in (label_studio.data_dir, label_studio.data_dir / "token", label_studio.data_dir / "password"):
        assert private.stat().st_mode & 0o077 == 0, f"{private} is readable by others"


@pytest.mark.slow
def test_server_refuses_requests_without_a_valid_token(label_studio):
    client, project = _project(label_studio, "refusals")
    image = tasks_for(
        pd.DataFrame({"file": [FILES[0]], "p_cancer": [0.5], "reason": ["x"], "rank": [0]}),
        label_studio.dataset,
        label_studio.document_root,
        "m",
    )[0]["data"]["image"]
    url = label_studio.url
    with requests.Session() as anonymous:
        for path in ("/api/projects", f"/api/projects/{project}/export?exportType=JSON", image):
            answer = anonymous.get(url + path, allow_redirects=False, timeout=30)
            refused = answer.status_code in (401, 403) or (
                answer.status_code == 302 and "login" in answer.headers.get("Location", "")
            )
            assert refused, f"{path} answered {answer.status_code} without a token"
        forged = anonymous.get(url + "/api/projects", headers={"Authorization": "Bearer forged"}, timeout=30)
        assert forged.status_code == 401
    # the same image with the token: served (the local-files storage covers it)
    access = requests.post(f"{url}/api/token/refresh/", json={"refresh": label_studio.token}, timeout=30).json()[
        "access"
    ]
    served = requests.get(url + image, headers={"Authorization": f"Bearer {access}"}, timeout=30)
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
    with pytest.raises(LabelStudioError, match="401.*token is wrong or expired"):
        LabelStudioClient(url, "not-a-token").ensure_project("refusals", label_config_xml())


@pytest.mark.slow
def test_round_trip_queue_to_answers(label_studio):
    client, project = _project(label_studio, "round trip", files=FILES[:3])
    assert client.ensure_project("round trip", label_config_xml()) == project  # found again, not duplicated
    assert not client._request("GET", f"/api/projects/{project}")["show_collab_predictions"]  # blind reads
    assert client.ensure_project("round trip", label_config_xml(), show_predictions=True) == project
    assert client._request("GET", f"/api/projects/{project}")["show_collab_predictions"]  # settings follow
    assert client.ensure_local_storage(project, label_studio.dataset / "sans_label") == client.ensure_local_storage(
        project, label_studio.dataset
    )
    queue = pd.DataFrame({"file": FILES, "p_cancer": [0.1, 0.6, 0.3, 0.95], "reason": "audit", "rank": range(4)})
    tasks = tasks_for(queue, label_studio.dataset, label_studio.document_root, model_version="test@1")
    assert client.import_tasks(project, tasks) == 1  # three were imported by _project: only the fourth is new
    assert client.import_tasks(project, tasks) == 0  # the same queue again: nothing twice
    ids = client.task_ids_by_file(project)
    assert sorted(ids) == sorted(FILES)

    client.submit_annotation(ids[FILES[0]], "cancer")
    client.submit_annotation(ids[FILES[3]], "unreadable")
    client.submit_annotation(ids[FILES[3]], "normal")  # a second answer on one image: a second row
    export = client.export(project)
    answers = answers_from_export(export, source="label_studio:test")
    got = sorted(zip(answers["file"], answers["label"]))
    assert got == sorted([(FILES[0], "cancer"), (FILES[3], "unreadable"), (FILES[3], "normal")])
    assert set(answers["reader"]) == {READER} and set(answers["source"]) == {"label_studio:test"}
    assert pd.to_datetime(answers["read_at"], utc=True).notna().all()
    predictions = {t["data"]["file"]: t for t in export}
    assert predictions[FILES[0]]["data"]["reason"] == "threshold" and predictions[FILES[3]]["data"]["reason"] == "audit"

    # the answers pulled from the server go into the ledger through the import path of task=import_labels
    files = pd.DataFrame({"file": FILES, "pixel_hash": [f"hash{i}" for i in range(len(FILES))]})
    ledger = ExpertLedger(label_studio.dataset.parent / "expert_labels.csv")
    report = ledger.append(answers_from_tasks(export, "label_studio:test"), files, "label_studio:test")
    assert (report.new, report.known, report.unreadable) == (3, 0, 1)
    rows = ledger.read()
    assert sorted(zip(rows.file, rows.label)) == got and set(rows.reader) == {READER}
    assert set(rows.reason) == {"threshold", "audit"}  # the queue's reasons ride in the task data
    assert ledger.append(answers_from_tasks(client.export(project), "again"), files, "again").new == 0


def _editor_shows(page, file: str) -> None:
    """The labelling editor shows ``file``'s slice (loaded, not a broken image), its name and the three choices."""
    # the editor's image (the data manager's thumbnails are plain <img> in table cells)
    slice_img = page.wait_for_selector(".lsf-image img", timeout=120_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=slice_img, timeout=60_000)
    assert slice_img.evaluate("img => img.naturalWidth") == 256
    page.get_by_role("heading", name=file).wait_for(timeout=30_000)  # <Header value="$file"/>
    for choice in CHOICES:
        label = page.locator(".lsf-choice__item", has_text=choice).first
        label.scroll_into_view_if_needed(timeout=30_000)
        assert label.evaluate(HIT_TEST), f"the choice {choice!r} is hidden or covered"
    assert page.locator(".lsf-choice__item input").count() == len(CHOICES)


@pytest.mark.slow
def test_labelling_page_shows_the_slice_and_the_choices(label_studio):
    """What a reader sees: logged in through the form, the label stream and one task's page, each with
    the slice loaded and the three choices; in the stream, the model's answer is not pre-filled."""
    from playwright.sync_api import sync_playwright  # the dev extra: CI has it, so this test runs there

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no chromium on PATH: apt-get install chromium (Playwright's own browser download is not used)"
    client, project = _project(label_studio, "browser check")
    task = client.task_ids_by_file(project)[FILES[1]]
    url = label_studio.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1200})  # slice and choices in one view
            images = []  # every local-file answer: a 404 here is the "images do not load" failure
            page.on("response", lambda r: images.append((r.url, r.status)) if "/data/local-files/" in r.url else None)
            page.goto(f"{url}/user/login/")
            page.fill("input[name=email]", READER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda u: "/user/login" not in u, timeout=60_000)

            # the reader's path ("Label All Tasks"): the first task of the queue, answered blind
            page.goto(f"{url}/projects/{project}/data?labeling=1")
            _editor_shows(page, FILES[0])
            assert page.locator(".lsf-choice__item input:checked").count() == 0, "the model's answer is pre-filled"
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))

            # one task opened from the data manager (a link the stages can print)
            page.goto(f"{url}/projects/{project}/data?task={task}")
            _editor_shows(page, FILES[1])
            assert images and all(status == 200 for _, status in images), images
        finally:
            browser.close()
