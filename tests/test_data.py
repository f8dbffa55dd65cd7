"""Layout, duplicate rules and bad files, on small generated folders."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainscan_exp.data import (
    BadImageError,
    DuplicateLabelError,
    LayoutError,
    build_catalogue,
    holdout_split,
    repeated_cv_split,
)
from brainscan_exp.data.demo import brain_slice


def _write(path, seed, lesion=False, fmt="JPEG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(brain_slice(np.random.default_rng(seed), 64, lesion)).convert("RGB").save(path, fmt)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    for i in range(6):
        _write(root / "avec_labels" / "cancer" / f"c{i}.jpg", i, True)
        _write(root / "avec_labels" / "normal" / f"n{i}.jpg", 100 + i)
    for i in range(8):
        _write(root / "sans_label" / f"u{i}.jpg", 200 + i, i % 2 == 0)
    return root


def test_layout_is_read(folder):
    cat = build_catalogue(folder)
    assert len(cat.labelled) == 12 and len(cat.pool) == 8
    assert set(cat.labelled.label) == {0, 1}
    assert cat.summary()["n_duplicate_groups"] == 0


def test_wrong_layout_shows_the_expected_one(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(LayoutError) as err:
        build_catalogue(tmp_path)
    message = str(err.value)
    assert "avec_labels/cancer" in message and "sans_label" in message and "Expected layout" in message


def test_missing_root_names_it(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        build_catalogue(tmp_path / "nowhere")


def test_copies_are_reported_and_kept_out_of_the_pool(folder):
    shutil.copy(folder / "avec_labels/cancer/c0.jpg", folder / "sans_label/copy_c0.jpg")  # byte copy
    shutil.copy(folder / "sans_label/u1.jpg", folder / "sans_label/u1_again.jpg")
    Image.open(folder / "avec_labels/normal/n0.jpg").save(folder / "sans_label/n0.png")  # same pixels, other bytes
    shutil.copy(folder / "avec_labels/normal/n1.jpg", folder / "avec_labels/normal/n1_dup.jpg")
    cat = build_catalogue(folder)
    assert len(cat.labelled) == 12  # the labelled duplicate counts once
    assert set(cat.pool.pixel_hash).isdisjoint(cat.labelled.pixel_hash)  # labelled copies leave the pool
    assert len(cat.pool) == 8  # the pool duplicate counts once
    kinds = cat.duplicates.groupby("group").kind.first().value_counts().to_dict()
    assert kinds == {"labelled-pool": 2, "pool-pool": 1, "labelled-labelled": 1}
    png_group = cat.duplicates[cat.duplicates.file == "sans_label/n0.png"].group.item()
    assert not cat.duplicates[cat.duplicates.group == png_group].byte_identical.any()


def test_two_labels_on_one_image_stop_the_run(folder):
    shutil.copy(folder / "avec_labels/cancer/c2.jpg", folder / "avec_labels/normal/c2_as_normal.jpg")
    with pytest.raises(DuplicateLabelError, match="c2_as_normal.jpg"):
        build_catalogue(folder)


def test_corrupt_jpeg_is_named(folder, tmp_path):
    data = (folder / "sans_label/u3.jpg").read_bytes()
    (folder / "sans_label/broken.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(BadImageError, match="broken.jpg"):
        build_catalogue(folder)
    cat = build_catalogue(folder, on_bad_file="skip")  # opt-in: leave it out, list it
    assert cat.bad_files.path.str.endswith("broken.jpg").all() and len(cat.bad_files) == 1
    assert len(cat.pool) == 8


def test_every_bad_file_is_listed_in_one_error_and_good_hashes_are_kept(folder, tmp_path):
    for name in ("broken1.jpg", "broken2.jpg", "broken3.jpg"):
        (folder / "sans_label" / name).write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError) as error:
        build_catalogue(folder, cache_dir=tmp_path / "cache")
    assert all(f"broken{i}.jpg" in str(error.value) for i in (1, 2, 3))
    assert "3 file(s)" in str(error.value) and "on_bad_file=skip" in str(error.value)
    index = next((tmp_path / "cache" / "hash_index").glob("*.parquet"))
    assert len(pd.read_parquet(index)) == 20  # the good files' hashes survive the error


def test_non_image_file_is_named(folder):
    (folder / "sans_label/notes.txt").write_text("not an image")
    with pytest.raises(LayoutError, match="notes.txt"):
        build_catalogue(folder)


def test_hash_index_cache_is_reused(folder, tmp_path):
    first = build_catalogue(folder, cache_dir=tmp_path / "cache")
    second = build_catalogue(folder, cache_dir=tmp_path / "cache")
    assert first.fingerprint == second.fingerprint
    assert list((tmp_path / "cache" / "hash_index").glob("*.parquet"))


def test_splits_are_stratified_seeded_and_disjoint(folder):
    cat = build_catalogue(folder)
    a, b = holdout_split(cat.labelled, 0.5, 0.34, seed=3), holdout_split(cat.labelled, 0.5, 0.34, seed=3)
    pd.testing.assert_frame_equal(a, b)
    test = a[a.split == "test"]
    assert test.label.value_counts().nunique() == 1  # balanced classes stay balanced
    folds = [repeated_cv_split(cat.labelled, f, n_splits=3, n_repeats=2) for f in range(6)]
    for rep in range(2):
        tested = pd.concat([f[f.split == "test"] for f in folds[rep * 3 : rep * 3 + 3]])
        assert sorted(tested.file) == sorted(cat.labelled.file)  # each image tested once per repeat
    with pytest.raises(ValueError, match="out of range"):
        repeated_cv_split(cat.labelled, 6, n_splits=3, n_repeats=2)


def test_no_near_copy_group_straddles_a_split():
    """Pairs of near copies (one group each): every fold, holdout and label subsample keeps a
    pair on one side of the train / val / test boundaries."""
    from brainscan_exp.stages.cv import subsample_labels

    labelled = pd.DataFrame({"file": [f"f{i}" for i in range(60)], "label": [1] * 30 + [0] * 30})
    labelled["pixel_hash"] = labelled.file
    labelled["group"] = [f"g{i // 2}" for i in range(60)]
    splits = [repeated_cv_split(labelled, f, n_splits=5, n_repeats=2, val_size=0.2) for f in range(10)]
    splits.append(holdout_split(labelled, 0.2, 0.2, seed=1))
    splits.append(subsample_labels(splits[0], 12, val_size=0.3, seed=0))
    for split in splits:
        assert split.groupby("group").split.nunique().eq(1).all()
        assert set(split.split) >= {"train", "val", "test"}
    tested = pd.concat([s[s.split == "test"] for s in splits[:5]])
    assert sorted(tested.file) == sorted(labelled.file)  # one repeat tests each image once
