"""Bad input reads as a person's message: what is wrong, which files (first 20 and a count), what to do.

No Python repr, no escaped newline, no traceback, no Hydra wrapper: the command's stderr is checked."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from brainscan_exp.data import AnswerFileError, BadImageError, LayoutError, build_catalogue
from brainscan_exp.data.demo import brain_slice
from brainscan_exp.data.errors import MAX_LISTED, find_input_error


def _write(path, seed, lesion=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(brain_slice(np.random.default_rng(seed), 48, lesion)).convert("RGB").save(path, "JPEG")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    for i in range(4):
        _write(root / "avec_labels" / "cancer" / f"c{i}.jpg", i, True)
        _write(root / "avec_labels" / "normal" / f"n{i}.jpg", 100 + i)
        _write(root / "sans_label" / f"u{i}.jpg", 200 + i, i % 2 == 0)
    return root


def _no_code(text: str) -> None:
    assert "\\n" not in text and "Error(" not in text and "Traceback" not in text, text
    assert "Error in call to target" not in text, text


def test_a_long_list_shows_the_first_20_and_a_count(folder):
    for i in range(25):
        (folder / "sans_label" / f"broken{i:02d}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError) as error:
        build_catalogue(folder)
    lines = str(error.value).splitlines()
    assert lines[0] == "25 file(s) cannot be decoded as images:"
    listed = [line for line in lines if line.startswith("  ") and "broken" in line]
    assert len(listed) == MAX_LISTED and "broken00.jpg" in listed[0]
    assert "... and 5 more (25 in all)" in str(error.value)
    assert lines[-1].startswith("What to do: ") and "on_bad_file=skip" in lines[-1]
    _no_code(str(error.value))


def test_the_same_image_under_both_labels_and_a_stray_file_read_plainly(folder):
    shutil.copy(folder / "avec_labels/cancer/c1.jpg", folder / "avec_labels/normal/c1_again.jpg")
    with pytest.raises(Exception) as error:
        build_catalogue(folder)
    assert "carry both labels" in str(error.value).splitlines()[0] and "c1_again.jpg" in str(error.value)
    (folder / "avec_labels/normal/c1_again.jpg").unlink()
    (folder / "sans_label" / "notes.txt").write_text("x")
    with pytest.raises(LayoutError) as error:
        build_catalogue(folder)
    assert str(error.value).splitlines()[1].strip().endswith("notes.txt")


def test_errors_survive_pickling_and_wrapping():
    error = AnswerFileError("2 answers name images that were not in the queue:", ["a.jpg", "b.jpg"], "re-export.")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.files == ["a.jpg", "b.jpg"]
    try:
        try:
            raise error
        except AnswerFileError as inner:
            raise RuntimeError("Error in call to target 'x'") from inner
    except RuntimeError as outer:
        assert find_input_error(outer) is error
    assert find_input_error(ValueError("no")) is None


def test_the_command_on_a_bad_folder_prints_what_which_and_what_to_do(folder, tmp_path):
    for i in range(3):
        (folder / "sans_label" / f"broken{i}.jpg").write_bytes(b"\xff\xd8 truncated")
    cmd = [
        sys.executable,
        "-m",
        "brainscan_exp",
        "dataset=oc",
        f"dataset.root={folder}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "error: 3 file(s) cannot be decoded as images:", proc.stderr
    assert [line.strip().split()[0] for line in lines[1:4]] == [
        str(folder / f"sans_label/broken{i}.jpg") for i in range(3)
    ]
    assert lines[4].startswith("What to do: delete or replace them")
    assert len(lines) == 5, proc.stderr
    _no_code(proc.stderr)
