"""The MLflow address a run prints opens on the runs table in a real browser (headless Chromium).

MLflow 3 opens an experiment on its GenAI page in a fresh browser whatever the experiment's tags
(the view is kept in localStorage, MLflow issue 24498); the runs table's own address does not
depend on it. Debian's ``chromium`` drives the check (Playwright downloads no browser here)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from brainscan_exp.tracking.mlflow_run import MlflowRun

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian's chromium not installed (.ci/run installs it)"
    ),
]
RUN_NAMES = ("semi-tf_efficientnet_lite0-demo", "predict-tf_efficientnet_lite2-demo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in RUN_NAMES:
        with MlflowRun(uri, "brainscan", name, {"task": "train", "dataset": "demo"}) as run:
            run.log_metrics({"test/sensitivity": 0.9})
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "brainscan_exp.tracking.ui", "--backend-store-uri", uri, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        start_new_session=True,  # the server and its workers in one group, ended together below
    )
    try:
        first = proc.stdout.readline()
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the MLflow UI did not start on port {port}") from None
                time.sleep(1)
        yield first
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_printed_address_opens_on_the_runs_table(ui):
    from playwright.sync_api import sync_playwright

    found = re.search(r"http://127\.0\.0\.1:\d+/#/experiments/\d+/runs", ui)
    assert found, ui
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(found.group(0))
            page.get_by_text("Training runs").first.wait_for(timeout=60_000)
            for name in RUN_NAMES:
                page.get_by_text(name).first.wait_for(timeout=30_000)
            assert "Traces" not in page.title()
        finally:
            browser.close()
