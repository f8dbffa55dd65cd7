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
    assert "done: task=train" in lines[-2] and "MLflow run" in lines[-2]
    assert "make ui" in lines[-1]
