"""On the real data under ../shared/data (skipped when it is absent): the brief's traps."""

from __future__ import annotations

import shutil

import pytest

from brainscan_exp.data import BadImageError, build_catalogue
from conftest import SHARED_DATA

BRIEF = SHARED_DATA / "mri_dataset_brain_cancer_oc"
pytestmark = [pytest.mark.integration, pytest.mark.skipif(not BRIEF.is_dir(), reason="real data not present")]


def test_brief_dataset_duplicate_traps(tmp_path):
    cat = build_catalogue(BRIEF, cache_dir=tmp_path)
    summary = cat.summary()
    assert summary["n_files"] == 1506 and summary["n_distinct"] == 1410
    assert summary["n_labelled_distinct"] == 99  # one normal image appears twice
    assert summary["n_pool_copies_of_labelled"] == 32
    assert summary["n_duplicate_groups"] == 90
    assert set(cat.pool.pixel_hash).isdisjoint(cat.labelled.pixel_hash)


def test_corrupt_jpeg_in_a_copy_of_the_brief_is_named(tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(BRIEF, root)
    victim = sorted((root / "sans_label").iterdir())[0]
    (root / "sans_label" / "corrupt.jpg").write_bytes(victim.read_bytes()[:5000])
    with pytest.raises(BadImageError, match="corrupt.jpg"):
        build_catalogue(root)
