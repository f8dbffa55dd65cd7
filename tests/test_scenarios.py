"""Scenario builders of the generalization benchmark: shifts made by removing labelled images or
subsampling the pool, never by moving a pool image into the labelled set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainscan_exp.core.scenarios import from_truth, outer_cv, with_fewer_labels, with_tumour_share, without_subtype


@pytest.fixture
def dataset():
    rng = np.random.default_rng(0)
    subtypes = ["glioma", "meningioma", "pituitary"]
    labelled = pd.DataFrame({"file": [f"avec_labels/{i}.jpg" for i in range(100)], "label": [1] * 50 + [0] * 50})
    labelled["pixel_hash"] = "h" + labelled.file
    labelled["group"] = [f"g{i // 2}" for i in range(100)]  # near-copy pairs, same label
    pool = pd.DataFrame({"file": [f"sans_label/{i}.jpg" for i in range(600)]})
    pool["pixel_hash"] = "h" + pool.file
    truth = pd.DataFrame(
        {
            "file": list(labelled.file) + list(pool.file),
            "label": ["cancer"] * 50 + ["normal"] * 50 + list(np.where(rng.random(600) < 0.8, "cancer", "normal")),
            "subtype": [subtypes[i % 3] for i in range(50)] + ["notumor"] * 50 + [""] * 600,
        }
    )
    return labelled, pool, truth


def test_no_builder_moves_a_pool_image_into_the_labelled_set(dataset):
    labelled, pool, truth = dataset
    base = from_truth("ds", labelled, pool, truth[truth.file.isin(pool.file)])
    scenarios = [
        base,
        *(without_subtype(base, truth.set_index("file").subtype, s) for s in ("glioma", "pituitary")),
        with_tumour_share(base, 0.2),
        with_tumour_share(base, 0.5),
        with_fewer_labels(base, 40),
        *outer_cv("ds", labelled, pool, n_splits=5),
    ]
    for s in scenarios:
        assert set(s.labelled.file) <= set(labelled.file), s.name
        assert not set(s.labelled.file) & set(s.pool.file), s.name
        assert set(s.truth.file) <= set(s.pool.file), s.name  # only pool images are scored
    assert len({s.name for s in scenarios}) == len(scenarios)


def test_shifts_do_what_they_say(dataset):
    labelled, pool, truth = dataset
    base = from_truth("ds", labelled, pool, truth[truth.file.isin(pool.file)])
    no_glioma = without_subtype(base, truth.set_index("file").subtype, "glioma")
    assert len(no_glioma.labelled) == 100 - 17 and no_glioma.pool.equals(base.pool)
    for share in (0.2, 0.5):
        shifted = with_tumour_share(base, share)
        assert abs((shifted.truth.label == "cancer").mean() - share) < 0.01
    fewer = with_fewer_labels(base, 40)
    assert 38 <= len(fewer.labelled) <= 42 and set(fewer.labelled.label) == {0, 1}
    assert fewer.labelled.groupby("group").size().eq(2).all()  # whole near-copy groups only


def test_outer_cv_keeps_groups_on_one_side_and_scores_each_labelled_image_once(dataset):
    labelled, pool, _ = dataset
    folds = list(outer_cv("ds", labelled, pool, n_splits=5, seed=1))
    scored = pd.concat([f.truth for f in folds])
    assert sorted(scored.file) == sorted(labelled.file)
    for f in folds:
        held_groups = set(labelled[labelled.file.isin(f.truth.file)].group)
        assert not held_groups & set(f.labelled.group)
        assert set(pool.file) <= set(f.pool.file)


def test_across_collections_drops_pool_images_a_labelled_image_shares(dataset):
    from brainscan_exp.core.scenarios import across

    labelled, pool, truth = dataset
    other_pool = pd.concat([pool, labelled.iloc[:3][["file", "pixel_hash"]].assign(file=lambda f: "other/" + f.file)])
    other_truth = pd.concat([truth, truth.iloc[:3].assign(file=lambda f: "other/" + f.file)])
    sc = across("a", labelled, "b", other_pool, other_truth)
    assert sc.name == "a->b" and len(sc.pool) == len(pool)
    assert not set(sc.pool.pixel_hash) & set(labelled.pixel_hash)
    assert set(sc.truth.file) == set(pool.file)
