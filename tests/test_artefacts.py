"""Cache keys follow the code that makes an artefact; writes are all-or-nothing."""

from __future__ import annotations

import importlib
import sys

import pytest

from brainscan_exp.artefacts import atomic_write, code_fingerprint, content_key


@pytest.fixture
def maker(tmp_path, monkeypatch):
    """A throwaway module standing in for the code that produces an artefact."""
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "artefact_maker.py"
    path.write_text("def make(x):\n    return x + 1\n")
    yield path
    sys.modules.pop("artefact_maker", None)


def test_a_code_change_invalidates_the_key_and_nothing_else_does(maker):
    spec = {"features": "abc", "fold": 3}
    before = content_key(spec, "artefact_maker")
    assert content_key(dict(reversed(spec.items())), "artefact_maker") == before  # order-free
    assert content_key(spec | {"fold": 4}, "artefact_maker") != before
    maker.write_text("def make(x):\n    return x + 2\n")
    importlib.invalidate_caches()
    assert content_key(spec, "artefact_maker") != before


def test_a_package_fingerprint_changes_with_any_of_its_modules(tmp_path, monkeypatch):
    package = tmp_path / "artefact_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "step.py").write_text("A = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_fingerprint("artefact_pkg")
    (package / "step.py").write_text("A = 2\n")
    assert code_fingerprint("artefact_pkg") != before
    sys.modules.pop("artefact_pkg", None)


def test_a_failed_write_leaves_neither_the_file_nor_a_temp(tmp_path):
    target = tmp_path / "out" / "table.csv"

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert not target.exists() and list(target.parent.iterdir()) == []
    atomic_write(target, lambda tmp: tmp.write_text("whole"))
    assert target.read_text() == "whole" and len(list(target.parent.iterdir())) == 1
