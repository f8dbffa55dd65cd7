"""What a user sees: `python -m brainscan_exp debug=fast` prints a short log with no repeated line."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_a_run_prints_one_line_per_event_and_ends_with_a_summary(tmp_path, shared_cache):
    cmd = [
        sys.executable,
        "-m",
        "brainscan_exp",
        "debug=fast",
        f"paths.cache_dir={shared_cache}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    messages = [re.sub(r"^\[[^]]*\]", "", line) for line in lines]  # without the timestamp
    assert len(lines) <= 40, "\n".join(lines)
    assert len(set(messages)) == len(messages), "\n".join(lines)
    noise = ("Tip:", "deprecated", "database tables", "Inferred schema")  # adverts, deprecations, MLflow chatter
    assert not any(word.lower() in line.lower() for line in lines for word in noise), "\n".join(lines)
    print("\n".join(lines))
    assert "done: task=train" in lines[-3] and "MLflow run" in lines[-3]
    assert re.search(r"runs table: http://127\.0\.0\.1:5000/#/experiments/\d+/runs", lines[-1]), lines[-1]
    assert "held-out test split (" in proc.stdout and "test metrics: {" not in proc.stdout


@pytest.mark.slow
def test_the_first_run_shows_the_product(tmp_path, shared_cache):
    """`make run` is the client's job on the demo data: labels, triage, the run's own estimate, a
    check against the demo's truth, and where to look; readable lines, no Python dict."""
    cmd = [
        sys.executable,
        "-m",
        "brainscan_exp",
        "experiment=predict",
        "debug=fast",
        f"paths.cache_dir={shared_cache}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = [re.sub(r"^\[[^]]*\]\[[^]]*\]\[\w+\] - ", "", line) for line in proc.stdout.splitlines()]
    tail = lines[max(i for i, line in enumerate(lines) if line.startswith("labels for the pool: ")) :]
    print("\n".join(tail))
    assert "for a radiologist to read" in tail[0]
    assert tail[1].startswith("where the labels come from: ") and tail[2].startswith("expected missed tumours")
    assert tail[3].startswith("the run's own estimate on this pool (no truth used): sensitivity ")
    assert tail[4].startswith("estimated delivered-label error: ")
    assert tail[5].startswith("checked against the truth file truth.csv (") and "ROC-AUC" in tail[5]
    assert tail[6].startswith("predictions: ") and tail[6].endswith("predictions.csv")
    assert re.match(r"runs table: http://127\.0\.0\.1:5000/#/experiments/\d+/runs", tail[-1])
    assert not any("{'" in line for line in proc.stdout.splitlines()), proc.stdout
