"""Cached artefacts: content keys that include a fingerprint of the code that made them, and one
atomic-write helper.

Why a code fingerprint: an artefact computed by older code must not be reused after that code
changes, and a hand-bumped version number is forgotten sooner or later.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import uuid
from pathlib import Path


def code_fingerprint(*modules: str) -> str:
    """Digest of the source files of ``modules`` (a package counts with all its ``.py`` files)."""
    h = hashlib.sha256()
    for name in sorted(modules):
        module = importlib.import_module(name)
        path = Path(module.__file__)
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
        for file in files:
            h.update(file.name.encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def content_key(spec: dict, *modules: str) -> str:
    """Stable digest of ``spec`` (what goes in) and the code of ``modules`` (what makes it)."""
    blob = json.dumps(
        {"spec": spec, "code": code_fingerprint(*modules) if modules else None}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(tmp_path)`` then rename into place: readers and concurrent writers never see a
    half-written file (the temp name is unique per process and call)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
