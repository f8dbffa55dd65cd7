"""Cached artefacts: content keys that include a fingerprint of the code that made them, and one
atomic-write helper.

Why a code fingerprint: an artefact computed by older code must not be reused after that code
changes, and a hand-bumped version number is forgotten sooner or later.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import uuid
from pathlib import Path


def _source_file(name: str) -> Path:
    """The ``.py`` file of module ``name``, found without running it or its parent packages (a
    store reader must not import torch through ``brainscan_exp.models``)."""
    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    if not rest or spec is None or not spec.submodule_search_locations:
        return Path(importlib.import_module(name).__file__)
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return Path(importlib.import_module(name).__file__)


def code_fingerprint(*modules: str) -> str:
    """Digest of the source files of ``modules`` (a package counts with all its ``.py`` files)."""
    h = hashlib.sha256()
    for name in sorted(modules):
        path = _source_file(name)
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
